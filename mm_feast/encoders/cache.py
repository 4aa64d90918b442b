"""The process-wide encoder cache: one loaded model per (model id, revision, device)."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Optional

import mm_feast.encoders.clap  # noqa: F401  (registers ClapEncoder)
import mm_feast.encoders.clip  # noqa: F401  (registers ClipEncoder)
import mm_feast.encoders.text  # noqa: F401  (registers SentenceEncoder, the default)
from mm_feast.encoders.bound import BoundAudioEncoder, binding_of
from mm_feast.encoders.base import Encoder, load_pretrained, pick_device
from mm_feast.encoders.registry import encoder_class_for

logger = logging.getLogger(__name__)

_CACHE: dict[tuple[str, Optional[str], str], Encoder] = {}
_CACHE_LOCK = threading.RLock()  # re-entrant: a bound encoder loads its parent while being loaded


@functools.lru_cache(maxsize=256)
def encoder_class(model_id: str) -> type[Encoder]:
    """Choose the wrapper from the model's config, so any CLIP/CLAP/BERT-like checkpoint works
    (read once per model id: search asks it on every query)."""
    from transformers import AutoConfig

    if binding_of(model_id) is not None:  # an audio tower trained into another model's space
        return BoundAudioEncoder
    config = load_pretrained(AutoConfig, model_id)
    return encoder_class_for(getattr(config, "model_type", ""))


def get_encoder(model_id: str, revision: Optional[str] = None, device: Optional[str] = None) -> Encoder:
    """The one process-wide encoder for (model id, revision, device); loaded on first use."""
    key = (model_id, revision, pick_device(device))
    with _CACHE_LOCK:
        encoder = _CACHE.get(key)
        if encoder is None:
            encoder = load_encoder(model_id, revision, key[2])
            _CACHE[key] = encoder
        return encoder


def load_encoder(model_id: str, revision: Optional[str] = None, device: Optional[str] = None) -> Encoder:
    """A new encoder of its own, outside the cache: for a caller whose model calls must not count
    as (or contend with) the views' (the content filters' MiniLM)."""
    device = pick_device(device)
    logger.info("Loading encoder %s on %s", model_id, device)
    encoder = encoder_class(model_id)(model_id, revision, device)
    if isinstance(encoder, BoundAudioEncoder):  # its space is its parent's: load (or reuse) the parent
        encoder.bind(get_encoder(encoder.parent_id, None, device))
    return encoder
