"""The Ray compute engine (``MmRayComputeEngine``) against the local one, on the demo corpus.

The test starts its own Ray cluster in this process (``ray.init`` with 2 CPUs, on 127.0.0.1); the
`feast materialize` processes connect to it through ``ray_address``. Decoding runs in Ray CPU
tasks and encoding in an actor pool there, so the comparison is between two real runners:
- the same rows, vectors within 1e-6, the same lineage and the same quarantine as the local engine;
- a run SIGKILLed halfway (on either engine) (at a known point: the fault seam pauses the driver right after it
  spooled its third chunk) and restarted redoes none of the items it had finished, and ends with
  exactly the local engine's rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feast_repo import FEAST, wait_for_pause
from mm_feast.cli.demo import apply_and_materialize, feast_cli, write_demo_media
from mm_feast.core.faults import PAUSE_AFTER_CHUNKS_ENV
from mm_feast.lineage import LineageDB, open_store
from mm_feast.pipeline.checkpoint import spooled_items
from mm_feast.pipeline.ray_runner import LOOPBACK_ENV
from mm_feast.plugin.milvus.store import close_connections
from mm_feast.stores.quarantine import load_records

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
PAUSE_AFTER_CHUNKS = 3
PAUSE_DEADLINE_S = 600
RAY_ENGINE = "mm_feast.plugin.ray_engine.MmRayComputeEngine"


@pytest.fixture(scope="module")
def ray_address() -> str:
    """A 2-CPU Ray cluster on 127.0.0.1, started here and shut down after the module."""
    os.environ[LOOPBACK_ENV] = "0"  # read when ray is first imported: bind 127.0.0.1, not every interface
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        pytest.fail("a Ray cluster is already running in this process: the test must start its own")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), f"Ray must listen on loopback only, not {address}"
        yield address
    finally:
        ray.shutdown()


def make_repo(root: Path, name: str, engine_lines: list[str]) -> Path:
    repo = root / name
    repo.mkdir()
    shutil.copy(REPO_ROOT / "feature_repo" / "definitions.py", repo)
    yaml = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    yaml = re.sub(r"project: \w+", f"project: ray_{name}", yaml)
    yaml = re.sub(r"batch_engine:\n(  .*\n)+", "batch_engine:\n" + "".join(f"  {line}\n" for line in engine_lines), yaml)
    (repo / "feature_store.yaml").write_text(yaml)
    write_demo_media(repo)
    return repo


def ray_engine(address: str, batch_size: int = 32) -> list[str]:
    return [f"type: {RAY_ENGINE}", f"ray_address: {address}", f"batch_size: {batch_size}", "show_progress: false"]


@pytest.fixture(scope="module")
def local_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("local"), "local",
                     ["type: mm_feast.plugin.engine.MmLocalComputeEngine", "show_progress: false"])
    apply_and_materialize(repo)
    return repo


def sinks(repo: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted((repo / "data" / "embeddings").glob("*.parquet"))}


def relative(uri: str, repo: Path) -> str:
    return str(Path(uri).resolve().relative_to(repo.resolve())) if uri.startswith(str(repo)) else uri


def assert_same_rows(ours: Path, reference: Path) -> None:
    """Row for row the reference's: same keys and content, vectors within 1e-6."""
    mine, theirs = sinks(ours), sinks(reference)
    assert sorted(mine) == sorted(theirs)
    for source, want in theirs.items():
        got = mine[source]
        key = "segment_id" if "segment_id" in want else "item_id"
        got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
        assert list(got[key]) == list(want[key]), source
        for column in ["item_id", "sha256", "position", "lineage_id", "model_version", "text", "safety"]:
            if column in want:
                assert list(got[column]) == list(want[column]), (source, column)
        diff = np.abs(np.stack(got["embedding"].to_numpy()) - np.stack(want["embedding"].to_numpy())).max()
        assert diff <= 1e-6, f"{source}: vectors differ by {diff}"


def views(repo: Path) -> list[str]:
    return [p.stem.removesuffix("_source") for p in sorted((repo / "data" / "embeddings").glob("*.parquet"))]


def lineage(repo: Path) -> set[tuple]:
    """Every lineage row, without what differs by repo or run (paths, run ids, times)."""
    db = LineageDB.for_repo(repo)
    return {
        (r.lineage_id, r.view, r.entity_key, r.kind, r.item_id, r.sha256, r.position, astuple(r.encoder),
         r.deleted_at is None, tuple(sorted((p.ordinal, p.role, p.sha256, p.modality, p.position, str(p.parent_lineage_id)) for p in r.parents)))
        for view in views(repo) for r in db.by_view(view)
    }


def online(repo: Path) -> dict[str, dict[str, str]]:
    """view -> {primary key: lineage id} of what the online store serves."""
    store = open_store(repo)  # the demo's SQL registry URL is relative to the repo
    try:
        provider = store._get_provider().online_store
        return {view: provider.served_rows(store.config, store.get_feature_view(view)) for view in views(repo)}
    finally:
        close_connections()


def quarantine(repo: Path) -> set[tuple]:
    q = load_records(repo)
    return {(source, item, sha, stage, reason.replace(str(repo), "REPO"))
            for source, item, sha, stage, reason in zip(q.source, q.item_id, q.sha256, q.stage, q.reason)}


