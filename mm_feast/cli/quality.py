"""`mm-feast validate` (run the suites on demand) and the `quarantine` commands' registration.

``validate`` checks what is there now: each embedding view's media (probed headers) and its stored
offline vectors, against the repo's current suites. It changes nothing, stores the results and Data
Docs like an ingest run, and exits 1 when a blocking expectation fails, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, TextIO

logger = logging.getLogger(__name__)

STAGES = ("media", "embeddings")


def _view_sources(store: Any, names: Optional[list[str]]) -> list[tuple[Any, Any]]:
    from mm_feast.sources import EmbeddingSource

    pairs = [(v, v.batch_source) for v in store.list_feature_views() if isinstance(v.batch_source, EmbeddingSource)]
    if names:
        unknown = set(names) - {v.name for v, _ in pairs}
        if unknown:
            from mm_feast.core.errors import NotFound

            raise NotFound(f"not embedding views of this repo: {sorted(unknown)}; known: {sorted(v.name for v, _ in pairs)}")
        pairs = [(v, s) for v, s in pairs if v.name in names]
    return sorted(pairs, key=lambda p: p[0].name)


def _media_validation(source: Any, repo: Path, suite: Any, run_name: str, docs: bool) -> Any:
    import pandas as pd

    from mm_feast.quality.ge import validate
    from mm_feast.quality.media_gates import media_frame

    rows = [r for r in source.media.scan(repo, write=False) if r.modality == source.modality and not r.error]
    return validate(
        media_frame(rows, source.modality) if rows else pd.DataFrame(),
        suite.for_media(source.modality), suite_name=f"{source.name}.media", stage="media", run_name=run_name,
        repo_path=repo, variables={"max_pixels": source.segmentation.max_pixels}, data_docs=docs,
    )


def _embedding_validation(view: Any, source: Any, repo: Path, suite: Any, run_name: str, docs: bool) -> Optional[Any]:
    import pandas as pd

    from mm_feast.quality.embedding_gates import embedding_stats, load_reference
    from mm_feast.quality.ge import unique_ids, validate

    path = source.resolved_path(repo)
    vector = next((f for f in view.features if f.vector_index), None)
    if vector is None or not path.is_file():
        return None
    table = pd.read_parquet(path)
    if table.empty or vector.name not in table.columns:
        return None
    keys = table["segment_id"] if "segment_id" in table.columns else table["item_id"]
    versions = [str(v) for v in table.get("model_version", pd.Series([""] * len(table)))]
    references = {v: ref for v in set(versions) if (ref := load_reference(repo, source.name, v)) is not None}
    dim = int(vector.vector_length or 0)
    stats = embedding_stats(unique_ids([str(k) for k in keys]), list(table[vector.name]), dim, versions, references)
    return validate(stats.frame, suite.embeddings, suite_name=f"{source.name}.embeddings", stage="embeddings",
                    run_name=run_name, repo_path=repo, variables={"expected_dim": dim},
                    unavailable=stats.unavailable, data_docs=docs)


def _print_validation(v: Any, out: TextIO) -> None:
    verdict = "ok" if not v.failures else ("BLOCKED" if v.blocking else "warnings")
    skipped = f"  (skipped: {', '.join(v.skipped)})" if v.skipped else ""
    out.write(f"  {v.stage:<11} {v.rows:>6} rows  {verdict}{skipped}\n")
    for f in v.failures:
        scope = "whole batch" if f.rows is None else f"{len(f.rows)} row(s), e.g. {dict(list(f.rows.items())[:3])}"
        observed = f", observed {f.observed!r}" if f.rows is None else ""
        out.write(f"    {f.severity:<5} {f.expectation}: {scope}{observed}; expected {f.expected}\n")


def validate_repo(repo: Path, views: Optional[list[str]] = None, stages: tuple[str, ...] = STAGES,
                  docs: bool = True, out: Optional[TextIO] = None) -> bool:
    """Run the suites of every (or the named) embedding view; True when nothing blocking failed."""
    out = out or sys.stdout
    from mm_feast.stores.lineage import open_store
    from mm_feast.quality.ge import docs_index
    from mm_feast.quality.gate import suite_for
    from mm_feast.quality.reports import run_report, write_report

    store = open_store(repo)
    run_name = "validate-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    ok = True
    for view, source in _view_sources(store, views):
        suite = suite_for(source, repo)
        out.write(f"{view.name} ({source.name}, suite {suite.version}{', ' + ', '.join(suite.files) if suite.files else ''}):\n")
        validations = []
        if "media" in stages and source.granularity == "segment":
            validations.append(_media_validation(source, repo, suite, run_name, docs))
        if "embeddings" in stages:
            found = _embedding_validation(view, source, repo, suite, run_name, docs)
            if found is None:
                out.write("  embeddings  no stored vectors yet (run `mm-feast ingest` or `feast materialize`)\n")
            else:
                validations.append(found)
        for v in validations:
            _print_validation(v, out)
        ok = ok and all(v.success for v in validations)
        if validations:
            write_report(repo, run_report(source.name, run_name, suite.version, suite.files, validations, (), repo))
    index = docs_index(repo)
    if docs and index is not None and index.exists():
        out.write(f"Data Docs: {index}\n")
    out.write("validation passed\n" if ok else "validation FAILED: a blocking expectation failed\n")
    return ok


def cmd_validate(args: argparse.Namespace) -> int:
    repo = Path(args.repo).resolve()
    if args.show_suite:
        from mm_feast.stores.lineage import open_store
        from mm_feast.quality.gate import suite_for

        for view, source in _view_sources(open_store(repo), [args.show_suite]):
            sys.stdout.write(suite_for(source, repo).to_yaml())
        return 0
    stages = tuple(args.stage) if args.stage else STAGES
    return 0 if validate_repo(repo, args.views, stages, docs=not args.no_docs) else 1


def register_cli(sub: Any) -> None:
    """Add ``validate`` and ``quarantine list|show|release`` to the ``mm-feast`` parser."""
    from mm_feast.cli.quarantine import register_cli as register_quarantine

    validate = sub.add_parser("validate", help="run the quality suites on the repo's media and stored embeddings; exit 1 on a blocking failure")
    validate.add_argument("--repo", default="feature_repo")
    validate.add_argument("--views", nargs="*", help="only these embedding views")
    validate.add_argument("--stage", nargs="*", choices=STAGES, help="only these gates (default: both)")
    validate.add_argument("--no-docs", action="store_true", help="skip rendering GE Data Docs")
    validate.add_argument("--show-suite", metavar="VIEW", help="print the effective suite of VIEW (defaults merged with the repo's YAML) and exit")
    validate.set_defaults(func=cmd_validate)
    register_quarantine(sub)
