"""Which encoder class wraps a model, by the model's ``model_type``: each class registers itself
with ``@register(...)``, so the base class never imports its subclasses."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

_BY_MODEL_TYPE: dict[str, Any] = {}
_DEFAULT: list[Any] = []


def register(*model_types: str, default: bool = False) -> Callable[[T], T]:
    """Class decorator: this encoder wraps checkpoints of these ``model_type``s (or any other, if default)."""

    def decorate(cls: T) -> T:
        for model_type in model_types:
            _BY_MODEL_TYPE[model_type] = cls
        if default:
            _DEFAULT[:] = [cls]
        return cls

    return decorate


def encoder_class_for(model_type: str) -> Any:
    found = _BY_MODEL_TYPE.get(model_type) or (_DEFAULT[0] if _DEFAULT else None)
    if found is None:
        raise LookupError(f"no encoder is registered for model type {model_type!r}")
    return found
