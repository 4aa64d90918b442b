"""Regression tests for mm_feast.online_store: real Feast SDK, real Milvus Lite (and a server).

Each defect test runs against our store and against stock Feast 0.67's MilvusOnlineStore;
the stock run is a strict xfail, so the suite shows the defect is real and fixed here.
Vectors have hand-picked geometry, so the expected ranking is certain.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.online_stores.milvus_online_store.milvus import MilvusOnlineStoreConfig
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Array, Bool, Float32, Float64, Int64, String
from pymilvus import MilvusClient

from mm_feast.plugin.milvus.store import MmMilvusOnlineStore, MmMilvusOnlineStoreConfig, clear_cache

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def against_stock(reason: str) -> pytest.MarkDecorator:
    """Run a test on our store and, as a strict xfail, on stock Feast 0.67."""
    return pytest.mark.parametrize(
        "impl",
        [
            pytest.param("mm", id="mm_feast"),
            pytest.param(
                "stock",
                id="stock_feast",
                marks=pytest.mark.xfail(strict=True, reason=f"Feast 0.67: {reason}"),
            ),
        ],
    )


# --- repo helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite file per module (one embedded server); tests use distinct projects."""
    return tmp_path_factory.mktemp("lite") / "online.db"


def make_store(
    tmp_path: Path,
    impl: str,
    lite_db: Optional[Path] = None,
    dim: int = 8,
    uri: Optional[str] = None,
    project: Optional[str] = None,
    **online: Any,
) -> FeatureStore:
    """A Feast repo built in code: local provider, file registry, Milvus online store."""
    if impl == "mm":
        target: Dict[str, Any] = {"uri": uri} if uri else {"path": str(lite_db)}
        online_config: Any = MmMilvusOnlineStoreConfig(**target, **online)
    else:  # stock: one store-wide embedding_dim, the test's vector size
        online_config = MilvusOnlineStoreConfig(path=str(lite_db), embedding_dim=dim, **online)
    config = RepoConfig(
        project=project or f"p{uuid.uuid4().hex[:10]}",
        provider="local",
        registry=RegistryConfig(path=str(tmp_path / "registry.db")),
        online_store=online_config,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    if impl == "mm":
        from mm_feast.stores.feature_store import MmFeatureStore

        return MmFeatureStore(config=config)
    return FeatureStore(config=config)


def item_entity() -> Entity:
    return Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)


def view(
    name: str,
    entity: Entity,
    fields: Sequence[Field],
    tmp_path: Path,
) -> FeatureView:
    source = FileSource(path=str(tmp_path / f"{name}.parquet"), timestamp_field="event_timestamp")
    return FeatureView(
        name=name,
        entities=[entity],
        schema=[Field(name=entity.join_key, dtype=Int64), *fields],
        source=source,
        online=True,
        ttl=timedelta(days=1),
    )


def vector_field(name: str, dim: int, metric: Optional[str] = "COSINE") -> Field:
    return Field(
        name=name,
        dtype=Array(Float32),
        vector_index=True,
        vector_length=dim,
        vector_search_metric=metric,
    )


def docs_view(tmp_path: Path, dim: int = 8, metric: Optional[str] = "COSINE", name: str = "docs") -> FeatureView:
    return view(name, item_entity(), [vector_field("emb", dim, metric), Field(name="caption", dtype=String)], tmp_path)


def write(fs: FeatureStore, view_name: str, rows: Dict[str, List[Any]], ts: datetime = NOW) -> None:
    """Write rows through Feast's own ingestion path (FeatureStore.write_to_online_store)."""
    df = pd.DataFrame(rows)
    if "event_timestamp" not in df:
        df["event_timestamp"] = ts
    fs.write_to_online_store(view_name, df)


def planar(angle_deg: float, dim: int, norm: float = 1.0) -> List[float]:
    """A vector at ``angle_deg`` from e1 in the (e1, e2) plane."""
    v = [0.0] * dim
    v[0] = norm * math.cos(math.radians(angle_deg))
    v[1] = norm * math.sin(math.radians(angle_deg))
    return v


