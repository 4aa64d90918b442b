"""`mm-feast serve`: the HTTP service (FastAPI), thin over mm_feast.services.

Routes: ``POST /search`` (JSON), ``POST /search/file`` (multipart upload of an image, audio or
video query), ``POST /get-online-features`` (the body and answer of Feast's feature server),
``GET /lineage/{lineage_id}``, ``GET /health``; OpenAPI at ``/docs``. With a token, every route
but ``/health`` needs ``Authorization: Bearer <token>``.

Every error answers JSON ``{"error": code, "detail": reason}``: a user's mistake gets its 4xx
(mm-feast's error tree carries the status), an unexpected one a 500 without a traceback (the
traceback goes to the log).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from feast import FeatureStore
from feast.errors import FeastError
from feast.feature_server import GetOnlineFeaturesRequest
from feast.feature_server_utils import convert_response_to_dict

from mm_feast.core.errors import InvalidArgument, MmFeastError, NotFound
from mm_feast.serving.auth import bearer_ok
from mm_feast.serving.uploads import search_upload
from mm_feast.services.lineage import lineage
from mm_feast.services.query import Query
from mm_feast.services.search import CrossModalSearch
from mm_feast.services.search_request import SearchRequest

logger = logging.getLogger(__name__)

TOKEN_ENV = "MM_FEAST_TOKEN"
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail})


def create_app(store: FeatureStore, token: Optional[str] = None, search: Optional[CrossModalSearch] = None) -> FastAPI:
    """The service over one Feast repo; ``token`` guards every route but /health."""
    search = search or CrossModalSearch(store)
    # The OpenAPI pages are routes of our own so that the token guards them too: the spec names
    # every view and feature of the repo.
    app = FastAPI(title="mm-feast", description="Multi-modal search and features over Feast and Milvus",
                  docs_url=None, redoc_url=None, openapi_url=None)
    repo = Path(store.repo_path)

    def authorised(request: Request) -> None:
        if not token:
            return
        if not bearer_ok(request.headers.get("authorization", ""), token):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(MmFeastError)
    async def mm_error(_: Request, exc: MmFeastError) -> JSONResponse:
        return _error(exc.http_status, exc.code, str(exc))

    @app.exception_handler(FeastError)
    async def feast_error(_: Request, exc: FeastError) -> JSONResponse:
        return _error(exc.http_status_code(), type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, "invalid_request", reasons or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, "http_error" if exc.status_code != 401 else "unauthorized", str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authorised)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(authorised)])
    def docs(request: Request) -> HTMLResponse:
        prefix = request.scope.get("root_path", "")  # behind a proxy's path prefix
        return get_swagger_ui_html(openapi_url=f"{prefix}/openapi.json", title="mm-feast API")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "project": store.project, "views": [v.name for v in search.embedding_views()]}

    @app.post("/search", dependencies=[Depends(authorised)])
    def search_json(body: dict[str, Any]) -> dict[str, Any]:
        request = SearchRequest.from_dict(body)
        if request.kind not in (None, "text"):  # a server never reads a path a client names
            raise InvalidArgument(f"POST /search takes text queries; upload a {request.kind} query to /search/file")
        return {"hits": [h.to_dict() for h in request.run(search, Query("text", request.query))]}

    @app.post("/search/file", dependencies=[Depends(authorised)])
    def search_file(file: UploadFile = File(...), request: str = Form("{}")) -> dict[str, Any]:
        """A query file, and the rest of the search request as a JSON form field ``request``."""
        try:
            body = json.loads(request)
        except ValueError as exc:
            raise InvalidArgument(f"form field 'request' is not JSON: {exc}") from None
        hits = search_upload(search, body, file.filename or "upload", lambda path: _save(file, path))
        return {"hits": [h.to_dict() for h in hits]}

    @app.post("/get-online-features", dependencies=[Depends(authorised)])
    def get_online_features(body: GetOnlineFeaturesRequest) -> JSONResponse:
        features: Any = store.get_feature_service(body.feature_service) if body.feature_service else body.features
        if not features:
            raise InvalidArgument("name 'features' or a 'feature_service'")
        response = store.get_online_features(
            features=features, entity_rows=body.entities, full_feature_names=body.full_feature_names
        )
        return JSONResponse(content=convert_response_to_dict(response.proto))

    @app.get("/lineage/{lineage_id}", dependencies=[Depends(authorised)])
    def lineage_of(lineage_id: str) -> dict[str, Any]:
        nodes = lineage(repo, lineage_id)
        if not nodes:
            raise NotFound(f"no lineage record for {lineage_id!r}")
        return json.loads(json.dumps({"lineage": [n.to_dict() for n in nodes]}, default=str))

    return app


def _save(file: UploadFile, path: Path) -> int:
    size = 0
    with open(path, "wb") as out:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise InvalidArgument(f"upload {path.name} is larger than {MAX_UPLOAD_BYTES // (1 << 20)} MiB")
            out.write(chunk)
    return size
