"""Content filter for video: a frame every ``video.ocr_every_s`` seconds goes through the image
filter's OCR (hidden and visible text), the soundtrack through the audio filter, and the
container's text tags (title, comment, description) through the text filter. Findings name the
frame time, the audio window or the tag."""

from __future__ import annotations

import av

from mm_feast.governance.audio import check_audio
from mm_feast.governance.image import check_pixels, ocr_enabled
from mm_feast.governance.text import check_text
from mm_feast.governance.thresholds import SafetyThresholds
from mm_feast.governance.verdict import Finding
from mm_feast.media import FrameSampling, SegmentationConfig, iter_segments
from mm_feast.media.base import MediaError
from mm_feast.media.file import MediaFile


def container_tags(file: MediaFile) -> dict[str, str]:
    try:
        with av.open(file.open()) as container:
            tags = dict(container.metadata or {})
            for stream in container.streams:
                tags.update({f"{stream.type}{stream.index}:{k}": v for k, v in (stream.metadata or {}).items()})
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(file.path, f"cannot open video: {exc}") from exc
    skip = {"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name", "vendor_id", "language", "creation_time"}
    return {k: str(v) for k, v in tags.items() if k.split(":")[-1].lower() not in skip and str(v).strip()}


def check_video(file: MediaFile, thresholds: SafetyThresholds, errors: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    for tag, text in container_tags(file).items():
        findings += check_text(text, thresholds.text, prefix=f"tag:{tag} ")
    if ocr_enabled(thresholds, errors):
        frames = SegmentationConfig(frame_sampling=FrameSampling("every_n_seconds", thresholds.video.ocr_every_s))
        for frame in iter_segments(file, "video", frames):
            findings += check_pixels(frame.data, thresholds, prefix=f"frame {frame.locator.start_s:.2f}s ")
    try:
        findings += check_audio(file, thresholds.audio, prefix="audio ")
    except MediaError as exc:
        if exc.reason != "no audio stream":
            raise
    return findings
