"""mm-feast's Feast compute engine: `feast materialize` runs the ingest pipeline once, then makes
the online store hold exactly the current rows of every view.

Plugged in with ``batch_engine: {type: mm_feast.plugin.engine.MmLocalComputeEngine}`` in
``feature_store.yaml``. It declares ``supports_batch``, so Feast hands it every view of one
materialize in a single call: one ``RunContext`` then scans each media source once, ingests each
source once, and lets pooled and fused views reuse their parents' rows from memory. Views that are
not mm-feast's go to Feast's own local engine.

Serving is a reconciliation, not a window copy. A media view's online rows are its current rows
(the files on disk now, in the served model version, valid at the window's end), whatever their
event times: an edited file's new segments are served even when its manifest timestamp is old,
and rows of files that changed or left the collection are deleted.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, List, Literal, Optional, Sequence, Union

import pandas as pd
import pyarrow as pa
from feast import FeatureView
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import FeastConfigBaseModel
from tqdm.auto import tqdm

from mm_feast.core.errors import UserError
from mm_feast.pipeline.ingest import RunSummary, ensure_embeddings, scan_media, segment_group, source_rows
from mm_feast.stores.lineage import LineageDB
from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.runner import StageRunner
from mm_feast.plugin.compat import entity_key_hex, online_rows
from mm_feast.sources import CREATED_FIELD, TIMESTAMP_FIELD, EmbeddingSource, MediaSource
from mm_feast.stores.versions import pinned_model_version

logger = logging.getLogger(__name__)

ENGINE_TYPE = "mm_feast.plugin.engine.MmLocalComputeEngine"


class MmLocalComputeEngineConfig(FeastConfigBaseModel):
    """``batch_engine`` settings: encoder batch size, progress bars, the summary table."""

    type: Literal["mm_feast.plugin.engine.MmLocalComputeEngine"] = ENGINE_TYPE
    batch_size: int = 32
    show_progress: bool = True
    backend: Optional[str] = None  # for the views handed to Feast's local engine


@dataclass
class Served:
    """What serving one view did to the online store."""

    view: str
    rows: int = 0  # current rows, all now online
    written: int = 0  # new or changed rows upserted
    deleted: int = 0  # rows of changed or removed files taken out
    not_yet_valid: int = 0  # current rows whose event time is after the window's end


def is_media_view(view: Any) -> bool:
    return isinstance(getattr(view, "batch_source", None), (EmbeddingSource, MediaSource))


class MmLocalComputeEngine(LocalComputeEngine):
    """Runs mm-feast's pipeline in this process; other views go to Feast's local engine."""

    def __init__(self, *, batch_size: int = 32, show_progress: bool = True, backend: Optional[str] = None, **kwargs: Any):
        kwargs.pop("type", None)
        super().__init__(backend=backend, **kwargs)
        self.batch_size = int(batch_size)
        self.show_progress = bool(show_progress)

    @property
    def supports_batch(self) -> bool:
        return True

    def materialize(
        self,
        registry: BaseRegistry,
        tasks: Union[MaterializationTask, List[MaterializationTask]],
        **kwargs: Any,
    ) -> List[LocalMaterializationJob]:
        tasks = [tasks] if isinstance(tasks, MaterializationTask) else list(tasks)
        media = [t for t in tasks if is_media_view(t.feature_view)]
        jobs: dict[int, LocalMaterializationJob] = {}
        if media:
            jobs.update(self._run_pipeline(registry, media))
        for task in tasks:
            if id(task) not in jobs:
                jobs[id(task)] = super()._materialize_one(registry, task, **kwargs)
        return [jobs[id(t)] for t in tasks]

    # -- the pipeline run -----------------------------------------------------------------------

    def _run_pipeline(self, registry: BaseRegistry, tasks: Sequence[MaterializationTask]) -> dict[int, LocalMaterializationJob]:
        config = self.repo_config
        repo_path = Path(config.repo_path) if config.repo_path else Path.cwd()
        end = max(t.end_time for t in tasks)
        runner = self.stage_runner()
        context = RunContext(repo_path, end_time=end, show_progress=self.show_progress, batch_size=self.batch_size,
                             runner=runner)
        try:
            return self._run_views(registry, tasks, context)
        finally:
            if runner is not None:
                runner.close()

    def stage_runner(self) -> Optional[StageRunner]:
        """What runs the stage lists: None for the local runner (a subclass returns a Ray one)."""
        return None

    def _run_views(self, registry: BaseRegistry, tasks: Sequence[MaterializationTask], context: RunContext) -> dict[int, LocalMaterializationJob]:
        repo_path = context.repo_path or Path.cwd()
        _count_segment_consumers(context, [t.feature_view for t in tasks])
        jobs: dict[int, LocalMaterializationJob] = {}
        served: list[Served] = []
        summaries: list[RunSummary] = []
        for task in tasks:
            view = task.feature_view
            job_id = f"{view.name}-{context.run_id}"
            try:
                source = view.batch_source
                if isinstance(source, MediaSource):  # a manifest view: Feast copies the scanned rows
                    scan_media(source, repo_path, context)
                    jobs[id(task)] = super()._materialize_one(registry, task)
                    continue
                summaries.append(ensure_embeddings(source, repo_path, context=context))
                served.append(self._serve(view, source_rows(source, context), task.end_time))
                jobs[id(task)] = LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
            except Exception as exc:  # one view's failure is reported by Feast; the others go on
                logger.debug("materializing %s failed", view.name, exc_info=True)
                jobs[id(task)] = LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc)
        if self.show_progress:
            tqdm.write(format_run(list(context.values("scan")), summaries, served), file=sys.stderr)
        return jobs

    def _serve(self, view: FeatureView, rows: pd.DataFrame, end_time: datetime) -> Served:
        """Make the online store hold exactly the view's current rows."""
        if not view.online:
            return Served(view.name)
        config = self.repo_config
        store = self.online_store
        join_key = view.entity_columns[0].name
        current, not_yet = current_rows(rows, view, Path(config.repo_path or "."), end_time)
        if rows.shape[0] and current.empty:
            raise UserError(
                f"view '{view.name}': none of its {len(rows)} rows is valid at {end_time:%Y-%m-%d %H:%M:%S} "
                f"(the earliest event time is {rows[TIMESTAMP_FIELD].min()}); materialize up to a later time"
            )
        version = config.entity_key_serialization_version
        # every row erased or deleted: the parquet may hold no columns at all, and nothing is served
        keys = current[join_key].astype(str).tolist() if len(current) else []
        pks = [entity_key_hex(join_key, k, version) for k in keys]
        online = store.served_rows(config, view)
        lineage = current["lineage_id"].astype(str).tolist() if "lineage_id" in current else [None] * len(pks)
        changed = [i for i, (pk, lid) in enumerate(zip(pks, lineage)) if online.get(pk, "\0") != lid]
        stale = sorted(set(online) - set(pks))
        frame = current.iloc[changed]
        table = pa.Table.from_pandas(frame[[c for c in frame.columns if c in _wanted(view)]], preserve_index=False)
        store.write_current(config, view, online_rows(table, view), delete_pks=stale)
        LineageDB.for_repo(Path(config.repo_path or ".")).retire_unserved(
            view.name, set(zip(keys, lineage)), datetime.now(timezone.utc)
        )
        return Served(view.name, rows=len(current), written=len(changed), deleted=len(stale), not_yet_valid=not_yet)