def f32(values: Sequence[float]) -> List[float]:
    return [float(x) for x in np.asarray(values, dtype=np.float32)]


def raw_client(fs: FeatureStore) -> MilvusClient:
    """The store's own client (ours or stock), to inspect Milvus directly."""
    client = getattr(fs._get_provider().online_store, "client")
    assert isinstance(client, MilvusClient)
    return client


def mm_store(fs: FeatureStore) -> MmMilvusOnlineStore:
    store = fs._get_provider().online_store
    assert isinstance(store, MmMilvusOnlineStore)
    return store


def collection_name(fs: FeatureStore, view_name: str) -> str:
    return f"{fs.project}_{view_name}"


# Items at known angles from the query e1; ids deliberately out of rank order.
ANGLES = {50: 0.0, 10: 15.0, 40: 30.0, 20: 45.0, 60: 60.0, 30: 75.0}
RANKED_IDS = [50, 10, 40, 20, 60, 30]


def write_docs(fs: FeatureStore, dim: int = 8, name: str = "docs") -> None:
    ids = list(ANGLES)
    write(
        fs,
        name,
        {
            "item_id": ids,
            "emb": [planar(ANGLES[i], dim) for i in ids],
            "caption": [f"item-{i}" for i in ids],
        },
    )


# --- defect 1: rows aligned, in rank order -----------------------------------------------


@against_stock("entity keys stay in rank order while features and distances are re-sorted")
def test_defect1_document_rows_aligned_in_rank_order(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)

    out = fs.retrieve_online_documents_v2(
        features=["docs:emb", "docs:caption"], query=planar(0, 8), top_k=6
    ).to_dict()

    assert out["item_id"] == RANKED_IDS
    assert out["caption"] == [f"item-{i}" for i in RANKED_IDS]
    expected = [math.cos(math.radians(ANGLES[i])) for i in RANKED_IDS]
    assert out["distance"] == pytest.approx(expected, abs=1e-5)


# --- defect 2: vector size per field -----------------------------------------------------


@against_stock("embedding_dim is store-wide, so 512-d and 384-d fields cannot coexist")
def test_defect2_vector_dims_per_field(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db, dim=512)
    entity = item_entity()
    image = view("image_emb", entity, [vector_field("emb", 512)], tmp_path)
    text = view("text_emb", entity, [vector_field("emb", 384)], tmp_path)
    fs.apply([entity, image, text])
    rng = np.random.default_rng(0)
    ids = [1, 2, 3, 4, 5]
    vectors = {d: rng.normal(size=(5, d)).astype(np.float32) for d in (512, 384)}
    write(fs, "image_emb", {"item_id": ids, "emb": list(vectors[512])})
    write(fs, "text_emb", {"item_id": ids, "emb": list(vectors[384])})

    for name, d in (("image_emb", 512), ("text_emb", 384)):
        hit = fs.retrieve_online_documents_v2(
            features=[f"{name}:emb"], query=vectors[d][3].tolist(), top_k=1
        ).to_dict()
        assert hit["item_id"] == [4]
        assert hit["distance"][0] == pytest.approx(1.0, abs=1e-5)
        row = fs.get_online_features(features=[f"{name}:emb"], entity_rows=[{"item_id": 2}]).to_dict()
        assert row["emb"][0] == f32(vectors[d][1])


# --- defect 3: non-vector arrays ---------------------------------------------------------


