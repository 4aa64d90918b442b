"""Segmentation settings, one record per modality and one that holds them all: what a view
stores in the registry and what every segmenter, query and locator decode reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, Literal, Optional

SamplingMode = Literal["every_n_seconds", "fps", "keyframes"]
_MODES = ("every_n_seconds", "fps", "keyframes")

#: Refuse images above this many pixels (50 MP ~ 150 MB as RGB) to stop decompression bombs.
DEFAULT_MAX_PIXELS = 50_000_000


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



@dataclass(frozen=True)
class SegmentationConfig:
    """Per-modality segmentation settings of one view."""

    frame_sampling: FrameSampling = field(default_factory=FrameSampling)
    audio_windowing: AudioWindowing = field(default_factory=AudioWindowing)
    max_chars: int = 1000
    max_pixels: int = DEFAULT_MAX_PIXELS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "SegmentationConfig":
        """The inverse of :meth:`to_dict`; keys it does not name keep their defaults (records
        written by older versions)."""
        data = {k: v for k, v in dict(data or {}).items() if k in {f.name for f in fields(SegmentationConfig)}}
        frames, windows = data.pop("frame_sampling", None), data.pop("audio_windowing", None)
        config = SegmentationConfig(**data)
        if frames:
            config = replace(config, frame_sampling=FrameSampling(**frames))
        if windows:
            config = replace(config, audio_windowing=AudioWindowing(**windows))
        return config

    def with_sample_rate(self, sample_rate: Optional[int]) -> "SegmentationConfig":
        """The same settings decoding audio at ``sample_rate`` (a model's rate, whatever the file's)."""
        if not sample_rate or int(sample_rate) == self.audio_windowing.sample_rate:
            return self
        return replace(self, audio_windowing=replace(self.audio_windowing, sample_rate=int(sample_rate)))