def _wanted(view: FeatureView) -> set[str]:
    return {f.name for f in view.entity_columns} | {f.name for f in view.features} | {TIMESTAMP_FIELD, CREATED_FIELD}


def current_rows(rows: pd.DataFrame, view: FeatureView, repo_path: Path, end_time: datetime) -> tuple[pd.DataFrame, int]:
    """The rows to serve: served model version only, valid at ``end_time``, the newest per key.

    Returns them and how many current rows are not valid yet (event time after ``end_time``).
    """
    if rows.empty:
        return rows, 0
    source = view.batch_source
    if "model_version" in rows:
        version = pinned_model_version(repo_path, view.name) or source.encoder().version
        rows = rows[rows["model_version"] == version]
    end = pd.Timestamp(end_time)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    valid = pd.to_datetime(rows[TIMESTAMP_FIELD], utc=True) <= end
    join_key = view.entity_columns[0].name
    newest = rows[valid].sort_values([TIMESTAMP_FIELD, CREATED_FIELD]).groupby(join_key, sort=False).tail(1)
    not_yet = len(set(rows.loc[~valid, join_key]) - set(newest[join_key]))
    return newest.reset_index(drop=True), not_yet


def _count_segment_consumers(context: RunContext, views: Sequence[Any]) -> None:
    """How many views of this run decode the same segments, so each item is decoded once for all."""
    groups: dict[Any, int] = {}
    for view in views:
        source = view.batch_source
        if isinstance(source, EmbeddingSource) and source.granularity == "segment":
            group = segment_group(source, source.encoder())
            groups[group] = groups.get(group, 0) + 1
    for group, n in groups.items():
        context.put(("segment_consumers", group), n)


def format_run(scans: Sequence[tuple[list, RunSummary]], summaries: Sequence[RunSummary], served: Sequence[Served]) -> str:
    """One table per media source (the scan) and one for the views, with quarantine reasons."""
    lines = []
    for _, scan in scans:
        lines.append(f"\nmedia source {scan.source}: {scan.seen} files seen, {scan.quarantined} quarantined at scan")
        lines.extend(f"  warning: {w}" for w in scan.warnings)
    header = (f"{'view source':<32} {'seen':>5} {'ingested':>8} {'unchanged':>9} {'quarantined':>11} {'removed':>7}"
              f" {'changed':>7} {'flagged':>7}")
    lines += ["", header, "-" * len(header)]
    for s in summaries:
        lines.append(f"{s.source:<32} {s.seen:>5} {s.ingested:>8} {s.unchanged:>9} {s.quarantined:>11} {s.removed:>7}"
                     f" {s.changed:>7} {s.flagged:>7}")
    if served:
        lines += ["", f"{'online view':<32} {'served':>6} {'written':>7} {'deleted':>7} {'not yet valid':>13}"]
        lines += [f"{v.view:<32} {v.rows:>6} {v.written:>7} {v.deleted:>7} {v.not_yet_valid:>13}" for v in served]
    reasons = [(q.uri, q.stage, q.reason) for s in [*(scan for _, scan in scans), *summaries] for q in s.quarantine]
    if reasons:
        lines += ["", "quarantined:"] + [f"  {uri} ({stage}): {reason}" for uri, stage, reason in dict.fromkeys(reasons)]
    warnings = [w for s in summaries for w in s.warnings]
    if warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in dict.fromkeys(warnings)]
    return "\n".join(lines) + "\n"
