"""Bad input for every modality, through the ingest pipeline with the real models: each bad
file is quarantined with its name and reason, the good ones are ingested, the counts add up."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from PIL import Image

from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.media import AudioWindowing, FrameSampling, SegmentationConfig
from mm_feast.sources import EmbeddingSource, MediaSource
from mm_feast.synthetic import render_shape, render_sound, write_video, write_wav
from test_media import write_audio_only_mp4

MODELS = {"image": "mm-feast/clip-shapes", "video": "mm-feast/clip-shapes", "audio": "mm-feast/clap-sounds", "text": "mm-feast/clip-shapes"}


def _corpus(root: Path) -> dict[str, tuple[str, str]]:
    """Write good and bad files; returns item_id -> (modality, expected reason fragment or '')."""
    root.mkdir(parents=True)
    Image.fromarray(render_shape("red", "circle", 64)).save(root / "good.png")
    (root / "truncated.jpg").write_bytes(_jpeg_bytes()[:150])
    (root / "zero.png").write_bytes(b"")
    write_video(root / "good.mp4", [render_shape("blue", "square", 64)] * 10)
    write_wav(root / "tone.wav", render_sound("low_tone", 1.0, 16000), 16000)
    with wave.open(str(root / "silence.wav"), "wb") as handle:  # header, zero samples
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
    (root / "good.txt").write_text("A green triangle.\n\nA purple cross.\n")
    (root / "empty.txt").write_text("")
    (root / "latin1.txt").write_bytes("a caf\xe9".encode("latin-1"))
    return {
        "good.png": ("image", ""), "truncated.jpg": ("image", "cannot decode image"), "zero.png": ("image", "empty file"),
        "good.mp4": ("video", ""), "tone.mp4": ("video", "no video stream"),
        "tone.wav": ("audio", ""), "silence.wav": ("audio", "zero"),
        "good.txt": ("text", ""), "empty.txt": ("text", "empty"), "latin1.txt": ("text", "UTF-8"),
    }


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(render_shape("green", "cross", 64)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict]:
    repo = tmp_path_factory.mktemp("bad_input")
    expected = _corpus(repo / "media")
    write_audio_only_mp4(repo / "media" / "tone.mp4")
    manifest = repo / "media" / "manifest.csv"
    lines = ["item_id,uri,modality,event_timestamp"]
    lines += [f"{name},{name},{modality},2026-11-01T00:00:00Z" for name, (modality, _) in expected.items()]
    manifest.write_text("\n".join(lines) + "\n")
    return repo, expected


@pytest.mark.parametrize("modality", ["image", "video", "audio", "text"])
def test_each_bad_file_is_quarantined_by_name_and_reason_and_the_batch_goes_on(repo, modality):
    root, expected = repo
    media = MediaSource(name="corpus", manifest="media/manifest.csv")
    seg = SegmentationConfig(frame_sampling=FrameSampling("every_n_seconds", 0.5), audio_windowing=AudioWindowing(1.0, 1.0))
    source = EmbeddingSource(name=f"{modality}_emb", media=media, modality=modality, model_id=MODELS[modality], segmentation=seg)

    summary = ensure_embeddings(source, root, show_progress=False)

    mine = {k: v[1] for k, v in expected.items() if v[0] == modality}
    bad = {k: reason for k, reason in mine.items() if reason}
    assert summary.seen == len(mine)
    assert summary.ingested == len(mine) - len(bad) >= 1
    assert summary.quarantined == len(bad) and summary.balanced
    got = {q.item_id: q for q in summary.quarantine}
    assert set(got) == set(bad)
    for item_id, fragment in bad.items():
        assert fragment.lower() in got[item_id].reason.lower(), got[item_id].reason
        assert got[item_id].uri.endswith(item_id)  # the record names the file
