"""Content filter for text: characters a person cannot see, prompt injection (patterns, then
meaning), and words that mix scripts with look-alike letters.

It runs on the decoded text before any model sees it, and on text found inside other media
(image metadata, video tags). Findings locate character spans in the text as given."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from mm_feast.governance.thresholds import TextThresholds
from mm_feast.governance.verdict import Finding

logger = logging.getLogger(__name__)

EXAMPLES_FILE = Path(__file__).with_name("injection_examples.txt")
BENIGN_FILE = Path(__file__).with_name("benign_examples.txt")
SEMANTIC_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x180E, 0xFEFF}
BIDI_OVERRIDES = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))
TAGS = range(0xE0000, 0xE0080)

# Families of injection phrasing; matched on the text with invisible characters removed and
# compatibility forms folded (NFKC), so "ig\u200bnore" and full-width letters are caught too.
PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b.{0,40}\b(instructions?|prompts?|directions?|rules|guidelines|context)\b",
    r"\byou are (now|no longer)\b",
    r"\b(act|pretend|behave) as\b.{0,40}\b(unrestricted|jailbroken|dan|no rules|without (any )?(rules|restrictions))\b",
    r"\b(reveal|print|show|output|repeat)\b.{0,30}\b(system prompt|hidden instructions|your instructions)\b",
    r"\bnew instructions?\s*:",
    r"^\s*#{2,}\s*system\b",
    r"\b(approve|accept|verify|mark)\b.{0,30}\b(this|the)\b.{0,20}\b(claim|request|document|item)\b.{0,40}\b(regardless|no matter|without (review|checking))\b",
    r"\bdo not (mention|reveal|tell)\b.{0,40}\b(this|these) instructions?\b",
]
_PATTERNS = [re.compile(p, re.IGNORECASE | re.MULTILINE | re.DOTALL) for p in PATTERNS]
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"\w+", re.UNICODE)


def _kind(char: str) -> Optional[str]:
    code = ord(char)
    if code in BIDI_OVERRIDES:
        return "bidi_override"
    if code in TAGS:
        return "tag_chars"
    if code in ZERO_WIDTH:
        return "invisible_chars"
    if unicodedata.category(char) in ("Cc", "Cf") and char not in "\t\n\r":
        return "invisible_chars"
    return None


def _visible(text: str) -> tuple[str, list[int]]:
    """The text without invisible characters, NFKC-folded per character, with each output
    character's offset in the original (so findings point into what the user has)."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if _kind(char) is not None:
            continue
        folded = unicodedata.normalize("NFKC", char)
        out.append(folded)
        origin += [index] * len(folded)
    return "".join(out), origin


def _span(origin: list[int], start: int, end: int, length: int) -> str:
    if not origin:
        return f"chars 0-{length}"
    return f"chars {origin[min(start, len(origin) - 1)]}-{origin[min(end, len(origin)) - 1] + 1}"


def _lines(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _examples() -> tuple[str, ...]:
    return _lines(EXAMPLES_FILE)


@lru_cache(maxsize=2)
def _vectors(path: Path) -> np.ndarray:
    return _encoder().encode("text", list(_lines(path)))


@lru_cache(maxsize=1)
def _encoder():
    """The filter's own MiniLM: its calls are not a view's encoder calls (the run summary's
    ``encoder_calls`` counts what the views' models did)."""
    from mm_feast.encoders.cache import load_encoder

    return load_encoder(SEMANTIC_MODEL)


def invisible_findings(text: str, thresholds: TextThresholds, prefix: str = "") -> list[Finding]:
    """One finding per kind of hidden character: how many, and the span from first to last."""
    found: dict[str, list[int]] = {}
    for index, char in enumerate(text):
        kind = _kind(char)
        if kind is not None and not (ord(char) == 0xFEFF and index == 0):  # a leading BOM is harmless
            found.setdefault(kind, []).append(index)
    findings = []
    for kind, where in found.items():
        count = len(where)
        codes = ", ".join(dict.fromkeys(f"U+{ord(text[i]):04X}" for i in where))
        threshold = getattr(thresholds, kind)
        findings.append(Finding(kind, f"{prefix}chars {where[0]}-{where[-1] + 1}", float(count), threshold.level(count),
                                f"{count} character(s) a reader cannot see ({codes})"))
    return findings


def pattern_findings(text: str, thresholds: TextThresholds, prefix: str = "") -> list[Finding]:
    visible, origin = _visible(text)
    findings = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(visible):
            snippet = " ".join(match.group(0).split())[:80]
            findings.append(Finding("injection_pattern", prefix + _span(origin, match.start(), match.end(), len(text)), 1.0,
                                    thresholds.injection_pattern.level(1.0), f'instruction-like text: "{snippet}"'))
    return findings


def semantic_findings(text: str, thresholds: TextThresholds, prefix: str = "") -> list[Finding]:
    """The sentence that reads most like a curated injection example (MiniLM), scored by how much
    closer it is to the nearest injection than to the nearest ordinary sentence on the same topics
    (approvals, claims, instructions): topic alone does not make text an injection."""
    visible, origin = _visible(text)
    sentences = [(m.start(), m.end(), m.group(0).strip()) for m in _SENTENCE.finditer(visible) if len(m.group(0).strip()) >= 12]
    if not sentences:
        return []
    vectors = _encoder().encode("text", [s for _, _, s in sentences])
    injection = vectors @ _vectors(EXAMPLES_FILE).T
    benign = (vectors @ _vectors(BENIGN_FILE).T).max(axis=1)
    margins = injection.max(axis=1) - benign
    best = int(np.argmax(margins))
    score = float(margins[best])
    nearest = _examples()[int(np.argmax(injection[best]))]
    start, end, sentence = sentences[best]
    level = thresholds.injection_similarity.level(score)
    return [Finding("injection_similarity", prefix + _span(origin, start, end, len(text)), round(score, 4), level,
                    f'"{sentence[:60]}" reads like "{nearest}" (cosine margin {score:.2f} over ordinary text)')]


def homoglyph_findings(text: str, thresholds: TextThresholds, prefix: str = "") -> list[Finding]:
    """Words that mix scripts with letters confusable with another script's ('pаypal' with a
    Cyrillic а); pure non-Latin words are fine."""
    from confusable_homoglyphs import confusables

    findings = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word.isascii() or len(word) < 3:
            continue
        if confusables.is_dangerous(word):
            findings.append(Finding("mixed_script", f"{prefix}chars {match.start()}-{match.end()}", 1.0,
                                    thresholds.mixed_script.level(1.0), f'"{word}" mixes scripts with look-alike letters'))
    return findings


def check_text(text: str, thresholds: TextThresholds, prefix: str = "", semantic: bool = True) -> list[Finding]:
    """Every text finding; ``prefix`` names where the text came from (``exif:ImageDescription ``)."""
    findings = invisible_findings(text, thresholds, prefix) + pattern_findings(text, thresholds, prefix)
    findings += homoglyph_findings(text, thresholds, prefix)
    if semantic and text.strip():
        findings += semantic_findings(text, thresholds, prefix)
    return findings