@against_stock("a numeric array without vector_index becomes a FLOAT_VECTOR and fails to write")
def test_defect3_numeric_arrays_roundtrip_exactly(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db, dim=4)
    entity = item_entity()
    arrays = view(
        "arrays",
        entity,
        [
            vector_field("emb", 4),
            Field(name="boxes", dtype=Array(Float32)),
            Field(name="frame_ids", dtype=Array(Int64)),
            Field(name="scores", dtype=Array(Float64)),
        ],
        tmp_path,
    )
    fs.apply([entity, arrays])
    rows: Dict[str, List[Any]] = {
        "item_id": [1, 2],
        "emb": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
        "boxes": [[0.1, -3.4e38, 1e-8], [2.5, 7.0, 8.0, 9.0, 10.0, 11.0]],  # not 4 long
        "frame_ids": [[2**62 + 1, -7], [0]],
        "scores": [[0.1, 1 / 3], [-1e300]],
    }
    write(fs, "arrays", rows)

    out = fs.get_online_features(
        features=["arrays:boxes", "arrays:frame_ids", "arrays:scores"],
        entity_rows=[{"item_id": 1}, {"item_id": 2}],
    ).to_dict()
    assert out["boxes"] == [f32(v) for v in rows["boxes"]]
    assert out["frame_ids"] == rows["frame_ids"]
    assert out["scores"] == rows["scores"]


