"""Video: sample frames by their true presentation time.

Frames are chosen by comparing each decoded frame's pts (``pts * time_base``, relative to
the stream's ``start_time``) with a sampling grid, never by frame index or nominal fps:
variable-frame-rate files (phone recordings, screen captures) have irregular gaps, and an
index-based locator would point at the wrong moment when the source is re-read later.
Timestamps are computed as exact ``Fraction``s so grid comparisons do not suffer from
float rounding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional

import av
import numpy as np

from .base import NAN, Locator, MediaError, MediaFacts, Segment, container_format
from .config import FrameSampling, SegmentationConfig  # FrameSampling lived here: keep importing it from here working
from .file import MediaFile, Source, as_media_file
from .registry import Modality, register

logger = logging.getLogger(__name__)


def _open(file: MediaFile) -> av.container.InputContainer:
    try:
        return av.open(file.open(), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(file.path, f"cannot open video: {exc}") from exc


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        # Cover art in audio files shows up as a one-frame "video" stream; it is not video.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise MediaError(path, "no video stream")


@dataclass
class _SampledFrame:
    t: Fraction
    pts: int
    key_frame: bool
    rgb: object  # np.ndarray, HxWx3 uint8


class _StreamEnd:
    """End of a video stream = last presentation time + the last frame's declared duration.

    ``stream.duration`` / ``container.duration`` are unusable for this: in mp4 they are built
    from decode timestamps and can end *before* the last frame's pts in VFR files with
    B-frames. Packet durations are ambiguous too: mp4 stores dts deltas (so the packet with
    the largest pts may carry some other frame's gap), while Matroska stores per-frame
    durations. Taking the smaller of the durations of the last-by-pts and last-by-dts packets
    is right for both layouts.
    """

    def __init__(self) -> None:
        self.max_pts: Optional[int] = None
        self.max_pts_duration = 0
        self.max_dts: Optional[int] = None
        self.max_dts_duration = 0

    def update(self, packet: av.Packet) -> None:
        duration = packet.duration or 0
        if packet.pts is not None and (self.max_pts is None or packet.pts >= self.max_pts):
            self.max_pts, self.max_pts_duration = packet.pts, duration
        if packet.dts is not None and (self.max_dts is None or packet.dts >= self.max_dts):
            self.max_dts, self.max_dts_duration = packet.dts, duration

    def seconds(self, stream: av.video.stream.VideoStream) -> Optional[Fraction]:
        """Stream end relative to ``start_time``, or None when no packet had a pts."""
        if self.max_pts is None or stream.time_base is None:
            return None
        durations = [d for d in (self.max_pts_duration, self.max_dts_duration) if d > 0]
        last = min(durations) if durations else 0
        return Fraction(self.max_pts + last - (stream.start_time or 0)) * stream.time_base


def _sampled_frames(file: MediaFile, sampling: FrameSampling) -> Iterator[tuple[_SampledFrame, Optional[Fraction]]]:
    """Decode the stream once, lazily: each sampled frame with the stream end (None until the
    last frame, which comes with the end time).

    Only sampled frames are converted to RGB, so memory grows with the sample count, not with the
    video length; a caller that stops early decodes no further.
    """
    path = file.path
    with _open(file) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        if sampling.mode == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"
        time_base = stream.time_base
        if time_base is None:
            raise MediaError(path, "video stream has no time base")
        start = stream.start_time or 0
        step = sampling.interval()
        next_grid = Fraction(0)
        last_t: Optional[Fraction] = None
        stream_end = _StreamEnd()
        decoded = 0
        held: Optional[_SampledFrame] = None  # one frame of lookahead: its end is the next one's time
        try:
            for packet in container.demux(stream):
                # All packets are demuxed even when the decoder skips non-key frames.
                stream_end.update(packet)
                for frame in packet.decode():
                    decoded += 1
                    if frame.pts is None:
                        logger.warning("%s: skipping video frame without pts", path)
                        continue
                    t = (frame.pts - start) * time_base
                    if last_t is not None and t <= last_t:
                        logger.debug("%s: skipping non-increasing pts %s", path, frame.pts)
                        continue
                    last_t = t
                    if step is not None:
                        if t < next_grid:
                            continue
                        # Smallest grid point strictly after t: one frame per grid cell.
                        next_grid = (t // step + 1) * step
                    if held is not None:
                        yield held, None
                    held = _SampledFrame(t, frame.pts, bool(frame.key_frame), frame.to_ndarray(format="rgb24"))
        except (av.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise MediaError(path, f"cannot decode video: {exc}") from exc
            logger.warning("%s: video decoding stopped after %d frames: %s", path, decoded, exc)
        if last_t is None or held is None:
            raise MediaError(path, "video has zero decodable frames")
        end_t = stream_end.seconds(stream)
        yield held, last_t if end_t is None else max(end_t, last_t)


def _frame_segments(file: MediaFile, sampling: FrameSampling) -> Iterator[Segment]:
    """Sampled frames as RGB segments; ``start_s`` is the frame's presentation time and ``end_s``
    the next sampled frame's time (the stream end for the last one)."""
    previous: Optional[_SampledFrame] = None
    count = 0

    def segment(frame: _SampledFrame, end_t: Fraction) -> Segment:
        locator = Locator(uri=str(file.path), sha256=file.sha256, modality="video",
                          start_s=float(frame.t), end_s=float(end_t))
        return Segment(locator=locator, data=frame.rgb, extra={"pts": frame.pts, "key_frame": frame.key_frame})

    for frame, stream_end in _sampled_frames(file, sampling):
        if previous is not None:
            yield segment(previous, frame.t)
            count += 1
        previous = frame
        if stream_end is not None:
            yield segment(frame, stream_end)
            count += 1
    logger.debug("%s: %d frames sampled (%s)", file.path, count, sampling)


def segment_video(source: Source, sampling: FrameSampling | None = None) -> list[Segment]:
    return list(_frame_segments(as_media_file(source), sampling or FrameSampling()))


def _demux_facts(file: MediaFile, facts: MediaFacts) -> None:
    """Container and stream headers, then one pass over the packets (no decoding) for the real
    duration and the regularity of the frame times."""
    with _open(file) as container:
        facts.format = container_format(container.format.name, file.path)
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        facts.video_streams = float(len(streams))
        facts.audio_streams = float(len(container.streams.audio))
        stream = streams[0] if streams else None
        declared = _container_duration(container, stream)
        if stream is None:
            facts.declared_duration_s = declared
            return
        facts.width, facts.height = float(stream.codec_context.width), float(stream.codec_context.height)
        facts.pixels = facts.width * facts.height
        rate = stream.average_rate or stream.guessed_rate
        facts.fps = float(rate) if rate else NAN
        stream_end = _StreamEnd()
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                stream_end.update(packet)
                if packet.pts is not None:
                    pts.append(packet.pts)
        except av.FFmpegError as exc:
            raise MediaError(file.path, f"cannot read video: {exc}") from exc
        facts.frame_interval_cv = _interval_cv(pts)
        end_t = stream_end.seconds(stream)
        if end_t is None:
            raise MediaError(file.path, "video has zero frames")
        facts.set_duration(declared, float(end_t))


def _container_duration(container: Any, stream: Any) -> float:
    """What the file claims its length is: the container header first, else the stream header."""
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return NAN


def _interval_cv(pts: list[int]) -> float:
    """Coefficient of variation of the gaps between presentation times (0 for constant frame
    rate): a variable-frame-rate file is fine, but worth knowing."""
    if len(pts) < 3:
        return NAN
    gaps = np.diff(np.asarray(sorted(pts), dtype=np.float64))
    gaps = gaps[gaps > 0]
    if gaps.size < 2 or gaps.mean() == 0:
        return NAN
    return float(gaps.std() / gaps.mean())


def video_duration(source: Source) -> float:
    """Length of the first video stream in seconds (see :class:`_StreamEnd`), from packets only."""
    file = as_media_file(source)
    facts = MediaFacts()
    _demux_facts(file, facts)
    if not facts.video_streams:
        raise MediaError(file.path, "no video stream")
    return facts.duration_s


def frame_at(file: MediaFile, t: float, tolerance: float = 5e-4) -> np.ndarray:
    """The RGB frame whose presentation time (relative to the stream start) is ``t`` seconds."""
    with _open(file) as container:
        stream = _video_stream(file.path, container)
        start, time_base = stream.start_time or 0, stream.time_base
        if time_base is None:
            raise MediaError(file.path, "video stream has no time base")
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            frame_t = float((frame.pts - start) * time_base)
            if abs(frame_t - t) <= tolerance:
                return frame.to_ndarray(format="rgb24")
            if frame_t > t + tolerance:
                break
    raise MediaError(file.path, f"no frame with presentation time {t:.3f}s")


@register
class VideoModality(Modality):
    name = "video"
    extensions = ("mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "flv", "mpg", "mpeg", "ts",
                  "m2ts", "mts", "3gp", "3g2", "ogv", "vob", "asf", "mxf", "h264", "hevc")

    def probe(self, file: MediaFile) -> MediaFacts:
        facts = MediaFacts()
        _demux_facts(file, facts)
        return facts

    def iter_segments(self, file: MediaFile, config: SegmentationConfig) -> Iterator[Segment]:
        return _frame_segments(file, config.frame_sampling)

    def decode_at(self, file: MediaFile, locator: Locator, config: SegmentationConfig) -> Any:
        return frame_at(file, float(locator.start_s or 0.0))
