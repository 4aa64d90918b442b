"""Which encoder class wraps a model, by the model's ``model_type``: each class registers itself
with ``@register(...)`` (``core.registry``)."""

from __future__ import annotations

from typing import Any

from mm_feast.core.registry import ClassRegistry

_ENCODERS = ClassRegistry("encoder", "model type")
register = _ENCODERS.register


def encoder_class_for(model_type: str) -> Any:
    return _ENCODERS.class_for(model_type)
