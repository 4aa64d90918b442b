"""The shape every ingest stage has: a list of items in flight goes in, kept and quarantined items
come out. A failed item is data (it becomes a quarantine record), never an abort of the batch.

``scope`` says how the runner feeds a stage: ``"batch"`` stages see every item of the run at once
(a quality gate validates them in one Great Expectations call); ``"chunk"`` stages see one chunk
at a time, so decoding the next chunk (``prefetch``) overlaps encoding this one.

``runs_on`` says where a distributed runner (``mm_feast.pipeline.ray_runner``) may run a stage:
``"driver"`` when it needs the run's shared state (the gate, the databases), ``"cpu"`` when it is a
pure function of its items (decoding: any worker), ``"model"`` when it needs the encoder (a worker
that holds one). ``checkpoint`` marks the stage after which finished items are spooled to disk, so
a run killed later resumes there (``mm_feast.pipeline.checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Literal, Optional

from mm_feast.media.base import Segment
from mm_feast.pipeline.context import RunContext
from mm_feast.sources import EmbeddingSource, ManifestRow


@dataclass
class Work:
    """One item in flight: its manifest row, then its segments, then its output rows."""

    row: ManifestRow
    segments: list[Segment] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    safety: str = ""  # the content filters' verdict on the input: "allow" or "flag" ("" if none ran)
    notes: list[str] = field(default_factory=list)  # for the run summary ("flagged by ...")
    warnings: list[str] = field(default_factory=list)  # the media gate's "uri: why" lines for this item


@dataclass(frozen=True)
class Quarantined:
    """An item a stage refused, with the reason and the quality gate's details."""

    work: Work
    stage: str
    reason: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class StageOutput:
    kept: list[Work]
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass
class SourceRun:
    """What the stages of one source's ingest share: the source, its encoder and gate, the run."""

    source: EmbeddingSource
    encoder: Any
    gate: Any
    context: RunContext
    now: datetime
    progress: Optional[Any] = None  # a tqdm bar that advances as items are encoded or refused
    on_chunk: Optional[Callable[[list["Work"], list["Quarantined"]], None]] = None  # each streamed chunk's result
    remote_encoder_calls: int = 0  # encoder calls made by workers elsewhere (a Ray runner's actors)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # where the time went, per stage (all workers)

    def add_seconds(self, seconds: dict[str, float]) -> None:
        for name, value in seconds.items():
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + value

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(n)

    def chunk_done(self, kept: list["Work"], quarantined: list["Quarantined"]) -> None:
        """A runner calls this when a chunk has been through a run of chunk stages."""
        if self.on_chunk is not None:
            self.on_chunk(kept, quarantined)


class Stage:
    """One step of ingestion. Subclasses set ``name`` and ``scope`` and implement ``run``."""

    name: ClassVar[str] = "stage"
    scope: ClassVar[Literal["batch", "chunk"]] = "chunk"
    prefetch: ClassVar[bool] = False  # run one chunk ahead of the next stages, in a worker thread
    runs_on: ClassVar[Literal["driver", "cpu", "model"]] = "driver"
    checkpoint: ClassVar[bool] = False  # items past this stage are spooled; a restart resumes after it

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        raise NotImplementedError
