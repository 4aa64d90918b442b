"""The spool behind resumable runs: what a killed run finished comes back, for unchanged content
only, in the model version it was made with; a half-written or foreign file is never trusted,
and an erasure leaves none of the content behind."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mm_feast.core import faults
from mm_feast.pipeline.checkpoint import Spool, drop_spooled, spooled_items
from mm_feast.pipeline.stage import Quarantined, Work
from mm_feast.sources import ManifestRow

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


def row(item: str, sha: str = "") -> ManifestRow:
    return ManifestRow(item, f"/media/{item}.txt", "text", NOW, sha256=sha or f"sha-{item}")


def finished(item: str, sha: str = "") -> Work:
    work = Work(row(item, sha), segments=["decoded data that must not be spooled"], safety="allow", notes=[f"{item}: ok"])
    work.rows = [{"item_id": item, "embedding": np.arange(4, dtype=np.float32) + len(item)}]
    return work


def test_a_restart_takes_the_finished_items_and_runs_the_rest(tmp_path: Path):
    sink = tmp_path / "embeddings" / "text_source.parquet"
    spool = Spool(sink, "v1")
    spool.add([finished("a"), finished("b")], [])
    spool.add([], [Quarantined(finished("c"), "decode", "not UTF-8", {"locator": "c#0"})])

    kept, refused, rest = Spool(sink, "v1").resume([row("a"), row("b"), row("c"), row("d")])

    assert [w.row.item_id for w in kept] == ["a", "b"] and [w.segments for w in kept] == [[], []]
    assert kept[0].safety == "allow" and kept[0].notes == ["a: ok"]
    np.testing.assert_array_equal(kept[1].rows[0]["embedding"], np.arange(4, dtype=np.float32) + 1)
    assert [(q.work.row.item_id, q.stage, q.reason, q.details) for q in refused] == [("c", "decode", "not UTF-8", {"locator": "c#0"})]
    assert [r.item_id for r in rest] == ["d"]
    assert spooled_items(sink) == {("a", "sha-a"), ("b", "sha-b"), ("c", "sha-c")}


def test_changed_content_and_another_model_version_are_redone(tmp_path: Path):
    sink = tmp_path / "text_source.parquet"
    Spool(sink, "v1").add([finished("a"), finished("b")], [])

    kept, _, rest = Spool(sink, "v1").resume([row("a", "edited"), row("b")])
    assert [w.row.item_id for w in kept] == ["b"] and [(r.item_id, r.sha256) for r in rest] == [("a", "edited")]

    kept, _, rest = Spool(sink, "v2").resume([row("a"), row("b")])
    assert kept == [] and len(rest) == 2


def test_an_unreadable_spool_file_is_skipped_and_its_items_redone(tmp_path: Path, caplog):
    sink = tmp_path / "text_source.parquet"
    spool = Spool(sink, "v1")
    spool.add([finished("a")], [])
    (spool.folder / "99999999999999999999-garbage.pkl").write_bytes(b"not a pickle")
    (spool.folder / ".half-written.pkl.tmp").write_bytes(b"\x80")  # a kill mid-write leaves only a temp file

    kept, _, rest = Spool(sink, "v1").resume([row("a"), row("b")])

    assert [w.row.item_id for w in kept] == ["a"] and [r.item_id for r in rest] == ["b"]
    assert "ignoring spool file" in caplog.text and "garbage.pkl" in caplog.text


def test_clear_drops_every_version_and_an_erasure_drops_the_files_holding_the_content(tmp_path: Path):
    sink = tmp_path / "text_source.parquet"
    Spool(sink, "v1").add([finished("a")], [])
    Spool(sink, "v1").add([finished("b")], [])
    Spool(sink, "v2").add([finished("a")], [])

    assert drop_spooled(sink.parent, ["sha-a"]) == 2
    assert spooled_items(sink) == {("b", "sha-b")}
    Spool(sink, "v1").clear()
    assert spooled_items(sink) == set() and not (tmp_path / ".spool" / "text_source").exists()


def test_the_fault_seam_pauses_after_the_nth_spooled_chunk(tmp_path: Path, monkeypatch):
    pause = tmp_path / "pause"
    pause.mkdir()
    (pause / "resume").touch()  # released at once: the test checks the marker, not the wait
    monkeypatch.setenv(faults.PAUSE_AFTER_CHUNKS_ENV, f"2:{pause}")
    faults.reset()
    spool = Spool(tmp_path / "s.parquet", "v1")
    spool.add([finished("a")], [])
    assert not (pause / "paused").exists()
    spool.add([finished("b"), finished("c")], [])
    assert (pause / "paused").read_text() == '{"chunks": 2, "items": 3}'
    faults.reset()
