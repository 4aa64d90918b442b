"""Quarantine: what the pipeline held back, why, and how a user lets it back in.

The records live in the registry's database beside lineage (``mm_quarantine``, SQLite or
PostgreSQL, see ``mm_feast.stores.lineage``): every ingest or push run appends one row per
failure, with the failed expectation names, observed values and the source locator. An item
stays quarantined for its content hash: later runs count it as quarantined without decoding it
again, until the file changes (new sha256), the model changes (for model-stage failures) or a
user releases it. Releasing marks its records released (they stay, as the archive, with the
release) and logs the release in ``mm_quarantine_releases``:

* ``release ID`` (retry): the next ingest tries the item again under the current suites, e.g.
  after a suite was relaxed or a decoder fixed. Pushed rows are re-validated and written now.
* ``release ID --admit``: the expectations that failed become warnings for this item and this
  content hash only, so it is ingested (or written) despite them; the override is recorded in
  the run's validation report. Any other blocking failure quarantines it again.

The payloads of pushed rows (data, not records) stay in ``data/quarantine/push/<view>.parquet``.
Quarantine parquet files of older versions (``data/quarantine/*.parquet``, ``released/``,
``releases.jsonl``) are imported into the tables on first use, then deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pandas as pd
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from mm_feast.stores.lineage import LineageDB, quarantine_imports_table, quarantine_releases_table, quarantine_table

logger = logging.getLogger(__name__)

QUARANTINE_DIR = Path("data") / "quarantine"
RELEASED_DIR = "released"  # older versions: parquet archive, imported on first use
RELEASES = "releases.jsonl"  # older versions: the release log, imported on first use
PUSH_PAYLOADS = "push"
#: Stages whose verdict depends on the model: a new model version retries the item.
MODEL_STAGES = frozenset({"encode", "embedding_gate", "push_gate"})
#: Stages at which ingest holds an item back; scan/erased records are kept by their own rules.
HELD_STAGES = frozenset({"read", "decode", "media_gate", "content_filter", "encode", "embedding_gate"})


def quarantine_id(source: str, item_id: str, sha256: str) -> str:
    """Stable short id of one quarantined thing: same source, item and content → same id."""
    return hashlib.sha256(f"{source}|{item_id}|{sha256}".encode()).hexdigest()[:12]


def quarantine_dir(repo_path: Path) -> Path:
    return Path(repo_path) / QUARANTINE_DIR


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


RECORD_COLUMNS = ("run_id", "source", "item_id", "uri", "sha256", "modality", "stage", "reason", "at",
                  "expectations", "observed", "locator", "model_version")
RELEASE_COLUMNS = ("release_mode", "released_at", "release_note")

_imported: set[tuple[str, str]] = set()
_import_lock = threading.Lock()


def _db(repo_path: Optional[Path]) -> LineageDB:
    """The repo's database, with any quarantine parquet of an older version imported first."""
    db = LineageDB.for_repo(repo_path)
    key = (str(db.engine.url), db.project)
    with _import_lock:
        if key not in _imported and repo_path is not None:
            _import_parquet(Path(repo_path), db)
        _imported.add(key)
    return db


def _legacy_files(repo_path: Path) -> list[tuple[Path, str]]:
    """(file, kind) of an older version's quarantine: open records, released ones, the release log."""
    folder = quarantine_dir(repo_path)
    found = [(p, "open") for p in sorted(folder.glob("*.parquet"))]
    found += [(p, "released") for p in sorted((folder / RELEASED_DIR).glob("*.parquet"))]
    found += [(folder / RELEASES, "releases")] if (folder / RELEASES).is_file() else []
    return [(p, kind) for p, kind in found if not p.name.endswith(".tmp.parquet")]


def _import_parquet(repo_path: Path, db: LineageDB) -> None:
    """Import each legacy file in one transaction with a marker row keyed by the file's content,
    then delete the file. Two processes importing at once: the second's marker insert conflicts
    and rolls back, so nothing is imported twice; a kill before the commit imports nothing, and
    the file is still there for the next run."""
    for path, kind in _legacy_files(repo_path):
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:  # another process imported and deleted it just now
            continue
        try:
            with db.engine.begin() as conn:
                conn.execute(quarantine_imports_table.insert(), [{
                    "project": db.project, "file_sha256": digest, "path": str(path), "at": datetime.now(timezone.utc)}])
                if kind == "releases":
                    releases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                    if releases:
                        conn.execute(quarantine_releases_table.insert(), [_release_row(db.project, r) for r in releases])
                else:
                    rows = _rows(db.project, pd.read_parquet(path).to_dict("records"), released=kind == "released")
                    if rows:
                        conn.execute(quarantine_table.insert(), rows)
        except IntegrityError:  # imported already, by another process or before a kill
            pass
        path.unlink(missing_ok=True)  # the records are in the database now (and an erasure reaches them there)
        logger.info("imported the quarantine file %s into the database", path)


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _rows(project: str, records: Sequence[Mapping[str, Any]], released: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "project": project,
            **{c: _text(r.get(c)) for c in RECORD_COLUMNS if c != "at"},
            "at": _utc(r["at"]).to_pydatetime(),
            "released": int(released),
            **{c: _text(r.get(c)) for c in RELEASE_COLUMNS},
        }
        for r in records
    ]


