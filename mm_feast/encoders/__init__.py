"""Transformers encoders behind one interface: ``encode(modality, batch) -> np.ndarray``."""

from mm_feast.encoders.base import Encoder, ModelLoadError, get_encoder, resolve_model_path

__all__ = ["Encoder", "ModelLoadError", "get_encoder", "resolve_model_path"]
