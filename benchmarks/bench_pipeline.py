"""Ingest efficiency with a production-size image model: pipeline images/s against the bare model.

The model is the CLIP ViT-B/32 architecture (224 px, patch 32, 12 layers) with random weights:
speed only, never quality. Baselines, measured in the same run on the same images:
- ``model only``: ``get_image_features`` on already preprocessed pixel tensors, batch by batch;
- ``encode``: the encoder (processor + model) on already decoded images;
- ``pipeline``: the real stage chain (Segment decodes JPEGs from disk, Encode), run by
  ``LocalRunner``, with decode prefetch (the default) and without it.

    python -m benchmarks.bench_pipeline [--images 256] [--batch-size 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mm_feast.encoders import get_encoder
from mm_feast.encoders.base import resolve_model_path
from mm_feast.media import segment_file
from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.runner import LocalRunner, core_free_for_decoding
from mm_feast.pipeline.stage import SourceRun, Work
from mm_feast.pipeline.stages.encode import Encode
from mm_feast.pipeline.stages.segment import Segment
from mm_feast.sources import EmbeddingSource, ManifestRow, MediaSource


def synchronize(device: str) -> None:
    """Wait for queued CUDA work; a no-op on CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def vit_b32_random(dest: Path) -> Path:
    """CLIP ViT-B/32 vision tower, random weights, with the bundled word-level tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    shapes = Path(resolve_model_path("mm-feast/clip-shapes"))
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(shapes / name, dest / name)
    processor = json.loads((shapes / "processor_config.json").read_text())
    processor["image_processor"].update(
        crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224},
        image_mean=[0.4815, 0.4578, 0.4082], image_std=[0.2686, 0.2613, 0.2758],
    )
    (dest / "processor_config.json").write_text(json.dumps(processor, indent=2))
    config = CLIPConfig(
        text_config={"vocab_size": 74, "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, "intermediate_size": 1024},
        vision_config={"image_size": 224, "patch_size": 32, "hidden_size": 768, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "intermediate_size": 3072},
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(dest)
    return dest


def write_jpegs(root: Path, n: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = Image.new("RGB", (640, 480), tuple(int(c) for c in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(image)
        x, y = int(rng.integers(0, 400)), int(rng.integers(0, 250))
        draw.ellipse((x, y, x + 200, y + 200), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        image.save(root / f"img{i:04d}.jpg", quality=90)


def jpeg_corpus(work: Path, images: int) -> tuple[Any, EmbeddingSource, list[ManifestRow]]:
    """ViT-B/32 with random weights and its encoder, and ``images`` JPEGs under ``work/repo``
    scanned as the rows of one image source (the corpus of this benchmark and of bench_ray)."""
    model_dir = vit_b32_random(work / "vit-b32-random")
    write_jpegs(work / "repo" / "images", images)
    encoder = get_encoder(str(model_dir))
    media = MediaSource(name="bench_images", root="images", modalities=("image",))
    source = EmbeddingSource(name="bench_vit_b32", media=media, modality="image", model_id=str(model_dir))
    return encoder, source, media.scan(work / "repo", write=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="mm-feast-bench-pipeline-"))
    encoder, source, rows = jpeg_corpus(work, args.images)
    decoded = [segment_file(r.uri, modality="image").pop().data for r in rows]
    bs = args.batch_size
    encoder.encode("image", decoded[:bs], batch_size=bs)  # warm-up

    def model_only() -> float:
        batches = [encoder.processor(images=decoded[i : i + bs], return_tensors="pt")["pixel_values"] for i in range(0, len(decoded), bs)]
        start = time.perf_counter()
        with torch.inference_mode():
            for pixels in batches:
                encoder.model.get_image_features(**encoder.to_model({"pixel_values": pixels}))
        synchronize(encoder.device)  # CUDA runs asynchronously: count the work, not the launches
        return len(decoded) / (time.perf_counter() - start)

    def encode_only() -> float:
        start = time.perf_counter()
        encoder.encode("image", decoded, batch_size=bs)
        return len(decoded) / (time.perf_counter() - start)

    def pipeline(prefetch: Optional[bool]) -> float:
        context = RunContext(work / "repo", batch_size=bs, show_progress=False)
        run = SourceRun(source, encoder, None, context, datetime.now(timezone.utc))
        start = time.perf_counter()
        kept, refused = LocalRunner(chunk_items=bs, prefetch=prefetch).run([Segment(), Encode()], [Work(r) for r in rows], run)
        elapsed = time.perf_counter() - start
        assert len(kept) == len(rows) and not refused
        return len(rows) / elapsed

    auto = "prefetch" if core_free_for_decoding(encoder) else "no prefetch"
    results: dict[str, list[float]] = {"model only": [], "encode (processor + model)": [], f"pipeline, default ({auto})": [],
                                       "pipeline, prefetch": [], "pipeline, no prefetch": []}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits every path alike
        results["model only"].append(model_only())
        results["encode (processor + model)"].append(encode_only())
        results[f"pipeline, default ({auto})"].append(pipeline(None))
        results["pipeline, prefetch"].append(pipeline(True))
        results["pipeline, no prefetch"].append(pipeline(False))
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"CLIP ViT-B/32 (random weights), {len(rows)} JPEGs 640x480, batch {bs}, torch threads {torch.get_num_threads()}, "
          f"device {encoder.device}, median of {args.repeats}")
    print(f"{'path':<34} {'images/s':>9} {'÷ model only':>13} {'÷ encode':>9}")
    for name, value in median.items():
        print(f"{name:<34} {value:>9.1f} {value / median['model only']:>13.2f} {value / median['encode (processor + model)']:>9.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
