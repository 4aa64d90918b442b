"""Fault-injection seams for crash tests, armed only through environment variables.

A crash test must crash at a known point, not race a poll against the writer. Arming
``MM_FEAST_PAUSE_AFTER_UPSERTS="N:DIR"`` makes the process pause right after its N-th acknowledged
upsert: it writes ``DIR/paused`` (JSON: upserts and rows acknowledged so far) and waits until
``DIR/resume`` exists, so the test can kill the server while writes are in flight. Unarmed, the
seam costs one dictionary lookup per upsert.
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

_lock = threading.Lock()
_upserts = 0
_rows = 0


def upsert_acknowledged(rows: int) -> None:
    """Called by the online writer after each upsert the store acknowledged."""
    global _upserts, _rows
    armed = os.environ.get(PAUSE_AFTER_UPSERTS_ENV)
    if not armed:
        return
    with _lock:
        _upserts += 1
        _rows += rows
        upserts, acknowledged = _upserts, _rows
    count, _, folder = armed.partition(":")
    if upserts != int(count):
        return
    pause_dir = Path(folder)
    pause_dir.mkdir(parents=True, exist_ok=True)
    (pause_dir / "paused.tmp").write_text(json.dumps({"upserts": upserts, "rows": acknowledged}))
    (pause_dir / "paused.tmp").replace(pause_dir / "paused")  # appears whole, never half-written
    deadline_s = float(os.environ.get(PAUSE_DEADLINE_ENV, _DEFAULT_DEADLINE_S))
    logger.warning("fault seam: paused after upsert %d (%d rows); waiting for %s", upserts, acknowledged, pause_dir / "resume")
    deadline = time.monotonic() + deadline_s
    while not (pause_dir / "resume").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fault seam: {pause_dir / 'resume'} did not appear within {deadline_s:.0f} s")
        time.sleep(0.05)


def reset() -> None:
    """Forget the counts (tests that arm the seam in-process)."""
    global _upserts, _rows
    with _lock:
        _upserts = _rows = 0
