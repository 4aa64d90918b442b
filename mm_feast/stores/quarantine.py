"""Quarantine: what the pipeline held back, why, and how a user lets it back in.

Every ingest or push run appends its records to ``data/quarantine/<source>.parquet`` (one row per
failure, with the failed expectation names, observed values and the source locator). An item
stays quarantined for its content hash: later runs count it as quarantined without decoding it
again, until the file changes (new sha256), the model changes (for model-stage failures) or a
user releases it. Releasing removes its records from the table (they move to
``data/quarantine/released/<source>.parquet``, with the release) and logs the release in
``data/quarantine/releases.jsonl``:

* ``release ID`` (retry): the next ingest tries the item again under the current suites, e.g.
  after a suite was relaxed or a decoder fixed. Pushed rows are re-validated and written now.
* ``release ID --admit``: the expectations that failed become warnings for this item and this
  content hash only, so it is ingested (or written) despite them; the override is recorded in
  the run's validation report. Any other blocking failure quarantines it again.

Releasing rewrites the source's table: do not run it while an ingest of that source is running.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

logger = logging.getLogger(__name__)

QUARANTINE_DIR = Path("data") / "quarantine"
RELEASED_DIR = "released"
RELEASES = "releases.jsonl"
PUSH_PAYLOADS = "push"
#: Stages whose verdict depends on the model: a new model version retries the item.
MODEL_STAGES = frozenset({"encode", "embedding_gate", "push_gate"})
#: Stages at which ingest holds an item back; scan/erased records are kept by their own rules.
HELD_STAGES = frozenset({"read", "decode", "media_gate", "content_filter", "encode", "embedding_gate"})
_DETAIL_COLUMNS = ("expectations", "observed", "locator", "model_version")


def quarantine_id(source: str, item_id: str, sha256: str) -> str:
    """Stable short id of one quarantined thing: same source, item and content → same id."""
    return hashlib.sha256(f"{source}|{item_id}|{sha256}".encode()).hexdigest()[:12]


def quarantine_dir(repo_path: Path) -> Path:
    return Path(repo_path) / QUARANTINE_DIR


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _tables(folder: Path, source: Optional[str]) -> list[Path]:
    if source:
        return [folder / f"{source}.parquet"]
    return sorted(p for p in folder.glob("*.parquet") if not p.name.endswith(".tmp.parquet"))  # a crashed write's leftovers


def load_records(repo_path: Path, source: Optional[str] = None, released: bool = False) -> pd.DataFrame:
    """Quarantine records (all runs) with their ``qid``: the open table, or the released archive."""
    folder = quarantine_dir(repo_path) / RELEASED_DIR if released else quarantine_dir(repo_path)
    frames = [pd.read_parquet(p) for p in _tables(folder, source) if p.is_file()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    records = pd.concat(frames, ignore_index=True)
    for column in _DETAIL_COLUMNS + (("release_mode", "released_at") if released else ()):
        if column not in records.columns:
            records[column] = ""
        records[column] = records[column].fillna("")
    records["at"] = records["at"].map(_utc)
    records["qid"] = [quarantine_id(s, i, h) for s, i, h in zip(records["source"], records["item_id"], records["sha256"])]
    return records


def load_releases(repo_path: Path) -> list[dict[str, Any]]:
    path = quarantine_dir(repo_path) / RELEASES
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Entry:
    """One quarantined item (or pushed row): its latest record, how often and whether released."""

    qid: str
    source: str
    item_id: str
    uri: str
    sha256: str
    modality: str
    stage: str
    reason: str
    expectations: list[str]
    observed: dict[str, Any]
    locator: str
    model_version: str
    run_id: str
    at: str
    times: int
    status: str  # open | released | admitted
    history: list[dict[str, Any]] = field(default_factory=list)


def _observed(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


def _entries(records: pd.DataFrame, closed: bool) -> list[Entry]:
    out = []
    if records.empty:
        return out
    for qid, group in records.sort_values("at").groupby("qid", sort=False):
        last = group.iloc[-1]
        status = ("admitted" if last["release_mode"] == "admit" else "released") if closed else "open"
        out.append(
            Entry(
                qid=str(qid), source=last["source"], item_id=last["item_id"], uri=last["uri"], sha256=last["sha256"],
                modality=last["modality"], stage=last["stage"], reason=last["reason"],
                expectations=[e for e in str(last["expectations"]).split(",") if e],
                observed=_observed(str(last["observed"])), locator=str(last["locator"]),
                model_version=str(last["model_version"]), run_id=last["run_id"], at=last["at"].isoformat(),
                times=len(group), status=status,
                history=[{"run_id": r.run_id, "at": r.at.isoformat(), "stage": r.stage, "reason": r.reason}
                         for r in group.itertuples()],
            )
        )
    return out


def entries(repo_path: Path, source: Optional[str] = None, include_closed: bool = False) -> list[Entry]:
    """Open quarantine entries, newest first; released and admitted ones too with ``include_closed``."""
    found = _entries(load_records(repo_path, source), closed=False)
    if include_closed:
        found += _entries(load_records(repo_path, source, released=True), closed=True)
    return sorted(found, key=lambda e: e.at, reverse=True)


def find(repo_path: Path, qid: str) -> Entry:
    """The entry whose id starts with ``qid`` (a unique prefix is enough); open ones first."""
    found = entries(repo_path, include_closed=True)
    ids = {e.qid for e in found if e.qid.startswith(qid)}
    from mm_feast.core.errors import InvalidArgument, NotFound  # imports Feast: only on the error path

    if not ids:
        raise NotFound(f"no quarantine entry {qid!r} in {quarantine_dir(repo_path)}")
    if len(ids) > 1:
        raise InvalidArgument(f"quarantine id {qid!r} is ambiguous: {sorted(ids)}")
    matches = [e for e in found if e.qid in ids]
    return next((e for e in matches if e.status == "open"), matches[0])


class QuarantineBook:
    """What ingest needs from the quarantine, read once per run: what to hold and what to admit."""

    def __init__(self, repo_path: Optional[Path], source: str, model_version: str = ""):
        self.held: set[tuple[str, str]] = set()
        self.overrides: dict[tuple[str, str], set[str]] = {}
        if repo_path is None:
            return
        for entry in entries(repo_path, source):
            if entry.stage in HELD_STAGES and (entry.stage not in MODEL_STAGES or entry.model_version == model_version):
                self.held.add((entry.item_id, entry.sha256))
        for rel in load_releases(repo_path):
            if rel["source"] == source and rel["mode"] == "admit":
                self.overrides.setdefault((rel["item_id"], rel["sha256"]), set()).update(rel["expectations"])

    def is_held(self, item_id: str, sha256: str) -> bool:
        return (item_id, sha256) in self.held

    def admitted(self, item_id: str, sha256: str) -> set[str]:
        """Expectation names a release --admit turned into warnings for this item's content."""
        return set(self.overrides.get((item_id, sha256), ()))


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write via a temp file and rename, so a crash leaves the previous table, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def push_payload_path(repo_path: Path, view: str) -> Path:
    return quarantine_dir(repo_path) / PUSH_PAYLOADS / f"{view}.parquet"


