"""mm-feast's compute engine on Ray: the same `feast materialize` as ``MmLocalComputeEngine``, with
the stage list run by :class:`~mm_feast.pipeline.ray_runner.RayRunner` (decoding in CPU tasks,
encoders in an actor pool). Pooling, fusion and every write stay in the driver.

``feature_store.yaml``::

    batch_engine:
      type: mm_feast.plugin.ray_engine.MmRayComputeEngine
      ray_address: auto          # omit to start a local Ray (on 127.0.0.1) for each materialize
      encode_actors: 2
      gpus_per_actor: 1
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from feast.repo_config import FeastConfigBaseModel

from mm_feast.pipeline.ray_runner import RayOptions, RayRunner
from mm_feast.plugin.engine import MmLocalComputeEngine

ENGINE_TYPE = "mm_feast.plugin.ray_engine.MmRayComputeEngine"


class MmRayComputeEngineConfig(FeastConfigBaseModel):
    """``batch_engine`` settings: those of the local engine, and how to use Ray (``RayOptions``)."""

    type: Literal["mm_feast.plugin.ray_engine.MmRayComputeEngine"] = ENGINE_TYPE
    batch_size: int = 32
    show_progress: bool = True
    backend: Optional[str] = None
    ray_address: Optional[str] = None
    num_cpus: Optional[int] = None
    encode_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    cpus_per_decode_task: float = 1.0
    chunks_in_flight: Optional[int] = None
    task_timeout_s: float = 600.0
    autoscaling: bool = False


class MmRayComputeEngine(MmLocalComputeEngine):
    """Runs mm-feast's pipeline on a Ray cluster; other views go to Feast's local engine."""

    def __init__(self, *, ray_address: Optional[str] = None, num_cpus: Optional[int] = None, encode_actors: int = 1,
                 cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0, cpus_per_decode_task: float = 1.0,
                 chunks_in_flight: Optional[int] = None, task_timeout_s: float = 600.0, autoscaling: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.ray_options = RayOptions(
            address=ray_address, num_cpus=num_cpus, encode_actors=int(encode_actors), cpus_per_actor=float(cpus_per_actor),
            gpus_per_actor=float(gpus_per_actor), cpus_per_decode_task=float(cpus_per_decode_task),
            chunks_in_flight=chunks_in_flight, task_timeout_s=float(task_timeout_s), autoscaling=bool(autoscaling),
        )

    def stage_runner(self) -> RayRunner:
        return RayRunner(self.ray_options, chunk_items=self.batch_size)