def test_string_and_bool_arrays_roundtrip(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    entity = item_entity()
    lists = view(
        "lists",
        entity,
        [Field(name="tags", dtype=Array(String)), Field(name="flags", dtype=Array(Bool))],
        tmp_path,
    )
    fs.apply([entity, lists])  # no vector field: a placeholder vector keeps Milvus content
    rows: Dict[str, List[Any]] = {"item_id": [1, 2], "tags": [["a", "é,b"], ["c"]], "flags": [[True, False], [False]]}
    write(fs, "lists", rows)

    out = fs.get_online_features(
        features=["lists:tags", "lists:flags"], entity_rows=[{"item_id": 1}, {"item_id": 2}]
    ).to_dict()
    assert out["tags"] == rows["tags"]
    assert out["flags"] == rows["flags"]


# --- defect 4: stored vectors in search results ------------------------------------------


@against_stock("the vector column of search results holds the query, not the stored vector")
def test_defect4_search_returns_stored_vectors(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    query = planar(5, 8)

    out = fs.retrieve_online_documents_v2(
        features=["docs:emb", "docs:caption"], query=query, top_k=3
    ).to_dict()

    assert out["item_id"] == [50, 10, 40]
    assert out["emb"] == [f32(planar(ANGLES[i], 8)) for i in out["item_id"]]
    online = fs.get_online_features(features=["docs:emb"], entity_rows=[{"item_id": 10}]).to_dict()
    assert online["emb"] == [f32(planar(ANGLES[10], 8))]


# --- defect 5: query_string is BM25 with a rank, not a LIKE filter ----------------------


@against_stock("query_string becomes LIKE '%q%': hits carry no text_rank and are not ranked")
def test_defect5_query_string_is_ranked_bm25(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    docs = docs_view(tmp_path)
    docs.tags = {"mm_feast.full_text": "caption"}
    fs.apply([item_entity(), docs])
    write(fs, "docs", {"item_id": [1, 2, 3], "emb": [planar(a, 8) for a in (0, 30, 60)],
                       "caption": ["a quick fox", "the red fox", "blue whale"]})
    out = fs.retrieve_online_documents_v2(features=["docs:caption"], query_string="red fox", top_k=3).to_dict()
    assert out["item_id"] == [2, 1]  # BM25: both words rank above one; "blue whale" has neither
    assert all(isinstance(r, float) and 0 < r < 1 for r in out["text_rank"])
    assert out["text_rank"] == sorted(out["text_rank"], reverse=True)


# --- defect 13: document search reads the registry database on every call ---------------


@against_stock("retrieve_online_documents_v2 reads and deserialises the view from the registry database per requested feature")
def test_defect13_document_search_reads_views_through_a_cache(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    uncached = []
    original = fs.registry.get_feature_view

    def spy(name: str, project: str, allow_cache: bool = False) -> Any:
        if not allow_cache:
            uncached.append(name)
        return original(name, project, allow_cache=allow_cache)

    fs.registry.get_feature_view = spy  # type: ignore[method-assign]
    for _ in range(5):
        out = fs.retrieve_online_documents_v2(features=["docs:emb", "docs:caption"], query=planar(0, 8), top_k=3).to_dict()
        assert out["item_id"] == RANKED_IDS[:3]
    assert uncached == []
    assert fs.get_feature_view("docs").name == "docs"  # outside document search: Feast's own read
    assert uncached == ["docs"]


# --- defect 10: the field's metric, for index and search ---------------------------------

# Query e1; three different rankings. COSINE: 1, 2, 4, 3. IP: 1, 4, 2, 3. L2: 2, 3, 4, 1.
METRIC_POINTS = {1: [10.0, 1.0], 2: [0.6, 0.6], 3: [-1.0, 0.1], 4: [3.0, 4.0]}


def metric_rows(dim: int) -> Dict[str, List[Any]]:
    return {
        "item_id": list(METRIC_POINTS),
        "emb": [p + [0.0] * (dim - 2) for p in METRIC_POINTS.values()],
        "caption": [f"item-{i}" for i in METRIC_POINTS],
    }


def expected_by_metric(metric: str, dim: int) -> tuple[List[int], List[float]]:
    q = np.zeros(dim, dtype=np.float32)
    q[0] = 1.0
    ids = list(METRIC_POINTS)
    x = np.asarray(metric_rows(dim)["emb"], dtype=np.float32)
    if metric == "COSINE":
        score = x @ q / np.linalg.norm(x, axis=1)
        order = np.argsort(-score)
    elif metric == "IP":
        score = x @ q
        order = np.argsort(-score)
    else:  # Milvus reports squared L2
        score = ((x - q) ** 2).sum(axis=1)
        order = np.argsort(score)
    return [ids[i] for i in order], [float(score[i]) for i in order]


@against_stock("a field without vector_search_metric is indexed with metric_type but searched with L2")
def test_defect10_search_uses_the_index_metric(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)  # metric_type defaults to COSINE
    fs.apply([item_entity(), docs_view(tmp_path, metric=None)])
    write(fs, "docs", metric_rows(8))

    out = fs.retrieve_online_documents_v2(
        features=["docs:emb", "docs:caption"], query=planar(0, 8), top_k=3
    ).to_dict()

    ids, scores = expected_by_metric("COSINE", 8)
    assert out["item_id"] == ids[:3]
    assert out["distance"] == pytest.approx(scores[:3], abs=1e-5)


def test_defect10_each_field_keeps_its_metric(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    views = {m: docs_view(tmp_path, metric=m, name=f"docs_{m.lower()}") for m in ("COSINE", "L2", "IP")}
    fs.apply([item_entity(), *views.values()])
    client = raw_client(fs)
    store = mm_store(fs)
    for metric, fv in views.items():
        write(fs, fv.name, metric_rows(8))
        index = client.describe_index(collection_name(fs, fv.name), "vector_index_emb")
        assert index["metric_type"] == metric
        ids, scores = expected_by_metric(metric, 8)

        out = fs.retrieve_online_documents_v2(
            features=[f"{fv.name}:emb", f"{fv.name}:caption"], query=planar(0, 8), top_k=4
        ).to_dict()
        assert out["item_id"] == ids, metric
        assert out["distance"] == pytest.approx(scores, rel=1e-4, abs=1e-5)
        hits = store.search_vectors(fs.config, fs.get_feature_view(fv.name), "emb", np.asarray(planar(0, 8)), 4, [])
        assert [h["item_id"] for h in hits[0]] == ids
        assert [h["distance"] for h in hits[0]] == pytest.approx(scores, rel=1e-4, abs=1e-5)


# --- defect 12: load once, Bounded reads, flushed writes, configurable search -------------

METADATA_CALLS = (
    "has_collection",
    "describe_collection",
    "get_load_state",
    "load_collection",
    "list_indexes",
    "describe_index",
)


@pytest.fixture
def milvus_calls(monkeypatch: pytest.MonkeyPatch) -> Dict[str, int]:
    """Count (and still make) real MilvusClient calls, for every client in the process."""
    counts: Dict[str, int] = {}
    for name in METADATA_CALLS + ("flush",):
        original = getattr(MilvusClient, name)

        def spy(self: MilvusClient, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MilvusClient, name, spy)
    return counts


@against_stock("collection checks and loading are cached per store instance, not per process")
def test_defect12_collections_are_checked_and_loaded_once_per_process(
    tmp_path: Path, lite_db: Path, impl: str, milvus_calls: Dict[str, int]
) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 10}])
    milvus_calls.clear()

    # A second FeatureStore in the same process, as a server worker or a notebook would make.
    again = FeatureStore(config=fs.config)
    for _ in range(5):
        again.get_online_features(features=["docs:emb", "docs:caption"], entity_rows=[{"item_id": 10}])
        again.retrieve_online_documents_v2(features=["docs:emb", "docs:caption"], query=planar(0, 8), top_k=3)

    assert {k: v for k, v in milvus_calls.items() if k in METADATA_CALLS} == {}


@against_stock("reads and searches send no consistency level, so they get the collection's (Strong)")
def test_defect12_serving_reads_are_bounded(
    tmp_path: Path, lite_db: Path, impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    levels: List[Optional[str]] = []
    for name in ("query", "search"):
        original = getattr(MilvusClient, name)

        def spy(self: MilvusClient, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            levels.append(kwargs.get("consistency_level"))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MilvusClient, name, spy)

    fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 10}])
    fs.retrieve_online_documents_v2(features=["docs:caption"], query=planar(0, 8), top_k=2)

    assert levels and set(levels) == {"Bounded"}


