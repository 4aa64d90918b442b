"""Resumable runs: the items a run has finished are spooled to disk chunk by chunk, so a run
killed halfway (SIGKILL, a lost node, a power cut) and restarted redoes none of them.

An item is finished once it is past the checkpoint stage (encode): its rows, its content-filter
verdict and its notes are in the spool, or its quarantine record is. The spool lives beside the
source's parquet, one folder per model version, one file per chunk, each written whole (a temp
file renamed into place), so a kill mid-write leaves no half file. A restarted run takes from the
spool the items whose content (item id and sha256) is unchanged and runs the rest; the stages
after the checkpoint (the embedding gate, which validates the whole batch) then see the resumed
and the new items together, exactly as an unbroken run would. The spool goes when the run's
rows are in the offline store.

The files are pickles: they are written and read only by mm-feast, inside the repo, which anyone
able to write them could already change the Python of.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from mm_feast.core import faults
from mm_feast.pipeline.stage import Quarantined, Work
from mm_feast.sources import ManifestRow

logger = logging.getLogger(__name__)

SPOOL_DIR = ".spool"
_FORMAT = 2  # bump when Work or Quarantined change shape: older spools are then ignored


def spool_root(sink: Path) -> Path:
    """Every spool of the sources whose parquet sits in ``sink``'s folder."""
    return Path(sink).parent / SPOOL_DIR


def _load(path: Path) -> dict:
    with open(path, "rb") as data:
        return pickle.load(data)


def _items(payload: dict) -> dict[tuple[str, str], Work | Quarantined]:
    """(item_id, sha256) -> the finished work, or its quarantine record, of one spool file."""
    found: dict[tuple[str, str], Work | Quarantined] = {(w.row.item_id, w.row.sha256): w for w in payload["kept"]}
    found.update({(q.work.row.item_id, q.work.row.sha256): q for q in payload["quarantined"]})
    return found


def spooled_items(sink: Path) -> set[tuple[str, str]]:
    """(item_id, sha256) of every item a run in progress (or a killed one) has spooled for the
    source whose parquet is ``sink``, whatever the model version."""
    items: set[tuple[str, str]] = set()
    for path in sorted((spool_root(sink) / Path(sink).stem).glob("*/*.pkl")):
        items |= set(_items(_load(path)))
    return items


def drop_spooled(sinks_folder: Path, sha256s: Sequence[str]) -> int:
    """Delete every spool file of the sources whose parquet sits in ``sinks_folder`` that holds
    any of these contents (an erasure: the spool holds their vectors and text); returns how many
    files went."""
    doomed = set(sha256s)
    dropped = 0
    for path in sorted((Path(sinks_folder) / SPOOL_DIR).glob("*/*/*.pkl")):
        try:
            shas = {sha for _, sha in _items(_load(path))}
        except Exception:  # unreadable: it could hold anything, and a spool is only a cache
            shas = doomed
        if shas & doomed:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


class Spool:
    """The finished items of one source's run in progress, for one model version."""

    def __init__(self, sink: Path, model_version: str, settings: str = ""):
        """``settings``: what else the finished items depend on (segmentation, filter thresholds,
        suites): a restart under other settings finds another folder and redoes everything."""
        self.source_dir = spool_root(sink) / Path(sink).stem
        self.folder = self.source_dir / hashlib.sha256(f"{model_version}|{settings}".encode()).hexdigest()[:16]
        self.model_version = model_version

    def add(self, kept: Sequence[Work], quarantined: Sequence[Quarantined]) -> None:
        """Spool one chunk's finished items (decoded data stripped: only rows are kept)."""
        if not kept and not quarantined:
            return
        payload = {
            "format": _FORMAT,
            "model_version": self.model_version,
            "kept": [replace(w, segments=[]) for w in kept],
            "quarantined": [replace(q, work=replace(q.work, segments=[])) for q in quarantined],
        }
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.pkl"
        tmp = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.folder / name)
        except OSError as exc:  # a full disk: the spool is only a cache, the run goes on without it
            tmp.unlink(missing_ok=True)
            logger.warning("could not spool a finished chunk to %s (%s): a killed run would redo it", self.folder, exc)
            return
        faults.chunk_spooled(len(kept) + len(quarantined))

    def resume(self, rows: Sequence[ManifestRow]) -> tuple[list[Work], list[Quarantined], list[ManifestRow]]:
        """Split ``rows`` into what the spool already finished (kept, quarantined) and the rest.

        Only items whose content is unchanged are taken; each comes back with its current manifest
        row. A spool file that cannot be read is skipped with a warning: its items are redone."""
        finished: dict[tuple[str, str], Work | Quarantined] = {}
        for path in sorted(self.folder.glob("*.pkl")) if self.folder.is_dir() else []:
            try:
                payload = _load(path)
                if payload.get("format") != _FORMAT or payload.get("model_version") != self.model_version:
                    raise ValueError(f"spool format {payload.get('format')} for {payload.get('model_version')}")
                finished.update(_items(payload))
            except Exception as exc:
                logger.warning("ignoring spool file %s (%s): its items are redone", path, exc)
        done_kept: list[Work] = []
        done_quarantined: list[Quarantined] = []
        rest: list[ManifestRow] = []
        for row in rows:
            done = finished.get((row.item_id, row.sha256))
            if isinstance(done, Work):
                done_kept.append(replace(done, row=row))
            elif isinstance(done, Quarantined):
                done_quarantined.append(replace(done, work=replace(done.work, row=row)))
            else:
                rest.append(row)
        if done_kept or done_quarantined:
            logger.info("resuming %s: %d finished items from the spool, %d to do", self.source_dir.name,
                        len(done_kept) + len(done_quarantined), len(rest))
        return done_kept, done_quarantined, rest

    def clear(self) -> None:
        """Drop the source's spool (every model version): its items are in the offline store now."""
        shutil.rmtree(self.source_dir, ignore_errors=True)
