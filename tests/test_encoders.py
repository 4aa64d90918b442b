"""Encoders: one cached instance per model, normalised batched output, clear load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mm_feast.encoders import ModelLoadError, get_encoder
from mm_feast.encoders.cache import load_encoder
from mm_feast.encoders.base import weights_version
from mm_feast.synthetic import render_shape, render_sound


def test_encoders_are_cached_per_model_and_device():
    assert get_encoder("mm-feast/clip-shapes") is get_encoder("mm-feast/clip-shapes", device="cpu")
    assert get_encoder("mm-feast/clip-shapes") is not get_encoder("mm-feast/clap-sounds")


@pytest.mark.parametrize(
    "model_id, modality, make, dim",
    [
        ("mm-feast/clip-shapes", "image", lambda i: render_shape("red", "circle", 64), 512),
        ("mm-feast/clip-shapes", "text", lambda i: f"a red circle {i}", 512),
        ("mm-feast/clap-sounds", "audio", lambda i: render_sound("low_tone", 1.0, 16000), 512),
        ("sentence-transformers/all-MiniLM-L6-v2", "text", lambda i: f"sentence {i}", 384),
    ],
)
def test_batched_encoding_gives_normalised_rows_in_chunks(model_id, modality, make, dim):
    encoder = get_encoder(model_id)
    before = encoder.calls
    rows = encoder.encode(modality, [make(i) for i in range(5)], batch_size=2)
    assert rows.shape == (5, dim) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert encoder.calls - before == 3  # ceil(5 / 2) forward passes
    # batching does not change the result
    assert np.allclose(rows, encoder.encode(modality, [make(i) for i in range(5)], batch_size=5), atol=1e-5)


@pytest.mark.parametrize(
    "model_id, modality, item",
    [
        ("mm-feast/clip-shapes", "image", render_shape("red", "circle", 64)),
        ("mm-feast/clap-sounds", "audio", render_sound("low_tone", 1.0, 16000)),
        ("mm-feast/clap-bound-clip", "audio", render_sound("low_tone", 1.0, 16000)),
        ("sentence-transformers/all-MiniLM-L6-v2", "text", "a sentence"),
    ],
)
def test_an_encoder_plans_without_its_weights_and_loads_them_at_the_first_batch(model_id, modality, item):
    """The Ray driver reads version, dim and sample rate only: it must not hold the model (issue 9)."""
    encoder = load_encoder(model_id)  # a new instance: the cache's may be loaded already
    assert not encoder.weights_loaded
    assert encoder.version == weights_version(model_id) and encoder.dim > 0
    rows = encoder.encode(modality, [item])
    assert encoder.weights_loaded
    assert rows.shape == (1, encoder.dim)  # the dim read from the config is the model's output width


def test_concurrent_first_uses_load_the_weights_once():
    import threading

    encoder = load_encoder("mm-feast/clip-shapes")
    real, loads = encoder._load_model, []

    def counted():
        loads.append(1)
        return real()

    encoder._load_model = counted
    start, widths = threading.Barrier(4), []

    def first_use():
        start.wait(timeout=30)
        widths.append(encoder.encode("text", ["a red circle"]).shape[1])

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert len(loads) == 1 and widths == [512] * 4


def test_a_model_that_cannot_take_a_modality_says_so():
    with pytest.raises(ValueError, match="encodes audio, text, not image"):
        get_encoder("mm-feast/clap-sounds").encode("image", [render_shape("red", "circle", 64)])


def test_missing_model_error_names_what_was_tried_and_how_to_fix(tmp_path: Path):
    with pytest.raises(ModelLoadError) as info:
        get_encoder("no-such-org/no-such-model")
    message = str(info.value)
    assert "no-such-org/no-such-model" in message and "local_files_only" in message
    assert "save_pretrained" in message


def test_weights_version_changes_with_the_weights(tmp_path: Path):
    import shutil

    from mm_feast.encoders.base import BUNDLED_MODELS_DIR

    copy = tmp_path / "clip"
    shutil.copytree(BUNDLED_MODELS_DIR / "clip-shapes", copy)
    assert weights_version(str(copy)) == weights_version("mm-feast/clip-shapes")
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:-4] + b"\x00\x00\x00\x01")
    assert weights_version(str(copy)) != weights_version("mm-feast/clip-shapes")


def test_to_model_casts_floats_to_the_model_dtype_and_leaves_ids_alone():
    import torch

    encoder = get_encoder("mm-feast/clip-shapes")
    moved = encoder.to_model({"pixel_values": torch.zeros(1, 3, 2, 2, dtype=torch.float64), "input_ids": torch.ones(1, 3, dtype=torch.long)})
    assert moved["pixel_values"].dtype == encoder.dtype == torch.float32  # fp32 on CPU
    assert moved["input_ids"].dtype == torch.long and moved["input_ids"].device.type == "cpu"


def test_a_batch_that_runs_out_of_gpu_memory_is_halved_and_the_size_is_kept(monkeypatch):
    """The OOM is raised by a wrapper around the real model: a GPU that fits 2 items per batch."""
    import torch

    encoder = get_encoder("mm-feast/clip-shapes")
    real = encoder._forward
    sizes: list[int] = []

    def fits_two(modality, items):
        sizes.append(len(items))
        if len(items) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        return real(modality, items)

    monkeypatch.setattr(encoder, "_forward", fits_two)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(encoder, "max_batch", None)
    texts = [f"a {c} {shape}" for c, shape in zip(["red", "blue", "green", "red", "blue", "green", "red", "blue"],
                                                   ["circle", "square", "triangle", "square", "triangle", "circle", "triangle", "circle"])]
    rows = encoder.encode("text", texts, batch_size=8)
    assert sizes == [8, 4, 2, 2, 2, 2]  # 8 -> 4 -> 2 fits; later batches start at 2
    assert encoder.max_batch == 2
    assert rows.shape == (8, 512)
    monkeypatch.setattr(encoder, "_forward", real)
    assert np.allclose(rows, encoder.encode("text", texts, batch_size=8), atol=1e-5)  # same rows, same order
    assert np.allclose(rows[1], encoder.encode("text", [texts[1]])[0], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode("text", texts, batch_size=0)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine (CI has none)")
def test_cuda_in_bf16_with_pinned_copies_encodes_like_the_cpu():
    from mm_feast.encoders.clip import ClipEncoder

    images = [render_shape(c, s, 64) for c in ("red", "blue") for s in ("circle", "square")]
    cpu = get_encoder("mm-feast/clip-shapes").encode("image", images)
    gpu_encoder = ClipEncoder("mm-feast/clip-shapes", None, "cuda")
    assert str(gpu_encoder.dtype) == "torch.bfloat16"
    gpu = gpu_encoder.encode("image", images)
    assert (np.sum(cpu * gpu, axis=1) > 0.99).all()
