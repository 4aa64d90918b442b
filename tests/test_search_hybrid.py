"""Keyword (Milvus BM25), hybrid and typed-filter search on the real store: Milvus Lite 2.5.1 (which
has BM25) and the Milvus 2.3 server (which does not, and must say so). Relevance is measured with
the real MiniLM model on a corpus built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from feast import FeatureStore, Field
from feast.types import Float64, String

from mm_feast.core.errors import InvalidArgument
from mm_feast.encoders import get_encoder
from mm_feast.plugin.milvus.filters import Condition
from mm_feast.plugin.milvus.full_text import FULL_TEXT_TAG, FullTextUnavailable, Ranker
from mm_feast.plugin.milvus.store import MmMilvusOnlineStore
from mm_feast.services.search import Hit, fuse_across_views

from test_online_store import item_entity, make_store, vector_field, view, write

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# Each document carries a part number: exact identifiers are what BM25 finds and vectors miss.
# Each paraphrase shares no word with its document: meaning is what vectors find and BM25 misses.
DOCS = [
    ("Replacement valve QX-7731 regulates coolant pressure inside industrial chillers.", "spare regulator that controls refrigeration fluid force in factory cooling machines"),
    ("Bicycle chain lubricant BR-2290 keeps drivetrains quiet during wet rides.", "grease so cycling gears stay silent when it rains"),
    ("Noise cancelling headphones HX-5120 block aircraft cabin engine hum.", "earphones that remove airplane rumble"),
    ("Organic tomato seeds TS-8841 sprout within ten days in warm soil.", "vegetable kernels germinating quickly when earth is heated"),
    ("Stainless steel frying pan KP-3307 heats evenly on induction stoves.", "metal skillet warming uniformly over magnetic cooktops"),
    ("Waterproof hiking boots MB-6615 grip muddy mountain trails.", "rain-proof trekking shoes holding onto slippery alpine paths"),
    ("Children's picture book PB-1902 teaches counting with farm animals.", "kids' illustrated story for learning numbers using cows and pigs"),
    ("Solar panel inverter SV-4478 converts rooftop power for household sockets.", "sunlight electricity converter feeding home outlets from roof modules"),
    ("Dog chew toy DT-9034 survives aggressive puppies biting it.", "durable plaything pets gnaw on without breaking"),
    ("Espresso grinder EG-2651 crushes roasted beans to a fine powder.", "coffee mill producing very small particles"),
    ("Yoga mat YM-7120 cushions knees during floor stretches.", "exercise pad protecting joints while doing poses on ground"),
    ("Printer toner cartridge TC-5583 yields sharp black office documents.", "laser ink refill giving crisp dark pages at work"),
    ("Winter tyre set WT-3346 brakes safely on icy roads.", "cold-season wheels stopping securely on frozen streets"),
    ("Aquarium filter AF-8127 removes algae from freshwater fish tanks.", "pump cleaning green growth out of tropical pet water"),
    ("Mechanical keyboard MK-4409 clicks loudly under fast typing.", "computer keys making sharp sounds when writing quickly"),
    ("Sunscreen lotion SL-6692 protects skin from ultraviolet burns at the beach.", "cream shielding bodies against sunlight damage by seaside"),
]


def _docs_view(tmp_path: Path, full_text: str = "text") -> Any:
    fields = [vector_field("emb", 384), Field(name="text", dtype=String), Field(name="category", dtype=String),
              Field(name="price", dtype=Float64)]
    fv = view("docs", item_entity(), fields, tmp_path)
    fv.tags = {FULL_TEXT_TAG: full_text}
    return fv


def _store(fs: FeatureStore) -> MmMilvusOnlineStore:
    store = fs._get_provider().online_store
    assert isinstance(store, MmMilvusOnlineStore)
    return store


@pytest.fixture(scope="module")
def minilm() -> Any:
    return get_encoder(MINILM)


@pytest.fixture
def corpus(tmp_path: Path, minilm: Any) -> tuple[FeatureStore, Any]:
    fs = make_store(tmp_path, "mm", tmp_path / "online.db", dim=384)
    fv = _docs_view(tmp_path)
    fs.apply([item_entity(), fv])
    texts = [d for d, _ in DOCS]
    write(fs, "docs", {
        "item_id": list(range(len(DOCS))),
        "emb": list(minilm.encode("text", texts)),
        "text": texts,
        "category": ["tools" if i % 2 else "home" for i in range(len(DOCS))],
        "price": [float(10 * i) for i in range(len(DOCS))],
    })
    return fs, fv


def _ids(rows: list[dict]) -> list[int]:
    return [int(r["item_id"]) for r in rows]


def test_hybrid_beats_or_matches_each_single_mode_on_identifiers_and_paraphrases(corpus, minilm):
    fs, fv = corpus
    store = _store(fs)
    queries = [(_part_number(d), i) for i, (d, _) in enumerate(DOCS)]
    queries += [(p, i) for i, (_, p) in enumerate(DOCS)]
    success = {"vector": 0, "keyword": 0, "hybrid": 0}
    by_kind = {"identifier": {"vector": 0, "keyword": 0, "hybrid": 0}, "paraphrase": {"vector": 0, "keyword": 0, "hybrid": 0}}
    for n, (text, target) in enumerate(queries):
        kind = "identifier" if n < len(DOCS) else "paraphrase"
        vector = minilm.encode("text", [text])[0]
        found = {
            "vector": _ids(store.search_vectors(fs.config, fv, "emb", vector, 5, output_fields=[])[0]),
            "keyword": _ids(store.search_keyword(fs.config, fv, text, 5, output_fields=[])),
            "hybrid": _ids(store.search_hybrid(fs.config, fv, "emb", vector, text, 5, output_fields=[], candidates=10)),
        }
        for mode, ids in found.items():
            hit = target in ids
            success[mode] += hit
            by_kind[kind][mode] += hit
    # each path wins its own kind of query ...
    assert by_kind["identifier"]["keyword"] == len(DOCS)
    assert by_kind["identifier"]["vector"] < by_kind["identifier"]["keyword"]
    assert by_kind["paraphrase"]["vector"] > by_kind["paraphrase"]["keyword"]
    # ... and hybrid is at least as good as either on the mixed set
    assert success["hybrid"] >= max(success["vector"], success["keyword"]), (success, by_kind)


def _part_number(doc: str) -> str:
    return next(w for w in doc.split() if "-" in w and any(c.isdigit() for c in w))


def test_hybrid_hits_carry_path_scores_and_ranks_that_explain_the_rrf_score(corpus, minilm):
    fs, fv = corpus
    text = "coolant valve for chillers"
    rows = _store(fs).search_hybrid(fs.config, fv, "emb", minilm.encode("text", [text])[0], text, 5,
                                    output_fields=["text"], ranker=Ranker("rrf", k=10), candidates=8)
    assert _ids(rows)[0] == 0  # words and meaning agree on the coolant valve
    for row in rows:
        assert set(row["scores"]) == {"vector", "keyword"} and set(row["ranks"]) == {"vector", "keyword"}
        assert isinstance(row["scores"]["vector"], float)  # exact, even outside the vector candidates
        expected = sum(1.0 / (10 + r) for r in row["ranks"].values() if r is not None)
        assert row["distance"] == pytest.approx(expected, rel=1e-5)
    assert [r["distance"] for r in rows] == sorted((r["distance"] for r in rows), reverse=True)


def test_weighted_ranker_mixes_normalised_scores(corpus, minilm):
    fs, fv = corpus
    text = "TS-8841"
    vector = minilm.encode("text", [text])[0]
    keyword_only = _store(fs).search_hybrid(fs.config, fv, "emb", vector, text, 3, output_fields=[], ranker=Ranker("weighted", weights=(0.0, 1.0)))
    assert _ids(keyword_only)[0] == 3
    with pytest.raises(InvalidArgument, match="weights"):
        Ranker("weighted", weights=(2.0, 0.1))


def test_feast_retrieve_online_documents_v2_gives_text_rank_on_every_hit(corpus):
    """What Feast's universal test_retrieve_online_documents_v2 checks of a query_string search."""
    fs, fv = corpus
    features = ["docs:emb", "docs:text", "docs:category", "docs:item_id"]
    out = fs.retrieve_online_documents_v2(features=features, query_string="headphones block engine hum", top_k=5).to_dict()
    ranks = out["text_rank"]
    assert len(ranks) == len(out["text"]) >= 1 and out["item_id"][0] == 2
    assert all(isinstance(r, float) and 0 <= r <= 1 for r in ranks)
    assert ranks == sorted(ranks, reverse=True)
    query = list(np.eye(384, dtype=np.float32)[0])
    hybrid = fs.retrieve_online_documents_v2(features=features, query=query, query_string="headphones", top_k=5).to_dict()
    assert len(hybrid["text_rank"]) == len(hybrid["distance"]) == len(hybrid["item_id"]) == 5
    assert all(isinstance(r, float) for r in hybrid["text_rank"]) and all(isinstance(d, float) for d in hybrid["distance"])
    assert 2 in hybrid["item_id"]
    none = fs.retrieve_online_documents_v2(features=features, query_string="nonexistent keyword", top_k=5).to_dict()
    assert none["text"] == [] and none["text_rank"] == []