def _insert(db: LineageDB, records: Sequence[Mapping[str, Any]]) -> int:
    rows = _rows(db.project, records)
    if rows:
        with db.engine.begin() as conn:
            conn.execute(quarantine_table.insert(), rows)
    return len(rows)


def append_records(repo_path: Optional[Path], records: Sequence[Mapping[str, Any]]) -> int:
    """Store a run's quarantine records; returns how many were new. The same file failing the same
    way again while still open (same source, item, uri, sha256, stage and reason) is one record."""
    if not records:
        return 0
    db = _db(repo_path)
    t = quarantine_table
    sources = sorted({str(r["source"]) for r in records})
    with db.engine.connect() as conn:
        seen = set(conn.execute(
            select(t.c.source, t.c.item_id, t.c.uri, t.c.sha256, t.c.stage, t.c.reason)
            .where(t.c.project == db.project, t.c.source.in_(sources), t.c.released == 0)
        ).tuples())
    new, keys = [], set()
    for r in records:
        key = (str(r["source"]), str(r["item_id"]), str(r["uri"]), str(r["sha256"]), str(r["stage"]), str(r["reason"]))
        if key not in seen and key not in keys:
            keys.add(key)
            new.append(r)
    return _insert(db, new)


def load_records(repo_path: Path, source: Optional[str] = None, released: bool = False) -> pd.DataFrame:
    """Quarantine records (all runs) with their ``qid``: the open ones, or the released archive."""
    db = _db(repo_path)
    t = quarantine_table
    columns = [t.c[c] for c in RECORD_COLUMNS + (RELEASE_COLUMNS if released else ())]
    query = select(*columns).where(t.c.project == db.project, t.c.released == int(released)).order_by(t.c.id)
    if source:
        query = query.where(t.c.source == source)
    with db.engine.connect() as conn:
        records = pd.DataFrame(conn.execute(query).mappings().all())
    if records.empty:
        return pd.DataFrame()
    records["at"] = records["at"].map(_utc)
    records["qid"] = [quarantine_id(s, i, h) for s, i, h in zip(records["source"], records["item_id"], records["sha256"])]
    return records


def _release_row(project: str, release: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "project": project,
        "qid": str(release.get("qid") or quarantine_id(release["source"], release["item_id"], release["sha256"])),
        "source": str(release["source"]), "item_id": str(release["item_id"]), "sha256": str(release["sha256"]),
        "mode": str(release["mode"]), "expectations_json": json.dumps(list(release.get("expectations") or [])),
        "note": str(release.get("note", "")), "at": str(release.get("at") or datetime.now(timezone.utc).isoformat()),
    }


def release(repo_path: Path, source: str, item_id: str, sha256: str, record: Mapping[str, Any]) -> int:
    """Mark the open records of one item's content released (they stay as the archive) and log
    the release, in one transaction; returns the records released (0: someone released it first,
    and nothing is logged)."""
    db = _db(repo_path)
    t = quarantine_table
    with db.engine.begin() as conn:
        moved = conn.execute(
            update(t)
            .where(t.c.project == db.project, t.c.source == source, t.c.item_id == item_id, t.c.sha256 == sha256,
                   t.c.released == 0)
            .values(released=1, release_mode=str(record["mode"]), released_at=str(record["at"]),
                    release_note=str(record.get("note", "")))
        )
        count = int(moved.rowcount or 0)
        if count:
            conn.execute(quarantine_releases_table.insert(), [_release_row(db.project, record)])
    return count


def load_releases(repo_path: Path) -> list[dict[str, Any]]:
    db = _db(repo_path)
    t = quarantine_releases_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.project == db.project).order_by(t.c.id)).mappings().all()
    return [{"qid": r["qid"], "source": r["source"], "item_id": r["item_id"], "sha256": r["sha256"], "mode": r["mode"],
             "expectations": json.loads(r["expectations_json"]), "note": r["note"], "at": r["at"]} for r in rows]


def redact(repo_path: Path, sha256s: Sequence[str], uris: Sequence[str], replacement: str) -> int:
    """Replace the uri and locator of every record of these contents or files (an erasure)."""
    if not sha256s and not uris:
        return 0
    db = _db(repo_path)
    t = quarantine_table
    match = or_(t.c.sha256.in_(list(sha256s)), t.c.uri.in_(list(uris)))
    with db.engine.begin() as conn:
        done = conn.execute(update(t).where(and_(t.c.project == db.project, match)).values(uri=replacement, locator=replacement))
    return int(done.rowcount or 0)


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
        raise NotFound(f"no quarantine entry {qid!r} in the quarantine tables of {repo_path}")
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


