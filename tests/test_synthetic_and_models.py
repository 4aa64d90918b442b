"""Synthetic demo media and the two committed tiny models (mm_feast/models) work together.

The retrieval checks use the real trained weights on renders from a seed never used in
training, so they fail if the weights, processors or the synthetic renderer drift apart.
"""

from __future__ import annotations

import wave
from datetime import timezone
from pathlib import Path

import numpy as np
import pytest

from mm_feast import synthetic
from mm_feast.synthetic import (
    AUDIO_CAPTIONS,
    AUDIO_SAMPLE_RATE,
    COLORS,
    IMAGE_CAPTIONS,
    SHAPES,
    SOUND_CAPTIONS,
    SOUNDS,
    parse_image_caption,
    render_shape,
    render_sound,
    write_demo_corpus,
)

MODELS_DIR = Path(__file__).resolve().parents[1] / "mm_feast" / "models"
CLIP_DIR = MODELS_DIR / "clip-shapes"
CLAP_DIR = MODELS_DIR / "clap-sounds"
EVAL_SEED = 2024  # training used seed 0 (data) and 1000 (its own evaluation)


# --------------------------------------------------------------------------------------------
# Pure rendering functions
# --------------------------------------------------------------------------------------------


def test_vocabulary() -> None:
    assert len(COLORS) == 6 and len(SHAPES) == 4
    assert len(IMAGE_CAPTIONS) == 24 and len(set(IMAGE_CAPTIONS)) == 24
    assert IMAGE_CAPTIONS[0] == "a red circle"
    assert "an orange cross" in IMAGE_CAPTIONS
    assert len(SOUNDS) == len(AUDIO_CAPTIONS) == 6
    assert SOUND_CAPTIONS["rising_chirp"] == "a rising chirp"
    for caption in IMAGE_CAPTIONS:
        color, shape = parse_image_caption(caption)
        assert synthetic.image_caption(color, shape) == caption


def test_render_shape_shapes_and_determinism() -> None:
    image = render_shape("red", "circle", size=32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert np.array_equal(image, render_shape("red", "circle", size=32))
    # Centre pixel has the shape colour, the corner the dark background.
    assert image[16, 16, 0] > 180 and image[16, 16, 1] < 80
    assert image[0, 0].max() < 80
    a = render_shape("blue", "cross", size=64, rng=np.random.default_rng(1))
    b = render_shape("blue", "cross", size=64, rng=np.random.default_rng(1))
    c = render_shape("blue", "cross", size=64, rng=np.random.default_rng(2))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError):
        render_shape("pink", "circle")


def test_render_sound_range_and_determinism() -> None:
    for sound in SOUNDS:
        samples = render_sound(sound, 1.0, AUDIO_SAMPLE_RATE)
        assert samples.dtype == np.float32 and samples.shape == (AUDIO_SAMPLE_RATE,)
        assert np.abs(samples).max() <= 1.0 and np.abs(samples).max() > 0.1
        by_caption = render_sound(SOUND_CAPTIONS[sound], 1.0, AUDIO_SAMPLE_RATE)
        assert np.array_equal(samples, by_caption)
    jittered = render_sound("beeping_tone", 0.5, 8000, rng=np.random.default_rng(3))
    assert jittered.shape == (4000,) and np.abs(jittered).max() <= 1.0
    with pytest.raises(ValueError):
        render_sound("a dog bark", 1.0, AUDIO_SAMPLE_RATE)


# --------------------------------------------------------------------------------------------
# Demo corpus
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return write_demo_corpus(tmp_path_factory.mktemp("demo"), seed=0)


def _by_modality(rows: list[dict], modality: str) -> list[dict]:
    return [r for r in rows if r["modality"] == modality]


