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
from typing import Literal, Optional

import av

from .base import Locator, MediaError, Segment, require_nonempty_file

logger = logging.getLogger(__name__)

SamplingMode = Literal["every_n_seconds", "fps", "keyframes"]
_MODES = ("every_n_seconds", "fps", "keyframes")


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video become segments.

    * ``every_n_seconds``: the first frame at or after each multiple of ``value`` seconds.
    * ``fps``: the same with a grid step of ``1 / value`` seconds.
    * ``keyframes``: every keyframe (decoder skips non-key frames: fast); ``value`` unused.

    A grid point that falls inside a gap between frames is served by the next frame; a
    frame serves at most once, so long gaps never produce duplicate frames.
    """

    mode: SamplingMode = "every_n_seconds"
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"FrameSampling.mode must be one of {_MODES}, got {self.mode!r}")
        if self.mode != "keyframes" and not self.value > 0:
            raise ValueError(f"FrameSampling.value must be > 0 for mode {self.mode!r}")

    def interval(self) -> Optional[Fraction]:
        """Grid step in seconds as an exact fraction (None for keyframes)."""
        if self.mode == "keyframes":
            return None
        # Fraction(str(x)) makes 0.1 exactly 1/10 rather than its binary approximation.
        value = Fraction(str(float(self.value)))
        return value if self.mode == "every_n_seconds" else 1 / value


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open video: {exc}") from exc


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


def _decode_sampled(path: Path, sampling: FrameSampling) -> tuple[list[_SampledFrame], Fraction]:
    """Decode the stream once; return the sampled frames and the stream end time.

    Only sampled frames are converted to RGB, so memory grows with the sample count, not
    with the video length.
    """
    sampled: list[_SampledFrame] = []
    container = _open(path)
    with container:
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
                    sampled.append(_SampledFrame(t, frame.pts, bool(frame.key_frame),
                                                 frame.to_ndarray(format="rgb24")))
        except (av.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise MediaError(path, f"cannot decode video: {exc}") from exc
            logger.warning("%s: video decoding stopped after %d frames: %s", path, decoded, exc)
        if last_t is None:
            raise MediaError(path, "video has zero decodable frames")
        end_t = stream_end.seconds(stream)
        return sampled, last_t if end_t is None else max(end_t, last_t)


def segment_video(path: str | Path, sha256: str, sampling: FrameSampling | None = None) -> list[Segment]:
    """Sampled frames as RGB segments; ``start_s`` is the frame's presentation time and
    ``end_s`` the next sampled frame's time (the stream end for the last one)."""
    p = require_nonempty_file(path)
    sampling = sampling or FrameSampling()
    frames, stream_end = _decode_sampled(p, sampling)
    ends = [f.t for f in frames[1:]] + [stream_end]
    segments = []
    for frame, end_t in zip(frames, ends):
        locator = Locator(uri=str(path), sha256=sha256, modality="video",
                          start_s=float(frame.t), end_s=float(end_t))
        extra = {"pts": frame.pts, "key_frame": frame.key_frame}
        segments.append(Segment(locator=locator, data=frame.rgb, extra=extra))
    logger.debug("%s: %d frames sampled (%s)", p, len(segments), sampling)
    return segments


def video_duration(path: str | Path) -> float:
    """Length of the first video stream in seconds (see :class:`_StreamEnd`), from packets
    only, without decoding."""
    p = require_nonempty_file(path)
    with _open(p) as container:
        stream = _video_stream(p, container)
        stream_end = _StreamEnd()
        try:
            for packet in container.demux(stream):
                stream_end.update(packet)
        except av.FFmpegError as exc:
            raise MediaError(p, f"cannot read video: {exc}") from exc
        end_t = stream_end.seconds(stream)
        if end_t is None:
            raise MediaError(p, "video has zero frames")
        return float(end_t)
