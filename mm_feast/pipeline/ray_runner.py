"""Runs the same stage list as :class:`~mm_feast.pipeline.runner.LocalRunner`, on a Ray cluster.

Where each stage runs follows its ``runs_on``:
- ``"cpu"`` stages (decoding) run as Ray CPU tasks, any number at once;
- ``"model"`` stages (encoding) run in a pool of actors, each of which loads its encoder once
  (``num_gpus`` per actor configurable), and take a whole chunk of items per call;
- ``"driver"`` stages (the gates, the content filter, anything that reads or writes the run's
  databases) and every "batch" stage run in the driver, as they do locally.

A chunk's remote stages are chained by object references, so decoded frames go from the task to
the actor through Ray's object store, never through the driver. Results are collected in chunk
order (the output is the local runner's, row for row) with a bounded number of chunks in flight.
Only the driver writes: the spool per chunk, then the offline parquet, lineage and the online
store's upserts, as in a local run. Every wait has a deadline (``task_timeout_s``).

A local Ray (no ``address``) is started for the run and listens on 127.0.0.1 only: Ray resolves
127.0.0.1 to the machine's address and binds every interface unless told it is a one-machine
cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ``ray`` is first imported).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

from mm_feast.core.errors import UserError
from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.runner import StageRunner, run_chain
from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, Work
from mm_feast.sources import EmbeddingSource

logger = logging.getLogger(__name__)

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's node address is 127.0.0.1


@dataclass(frozen=True)
class RayOptions:
    """How the pipeline uses Ray (the ``batch_engine`` settings of ``MmRayComputeEngine``)."""

    address: Optional[str] = None  # a running cluster ("auto", "host:port"); None starts a local one
    num_cpus: Optional[int] = None  # for a local start: CPUs it may use (None: all)
    encode_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    cpus_per_decode_task: float = 1.0
    chunks_in_flight: Optional[int] = None  # None: two per actor, plus one
    task_timeout_s: float = 600.0  # the longest wait for one chunk's remote stages
    # An autoscaling cluster (KubeRay, minReplicas 0): what it lacks now is asked of its
    # autoscaler, not refused; task_timeout_s then bounds the wait for the new nodes.
    autoscaling: bool = False


def connect(options: RayOptions) -> bool:
    """Connect to the cluster, or start a local one on 127.0.0.1; True if this call started it."""
    if options.address is None:
        if "ray" in sys.modules and os.environ.get(LOOPBACK_ENV) != "0":
            logger.warning("ray was imported before %s=0 was set: a local Ray may listen on every interface", LOOPBACK_ENV)
        os.environ.setdefault(LOOPBACK_ENV, "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network here, and none wanted
    import ray

    if ray.is_initialized():
        return False
    common = {"logging_level": logging.WARNING, "configure_logging": True, "log_to_driver": True}
    if options.address is None:
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, **common)
    else:
        ray.init(address=options.address, **common)
    return True


@dataclass(frozen=True)
class DecodeFacts:
    """The encoder facts decoding needs (``segmentation_for`` reads the sample rate), so a decode
    task never loads a model."""

    sample_rate: Optional[int] = None
    device: str = "cpu"


@dataclass(frozen=True)
class RemoteRun:
    """What a worker needs to rebuild the run's ``SourceRun`` (locks, caches and the gate stay in
    the driver)."""

    source: EmbeddingSource
    repo_path: Optional[Path]
    run_id: str
    batch_size: int
    now: datetime

    def source_run(self, encoder: Any) -> SourceRun:
        context = RunContext(self.repo_path, run_id=self.run_id, batch_size=self.batch_size, show_progress=False)
        return SourceRun(self.source, encoder, gate=None, context=context, now=self.now)


Carried = tuple[list[Work], list[Quarantined], int, dict[str, float]]  # kept, quarantined so far, encoder calls, stage seconds


def run_remote_stages(stages: Sequence[Stage], carried: Carried, spec: RemoteRun, encoder: Any) -> Carried:
    works, quarantined, calls, seconds = carried
    before = getattr(encoder, "calls", 0)
    run = spec.source_run(encoder)
    run.add_seconds(seconds)
    kept, refused = run_chain(stages, works, run)
    return kept, quarantined + refused, calls + getattr(encoder, "calls", 0) - before, run.stage_seconds


def decode_chunk(stages: Sequence[Stage], carried: Carried, spec: RemoteRun, facts: DecodeFacts) -> Carried:
    """A Ray CPU task: the chunk's "cpu" stages."""
    return run_remote_stages(stages, carried, spec, facts)