@against_stock("writes are never flushed, and unflushed rows search slowly on Milvus Lite")
def test_defect12_lite_writes_are_flushed(
    tmp_path: Path, lite_db: Path, impl: str, milvus_calls: Dict[str, int]
) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    milvus_calls.clear()
    write_docs(fs)
    assert milvus_calls.get("flush", 0) >= 1


def test_existing_collection_is_checked_and_loaded_in_a_new_process(
    tmp_path: Path, lite_db: Path, milvus_calls: Dict[str, int]
) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    fs.apply([item_entity(), docs_view(tmp_path, metric="IP")])
    write_docs(fs)
    clear_cache()  # what a fresh serving process sees: the collection exists, nothing cached
    milvus_calls.clear()

    fresh = FeatureStore(config=fs.config)
    out = fresh.retrieve_online_documents_v2(features=["docs:caption"], query=planar(0, 8), top_k=2).to_dict()
    assert out["item_id"] == RANKED_IDS[:2]
    assert milvus_calls["describe_collection"] == 1 and milvus_calls["describe_index"] == 1
    fresh.retrieve_online_documents_v2(features=["docs:caption"], query=planar(0, 8), top_k=2)
    assert milvus_calls["describe_collection"] == 1 and milvus_calls["describe_index"] == 1


def test_defect12_ivf_flat_with_configured_nprobe_on_lite(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db, index_type="IVF_FLAT", nlist=4, search_params={"nprobe": 4})
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    index = raw_client(fs).describe_index(collection_name(fs, "docs"), "vector_index_emb")
    assert index["index_type"] == "IVF_FLAT"

    out = fs.retrieve_online_documents_v2(features=["docs:caption"], query=planar(0, 8), top_k=6).to_dict()
    assert out["item_id"] == RANKED_IDS  # nprobe == nlist: exhaustive


def test_lite_refuses_server_only_index_types(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db, index_type="HNSW")
    with pytest.raises(ValueError, match="not available on Milvus Lite"):
        fs.apply([item_entity(), docs_view(tmp_path)])


