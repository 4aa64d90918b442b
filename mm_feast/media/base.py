"""Records shared by every segmenter: where a segment came from (Locator) and its payload."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MODALITIES = ("image", "video", "audio", "text")
NAN = float("nan")


class MediaError(Exception):
    """A file that cannot be turned into segments; names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Locator:
    """Exact position of a segment inside its raw source file.

    Video frames carry their presentation timestamp in ``start_s`` (and the next sampled
    timestamp or stream end in ``end_s``); audio windows carry start/end seconds; text blocks
    carry character offsets ``[char_start, char_end)`` into the decoded text.
    """

    uri: str
    sha256: str
    modality: str
    start_s: Optional[float] = None
    end_s: Optional[float] = None
    char_start: Optional[int] = None
    char_end: Optional[int] = None

    def position(self) -> str:
        """Short, stable text form of the position, used in segment ids and display."""
        if self.char_start is not None:
            return f"c={self.char_start}-{self.char_end}"
        if self.start_s is not None:
            if self.modality == "video":
                return f"t={self.start_s:.3f}"
            return f"t={self.start_s:.3f}-{self.end_s:.3f}"
        return "whole"


@dataclass
class Segment:
    """One piece of a media item: an RGB frame, an audio window or a text block."""

    locator: Locator
    # image/video: HxWx3 uint8 RGB array; audio: 1-D float32 mono samples; text: str
    data: Any
    sample_rate: Optional[int] = None
    extra: dict = field(default_factory=dict)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Content hash of a file, streamed so large videos do not load into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class MediaFacts:
    """What a file's headers and packets say, without decoding a pixel or a sample: NaN or None
    where a fact does not apply to the modality or is unknown (the media gate's expectations skip
    those, so a file that could not be probed fails one check, not every check)."""

    format: Optional[str] = None
    width: float = NAN
    height: float = NAN
    pixels: float = NAN
    mode: Optional[str] = None
    duration_s: float = NAN
    declared_duration_s: float = NAN
    duration_mismatch: float = NAN
    fps: float = NAN
    frame_interval_cv: float = NAN
    video_streams: float = NAN
    audio_streams: float = NAN
    sample_rate: float = NAN
    channels: float = NAN
    encoding: Optional[str] = None
    chars: float = NAN

    def set_duration(self, declared: float, actual: float) -> None:
        """Record what the header claims and what the packets show, and how far apart they are."""
        self.declared_duration_s, self.duration_s = declared, actual
        if not (math.isnan(declared) or math.isnan(actual)):
            self.duration_mismatch = abs(declared - actual) / max(actual, 1e-3)


# Canonical format names, so `.jpg` and Pillow's "JPEG" or `.mkv` and FFmpeg's "matroska,webm" compare.
_FORMAT_ALIASES = {
    "jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "tif": "tiff", "dib": "bmp", "mpo": "jpeg",
    "m4v": "mp4", "mov": "mp4", "3gp": "mp4", "3g2": "mp4", "m4a": "mp4", "mj2": "mp4",
    "mkv": "matroska", "webm": "matroska", "mka": "matroska",
    "wave": "wav", "aif": "aiff", "aifc": "aiff", "oga": "ogg", "ogv": "ogg", "opus": "ogg",
    "mpg": "mpeg", "m2ts": "mpegts", "mts": "mpegts", "ts": "mpegts",
}


def canonical_format(name: str) -> str:
    name = name.lower().strip().lstrip(".")
    return _FORMAT_ALIASES.get(name, name)


def declared_format(path: str | Path) -> str:
    """The format a file's name promises (its extension), e.g. ``photo.jpg`` -> ``jpeg``."""
    suffix = Path(path).suffix
    return canonical_format(suffix) if suffix else ""


def container_format(family_names: str, path: str | Path) -> str:
    """FFmpeg names demuxer families ("mov,mp4,m4a,3gp,3g2,mj2"): the file's declared name if it
    is in the family, else the family's first name."""
    declared = declared_format(path)
    family = [canonical_format(n) for n in family_names.split(",") if n]
    if declared and declared in family:
        return declared
    return family[0] if family else ""
