"""Readable terminal output for search hits and ingest run summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, TextIO

from mm_feast.services.search import Hit
from mm_feast.stores.quarantine import load_records


def print_hits(title: str, hits: Sequence[Hit], out: TextIO) -> None:
    out.write(f"\n{title}\n")
    for rank, hit in enumerate(hits, 1):
        label = hit.fields.get("text") or hit.fields.get("caption") or ""
        out.write(
            f"  {rank:2d}. {hit.score:6.3f}  {hit.view:<24} {hit.entity_key:<28} {hit.where():<18} {label[:50]}\n"
        )
        for ref, value in hit.features.items():
            out.write(f"        {ref} = {value}\n")


def all_runs(repo: Path) -> list[dict]:
    """Every recorded run summary of every source, oldest first (data/runs/*.jsonl)."""
    runs = []
    for path in sorted((Path(repo) / "data" / "runs").glob("*.jsonl")):
        runs.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return sorted(runs, key=lambda r: r["at"])


def latest_runs(repo: Path) -> list[dict]:
    """The last run summary of every source."""
    return list({r["source"]: r for r in all_runs(repo)}.values())


def print_summaries(repo: Path, out: TextIO, since: Optional[str] = None) -> None:
    """Per source, its first run recorded since ``since`` (ISO time), or else its latest run."""
    if since:  # the first run of each source since then is the one that did the work
        first = {r["source"]: r for r in reversed(all_runs(repo)) if r["at"] >= since}
        runs = [first[name] for name in sorted(first)]
        title = "first ingest run of each source since the start"
    else:
        runs, title = latest_runs(repo), "latest ingest run of each source"
    out.write(f"\n{title.capitalize()} (seen = ingested + unchanged + quarantined):\n")
    for s in runs:
        out.write(
            f"  {s['source']:<36} seen={s['seen']:<3} ingested={s['ingested']:<3} unchanged={s['unchanged']:<3}"
            f" quarantined={s['quarantined']:<3} segments={s['segments']}\n"
        )
    records = load_records(Path(repo))
    if not records.empty:
        out.write("Quarantined files:\n")
        for row in records.drop_duplicates(["uri", "reason"]).itertuples():
            out.write(f"  {row.uri}: {row.reason}\n")
