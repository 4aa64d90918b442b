"""`mm-feast serve`: start the HTTP service on one repo, with models and collections warm first."""

from __future__ import annotations

import argparse
import logging
import os
import sys

logger = logging.getLogger(__name__)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mm_feast.serving.http import TOKEN_ENV, create_app
    from mm_feast.services.search import CrossModalSearch
    from mm_feast.stores.lineage import open_store

    store = open_store(args.repo)
    search = CrossModalSearch(store)
    warmed = search.warm(args.views)  # before the port opens: /health answers only once warm
    token = args.token or os.environ.get(TOKEN_ENV) or None
    app = create_app(store, token=token, search=search)
    grpc_server = None
    if args.grpc_port:
        from mm_feast.serving.grpc_service import start_grpc

        grpc_server = start_grpc(search, args.host, args.grpc_port, token)
    sys.stderr.write(
        f"mm-feast serve: {len(warmed)} views warm ({', '.join(warmed)}); listening on http://{args.host}:{args.port}"
        f"{f' and gRPC {args.host}:{args.grpc_port}' if grpc_server else ''}{' (bearer token required)' if token else ''}\n"
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait(10)
        search.close()
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="HTTP search and feature service (FastAPI) over a repo")
    serve.add_argument("--repo", default="feature_repo")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")
    serve.add_argument("--port", type=int, default=6570)
    serve.add_argument("--grpc-port", type=int, help="also serve mm_feast.v1.Search over gRPC on this port")
    serve.add_argument("--token", help="bearer token every route but /health needs (or $MM_FEAST_TOKEN)")
    serve.add_argument("--views", nargs="*", help="views to warm before serving (default: all)")
    serve.set_defaults(func=cmd_serve)