def test_the_ray_engine_writes_what_the_local_engine_writes(tmp_path: Path, ray_address: str, local_repo: Path):
    repo = make_repo(tmp_path, "ray", ray_engine(ray_address, batch_size=8))
    apply_and_materialize(repo)

    assert_same_rows(repo, local_repo)
    assert online(repo) == online(local_repo)
    assert lineage(repo) == lineage(local_repo) and lineage(repo)
    assert quarantine(repo) == quarantine(local_repo) and quarantine(repo)
    runs = [json.loads(line) for path in (repo / "data" / "runs").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert all(r["seen"] == r["ingested"] + r["unchanged"] + r["quarantined"] for r in runs)
    assert sum(r.get("encoder_calls", 0) for r in runs) > 0, "the actors' encoder calls are counted in the summaries"
    assert not [r["source"] for r in runs if r.get("driver_loaded_model")], "only the actors load models; the driver plans"
    local_runs = [json.loads(line) for path in (local_repo / "data" / "runs").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert all(r["driver_loaded_model"] for r in local_runs if r.get("encoder_calls")), "the local engine encodes in its own process"


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_a_killed_run_resumes_without_redoing_finished_items(request, tmp_path: Path, engine: str, local_repo: Path):
    """Resuming is the pipeline's, not the runner's: both engines spool per chunk."""
    if engine == "ray":
        lines = ray_engine(request.getfixturevalue("ray_address"), batch_size=2)
    else:
        lines = ["type: mm_feast.plugin.engine.MmLocalComputeEngine", "batch_size: 2", "show_progress: false"]
    repo = make_repo(tmp_path, f"killed_{engine}", lines)
    feast_cli(repo, "apply")
    end = "2030-01-01T00:00:00"

    # 1. materialize, paused by the fault seam right after its third spooled chunk, then SIGKILLed
    pause_dir = tmp_path / "pause"
    env = {**os.environ, PAUSE_AFTER_CHUNKS_ENV: f"{PAUSE_AFTER_CHUNKS}:{pause_dir}"}
    log_path = tmp_path / "materialize-killed.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen([str(FEAST), "materialize-incremental", end], cwd=repo, stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    try:
        paused = wait_for_pause(pause_dir, run, log_path, f"spooling chunk {PAUSE_AFTER_CHUNKS}", PAUSE_DEADLINE_S)
        finished = {source: set(zip(rows.item_id, rows.sha256)) for source, rows in sinks(repo).items()}
        spool_dirs = list((repo / "data" / "embeddings" / ".spool").glob("*"))
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=30) == -signal.SIGKILL
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    in_spool = {d.name: spooled_items(repo / "data" / "embeddings" / f"{d.name}.parquet") for d in spool_dirs}
    assert paused["chunks"] == PAUSE_AFTER_CHUNKS and sum(len(v) for v in in_spool.values()) >= 1, (paused, in_spool)
    for source, items in in_spool.items():
        finished[source] = finished.get(source, set()) | items

    # 2. restart: the finished items are taken as they are (their rows keep the killed run's id)
    feast_cli(repo, "materialize-incremental", end)
    runs = {}
    for path in (repo / "data" / "runs").glob("*.jsonl"):
        runs[path.stem] = [json.loads(line) for line in path.read_text().splitlines()]
    for source, rows in sinks(repo).items():
        if source not in finished or source.startswith("report_") or "item_id" not in rows:
            continue
        restart_id = runs[source][-1]["run_id"]
        earlier = {(i, s) for i, s, rid in zip(rows.item_id, rows.sha256, rows.run_id) if rid != restart_id}
        if source in in_spool:  # the source the kill interrupted: resumed from its spool
            assert runs[source][-1]["resumed"] == len(in_spool[source])
            assert in_spool[source] <= earlier, f"{source}: spooled items were redone"
        assert finished[source] & set(zip(rows.item_id, rows.sha256)) <= earlier, f"{source}: finished items were redone"
    assert not any((repo / "data" / "embeddings" / ".spool").glob("*")), "the spool goes once its rows are stored"

    # 3. exactly the expected rows: the local engine's, online too
    assert_same_rows(repo, local_repo)
    assert online(repo) == online(local_repo)
    assert lineage(repo) == lineage(local_repo)
    assert quarantine(repo) == quarantine(local_repo)


def test_settings_a_cluster_cannot_place_are_refused_unless_it_autoscales(ray_address: str):
    """A KubeRay GPU group with minReplicas 0 has no GPU until asked: ``autoscaling: true`` asks
    its autoscaler (a request Ray holds in the GCS) instead of refusing."""
    import ray
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.sdk import request_resources
    from ray.experimental.internal_kv import _internal_kv_get

    from mm_feast.core.errors import UserError
    from mm_feast.pipeline.ray_runner import RayOptions, RayRunner

    gpu_actors = dict(address=ray_address, encode_actors=2, cpus_per_actor=0.5, gpus_per_actor=1.0)
    assert ray.cluster_resources().get("GPU", 0) == 0
    with pytest.raises(UserError, match=r"has 0 GPUs; 2 encode actors x 1 GPUs do not fit \(set autoscaling: true"):
        RayRunner(RayOptions(**gpu_actors))._ray()
    try:
        RayRunner(RayOptions(**gpu_actors, autoscaling=True))._ray()
        requested = json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL))
        assert requested == [{"CPU": 0.5, "GPU": 1.0}] * 2 + [{"CPU": 1.0}]  # both actors and one decode task
    finally:
        request_resources(bundles=[])
