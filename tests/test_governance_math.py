"""WEAT and the exact Shapley attribution, on constructed cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from mm_feast.governance.bias import weat
from mm_feast.governance.explain import segment_shapley, shapley


def clusters(seed: int, planted: bool) -> tuple[np.ndarray, ...]:
    """Two attribute directions; with ``planted``, targets X lean to A and Y to B."""
    rng = np.random.default_rng(seed)
    dim = 64
    a, b = rng.standard_normal(dim), rng.standard_normal(dim)
    A = a + 0.5 * rng.standard_normal((8, dim))
    B = b + 0.5 * rng.standard_normal((8, dim))
    lean = 0.6 if planted else 0.0
    X = rng.standard_normal((12, dim)) + lean * a
    Y = rng.standard_normal((12, dim)) + lean * b
    return X, Y, A, B


def test_weat_detects_a_planted_association() -> None:
    result = weat(*clusters(1, planted=True), permutations=10000, seed=0)
    assert result.p_value < 0.01 and result.effect_size > 1.0


def test_weat_finds_none_in_a_control() -> None:
    result = weat(*clusters(2, planted=False), permutations=10000, seed=0)
    assert result.p_value > 0.05 and abs(result.effect_size) < 1.0


def test_weat_refuses_sets_of_two_spaces() -> None:
    X, Y, A, B = clusters(3, planted=True)
    with pytest.raises(ValueError, match="one space"):
        weat(X, Y, A[:, :10], B)


def test_an_additive_score_gets_exactly_its_own_terms() -> None:
    weights = {"image": 0.5, "text": -0.2, "audio": 0.3, "video": 0.1}
    inputs = {"image": 2.0, "text": 1.0, "audio": -1.0, "video": 4.0}
    baseline = {m: 0.5 for m in inputs}
    f = lambda x: sum(weights[m] * x[m] for m in x)  # noqa: E731
    values = shapley(f, inputs, baseline)
    for m in inputs:
        assert values[m] == pytest.approx(weights[m] * (inputs[m] - baseline[m]), abs=1e-9)
    assert sum(values.values()) == pytest.approx(f(inputs) - f(baseline), abs=1e-9)


def test_a_score_that_reads_only_the_image_gives_the_image_everything() -> None:
    inputs = {"image": np.ones(4), "text": np.ones(4), "audio": np.ones(4)}
    baseline = {m: np.zeros(4) for m in inputs}
    values = shapley(lambda x: float(np.tanh(x["image"].sum())), inputs, baseline)
    assert values["image"] == pytest.approx(np.tanh(4.0), abs=1e-12) and values["text"] == 0 and values["audio"] == 0


def test_a_symmetric_interaction_splits_evenly() -> None:
    values = shapley(lambda x: x["video"] * x["text"], {"video": 1.0, "text": 1.0}, {"video": 0.0, "text": 0.0})
    assert values["video"] == pytest.approx(0.5, abs=1e-12) and values["text"] == pytest.approx(0.5, abs=1e-12)


def test_the_frame_that_carries_the_signal_gets_the_video_share() -> None:
    frames = [np.zeros(3), np.array([0.0, 2.0, 0.0]), np.zeros(3), np.zeros(3)]
    empty = [np.zeros(3)] * 4
    f = lambda x: float(max(np.linalg.norm(frame) for frame in x["video"])) + 0.1 * x["text"]  # noqa: E731
    shares = segment_shapley(f, {"video": frames, "text": 1.0}, {"video": empty, "text": 0.0}, "video")
    assert int(np.argmax(shares)) == 1 and shares[1] == pytest.approx(2.0, abs=1e-12) and sum(shares) == pytest.approx(2.0)


def test_too_many_modalities_is_refused() -> None:
    inputs = {str(i): 1.0 for i in range(7)}
    with pytest.raises(ValueError, match="1 to 6"):
        shapley(lambda x: 0.0, inputs, inputs)
