"""Media and embedding sources: registry round-trip, scanning, and scan-time quarantine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from feast.data_source import DataSource
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto

from mm_feast.stores.quarantine import load_records
from mm_feast.pipeline.ingest import scan_media
from mm_feast.media import AudioWindowing, FrameSampling, SegmentationConfig
from mm_feast.sources import EmbeddingSource, MediaSource


def _roundtrip(source: DataSource) -> DataSource:
    wire = source.to_proto().SerializeToString()
    proto = DataSourceProto()
    proto.ParseFromString(wire)
    return DataSource.from_proto(proto)


def test_media_and_embedding_sources_roundtrip_through_registry_proto():
    media = MediaSource(name="m", root="media", modalities=("image", "video"), tags={"team": "x"})
    seg = SegmentationConfig(frame_sampling=FrameSampling("fps", 2.0), audio_windowing=AudioWindowing(2.0, 0.5), max_chars=300)
    frames = EmbeddingSource(name="f", media=media, modality="video", model_id="some/model", segmentation=seg)
    pooled = EmbeddingSource(name="p", media=media, modality="video", model_id="some/model", granularity="item", segments=frames)

    for source in (media, frames, pooled):
        back = _roundtrip(source)
        assert type(back) is type(source)
        assert back == source
        assert back.path == source.path
    back = _roundtrip(pooled)
    assert back.segments.segmentation.frame_sampling == FrameSampling("fps", 2.0)
    assert back.segments.segmentation.audio_windowing.hop_s == 0.5
    assert back.media.modalities == ("image", "video")
    assert _roundtrip(media).tags["team"] == "x"


def test_directory_scan_hashes_content_and_quarantines_unsupported(tmp_path: Path):
    root = tmp_path / "media"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello")
    (root / "blob.xyz").write_bytes(b"\x00\x01\x02 not media")
    media = MediaSource(name="m", root="media")

    _, summary = scan_media(media, tmp_path)

    assert summary.seen == 2 and summary.ingested == 1 and summary.quarantined == 1
    assert summary.balanced
    [bad] = summary.quarantine
    assert bad.uri.endswith("blob.xyz") and "unsupported" in bad.reason
    manifest = pd.read_parquet(tmp_path / media.path).set_index("item_id")
    assert manifest.loc["docs/a", "sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert manifest.loc["docs/a", "modality"] == "text"
    quarantined = load_records(tmp_path, "m")
    assert list(quarantined["stage"]) == ["scan"]


def test_manifest_scan_keeps_entity_keys_timestamps_and_extra_columns(tmp_path: Path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x.txt").write_text("a red circle")
    (tmp_path / "m" / "manifest.csv").write_text(
        "item_id,uri,caption,event_timestamp\nprod_1,x.txt,shiny,2026-01-02T03:04:05Z\nprod_2,missing.txt,gone,2026-01-02T03:04:06Z\n"
    )
    media = MediaSource(name="m", manifest="m/manifest.csv")

    rows = {r.item_id: r for r in media.scan(tmp_path)}

    assert rows["prod_1"].uri == str((tmp_path / "m" / "x.txt").resolve())
    assert rows["prod_1"].attributes == {"caption": "shiny"}
    assert rows["prod_1"].event_timestamp.isoformat() == "2026-01-02T03:04:05+00:00"
    assert rows["prod_2"].error and "no such file" in rows["prod_2"].error.lower()
