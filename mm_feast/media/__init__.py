"""Decoding and segmentation of raw media files into located segments.

One module per modality (``image``, ``video``, ``audio``, ``text``) over the shared records
in ``base``; :func:`segment_file` picks the modality and dispatches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .audio import AudioWindowing, load_audio, segment_audio
from .base import MODALITIES, Locator, MediaError, Segment, require_nonempty_file, sha256_file
from .image import DEFAULT_MAX_PIXELS, load_image, segment_image
from .text import decode_text, segment_text
from .video import FrameSampling, segment_video, video_duration

logger = logging.getLogger(__name__)

__all__ = [
    "AudioWindowing", "DEFAULT_MAX_PIXELS", "FrameSampling", "Locator", "MODALITIES",
    "MediaError", "Segment", "SegmentationConfig", "decode_text", "detect_modality",
    "load_audio", "load_image", "segment_audio", "segment_file", "segment_image",
    "segment_text", "segment_video", "sha256_file", "video_duration",
]

EXTENSIONS: dict[str, str] = {
    **dict.fromkeys(
        ["jpg", "jpeg", "jpe", "jfif", "png", "gif", "bmp", "dib", "tif", "tiff", "webp",
         "ppm", "pgm", "pbm", "pnm", "ico", "tga", "jp2", "j2k", "pcx", "psd"], "image"),
    **dict.fromkeys(
        ["mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "flv", "mpg", "mpeg", "ts",
         "m2ts", "mts", "3gp", "3g2", "ogv", "vob", "asf", "mxf", "h264", "hevc"], "video"),
    **dict.fromkeys(
        ["wav", "wave", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "aif", "aiff",
         "aifc", "wma", "amr", "au", "snd", "caf", "mka", "ac3", "spx"], "audio"),
    **dict.fromkeys(
        ["txt", "text", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "ndjson",
         "xml", "html", "htm", "log", "yaml", "yml", "tex", "srt", "vtt"], "text"),
}

# Containers that can hold audio only or video: their magic bytes do not settle the modality.
_AMBIGUOUS = "audio/video"


def _sniff(head: bytes) -> Optional[str]:
    """Modality from magic bytes, ``_AMBIGUOUS`` for audio/video containers, else None."""
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
        return _AMBIGUOUS
    if head[:4] in (b"\x1aE\xdf\xa3", b"OggS"):
        return _AMBIGUOUS
    if head[:3] == b"FLV" or head[:4] == b"\x00\x00\x01\xba" or \
            head[:4] == b"\x30\x26\xb2\x75":
        return "video"
    return None


def _probe_av(path: Path) -> Optional[str]:
    """Ask FFmpeg which streams an ambiguous container holds."""
    import av

    try:
        with av.open(str(path)) as container:
            for stream in container.streams.video:
                if not stream.disposition & av.stream.Disposition.attached_pic:
                    return "video"
            if container.streams.audio:
                return "audio"
    except (av.FFmpegError, OSError, ValueError) as exc:
        logger.debug("%s: probe failed: %s", path, exc)
    return None


def detect_modality(path: str | Path) -> str:
    """Modality of a file: magic bytes win over the extension (a PNG named ``.jpg`` is an
    image, an MP4 named ``.txt`` is video), the extension decides when content is not
    recognisable (text has no magic) or the container can hold either audio or video."""
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    by_ext = EXTENSIONS.get(ext)
    try:
        with open(p, "rb") as handle:
            head = handle.read(64)
    except FileNotFoundError as exc:
        raise MediaError(p, "no such file") from exc
    except OSError as exc:
        raise MediaError(p, f"cannot read file: {exc}") from exc
    sniffed = _sniff(head)
    if sniffed == _AMBIGUOUS:
        if by_ext in ("audio", "video"):
            return by_ext
        sniffed = _probe_av(p)
    if sniffed is not None:
        if by_ext is not None and sniffed != by_ext:
            logger.info("%s: content is %s despite extension '.%s'", p, sniffed, ext)
        return sniffed
    if by_ext is None:
        raise MediaError(p, f"unsupported file type '.{ext}'" if ext else
                         "unsupported file type (no extension, content not recognised)")
    return by_ext


@dataclass(frozen=True)
class SegmentationConfig:
    """Per-modality segmentation settings used by :func:`segment_file`."""

    frame_sampling: FrameSampling = field(default_factory=FrameSampling)
    audio_windowing: AudioWindowing = field(default_factory=AudioWindowing)
    max_chars: int = 1000
    max_pixels: int = DEFAULT_MAX_PIXELS


def segment_file(
    path: str | Path,
    modality: Optional[str] = None,
    config: Optional[SegmentationConfig] = None,
    sha256: Optional[str] = None,
) -> list[Segment]:
    """Segments of one file, with locators naming ``path`` and its content hash.

    ``modality`` overrides detection (e.g. forcing "video" on an audio-only file raises
    ``MediaError(..., "no video stream")``).
    """
    p = require_nonempty_file(path)
    config = config or SegmentationConfig()
    if modality is None:
        modality = detect_modality(p)
    elif modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    digest = sha256 or sha256_file(p)
    if modality == "image":
        segments = segment_image(path, digest, max_pixels=config.max_pixels)
    elif modality == "video":
        segments = segment_video(path, digest, config.frame_sampling)
    elif modality == "audio":
        segments = segment_audio(path, digest, config.audio_windowing)
    else:
        segments = segment_text(path, digest, max_chars=config.max_chars)
    logger.debug("%s: %d %s segments", p, len(segments), modality)
    return segments
