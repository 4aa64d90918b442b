"""Cheap per-item media metadata (headers and packets, no pixel or sample decoding) for the media gate.

The media gate validates one table of these facts per ingest batch, so a decompression bomb or a
96-channel WAV is refused from its header before any decoder allocates memory for it. Decoding
itself stays the segmenters' job: a file whose header is fine but whose data is broken (a
truncated JPEG) is quarantined at the decode stage with the segmenter's reason.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mm_feast.media import EXTENSIONS, MediaError, decode_text, detect_modality, video_duration

logger = logging.getLogger(__name__)

NAN = float("nan")

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


def declared_format(path: Path) -> str:
    """The format a file's name promises (its extension), e.g. ``photo.jpg`` -> ``jpeg``."""
    return canonical_format(path.suffix) if path.suffix else ""


def _av_format(container_format: str, declared: str) -> str:
    """FFmpeg names demuxer families ("mov,mp4,m4a,3gp,3g2,mj2"): the declared name if it is
    in the family, else the family's first name."""
    family = [canonical_format(n) for n in container_format.split(",") if n]
    if declared and declared in family:
        return declared
    return family[0] if family else ""


@dataclass
class MediaInfo:
    """What the media gate sees of one item; NaN/None where a fact does not apply or is unknown
    (GE's column expectations skip those, so a file that could not be probed fails ``decodable``
    alone, not every check that needed the missing facts)."""

    row_id: str
    item_id: str
    uri: str
    modality: str
    size_bytes: int
    probe_error: str = ""
    declared_type: Optional[str] = None
    actual_type: Optional[str] = None
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

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def _image_facts(info: MediaInfo, path: Path) -> None:
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow warns above ~89 MP; the gate's own pixel limit decides, with the real count.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            info.format = canonical_format(img.format or "")
            info.width, info.height = float(img.width), float(img.height)
            info.pixels = float(img.width) * float(img.height)
            info.mode = img.mode


def _relative_mismatch(declared: float, actual: float) -> float:
    if math.isnan(declared) or math.isnan(actual):
        return NAN
    return abs(declared - actual) / max(actual, 1e-3)


def _container_duration(container: Any, stream: Any) -> float:
    """What the file claims its length is: the container header first, else the stream header."""
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return NAN


def _frame_interval_cv(container: Any, stream: Any) -> float:
    """Coefficient of variation of the gaps between presentation times (0 for constant frame
    rate), from packets only: a variable-frame-rate file is fine, but worth knowing."""
    pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
    if len(pts) < 3:
        return NAN
    gaps = np.diff(np.asarray(pts, dtype=np.float64))
    gaps = gaps[gaps > 0]
    if gaps.size < 2 or gaps.mean() == 0:
        return NAN
    return float(gaps.std() / gaps.mean())


def _video_facts(info: MediaInfo, path: Path, declared: str) -> None:
    import av

    with av.open(str(path)) as container:
        info.format = _av_format(container.format.name, declared)
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        info.video_streams = float(len(streams))
        info.audio_streams = float(len(container.streams.audio))
        stream = streams[0] if streams else None
        info.declared_duration_s = _container_duration(container, stream)
        if stream is None:
            return
        info.width, info.height = float(stream.codec_context.width), float(stream.codec_context.height)
        info.pixels = info.width * info.height
        rate = stream.average_rate or stream.guessed_rate
        info.fps = float(rate) if rate else NAN
        info.frame_interval_cv = _frame_interval_cv(container, stream)
    info.duration_s = video_duration(path)  # from packets: the truth the segmenter will use
    info.duration_mismatch = _relative_mismatch(info.declared_duration_s, info.duration_s)


def _audio_facts(info: MediaInfo, path: Path, declared: str) -> None:
    import av

    with av.open(str(path)) as container:
        info.format = _av_format(container.format.name, declared)
        info.audio_streams = float(len(container.streams.audio))
        info.video_streams = float(
            sum(1 for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        )
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        info.sample_rate = float(stream.sample_rate or NAN)
        info.channels = float(stream.codec_context.layout.nb_channels or NAN)
        info.declared_duration_s = _container_duration(container, stream)
        # Sum of packet durations: the stream's real length, without decoding a sample.
        total = sum(p.duration or 0 for p in container.demux(stream))
        if stream.time_base:
            info.duration_s = float(Fraction(total) * stream.time_base)
    info.duration_mismatch = _relative_mismatch(info.declared_duration_s, info.duration_s)


def _text_facts(info: MediaInfo, path: Path) -> None:
    info.format = "text"
    try:
        text = decode_text(path)
    except MediaError as exc:
        info.encoding = exc.reason  # the observed value names the bad byte and its offset
        return
    info.encoding = "utf-8"
    info.chars = float(len(text.strip()))


def probe(row_id: str, item_id: str, uri: str, modality: str, size_bytes: int = 0) -> MediaInfo:
    """Facts about one file for the media gate; a file that cannot be probed gets ``probe_error``."""
    path = Path(uri)
    info = MediaInfo(row_id=row_id, item_id=item_id, uri=uri, modality=modality, size_bytes=int(size_bytes))
    declared = declared_format(path)
    try:
        if not path.is_file():
            raise MediaError(path, "no such file")
        info.size_bytes = path.stat().st_size
        if info.size_bytes == 0:
            raise MediaError(path, "empty file")
        actual_modality = detect_modality(path)
        if modality == "image":
            _image_facts(info, path)
        elif modality == "video":
            _video_facts(info, path, declared)
        elif modality == "audio":
            _audio_facts(info, path, declared)
        else:
            _text_facts(info, path)
        info.actual_type = f"{actual_modality}/{info.format or '?'}"
        if modality == "text":  # text has no magic bytes: only a non-text file contradicts its name
            info.declared_type = f"text/{'text' if actual_modality == 'text' else declared or '?'}"
        else:
            info.declared_type = f"{EXTENSIONS.get(path.suffix.lower().lstrip('.'), modality)}/{declared or '?'}"
    except MediaError as exc:
        info.probe_error = exc.reason
    except Exception as exc:  # any header a library cannot parse is this file's problem
        info.probe_error = f"cannot decode {modality} header: {type(exc).__name__}: {exc}"
    if info.probe_error:
        logger.debug("%s: probe failed: %s", uri, info.probe_error)
    return info
