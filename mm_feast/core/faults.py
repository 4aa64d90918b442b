"""Fault-injection seams for crash tests, armed only through environment variables.

A crash test must crash at a known point, not race a poll against the writer. Arming
``MM_FEAST_PAUSE_AFTER_UPSERTS="N:DIR"`` makes the process pause right after its N-th acknowledged
upsert: it writes ``DIR/paused`` (JSON: upserts and rows acknowledged so far) and waits until
``DIR/resume`` exists, so the test can kill the server while writes are in flight. Unarmed, the
seam costs one dictionary lookup per upsert.

``MM_FEAST_PAUSE_AFTER_CHUNKS="N:DIR"`` does the same right after the pipeline spooled its N-th
finished chunk (``mm_feast.pipeline.checkpoint``), with ``chunks`` and ``items`` in ``paused``:
a test then SIGKILLs the driver at a known point of the run and checks the restart resumes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PAUSE_AFTER_UPSERTS_ENV = "MM_FEAST_PAUSE_AFTER_UPSERTS"
PAUSE_DEADLINE_ENV = "MM_FEAST_PAUSE_DEADLINE_S"
_DEFAULT_DEADLINE_S = 600.0

PAUSE_AFTER_CHUNKS_ENV = "MM_FEAST_PAUSE_AFTER_CHUNKS"

_lock = threading.Lock()
_counts: dict[str, list[int]] = {}  # armed variable -> [events, units] so far


def upsert_acknowledged(rows: int) -> None:
    """Called by the online writer after each upsert the store acknowledged."""
    _count(PAUSE_AFTER_UPSERTS_ENV, rows, "upserts", "rows")


def chunk_spooled(items: int) -> None:
    """Called by the pipeline after each finished chunk it spooled to disk."""
    _count(PAUSE_AFTER_CHUNKS_ENV, items, "chunks", "items")


def _count(env: str, units: int, event_name: str, unit_name: str) -> None:
    armed = os.environ.get(env)
    if not armed:
        return
    with _lock:
        counts = _counts.setdefault(env, [0, 0])
        counts[0] += 1
        counts[1] += units
        events, total = counts
    count, _, folder = armed.partition(":")
    if events != int(count):
        return
    pause_dir = Path(folder)
    pause_dir.mkdir(parents=True, exist_ok=True)
    (pause_dir / "paused.tmp").write_text(json.dumps({event_name: events, unit_name: total}))
    (pause_dir / "paused.tmp").replace(pause_dir / "paused")  # appears whole, never half-written
    deadline_s = float(os.environ.get(PAUSE_DEADLINE_ENV, _DEFAULT_DEADLINE_S))
    logger.warning("fault seam: paused after %s %d (%d %s); waiting for %s", event_name, events, total, unit_name,
                   pause_dir / "resume")
    deadline = time.monotonic() + deadline_s
    while not (pause_dir / "resume").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fault seam: {pause_dir / 'resume'} did not appear within {deadline_s:.0f} s")
        time.sleep(0.05)


def reset() -> None:
    """Forget the counts (tests that arm the seam in-process)."""
    with _lock:
        _counts.clear()
