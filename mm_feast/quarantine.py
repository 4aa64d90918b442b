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

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

logger = logging.getLogger(__name__)

QUARANTINE_DIR = Path("data") / "quarantine"
RELEASED_DIR = "released"
RELEASES = "releases.jsonl"
PUSH_PAYLOADS = "push"
#: Stages whose verdict depends on the model: a new model version retries the item.
MODEL_STAGES = frozenset({"encode", "embedding_gate", "push_gate"})
#: Stages at which ingest holds an item back; scan/erased records are kept by their own rules.
HELD_STAGES = frozenset({"read", "decode", "media_gate", "encode", "embedding_gate"})
_DETAIL_COLUMNS = ("expectations", "observed", "locator", "model_version")


def quarantine_id(source: str, item_id: str, sha256: str) -> str:
    """Stable short id of one quarantined thing: same source, item and content → same id."""
    return hashlib.sha256(f"{source}|{item_id}|{sha256}".encode()).hexdigest()[:12]


def _dir(repo_path: Path) -> Path:
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
    folder = _dir(repo_path) / RELEASED_DIR if released else _dir(repo_path)
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
    path = _dir(repo_path) / RELEASES
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
        raise NotFound(f"no quarantine entry {qid!r} in {_dir(repo_path)}")
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


def _archive(repo_path: Path, entry: Entry, release: dict[str, Any]) -> None:
    """Move the entry's records from the open table to the released archive."""
    table = _dir(repo_path) / f"{entry.source}.parquet"
    records = pd.read_parquet(table)
    ids = [quarantine_id(s, i, h) for s, i, h in zip(records["source"], records["item_id"], records["sha256"])]
    mine = pd.Series(ids, index=records.index) == entry.qid
    moved = records[mine].assign(release_mode=release["mode"], released_at=release["at"], release_note=release["note"])
    archive = _dir(repo_path) / RELEASED_DIR / f"{entry.source}.parquet"
    previous = pd.read_parquet(archive) if archive.is_file() else pd.DataFrame()
    write_table(archive, pd.concat([previous, moved], ignore_index=True) if not previous.empty else moved)
    write_table(table, records[~mine])


def push_payload_path(repo_path: Path, view: str) -> Path:
    return _dir(repo_path) / PUSH_PAYLOADS / f"{view}.parquet"


def release(repo_path: Path, qids: Sequence[str], admit: bool = False, note: str = "", store: Any = None) -> list[dict[str, Any]]:
    """Release open entries: ingest retries them on its next run; pushed rows are written again
    now, through the push gate (so ``store`` is needed for them). Returns what happened to each."""
    done = []
    for qid in qids:
        entry = find(repo_path, qid)
        if entry.status != "open":
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument(f"quarantine entry {entry.qid} ({entry.uri or entry.item_id}) is already {entry.status}")
        record = {
            "qid": entry.qid, "source": entry.source, "item_id": entry.item_id, "sha256": entry.sha256,
            "mode": "admit" if admit else "retry", "expectations": entry.expectations, "note": note,
            "at": datetime.now(timezone.utc).isoformat(),
        }
        _archive(repo_path, entry, record)
        path = _dir(repo_path) / RELEASES
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        outcome: dict[str, Any] = {"qid": entry.qid, "mode": record["mode"], "item_id": entry.item_id,
                                   "source": entry.source, "next": "retried by the next ingest run"}
        if entry.stage == "push_gate":
            outcome["next"] = _rewrite_pushed(repo_path, entry, admit, store)
        logger.info("released %s (%s, %s): %s", entry.qid, entry.item_id, record["mode"], outcome["next"])
        done.append(outcome)
    return done