@pytest.mark.parametrize("hostile", [
    'home" or category != "',
    "home' or 1 == 1 or '",
    'home\\" or item_id >= 0 or \\"',
    "home) or (item_id >= 0",
])
def test_typed_filters_never_let_user_text_into_the_expression(corpus, minilm, hostile):
    fs, fv = corpus
    store = _store(fs)
    vector = minilm.encode("text", ["kitchen"])[0]
    rows = store.search_vectors(fs.config, fv, "emb", vector, 16, output_fields=["category"], where=[Condition("category", "==", hostile)])[0]
    assert rows == []  # the hostile string is a literal that matches no category
    honest = store.search_vectors(fs.config, fv, "emb", vector, 16, output_fields=["category"], where=[Condition("category", "==", "home")])[0]
    assert len(honest) == 8 and {r["category"] for r in honest} == {"home"}


def test_typed_filters_compare_numbers_and_reject_bad_names_operators_and_types(corpus, minilm):
    fs, fv = corpus
    store = _store(fs)
    vector = minilm.encode("text", ["anything"])[0]
    rows = store.search_vectors(fs.config, fv, "emb", vector, 16, output_fields=["price"],
                                where=[Condition("price", ">=", 50), Condition("price", "<", 80.0), Condition("category", "in", ["home", "tools"])])[0]
    assert sorted(r["price"] for r in rows) == [50.0, 60.0, 70.0]
    for bad, reason in [
        (Condition("category == 'x' or price", ">", 1), "no such scalar field"),
        (Condition("price", "> 0 or price <", 1), "unknown operator"),
        (Condition("price", ">", "1 or 1==1"), "expected a number"),
        (Condition("category", ">", "a"), "needs a numeric field"),
        (Condition("category", "in", "home"), "non-empty list"),
        (Condition("price", "==", float("nan")), "finite"),
        (Condition("emb", "==", 1), "no such scalar field"),
    ]:
        with pytest.raises(InvalidArgument, match=reason):
            store.search_vectors(fs.config, fv, "emb", vector, 3, where=[bad])


