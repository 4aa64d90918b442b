"""Audio: decode to mono float32 at a fixed rate, then cut fixed windows.

Audio encoders want one channel at one sample rate, so every source (8 kHz mono telephone
audio, 96 kHz 5.1 masters, ...) is normalised here. Window boundaries are computed in
samples at the target rate, so ``start_s``/``end_s`` are exact multiples of
``1 / sample_rate`` and can be used to cut the same span from the source again.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any, Iterator, Optional

import av
import numpy as np

from .base import NAN, Locator, MediaError, MediaFacts, Segment, container_format
from .config import AudioWindowing, SegmentationConfig  # AudioWindowing lived here: its old import path stays
from .file import MediaFile, Source, as_media_file
from .registry import Modality, register

logger = logging.getLogger(__name__)


# Scale factors that map each integer sample format onto [-1, 1).
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Any sample format and channel count -> 1-D float32 mono by averaging channels.

    Done in numpy instead of libswresample because swresample needs a known channel layout
    to build a downmix matrix, and files with unusual channel counts (or WAVs without a
    channel mask) do not always have one. An equal-weight mean works for any count.
    """
    channels = frame.layout.nb_channels
    fmt = frame.format.name.rstrip("p")
    raw = frame.to_ndarray()
    if frame.format.is_planar:
        data = raw.reshape(channels, -1)
    else:  # packed/interleaved: shape (1, samples * channels)
        data = raw.reshape(-1, channels).T
    if fmt == "u8":
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif fmt in _INT_SCALE:
        samples = (data.astype(np.float64) / _INT_SCALE[fmt]).astype(np.float32)
    else:  # flt, dbl
        samples = data.astype(np.float32)
    return samples.mean(axis=0, dtype=np.float32) if channels > 1 else samples[0]


class _Resampler:
    """Mono float32 rate conversion via ``av.AudioResampler``; re-created if the input rate
    changes mid-stream (which a single swresample context cannot follow)."""

    def __init__(self, rate: int):
        self.rate = rate
        self._in_rate: Optional[int] = None
        self._resampler: Optional[av.AudioResampler] = None

    def _run(self, frame: Optional[av.AudioFrame]) -> list[np.ndarray]:
        assert self._resampler is not None
        return [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]

    def push(self, mono: np.ndarray, in_rate: int) -> list[np.ndarray]:
        if in_rate == self.rate and self._resampler is None:
            return [mono]
        out: list[np.ndarray] = []
        if self._in_rate != in_rate:
            if self._resampler is not None:
                out += self._run(None)
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
            self._in_rate = in_rate
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = in_rate
        return out + self._run(frame)

    def flush(self) -> list[np.ndarray]:
        return self._run(None) if self._resampler is not None else []


