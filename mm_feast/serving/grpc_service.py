"""The gRPC search service (``mm_feast.v1.Search``, proto in ``proto/search.proto``): the same
request, code path and hits as ``POST /search`` and ``POST /search/file``."""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any, Optional

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

from mm_feast.core.errors import MmFeastError
from mm_feast.serving.auth import bearer_ok
from mm_feast.serving.proto import search_pb2, search_pb2_grpc
from mm_feast.serving.uploads import search_upload
from mm_feast.services.query import Query
from mm_feast.services.search import CrossModalSearch, Hit
from mm_feast.services.search_request import SearchRequest

logger = logging.getLogger(__name__)


def _struct(values: dict[str, Any]) -> Struct:
    out = Struct()
    out.update({k: (v if isinstance(v, (str, int, float, bool, list, dict)) or v is None else str(v)) for k, v in values.items()})
    return out


def hit_message(hit: Hit) -> search_pb2.Hit:
    return search_pb2.Hit(
        view=hit.view, entity_key=hit.entity_key, item_id=str(hit.fields.get("item_id") or ""), score=hit.score,
        lineage_id=str(hit.fields.get("lineage_id") or ""), scores=_struct(hit.scores), ranks=_struct(hit.ranks),
        fields=_struct(hit.fields), features=_struct(hit.features),
    )


class SearchServicer(search_pb2_grpc.SearchServicer):
    """Answers Search; an mm-feast error becomes its gRPC status with the reason as details."""

    def __init__(self, search: CrossModalSearch, token: Optional[str] = None):
        self.search_service = search
        self.token = token

    def Search(self, request: search_pb2.SearchRequest, context: grpc.ServicerContext) -> search_pb2.SearchResponse:  # noqa: N802
        self._authorise(context)
        body = MessageToDict(request, preserving_proto_field_name=True)
        body.pop("file", None)
        file_name = body.pop("file_name", "")
        try:
            if request.file:
                hits = search_upload(self.search_service, body, file_name or "upload", lambda path: path.write_bytes(request.file))
            else:
                parsed = SearchRequest.from_dict(body)
                hits = parsed.run(self.search_service, Query("text", parsed.query))
        except MmFeastError as exc:
            context.abort(exc.grpc_status_code(), str(exc))
        return search_pb2.SearchResponse(hits=[hit_message(h) for h in hits])

    def _authorise(self, context: grpc.ServicerContext) -> None:
        if not self.token:
            return
        if not bearer_ok(dict(context.invocation_metadata()).get("authorization", ""), self.token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


def start_grpc(search: CrossModalSearch, host: str, port: int, token: Optional[str] = None, workers: int = 8) -> grpc.Server:
    """A started gRPC server on host:port (stop it with ``server.stop(grace)``)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mm-grpc"))
    search_pb2_grpc.add_SearchServicer_to_server(SearchServicer(search, token), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        from mm_feast.core.errors import InvalidArgument

        raise InvalidArgument(f"cannot listen for gRPC on {host}:{port}: the port is taken or the address is not local")
    server.start()
    return server
