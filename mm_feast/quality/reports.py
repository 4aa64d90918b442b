"""Per-run validation reports: one JSON line per run and source under ``data/quality/runs/``.

GE keeps its own full results (``data/quality/validations/``) and renders Data Docs
(``data/quality/data_docs/index.html``); this file is the compact, greppable record that ties
them to an ingest or push run and to the suite version that judged it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from mm_feast.quality.ge import Validation, docs_index, plain, quality_dir

logger = logging.getLogger(__name__)


def run_report(
    source: str,
    run_id: str,
    suite_version: str,
    suite_files: Sequence[str],
    validations: Sequence[Validation],
    overridden: Sequence[dict[str, Any]] = (),
    repo_path: Optional[Path] = None,
) -> dict[str, Any]:
    """The run's report: every validation with its failures, and what was admitted by override."""
    index = docs_index(repo_path)
    return {
        "source": source,
        "run_id": run_id,
        "at": datetime.now(timezone.utc).isoformat(),
        "suite_version": suite_version,
        "suite_files": list(suite_files),
        "success": all(v.success for v in validations),
        "validations": [v.summary() for v in validations],
        "overridden": plain(list(overridden)),
        "data_docs": str(index) if index is not None and index.exists() else "",
    }


def compact(report: dict[str, Any]) -> dict[str, Any]:
    """What goes into the run summary: per stage, rows checked, blocked and warned expectations."""
    stages = {}
    for v in report["validations"]:
        stages[v["stage"]] = {
            "rows": v["rows"],
            "blocked": sorted(f["expectation"] for f in v["failures"] if f["severity"] == "block"),
            "warned": sorted(f["expectation"] for f in v["failures"] if f["severity"] == "warn"),
            "skipped": v["skipped"],
            "seconds": v["seconds"],
        }
    return {"suite_version": report["suite_version"], "stages": stages, "data_docs": report["data_docs"]}


def write_report(repo_path: Optional[Path], report: dict[str, Any]) -> Optional[Path]:
    base = quality_dir(repo_path)
    if base is None:
        return None
    path = base / "runs" / f"{report['source']}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(report, default=str) + "\n")
    return path


def read_reports(repo_path: Path, source: Optional[str] = None) -> list[dict[str, Any]]:
    """Every stored run report (oldest first), optionally of one source."""
    base = quality_dir(repo_path)
    if base is None or not (base / "runs").is_dir():
        return []
    paths = [base / "runs" / f"{source}.jsonl"] if source else sorted((base / "runs").glob("*.jsonl"))
    out = []
    for path in paths:
        if path.is_file():
            out += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out