def test_strings_with_quotes_and_backslashes_match_exactly(tmp_path: Path, minilm):
    fs = make_store(tmp_path, "mm", tmp_path / "online.db", dim=384)
    fv = _docs_view(tmp_path)
    fs.apply([item_entity(), fv])
    tricky = ['say "hi"', "back\\slash", "it's", "plain"]
    write(fs, "docs", {"item_id": [1, 2, 3, 4], "emb": list(minilm.encode("text", tricky)), "text": tricky,
                       "category": tricky, "price": [1.0, 2.0, 3.0, 4.0]})
    store = _store(fs)
    for i, value in enumerate(tricky, start=1):
        rows = store.search_vectors(fs.config, fv, "emb", minilm.encode("text", ["x"])[0], 4, output_fields=["category"],
                                    where=[Condition("category", "==", value)])[0]
        assert _ids(rows) == [i], value


def test_keyword_search_on_a_view_without_full_text_says_how_to_enable_it(tmp_path: Path):
    fs = make_store(tmp_path, "mm", tmp_path / "online.db", dim=384)
    fv = _docs_view(tmp_path, full_text="")
    fs.apply([item_entity(), fv])
    write(fs, "docs", {"item_id": [1], "emb": [[1.0] + [0.0] * 383], "text": ["x"], "category": ["c"], "price": [1.0]})
    with pytest.raises(FullTextUnavailable, match=FULL_TEXT_TAG):
        _store(fs).search_keyword(fs.config, fv, "x", 3)
    with pytest.raises(FullTextUnavailable):
        fs.retrieve_online_documents_v2(features=["docs:text"], query_string="x", top_k=3)


