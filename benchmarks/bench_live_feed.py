"""Live-feed classification on the demo repo: one second of feed (frames + audio) encoded,
searched in two views and voted into labels, per second of feed, with label accuracy.

Baseline in the same run: the two encoders' forward passes alone on the same inputs (what
encoding costs before any search or vote). Run:
    python -m benchmarks.bench_live_feed [--repo DIR] [--seconds 300]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_serve import _demo_repo
from benchmarks.common import LATENCY_HEADER, Latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--seconds", type=int, default=300)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from mm_feast.services.live_feed import LiveFeedClassifier
    from mm_feast.services.search import CrossModalSearch
    from mm_feast.stores.lineage import open_store
    from mm_feast.synthetic import AUDIO_SAMPLE_RATE, feed_second

    repo = _demo_repo(args.repo)
    classifier = LiveFeedClassifier(CrossModalSearch(open_store(repo)))
    rng = np.random.default_rng(11)
    feed = [feed_second(rng) for _ in range(args.seconds + 10)]
    step = max(1, int(round(len(feed[0][0]) / classifier.frames_per_second)))
    ends, encode_only, right_visual, right_acoustic = [], [], 0, 0
    for i, (frames, audio, visual, acoustic) in enumerate(feed):
        start = time.perf_counter()
        label = classifier.classify(frames, audio, AUDIO_SAMPLE_RATE)
        total = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        classifier.visual_encoder.encode("image", [Image.fromarray(f) for f in frames[::step]])
        classifier.acoustic_encoder.encode("audio", [audio])
        encoders = (time.perf_counter() - start) * 1000
        if i >= 10:  # warm-up seconds are not counted
            ends.append(total)
            encode_only.append(encoders)
            right_visual += label.visual == visual
            right_acoustic += label.acoustic == acoustic
    n = len(ends)
    end_to_end = Latency("classify 1 s of feed (encode 2 frames + 1 s audio, 2 searches, vote)", np.asarray(ends))
    baseline = Latency("baseline: the two encoders only, same inputs", np.asarray(encode_only))
    print(f"\n## Live-feed classifier (`python -m benchmarks.bench_live_feed`, {time.strftime('%Y-%m-%d')}, {n} seconds of feed)\n")
    print(LATENCY_HEADER.replace("throughput /s", "feed seconds /s"))
    print(end_to_end.row(f"visual label accuracy {right_visual / n:.3f}, acoustic {right_acoustic / n:.3f}; {end_to_end.p50 / baseline.p50:.2f}x the encoders"))
    print(baseline.row(""))


if __name__ == "__main__":
    main()
