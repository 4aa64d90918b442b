"""Classes picked by a key (an encoder by its checkpoint's ``model_type``, a generator by its id):
each class registers itself with a decorator, so the base class never imports its subclasses."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class ClassRegistry:
    """Keys to classes, and at most one default class for every other key."""

    def __init__(self, noun: str, key_name: str = ""):
        self.noun, self.key_name = noun, key_name  # "no encoder is registered for model type 'x'"
        self._by_key: dict[str, Any] = {}
        self._default: Optional[Any] = None

    def register(self, *keys: str, default: bool = False) -> Callable[[T], T]:
        """Class decorator: this class serves these keys (and any other key, if ``default``)."""

        def decorate(cls: T) -> T:
            for key in keys:
                self._by_key[key] = cls
            if default:
                self._default = cls
            return cls

        return decorate

    def class_for(self, key: str) -> Any:
        found = self._by_key.get(key) or self._default
        if found is None:
            raise LookupError(f"no {self.noun} is registered for {self.key_name + ' ' if self.key_name else ''}{key!r}")
        return found
