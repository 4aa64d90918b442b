"""The bad-input corpus through the ingest pipeline and its media gate (real GE 1.x, real models).

Every file is either processed correctly (ingested, with any warning recorded in the run's
validation report) or quarantined with the failed expectation, the observed value and its locator;
no file stops the batch, and seen = ingested + quarantined on every run.
"""

from __future__ import annotations

import io
import json
import struct
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mm_feast.core import faults
from mm_feast.pipeline.checkpoint import spooled_items
from mm_feast.stores.quarantine import load_records
from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.media import AudioWindowing, FrameSampling, SegmentationConfig
from mm_feast.quality.ge import ge_run_name
from mm_feast.quality.reports import read_reports
from mm_feast.sources import EmbeddingSource, MediaSource
from mm_feast.synthetic import render_shape, render_sound
from mm_feast.synthetic import write_video as write_shape_video
from mm_feast.synthetic import write_wav as write_mono_wav
from test_media import VFR_MS, write_audio_only_mp4, write_wav
from test_media import write_video as write_timed_video

MODELS = {"image": "mm-feast/clip-shapes", "video": "mm-feast/clip-shapes", "audio": "mm-feast/clap-sounds",
          "text": "sentence-transformers/all-MiniLM-L6-v2"}
REPO_PIXEL_LIMIT = 1_000_000  # feature_repo-style suite override below: far under the 50 MP default

OK = "ingested"


def _image_files(root: Path) -> dict[str, tuple]:
    shape = render_shape("red", "circle", 64)
    Image.fromarray(shape).save(root / "good.jpg", quality=95)
    buffer = io.BytesIO()
    Image.fromarray(shape).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    start_of_scan = jpeg.index(b"\xff\xda")  # headers intact, entropy-coded data cut short
    (root / "truncated.jpg").write_bytes(jpeg[: start_of_scan + (len(jpeg) - start_of_scan) // 3])
    (root / "zero.jpg").write_bytes(b"")
    Image.fromarray(shape).save(root / "png_named.jpg", format="PNG")
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)).save(root / "grey16.png")
    Image.new("CMYK", (64, 64), (255, 0, 0, 0)).save(root / "cmyk.jpg")
    Image.fromarray(shape).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png", transparency=0)
    Image.fromarray(shape).convert("RGBA").save(root / "alpha.png")
    Image.new("1", (12_000, 12_000)).save(root / "bomb.png")  # 144 MP, a few KB on disk
    Image.fromarray(np.zeros((1000, 1200, 3), np.uint8)).save(root / "big.png")  # 1.2 MP: only over the repo limit
    converted = ("warn", ["image_mode"])
    return {
        "good.jpg": (OK,),
        "truncated.jpg": ("decode", None, "cannot decode image"),
        "zero.jpg": ("media_gate", ["decodable"], "empty file"),
        "png_named.jpg": ("warn", ["content_type_matches"]),
        "grey16.png": converted, "cmyk.jpg": converted, "palette.png": converted, "alpha.png": converted,
        "bomb.png": ("media_gate", ["image_max_pixels"], "decompression bomb", 144_000_000.0),
        "big.png": ("media_gate", ["image_max_pixels"], "decompression bomb", 1_200_000.0),
    }


def _lying_mkv(path: Path) -> None:
    """A 2 s Matroska file whose Segment/Info/Duration element claims 60 s."""
    write_timed_video(path, list(range(0, 2000, 100)))
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration element, 8-byte float, in ms
    assert at > 0, "no Duration element"
    data[at + 3 : at + 11] = struct.pack(">d", 60_000.0)
    path.write_bytes(bytes(data))


def _video_files(root: Path) -> dict[str, tuple]:
    write_shape_video(root / "good.mp4", [render_shape("blue", "square", 64)] * 10 + [render_shape("red", "cross", 64)] * 10)
    write_timed_video(root / "vfr.mp4", VFR_MS)
    _lying_mkv(root / "lying.mkv")
    write_audio_only_mp4(root / "sound_only.mp4")
    return {
        "good.mp4": (OK,),
        "vfr.mp4": ("warn", ["video_constant_frame_rate"]),
        "lying.mkv": ("warn", ["video_duration_consistent"]),
        "sound_only.mp4": ("media_gate", ["video_stream"], "no video stream", 0.0),
    }


