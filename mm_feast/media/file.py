"""A media file read at most once: its bytes, content hash and first bytes, shared by detection,
hashing, probing and decoding.

Hashing, probing and decoding used to open a file each (about five opens per file per
materialize). A :class:`MediaFile` reads the bytes once and hands every reader an in-memory
stream; a :class:`ReadCache` keeps recently read files for the rest of a run within a byte budget,
so the scan's read also serves the decode. A file bigger than the in-memory limit is streamed
from disk instead (its hash in chunks, its decoders from the path): memory stays bounded, and the
price is one more open.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

from .base import MediaError

#: Files up to this size are held in memory after one read; bigger ones are streamed from disk.
IN_MEMORY_LIMIT = 256 << 20
#: What a run's cache may hold at once (decoding a chunk ahead keeps a chunk's files alive).
DEFAULT_CACHE_BUDGET = 512 << 20
_HEAD = 64  # enough for every magic number the detector knows
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileStamp:
    """What ``stat`` says of a file; a changed stamp means the cached bytes are stale."""

    size: int
    mtime_ns: int
    inode: int

    @staticmethod
    def of(path: Path) -> "FileStamp":
        st = path.stat()
        return FileStamp(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class MediaFile:
    """One file's content as read once: ``data`` holds the bytes (None for a streamed big file)."""

    path: Path
    sha256: str
    size: int
    head: bytes
    stamp: FileStamp
    data: Optional[bytes] = None

    @staticmethod
    def read(path: Union[str, Path], in_memory_limit: int = IN_MEMORY_LIMIT) -> "MediaFile":
        """Open ``path`` once: hash it, keep its first bytes, and its bytes if they fit in memory.

        Missing and non-regular files raise :class:`MediaError` with a clear reason (decoders give
        confusing ones for these, e.g. PyAV's "Invalid data found"). An empty file reads fine: it
        has a hash, and the media gate reports it; decoding it fails with "empty file"."""
        p = Path(path)
        try:
            stamp = FileStamp.of(p)
        except FileNotFoundError as exc:
            raise MediaError(p, "no such file") from exc
        except OSError as exc:
            raise MediaError(p, f"cannot read file: {exc.strerror or exc}") from exc
        if not p.is_file():
            raise MediaError(p, "not a regular file")
        try:
            with open(p, "rb") as handle:
                if stamp.size <= in_memory_limit:
                    data = handle.read()
                    return MediaFile(p, hashlib.sha256(data).hexdigest(), len(data), data[:_HEAD], stamp, data)
                digest = hashlib.sha256()
                head = b""
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    head = head or chunk[:_HEAD]
                    digest.update(chunk)
                return MediaFile(p, digest.hexdigest(), stamp.size, head, stamp, None)
        except OSError as exc:
            raise MediaError(p, f"cannot read file: {exc.strerror or exc}") from exc

    def require_content(self) -> "MediaFile":
        if self.size == 0:
            raise MediaError(self.path, "empty file")
        return self

    def open(self) -> Union[BinaryIO, str]:
        """What a decoder opens: an in-memory stream of the bytes read, or the path of a big file."""
        return io.BytesIO(self.data) if self.data is not None else str(self.path)

    def bytes(self) -> bytes:
        """The whole content (a streamed big file is read again: text decoders need all of it)."""
        if self.data is not None:
            return self.data
        return self.path.read_bytes()

    def require(self, sha256: str) -> "MediaFile":
        """This file, if its content is still the one hashed as ``sha256`` (else MediaError)."""
        if sha256 and self.sha256 != sha256:
            raise MediaError(self.path, f"content changed since it was hashed (sha256 is no longer {sha256[:16]}…)")
        return self


Source = Union[str, os.PathLike, MediaFile]


def as_media_file(source: Source, allow_empty: bool = False) -> MediaFile:
    """The file behind ``source``, read now if it is a path; empty content is refused unless
    ``allow_empty`` (only detection, which goes by the name then, takes it)."""
    file = source if isinstance(source, MediaFile) else MediaFile.read(source)
    return file if allow_empty else file.require_content()


class ReadCache:
    """Files read in this run, newest last, evicted oldest-first beyond ``budget`` bytes.

    An entry is served only while the file's stamp (size, mtime, inode) is unchanged, so a file
    edited mid-run is read again and its new hash shows the change. Thread-safe: decoding runs a
    chunk ahead in a worker thread."""

    def __init__(self, budget: int = DEFAULT_CACHE_BUDGET, in_memory_limit: int = IN_MEMORY_LIMIT):
        self.budget = budget
        self.in_memory_limit = min(in_memory_limit, budget)
        self.reads = 0
        self._files: OrderedDict[str, MediaFile] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def read(self, path: Union[str, Path]) -> MediaFile:
        key = str(path)
        p = Path(path)
        with self._lock:
            cached = self._files.get(key)
            if cached is not None:
                try:
                    fresh = FileStamp.of(p) == cached.stamp
                except OSError:
                    fresh = False
                if fresh:
                    self._files.move_to_end(key)
                    return cached
                self._drop(key)
        media_file = MediaFile.read(p, self.in_memory_limit)
        with self._lock:
            self.reads += 1
            self._drop(key)
            self._files[key] = media_file
            self._held += len(media_file.data or b"")
            while self._held > self.budget and len(self._files) > 1:
                self._drop(next(iter(self._files)))
        return media_file

    def _drop(self, key: str) -> None:
        old = self._files.pop(key, None)
        if old is not None:
            self._held -= len(old.data or b"")
