"""One `feast materialize` of the demo corpus written N times (default 8): wall time, scans per
media source and file opens per file, for this checkout against an older commit (the baseline:
ingest inside the offline store's read path), both measured in the same run.

    python -m benchmarks.bench_materialize [--copies 8] [--baseline 2ad8cfb]

The baseline runs from a git worktree of that commit, with the same virtualenv. Opens are counted
inside the `feast` process: Python's audit hook sees every ``open`` of a media file, and PyAV's
``av.open`` is wrapped (it opens files in C). Scans are ``MediaSource.scan`` calls.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the measured `feast` process: counts, then hands over to Feast's CLI.
PROBE = r"""
import atexit, collections, json, os, sys
media = os.path.realpath(sys.argv[1]); out = sys.argv[2]
opens, scans = collections.Counter(), collections.Counter()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(media) and not path.endswith((".csv", ".json")):
            opens[path] += 1
sys.addaudithook(hook)
import av
real_open = av.open
def counted_open(file, *a, **k):
    if isinstance(file, (str, os.PathLike)):
        path = os.path.realpath(os.fspath(file))
        if path.startswith(media):
            opens[path] += 1
    return real_open(file, *a, **k)
av.open = counted_open
from mm_feast.sources import MediaSource
real_scan = MediaSource.scan
def counted_scan(self, *a, **k):
    scans[self.name] += 1
    return real_scan(self, *a, **k)
MediaSource.scan = counted_scan
atexit.register(lambda: open(out, "w").write(json.dumps({"opens": opens, "scans": scans})))
from feast.cli.cli import cli
sys.argv = ["feast"] + sys.argv[3:]
cli()
"""


def build_repo(repo: Path, copies: int, code: Path) -> Path:
    """The demo repo with its corpus written ``copies`` times (new seeds, ids and reports)."""
    from mm_feast.cli.demo import write_demo_media

    media = repo / "data" / "media"
    media.mkdir(parents=True)
    rows: list[dict] = []
    for copy in range(copies):
        scratch = repo / "scratch" / str(copy)
        corpus = write_demo_media(scratch, seed=copy)
        shutil.move(str(corpus.manifest.parent), str(media / f"set{copy}"))
        with open(media / f"set{copy}" / "manifest.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                row["item_id"] = f"{row['item_id']}_{copy}"
                row["uri"] = f"set{copy}/{row['uri']}"
                row["report"] = f"{row['report']}_{copy}" if row["report"] else ""
                rows.append(row)
    shutil.rmtree(repo / "scratch")
    with open(media / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shutil.copy(code / "feature_repo" / "definitions.py", repo)
    yaml = (code / "feature_repo" / "feature_store.yaml").read_text()
    (repo / "feature_store.yaml").write_text(yaml)
    return repo


def measure(code: Path, repo: Path) -> dict:
    env = {"PYTHONPATH": str(code), "PATH": str(Path(sys.executable).parent), "HOME": str(Path.home())}
    feast = [sys.executable, "-c", PROBE, str(repo / "data" / "media"), str(repo / "counts.json")]
    subprocess.run([*feast, "apply"], cwd=repo, env=env, check=True, capture_output=True)
    end = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    started = time.perf_counter()
    run = subprocess.run([*feast, "materialize-incremental", end], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"materialize failed in {repo} with {code}:\n{run.stderr[-3000:]}")
    counts = json.loads((repo / "counts.json").read_text())
    opens = counts["opens"]
    return {
        "wall_s": wall,
        "scans": counts["scans"],
        "files": len(opens),
        "opens_per_file_mean": sum(opens.values()) / max(len(opens), 1),
        "opens_per_file_max": max(opens.values(), default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--baseline", default="2ad8cfb")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mm-feast-bench-materialize-"))
    old = work / "baseline-code"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), args.baseline], cwd=ROOT, check=True, capture_output=True)
    try:
        results = {
            f"baseline {args.baseline} (ingest in the offline store's read path)": measure(old, build_repo(work / "old", args.copies, old)),
            "this checkout (compute engine, one pass)": measure(ROOT, build_repo(work / "new", args.copies, ROOT)),
        }
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    print(f"feast materialize-incremental of the demo corpus x{args.copies}")
    print(f"{'path':<60} {'wall s':>7} {'scans/source':>13} {'files':>6} {'opens/file mean':>16} {'max':>4}")
    for name, r in results.items():
        scans = ", ".join(f"{k}={v}" for k, v in r["scans"].items())
        print(f"{name:<60} {r['wall_s']:>7.1f} {scans:>13} {r['files']:>6} {r['opens_per_file_mean']:>16.2f} {r['opens_per_file_max']:>4}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