def _decoded_chunks(file: MediaFile, sample_rate: int) -> Iterator[np.ndarray]:
    """The first audio stream as mono float32 chunks at ``sample_rate``, decoded lazily.

    Decoded samples are taken as contiguous from the stream start (gaps in timestamps are not
    filled)."""
    path = file.path
    try:
        container = av.open(file.open(), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open audio: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        resampler = _Resampler(int(sample_rate))
        decoded = 0
        try:
            for frame in container.decode(stream):
                if frame.samples == 0:
                    continue
                decoded += frame.samples
                yield from resampler.push(_frame_to_mono(frame), frame.sample_rate)
            yield from resampler.flush()
        except (av.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise MediaError(path, f"cannot decode audio: {exc}") from exc
            logger.warning("%s: audio decoding stopped after %d samples: %s", path, decoded, exc)
    if decoded == 0:
        raise MediaError(path, "zero-length audio")


def load_audio(source: Source, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream to 1-D mono float32 at ``sample_rate``."""
    file = as_media_file(source)
    chunks = [c for c in _decoded_chunks(file, sample_rate) if c.size]
    if not chunks:
        raise MediaError(file.path, "zero-length audio")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def native_sample_rate(source: Source) -> int:
    """The first audio stream's own sample rate, from its header."""
    file = as_media_file(source)
    try:
        with av.open(file.open(), mode="r") as container:
            if not container.streams.audio:
                raise MediaError(file.path, "no audio stream")
            rate = int(container.streams.audio[0].sample_rate or 0)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(file.path, f"cannot open audio: {exc}") from exc
    if rate <= 0:
        raise MediaError(file.path, "audio stream has no sample rate")
    return rate


def window_bounds(n_samples: int, windowing: AudioWindowing) -> list[tuple[int, int]]:
    """Sample-index ``[start, end)`` pairs for the windows of an ``n_samples`` signal."""
    return list(_Windower(windowing).bounds(n_samples))


class _Windower:
    """Window arithmetic, shared by the streaming segmenter and :func:`window_bounds`."""

    def __init__(self, windowing: AudioWindowing):
        self.windowing = windowing
        self.rate = int(windowing.sample_rate)
        self.win = max(1, round(windowing.window_s * self.rate))
        self.hop = max(1, round(windowing.hop_s * self.rate))

    def tail(self, next_start: int, last_end: Optional[int], n_samples: int) -> Optional[tuple[int, int]]:
        """The window after the full ones: the whole clip if it is shorter than a window, else the
        first partial window, if it is long enough (later ones, when hop < window, are its subsets)."""
        if n_samples <= 0:
            return None
        if last_end is None:
            return (0, n_samples)
        if next_start < n_samples and last_end < n_samples:
            if n_samples - next_start >= self.windowing.min_last_fraction * self.win:
                return (next_start, n_samples)
            logger.debug("dropping %d-sample tail (< %.2f of a window)", n_samples - next_start,
                         self.windowing.min_last_fraction)
        return None

    def bounds(self, n_samples: int) -> Iterator[tuple[int, int]]:
        start, last_end = 0, None
        if n_samples > self.win:
            while start + self.win <= n_samples:
                yield start, start + self.win
                last_end = start + self.win
                start += self.hop
        tail = self.tail(start, last_end, n_samples)
        if tail is not None:
            yield tail


def _window_segments(file: MediaFile, windowing: AudioWindowing) -> Iterator[Segment]:
    """Mono windows with ``start_s``/``end_s`` in seconds from the start of the audio, cut while
    decoding: memory holds one window and one decoded chunk, not the whole file."""
    w = _Windower(windowing)
    rate = w.rate
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # sample index of buffer[0]
    next_start, last_end = 0, None
    total = 0

    def segment(start: int, end: int) -> Segment:
        locator = Locator(uri=str(file.path), sha256=file.sha256, modality="audio", start_s=start / rate, end_s=end / rate)
        data = buffer[start - buffer_start : end - buffer_start].copy()
        return Segment(locator=locator, data=data, sample_rate=rate)

    for chunk in _decoded_chunks(file, rate):
        buffer = np.concatenate([buffer, chunk.astype(np.float32, copy=False)])
        total += chunk.size
        # a window ending exactly at the end of the clip is only known to be full, not the whole
        # clip, once more audio arrives; so a window is cut when audio beyond it exists
        while next_start + w.win < total:
            yield segment(next_start, next_start + w.win)
            last_end = next_start + w.win
            next_start += w.hop
            drop = min(next_start, total) - buffer_start
            buffer, buffer_start = buffer[drop:], buffer_start + drop
    if total == 0:
        raise MediaError(file.path, "zero-length audio")
    if total > w.win:
        while next_start + w.win <= total:
            yield segment(next_start, next_start + w.win)
            last_end = next_start + w.win
            next_start += w.hop
    tail = w.tail(next_start, last_end, total)
    if tail is not None:
        yield segment(*tail)


def segment_audio(source: Source, windowing: AudioWindowing | None = None) -> list[Segment]:
    return list(_window_segments(as_media_file(source), windowing or AudioWindowing()))


def _audio_facts(file: MediaFile) -> MediaFacts:
    facts = MediaFacts()
    with av.open(file.open()) as container:
        facts.format = container_format(container.format.name, file.path)
        facts.audio_streams = float(len(container.streams.audio))
        facts.video_streams = float(
            sum(1 for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        )
        if not container.streams.audio:
            return facts
        stream = container.streams.audio[0]
        facts.sample_rate = float(stream.sample_rate or NAN)
        facts.channels = float(stream.codec_context.layout.nb_channels or NAN)
        if container.duration:
            declared = container.duration / 1_000_000  # AV_TIME_BASE
        elif stream.duration and stream.time_base:
            declared = float(stream.duration * stream.time_base)
        else:
            declared = NAN
        # Sum of packet durations: the stream's real length, without decoding a sample.
        total = sum(p.duration or 0 for p in container.demux(stream))
        actual = float(Fraction(total) * stream.time_base) if stream.time_base else NAN
    facts.set_duration(declared, actual)
    return facts


@register
class AudioModality(Modality):
    name = "audio"
    extensions = ("wav", "wave", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "aif", "aiff",
                  "aifc", "wma", "amr", "au", "snd", "caf", "mka", "ac3", "spx")

    def probe(self, file: MediaFile) -> MediaFacts:
        return _audio_facts(file)

    def iter_segments(self, file: MediaFile, config: SegmentationConfig) -> Iterator[Segment]:
        return _window_segments(file, config.audio_windowing)

    def decode_at(self, file: MediaFile, locator: Locator, config: SegmentationConfig) -> Any:
        """The window's samples, cut by sample offsets from the file decoded at the view's rate."""
        rate = int(config.audio_windowing.sample_rate)
        audio = load_audio(file, rate)
        return audio[round((locator.start_s or 0.0) * rate) : round((locator.end_s or 0.0) * rate)]