def test_the_index_type_is_set_per_view_or_field_on_lite(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db, vector_indexes={
        "docs": {"index_type": "IVF_FLAT", "index_params": {"nlist": 4}, "search_params": {"nprobe": 4}},
        "other.emb": {"index_type": "FLAT"},
    })
    entity = item_entity()
    other = view("other", entity, [vector_field("emb", 8)], tmp_path)
    fs.apply([entity, docs_view(tmp_path), other])
    client = raw_client(fs)
    docs_index = client.describe_index(collection_name(fs, "docs"), "vector_index_emb")
    assert (docs_index["index_type"], str(docs_index.get("nlist"))) == ("IVF_FLAT", "4")
    assert client.describe_index(collection_name(fs, "other"), "vector_index_emb")["index_type"] == "FLAT"
    write_docs(fs)
    out = fs.retrieve_online_documents_v2(features=["docs:caption"], query=planar(0, 8), top_k=6).to_dict()
    assert out["item_id"] == RANKED_IDS  # nprobe == nlist: exhaustive

    refused = make_store(tmp_path / "hnsw", "mm", tmp_path / "hnsw.db", vector_indexes={"docs.emb": {"index_type": "HNSW"}})
    with pytest.raises(ValueError, match="'HNSW' \\(view 'docs', field 'emb'\\) is not available on Milvus Lite"):
        refused.apply([item_entity(), docs_view(tmp_path)])
    with pytest.raises(ValueError, match="unknown settings \\['metric'\\]"):
        MmMilvusOnlineStoreConfig(path=str(lite_db), vector_indexes={"docs": {"metric": "L2"}})


def test_a_partition_key_is_refused_where_milvus_gets_it_wrong(tmp_path: Path, lite_db: Path) -> None:
    """Feast's ``partition_key`` (one collection split by modality) is refused with the reason on
    Milvus Lite 2.5.1 (a primary-key query on such a collection fails: every upsert would) and on
    servers below 2.4 (2.3.5 files upserted rows under the wrong partition: a filtered search
    finds nothing). Both measured here; see docs/scale.md."""
    entity = item_entity()
    mixed = view("mixed", entity, [vector_field("emb", 8), Field(name="modality", dtype=String)], tmp_path)
    fs = make_store(tmp_path, "mm", lite_db, partition_key="modality")
    with pytest.raises(ValueError, match="partition key 'modality' needs a Milvus server >= 2.4.0.*primary-key queries"):
        fs.apply([entity, mixed])


@pytest.mark.milvus_server
def test_a_partition_key_is_refused_on_a_server_below_2_4(tmp_path: Path, milvus_server_uri: str) -> None:
    fs = make_store(tmp_path, "mm", uri=milvus_server_uri, partition_key="modality")
    entity = item_entity()
    mixed = view("mixed", entity, [vector_field("emb", 8), Field(name="modality", dtype=String)], tmp_path)
    checker = MilvusClient(uri=milvus_server_uri, timeout=30)
    try:
        version = checker.get_server_version()
        if not version.removeprefix("v").startswith("2.3"):
            pytest.skip(f"the server runs {version}: the refusal is for servers below 2.4")
        with pytest.raises(ValueError, match="upserted rows land in the wrong partition"):
            fs.apply([entity, mixed])
        assert not checker.has_collection(collection_name(fs, "mixed"))
    finally:
        checker.close()


# --- writes, nulls, keys, fast path --------------------------------------------------------


def test_writes_are_idempotent_upserts_and_newest_event_wins(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write_docs(fs)
    write_docs(fs)  # a rerun
    write(
        fs,
        "docs",
        {
            "item_id": [10, 10],
            "emb": [planar(15, 8), planar(15, 8)],
            "caption": ["newest", "older"],
            "event_timestamp": [NOW + timedelta(hours=2), NOW + timedelta(hours=1)],
        },
        ts=None,  # type: ignore[arg-type]
    )
    client = raw_client(fs)
    count = client.query(collection_name(fs, "docs"), filter="", output_fields=["count(*)"])
    assert count[0]["count(*)"] == len(ANGLES)
    out = fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 10}]).to_dict()
    assert out["caption"] == ["newest"]


def test_null_features_read_back_as_null(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])
    write(fs, "docs", {"item_id": [1, 2], "emb": [planar(0, 8), planar(90, 8)], "caption": ["one", None]})

    out = fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 1}, {"item_id": 2}, {"item_id": 3}]).to_dict()
    assert out["caption"] == ["one", None, None]


