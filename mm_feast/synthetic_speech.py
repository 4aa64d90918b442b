"""Speech with a known transcript, synthesised offline by espeak-ng (Debian ``espeak-ng``), for
the transcript generator's tests and its word-error-rate benchmark.

The utterances are commands of one small domain (an office and its rooms), and
``SPEECH_VOCABULARY`` is that domain's vocabulary: their words plus as many distractors, so a
recogniser held to the vocabulary still has to tell words apart."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ESPEAK = "espeak-ng"
DEFAULT_VOICE = "en-us+f3"
DEFAULT_WORDS_PER_MINUTE = 140


@dataclass(frozen=True)
class Utterance:
    text: str
    key_words: tuple[str, ...]  # what a transcript must contain to be useful for search


UTTERANCES: tuple[Utterance, ...] = (
    Utterance("please call me tomorrow morning", ("call", "tomorrow", "morning")),
    Utterance("the weather today is sunny and warm", ("weather", "today", "warm")),
    Utterance("turn on the light in the kitchen", ("light", "kitchen")),
    Utterance("open the door", ("open", "door")),
    Utterance("the quick brown fox jumps over the lazy dog", ("fox", "lazy", "dog")),
    Utterance("send the report to the team before lunch", ("report", "team", "lunch")),
    Utterance("the meeting starts at nine in the garden room", ("meeting", "garden", "room")),
    Utterance("close the window when it starts to rain", ("close", "window", "rain")),
)

_DISTRACTORS = (
    "red green blue yellow circle square triangle star table chair music guitar piano drum bird cat car "
    "train wind night day house river water fire stone tree dance sing walk run stop left right up down "
    "big small fast slow office desk paper coffee evening monday friday email phone"
)

SPEECH_VOCABULARY: tuple[str, ...] = tuple(sorted({w for u in UTTERANCES for w in u.text.split()} | set(_DISTRACTORS.split())))


def speech_unavailable_reason() -> Optional[str]:
    """Why speech cannot be synthesised here, or None."""
    if shutil.which(ESPEAK) is None:
        return f"{ESPEAK} is not installed (Debian package espeak-ng)"
    return None


def write_speech(path: Path, text: str, voice: str = DEFAULT_VOICE, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> Path:
    """``text`` spoken into a WAV file at ``path`` (espeak-ng's 22.05 kHz mono)."""
    reason = speech_unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot synthesise speech: {reason}")
    subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    return path