def test_a_full_text_tag_on_a_non_string_column_is_refused(tmp_path: Path):
    fs = make_store(tmp_path, "mm", tmp_path / "online.db", dim=384)
    fv = _docs_view(tmp_path, full_text="price")
    with pytest.raises(ValueError, match="not a String feature"):
        fs.apply([item_entity(), fv])


@pytest.mark.milvus_server
def test_server_without_bm25_serves_vectors_and_names_its_version_for_keywords(tmp_path: Path, milvus_server_uri: str, minilm):
    fs = make_store(tmp_path, "mm", uri=milvus_server_uri, dim=384, consistency_level="Strong")  # read-your-writes
    fv = _docs_view(tmp_path)
    fs.apply([item_entity(), fv])
    texts = [d for d, _ in DOCS[:4]]
    write(fs, "docs", {"item_id": [0, 1, 2, 3], "emb": list(minilm.encode("text", texts)), "text": texts,
                       "category": ["home"] * 4, "price": [1.0] * 4})
    store = _store(fs)
    vector = minilm.encode("text", [DOCS[2][1]])[0]
    assert _ids(store.search_vectors(fs.config, fv, "emb", vector, 1, output_fields=[])[0]) == [2]
    for call in (lambda: store.search_keyword(fs.config, fv, "headphones", 3),
                 lambda: store.search_hybrid(fs.config, fv, "emb", vector, "headphones", 3)):
        with pytest.raises(FullTextUnavailable) as err:
            call()
        assert "2.3" in str(err.value) and ">= 2.5.0" in str(err.value) and "vector search works" in str(err.value)


# --- ranking across model spaces -----------------------------------------------------------


def _hits(view: str, space: str, scores: list[float]) -> list[Hit]:
    return [Hit(view, f"{view}-{i}", s, {}, space, scores={"fused": s}) for i, s in enumerate(scores)]


def test_spaces_are_fused_by_rank_never_by_raw_scores():
    # CLAP-like cosines run high for everything; MiniLM-like cosines are low but one stands out.
    loud = _hits("audio", "clap", [0.93, 0.92, 0.92, 0.91, 0.91])
    quiet = _hits("text", "minilm", [0.62, 0.21, 0.20, 0.18, 0.17])
    by_raw_score = sorted(loud + quiet, key=lambda h: h.score, reverse=True)[:4]
    assert {h.view for h in by_raw_score} == {"audio"}  # what merging raw cosines would do
    fused = fuse_across_views([loud, quiet], top_k=4)
    assert [h.entity_key for h in fused] == ["text-0", "audio-0", "audio-1", "text-1"]
    assert [h.scores["fused"] for h in fused] == pytest.approx([1 / 61, 1 / 61, 1 / 62, 1 / 62])
    assert [h.score for h in fused] == [h.scores["fused"] for h in fused]


def test_views_of_one_space_merge_by_their_comparable_scores():
    images = _hits("images", "clip", [0.30, 0.20])
    frames = _hits("frames", "clip", [0.28, 0.25])
    merged = fuse_across_views([images, frames], top_k=4)
    assert [h.entity_key for h in merged] == ["images-0", "frames-0", "frames-1", "images-1"]
