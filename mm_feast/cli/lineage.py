"""`mm-feast lineage`, `mm-feast impacted` and `mm-feast versions`: lineage and model-version
commands, registered on the main parser by :func:`register_commands`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _repo(args: argparse.Namespace) -> Path:
    return Path(args.repo).resolve()


def cmd_lineage(args: argparse.Namespace) -> int:
    from mm_feast.services.lineage import lineage, print_lineage

    nodes = lineage(_repo(args), args.key, view=args.view)
    if not nodes:
        from mm_feast.core.errors import NotFound

        raise NotFound(f"no lineage record for '{args.key}' (an entity key such as 'img_red_circle#whole', or a lineage id)")
    if args.json:
        json.dump([n.to_dict() for n in nodes], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print_lineage(nodes, sys.stdout)
    return 0


def cmd_impacted(args: argparse.Namespace) -> int:
    from mm_feast.stores.lineage import open_store
    from mm_feast.services.lineage import erase, erase_verdicts, impacted, print_impact

    repo = _repo(args)
    impact = impacted(repo, args.target)
    if args.json and not args.delete:
        json.dump(
            [{"view": r.view, "kind": r.kind, "entity_key": r.entity_key, "lineage_id": r.lineage_id,
              "model_version": r.encoder.model_version, "erased": r.deleted_at is not None} for r in impact.records],
            sys.stdout, indent=1,
        )
        sys.stdout.write("\n")
    else:
        print_impact(impact, sys.stdout)
    if args.delete:
        if not impact.live():
            verdicts = erase_verdicts(repo, impact)
            sys.stdout.write("nothing live to delete" + (f"; removed {verdicts} stored content-filter verdict(s)" if verdicts else "") + "\n")
            return 0
        erasure = erase(open_store(repo), impact, reason=args.reason)
        sys.stdout.write(
            f"erased: {erasure.records} records, {erasure.offline_rows} offline rows, {erasure.online_rows} online rows"
            f" in {', '.join(erasure.views)}; audit id {erasure.erasure_id}\n"
        )
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from mm_feast.services import versions
    from mm_feast.stores.lineage import open_store

    store = open_store(_repo(args))
    if args.action == "list":
        served = versions.served_version(store, args.view)
        for v in versions.list_versions(store, args.view):
            mark = "*" if v.model_version == served else " "
            sys.stdout.write(
                f"{mark} {v.model_version}  {v.model_id:<40} rows={v.rows:<5} keys={v.keys:<5}"
                f" first={v.first_created:%Y-%m-%d %H:%M:%S}\n"
            )
        pinned = versions.pinned_version(versions.LineageDB.for_repo(_repo(args)), args.view)
        sys.stdout.write(f"served: {served} ({'pinned' if pinned else 'follows the current encoder'})\n")
        return 0
    if args.action == "serve":
        if not args.version:
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument("versions serve needs a model version (see: mm-feast versions list VIEW)")
        from mm_feast.services.bias import serve

        promotion = serve(store, args.view, args.version, args.override_reason)  # behind the bias release gate
        for check in promotion.checks:
            sys.stdout.write(f"bias check {check.check.name}: d={check.weat.effect_size:+.3f} p={check.weat.p_value:.4f}\n")
        result = promotion.switch
    else:
        result = versions.rollback(store, args.view)
    sys.stdout.write(
        f"{result.view}: {result.action} {result.from_version} -> {result.to_version}"
        f" ({result.rows_written} rows written online, {result.rows_deleted} keys removed)\n"
    )
    return 0


def register_commands(sub: Any) -> None:
    """Add the lineage, impacted and versions subcommands to the `mm-feast` parser."""
    lin = sub.add_parser("lineage", help="print the lineage tree of an entity key or lineage id, back to raw files")
    lin.add_argument("key", help="entity key (e.g. 'vid_0#t=1.000', 'txt_0') or lineage id (or an 8+ char prefix)")
    lin.add_argument("--repo", default="feature_repo")
    lin.add_argument("--view", help="only this view")
    lin.add_argument("--json", action="store_true", help="machine-readable output")
    lin.set_defaults(func=cmd_lineage)

    imp = sub.add_parser("impacted", help="list (and with --delete erase) every feature row derived from a file")
    imp.add_argument("target", help="path of a raw file, or its sha256")
    imp.add_argument("--repo", default="feature_repo")
    imp.add_argument("--delete", action="store_true", help="remove the rows online and offline; keep an audit record")
    imp.add_argument("--reason", default="right-to-erasure request", help="recorded in the audit record")
    imp.add_argument("--json", action="store_true", help="machine-readable listing")
    imp.set_defaults(func=cmd_impacted)

    ver = sub.add_parser("versions", help="list, serve or roll back the model version a view serves")
    ver.add_argument("action", choices=["list", "serve", "rollback"])
    ver.add_argument("view", help="embedding view name")
    ver.add_argument("version", nargs="?", help="model version to serve (serve only)")
    ver.add_argument("--repo", default="feature_repo")
    ver.add_argument("--override-reason", help="serve a version over the bias limit anyway; the reason is recorded")
    ver.set_defaults(func=cmd_versions)
