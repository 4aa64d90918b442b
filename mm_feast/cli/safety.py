"""`mm-feast safety scan PATH...`: the content filters' verdict on files, before anything ingests
them. Exits 1 when any file is blocked, so it can gate a pipeline or a pre-commit hook."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO


def print_verdicts(verdicts: list[Any], out: TextIO) -> None:
    width = max((len(v.uri) for v in verdicts), default=0)
    for v in verdicts:
        out.write(f"{v.verdict.upper():<6} {v.uri:<{width}}\n")
        for finding in v.findings:
            if finding.level != "allow":
                out.write(f"       {finding.level:<5} {finding.filter} at {finding.locator} (score {finding.score:g}): {finding.reason}\n")
    counts = {level: sum(1 for v in verdicts if v.verdict == level) for level in ("allow", "flag", "block")}
    out.write(f"{len(verdicts)} file(s): {counts['allow']} allowed, {counts['flag']} flagged, {counts['block']} blocked\n")


def _files(paths: list[str]) -> list[Path]:
    """Files named, and the files under directories named (hidden ones skipped)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        else:
            out.append(path)  # a missing file is reported as blocked, with the reason
    return out


def cmd_safety_scan(args: argparse.Namespace) -> int:
    from mm_feast.governance.scan import scan_file
    from mm_feast.governance.thresholds import load_thresholds

    thresholds = load_thresholds(Path(args.repo) if args.repo else None)
    verdicts = [scan_file(path, thresholds) for path in _files(args.paths)]
    if args.json:
        json.dump([{k: v for k, v in verdict.as_dict().items() if k in ("uri", "verdict", "reasons", "findings")}
                   for verdict in verdicts], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_verdicts(verdicts, sys.stdout)
    return 1 if any(v.verdict == "block" for v in verdicts) else 0


def register_cli(sub: Any) -> None:
    safety = sub.add_parser("safety", help="content filters on text, images, audio and video")
    commands = safety.add_subparsers(dest="safety_command", required=True)
    scan = commands.add_parser("scan", help="verdict (allow/flag/block), reasons and locators per file; exit 1 if any is blocked")
    scan.add_argument("paths", nargs="+", help="files or directories")
    scan.add_argument("--repo", default=None, help="a repo whose safety/thresholds.yaml to use (default: built-in thresholds)")
    scan.add_argument("--json", action="store_true", help="one object per file: uri, verdict, reasons, findings")
    scan.set_defaults(func=cmd_safety_scan)
