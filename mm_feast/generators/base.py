"""The shape every generator has, and the registry that picks one by id (``@register``,
``core.registry``)."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Optional, Sequence

from mm_feast.core.errors import InvalidArgument, UserError
from mm_feast.core.registry import ClassRegistry

_GENERATORS = ClassRegistry("generator")
register = _GENERATORS.register  # @register("tesseract"); default=True: any image-to-text model directory


class GeneratorUnavailable(UserError, RuntimeError):
    """The generator cannot run on this machine (a missing binary or package); says which."""


def generator_class_for(generator_id: str) -> Any:
    return _GENERATORS.class_for(generator_id)


def settings_json(settings: Optional[Mapping[str, Any]]) -> str:
    """Settings in one canonical form: part of the cache key, the version and the lineage."""
    return json.dumps(dict(settings or {}), sort_keys=True, separators=(",", ":"))


class Generator(ABC):
    """Writes one text per input of a modality it takes ("" when there is nothing to say).

    ``version`` covers the model's weights (or the engine's version) and ``settings``: a
    changed generator is a changed transformation, and its items are made again."""

    kind: ClassVar[str] = "text"  # what the text is: "caption", "ocr", "transcript"
    modalities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, generator_id: str, settings: Optional[Mapping[str, Any]] = None):
        self.model_id = generator_id
        self.settings = {**self.default_settings(), **dict(settings or {})}
        unknown = set(self.settings) - set(self.default_settings())
        if unknown:
            raise InvalidArgument(f"generator {generator_id}: unknown settings {sorted(unknown)}; "
                             f"it takes {sorted(self.default_settings())}")
        self.calls = 0
        self.sample_rate: Optional[int] = None

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {}

    @property
    def weights_loaded(self) -> bool:
        """Whether this process holds model weights; an external engine (Tesseract) holds none."""
        return False

    def load_weights(self) -> None:
        """Load model weights now (an actor warming up); nothing for an external engine."""

    @abstractmethod
    def engine_version(self) -> str:
        """The model weights' hash, or the external engine's version."""

    @property
    def version(self) -> str:
        key = f"{self.model_id}|{self.engine_version()}|{settings_json(self.settings)}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        """What lineage records about the generator: its id, kind, engine version and settings."""
        return {"id": self.model_id, "kind": self.kind, "engine_version": self.engine_version(),
                "version": self.version, "settings": dict(self.settings)}

    def generate(self, modality: str, items: Sequence[Any]) -> list[str]:
        if modality not in self.modalities:
            raise InvalidArgument(f"generator {self.model_id} reads {', '.join(self.modalities)}, not {modality}")
        if not items:
            return []
        self.calls += 1
        texts = self._generate(modality, list(items))
        return [" ".join(str(t).split()) for t in texts]

    @abstractmethod
    def _generate(self, modality: str, items: list[Any]) -> list[str]:
        """One text per item."""
