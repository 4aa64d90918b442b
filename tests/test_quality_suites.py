"""Suites as repo files: the demo repo's suites are valid GE 1.x expectations, overlays merge by
name, and a broken suite file is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_feast.quality.ge import _runner
from mm_feast.quality.suites import SuiteError, load_suite

FEATURE_REPO = Path(__file__).resolve().parent.parent / "feature_repo"
DEMO_NAMES = {
    "image_embeddings": ["demo_media", "image_embeddings", "image_embeddings_source"],
    "video_frame_embeddings": ["demo_media", "video_frame_embeddings", "video_frame_embeddings_source"],
}


@pytest.mark.parametrize("view", sorted(DEMO_NAMES))
def test_demo_repo_suites_build_real_ge_expectations(view: str):
    suite = load_suite(FEATURE_REPO, DEMO_NAMES[view])
    assert str(FEATURE_REPO / "quality" / "demo_media.yaml") in suite.files
    runner = _runner(None)
    specs = [s for modality in suite.media.values() for s in modality] + list(suite.embeddings)
    built = [runner.expectation(s, {"expected_dim": 512, "max_pixels": 50_000_000}) for s in specs]
    assert len(built) == len(specs) and all(e.meta["name"] == s.name for e, s in zip(built, specs))
    pixels = next(s for s in suite.for_media("image") if s.name == "image_max_pixels")
    assert pixels.kwargs["max_value"] == 4_000_000 and pixels.severity == "block" and pixels.message  # threshold only
    duplicates = next(s for s in suite.embeddings if s.name == "embedding_duplicate_rate")
    assert duplicates.kwargs["max_value"] == (0.9 if view == "video_frame_embeddings" else 0.5)


def test_overlays_merge_by_name_and_can_switch_a_default_off(tmp_path: Path):
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "default.yaml").write_text(
        "embeddings:\n  - name: embedding_drift\n    enabled: false\n"
        "  - name: embedding_norm\n    severity: warn\n"
        "  - name: embedding_mean_small\n    expect: expect_column_mean_to_be_between\n    column: norm\n    max_value: 2\n")
    (tmp_path / "quality" / "v.yaml").write_text("embeddings:\n  - name: embedding_norm\n    min_value: 0.5\n")
    suite = load_suite(tmp_path, ["v"])
    names = [s.name for s in suite.embeddings]
    assert "embedding_drift" not in names and names[-1] == "embedding_mean_small"
    norm = next(s for s in suite.embeddings if s.name == "embedding_norm")
    assert (norm.severity, norm.kwargs["min_value"], norm.kwargs["max_value"]) == ("warn", 0.5, 1.1)
    assert norm.origin.endswith("v.yaml") and suite.version != load_suite(None, []).version


@pytest.mark.parametrize("text, match", [
    ("embeddings:\n  - name: x\n    expect: ExpectColumnValuesToBeBetween\n    severity: fatal\n", "severity 'fatal'"),
    ("embeddings:\n  - column: norm\n", "needs a mapping with a 'name'"),
    ("checks: []\n", "unknown sections"),
    ("embeddings: [\n", "not valid YAML"),
])
def test_a_broken_suite_file_is_named_in_the_error(tmp_path: Path, text: str, match: str):
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "broken.yaml").write_text(text)
    with pytest.raises(SuiteError, match=match) as error:
        load_suite(tmp_path, ["broken"])
    assert "broken.yaml" in str(error.value)
