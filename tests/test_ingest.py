"""The ingest pipeline on a real text model: counts add up, bad files are quarantined with a
reason, unchanged inputs are never re-encoded and a changed file is re-encoded alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mm_feast.stores.quarantine import load_records
from mm_feast.encoders import get_encoder
from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.sources import EmbeddingSource, MediaSource

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture()
def text_repo(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("A red circle on a dark background.\n\nQuarterly revenue grew by ten percent.\n")
    (docs / "b.txt").write_text("A blue square.\n")
    (docs / "empty.txt").write_text("   \n\n")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    return tmp_path


def _sources() -> tuple[EmbeddingSource, EmbeddingSource]:
    media = MediaSource(name="docs", root="docs")
    blocks = EmbeddingSource(name="blocks", media=media, modality="text", model_id=MINILM)
    pooled = EmbeddingSource(name="docs_pooled", media=media, modality="text", model_id=MINILM, granularity="item", segments=blocks)
    return blocks, pooled


def test_bad_text_is_quarantined_with_file_and_reason_and_counts_add_up(text_repo: Path):
    blocks, _ = _sources()
    summary = ensure_embeddings(blocks, text_repo, show_progress=False)

    assert (summary.seen, summary.ingested, summary.quarantined) == (4, 2, 2)
    assert summary.balanced and summary.segments == 3
    reasons = {Path(q.uri).name: q.reason for q in summary.quarantine}
    assert "UTF-8" in reasons["latin1.txt"]
    assert "empty" in reasons["empty.txt"].lower()
    stored = load_records(text_repo, "blocks")
    assert sorted(Path(u).name for u in stored["uri"]) == ["empty.txt", "latin1.txt"]


def test_rows_carry_exact_locators_and_normalised_vectors(text_repo: Path):
    blocks, _ = _sources()
    ensure_embeddings(blocks, text_repo, show_progress=False)
    rows = pd.read_parquet(blocks.resolved_path(text_repo))
    for row in rows.itertuples():
        decoded = Path(row.uri).read_text(encoding="utf-8")
        assert decoded[row.char_start : row.char_end] == row.text
        assert row.segment_id == f"{row.item_id}#c={row.char_start}-{row.char_end}"
        assert np.isclose(np.linalg.norm(row.embedding), 1.0, atol=1e-5)
    # re-encoding the located text reproduces the stored vector
    encoder = get_encoder(MINILM)
    again = encoder.encode("text", list(rows["text"]))
    assert np.allclose(again, np.stack(rows["embedding"]), atol=1e-5)


def test_unchanged_inputs_skip_the_model_and_a_changed_file_is_reencoded_alone(text_repo: Path):
    blocks, pooled = _sources()
    first = ensure_embeddings(pooled, text_repo, show_progress=False)
    assert first.ingested == 2

    again = ensure_embeddings(blocks, text_repo, show_progress=False)
    assert again.encoder_calls == 0 and again.unchanged == 2 and again.ingested == 0

    (text_repo / "docs" / "b.txt").write_text("A green triangle.\n")
    changed = ensure_embeddings(blocks, text_repo, show_progress=False)
    assert (changed.ingested, changed.unchanged, changed.encoder_calls, changed.changed) == (1, 1, 1, 1)
    segments = pd.read_parquet(blocks.resolved_path(text_repo))
    new_sha = segments.loc[segments.item_id == "b", "sha256"].unique().tolist()
    assert len(new_sha) == 1 and list(segments.loc[segments.item_id == "b", "text"]) == ["A green triangle."]

    ensure_embeddings(pooled, text_repo, show_progress=False)
    items = pd.read_parquet(pooled.resolved_path(text_repo))
    # the old content of b is gone offline too: what is stored matches what is on disk
    assert sorted(items["item_id"]) == ["a", "b"]
    assert items.loc[items.item_id == "b", "sha256"].tolist() == new_sha
    assert items.loc[items.item_id == "a", "n_segments"].item() == 2


def test_a_view_sets_its_own_model_batch_and_it_survives_the_registry(text_repo: Path):
    """a.txt and b.txt give 3 blocks in one chunk: a model batch of 1 is 3 encoder calls, the
    engine's default batch (32) is 1; the rows are the same."""
    media = MediaSource(name="docs", root="docs")
    one = EmbeddingSource(name="one_at_a_time", media=media, modality="text", model_id=MINILM, batch_size=1)
    default = EmbeddingSource(name="default_batch", media=media, modality="text", model_id=MINILM)
    small = ensure_embeddings(one, text_repo, show_progress=False)
    big = ensure_embeddings(default, text_repo, show_progress=False)
    assert (small.segments, small.encoder_calls) == (3, 3) and (big.segments, big.encoder_calls) == (3, 1)
    a, b = pd.read_parquet(one.resolved_path(text_repo)), pd.read_parquet(default.resolved_path(text_repo))
    assert np.allclose(np.stack(a.sort_values("segment_id").embedding), np.stack(b.sort_values("segment_id").embedding), atol=1e-5)
    assert EmbeddingSource.from_proto(one.to_proto()).batch_size == 1  # kept by `feast apply`
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EmbeddingSource(name="bad", media=media, modality="text", model_id=MINILM, batch_size=0)
