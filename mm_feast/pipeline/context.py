"""One run's shared state: each media source is scanned once, each source ingested once, and
every repeated read is served from memory, so pooled and fused views reuse their parents' rows
from the same run instead of re-reading them.

A ``RunContext`` is made by the compute engine for one `feast materialize`; code that runs without
one (the `mm-feast ingest` command, tests) gets a fresh context per call.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, TypeVar

from mm_feast.media import MediaFile, ReadCache
from mm_feast.media.registry import Probed, probe_safely

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunContext:
    """What one pipeline run has already done."""

    repo_path: Optional[Path]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    end_time: Optional[datetime] = None
    show_progress: bool = True
    batch_size: int = 32
    runner: Optional[Any] = None  # runs the stage lists: a LocalRunner when None, or a RayRunner
    files: ReadCache = field(default_factory=ReadCache)
    _memo: dict[Hashable, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _key_locks: dict[Hashable, threading.RLock] = field(default_factory=dict)

    def once(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for in this run; the same value afterwards.

        Computing holds only that key's lock, never the context's: a stage's worker thread must be
        able to read the context while the main thread computes (a nested ``once`` included)."""
        with self._key_lock(key):
            with self._lock:
                if key in self._memo:
                    return self._memo[key]
            value = compute()
            with self._lock:
                self._memo[key] = value
            return value

    def read(self, uri: str) -> MediaFile:
        """The file's bytes and hash, read once per run while they fit the cache's budget: the scan's
        read serves the probe and the decode of every view."""
        return self.files.read(uri)

    def probe(self, uri: str, sha256: str, modality: str) -> Probed:
        """Header facts of one file as ``modality``, probed once per run for every view of it."""
        return self.once(("probe", uri, sha256, modality), lambda: _probe(self.read(uri), sha256, modality))

    def _key_lock(self, key: Hashable) -> threading.RLock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.RLock())

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._memo[key] = value

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._memo.get(key, default)

    def values(self, kind: str) -> list[Any]:
        """What ``once`` computed for keys ``(kind, ...)``, in the order it computed them."""
        with self._lock:
            return [v for k, v in self._memo.items() if isinstance(k, tuple) and k[0] == kind]


def _probe(file: MediaFile, sha256: str, modality: str) -> Probed:
    if sha256 and file.sha256 != sha256:
        return Probed(error=f"content changed since it was scanned (sha256 is no longer {sha256[:16]}…)")
    return probe_safely(file, modality)


@dataclass
class _Shared:
    value: Any
    uses_left: int


def shared(context: Optional[RunContext], key: Hashable, uses: int, compute: Callable[[], T]) -> T:
    """A value that ``uses`` consumers of this run each take once (decoded segments that two views
    of one modality encode): computed on the first take and dropped after the last, so memory holds
    only what is still owed to someone."""
    if context is None or uses <= 1:
        return compute()
    memo_key = ("shared", key)
    with context._key_lock(memo_key):
        with context._lock:
            entry = context._memo.get(memo_key)
        if entry is None:
            entry = _Shared(compute(), uses)  # decoded outside the context's lock
        with context._lock:
            entry.uses_left -= 1
            if entry.uses_left <= 0:
                context._memo.pop(memo_key, None)
                context._key_locks.pop(memo_key, None)
            else:
                context._memo[memo_key] = entry
        return entry.value
