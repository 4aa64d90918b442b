"""`mm-feast`: commands beside Feast's own verbs (demo, ingest, search, lineage, quality)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from mm_feast.lineage.cli import register_commands as register_lineage_commands
from mm_feast.quality.cli import register_cli as register_quality_commands


def _store(repo: str):
    from mm_feast.lineage.db import open_store  # resolves a relative SQLite registry URL

    return open_store(repo)


def cmd_demo(args: argparse.Namespace) -> int:
    from mm_feast.demo import run_demo

    run_demo(Path(args.repo), reset=not args.keep)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Bring every embedding source of the repo up to date (what materialize does first)."""
    from mm_feast.ingest import ensure_embeddings, scan_media
    from mm_feast.report import print_summaries
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
    from mm_feast.report import print_hits
    from mm_feast.search import CrossModalSearch, Query

    search = CrossModalSearch(_store(args.repo))
    query = Query.parse(args.query, kind=args.kind)
    hits = search.search(query, views=args.views, top_k=args.k, features=args.features, modalities=args.modality)
    if args.json:
        json.dump([{"view": h.view, "entity_key": h.entity_key, "score": h.score, **h.fields, "features": h.features} for h in hits], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print_hits(f"{query.kind} query: {query.value}", hits, sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm-feast", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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
    search.add_argument("query", help="text, or a path to an image/audio/video file")
    search.add_argument("--repo", default="feature_repo")
    search.add_argument("--kind", choices=["text", "image", "audio", "video"], help="force the query kind")
    search.add_argument("--views", nargs="*", help="embedding views to search (default: all that fit)")
    search.add_argument("--modality", nargs="*", help="only views of these media modalities")
    search.add_argument("-k", type=int, default=10, help="top-k")
    search.add_argument("--features", nargs="*", help="Feast features to join, e.g. video_embeddings:caption")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(func=cmd_search)
    register_lineage_commands(sub)  # lineage, impacted, versions
    register_quality_commands(sub)  # validate, quarantine list|show|release
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        logging.getLogger("mm-feast").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