def test_corpus_manifest(corpus: list[dict]) -> None:
    ids = [r["item_id"] for r in corpus]
    assert len(ids) == len(set(ids))
    assert len(_by_modality(corpus, "image")) >= 24
    assert len(_by_modality(corpus, "video")) >= 3
    assert len(_by_modality(corpus, "audio")) >= 3
    assert len(_by_modality(corpus, "text")) >= 3
    assert "img_red_circle" in ids
    suffixes = {Path(r["uri"]).suffix for r in _by_modality(corpus, "image")}
    assert {".png", ".jpg"} <= suffixes
    for row in corpus:
        path = Path(row["uri"])
        assert path.is_absolute() and path.is_file() and path.stat().st_size > 0
        assert row["event_timestamp"].tzinfo is not None
        assert row["event_timestamp"].utcoffset() == timezone.utc.utcoffset(None)
        assert isinstance(row["caption"], str) and row["caption"]
        if row["modality"] in ("video", "audio"):
            assert [(s, e) for s, e, _ in row["events"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_corpus_is_deterministic(corpus: list[dict], tmp_path: Path) -> None:
    again = write_demo_corpus(tmp_path, seed=0)
    assert [(r["item_id"], r["caption"], r.get("events")) for r in again] == [
        (r["item_id"], r["caption"], r.get("events")) for r in corpus
    ]
    for old, new in zip(corpus, again):
        if old["modality"] != "video":  # encoders may embed version strings; content checked below
            assert Path(old["uri"]).read_bytes() == Path(new["uri"]).read_bytes()


def test_corpus_images_decode(corpus: list[dict]) -> None:
    from PIL import Image

    for row in _by_modality(corpus, "image"):
        with Image.open(row["uri"]) as image:
            assert image.size == (64, 64)
            array = np.asarray(image.convert("RGB"))
        color, _ = parse_image_caption(row["caption"])
        centre = array[28:36, 28:36].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - np.asarray(synthetic.COLOR_RGB[color])).max() < 40


def test_corpus_videos_decode_with_declared_cuts(corpus: list[dict]) -> None:
    av = pytest.importorskip("av")
    for row in _by_modality(corpus, "video"):
        with av.open(row["uri"]) as container:
            frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        assert len(frames) == 30
        times = [t for t, _ in frames]
        assert np.allclose(times, np.arange(30) / 10.0, atol=1e-6)
        assert frames[0][1].shape == (64, 64, 3)
        for start, end, caption in row["events"]:
            color, shape = parse_image_caption(caption)
            expected = render_shape(color, shape, size=64).astype(np.float32)
            for t, frame in frames:
                if start <= t < end:
                    # Lossy codec: every frame inside the interval looks like its concept.
                    assert np.abs(frame.astype(np.float32) - expected).mean() < 12.0, (caption, t)


def test_corpus_audio_decodes_with_declared_events(corpus: list[dict]) -> None:
    for row in _by_modality(corpus, "audio"):
        with wave.open(row["uri"], "rb") as handle:
            assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
            rate = handle.getframerate()
            pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        samples = pcm.astype(np.float32) / 32767.0
        assert rate == AUDIO_SAMPLE_RATE and len(samples) == 3 * rate
        for start, end, caption in row["events"]:
            part = samples[int(start * rate) : int(end * rate)]
            expected = render_sound(caption, end - start, rate)
            assert np.abs(part - expected).max() < 1e-3, caption


def test_corpus_text_paragraphs(corpus: list[dict]) -> None:
    for row in _by_modality(corpus, "text"):
        text = Path(row["uri"]).read_text(encoding="utf-8")
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        assert len(paragraphs) >= 4
        image_paras = [p for p in paragraphs if any(c in p.lower() for c in IMAGE_CAPTIONS)]
        sound_paras = [p for p in paragraphs if any(c in p.lower() for c in AUDIO_CAPTIONS)]
        assert len(image_paras) >= 3 and len(sound_paras) >= 1


# --------------------------------------------------------------------------------------------
# Trained models: real retrieval on fresh renders
# --------------------------------------------------------------------------------------------


def _tensor(output, *names):
    """get_*_features returns a tensor in transformers 4 and an output object in 5."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in names + ("pooler_output",):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(type(output))


@pytest.fixture(scope="module")
def clip():
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    assert (CLIP_DIR / "model.safetensors").is_file(), "run scripts/train_models.py"
    model = transformers.CLIPModel.from_pretrained(CLIP_DIR).eval()
    processor = transformers.CLIPProcessor.from_pretrained(CLIP_DIR)
    return model, processor


@pytest.fixture(scope="module")
def clap():
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    assert (CLAP_DIR / "model.safetensors").is_file(), "run scripts/train_models.py"
    model = transformers.ClapModel.from_pretrained(CLAP_DIR).eval()
    processor = transformers.ClapProcessor.from_pretrained(CLAP_DIR)
    return model, processor


def _clip_embed(model, processor, images=None, texts=None) -> np.ndarray:
    import torch

    with torch.no_grad():
        if images is not None:
            batch = processor(images=list(images), return_tensors="pt")
            out = _tensor(model.get_image_features(pixel_values=batch["pixel_values"]),
                          "image_embeds")
        else:
            batch = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
            out = _tensor(model.get_text_features(input_ids=batch["input_ids"],
                                                  attention_mask=batch["attention_mask"]),
                          "text_embeds")
    out = out.numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _clap_embed(model, processor, clips=None, texts=None) -> np.ndarray:
    import torch

    with torch.no_grad():
        if clips is not None:
            batch = processor(audio=list(clips), sampling_rate=AUDIO_SAMPLE_RATE,
                              return_tensors="pt")
            out = _tensor(model.get_audio_features(input_features=batch["input_features"]),
                          "audio_embeds")
        else:
            batch = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
            out = _tensor(model.get_text_features(input_ids=batch["input_ids"],
                                                  attention_mask=batch["attention_mask"]),
                          "text_embeds")
    out = out.numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_clip_model_layout(clip) -> None:
    model, processor = clip
    assert model.config.projection_dim == 512
    batch = processor(text=["a red circle", "an orange cross"],
                      images=[render_shape("red", "circle", 64), render_shape("blue", "square", 64)],
                      return_tensors="pt", padding=True)
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
    assert _clip_embed(model, processor, texts=["a red circle"]).shape == (1, 512)


def test_clip_text_to_image_precision_at_5(clip) -> None:
    model, processor = clip
    rng = np.random.default_rng(EVAL_SEED)
    labels = np.repeat(np.arange(len(IMAGE_CAPTIONS)), 6)
    images = [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], 64, rng=rng)
              for i in labels]
    image_emb = _clip_embed(model, processor, images=images)
    text_emb = _clip_embed(model, processor, texts=IMAGE_CAPTIONS)
    top5 = np.argsort(-(text_emb @ image_emb.T), axis=1)[:, :5]
    precision = float((labels[top5] == np.arange(len(IMAGE_CAPTIONS))[:, None]).mean())
    assert precision >= 0.9, precision


def test_clip_recognises_demo_video_frames(clip, corpus: list[dict]) -> None:
    av = pytest.importorskip("av")
    model, processor = clip
    text_emb = _clip_embed(model, processor, texts=IMAGE_CAPTIONS)
    frames, truth = [], []
    for row in _by_modality(corpus, "video"):
        with av.open(row["uri"]) as container:
            for frame in container.decode(video=0):
                for start, end, caption in row["events"]:
                    if start <= frame.time < end:
                        frames.append(frame.to_ndarray(format="rgb24"))
                        truth.append(IMAGE_CAPTIONS.index(caption))
    predicted = np.argmax(_clip_embed(model, processor, images=frames) @ text_emb.T, axis=1)
    assert float((predicted == np.asarray(truth)).mean()) >= 0.9


def test_clap_model_layout(clap) -> None:
    model, processor = clap
    assert model.config.projection_dim == 512
    assert processor.feature_extractor.sampling_rate == AUDIO_SAMPLE_RATE
    assert _clap_embed(model, processor, texts=["a low tone"]).shape == (1, 512)


def test_clap_audio_to_text_top1(clap) -> None:
    model, processor = clap
    rng = np.random.default_rng(EVAL_SEED)
    labels = np.repeat(np.arange(len(SOUNDS)), 12)
    clips = [render_sound(SOUNDS[i], 1.0, AUDIO_SAMPLE_RATE, rng=rng) for i in labels]
    audio_emb = _clap_embed(model, processor, clips=clips)
    text_emb = _clap_embed(model, processor, texts=AUDIO_CAPTIONS)
    top1 = float((np.argmax(audio_emb @ text_emb.T, axis=1) == labels).mean())
    assert top1 >= 0.9, top1


def test_clap_recognises_demo_audio_windows(clap, corpus: list[dict]) -> None:
    model, processor = clap
    text_emb = _clap_embed(model, processor, texts=AUDIO_CAPTIONS)
    clips, truth = [], []
    for row in _by_modality(corpus, "audio"):
        with wave.open(row["uri"], "rb") as handle:
            pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        samples = pcm.astype(np.float32) / 32767.0
        for start, end, caption in row["events"]:
            clips.append(samples[int(start * AUDIO_SAMPLE_RATE) : int(end * AUDIO_SAMPLE_RATE)])
            truth.append(AUDIO_CAPTIONS.index(caption))
    predicted = np.argmax(_clap_embed(model, processor, clips=clips) @ text_emb.T, axis=1)
    assert float((predicted == np.asarray(truth)).mean()) >= 0.9
