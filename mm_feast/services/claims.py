"""The demo's decision model, and its explanations across modalities.

An insurance claim is a damage picture (image or video), a claim text and an optional call
recording. Each is segmented (frames, text blocks, audio windows), embedded by the demo's
models (CLIP, MiniLM, CLAP), mean-pooled per modality and concatenated: the claim's fused
features. A logistic regression over them gives P(reject).

:func:`explain` attributes that probability with exact Shapley values
(``mm_feast.governance.explain``): first across modalities (an absent modality takes its mean
over the training claims), then within each modality across its segments (an absent segment
takes that mean too), so the answer names the frame, the text block or the audio window."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mm_feast.core.errors import InvalidArgument
from mm_feast.governance.explain import MAX_PLAYERS, segment_shapley, shapley
from mm_feast.media import AudioWindowing, FrameSampling, Locator, MediaError, SegmentationConfig, detect, segment_file
from mm_feast.pipeline.rows import normalised

logger = logging.getLogger(__name__)

# beside, not inside, mm_feast/models/: every folder there is an encoder id
MODEL_DIR = Path(__file__).resolve().parents[1] / "decision_models" / "claims"
MODELS = {"picture": "mm-feast/clip-shapes", "text": "sentence-transformers/all-MiniLM-L6-v2", "call": "mm-feast/clap-sounds"}
SEGMENTATION = SegmentationConfig(frame_sampling=FrameSampling("every_n_seconds", 0.5),
                                  audio_windowing=AudioWindowing(window_s=1.0, hop_s=1.0), max_chars=200)


@dataclass
class Part:
    """One modality of a claim: its segments' vectors and where each came from."""

    role: str  # picture, text or call
    modality: str  # image, video, text or audio
    uri: str
    vectors: np.ndarray  # (segments, dim), unit rows
    locators: list[Locator]


@dataclass
class ClaimFeatures:
    parts: dict[str, Part] = field(default_factory=dict)


def _encoder(role: str) -> Any:
    from mm_feast.encoders import get_encoder

    return get_encoder(MODELS[role])


def embed_part(role: str, path: Path) -> Part:
    """Segment and embed one input file with its role's model."""
    modality = detect(path)
    allowed = {"picture": ("image", "video"), "text": ("text",), "call": ("audio",)}[role]
    if modality not in allowed:
        raise InvalidArgument(f"{path}: the {role} of a claim must be {' or '.join(allowed)}, not {modality}")
    segments = segment_file(path, modality, SEGMENTATION)
    if not segments:
        raise MediaError(str(path), "no content to embed")
    encoder = _encoder(role)
    kind = "image" if modality == "video" else modality
    vectors = encoder.encode(kind, [s.data for s in segments])
    return Part(role, modality, str(path), np.asarray(vectors, dtype=np.float64), [s.locator for s in segments])


def embed_claim(picture: Path, text: Path, call: Optional[Path] = None) -> ClaimFeatures:
    features = ClaimFeatures()
    for role, path in (("picture", picture), ("text", text), ("call", call)):
        if path is not None:
            features.parts[role] = embed_part(role, Path(path))
    return features


def pool(vectors: np.ndarray) -> np.ndarray:
    """A modality's segments as one vector: their normalised mean, as item views pool."""
    return normalised(np.asarray(vectors).mean(axis=0)).astype(np.float64)


@dataclass
class DecisionModel:
    """Logistic regression over the concatenated pooled vectors of picture, text and call."""

    weights: dict[str, np.ndarray]
    bias: float
    baseline: dict[str, np.ndarray]  # per role: mean pooled vector over the training claims

    def reject_probability(self, pooled: dict[str, np.ndarray]) -> float:
        logit = self.bias + sum(float(self.weights[r] @ pooled[r]) for r in self.weights)
        return float(1.0 / (1.0 + np.exp(-logit)))

    def save(self, directory: Path, meta: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"w_{r}": w for r, w in self.weights.items()} | {f"b_{r}": b for r, b in self.baseline.items()}
        np.savez(directory / "model.npz", bias=np.array(self.bias), **arrays)
        (directory / "decision.json").write_text(json.dumps({"models": MODELS, **meta}, indent=1) + "\n")

    @staticmethod
    def load(directory: Path = MODEL_DIR) -> "DecisionModel":
        path = directory / "model.npz"
        if not path.is_file():
            raise InvalidArgument(f"no decision model at {path}: train one with scripts/train_claims_model.py")
        data = np.load(path)
        roles = [k[2:] for k in data.files if k.startswith("w_")]
        return DecisionModel({r: data[f"w_{r}"] for r in roles}, float(data["bias"]), {r: data[f"b_{r}"] for r in roles})


def pooled_inputs(features: ClaimFeatures, model: DecisionModel) -> dict[str, np.ndarray]:
    """Each role's pooled vector; an absent call takes the baseline (it contributes nothing)."""
    return {r: pool(features.parts[r].vectors) if r in features.parts else model.baseline[r] for r in model.weights}


