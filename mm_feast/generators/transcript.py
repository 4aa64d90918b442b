"""Transcripts of audio windows and video soundtracks, by an offline recogniser: CMU PocketSphinx
(PyPI ``pocketsphinx``, which ships an en-US acoustic model, dictionary and language model).

PocketSphinx's general language model does poorly on synthetic speech (docs/generation.md). A
view whose speech has a known domain sets ``vocabulary``: the decoder then uses a uniform unigram
language model of those words instead of the general one. On our test speech that lowers the word
error rate and finds about twice the key words (``benchmarks/bench_transcripts.py``,
docs/generation.md). A JSGF grammar of "any sequence of the words" was measured too: worse (many
inserted words) and ten times slower."""

from __future__ import annotations

import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mm_feast.core.errors import InvalidArgument
from mm_feast.generators.base import Generator, GeneratorUnavailable, register

SAMPLE_RATE = 16000  # the bundled en-US model's rate
VOCABULARY_SEARCH = "vocabulary"


@lru_cache(maxsize=1)
def pocketsphinx_version() -> str:
    from importlib.metadata import version

    return f"pocketsphinx {version('pocketsphinx')}"


def unigram_arpa(words: Sequence[str]) -> str:
    """An ARPA language model in which each of ``words`` (and the end of the utterance) is
    equally likely, whatever came before."""
    log_p = f"{math.log10(1 / (len(words) + 1)):.6f}"
    unigrams = ["-99 <s> 0", f"{log_p} </s> 0", *(f"{log_p} {word} 0" for word in words)]
    return "\n".join(["\\data\\", f"ngram 1={len(unigrams)}", "", "\\1-grams:", *unigrams, "", "\\end\\", ""])


def normalised_vocabulary(words: Any) -> list[str]:
    """The vocabulary as sorted, lower-case, distinct words; refuses anything but a list of words."""
    if isinstance(words, str) or not isinstance(words, (list, tuple)) or not words:
        raise InvalidArgument("pocketsphinx setting 'vocabulary' must be a non-empty list of words")
    cleaned = sorted({str(word).strip().lower() for word in words})
    bad = [word for word in cleaned if not word or not all(c.isalpha() or c in "'-" for c in word)]
    if bad:
        raise InvalidArgument(f"pocketsphinx setting 'vocabulary': not single words: {bad}")
    return cleaned


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
        if self.settings["vocabulary"] is not None:
            self.settings["vocabulary"] = normalised_vocabulary(self.settings["vocabulary"])
            self._use_vocabulary(self.settings["vocabulary"])

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"vocabulary": None}  # None: the bundled general en-US language model

    def _use_vocabulary(self, words: list[str]) -> None:
        unknown = [word for word in words if self._decoder.lookup_word(word) is None]
        if unknown:
            raise InvalidArgument(f"pocketsphinx setting 'vocabulary': not in PocketSphinx's en-US dictionary: {unknown}")
        with tempfile.TemporaryDirectory(prefix="mm-feast-lm-") as scratch:
            path = Path(scratch) / "vocabulary.arpa"
            path.write_text(unigram_arpa(words))
            self._decoder.add_lm_file(VOCABULARY_SEARCH, str(path))
        self._decoder.activate_search(VOCABULARY_SEARCH)

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
