"""Ingest throughput by modality next to the bare model's forward pass at the same batch size.

The baseline (`forward only`) is the encoder on already-decoded segments: the gap between the
two is what decoding, segmentation, hashing and parquet writes cost. Run:
    python benchmarks/bench_ingest.py [--copies 4] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from mm_feast.encoders import get_encoder
from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.pipeline.segments import segments_for
from mm_feast.media import AudioWindowing, FrameSampling, SegmentationConfig
from mm_feast.sources import EmbeddingSource, MediaSource
from mm_feast.synthetic import write_demo_corpus

MODELS = {
    "image": "mm-feast/clip-shapes",
    "video": "mm-feast/clip-shapes",
    "audio": "mm-feast/clap-sounds",
    "text": "sentence-transformers/all-MiniLM-L6-v2",
}
SEGMENTATION = SegmentationConfig(
    frame_sampling=FrameSampling("every_n_seconds", 0.5), audio_windowing=AudioWindowing(1.0, 0.5), max_chars=500
)


def build_corpus(root: Path, copies: int) -> None:
    """The demo corpus ``copies`` times (different seeds), as a directory collection."""
    for seed in range(copies):
        write_demo_corpus(root / "media" / f"set{seed}", seed=seed)


def bench_modality(repo: Path, modality: str, batch_size: int) -> dict:
    media = MediaSource(name=f"bench_{modality}", root="media", modalities=(modality,))
    source = EmbeddingSource(
        name=f"bench_{modality}_emb", media=media, modality=modality, model_id=MODELS[modality], segmentation=SEGMENTATION
    )
    encoder = get_encoder(MODELS[modality])
    encoder.encode("text" if modality == "text" else modality, [], batch_size=batch_size)  # load once
    start = time.perf_counter()
    summary = ensure_embeddings(source, repo, batch_size=batch_size, show_progress=False)
    ingest_s = time.perf_counter() - start

    rows = [r for r in media.scan(repo, write=False) if r.modality == modality]
    segments = [s for r in rows for s in segments_for(r, source, encoder)]
    start = time.perf_counter()
    encoder.encode(modality, [s.data for s in segments], batch_size=batch_size)
    forward_s = time.perf_counter() - start
    return {
        "modality": modality,
        "items": summary.ingested,
        "segments": summary.segments,
        "ingest_items_s": summary.ingested / ingest_s,
        "ingest_segments_s": summary.segments / ingest_s,
        "forward_segments_s": len(segments) / forward_s,
        "ratio": (summary.segments / ingest_s) / (len(segments) / forward_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    repo = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        build_corpus(repo, args.copies)
        results = [bench_modality(repo, m, args.batch_size) for m in ("image", "video", "audio", "text")]
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    print(f"batch size {args.batch_size}, corpus = demo corpus x{args.copies}, CPU")
    print("| modality | items | segments | ingest items/s | ingest segments/s | forward-only segments/s (baseline) | ingest / forward |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['modality']} | {r['items']} | {r['segments']} | {r['ingest_items_s']:.1f} | {r['ingest_segments_s']:.1f}"
            f" | {r['forward_segments_s']:.1f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