def train(features: Sequence[ClaimFeatures], labels: Sequence[bool], l2: float = 1e-2, steps: int = 3000, lr: float = 0.5) -> DecisionModel:
    """Fit the logistic regression by full-batch gradient descent (a few hundred claims)."""
    roles = list(MODELS)
    present = {r: [pool(f.parts[r].vectors) for f in features if r in f.parts] for r in roles}
    baseline = {r: np.mean(present[r], axis=0) for r in roles}
    x = np.stack([np.concatenate([pool(f.parts[r].vectors) if r in f.parts else baseline[r] for r in roles]) for f in features])
    y = np.asarray(labels, dtype=np.float64)
    mean = x.mean(axis=0)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-((x - mean) @ w + b)))
        w -= lr * (((x - mean).T @ (p - y)) / len(y) + l2 * w)
        b -= lr * float((p - y).mean())
    sizes = np.cumsum([0] + [len(baseline[r]) for r in roles])
    weights = {r: w[sizes[i]:sizes[i + 1]] for i, r in enumerate(roles)}
    return DecisionModel(weights, b - float(mean @ w), baseline)


@dataclass
class Attribution:
    role: str
    modality: str
    value: float  # Shapley value towards P(reject)
    share: float  # of the decision's total push, signed towards the decision
    segment: Optional[str] = None  # the segment that carries most of it
    segment_value: float = 0.0


@dataclass
class Explanation:
    decision: str  # approve or reject
    probability: float  # P(reject)
    baseline_probability: float
    attributions: list[Attribution]

    def line(self) -> str:
        confidence = self.probability if self.decision == "reject" else 1 - self.probability

        def said(a: Attribution) -> str:
            where = f" ({a.segment})" if a.segment else ""
            return f"{a.modality if a.role == 'picture' else a.role} {abs(a.share):.0%}{where}"

        line = f"{self.decision} ({confidence:.2f}): " + ", ".join(said(a) for a in self.attributions if a.share >= 0)
        against = [said(a) for a in self.attributions if a.share < 0]
        return line + (f"; against: {', '.join(against)}" if against else "")

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "p_reject": self.probability, "baseline_p_reject": self.baseline_probability,
                "attributions": [a.__dict__ for a in self.attributions]}


def _describe(part: Part, indices: Sequence[int]) -> str:
    first, last = part.locators[indices[0]], part.locators[indices[-1]]
    if part.modality == "video":
        return f"frame at {first.start_s:.2f} s" if len(indices) == 1 else f"frames {first.start_s:.2f}-{last.start_s:.2f} s"
    if part.modality == "audio":
        return f"window {first.start_s:.2f}-{last.end_s:.2f} s"
    if part.modality == "text":
        label = f"block {indices[0] + 1}" if len(indices) == 1 else f"blocks {indices[0] + 1}-{indices[-1] + 1}"
        return f"{label}, chars {first.char_start}-{last.char_end}"
    return ""


def explain(features: ClaimFeatures, model: Optional[DecisionModel] = None) -> Explanation:
    """P(reject) of a claim, its decision, and each modality's (and segment's) share of it."""
    model = model or DecisionModel.load()
    inputs = pooled_inputs(features, model)
    probability = model.reject_probability(inputs)
    base = model.reject_probability(model.baseline)
    values = shapley(model.reject_probability, inputs, model.baseline)
    decision = "reject" if probability >= 0.5 else "approve"
    toward = {r: (v if decision == "reject" else -v) for r, v in values.items()}
    total = sum(abs(v) for v in toward.values()) or 1.0
    attributions = []
    for role in sorted(features.parts, key=lambda r: -toward[r]):
        part = features.parts[role]
        attribution = Attribution(role, part.modality, values[role], toward[role] / total)
        if len(part.vectors) > 1:
            # segments (or, past MAX_PLAYERS, contiguous runs of them) as players, exactly
            runs = [list(chunk) for chunk in np.array_split(np.arange(len(part.vectors)), min(MAX_PLAYERS, len(part.vectors)))]

            def f(mixed: dict[str, Any], role: str = role, runs: list[list[int]] = runs) -> float:
                rows = np.concatenate([np.asarray(v) for v in mixed[role]])
                return model.reject_probability({**inputs, role: pool(rows)})

            segments = [part.vectors[r] for r in runs]
            empty = [np.repeat(model.baseline[role][None, :], len(r), axis=0) for r in runs]
            shares = segment_shapley(f, {role: segments}, {role: empty}, role)
            signed = np.array([s if decision == "reject" else -s for s in shares])
            # the segment that pushes hardest the way its modality pushes (for or against the decision)
            best = int(np.argmax(signed)) if toward[role] >= 0 else int(np.argmin(signed))
            attribution.segment, attribution.segment_value = _describe(part, runs[best]), float(shares[best])
        elif part.modality == "text":
            attribution.segment = _describe(part, [0])
        attributions.append(attribution)
    return Explanation(decision, probability, base, attributions)
