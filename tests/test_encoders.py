"""Encoders: one cached instance per model, normalised batched output, clear load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mm_feast.encoders import ModelLoadError, get_encoder
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
