"""`mm-feast`: commands beside Feast's own verbs (demo, ingest, search, lineage, quality).

A user error (any ``mm_feast.core.errors.MmFeastError``, or one of Feast's own errors) prints one
line, ``mm-feast: error: <message>``, and exits with the error's code (2 for user errors, 3 when
the online store is unavailable); ``--debug`` adds the traceback. Any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import Optional, Sequence

from mm_feast.cli.bias import register_cli as register_bias_commands
from mm_feast.cli.explain import register_cli as register_explain_commands
from mm_feast.cli.lineage import register_commands as register_lineage_commands
from mm_feast.cli.quality import register_cli as register_quality_commands
from mm_feast.cli.safety import register_cli as register_safety_commands
from mm_feast.cli.serve import register_cli as register_serve_commands


def _store(repo: str):
    # resolves a relative SQLite registry URL, creates data/ for SQLite and Milvus Lite, and
    # says so in one line when --repo is not a Feast repo
    from mm_feast.stores.lineage import open_store

    return open_store(repo)


def cmd_demo(args: argparse.Namespace) -> int:
    from mm_feast.cli.demo import run_demo

    run_demo(Path(args.repo), reset=not args.keep)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Bring every embedding source of the repo up to date (what materialize does first)."""
    from mm_feast.pipeline.ingest import ensure_embeddings, scan_media
    from mm_feast.cli.report import print_summaries
    from mm_feast.sources import EmbeddingSource, MediaSource

    store = _store(args.repo)
    repo = Path(store.repo_path)
    sources = store.list_data_sources()
    for media in (s for s in sources if isinstance(s, MediaSource)):
        scan_media(media, repo)
    for source in (s for s in sources if isinstance(s, EmbeddingSource)):
        if not args.views or source.name.removesuffix("_source") in args.views:
            ensure_embeddings(source, repo)
    print_summaries(repo, sys.stdout)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from mm_feast.services.query import Query

    # A query file that is missing, unreadable or undecodable fails here, before the store opens.
    query = Query.parse(args.query, kind=args.kind, text=args.text)
    query.check()

    from mm_feast.cli.report import print_hits
    from mm_feast.services.search import CrossModalSearch
    from mm_feast.services.search_request import SearchRequest

    request = SearchRequest.from_dict(
        {
            "query": args.query, "mode": args.mode, "views": args.views or [], "top_k": args.k,
            "features": args.features or [], "candidates": args.candidates,
            "ranker": {"kind": args.ranker, "k": args.rrf_k},
            "filters": {
                "modalities": args.modality or [], "exclude_flagged": args.exclude_flagged,
                "start_s": args.start_s, "end_s": args.end_s,
                "where": [{"field": f, "op": op, "value": _cli_value(v)} for f, op, v in args.where or []],
            },
        }
    )
    hits = request.run(CrossModalSearch(_store(args.repo)), query)
    if args.json:
        json.dump([h.to_dict() for h in hits], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print_hits(f"{query.kind} query: {query.value} ({args.mode})", hits, sys.stdout)
    return 0


def _cli_value(text: str) -> object:
    """A --where value: a JSON number, true/false or list where it parses as one, else the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool, list)) else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm-feast", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error too (with -v: debug logging)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo media, feast apply + materialize, search")
    demo.add_argument("--repo", default="feature_repo")
    demo.add_argument("--keep", action="store_true", help="keep existing data/ (no reset)")
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser("ingest", help="scan media and compute missing embeddings offline")
    ingest.add_argument("--repo", default="feature_repo")
    ingest.add_argument("--views", nargs="*", help="only these embedding views")
    ingest.set_defaults(func=cmd_ingest)

    search = sub.add_parser("search", help="cross-modal search with text or a media file")
    search.add_argument("query", help="text, or a path to an image/audio/video/text file (a path that names no file is an error)")
    search.add_argument("--repo", default="feature_repo")
    forced = search.add_mutually_exclusive_group()
    forced.add_argument("--text", action="store_true", help="QUERY is text, even if it looks like a path")
    forced.add_argument("--kind", choices=["text", "image", "audio", "video"], help="force the query kind")
    search.add_argument("--views", nargs="*", help="embedding views to search (default: all that fit)")
    search.add_argument("--modality", nargs="*", help="only views of these media modalities")
    search.add_argument("-k", type=_positive_int, default=10, help="top-k")
    search.add_argument("--features", nargs="*", help="Feast features to join, e.g. video_embeddings:caption")
    search.add_argument("--exclude-flagged", action="store_true", help="leave out items a content filter flagged")
    search.add_argument("--mode", choices=["vector", "keyword", "hybrid"], default="vector",
                        help="vector (embeddings), keyword (BM25 on full-text fields) or hybrid (both, fused)")
    search.add_argument("--ranker", choices=["rrf", "weighted"], default="rrf", help="how hybrid fuses its two paths")
    search.add_argument("--rrf-k", type=_positive_int, default=60, help="k of RRF, 1/(k+rank)")
    search.add_argument("--candidates", type=_positive_int, help="hits per path before hybrid fusion (default 3 x k)")
    search.add_argument("--start-s", type=float, help="only segments starting at or after this second")
    search.add_argument("--end-s", type=float, help="only segments starting at or before this second")
    search.add_argument("--where", nargs=3, action="append", metavar=("FIELD", "OP", "VALUE"),
                        help="condition on a stored field, e.g. --where modality == image (repeatable)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(func=cmd_search)
    register_lineage_commands(sub)  # lineage, impacted, versions
    register_quality_commands(sub)  # validate, quarantine list|show|release
    register_safety_commands(sub)  # safety scan
    register_bias_commands(sub)  # bias
    register_explain_commands(sub)  # explain
    register_serve_commands(sub)  # serve
    _add_to_subcommands(parser, "--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_to_subcommands(parser: argparse.ArgumentParser, *flags: str, **kwargs: object) -> None:
    """Accept a global flag after any (nested) sub-command too: `mm-feast search X --debug`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in dict.fromkeys(action.choices.values()):
                subparser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]
                _add_to_subcommands(subparser, *flags, **kwargs)


def user_error_exit_code(exc: BaseException) -> Optional[int]:
    """The exit code of an error the user can act on; None for an unexpected one (a bug).

    Looked up in the modules already loaded: an error of the tree was raised only if its module
    is, and importing the tree (it imports Feast) would cost seconds on every error.
    """
    errors = sys.modules.get("mm_feast.core.errors")
    if errors is not None:
        code = errors.user_error_exit_code(exc)
        if code is not None:
            return code
    feast_errors = sys.modules.get("feast.errors")
    if feast_errors is not None and isinstance(exc, feast_errors.FeastError):
        return 2
    media = sys.modules.get("mm_feast.media.base")
    if media is not None and isinstance(exc, media.MediaError):  # names the file and the reason
        return 2
    return None


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or "(no message)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(args.debug)
    # Feast's own Milvus config class warns on import, on every command; it is not the user's to fix.
    warnings.filterwarnings("ignore", message='Field name "vector_enabled"', category=UserWarning)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        sys.stderr.write("mm-feast: interrupted\n")
        return 130
    except Exception as exc:
        code = user_error_exit_code(exc)
        if code is None:
            raise  # not an error mm-feast raises on purpose: a bug, keep its traceback
        sys.stdout.flush()
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"mm-feast: error: {_one_line(exc)}\n")
        return code


if __name__ == "__main__":
    sys.exit(main())
