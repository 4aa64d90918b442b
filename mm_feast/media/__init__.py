"""Raw media files into located segments: one module per modality (``image``, ``video``, ``audio``,
``text``), each registering its probe, lazy segmenter and locator decoder in ``registry``.

Importing this package imports every modality module, so the registry is complete before any
caller asks it (``registry`` itself never imports a modality: they depend on it).
"""

from __future__ import annotations

from . import audio, image, registry, text, video  # noqa: F401  (each modality registers itself)
from .audio import load_audio, segment_audio
from .base import MODALITIES, Locator, MediaError, MediaFacts, Segment, sha256_file
from .config import DEFAULT_MAX_PIXELS, AudioWindowing, FrameSampling, SegmentationConfig
from .file import MediaFile, ReadCache
from .image import load_image, segment_image
from .registry import decode_at, detect, iter_segments, probe_safely, segment_file
from .text import decode_text, segment_text
from .video import segment_video, video_duration

__all__ = [
    "AudioWindowing", "DEFAULT_MAX_PIXELS", "EXTENSIONS", "FrameSampling", "Locator", "MODALITIES",
    "MediaError", "MediaFacts", "MediaFile", "ReadCache", "Segment", "SegmentationConfig",
    "decode_at", "decode_text", "detect_modality", "iter_segments", "load_audio", "load_image",
    "probe_safely", "segment_audio", "segment_file", "segment_image",
    "segment_text", "segment_video", "sha256_file", "video_duration",
]

#: File extension -> modality, gathered from the registered modalities.
EXTENSIONS: dict[str, str] = registry.extensions()

detect_modality = detect
