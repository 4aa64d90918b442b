"""What a search query is: text, or a media file (an image, audio, video or a text document).

Kept free of Feast imports, so that ``mm-feast search`` rejects a query file that is missing,
unreadable or undecodable in a fraction of a second, before it opens the feature store.

A value that looks like a path (it has a path separator, or a known media suffix such as
``.jpg``, ``.wav``, ``.mp4`` or ``.txt``) but names no file is an error, never a silent text
query; ``text=True`` (``mm-feast search --text``) takes the value as text whatever it looks like.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Optional

from mm_feast.media import EXTENSIONS, MediaError, decode_text, detect_modality, iter_segments, probe_safely

MAX_PATH_CHARS = 4096  # longer values are always text
QUERY_KINDS = ("text", "image", "audio", "video")


def looks_like_path(value: str) -> bool:
    """True when ``value`` has a path separator or ends in a known media suffix."""
    if not value or len(value) >= MAX_PATH_CHARS or "\n" in value:
        return False
    if os.sep in value or (os.altsep and os.altsep in value):
        return True
    return Path(value).suffix.lower().lstrip(".") in EXTENSIONS


def _fail(path: str | Path, reason: str) -> NoReturn:
    from mm_feast.core.errors import QueryFileError  # imports Feast: only on the error path

    raise QueryFileError(str(path), reason)


def _missing_reason(path: Path) -> str:
    where = f" (relative to {Path.cwd()})" if not path.is_absolute() else ""
    return f"no such file{where}; to search for these words as text, pass --text"


@dataclass(frozen=True)
class Query:
    """What to search with: ``kind`` is text, image, audio or video; ``value`` text or a path.

    ``from_file`` marks a text query read from the text document at ``value``; a query of any
    other kind is always a file.
    """

    kind: str
    value: str
    from_file: bool = False

    @property
    def is_file(self) -> bool:
        return self.from_file or self.kind != "text"

    @staticmethod
    def parse(value: str | Path, kind: Optional[str] = None, text: bool = False) -> "Query":
        """A path to an existing file is a file query; a path-like value naming no file raises
        ``QueryFileError``; anything else is text. ``text`` (or ``kind="text"``) forces text."""
        raw = str(value)
        if text or kind == "text":
            return Query("text", raw)
        if kind is not None and kind not in QUERY_KINDS:
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument(f"unknown query kind {kind!r}; expected one of {', '.join(QUERY_KINDS)}")
        path = Path(raw).expanduser()
        if len(raw) < MAX_PATH_CHARS and path.is_file():
            _check_readable(path)
            if kind is None:
                try:
                    kind = detect_modality(path)
                except MediaError as exc:
                    _fail(path, exc.reason)
            return Query(kind, str(path), from_file=kind == "text")
        if kind is not None or looks_like_path(raw):
            if path.is_dir():
                _fail(raw, "is a directory, not a file")
            if path.exists():
                _fail(raw, "is not a regular file")
            _fail(raw, _missing_reason(path))
        return Query("text", raw)

    def text(self) -> str:
        """The text to encode: the value itself, or the decoded document it names."""
        if not self.from_file:
            return self.value
        try:
            return decode_text(self.value)
        except MediaError as exc:
            _fail(self.value, exc.reason)

    def check(self) -> None:
        """Decode enough of a query file to know it will encode; raises ``QueryFileError`` if not.

        Cheap next to encoding: an image or text is decoded, audio and video up to a first frame.
        """
        if not self.is_file:
            return
        path = Path(self.value)
        if self.kind == "text":
            self.text()
            return
        try:
            next(iter_segments(path, self.kind), None)  # lazy: decodes up to the first segment only
        except ValueError:
            _fail(path, f"cannot search with a {self.kind} query")
        except MediaError as exc:
            _fail(path, exc.reason + _other_stream_hint(path, self.kind, exc.reason))


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1)
    except OSError as exc:
        _fail(path, f"cannot read it: {exc.strerror or exc}")
    if not head:
        _fail(path, "is empty (0 bytes)")


def _other_stream_hint(path: Path, kind: str, reason: str) -> str:
    """" (it has audio: pass --kind audio)" when a file lacks the asked-for stream but has the other."""
    if kind not in ("audio", "video") or reason != f"no {kind} stream":
        return ""
    other = "audio" if kind == "video" else "video"
    facts = probe_safely(path, "audio").facts  # the audio probe counts both kinds of stream
    has_other = (facts.video_streams if other == "video" else facts.audio_streams) > 0
    return f" (it has {other}: pass --kind {other})" if has_other else ""
