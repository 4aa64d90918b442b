"""What a generated-text view "encodes" with: its generator, then a text encoder over the
generated text. One object, so the plan (unchanged = same content and version), the spool, the
served-version table and lineage treat a generated view like any other: its version covers the
generator's weights and settings and the text encoder's weights."""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Mapping, Optional, Sequence

import numpy as np

import mm_feast.generators.captioner  # noqa: F401  (registers Captioner, the default)
import mm_feast.generators.ocr  # noqa: F401  (registers TesseractOcr)
import mm_feast.generators.transcript  # noqa: F401  (registers PocketSphinxTranscriber)
from mm_feast.core.errors import InvalidArgument
from mm_feast.encoders import get_encoder
from mm_feast.encoders.base import Encoder, pick_device
from mm_feast.generators.base import Generator, generator_class_for, settings_json

_LOCK = threading.Lock()
_GENERATORS: dict[tuple[str, str, str], Generator] = {}
_GENERATED: dict[tuple[str, str, str, Optional[str], str], "GeneratedTextEncoder"] = {}


class GeneratedTextEncoder:
    """A generator and the text encoder of its output. ``encode`` is the text encoder's (a query
    of any modality it takes is searched in its space); ``generate`` is the generator's."""

    def __init__(self, generator: Generator, text_encoder: Encoder):
        if not text_encoder.supports("text"):
            raise InvalidArgument(f"model '{text_encoder.model_id}' cannot encode text, so it cannot embed {generator.model_id}'s output")
        self.generator = generator
        self.text_encoder = text_encoder
        self.model_id = text_encoder.model_id
        self.revision = text_encoder.revision
        self.dim = text_encoder.dim
        self.version = hashlib.sha256(f"{generator.version}|{text_encoder.version}".encode()).hexdigest()[:12]
        self.sample_rate = generator.sample_rate  # audio is decoded at the recogniser's rate

    @property
    def space(self) -> str:
        return self.text_encoder.space

    @property
    def calls(self) -> int:
        return self.generator.calls + self.text_encoder.calls

    @property
    def processor(self) -> Any:
        return getattr(self.text_encoder, "processor", None)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.text_encoder, "tokenizer", None)

    @property
    def weights_loaded(self) -> bool:
        """Whether this process holds the text encoder's weights or the generator's."""
        return self.text_encoder.weights_loaded or self.generator.weights_loaded

    def load_weights(self) -> None:
        self.text_encoder.load_weights()
        self.generator.load_weights()

    def supports(self, modality: str) -> bool:
        return self.text_encoder.supports(modality)

    def encode(self, modality: str, batch: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        return self.text_encoder.encode(modality, batch, batch_size=batch_size)

    def generate(self, modality: str, items: Sequence[Any]) -> list[str]:
        return self.generator.generate(modality, items)


def get_generator(generator_id: str, settings: Optional[Mapping[str, Any]] = None, device: Optional[str] = None) -> Generator:
    """The one process-wide generator for (id, settings, device), loaded on first use."""
    key = (generator_id, settings_json(settings), pick_device(device))
    with _LOCK:
        if key not in _GENERATORS:
            _GENERATORS[key] = generator_class_for(generator_id)(generator_id, settings, device=key[2])
        return _GENERATORS[key]


def get_generated_encoder(generator_id: str, settings: Optional[Mapping[str, Any]], model_id: str,
                          revision: Optional[str] = None, device: Optional[str] = None) -> GeneratedTextEncoder:
    key = (generator_id, settings_json(settings), model_id, revision, pick_device(device))
    generator = get_generator(generator_id, settings, device)
    text_encoder = get_encoder(model_id, revision, device)
    with _LOCK:
        if key not in _GENERATED:
            _GENERATED[key] = GeneratedTextEncoder(generator, text_encoder)
        return _GENERATED[key]
