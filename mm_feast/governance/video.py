"""Content filter for video: the soundtrack goes through the audio filter and the container's
text tags (title, comment, description) through the text filter; findings name the time window
or the tag. Sampled frames will go through the image filter's OCR once it exists."""

from __future__ import annotations

import av

from mm_feast.governance.audio import check_audio
from mm_feast.governance.text import check_text
from mm_feast.governance.thresholds import SafetyThresholds
from mm_feast.governance.verdict import Finding
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


def check_video(file: MediaFile, thresholds: SafetyThresholds) -> list[Finding]:
    findings: list[Finding] = []
    for tag, text in container_tags(file).items():
        findings += check_text(text, thresholds.text, prefix=f"tag:{tag} ")
    try:
        findings += check_audio(file, thresholds.audio, prefix="audio ")
    except MediaError as exc:
        if exc.reason != "no audio stream":
            raise
    return findings
