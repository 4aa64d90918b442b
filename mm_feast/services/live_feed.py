"""Label a live feed one second at a time from what the store already holds: the second's frames
and its audio are encoded, each searched in its own view, and each label is the majority of
the top-k hits' labels, weighted by similarity (k-nearest-neighbour voting over served,
labelled rows).

The feed arrives decoded (frames as HxWx3 arrays, audio as float samples), as from a camera
and a microphone. Frames are taken at the frame view's own sampling, and the two searches run
concurrently.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from mm_feast.core.errors import InvalidArgument
from mm_feast.pipeline.rows import normalised
from mm_feast.services.search import CrossModalSearch, Hit
from mm_feast.services.versions import query_encoder


def caption_label(hit: Hit) -> str:
    """A hit's label: its stored caption (images: one concept each)."""
    return str(hit.fields.get("caption") or "")


def timed_caption_label(hit: Hit) -> str:
    """A segment hit's label from an item caption that lists one concept per second ("a low tone,
    then a high tone, ..."): the concept at the middle of the hit's window (the demo's audio)."""
    from mm_feast.synthetic import caption_at

    start, end = float(hit.fields.get("start_s") or 0.0), float(hit.fields.get("end_s") or 0.0)
    return caption_at(caption_label(hit), (start + end) / 2)


@dataclass(frozen=True)
class FeedLabel:
    """The labels voted for one second of feed, with how many of the top-k hits agreed."""

    visual: str
    visual_votes: int
    acoustic: str
    acoustic_votes: int
    top_k: int
    elapsed_ms: float


class LiveFeedClassifier:
    """kNN labels for one-second chunks of a video feed (frames + audio track)."""

    def __init__(
        self,
        search: CrossModalSearch,
        visual_view: str = "image_embeddings",
        acoustic_view: str = "audio_window_embeddings",
        top_k: int = 5,
        frames_per_second: Optional[float] = None,
        visual_label: Callable[[Hit], str] = caption_label,
        acoustic_label: Callable[[Hit], str] = timed_caption_label,
    ):
        self.search = search
        views = {v.name: v for v in search.embedding_views()}
        missing = [n for n in (visual_view, acoustic_view) if n not in views]
        if missing:
            raise InvalidArgument(f"not embedding views of this repo: {missing}; known: {sorted(views)}")
        self.visual_view, self.acoustic_view = views[visual_view], views[acoustic_view]
        self.visual_encoder = query_encoder(search.store, self.visual_view)
        self.acoustic_encoder = query_encoder(search.store, self.acoustic_view)
        self.top_k = top_k
        sampling = self.visual_view.batch_source.segmentation.frame_sampling
        self.frames_per_second = frames_per_second or (1.0 / sampling.value if sampling.mode == "every_n_seconds" else 2.0)
        self.visual_label, self.acoustic_label = visual_label, acoustic_label

    def warm(self) -> None:
        """Load both collections and run both models once, so the first second is not slower."""
        self.search.warm([self.visual_view.name, self.acoustic_view.name])
        rate = int(getattr(self.acoustic_encoder, "sample_rate", 16000))
        self.classify([np.zeros((32, 32, 3), dtype=np.uint8)], np.zeros(rate, dtype=np.float32), rate)

    def classify(self, frames: Sequence[np.ndarray], audio: np.ndarray, sample_rate: int) -> FeedLabel:
        """Labels for one second: ``frames`` at the feed's rate, ``audio`` at ``sample_rate``."""
        started = time.perf_counter()
        if not len(frames):
            raise InvalidArgument("a feed second needs at least one frame")
        rate = getattr(self.acoustic_encoder, "sample_rate", sample_rate)
        if sample_rate != rate:
            raise InvalidArgument(f"feed audio is at {sample_rate} Hz; {self.acoustic_encoder.model_id} takes {rate} Hz")
        step = max(1, int(round(len(frames) / self.frames_per_second)))
        picked = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames[::step]]
        visual_job = self.search.submit(lambda: self._nearest(self.visual_view, self.visual_encoder, "image", picked))
        acoustic = self._nearest(self.acoustic_view, self.acoustic_encoder, "audio", [np.asarray(audio, dtype=np.float32)])
        visual = visual_job.result()
        (v_label, v_votes), (a_label, a_votes) = _vote(visual, self.visual_label), _vote(acoustic, self.acoustic_label)
        return FeedLabel(v_label, v_votes, a_label, a_votes, self.top_k, (time.perf_counter() - started) * 1000)

    def _nearest(self, view, encoder, kind: str, items: list) -> list[Hit]:
        return self.search.nearest(view, normalised(encoder.encode(kind, items).mean(axis=0)), encoder, self.top_k)


def _vote(hits: list[Hit], label: Callable[[Hit], str]) -> tuple[str, int]:
    """The label with the largest summed similarity among the hits, and how many hits carry it.

    Weighting by similarity keeps a clear nearest neighbour from being outvoted by weaker ones
    where the index holds few references per label (one image per concept in the demo)."""
    weight: dict[str, float] = {}
    count: Counter[str] = Counter()
    for hit in hits:
        name = label(hit)
        weight[name] = weight.get(name, 0.0) + max(float(hit.scores.get("vector") or 0.0), 0.0)
        count[name] += 1
    if not weight:
        return "", 0
    winner = max(weight, key=lambda name: weight[name])  # insertion order: ties go to the better rank
    return winner, count[winner]
