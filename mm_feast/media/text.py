"""Text: strict UTF-8 decoding and paragraph blocks with exact character offsets.

Decoding is strict (no ``errors="replace"``) because replacement characters would silently
change the text that offsets point into. Every block satisfies
``text[char_start:char_end] == segment.data``, where ``text`` is the file decoded as UTF-8
with a leading BOM removed (see :func:`decode_text`).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterator

from .base import Locator, MediaError, MediaFacts, Segment
from .config import SegmentationConfig
from .file import MediaFile, Source, as_media_file
from .registry import Modality, register

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
# A blank line: a line break, optional horizontal whitespace, another line break.
_PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)\s*")
# End of a sentence: terminal punctuation plus closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\)\]\u201d\u2019]*(?=\s)")
_SPACE = re.compile(r"\s+")


def decode_text(source: Source) -> str:
    """Strict UTF-8 decode; a UTF-8 BOM is dropped and offsets count from after it."""
    file = as_media_file(source)
    p = file.path
    raw = file.bytes()
    skip = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        return raw[skip:].decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise MediaError(p, f"not valid UTF-8 (byte 0x{raw[offset]:02x} at offset {offset})") from exc


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each paragraph, trimmed of surrounding whitespace."""
    spans = []
    pos = 0
    for brk in _PARAGRAPH_BREAK.finditer(text):
        spans.append((pos, brk.start()))
        pos = brk.end()
    spans.append((pos, len(text)))
    trimmed = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            trimmed.append((start, end))
    return trimmed


def _cut_point(text: str, start: int, end: int, max_chars: int) -> int:
    """Where to end a chunk beginning at ``start``: the last sentence end in the allowed
    range if it is in its second half, else the last whitespace, else a hard cut."""
    limit = start + max_chars
    last_sentence = None
    for m in _SENTENCE_END.finditer(text, start, min(end, limit + 1)):
        if m.end() <= limit:
            last_sentence = m.end()
    if last_sentence is not None and last_sentence - start >= max_chars // 2:
        return last_sentence
    last_space = None
    for m in _SPACE.finditer(text, start + 1, min(end, limit + 1)):
        last_space = m.start()
    if last_space is not None and last_space > start:
        return last_space
    if last_sentence is not None:
        return last_sentence
    return limit


def block_spans(text: str, max_chars: int = 1000) -> list[tuple[int, int]]:
    """Paragraphs, with overlong ones split at sentence/whitespace boundaries, as
    ``[start, end)`` offsets of at most ``max_chars`` characters, never empty."""
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    blocks = []
    for start, end in _paragraph_spans(text):
        while end - start > max_chars:
            cut = _cut_point(text, start, end, max_chars)
            chunk_end = cut
            while chunk_end > start and text[chunk_end - 1].isspace():
                chunk_end -= 1
            blocks.append((start, chunk_end))
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if end > start:
            blocks.append((start, end))
    return blocks


def _block_segments(file: MediaFile, max_chars: int) -> Iterator[Segment]:
    """Blocks of the decoded text; ``text[char_start:char_end] == segment.data``."""
    text = decode_text(file)
    if not text.strip():
        raise MediaError(file.path, "text is empty or whitespace-only")
    for index, (start, end) in enumerate(block_spans(text, max_chars)):
        locator = Locator(uri=str(file.path), sha256=file.sha256, modality="text", char_start=start, char_end=end)
        yield Segment(locator=locator, data=text[start:end], extra={"block": index})


def segment_text(source: Source, max_chars: int = 1000) -> list[Segment]:
    return list(_block_segments(as_media_file(source), max_chars))


@register
class TextModality(Modality):
    name = "text"
    extensions = ("txt", "text", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "ndjson",
                  "xml", "html", "htm", "log", "yaml", "yml", "tex", "srt", "vtt")

    def probe(self, file: MediaFile) -> MediaFacts:
        facts = MediaFacts(format="text")
        try:
            text = decode_text(file)
        except MediaError as exc:
            facts.encoding = exc.reason  # the observed value names the bad byte and its offset
            return facts
        facts.encoding = "utf-8"
        facts.chars = float(len(text.strip()))
        return facts

    def iter_segments(self, file: MediaFile, config: SegmentationConfig) -> Iterator[Segment]:
        return _block_segments(file, config.max_chars)

    def decode_at(self, file: MediaFile, locator: Locator, config: SegmentationConfig) -> Any:
        return decode_text(file)[locator.char_start : locator.char_end]
