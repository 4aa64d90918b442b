"""Records shared by every segmenter: where a segment came from (Locator) and its payload."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MODALITIES = ("image", "video", "audio", "text")


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


def require_nonempty_file(path: str | Path) -> Path:
    """Fail early, with a clear reason, on paths no decoder could use (missing, dir, 0 bytes).

    Decoders give confusing messages for these (PyAV: "Invalid data found"), so every
    segmenter checks first.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "no such file")
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(p, "empty file")
    return p