def _audio_files(root: Path) -> dict[str, tuple]:
    write_mono_wav(root / "tone.wav", render_sound("low_tone", 2.0, 16000), 16000)
    write_mono_wav(root / "phone.wav", render_sound("rising_chirp", 2.0, 8000), 8000)  # 8 kHz mono
    write_wav(root / "master.wav", 96000, 6, 1.5)  # 96 kHz, 6 channels
    with wave.open(str(root / "silence.wav"), "wb") as handle:  # a header and zero samples
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
    return {
        "tone.wav": (OK,), "phone.wav": (OK,), "master.wav": (OK,),
        "silence.wav": ("media_gate", ["audio_duration"], "zero", 0.0),
    }


def _text_files(root: Path) -> dict[str, tuple]:
    (root / "good.txt").write_text("A green triangle on a dark background.\n\nA purple cross.\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "blank.txt").write_text("  \n\n\t\n", encoding="utf-8")
    (root / "zero.txt").write_bytes(b"")
    return {
        "good.txt": (OK,),
        "latin1.txt": ("media_gate", ["text_encoding"], "UTF-8"),
        "blank.txt": ("media_gate", ["text_not_empty"], "empty", 0.0),
        "zero.txt": ("media_gate", ["decodable"], "empty file"),
    }


WRITERS = {"image": _image_files, "video": _video_files, "audio": _audio_files, "text": _text_files}


def write_corpus(repo: Path, writers: dict = WRITERS) -> dict[str, dict[str, tuple]]:
    """The bad-input files of each modality, their manifest, and the repo's own image suite."""
    media = repo / "media"
    media.mkdir(parents=True)
    expected = {modality: write(media) for modality, write in writers.items()}
    lines = ["item_id,uri,modality,event_timestamp"]
    for modality, files in expected.items():
        lines += [f"{name},{name},{modality},2026-11-01T00:00:00Z" for name in files]
    (media / "manifest.csv").write_text("\n".join(lines) + "\n")
    (repo / "quality").mkdir()
    # The repo's own suite for the image view: a much lower, configurable pixel limit.
    (repo / "quality" / "image_view.yaml").write_text(
        f"media:\n  image:\n    - name: image_max_pixels\n      max_value: {REPO_PIXEL_LIMIT}\n"
    )
    return expected


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, dict[str, tuple]]]:
    repo = tmp_path_factory.mktemp("quality_media")
    return repo, write_corpus(repo)


def _source(modality: str) -> EmbeddingSource:
    media = MediaSource(name="corpus", manifest="media/manifest.csv")
    seg = SegmentationConfig(frame_sampling=FrameSampling("every_n_seconds", 0.5), audio_windowing=AudioWindowing(1.0, 1.0))
    return EmbeddingSource(name=f"{modality}_view_source", media=media, modality=modality, model_id=MODELS[modality], segmentation=seg)


@pytest.mark.parametrize("modality", ["image", "video", "audio", "text"])
def test_bad_input_is_processed_or_quarantined_with_expectation_observed_value_and_locator(corpus, modality):
    repo, expected = corpus
    files = expected[modality]
    source = _source(modality)

    summary = ensure_embeddings(source, repo, show_progress=False)

    bad = {name: spec for name, spec in files.items() if spec[0] not in (OK, "warn")}
    assert summary.balanced and summary.seen == len(files)
    assert (summary.ingested, summary.quarantined) == (len(files) - len(bad), len(bad))
    records = {q.item_id: q for q in summary.quarantine}
    assert set(records) == set(bad)
    stored = load_records(repo, source.name)
    assert set(stored.item_id) == set(bad)  # the quarantine table, not just the summary
    for name, (stage, expectations, fragment, *observed) in bad.items():
        record = records[name]
        assert record.stage == stage and fragment.lower() in record.reason.lower(), record.reason
        assert record.uri.endswith(name) and record.locator.endswith(name)
        if expectations:
            assert record.expectations.split(",")[: len(expectations)] == expectations
            if observed:
                assert json.loads(record.observed)[expectations[0]] == pytest.approx(observed[0])

    rows = pd.read_parquet(source.resolved_path(repo))
    assert set(rows.item_id) == set(files) - set(bad)  # every good or warned file is ingested
    media_report = summary.validation["stages"]["media"]
    warned = {name: spec[1] for name, spec in files.items() if spec[0] == "warn"}
    assert set(media_report["warned"]) == {e for names in warned.values() for e in names}
    report = read_reports(repo, source.name)[-1]
    [media] = [v for v in report["validations"] if v["stage"] == "media"]
    for failure in (f for f in media["failures"] if f["severity"] == "warn"):
        # warnings name the rows they concern (item ids); a warning alone never holds a file back
        assert {n for n, names in warned.items() if failure["expectation"] in names} <= set(failure["examples"])
        assert set(failure["examples"]) <= set(rows.item_id) | set(bad)


