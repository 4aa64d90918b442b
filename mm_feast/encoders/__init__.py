"""Transformers encoders behind one interface: ``encode(modality, batch) -> np.ndarray``."""

from typing import Any

from mm_feast.encoders.base import Encoder, bundled_model_ids, resolve_model_path
from mm_feast.encoders.cache import get_encoder

__all__ = ["Encoder", "ModelLoadError", "ModelNotFound", "bundled_model_ids", "get_encoder", "resolve_model_path"]


def __getattr__(name: str) -> Any:
    # The error classes live in mm_feast.core.errors, which imports Feast: loaded on first use.
    if name in ("ModelNotFound", "ModelLoadError"):
        from mm_feast.core.errors import ModelNotFound

        return ModelNotFound
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
