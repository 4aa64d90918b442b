"""`mm-feast bias --repo R`: the repo's bias checks (``bias/checks.yaml``) on the served model
version of each view, or on ``--model-version``; prints each check and writes an HTML report with
a PNG plot. Exits 1 when a check goes over the release limit, so it can gate a pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO


def print_results(results: list[Any], limit: float, out: TextIO) -> None:
    for r in results:
        mark = "OVER " if r.over(limit) else "ok   "
        groups = ", ".join(f"{name} {size}" for name, size in r.group_sizes.items())
        out.write(f"{mark}{r.check.name}: view {r.check.view}@{r.model_version}  d={r.weat.effect_size:+.3f}"
                  f"  p={r.weat.p_value:.4f}  (groups: {groups}; limit |d| <= {limit})\n")
        for row in r.skew:
            shares = ", ".join(f"{g} {share:.0%} (x{share / r.collection_share[g]:.2f})" for g, share in row.top_share.items())
            out.write(f"       skew {row.query!r}: {shares}\n")


def cmd_bias(args: argparse.Namespace) -> int:
    from mm_feast.governance.bias_checks import load_bias_config
    from mm_feast.services.bias import run_checks
    from mm_feast.services.bias_report import write_report
    from mm_feast.stores.lineage import open_store

    store = open_store(Path(args.repo).resolve())
    config = load_bias_config(Path(store.repo_path))
    results = run_checks(store, view=args.view, model_version=args.model_version, config=config)
    out_dir = Path(args.out).resolve() if args.out else Path(store.repo_path) / "data" / "bias"
    page = write_report(results, config, out_dir)
    if args.json:
        json.dump([{"check": r.check.name, "view": r.check.view, "model_version": r.model_version,
                    "effect_size": r.weat.effect_size, "p_value": r.weat.p_value, "over_limit": r.over(config.max_effect_size),
                    "group_sizes": r.group_sizes, "collection_share": r.collection_share,
                    "skew": [{"query": s.query, "top_share": s.top_share} for s in r.skew]} for r in results],
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_results(results, config.max_effect_size, sys.stdout)
        sys.stdout.write(f"report: {page}\n")
    return 1 if any(r.over(config.max_effect_size) for r in results) else 0


def register_cli(sub: Any) -> None:
    bias = sub.add_parser("bias", help="measure bias in the joint embedding space (bias/checks.yaml); HTML report")
    bias.add_argument("--repo", default="feature_repo")
    bias.add_argument("--view", help="only the checks of this view")
    bias.add_argument("--model-version", help="measure this model version instead of the served one")
    bias.add_argument("--out", help="report directory (default: <repo>/data/bias)")
    bias.add_argument("--json", action="store_true", help="machine-readable results")
    bias.set_defaults(func=cmd_bias)
