"""Generated text as features, through the real `feast` CLI on Milvus Lite: OCR text of an image,
transcripts of spoken audio files and of a video's soundtrack (PocketSphinx held to a domain
vocabulary, on espeak-ng speech), and captions of a video's frames. Each is served online and
offline, traces back to its file and locator with the generator's settings, and erasing the
video removes every feature generated from it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from mm_feast.lineage import LineageDB
from mm_feast.media.ocr import unavailable_reason as ocr_unavailable_reason
from mm_feast.plugin.milvus.store import close_connections
from mm_feast.synthetic import image_caption, render_shape, write_video
from mm_feast.synthetic_speech import SPEECH_VOCABULARY, UTTERANCES, speech_unavailable_reason, write_speech

from feast_repo import feast, offline, write_feature_store_yaml

pytestmark = pytest.mark.slow

SPOKEN = {"call.wav": UTTERANCES[0], "weather.wav": UTTERANCES[1]}
SOUNDTRACK = UTTERANCES[2]  # spoken in the video
VIDEO_SHOTS = (("red", "circle"), ("blue", "square"))  # 2 s each


def _write_inbox(inbox: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from mm_feast.media.audio import load_audio

    picture = Image.new("RGB", (360, 120), (250, 250, 245))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=30)
    draw.text((12, 14), "INVOICE 4471", fill=(10, 10, 10), font=font)
    draw.text((12, 64), "paid in full", fill=(10, 10, 10), font=font)
    picture.save(inbox / "invoice.png")
    Image.new("RGB", (120, 80), (250, 250, 245)).save(inbox / "blank.png")  # no text: no OCR row
    for name, utterance in SPOKEN.items():
        write_speech(inbox / name, utterance.text)
    speech = load_audio(write_speech(inbox.parent / "soundtrack.wav", SOUNDTRACK.text), 16000)
    rng = np.random.default_rng(7)
    frames = [render_shape(colour, shape, size=64, rng=rng) for colour, shape in VIDEO_SHOTS for _ in range(20)]
    soundtrack = np.zeros(16000 * 4, dtype=np.float32)
    soundtrack[: len(speech)] = speech[: len(soundtrack)]
    write_video(inbox / "clip.mp4", frames, fps=10, soundtrack=soundtrack, sample_rate=16000)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for reason in (speech_unavailable_reason(), ocr_unavailable_reason()):
        if reason:
            pytest.skip(f"generated views need espeak-ng and Tesseract: {reason}")
    repo = tmp_path_factory.mktemp("generated") / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "inbox").mkdir()
    _write_inbox(repo / "inbox")
    (repo / "definitions.py").write_text(textwrap.dedent(f"""\
        from mm_feast.media.config import AudioWindowing, FrameSampling, SegmentationConfig
        from mm_feast.sources import MediaSource
        from mm_feast.plugin.views import generated_text_view, segment  # noqa: F401 (the entity)

        MINILM = "sentence-transformers/all-MiniLM-L6-v2"
        inbox = MediaSource(name="inbox", root="inbox")
        # whole utterances: a 5 s window holds each of them
        speech = SegmentationConfig(audio_windowing=AudioWindowing(window_s=5.0, hop_s=5.0),
                                    frame_sampling=FrameSampling(mode="every_n_seconds", value=1.0))
        domain = {{"vocabulary": {list(SPEECH_VOCABULARY)!r}}}
        ocr_text = generated_text_view("ocr_text", inbox, "image", "tesseract", MINILM)
        transcripts = generated_text_view("transcripts", inbox, "audio", "pocketsphinx", MINILM, speech,
                                          generator_settings=domain)
        soundtrack_transcripts = generated_text_view("soundtrack_transcripts", inbox, "video", "pocketsphinx", MINILM,
                                                     speech, generator_settings=domain, track="audio")
        frame_captions = generated_text_view("frame_captions", inbox, "video", "mm-feast/caption-shapes",
                                             "mm-feast/clip-shapes", speech)
        """))
    write_feature_store_yaml(repo, "generated")
    feast(repo, "apply")
    materialize(repo)
    return repo


def materialize(repo: Path) -> str:
    out = feast(repo, "materialize-incremental", (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    return out.stdout + out.stderr


def served(repo: Path, view: str, keys: list[str], features: list[str]) -> dict:
    store = FeatureStore(repo_path=str(repo))
    try:
        return store.get_online_features(features=[f"{view}:{f}" for f in features],
                                         entity_rows=[{"segment_id": k} for k in keys]).to_dict()
    finally:
        close_connections()


def generator_of(repo: Path, view: str, lineage_id: str) -> tuple[dict, object]:
    db = LineageDB.for_repo(repo)
    [record] = [r for r in db.by_view(view) if r.lineage_id == lineage_id]
    return db.preprocess_config(record.encoder.preprocess_hash)["generator"], record


def test_ocr_text_of_an_image_is_a_feature_served_online_and_offline_with_lineage(repo: Path):
    [row] = offline(repo, "ocr_text").itertuples()
    assert row.text == "INVOICE 4471 paid in full" and Path(row.uri).name == "invoice.png"
    assert served(repo, "ocr_text", [row.segment_id], ["text", "lineage_id"]) == {
        "segment_id": [row.segment_id], "text": [row.text], "lineage_id": [row.lineage_id]}
    store = FeatureStore(repo_path=str(repo))
    try:
        history = store.get_historical_features(
            entity_df=pd.DataFrame({"segment_id": [row.segment_id], "event_timestamp": [pd.Timestamp.now(tz="UTC")]}),
            features=["ocr_text:text"]).to_df()
        assert list(history.text) == [row.text]
        from mm_feast.services.search import CrossModalSearch

        hits = CrossModalSearch(store).search("4471", mode="keyword", views=["ocr_text"], top_k=3)
        assert [h.item_id for h in hits] == [row.item_id]
        [hybrid] = CrossModalSearch(store).search("invoice 4471", mode="hybrid", views=["ocr_text"], top_k=3)
        assert hybrid.item_id == row.item_id and hybrid.scores["keyword"] > 0 and hybrid.scores["vector"] > 0
    finally:
        close_connections()
    generator, record = generator_of(repo, "ocr_text", row.lineage_id)
    assert generator["id"] == "tesseract" and generator["kind"] == "ocr" and generator["engine_version"].startswith("tesseract ")
    [parent] = record.parents
    assert parent.is_raw and parent.uri == row.uri and parent.modality == "image"


def test_a_transcript_contains_the_key_words_of_a_known_utterance(repo: Path):
    rows = offline(repo, "transcripts")
    by_file = {Path(r.uri).name: r for r in rows.itertuples()}
    assert sorted(by_file) == sorted(SPOKEN)  # one 5 s window per utterance
    for name, utterance in SPOKEN.items():
        words = by_file[name].text.split()
        assert set(utterance.key_words) <= set(words), f"{name}: {utterance.text!r} transcribed as {by_file[name].text!r}"
    row = by_file["call.wav"]
    assert served(repo, "transcripts", [row.segment_id], ["text"])["text"] == [row.text]
    generator, record = generator_of(repo, "transcripts", row.lineage_id)
    assert generator["id"] == "pocketsphinx" and generator["kind"] == "transcript"
    assert generator["settings"]["vocabulary"] == sorted(SPEECH_VOCABULARY)
    [parent] = record.parents
    assert parent.uri == row.uri and parent.modality == "audio" and (parent.start_s, parent.end_s) == (row.start_s, row.end_s)


def test_a_video_soundtrack_is_transcribed_and_its_frames_captioned(repo: Path):
    [speech] = offline(repo, "soundtrack_transcripts").itertuples()  # the speech lies in the first 5 s window
    assert Path(speech.uri).name == "clip.mp4" and speech.modality == "audio" and speech.start_s == 0.0
    assert set(SOUNDTRACK.key_words) <= set(speech.text.split()), speech.text
    captions = offline(repo, "frame_captions").sort_values("start_s")
    assert list(captions.start_s) == [0.0, 1.0, 2.0, 3.0]
    expected = [image_caption(*VIDEO_SHOTS[int(t // 2)]) for t in captions.start_s]
    assert np.mean([c == e for c, e in zip(captions.text, expected)]) >= 0.75, list(captions.text)


def test_materializing_again_regenerates_nothing_and_the_counts_add_up(repo: Path):
    """Also an image with no text, which gives no row: it is remembered as done, not OCR'd again."""
    import json

    first = json.loads((repo / "data" / "runs" / "ocr_text_source.jsonl").read_text().splitlines()[-1])
    assert (first["seen"], first["ingested"], first["segments"]) == (2, 2, 1)  # invoice.png and blank.png

    before = {view: sorted(offline(repo, view).lineage_id) for view in ("ocr_text", "transcripts", "frame_captions")}
    materialize(repo)
    for view, ids in before.items():
        assert sorted(offline(repo, view).lineage_id) == ids, view
        last = json.loads((repo / "data" / "runs" / f"{view}_source.jsonl").read_text().splitlines()[-1])
        assert last["seen"] == last["unchanged"] and last["ingested"] == last["quarantined"] == 0, last


def test_erasing_a_video_removes_its_captions_and_transcripts_online_and_offline(repo: Path):
    video = (repo / "inbox" / "clip.mp4").resolve()
    generated = {view: offline(repo, view) for view in ("frame_captions", "soundtrack_transcripts")}
    assert all(len(rows) for rows in generated.values())
    cli = Path(sys.executable).with_name("mm-feast")
    close_connections()
    result = subprocess.run([str(cli), "impacted", str(video), "--delete", "--reason", "test erasure", "--repo", str(repo)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    count = sum(len(rows) for rows in generated.values())
    assert f"erased: {count} records, {count} offline rows, {count} online rows" in result.stdout, result.stdout
    for view, rows in generated.items():
        assert offline(repo, view).empty, view
        assert served(repo, view, list(rows.segment_id), ["text"])["text"] == [None] * len(rows), view
    assert len(offline(repo, "ocr_text")) == 1 and len(offline(repo, "transcripts")) == 2  # other files untouched
    db = LineageDB.for_repo(repo)
    assert {r.view for r in db.derived_from_file(uri=str(video))} == set(generated)
    materialize(repo)  # erased content does not come back while the file is still on disk
    assert all(offline(repo, view).empty for view in generated)