def test_search_vectors_batch_with_composite_keys_and_filter(tmp_path: Path, lite_db: Path) -> None:
    fs = make_store(tmp_path, "mm", lite_db)
    video = Entity(name="video", join_keys=["video"], value_type=ValueType.STRING)
    frame = Entity(name="frame", join_keys=["frame"], value_type=ValueType.INT64)
    frames = FeatureView(
        name="frames",
        entities=[video, frame],
        schema=[
            Field(name="video", dtype=String),
            Field(name="frame", dtype=Int64),
            vector_field("emb", 8),
            Field(name="pts", dtype=Float64),
        ],
        source=FileSource(path=str(tmp_path / "frames.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    fs.apply([video, frame, frames])
    angles = [0.0, 20.0, 40.0, 60.0, 80.0]
    write(
        fs,
        "frames",
        {
            "video": ["a.mp4", "a.mp4", "b.mp4", "b.mp4", "c.mp4"],
            "frame": [0, 12, 0, 7, 3],
            "emb": [planar(a, 8) for a in angles],
            "pts": [0.0, 0.5, 0.0, 0.28, 0.12],
        },
    )
    store = mm_store(fs)
    fv = fs.get_feature_view("frames")
    queries = np.stack([planar(0, 8), planar(80, 8)]).astype(np.float32)

    hits = store.search_vectors(fs.config, fv, "emb", queries, top_k=2, output_fields=None)
    assert [(h["video"], h["frame"]) for h in hits[0]] == [("a.mp4", 0), ("a.mp4", 12)]
    assert [(h["video"], h["frame"]) for h in hits[1]] == [("c.mp4", 3), ("b.mp4", 7)]
    assert hits[1][1]["pts"] == 0.28 and "emb" not in hits[1][1]
    assert hits[0][0]["distance"] >= hits[0][1]["distance"]

    filtered = store.search_vectors(fs.config, fv, "emb", queries[0], top_k=5, output_fields=["emb"], expr="pts > 0.2")
    assert [(h["video"], h["frame"]) for h in filtered[0]] == [("a.mp4", 12), ("b.mp4", 7)]
    assert filtered[0][0]["emb"] == f32(planar(20, 8))
    with pytest.raises(ValueError, match="dim 8"):
        store.search_vectors(fs.config, fv, "emb", np.zeros(4), top_k=1)


def test_stock_collection_is_refused_with_a_clear_error(tmp_path: Path, lite_db: Path) -> None:
    stock = make_store(tmp_path, "stock", lite_db)
    stock.apply([item_entity(), docs_view(tmp_path)])
    (tmp_path / "ours").mkdir()
    ours = make_store(tmp_path / "ours", "mm", lite_db, project=stock.project)
    with pytest.raises(ValueError, match="does not match its feature view"):
        ours.apply([item_entity(), docs_view(tmp_path)])


# --- the same definitions on a real Milvus server -------------------------------------------


@pytest.mark.milvus_server
def test_same_definitions_on_a_milvus_server(tmp_path: Path, milvus_server_uri: str) -> None:  # noqa: F811
    fs = make_store(
        tmp_path,
        "mm",
        uri=milvus_server_uri,
        index_type="HNSW",
        index_params={"M": 8, "efConstruction": 64},
        search_params={"ef": 4},
        consistency_level="Strong",  # read-your-writes for the assertions; Bounded is checked last
        vector_indexes={"text_emb.emb": {"index_type": "IVF_FLAT", "index_params": {"nlist": 2}}},
    )
    entity = item_entity()
    image = view("image_emb", entity, [vector_field("emb", 512)], tmp_path)
    text = view("text_emb", entity, [vector_field("emb", 384)], tmp_path)
    arrays = view(
        "arrays",
        entity,
        [vector_field("emb", 4, "L2"), Field(name="boxes", dtype=Array(Float32)), Field(name="frame_ids", dtype=Array(Int64))],
        tmp_path,
    )
    fs.apply([entity, docs_view(tmp_path), image, text, arrays])
    try:
        client = raw_client(fs)
        assert client.describe_index(collection_name(fs, "docs"), "vector_index_emb")["index_type"] == "HNSW"
        text_index = client.describe_index(collection_name(fs, "text_emb"), "vector_index_emb")
        assert (text_index["index_type"], str(text_index.get("nlist"))) == ("IVF_FLAT", "2"), "set per view"

        write_docs(fs)
        out = fs.retrieve_online_documents_v2(
            features=["docs:emb", "docs:caption"], query=planar(5, 8), top_k=6  # top_k > ef
        ).to_dict()
        assert out["item_id"] == RANKED_IDS
        assert out["caption"] == [f"item-{i}" for i in RANKED_IDS]
        assert out["emb"] == [f32(planar(ANGLES[i], 8)) for i in RANKED_IDS]

        rng = np.random.default_rng(1)
        for name, d in (("image_emb", 512), ("text_emb", 384)):
            vectors = rng.normal(size=(3, d)).astype(np.float32)
            write(fs, name, {"item_id": [1, 2, 3], "emb": list(vectors)})
            store = mm_store(fs)
            hits = store.search_vectors(fs.config, fs.get_feature_view(name), "emb", vectors[2], 1, ["emb"])
            assert hits[0][0]["item_id"] == 3 and hits[0][0]["emb"] == f32(vectors[2])

        rows: Dict[str, List[Any]] = {
            "item_id": [1, 2],
            "emb": [[0.0] * 4, [1.0] * 4],
            "boxes": [[0.1, -3.4e38, 1e-8], [2.5]],
            "frame_ids": [[2**62 + 1, -7], []],
        }
        write(fs, "arrays", rows)
        got = fs.get_online_features(features=["arrays:boxes", "arrays:frame_ids"], entity_rows=[{"item_id": 1}, {"item_id": 2}]).to_dict()
        assert got["boxes"] == [f32(v) for v in rows["boxes"]]
        assert got["frame_ids"] == rows["frame_ids"]

        # Released behind the store's back (a server answers "collection not loaded"):
        # the store loads it again and retries, instead of checking before every request.
        client.release_collection(collection_name(fs, "docs"))
        got = fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 40}]).to_dict()
        assert got["caption"] == ["item-40"]

        bounded = make_store(tmp_path, "mm", uri=milvus_server_uri, project=fs.project)
        assert bounded.config.online_store.consistency_level == "Bounded"
        row = bounded.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 60}]).to_dict()
        assert row["caption"] in (["item-60"], [None])  # Bounded may lag a just-written row

        described = client.describe_collection(collection_name(fs, "docs"))
        assert described["consistency_level"] == 2  # Bounded, the collection default
    finally:
        fs.teardown()