class EncoderActor:
    """A Ray actor: one encoder, loaded once, that runs the "model" stages of chunk after chunk."""

    def __init__(self, source: EmbeddingSource, version: str):
        self.encoder = source.encoder()  # its encoder, or its generator with the text encoder
        if self.encoder.version != version:  # other weights or code on this worker: never mix them
            raise RuntimeError(f"the worker's {source.model_id} is version {self.encoder.version}, the driver's is {version}")
        self.encoder.load_weights()  # one load per actor, before its first chunk (the driver loads none)

    def run(self, stages: Sequence[Stage], carried: Carried, spec: RemoteRun) -> Carried:
        return run_remote_stages(stages, carried, spec, self.encoder)


def last_line(error: BaseException) -> str:
    """The last line of a Ray error's text: the worker's exception, without its traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def placement_groups(stages: Sequence[Stage]) -> list[tuple[str, list[Stage]]]:
    """Consecutive stages that run in the same place, in order: [("driver", [...]), ("cpu", [...]), ...]."""
    groups: list[tuple[str, list[Stage]]] = []
    for stage in stages:
        if groups and groups[-1][0] == stage.runs_on:
            groups[-1][1].append(stage)
        else:
            groups.append((stage.runs_on, [stage]))
    return groups


class RayRunner(StageRunner):
    """The stage list on Ray. ``close()`` ends the actors, and the cluster if this runner started it."""

    def __init__(self, options: RayOptions, chunk_items: int = 32):
        self.options = options
        self.chunk_items = max(1, int(chunk_items))
        self._started: Optional[bool] = None
        self._actors: dict[tuple[str, str, str], list[Any]] = {}  # (generator, model, version) -> actors

    def _ray(self) -> Any:
        if self._started is None:
            self._started = connect(self.options)
            self._check_resources()
        import ray

        return ray

    def _check_resources(self) -> None:
        """Refuse settings the cluster cannot place: the actors would hold every CPU and the decode
        tasks would wait for ever. An autoscaling cluster is asked for them instead."""
        import ray

        total = ray.cluster_resources()
        cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
        o = self.options
        actor = {"CPU": o.cpus_per_actor, **({"GPU": o.gpus_per_actor} if o.gpus_per_actor else {})}
        bundles = [actor] * o.encode_actors + [{"CPU": o.cpus_per_decode_task}]
        if o.autoscaling:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)  # held until the next request: scale-up starts now, not at the first task
            logger.info("asked the Ray autoscaler for %s (the cluster has %g CPUs, %g GPUs now)", bundles, cpus, gpus)
            return
        need_cpus = sum(bundle["CPU"] for bundle in bundles)
        if need_cpus > cpus:
            raise UserError(
                f"the Ray cluster has {cpus:g} CPUs; {o.encode_actors} encode actors x {o.cpus_per_actor:g} CPUs plus one "
                f"decode task x {o.cpus_per_decode_task:g} CPUs need {need_cpus:g}: lower encode_actors or cpus_per_actor"
                " (or set autoscaling: true on a cluster whose autoscaler adds nodes)"
            )
        if sum(bundle.get("GPU", 0.0) for bundle in bundles) > gpus:
            raise UserError(f"the Ray cluster has {gpus:g} GPUs; {o.encode_actors} encode actors x "
                            f"{o.gpus_per_actor:g} GPUs do not fit (set autoscaling: true if its autoscaler adds GPU nodes)")

    def _pool(self, source: EmbeddingSource, version: str) -> list[Any]:
        """The actors of this source's model. Pools of other models are ended first when the
        cluster cannot hold both beside a decode task: idle actors holding every CPU would leave
        the decode tasks waiting for ever."""
        key = (source.generator or "", source.model_id, version)
        if key not in self._actors:
            ray = self._ray()
            o = self.options
            total = ray.cluster_resources()
            spare_cpus = float(total.get("CPU", 0)) - o.cpus_per_decode_task
            spare_gpus = float(total.get("GPU", 0))
            per_pool = (o.encode_actors * o.cpus_per_actor, o.encode_actors * o.gpus_per_actor)
            while self._actors and ((len(self._actors) + 1) * per_pool[0] > spare_cpus
                                    or (len(self._actors) + 1) * per_pool[1] > spare_gpus):
                self._end_pool(next(iter(self._actors)))
            actor_class = ray.remote(num_cpus=o.cpus_per_actor, num_gpus=o.gpus_per_actor)(EncoderActor)
            self._actors[key] = [actor_class.remote(source, version) for _ in range(o.encode_actors)]
        else:  # most recently used last: the first one is the one to end
            self._actors[key] = self._actors.pop(key)
        return self._actors[key]

    def _end_pool(self, key: tuple[str, str, str]) -> None:
        import ray

        for actor in self._actors.pop(key):
            ray.kill(actor)

    def stream(self, stages: Sequence[Stage], works: list[Work], run: SourceRun) -> tuple[list[Work], list[Quarantined]]:
        if not works:  # nothing to do: no cluster to connect to, no model to load
            return [], []
        ray = self._ray()
        o = self.options
        spec = RemoteRun(run.source, run.context.repo_path, run.context.run_id, run.context.batch_size, run.now)
        facts = DecodeFacts(getattr(run.encoder, "sample_rate", None))
        groups = placement_groups(stages)
        pool = self._pool(run.source, run.encoder.version) if any(p == "model" for p, _ in groups) else []
        decode = ray.remote(num_cpus=o.cpus_per_decode_task)(decode_chunk)
        in_flight = o.chunks_in_flight or 2 * max(1, len(pool)) + 1
        chunks = [works[k : k + self.chunk_items] for k in range(0, len(works), self.chunk_items)]
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        calls = 0
        pending: deque[tuple[int, int, Any]] = deque()

        def collect() -> None:
            nonlocal calls
            size, counted, carried = pending.popleft()
            done, refused, chunk_calls, seconds = self._get(ray, carried)
            calls += chunk_calls
            run.add_seconds(seconds)
            run.chunk_done(done, refused)
            run.advance(size - counted)  # driver stages advanced for the items they refused
            kept.extend(done)
            quarantined.extend(refused)

        for index, chunk in enumerate(chunks):
            carried: Any = (chunk, [], 0, {})
            counted = 0
            for placement, group in groups:
                if placement == "driver":  # with the run's own context and gate (its seconds count there)
                    done, refused, chunk_calls, seconds = self._get(ray, carried)
                    done, refused_here = run_chain(group, done, run)
                    counted += len(refused_here)
                    carried = (done, refused + refused_here, chunk_calls, seconds)
                elif placement == "cpu":
                    carried = decode.remote(group, carried, spec, facts)
                else:
                    carried = pool[index % len(pool)].run.remote(group, carried, spec)
            pending.append((len(chunk), counted, carried))
            while len(pending) >= in_flight:
                collect()
        while pending:
            collect()
        run.remote_encoder_calls += calls
        return kept, quarantined

    def _get(self, ray: Any, carried: Any) -> Carried:
        """A chunk's result. On a timeout or a dead actor every pool is ended (queued chunks would
        hold the actors, and the next view starts fresh ones) and the error names what happened."""
        if not isinstance(carried, ray.ObjectRef):
            return carried
        try:
            return ray.get(carried, timeout=self.options.task_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self._end_pools()
            raise UserError(f"a chunk's remote stages did not finish within {self.options.task_timeout_s:.0f} s "
                            "(task_timeout_s): is the Ray cluster short of CPUs or GPUs?") from None
        except ray.exceptions.RayActorError as exc:
            self._end_pools()
            raise UserError(f"an encode actor could not start or died: {last_line(exc)}") from None
        except ray.exceptions.RayTaskError as exc:  # the stage's own error, raised as itself
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise UserError(f"a Ray task failed: {last_line(exc)}") from None

    def _end_pools(self) -> None:
        for key in list(self._actors):
            self._end_pool(key)

    def close(self) -> None:
        if self._started is None:
            return
        import ray

        self._end_pools()
        if self._started:
            ray.shutdown()
        self._started = None
