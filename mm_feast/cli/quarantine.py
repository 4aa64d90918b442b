"""`mm-feast quarantine list|show|release`: what the pipeline held back, why, and letting it back in."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mm_feast.services.quarantine import release
from mm_feast.stores.quarantine import Entry, entries, find


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
        from mm_feast.stores.lineage import open_store

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
