"""Reading the YAML files a repo keeps beside its definitions (safety thresholds, bias checks):
one place that turns a missing, unparsable or non-mapping file into a one-line user error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from mm_feast.core.errors import InvalidArgument


def load_mapping(path: Path) -> Optional[dict[str, Any]]:
    """The file's top-level mapping ({} when empty), or None when the file does not exist."""
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a mapping at the top level")
    return data
