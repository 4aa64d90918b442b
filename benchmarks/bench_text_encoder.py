"""MiniLM (all-MiniLM-L6-v2, the bundled trained weights) sentences/s: the model alone on
pre-tokenised batches, against the encoder (tokenizer + model + pooling + copy back), same
batches, same run. On CUDA the model runs in bf16 with pinned, non-blocking copies.

    python -m benchmarks.bench_text_encoder [--sentences 4096] [--batch-size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from mm_feast.encoders import get_encoder

from benchmarks.bench_pipeline import synchronize

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def sentences(n: int) -> list[str]:
    words = ["red", "circle", "video", "frame", "audio", "window", "caption", "product", "catalog", "scene"]
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(8 + i % 17)) + f" number {i}." for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    encoder = get_encoder(MINILM)
    texts, bs = sentences(args.sentences), args.batch_size
    encoder.encode("text", texts[:bs], batch_size=bs)  # warm-up

    def model_only() -> float:
        batches = [encoder.tokenizer(texts[i : i + bs], return_tensors="pt", padding=True, truncation=True, max_length=256)
                   for i in range(0, len(texts), bs)]
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                encoder.model(**encoder.to_model(batch))
        synchronize(encoder.device)
        return len(texts) / (time.perf_counter() - start)

    def encode() -> float:
        start = time.perf_counter()
        encoder.encode("text", texts, batch_size=bs)
        return len(texts) / (time.perf_counter() - start)

    results: dict[str, list[float]] = {"model only": [], "encode (tokenizer + model + pool)": []}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
        results["model only"].append(model_only())
        results["encode (tokenizer + model + pool)"].append(encode())
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"MiniLM-L6, {len(texts)} sentences, batch {bs}, device {encoder.device} ({encoder.dtype}), "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"{'path':<36} {'sentences/s':>12} {'÷ model only':>13}")
    for name, value in median.items():
        print(f"{name:<36} {value:>12.1f} {value / median['model only']:>13.2f}")


if __name__ == "__main__":
    main()