def _rewrite_pushed(repo_path: Path, entry: Entry, admit: bool, store: Any) -> str:
    from mm_feast.quality.push import QID_COLUMN, gated_write_to_online_store

    from mm_feast.core.errors import InvalidArgument, NotFound

    if store is None:
        raise InvalidArgument(f"releasing pushed row {entry.qid} writes it to the online store: pass a FeatureStore")
    path = push_payload_path(repo_path, entry.source)
    payload = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=[QID_COLUMN])
    rows = payload[payload[QID_COLUMN] == entry.qid].drop(columns=[QID_COLUMN]).tail(1)
    if rows.empty:
        raise NotFound(f"pushed row {entry.qid} has no stored payload in {path}")
    result = gated_write_to_online_store(
        store, entry.source, rows, repo_path=repo_path, admit={entry.qid: set(entry.expectations)} if admit else None
    )
    return f"written={result.written} quarantined={result.quarantined}"


# ---- CLI ------------------------------------------------------------------------------------


def _repo(args: argparse.Namespace) -> Path:
    return Path(args.repo).resolve()


def _print_table(items: list[Entry], out: Any) -> None:
    if not items:
        out.write("quarantine is empty\n")
        return
    out.write(f"{'id':<12}  {'status':<8} {'source':<28} {'stage':<14} {'times':>5}  item / reason\n")
    for e in items:
        out.write(f"{e.qid:<12}  {e.status:<8} {e.source:<28} {e.stage:<14} {e.times:>5}  {e.item_id}: {e.reason[:100]}\n")


def cmd_list(args: argparse.Namespace) -> int:
    items = entries(_repo(args), args.source, include_closed=args.all)
    if args.json:
        json.dump([{k: v for k, v in asdict(e).items() if k != "history"} for e in items], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        _print_table(items, sys.stdout)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    entry = find(_repo(args), args.id)
    if args.json:
        json.dump(asdict(entry), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    for key in ("qid", "status", "source", "item_id", "uri", "sha256", "modality", "stage", "model_version", "locator", "reason"):
        out.write(f"{key:>14}: {getattr(entry, key)}\n")
    out.write(f"{'expectations':>14}: {', '.join(entry.expectations) or '-'}\n")
    for name, value in entry.observed.items():
        out.write(f"{'observed':>14}: {name} = {value!r}\n")
    out.write(f"{'history':>14}: {entry.times} record(s)\n")
    for h in entry.history:
        out.write(f"{'':>16}{h['at']}  run {h['run_id']}  {h['stage']}: {h['reason'][:100]}\n")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    repo = _repo(args)
    qids = list(args.ids)
    if args.all_open:
        qids += [e.qid for e in entries(repo, args.source)]
    if not qids:
        from mm_feast.core.errors import InvalidArgument

        raise InvalidArgument("name quarantine ids to release, or use --all-open (with --source to narrow it)")
    store = None
    if any(find(repo, q).stage == "push_gate" for q in qids):
        from mm_feast.lineage.db import open_store

        store = open_store(repo)
    for outcome in release(repo, qids, admit=args.admit, note=args.note or "", store=store):
        sys.stdout.write(f"{outcome['qid']}  {outcome['mode']:<6} {outcome['source']}/{outcome['item_id']}: {outcome['next']}\n")
    return 0


def register_cli(sub: Any) -> None:
    """Add ``quarantine list|show|release`` to the ``mm-feast`` parser."""
    quarantine = sub.add_parser("quarantine", help="inspect and release rows held back by the quality gates")
    qsub = quarantine.add_subparsers(dest="quarantine_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--repo", default="feature_repo")

    listing = qsub.add_parser("list", help="quarantined items, newest first")
    common(listing)
    listing.add_argument("--source", help="only this source or view")
    listing.add_argument("--all", action="store_true", help="include released and admitted entries")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    show = qsub.add_parser("show", help="one entry: failed expectations, observed values, locator, history")
    common(show)
    show.add_argument("id", help="quarantine id (a unique prefix is enough)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    rel = qsub.add_parser("release", help="let entries back in: retried by the next ingest, or --admit despite the failures")
    common(rel)
    rel.add_argument("ids", nargs="*", help="quarantine ids")
    rel.add_argument("--all-open", action="store_true", help="every open entry (of --source, if given)")
    rel.add_argument("--source", help="with --all-open: only this source or view")
    rel.add_argument("--admit", action="store_true", help="admit despite the failed expectations (recorded as an override)")
    rel.add_argument("--note", help="why; stored with the release")
    rel.set_defaults(func=cmd_release)
