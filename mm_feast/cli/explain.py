"""`mm-feast explain --picture F --text F [--call F]`: the demo decision model's verdict on an
insurance claim, and how much each modality (and which frame, text block or audio window) drove
it, by exact Shapley values. Every input goes through the content filters first."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_explain(args: argparse.Namespace) -> int:
    from mm_feast.core.errors import InvalidArgument
    from mm_feast.governance.scan import scan_file
    from mm_feast.services.claims import embed_claim, explain

    inputs = [Path(p) for p in (args.picture, args.text, args.call) if p]
    for path in inputs:
        if not path.is_file():
            raise InvalidArgument(f"{path}: no such file")
        verdict = scan_file(path)
        if verdict.verdict == "block":
            raise InvalidArgument(f"{path}: blocked by content filter: {'; '.join(verdict.reasons)}")
    explanation = explain(embed_claim(Path(args.picture), Path(args.text), Path(args.call) if args.call else None))
    if args.json:
        json.dump(explanation.as_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(explanation.line() + "\n")
    return 0


def register_cli(sub: Any) -> None:
    exp = sub.add_parser("explain", help="decide an insurance claim with the demo model and attribute it across modalities")
    exp.add_argument("--picture", required=True, help="the damage image or video")
    exp.add_argument("--text", required=True, help="the claim text")
    exp.add_argument("--call", help="the call recording (optional)")
    exp.add_argument("--json", action="store_true", help="machine-readable explanation")
    exp.set_defaults(func=cmd_explain)