@against_stock("an older write overwrites a newer row already stored (universal test_write_to_online_store_event_check)")
def test_an_older_write_never_replaces_a_newer_stored_row(tmp_path: Path, lite_db: Path, impl: str) -> None:
    fs = make_store(tmp_path, impl, lite_db)
    fs.apply([item_entity(), docs_view(tmp_path)])

    def one(caption: str, event: datetime) -> None:
        write(fs, "docs", {"item_id": [7], "emb": [planar(30, 8)], "caption": [caption], "event_timestamp": [event]}, ts=None)  # type: ignore[arg-type]

    one("newer", NOW + timedelta(hours=2))
    one("older", NOW + timedelta(hours=1))  # a separate, later write of an older event
    assert fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 7}]).to_dict()["caption"] == ["newer"]
    one("newest", NOW + timedelta(hours=3))
    assert fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 7}]).to_dict()["caption"] == ["newest"]


@pytest.mark.milvus_server
def test_the_uri_and_token_shape_serves_from_the_server(tmp_path: Path, milvus_server_uri: str) -> None:  # noqa: F811
    """The feature_store.yaml shape of docs/scale.md (``uri:`` plus ``token:``) against the local
    server: its authorisation is off, so it accepts Milvus' default credential, which pymilvus sends."""
    fs = make_store(tmp_path, "mm", uri=milvus_server_uri, token="root:Milvus", consistency_level="Strong")
    fs.apply([item_entity(), docs_view(tmp_path)])
    try:
        assert mm_store(fs)._endpoint(fs.config).token == "root:Milvus"
        write_docs(fs)
        got = fs.get_online_features(features=["docs:caption"], entity_rows=[{"item_id": 40}]).to_dict()
        assert got["caption"] == ["item-40"]
    finally:
        fs.teardown()
