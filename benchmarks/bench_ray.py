"""The Ray runner against the local runner, on the same JPEGs and the same model, in one run.

The model is the CLIP ViT-B/32 architecture with random weights (speed only). Every path runs the
real stage chain (Segment decodes the JPEGs from disk, Encode), measured warm: the Ray actors
have loaded their model before the timed run, and the actor start is reported on its own.
Paths, interleaved so drift in the machine's load hits each alike:
- ``local``: ``LocalRunner`` (its default decode prefetch);
- ``ray, N actors``: ``RayRunner`` with N encode actors (1 CPU each) and decode tasks (1 CPU) on a
  local Ray with a logical CPU for every actor of every path, plus one for decoding (more logical
  CPUs than cores: on 2 cores that oversubscribes, which is the point of the comparison).
Also: per-stage seconds (summed over workers), the round trip of an empty Ray task and of an
empty actor call, and the overhead per chunk (Ray wall time minus local, over the chunks).

    python -m benchmarks.bench_ray [--images 128] [--batch-size 16] [--repeats 3] [--actors 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.bench_pipeline import jpeg_corpus
from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.ray_runner import LOOPBACK_ENV, RayOptions, RayRunner, connect
from mm_feast.pipeline.runner import LocalRunner, StageRunner
from mm_feast.pipeline.stage import SourceRun, Work
from mm_feast.pipeline.stages.encode import Encode
from mm_feast.pipeline.stages.segment import Segment


def round_trips(n: int = 200) -> tuple[float, float]:
    """p50 ms of an empty task and of an empty actor call (ray.get of each, one at a time)."""
    import ray

    @ray.remote(num_cpus=0)
    def noop() -> None:
        return None

    @ray.remote(num_cpus=0)
    class Echo:
        def call(self) -> None:
            return None

    echo = Echo.remote()
    ray.get([noop.remote() for _ in range(10)] + [echo.call.remote() for _ in range(10)])  # workers warm

    def p50(submit) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            ray.get(submit())
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    task_ms, actor_ms = p50(lambda: noop.remote()), p50(lambda: echo.call.remote())
    ray.kill(echo)
    return task_ms, actor_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault(LOOPBACK_ENV, "0")

    work = Path(tempfile.mkdtemp(prefix="mm-feast-bench-ray-"))
    encoder, source, rows = jpeg_corpus(work, args.images)
    bs = args.batch_size
    chunks = -(-len(rows) // bs)
    connect(RayOptions(num_cpus=sum(args.actors) + 1))  # every runner keeps its actors: room for all
    task_ms, actor_ms = round_trips()

    def timed(runner: StageRunner) -> tuple[float, dict[str, float]]:
        context = RunContext(work / "repo", batch_size=bs, show_progress=False)
        run = SourceRun(source, encoder, None, context, datetime.now(timezone.utc))
        start = time.perf_counter()
        kept, refused = runner.run([Segment(), Encode()], [Work(r) for r in rows], run)
        elapsed = time.perf_counter() - start
        assert len(kept) == len(rows) and not refused
        return elapsed, run.stage_seconds

    runners: dict[str, StageRunner] = {"local": LocalRunner(chunk_items=bs)}
    actor_start: dict[str, float] = {}
    for n in args.actors:
        name = f"ray, {n} actor{'s' if n > 1 else ''}"
        runner = RayRunner(RayOptions(encode_actors=n), chunk_items=bs)
        start = time.perf_counter()
        timed(runner)  # warm-up: actors start and load the model
        actor_start[name] = time.perf_counter() - start
        runners[name] = runner
    timed(runners["local"])
    walls: dict[str, list[float]] = {name: [] for name in runners}
    stages: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for name, runner in runners.items():
            elapsed, seconds = timed(runner)
            walls[name].append(elapsed)
            stages[name] = seconds
    import torch

    median = {name: statistics.median(v) for name, v in walls.items()}
    print(f"CLIP ViT-B/32 (random weights), {len(rows)} JPEGs 640x480, batch {bs} ({chunks} chunks), "
          f"{os.cpu_count()} cores, driver torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"empty Ray task round trip p50 {task_ms:.2f} ms, empty actor call p50 {actor_ms:.2f} ms")
    print(f"{'path':<18} {'images/s':>9} {'÷ local':>8} {'wall s':>7} {'segment s':>10} {'encode s':>9} "
          f"{'overhead/chunk ms':>18} {'first run s':>12}")
    for name, wall in median.items():
        seconds = stages[name]
        overhead = (wall - median["local"]) / chunks * 1000
        first = f"{actor_start[name]:>12.1f}" if name in actor_start else f"{'':>12}"
        print(f"{name:<18} {len(rows) / wall:>9.1f} {median['local'] / wall:>8.2f} {wall:>7.2f} "
              f"{seconds.get('segment', 0):>10.2f} {seconds.get('encode', 0):>9.2f} "
              f"{overhead if name != 'local' else 0:>18.1f} {first}")
    for runner in runners.values():
        runner.close()
    import ray

    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
