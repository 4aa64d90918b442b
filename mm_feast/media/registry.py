"""The one place that knows the modalities: each registers what it does with a file (probe its
headers, iterate its segments lazily, decode the input at one locator), and detection picks the
modality of a file from its bytes, then its name.

Ingest, search, the quality gates and lineage all ask this registry, so a fifth modality is one
module that subclasses :class:`Modality` and decorates itself with :func:`register` (the
``mm_feast.media`` package imports every modality module, so the registry is full whenever any
part of the package is imported).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Optional

from .base import Locator, MediaError, MediaFacts, Segment
from .config import SegmentationConfig
from .file import MediaFile, Source, as_media_file

logger = logging.getLogger(__name__)


class Modality:
    """What mm-feast does with one kind of media. Subclasses set ``name`` and ``extensions``."""

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()

    def probe(self, file: MediaFile) -> MediaFacts:
        """Header facts for the media gate, without decoding pixels or samples."""
        raise NotImplementedError

    def iter_segments(self, file: MediaFile, config: SegmentationConfig) -> Iterator[Segment]:
        """The file's segments in order, decoded lazily (a query can stop after the first)."""
        raise NotImplementedError

    def decode_at(self, file: MediaFile, locator: Locator, config: SegmentationConfig) -> Any:
        """The model input at ``locator``, decoded from the file itself, not from stored segments."""
        raise NotImplementedError


_REGISTRY: dict[str, Modality] = {}


def register(cls: type[Modality]) -> type[Modality]:
    _REGISTRY[cls.name] = cls()
    return cls


def modality(name: str) -> Modality:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; expected one of {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def extensions() -> dict[str, str]:
    """File extension -> modality, from each modality's own list."""
    return {ext: m.name for m in _REGISTRY.values() for ext in m.extensions}


# --- detection ---------------------------------------------------------------------------------

# Containers that can hold audio only or video: their magic bytes do not settle the modality.
AMBIGUOUS = "audio/video"


def sniff(head: bytes) -> Optional[str]:
    """Modality from magic bytes, ``AMBIGUOUS`` for audio/video containers, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a") or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:2] == b"BM" and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124) \
            and head[15:18] == b"\x00\x00\x00":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[:4] == b"fLaC" or head[:3] == b"ID3" or head[:5] == b"#!AMR":
        return "audio"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 \
            and head[1] not in (0xFE, 0xFF):  # 0xFFFE is a UTF-16 BOM, not audio
        return "audio"  # MPEG audio / ADTS AAC frame sync
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            return "image"
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio"
        return AMBIGUOUS
    if head[:4] in (b"\x1aE\xdf\xa3", b"OggS"):
        return AMBIGUOUS
    if head[:3] == b"FLV" or head[:4] == b"\x00\x00\x01\xba" or \
            head[:4] == b"\x30\x26\xb2\x75":
        return "video"
    return None


def _streams_of(file: MediaFile) -> Optional[str]:
    """Ask FFmpeg which streams an ambiguous container holds."""
    import av

    try:
        with av.open(file.open()) as container:
            for stream in container.streams.video:
                if not stream.disposition & av.stream.Disposition.attached_pic:
                    return "video"
            if container.streams.audio:
                return "audio"
    except (av.FFmpegError, OSError, ValueError) as exc:
        logger.debug("%s: probe failed: %s", file.path, exc)
    return None


def detect(source: Source) -> str:
    """Modality of a file: magic bytes win over the extension (a PNG named ``.jpg`` is an image,
    an MP4 named ``.txt`` is video); the extension decides when content is not recognisable (text
    has no magic) or the container can hold either audio or video."""
    file = as_media_file(source, allow_empty=True)
    ext = file.path.suffix.lower().lstrip(".")
    by_ext = extensions().get(ext)
    sniffed = sniff(file.head)
    if sniffed == AMBIGUOUS:
        if by_ext in ("audio", "video"):
            return by_ext
        sniffed = _streams_of(file)
    if sniffed is not None:
        if by_ext is not None and sniffed != by_ext:
            logger.info("%s: content is %s despite extension '.%s'", file.path, sniffed, ext)
        return sniffed
    if by_ext is None:
        raise MediaError(file.path, f"unsupported file type '.{ext}'" if ext else
                         "unsupported file type (no extension, content not recognised)")
    return by_ext


# --- the operations, by modality ------------------------------------------------------------------


def _resolve(source: Source, modality_name: Optional[str]) -> tuple[MediaFile, Modality]:
    file = as_media_file(source)
    return file, modality(modality_name or detect(file))


def iter_segments(source: Source, modality_name: Optional[str] = None,
                  config: Optional[SegmentationConfig] = None) -> Iterator[Segment]:
    file, handler = _resolve(source, modality_name)
    return handler.iter_segments(file, config or SegmentationConfig())


def segment_file(source: Source, modality: Optional[str] = None, config: Optional[SegmentationConfig] = None,
                 sha256: Optional[str] = None) -> list[Segment]:
    """All segments of one file, with locators naming it and its content hash.

    ``modality`` overrides detection (forcing "video" on an audio-only file raises
    ``MediaError(..., "no video stream")``); ``sha256``, when given, must still be the file's hash."""
    file = as_media_file(source).require(sha256 or "")
    segments = list(iter_segments(file, modality, config))
    logger.debug("%s: %d %s segments", file.path, len(segments), modality)
    return segments


def decode_at(locator: Locator, config: Optional[SegmentationConfig] = None,
              source: Optional[Source] = None) -> Any:
    """The model input at a raw locator, read from its file; raises if the file's bytes changed."""
    path = Path(locator.uri)
    if source is None and not path.is_file():
        raise MediaError(path, "file named by the locator no longer exists")
    file = as_media_file(source if source is not None else path)
    if file.sha256 != locator.sha256:
        raise MediaError(path, f"content changed since ingestion (sha256 is no longer {locator.sha256[:16]}…)")
    return modality(locator.modality).decode_at(file, locator, config or SegmentationConfig())


@dataclass
class Probed:
    """A probe's outcome: the facts, or why the file could not be probed."""

    facts: MediaFacts = field(default_factory=MediaFacts)
    actual_modality: Optional[str] = None
    error: str = ""


def probe_safely(source: Source, modality_name: str) -> Probed:
    """Probe as ``modality_name``; any failure is this file's problem and comes back as ``error``."""
    out = Probed()
    try:
        file = as_media_file(source)
        out.actual_modality = detect(file)
        out.facts = modality(modality_name).probe(file)
    except MediaError as exc:
        out.error = exc.reason
    except Exception as exc:  # any header a library cannot parse is this file's problem
        out.error = f"cannot decode {modality_name} header: {type(exc).__name__}: {exc}"
    return out
