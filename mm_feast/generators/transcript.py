"""Transcripts of audio windows and video soundtracks, by an offline recogniser: CMU PocketSphinx
(PyPI ``pocketsphinx``, which ships an en-US acoustic model, dictionary and language model).
Its word error rate on our test speech is measured in docs/generation.md."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Optional

import numpy as np

from mm_feast.generators.base import Generator, GeneratorUnavailable, register

SAMPLE_RATE = 16000  # the bundled en-US model's rate


@lru_cache(maxsize=1)
def pocketsphinx_version() -> str:
    from importlib.metadata import version

    return f"pocketsphinx {version('pocketsphinx')}"


@register("pocketsphinx")
class PocketSphinxTranscriber(Generator):
    kind = "transcript"
    modalities = ("audio",)

    def __init__(self, generator_id: str, settings: Optional[Mapping[str, Any]] = None, device: Optional[str] = None):
        super().__init__(generator_id, settings)
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise GeneratorUnavailable("transcripts (generator 'pocketsphinx') need the PyPI package pocketsphinx: pip install pocketsphinx") from exc
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self.sample_rate = SAMPLE_RATE

    def engine_version(self) -> str:
        return pocketsphinx_version()

    def _generate(self, modality: str, items: list[Any]) -> list[str]:
        return [self._transcribe(np.asarray(item, dtype=np.float32)) for item in items]

    def _transcribe(self, samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
