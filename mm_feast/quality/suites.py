"""Expectation suites: built-in defaults overlaid by YAML files versioned in the Feast repo.

A suite has a ``media`` section (one list per modality, checked on per-item metadata before
decoding) and an ``embeddings`` section (checked on per-row vector statistics before anything is
written). Each entry names a Great Expectations 1.x expectation and a severity::

    media:
      image:
        - name: image_max_pixels            # stable id: quarantine records and overrides use it
          expect: ExpectColumnValuesToBeBetween   # any GE expectation class (or snake_case)
          column: pixels
          max_value: 4000000
          severity: block                   # block: quarantine the row; warn: ingest and record
    embeddings:
      - name: embedding_drift
        enabled: false                      # switch a default off

Files are looked up in ``<repo>/quality/`` and merged by entry name, most general first:
built-in defaults < ``default.yaml`` < ``<media source>.yaml`` < ``<view>.yaml`` <
``<embedding source>.yaml``. String values ``${var}`` are filled from the run (``expected_dim``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import yaml

from mm_feast.core.errors import InvalidArgument

logger = logging.getLogger(__name__)

SEVERITIES = ("block", "warn")
SUITE_DIR = "quality"
_ENTRY_KEYS = {"name", "expect", "severity", "description", "message", "enabled"}
_VAR = re.compile(r"^\$\{(\w+)\}$")

_MB = 1024 * 1024


def _between(name: str, column: str, lo: Any = None, hi: Any = None, severity: str = "block", message: str = "",
             description: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "expect": "ExpectColumnValuesToBeBetween", "column": column}
    if lo is not None:
        entry["min_value"] = lo
    if hi is not None:
        entry["max_value"] = hi
    return {**entry, "severity": severity, "message": message, "description": description}


def _in_set(name: str, column: str, values: list[Any], severity: str = "block", message: str = "",
            description: str = "") -> dict[str, Any]:
    return {"name": name, "expect": "ExpectColumnValuesToBeInSet", "column": column, "value_set": values,
            "severity": severity, "message": message, "description": description}


_DECODABLE = _in_set("decodable", "probe_error", [""], message="unreadable file",
                     description="the file exists, is not empty and its header parses")
_CONTENT_TYPE = {
    "name": "content_type_matches", "expect": "ExpectColumnPairValuesToBeEqual", "column_A": "declared_type",
    "column_B": "actual_type", "severity": "warn", "message": "file name and content disagree",
    "description": "what the file name claims (extension) is what the bytes are; the bytes win either way",
}

#: The built-in suite; repo YAML files overlay it entry by entry (docs/quality.md lists it).
DEFAULT_SUITE: dict[str, Any] = {
    "options": {"data_docs": True, "drift_reference_min_rows": 8},
    "media": {
        "image": [
            _DECODABLE,
            _in_set("image_format", "format", ["jpeg", "png", "gif", "bmp", "tiff", "webp", "ppm"], message="image format not allowed"),
            _CONTENT_TYPE,
            _between("image_width", "width", 8, 16384, message="image width out of bounds"),
            _between("image_height", "height", 8, 16384, message="image height out of bounds"),
            _between("image_max_pixels", "pixels", None, 50_000_000, message="image too large (possible decompression bomb)",
                     description="refused from the header, before any pixel is decoded"),
            _between("image_file_size", "size_bytes", 1, 100 * _MB, message="image file size out of bounds"),
            _in_set("image_mode", "mode", ["RGB", "L"], severity="warn", message="image converted to RGB",
                    description="other modes (palette, alpha, CMYK, 16-bit) are converted to RGB; noted, not refused"),
        ],
        "video": [
            _DECODABLE,
            _between("video_stream", "video_streams", 1, None, message="no video stream"),
            _in_set("video_format", "format", ["mp4", "matroska", "avi", "mpeg", "mpegts", "ogg", "flv", "asf"],
                    message="video container not allowed"),
            _CONTENT_TYPE,
            _between("video_width", "width", 16, 7680, message="video width out of bounds"),
            _between("video_height", "height", 16, 4320, message="video height out of bounds"),
            _between("video_fps", "fps", 1, 240, message="video frame rate out of bounds"),
            _between("video_duration", "duration_s", 0.04, 4 * 3600, message="video too short or too long"),
            _between("video_duration_consistent", "duration_mismatch", None, 0.1, severity="warn",
                     message="container duration disagrees with the stream",
                     description="header duration within 10% of the packets' real duration (locators use the real one)"),
            _between("video_constant_frame_rate", "frame_interval_cv", None, 0.25, severity="warn",
                     message="variable frame rate", description="handled (timestamps come from pts); noted"),
            _between("video_file_size", "size_bytes", 1, 4096 * _MB, message="video file size out of bounds"),
        ],
        "audio": [
            _DECODABLE,
            _between("audio_stream", "audio_streams", 1, None, message="no audio stream"),
            _in_set("audio_format", "format", ["wav", "mp3", "flac", "ogg", "mp4", "aac", "aiff", "matroska"],
                    message="audio format not allowed"),
            _CONTENT_TYPE,
            _between("audio_sample_rate", "sample_rate", 8000, 192000, message="audio sample rate out of bounds"),
            _between("audio_channels", "channels", 1, 8, message="audio channel count out of bounds"),
            _between("audio_duration", "duration_s", 0.01, 4 * 3600, message="zero-length, too short or too long audio"),
            _between("audio_file_size", "size_bytes", 1, 1024 * _MB, message="audio file size out of bounds"),
        ],
        "text": [
            _DECODABLE,
            _in_set("text_encoding", "encoding", ["utf-8"], message="text is not UTF-8"),
            _CONTENT_TYPE,
            _between("text_not_empty", "chars", 1, None, message="text is empty or whitespace-only"),
            _between("text_max_length", "chars", None, 10_000_000, message="text too long"),
            _between("text_file_size", "size_bytes", 1, 64 * _MB, message="text file size out of bounds"),
        ],
    },
    "embeddings": [
        _between("embedding_dim", "dim", "${expected_dim}", "${expected_dim}", message="wrong embedding dimension",
                 description="the model's / view's vector size"),
        _between("embedding_finite", "nonfinite", 0, 0, message="embedding has NaN or infinite values"),
        {"name": "embedding_norm_present", "expect": "ExpectColumnValuesToNotBeNull", "column": "norm", "severity": "block",
         "message": "embedding norm undefined",
         "description": "GE's range checks skip NaN, so a NaN norm needs its own expectation"},
        _between("embedding_norm", "norm", 0.9, 1.1, message="embedding L2 norm out of bounds",
                 description="mm-feast encoders L2-normalise"),
        _between("embedding_not_constant", "value_std", 1e-6, None, message="constant embedding"),
        {"name": "embedding_duplicate_rate", "expect": "ExpectColumnMeanToBeBetween", "column": "duplicate",
         "max_value": 0.5, "severity": "warn", "message": "too many duplicate embeddings",
         "description": "share of rows repeating an earlier row's vector in the batch"},
        {"name": "embedding_drift", "expect": "ExpectColumnMeanToBeBetween", "column": "cos_drop",
         "max_value": 0.25, "severity": "warn", "message": "embeddings drifted from the reference",
         "description": "mean cosine to the stored reference centroid dropped by at most 0.25 from the reference's own"},
    ],
}


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values in full (no &anchors), so printed suites read like suite files."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class SuiteError(InvalidArgument):
    """A suite file that cannot be used; names the file and the entry (a ``ValueError`` too)."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite, as written in YAML."""

    name: str
    expect: str
    kwargs: Mapping[str, Any]
    severity: str = "block"
    description: str = ""
    message: str = ""  # the problem in words, leading the quarantine reason
    origin: str = "built-in"

    @property
    def column(self) -> str:
        return str(self.kwargs.get("column") or self.kwargs.get("column_A") or "")

    @property
    def columns(self) -> tuple[str, ...]:
        names = [self.kwargs.get(k) for k in ("column", "column_A", "column_B")]
        return tuple(str(n) for n in names if n) + tuple(self.kwargs.get("column_list") or ())

    def resolved_kwargs(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Kwargs with ``${var}`` strings replaced by the run's values."""
        out = {}
        for key, value in self.kwargs.items():
            match = _VAR.match(value) if isinstance(value, str) else None
            if match:
                if match.group(1) not in variables:
                    raise SuiteError(f"{self.origin}: expectation '{self.name}' uses ${{{match.group(1)}}}, "
                                     f"which this run does not define (known: {sorted(variables)})")
                value = variables[match.group(1)]
            out[key] = value
        return out

    def expected_text(self, variables: Mapping[str, Any]) -> str:
        """Short human form of what passes, for quarantine reasons."""
        kw = self.resolved_kwargs(variables)
        lo, hi = kw.get("min_value"), kw.get("max_value")
        if lo is not None and hi is not None:
            return f"{self.column} == {lo}" if lo == hi else f"{lo} <= {self.column} <= {hi}"
        if lo is not None:
            return f"{self.column} >= {lo}"
        if hi is not None:
            return f"{self.column} <= {hi}"
        if "value_set" in kw:
            return f"{self.column} in {list(kw['value_set'])}"
        if "column_B" in kw:
            return f"{kw['column_A']} == {kw['column_B']}"
        return self.expect


@dataclass(frozen=True)
class Suite:
    """The effective suite of one source: defaults merged with the repo's files."""

    name: str
    media: Mapping[str, tuple[ExpectationSpec, ...]]
    embeddings: tuple[ExpectationSpec, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    version: str = ""

    def for_media(self, modality: str) -> tuple[ExpectationSpec, ...]:
        return self.media.get(modality, ())

    def to_yaml(self) -> str:
        """The effective suite, in the same form as a suite file."""
        def entries(specs: Iterable[ExpectationSpec]) -> list[dict[str, Any]]:
            return [{"name": s.name, "expect": s.expect, **dict(s.kwargs), "severity": s.severity,
                     **({"message": s.message} if s.message else {}),
                     **({"description": s.description} if s.description else {})} for s in specs]

        doc = {"options": dict(self.options), "media": {m: entries(v) for m, v in self.media.items()},
               "embeddings": entries(self.embeddings)}
        header = f"# effective suite '{self.name}' (version {self.version}) from: {', '.join(self.files) or 'built-in'}\n"
        return header + yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False)


def _parse_entry(raw: Any, origin: str) -> tuple[str, Optional[dict[str, Any]]]:
    """(name, entry) or (name, None) for ``enabled: false``."""
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise SuiteError(f"{origin}: every expectation needs a mapping with a 'name', got {raw!r}")
    name = str(raw["name"])
    if raw.get("enabled", True) is False:
        return name, None
    return name, dict(raw)


def _spec(entry: Mapping[str, Any], origin: str) -> ExpectationSpec:
    name = str(entry["name"])
    if not entry.get("expect"):
        raise SuiteError(f"{origin}: expectation '{name}' has no 'expect' (a GE expectation class name)")
    severity = str(entry.get("severity", "block"))
    if severity not in SEVERITIES:
        raise SuiteError(f"{origin}: expectation '{name}' has severity {severity!r}; use one of {SEVERITIES}")
    kwargs = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
    return ExpectationSpec(name=name, expect=str(entry["expect"]), kwargs=kwargs, severity=severity,
                           description=str(entry.get("description") or ""), message=str(entry.get("message") or ""),
                           origin=origin)


def _merge_list(base: list[tuple[str, Optional[dict]]], overlay: Any, origin: str) -> list[tuple[str, Optional[dict]]]:
    if overlay is None:
        return base
    if not isinstance(overlay, list):
        raise SuiteError(f"{origin}: expected a list of expectations, got {type(overlay).__name__}")
    merged = dict(base)
    for raw in overlay:
        name, entry = _parse_entry(raw, origin)
        if entry is not None and name in merged and merged[name] is not None:
            entry = {**merged[name], **entry}  # an override may change only a threshold
        merged[name] = entry
        if entry is not None:
            entry["_origin"] = origin
    return list(merged.items())


def suite_files(repo_path: Optional[Path], names: Sequence[str]) -> list[Path]:
    """Existing suite files for ``names`` (most specific last), after ``default.yaml``."""
    if repo_path is None:
        return []
    folder = Path(repo_path) / SUITE_DIR
    out: list[Path] = []
    for name in ["default", *names]:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if path.is_file() and path not in out:
                out.append(path)
    return out


def load_suite(repo_path: Optional[Path], names: Sequence[str], suite_name: Optional[str] = None) -> Suite:
    """The effective suite for a source known by ``names`` (general to specific), e.g.
    ``["demo_media", "image_embeddings", "image_embeddings_source"]``."""
    files = suite_files(repo_path, names)
    options = dict(DEFAULT_SUITE["options"])
    media: dict[str, list[tuple[str, Optional[dict]]]] = {
        m: _merge_list([], entries, "built-in") for m, entries in DEFAULT_SUITE["media"].items()
    }
    embeddings = _merge_list([], DEFAULT_SUITE["embeddings"], "built-in")
    digest = hashlib.sha256(json.dumps(DEFAULT_SUITE, sort_keys=True).encode())
    for path in files:
        text = path.read_text(encoding="utf-8")
        digest.update(text.encode())
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise SuiteError(f"{path}: a suite file is a mapping with media/embeddings/options")
        unknown = set(doc) - {"media", "embeddings", "options", "version"}
        if unknown:
            raise SuiteError(f"{path}: unknown sections {sorted(unknown)}; use media, embeddings, options")
        options.update(doc.get("options") or {})
        for modality, entries in (doc.get("media") or {}).items():
            media[modality] = _merge_list(media.get(modality, []), entries, str(path))
        embeddings = _merge_list(embeddings, doc.get("embeddings"), str(path))

    def specs(entries: list[tuple[str, Optional[dict]]]) -> tuple[ExpectationSpec, ...]:
        return tuple(_spec({k: v for k, v in e.items() if k != "_origin"}, e.get("_origin", "built-in"))
                     for _, e in entries if e is not None)

    return Suite(
        name=suite_name or (names[-1] if names else "default"),
        media={m: specs(v) for m, v in media.items()},
        embeddings=specs(embeddings),
        options=options,
        files=tuple(str(p) for p in files),
        version=digest.hexdigest()[:12],
    )
