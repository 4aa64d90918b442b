"""Search with an uploaded query file (HTTP multipart or gRPC bytes): it is written under a
temporary folder with a safe version of its name, and errors name the upload, not that folder."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from mm_feast.core.errors import QueryFileError
from mm_feast.services.search import CrossModalSearch, Hit
from mm_feast.services.search_request import SearchRequest


def safe_name(filename: str) -> str:
    """The upload's base name with only safe characters (its suffix tells the decoder the kind)."""
    base = Path(filename.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return cleaned[:200] or "upload"


def search_upload(search: CrossModalSearch, body: Mapping[str, Any], filename: str, write: Callable[[Path], int]) -> list[Hit]:
    """Run the request in ``body`` with the uploaded file as its query; ``write`` stores the
    upload at the path it is given and returns its size in bytes."""
    name = safe_name(filename)
    with tempfile.TemporaryDirectory(prefix="mm-feast-query-") as folder:
        path = Path(folder) / name
        if write(path) == 0:
            raise QueryFileError(name, "is empty (0 bytes)")
        try:
            request = SearchRequest.from_dict({**body, "query": "upload"}, query=str(path))
            query = request.parsed_query()
            query.check()
            return request.run(search, query)
        except QueryFileError as exc:
            raise QueryFileError(name, exc.reason) from None
