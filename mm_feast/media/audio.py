"""Audio: decode to mono float32 at a fixed rate, then cut fixed windows.

Audio encoders want one channel at one sample rate, so every source (8 kHz mono telephone
audio, 96 kHz 5.1 masters, ...) is normalised here. Window boundaries are computed in
samples at the target rate, so ``start_s``/``end_s`` are exact multiples of
``1 / sample_rate`` and can be used to cut the same span from the source again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import av
import numpy as np

from .base import Locator, MediaError, Segment, require_nonempty_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioWindowing:
    """Fixed-length windows every ``hop_s`` seconds, at ``sample_rate``.

    The trailing partial window (audio left after the last full window) is kept *shorter*,
    not zero-padded, when it holds at least ``min_last_fraction`` of a window: padding would
    invent silence that an encoder then embeds, and the locator's ``end_s`` stays the true
    end of the audio. Encoders needing fixed-length input pad themselves. A clip shorter than
    one window always yields exactly one (short) segment, so short files are never dropped.
    """

    window_s: float = 1.0
    hop_s: float = 1.0
    sample_rate: int = 16000
    min_last_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not self.window_s > 0 or not self.hop_s > 0:
            raise ValueError("AudioWindowing.window_s and hop_s must be > 0")
        if int(self.sample_rate) <= 0:
            raise ValueError("AudioWindowing.sample_rate must be > 0")
        if not 0.0 <= self.min_last_fraction <= 1.0:
            raise ValueError("AudioWindowing.min_last_fraction must be within [0, 1]")


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


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream to 1-D mono float32 at ``sample_rate``.

    Decoded samples are taken as contiguous from the stream start (gaps in timestamps are
    not filled).
    """
    p = require_nonempty_file(path)
    try:
        container = av.open(str(p), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(p, f"cannot open audio: {exc}") from exc
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            raise MediaError(p, "no audio stream")
        stream = container.streams.audio[0]
        resampler = _Resampler(int(sample_rate))
        decoded = 0
        try:
            for frame in container.decode(stream):
                if frame.samples == 0:
                    continue
                decoded += frame.samples
                chunks += resampler.push(_frame_to_mono(frame), frame.sample_rate)
            chunks += resampler.flush()
        except (av.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise MediaError(p, f"cannot decode audio: {exc}") from exc
            logger.warning("%s: audio decoding stopped after %d samples: %s", p, decoded, exc)
    if decoded == 0:
        raise MediaError(p, "zero-length audio")
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise MediaError(p, "zero-length audio")
    return audio


def window_bounds(n_samples: int, windowing: AudioWindowing) -> list[tuple[int, int]]:
    """Sample-index ``[start, end)`` pairs for the windows of an ``n_samples`` signal."""
    rate = int(windowing.sample_rate)
    win = max(1, round(windowing.window_s * rate))
    hop = max(1, round(windowing.hop_s * rate))
    if n_samples <= 0:
        return []
    if n_samples <= win:
        return [(0, n_samples)]
    bounds = []
    start = 0
    while start + win <= n_samples:
        bounds.append((start, start + win))
        start += hop
    # Only the first partial window is needed: later ones (hop < window) are its subsets.
    last_end = bounds[-1][1]
    if start < n_samples and last_end < n_samples:
        if n_samples - start >= windowing.min_last_fraction * win:
            bounds.append((start, n_samples))
        else:
            logger.debug("dropping %d-sample tail (< %.2f of a window)",
                         n_samples - start, windowing.min_last_fraction)
    return bounds


def segment_audio(
    path: str | Path, sha256: str, windowing: AudioWindowing | None = None
) -> list[Segment]:
    """Mono windows with ``start_s``/``end_s`` in seconds from the start of the audio."""
    windowing = windowing or AudioWindowing()
    rate = int(windowing.sample_rate)
    audio = load_audio(path, rate)
    segments = []
    for start, end in window_bounds(audio.size, windowing):
        locator = Locator(uri=str(path), sha256=sha256, modality="audio",
                          start_s=start / rate, end_s=end / rate)
        # copy: a view would keep the whole decoded file alive as long as any window is.
        segments.append(Segment(locator=locator, data=audio[start:end].copy(), sample_rate=rate))
    return segments