def test_processed_with_warnings_means_correct_locators(corpus):
    """The lying container and the VFR file are embedded at their true presentation times."""
    repo, _ = corpus
    rows = pd.read_parquet(_source("video").resolved_path(repo))
    lying = rows[rows.item_id == "lying.mkv"]
    assert lying.end_s.max() == pytest.approx(2.0, abs=0.01)  # the real 2 s, not the claimed 60 s
    vfr = sorted(rows[rows.item_id == "vfr.mp4"].start_s)
    assert vfr == pytest.approx([0.0, 0.5, 1.0, 2.0, 3.3], abs=1e-3)  # first frame of each 0.5 s cell
    audio = pd.read_parquet(_source("audio").resolved_path(repo))
    assert audio.groupby("item_id").end_s.max().to_dict() == pytest.approx({"tone.wav": 2.0, "phone.wav": 2.0, "master.wav": 1.5})


def test_a_rerun_holds_quarantined_items_without_decoding_them_again(corpus):
    repo, expected = corpus
    source = _source("image")
    first = load_records(repo, source.name)

    again = ensure_embeddings(source, repo, show_progress=False)

    bad = [n for n, spec in expected["image"].items() if spec[0] not in (OK, "warn")]
    assert again.balanced and again.encoder_calls == 0 and again.validation == {}  # nothing probed or encoded
    assert (again.unchanged, again.quarantined, again.ingested) == (len(expected["image"]) - len(bad), len(bad), 0)
    assert len(load_records(repo, source.name)) == len(first)


def test_reports_store_ge_results_and_data_docs_per_run(corpus):
    repo, _ = corpus
    report = read_reports(repo, "image_view_source")[0]
    assert report["suite_files"] == [str(repo / "quality" / "image_view.yaml")] and report["suite_version"]
    for validation in report["validations"]:
        result = json.loads(Path(validation["result_path"]).read_text())  # GE's own result document
        assert result["meta"]["run_id"]["run_name"] == ge_run_name(report["run_id"])
        assert Path(validation["docs_path"]).is_file()
    index = Path(report["data_docs"])
    assert index.name == "index.html" and "image_view_source.media" in index.read_text()


class Killed(Exception):
    """Stands in for a SIGKILL of the driver right after it spooled a chunk."""


def test_a_resumed_run_repeats_the_media_warnings_of_the_items_a_killed_run_finished(tmp_path: Path, monkeypatch):
    source = _source("image")
    expected = write_corpus(tmp_path / "whole", {"image": _image_files})["image"]
    whole = ensure_embeddings(source, tmp_path / "whole", batch_size=2, show_progress=False)
    repo = tmp_path / "killed"
    write_corpus(repo, {"image": _image_files})
    spooled = faults.chunk_spooled

    def killed_after_three_chunks(items: int) -> None:
        spooled(items)
        chunks[0] += 1
        if chunks[0] == 3:
            raise Killed()

    chunks = [0]
    monkeypatch.setattr(faults, "chunk_spooled", killed_after_three_chunks)
    with pytest.raises(Killed):
        ensure_embeddings(source, repo, batch_size=2, show_progress=False)
    monkeypatch.undo()
    finished = {item for item, _ in spooled_items(source.resolved_path(repo))}
    warned = {name for name, spec in expected.items() if spec[0] == "warn"}
    assert finished & warned and warned - finished, "the kill falls after some warned items and before others"

    resumed = ensure_embeddings(source, repo, batch_size=2, show_progress=False)

    assert resumed.resumed == len(finished) and resumed.balanced
    relative = lambda lines, root: sorted(line.replace(str(root), "REPO") for line in lines)  # noqa: E731
    assert relative(resumed.warnings, repo) == relative(whole.warnings, tmp_path / "whole")
    assert {name for name in warned if any(f"/{name}: " in line for line in resumed.warnings)} == warned
