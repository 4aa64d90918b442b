"""Where a filter's score turns into flag or block: defaults here, overridden per repo by
``<repo>/safety/thresholds.yaml`` (beside the quality suites), so a team tunes them in review."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from mm_feast.core.errors import InvalidArgument
from mm_feast.core.ids import config_hash
from mm_feast.core.yaml_files import load_mapping
from mm_feast.governance.verdict import Level

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = Path("safety") / "thresholds.yaml"


@dataclass(frozen=True)
class Threshold:
    """A score at or above ``block`` blocks, at or above ``flag`` flags (None: never)."""

    flag: Optional[float] = None
    block: Optional[float] = None

    def level(self, score: float) -> Level:
        if self.block is not None and score >= self.block:
            return "block"
        if self.flag is not None and score >= self.flag:
            return "flag"
        return "allow"


@dataclass(frozen=True)
class TextThresholds:
    invisible_chars: Threshold = Threshold(flag=1, block=3)  # zero-width, bidi controls, tags: a count
    bidi_override: Threshold = Threshold(block=1)  # U+202A-202E, U+2066-2069 reorder what a person reads
    tag_chars: Threshold = Threshold(block=1)  # U+E0000-E007F: invisible ASCII a model still reads
    injection_pattern: Threshold = Threshold(block=1)
    # MiniLM: cosine to the nearest injection example minus cosine to the nearest ordinary sentence
    injection_similarity: Threshold = Threshold(flag=0.12, block=0.3)
    mixed_script: Threshold = Threshold(flag=1)  # words mixing scripts with confusable letters


@dataclass(frozen=True)
class AudioThresholds:
    cutoff_hz: float = 17000.0
    ultrasonic_energy: Threshold = Threshold(flag=0.02, block=0.25)  # share of a window's energy above cutoff
    near_silent_carrier: Threshold = Threshold(flag=1.0)  # 1 when a quiet window is one strong tone
    quiet_rms: float = 0.01  # -40 dBFS: below this a window is "near silent"
    carrier_prominence: float = 1000.0  # peak power / median power of a tonal carrier
    clipping: Threshold = Threshold(flag=0.001, block=0.05)  # share of samples at full scale


@dataclass(frozen=True)
class ImageThresholds:
    ocr: bool = True  # read text in the pixels with Tesseract (visible text and hidden text)
    ocr_min_confidence: float = 60.0  # Tesseract's mean word confidence for a line to count
    # WCAG contrast ratio of ink to background under which a person cannot see the text (1 is
    # invisible; 240 on 255 is 1.14; WCAG asks 4.5 of body text)
    hidden_contrast: float = 1.15
    hidden_text: Threshold = Threshold(flag=1)  # letters and digits on a line a person cannot see


@dataclass(frozen=True)
class VideoThresholds:
    ocr_every_s: float = 1.0  # frames through the image filter's OCR: the first at or after each multiple


@dataclass(frozen=True)
class SafetyThresholds:
    text: TextThresholds = field(default_factory=TextThresholds)
    audio: AudioThresholds = field(default_factory=AudioThresholds)
    image: ImageThresholds = field(default_factory=ImageThresholds)
    video: VideoThresholds = field(default_factory=VideoThresholds)


def _merge(record: Any, overrides: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(record)}
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise InvalidArgument(f"{where}: unknown setting '{key}'; expected one of {', '.join(known)}")
        current = getattr(record, key)
        if isinstance(current, Threshold):
            if not isinstance(value, dict) or set(value) - {"flag", "block"}:
                raise InvalidArgument(f"{where}.{key}: expected a mapping with 'flag' and/or 'block'")
            changes[key] = replace(current, **{k: (None if v is None else float(v)) for k, v in value.items()})
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise InvalidArgument(f"{where}.{key}: expected true or false, got {value!r}")
            changes[key] = value
        elif hasattr(current, "__dataclass_fields__"):
            changes[key] = _merge(current, value, f"{where}.{key}")
        else:
            changes[key] = type(current)(value)
    return replace(record, **changes)


def thresholds_hash(thresholds: SafetyThresholds) -> str:
    """Which settings a verdict was reached under (stored with it in the lineage database)."""
    return config_hash(asdict(thresholds))[0]


def load_thresholds(repo_path: Optional[Path]) -> SafetyThresholds:
    """The repo's thresholds (``safety/thresholds.yaml``), or the defaults when it has none."""
    defaults = SafetyThresholds()
    path = Path(repo_path or ".") / THRESHOLDS_FILE
    data = load_mapping(path) if repo_path is not None else None
    return defaults if data is None else _merge(defaults, data, str(path))
