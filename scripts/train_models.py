#!/usr/bin/env python
"""Train the two tiny cross-modal models that ship with mm-feast, on CPU, fully offline.

Why: the demo and the retrieval tests need *real* trained image<->text and audio<->text
encoders, but the machines have no GPU and no access to model hubs.  So we train, from
scratch, a tiny ``transformers.CLIPModel`` on rendered coloured shapes and a tiny
``transformers.ClapModel`` (HTSAT audio tower + RoBERTa-like text tower) on synthesized sound
concepts from :mod:`mm_feast.synthetic`.  Both use a word-level tokenizer built with
``tokenizers`` and are saved with ``save_pretrained`` together with their processors, so the
rest of the code loads them exactly like hub checkpoints::

    python scripts/train_models.py --out mm_feast/models

writes ``<out>/clip-shapes/`` and ``<out>/clap-sounds/`` (safetensors weights, config,
processor, tokenizer, TRAINING.md and training.json with the measured retrieval metrics).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # allow running as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import transformers  # noqa: E402
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from transformers import (  # noqa: E402
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    PreTrainedTokenizerFast,
)

from mm_feast import synthetic  # noqa: E402
from mm_feast.synthetic import (  # noqa: E402
    AUDIO_CAPTIONS,
    AUDIO_SAMPLE_RATE,
    COLORS,
    IMAGE_CAPTIONS,
    SHAPES,
    SOUNDS,
    TEXT_TEMPLATES,
    render_shape,
    render_sound,
)

logger = logging.getLogger("train_models")

CLIP_DIR_NAME = "clip-shapes"
CLAP_DIR_NAME = "clap-sounds"
PROJECTION_DIM = 512
MAX_TEXT_TOKENS = 64
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

# Phrasings the text towers see during training.  They include the sentence patterns of the
# demo documents (mm_feast.synthetic.TEXT_TEMPLATES) so demo paragraphs embed near their
# concept; the bare caption is drawn more often because it is the canonical query.
IMAGE_TEXT_TEMPLATES: tuple[str, ...] = (
    "{cap}",
    "{cap}",
    "{cap}",
    "a picture of {cap}",
    "a photo of {cap}",
    "an image of {cap}",
    "{cap} on a dark background",
    "the image shows {cap} on a dark background",
    "there is {cap} in the middle",
    "a video frame showing {cap}",
) + tuple(t.lower() for t in TEXT_TEMPLATES)
AUDIO_TEXT_TEMPLATES: tuple[str, ...] = (
    "{cap}",
    "{cap}",
    "{cap}",
    "the sound of {cap}",
    "a recording of {cap}",
    "you can hear {cap}",
    "an audio clip of {cap}",
    "{cap} in the recording",
)
EXTRA_WORDS = (
    "this that it is are with and then followed by starts shows showing there in on of to "
    "next small large big bright dark background middle image picture photo video frame "
    "drawn shape colour color sound recording audio clip hear you can . , ! ? ' -"
).split()


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def build_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the synthetic vocabulary.

    A tiny closed vocabulary is all these models can learn from synthetic data, and a
    WordLevel model keeps the tokenizer self-contained (no hub download, no BPE merges).
    Sequences are ``[BOS] words [EOS]``: CLIP pools at [EOS], CLAP's RoBERTa-like tower at [BOS].
    """
    pre = pre_tokenizers.Whitespace()
    words: set[str] = set(EXTRA_WORDS)
    for text in texts:
        words.update(piece for piece, _ in pre.pre_tokenize_str(text.lower()))
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre
    backend.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]",
        pair="[BOS] $A [EOS] $B [EOS]",
        special_tokens=[("[BOS]", BOS_ID), ("[EOS]", EOS_ID)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=MAX_TEXT_TOKENS,
        padding_side="right",
    )


def features_tensor(output: Any, *names: str) -> torch.Tensor:
    """Embedding tensor from ``get_*_features``: transformers 5 returns an output object."""
    if isinstance(output, torch.Tensor):
        return output
    for name in names + ("pooler_output",):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"cannot find embeddings in {type(output).__name__}")


def soft_clip_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets: every pair sharing a concept counts as positive.

    With 24 (or 6) concepts a batch of 128 has many duplicates; hard one-hot targets would
    push identical concepts apart, soft targets spread the mass over all true matches.
    """
    same = (labels[:, None] == labels[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    loss_a = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_b = -(targets * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_a + loss_b)


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def retrieval_metrics(
    sim: np.ndarray, query_labels: np.ndarray, item_labels: np.ndarray, k: int = 5
) -> dict[str, float]:
    """Top-1 accuracy and precision@k of ranking items by similarity for each query row."""
    order = np.argsort(-sim, axis=1, kind="stable")
    hits = item_labels[order] == query_labels[:, None]
    return {"top1": float(hits[:, 0].mean()), f"p@{k}": float(hits[:, :k].mean())}


def tokenize_templates(
    tokenizer: PreTrainedTokenizerFast, captions: Sequence[str], templates: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """All (caption, template) phrasings as a padded id tensor, mask, and concept index table.

    Returns ``table[concept, template] -> row`` so a batch can pick a random phrasing per item.
    """
    texts = [t.format(cap=c) for c in captions for t in templates]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    table = np.arange(len(texts)).reshape(len(captions), len(templates))
    return encoded["input_ids"], encoded["attention_mask"], table


def trim_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop all-padding columns so short batches cost less (right padding)."""
    length = int(mask.sum(dim=1).max())
    return ids[:, :length], mask[:, :length]


@dataclass
class TrainReport:
    """What TRAINING.md / training.json record about one trained model."""

    name: str
    steps: int
    batch_size: int
    learning_rate: float
    train_examples: int
    seconds_data: float = 0.0
    seconds_train: float = 0.0
    final_loss: float = float("nan")
    parameters: int = 0
    size_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def write_report(out_dir: Path, report: TrainReport, notes: str, trained_by: str = "scripts/train_models.py") -> None:
    """Write training.json (machine readable) and TRAINING.md (human readable) next to weights."""
    data = asdict(report)
    data["environment"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
    }
    (out_dir / "training.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# {report.name}",
        "",
        notes.strip(),
        "",
        f"Trained by `{trained_by}` (CPU, fixed seeds).",
        "",
        f"- steps: {report.steps}, batch size: {report.batch_size}, AdamW lr {report.learning_rate}"
        " (warm-up + cosine)",
        f"- training examples (pre-rendered): {report.train_examples}",
        f"- data preparation: {report.seconds_data:.1f} s, training: {report.seconds_train:.1f} s"
        f" on {torch.get_num_threads()} CPU threads",
        f"- final loss: {report.final_loss:.4f}",
        f"- parameters: {report.parameters:,}, weights: {report.size_bytes / 1e6:.2f} MB",
        "",
        "## Measured retrieval metrics (fresh renders, seeds never used in training)",
        "",
        "| evaluation | metric | value |",
        "|---|---|---|",
    ]
    for evaluation, values in report.metrics.items():
        if isinstance(values, dict):
            for metric, value in values.items():
                lines.append(f"| {evaluation} | {metric} | {value:.4f} |")
        else:
            lines.append(f"| {evaluation} | value | {values} |")
    lines += ["", "## Configuration", "", "```json", json.dumps(report.config, indent=2), "```", ""]
    (out_dir / "TRAINING.md").write_text("\n".join(lines))


def train_loop(
    model: torch.nn.Module,
    steps: int,
    lr: float,
    step_fn: Callable[[int], torch.Tensor],
    desc: str,
) -> float:
    """Generic AdamW loop with warm-up/cosine schedule and a tqdm bar; returns the final loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    model.train()
    running = float("nan")
    bar = tqdm(range(steps), desc=desc, mininterval=2.0, file=sys.stderr)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        loss = step_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = float(loss.detach())
        running = value if math.isnan(running) else 0.95 * running + 0.05 * value
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{running:.4f}")
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            logger.info("%s step %d/%d loss %.4f", desc, step + 1, steps, running)
    model.eval()
    return running


def dir_size(path: Path) -> int:
    """Bytes of the weight files in ``path``."""
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


# --------------------------------------------------------------------------------------------
# CLIP on shapes
# --------------------------------------------------------------------------------------------

CLIP_IMAGE_SIZE = 32


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Lossy JPEG (4:2:0 chroma) round trip: a cheap stand-in for video compression artefacts."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def render_clip_dataset(
    rng: np.random.Generator, count: int, render_sizes: Sequence[int], p_jpeg: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """Jittered renders (balanced over the 24 concepts) at mixed sizes, some JPEG-compressed."""
    images: list[np.ndarray] = []
    labels = np.arange(count) % len(IMAGE_CAPTIONS)
    rng.shuffle(labels)
    for label in labels:
        color, shape = COLORS[label // len(SHAPES)], SHAPES[label % len(SHAPES)]
        size = int(rng.choice(render_sizes))
        image = render_shape(color, shape, size=size, rng=rng)
        if rng.random() < p_jpeg:
            image = jpeg_roundtrip(image, int(rng.integers(25, 90)))
        images.append(image)
    return images, labels


def preprocess_images(processor: CLIPProcessor, images: Sequence[np.ndarray]) -> torch.Tensor:
    """Run the saved image processor (resize to 32, normalise) in chunks."""
    chunks = []
    for start in range(0, len(images), 512):
        batch = processor(images=list(images[start : start + 512]), return_tensors="pt")
        chunks.append(batch["pixel_values"])
    return torch.cat(chunks)


class ImageAugment:
    """Per-batch tensor augmentation: gaussian noise, slight blur, brightness/contrast jitter.

    Why: decoded video frames are noisier/blurrier than clean renders, and resizing 64->32
    softens edges; training on such perturbations keeps retrieval stable on real frames.
    """

    def __init__(self, std: Sequence[float], generator: torch.Generator):
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.generator = generator

    def _blur(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        coords = torch.tensor([-1.0, 0.0, 1.0])
        kernel_1d = torch.exp(-(coords**2) / (2 * sigma**2))
        kernel_1d = kernel_1d / kernel_1d.sum()
        kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(3, 1, 3, 3).contiguous()
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        n = x.shape[0]
        x = x.clone()
        blur_mask = torch.rand(n, generator=g) < 0.3
        if blur_mask.any():
            sigma = 0.4 + 0.5 * float(torch.rand(1, generator=g))
            x[blur_mask] = self._blur(x[blur_mask], sigma)
        contrast = 1.0 + 0.15 * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1)
        brightness = 0.05 * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) / self.std
        x = x * contrast + brightness
        noise_sigma = 0.04 * torch.rand(n, 1, 1, 1, generator=g)
        x = x + torch.randn(x.shape, generator=g) * noise_sigma / self.std
        return x


def save_and_reload(
    model: Any, processor: Any, target: Path, model_cls: Any, processor_cls: Any, logits: str, **sanity: Any
) -> tuple[Any, Any]:
    """Save model + processor, reload them the way the application will, and check that the
    reloaded pair still matches two known pairs (first input ↔ first caption, second ↔ second)."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    reloaded = model_cls.from_pretrained(target).eval()
    reloaded_processor = processor_cls.from_pretrained(target)
    inputs = reloaded_processor(return_tensors="pt", padding=True, **sanity)
    with torch.no_grad():
        scores = getattr(reloaded(**inputs), logits)
    if scores.argmax(dim=1).tolist() != [0, 1]:
        raise RuntimeError(f"reloaded {model_cls.__name__} fails its sanity check: {scores}")
    return reloaded, reloaded_processor


def embed_batched(get_features: Any, inputs: torch.Tensor, field: str) -> torch.Tensor:
    """L2-normalised embeddings of ``inputs`` in chunks of 256, no grad (images or audio)."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs), 256):
            outs.append(F.normalize(features_tensor(get_features(inputs[start : start + 256]), field), dim=-1))
    return torch.cat(outs)


def clip_embed_images(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    return embed_batched(lambda x: model.get_image_features(pixel_values=x), pixels, "image_embeds")


def embed_texts(model: Any, tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings for a list of strings (CLIP or CLAP text tower)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        feats = features_tensor(
            model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]),
            "text_embeds",
        )
    return F.normalize(feats, dim=-1)


def decode_video_frames(path: Path) -> list[np.ndarray]:
    """All frames of a video as RGB arrays (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def evaluate_clip(model: CLIPModel, processor: CLIPProcessor, seed: int) -> dict[str, Any]:
    """Retrieval on fresh jittered 64x64 renders, centred renders and video-decoded frames."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(IMAGE_CAPTIONS)), 10)
    fresh = [
        render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=64, rng=rng)
        for i in labels
    ]
    caption_labels = np.arange(len(IMAGE_CAPTIONS))
    text_emb = embed_texts(model, processor.tokenizer, IMAGE_CAPTIONS).numpy()
    metrics: dict[str, Any] = {}

    emb = clip_embed_images(model, preprocess_images(processor, fresh)).numpy()
    t2i = retrieval_metrics(text_emb @ emb.T, caption_labels, labels, k=5)
    i2t = retrieval_metrics(emb @ text_emb.T, labels, caption_labels, k=1)
    metrics["fresh_64px_text_to_image"] = t2i
    metrics["fresh_64px_image_to_text"] = {"top1": i2t["top1"]}

    centred = [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=64)
               for i in caption_labels]
    emb_c = clip_embed_images(model, preprocess_images(processor, centred)).numpy()
    metrics["centred_64px_image_to_text"] = {
        "top1": retrieval_metrics(emb_c @ text_emb.T, caption_labels, caption_labels, k=1)["top1"]
    }

    fresh32 = [
        render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=32, rng=rng)
        for i in labels
    ]
    emb32 = clip_embed_images(model, preprocess_images(processor, fresh32)).numpy()
    metrics["fresh_32px_image_to_text"] = {
        "top1": retrieval_metrics(emb32 @ text_emb.T, labels, caption_labels, k=1)["top1"]
    }

    # Video: every concept for 1 s at 10 fps through the real encoder/decoder (yuv420p).
    with tempfile.TemporaryDirectory() as tmp:
        frames = []
        order = rng.permutation(len(IMAGE_CAPTIONS))
        for i in order:
            frames += [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], 64)] * 10
        path = Path(tmp) / "eval.mp4"
        synthetic.write_video(path, frames)
        decoded = decode_video_frames(path)
    frame_labels = np.repeat(order, 10)[: len(decoded)]
    emb_v = clip_embed_images(model, preprocess_images(processor, decoded)).numpy()
    metrics["video_frames_image_to_text"] = {
        "top1": retrieval_metrics(emb_v @ text_emb.T, frame_labels, caption_labels, k=1)["top1"]
    }

    # Demo-style sentences as queries (the paragraphs of the demo text documents).
    sentences, sentence_labels = [], []
    for i, caption in enumerate(IMAGE_CAPTIONS):
        for template in TEXT_TEMPLATES:
            sentence = template.format(cap=caption)
            sentences.append(sentence[0].upper() + sentence[1:])
            sentence_labels.append(i)
    sent_emb = embed_texts(model, processor.tokenizer, sentences).numpy()
    metrics["demo_sentences_text_to_image"] = retrieval_metrics(
        sent_emb @ emb.T, np.asarray(sentence_labels), labels, k=5
    )
    return metrics


def train_clip(out_dir: Path, steps: int, batch_size: int, lr: float, seed: int,
               train_images: int) -> TrainReport:
    """Train and save the tiny CLIP; returns its report (metrics measured after reload)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()

    tokenizer = build_tokenizer(
        [t.format(cap=c) for c in IMAGE_CAPTIONS + AUDIO_CAPTIONS
         for t in IMAGE_TEXT_TEMPLATES + AUDIO_TEXT_TEMPLATES]
    )
    logger.info("CLIP: rendering %d training images", train_images)
    images, labels = render_clip_dataset(rng, train_images, (64, 64, 64, 48, 32, 96), 0.25)
    stack = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BICUBIC))
                      for im in images]).astype(np.float32) / 255.0
    mean = [round(float(v), 3) for v in stack.mean(axis=(0, 1, 2))]
    std = [round(float(v), 3) for v in stack.std(axis=(0, 1, 2))]
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
        image_mean=mean,
        image_std=std,
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    pixels = preprocess_images(processor, images)
    label_tensor = torch.as_tensor(labels)
    ids, mask, table = tokenize_templates(tokenizer, IMAGE_CAPTIONS, IMAGE_TEXT_TEMPLATES)
    seconds_data = time.perf_counter() - started
    logger.info("CLIP: data ready in %.1f s (mean %s std %s)", seconds_data, mean, std)

    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256,
            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_TEXT_TOKENS,
            pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
        ),
        vision_config=dict(
            hidden_size=96, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
            image_size=CLIP_IMAGE_SIZE, patch_size=4, num_channels=3,
        ),
        projection_dim=PROJECTION_DIM,
    )
    model = CLIPModel(config)
    augment = ImageAugment(std, torch.Generator().manual_seed(seed + 1))
    batch_rng = np.random.default_rng(seed + 2)

    def step_fn(step: int) -> torch.Tensor:
        index = batch_rng.choice(len(pixels), size=batch_size, replace=False)
        batch_labels = label_tensor[index]
        rows = table[labels[index], batch_rng.integers(0, table.shape[1], size=batch_size)]
        batch_ids, batch_mask = trim_padding(ids[rows], mask[rows])
        out = model(
            input_ids=batch_ids, attention_mask=batch_mask, pixel_values=augment(pixels[index])
        )
        return soft_clip_loss(out.logits_per_image, batch_labels)

    t0 = time.perf_counter()
    final_loss = train_loop(model, steps, lr, step_fn, "clip")
    seconds_train = time.perf_counter() - t0

    target = out_dir / CLIP_DIR_NAME
    reloaded, reloaded_processor = save_and_reload(
        model, processor, target, CLIPModel, CLIPProcessor, "logits_per_image",
        text=["a red circle", "an orange cross"],
        images=[render_shape("red", "circle", 64), render_shape("orange", "cross", 64)],
    )
    metrics = evaluate_clip(reloaded, reloaded_processor, seed=seed + 1000)

    config_dict = {
        "model": config.to_diff_dict(),
        "image_processor": {"size": CLIP_IMAGE_SIZE, "mean": mean, "std": std},
        "tokenizer_vocab_size": len(tokenizer),
        "text_templates": list(IMAGE_TEXT_TEMPLATES),
        "augmentation": "render jitter (position/scale/colour/background), render sizes "
        "32/48/64/96, 25% JPEG q25-90, blur 30%, contrast/brightness, gaussian noise",
        "seed": seed,
    }
    report = TrainReport(
        name=CLIP_DIR_NAME, steps=steps, batch_size=batch_size, learning_rate=lr,
        train_examples=len(images), seconds_data=seconds_data, seconds_train=seconds_train,
        final_loss=final_loss, parameters=sum(p.numel() for p in model.parameters()),
        size_bytes=dir_size(target), metrics=metrics, config=config_dict,
    )
    write_report(
        target, report,
        "Tiny `transformers.CLIPModel` (ViT 3x96 on 32x32 images with 4x4 patches, text 2x64, "
        f"projection {PROJECTION_DIM}) trained contrastively on the 24 coloured-shape concepts "
        "of `mm_feast.synthetic` (captions like \"a red circle\"). Load with "
        "`CLIPModel.from_pretrained(dir)` and `CLIPProcessor.from_pretrained(dir)`; pass "
        "`padding=True, truncation=True` for text.",
    )
    return report


# --------------------------------------------------------------------------------------------
# CLAP on sounds
# --------------------------------------------------------------------------------------------

CLAP_CLIP_S = 1  # model input length in seconds (feature extractor max_length_s)


def make_clap_feature_extractor() -> ClapFeatureExtractor:
    """Low-rate feature extractor: 1 s at 16 kHz -> 63 frames x 64 mel bins (50 Hz-8 kHz).

    HTSAT then interpolates the 63 frames to ``spec_size`` = 64 and, with 64 mel bins,
    ``freq_ratio`` = 1, so the spectrogram is a single 64x64 "image" with 4x4 patches.
    """
    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=AUDIO_SAMPLE_RATE,
        hop_length=256,
        fft_window_size=512,
        max_length_s=CLAP_CLIP_S,
        frequency_min=50,
        frequency_max=AUDIO_SAMPLE_RATE // 2,
        truncation="rand_trunc",
        padding="repeatpad",
    )


def render_clap_dataset(
    rng: np.random.Generator, count: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Jittered sound clips balanced over concepts; 20 % are shorter (0.5-1 s, repeat-padded)."""
    labels = np.arange(count) % len(SOUNDS)
    rng.shuffle(labels)
    clips = []
    for label in labels:
        duration = 1.0 if rng.random() < 0.8 else float(rng.uniform(0.5, 1.0))
        clips.append(render_sound(SOUNDS[label], duration, AUDIO_SAMPLE_RATE, rng=rng))
    return clips, labels


def clap_features(processor: ClapProcessor, clips: Sequence[np.ndarray]) -> torch.Tensor:
    """Log-mel input features for a list of clips, in chunks."""
    chunks = []
    for start in range(0, len(clips), 256):
        batch = processor(
            audio=list(clips[start : start + 256]), sampling_rate=AUDIO_SAMPLE_RATE,
            return_tensors="pt",
        )
        chunks.append(batch["input_features"])
    return torch.cat(chunks).float()


def clap_embed_audio(model: ClapModel, features: torch.Tensor) -> torch.Tensor:
    return embed_batched(lambda x: model.get_audio_features(input_features=x), features, "audio_embeds")


def evaluate_clap(model: ClapModel, processor: ClapProcessor, seed: int) -> dict[str, Any]:
    """Retrieval on fresh jittered clips, clean clips and the 1 s windows of demo WAV files."""
    rng = np.random.default_rng(seed)
    caption_labels = np.arange(len(SOUNDS))
    text_emb = embed_texts(model, processor.tokenizer, AUDIO_CAPTIONS).numpy()
    metrics: dict[str, Any] = {}

    labels = np.repeat(caption_labels, 40)
    fresh = [render_sound(SOUNDS[i], 1.0, AUDIO_SAMPLE_RATE, rng=rng) for i in labels]
    emb = clap_embed_audio(model, clap_features(processor, fresh)).numpy()
    a2t = retrieval_metrics(emb @ text_emb.T, labels, caption_labels, k=1)
    metrics["fresh_1s_audio_to_text"] = {"top1": a2t["top1"]}
    metrics["fresh_1s_text_to_audio"] = retrieval_metrics(text_emb @ emb.T, caption_labels,
                                                          labels, k=5)

    short_labels = np.repeat(caption_labels, 20)
    short = [render_sound(SOUNDS[i], float(rng.uniform(0.5, 1.0)), AUDIO_SAMPLE_RATE, rng=rng)
             for i in short_labels]
    emb_s = clap_embed_audio(model, clap_features(processor, short)).numpy()
    metrics["fresh_short_audio_to_text"] = {
        "top1": retrieval_metrics(emb_s @ text_emb.T, short_labels, caption_labels, k=1)["top1"]
    }

    clean = [render_sound(s, 1.0, AUDIO_SAMPLE_RATE) for s in SOUNDS]
    emb_c = clap_embed_audio(model, clap_features(processor, clean)).numpy()
    metrics["clean_1s_audio_to_text"] = {
        "top1": retrieval_metrics(emb_c @ text_emb.T, caption_labels, caption_labels, k=1)["top1"]
    }

    sentences = [t.format(cap=c) for c in AUDIO_CAPTIONS for t in AUDIO_TEXT_TEMPLATES[3:]]
    sentence_labels = np.repeat(caption_labels, len(AUDIO_TEXT_TEMPLATES) - 3)
    sent_emb = embed_texts(model, processor.tokenizer, sentences).numpy()
    metrics["sentences_text_to_audio"] = retrieval_metrics(sent_emb @ emb.T, sentence_labels,
                                                           labels, k=5)
    return metrics


def train_clap(out_dir: Path, steps: int, batch_size: int, lr: float, seed: int,
               train_clips: int) -> TrainReport:
    """Train and save the tiny CLAP; returns its report (metrics measured after reload)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    tokenizer = build_tokenizer(
        [t.format(cap=c) for c in IMAGE_CAPTIONS + AUDIO_CAPTIONS
         for t in IMAGE_TEXT_TEMPLATES + AUDIO_TEXT_TEMPLATES]
    )
    processor = ClapProcessor(feature_extractor=make_clap_feature_extractor(), tokenizer=tokenizer)
    logger.info("CLAP: rendering %d training clips", train_clips)
    clips, labels = render_clap_dataset(rng, train_clips)
    features = clap_features(processor, clips)
    label_tensor = torch.as_tensor(labels)
    ids, mask, table = tokenize_templates(tokenizer, AUDIO_CAPTIONS, AUDIO_TEXT_TEMPLATES)
    seconds_data = time.perf_counter() - started
    logger.info("CLAP: data ready in %.1f s, features %s", seconds_data, tuple(features.shape))

    n_frames, n_mels = features.shape[-2], features.shape[-1]
    spec_size = 64
    if n_mels != spec_size or n_frames > spec_size:
        raise RuntimeError(f"features {tuple(features.shape)} do not fit HTSAT spec_size {spec_size}")
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256,
            num_hidden_layers=2, num_attention_heads=4,
            # RoBERTa-style positions start after padding_idx, hence the +2.
            max_position_embeddings=MAX_TEXT_TOKENS + 2, type_vocab_size=1,
            pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
            projection_dim=PROJECTION_DIM,
        ),
        audio_config=dict(
            spec_size=spec_size, num_mel_bins=n_mels, patch_size=4, patch_stride=4,
            window_size=4, depths=[1, 1, 1], num_attention_heads=[2, 4, 8],
            patch_embeds_hidden_size=32, hidden_size=128, mlp_ratio=2.0,
            enable_fusion=False, projection_dim=PROJECTION_DIM,
        ),
        projection_dim=PROJECTION_DIM,
    )
    model = ClapModel(config)
    generator = torch.Generator().manual_seed(seed + 1)
    batch_rng = np.random.default_rng(seed + 2)

    def step_fn(step: int) -> torch.Tensor:
        index = batch_rng.choice(len(features), size=batch_size, replace=False)
        rows = table[labels[index], batch_rng.integers(0, table.shape[1], size=batch_size)]
        feats = features[index]
        # Random +-3 dB level offset on top of the rendered level jitter.
        feats = feats + 6.0 * (torch.rand(batch_size, 1, 1, 1, generator=generator) - 0.5)
        batch_ids, batch_mask = trim_padding(ids[rows], mask[rows])
        out = model(input_ids=batch_ids, attention_mask=batch_mask, input_features=feats)
        return soft_clip_loss(out.logits_per_audio, label_tensor[index])

    t0 = time.perf_counter()
    final_loss = train_loop(model, steps, lr, step_fn, "clap")
    seconds_train = time.perf_counter() - t0

    target = out_dir / CLAP_DIR_NAME
    reloaded, reloaded_processor = save_and_reload(
        model, processor, target, ClapModel, ClapProcessor, "logits_per_audio",
        text=["a low tone", "a noise burst"],
        audio=[render_sound("low_tone", 1.0), render_sound("noise_burst", 1.0)],
        sampling_rate=AUDIO_SAMPLE_RATE,
    )
    metrics = evaluate_clap(reloaded, reloaded_processor, seed=seed + 1000)

    fe = reloaded_processor.feature_extractor
    config_dict = {
        "model": config.to_diff_dict(),
        "feature_extractor": {
            "sampling_rate": fe.sampling_rate, "feature_size": fe.feature_size,
            "hop_length": fe.hop_length, "fft_window_size": fe.fft_window_size,
            "max_length_s": fe.max_length_s, "truncation": fe.truncation, "padding": fe.padding,
            "input_features_shape": list(features.shape[1:]),
        },
        "tokenizer_vocab_size": len(tokenizer),
        "text_templates": list(AUDIO_TEXT_TEMPLATES),
        "augmentation": "render jitter (pitch +-12%, level 0.25-0.9, sweep/beep phase, "
        "noise floor), 20% short clips 0.5-1 s repeat-padded, +-3 dB feature offset",
        "seed": seed,
    }
    report = TrainReport(
        name=CLAP_DIR_NAME, steps=steps, batch_size=batch_size, learning_rate=lr,
        train_examples=len(clips), seconds_data=seconds_data, seconds_train=seconds_train,
        final_loss=final_loss, parameters=sum(p.numel() for p in model.parameters()),
        size_bytes=dir_size(target), metrics=metrics, config=config_dict,
    )
    write_report(
        target, report,
        "Tiny `transformers.ClapModel` (HTSAT audio tower: 64x64 log-mel input, 4x4 patches, "
        "3 Swin stages of depth 1, dims 32/64/128; RoBERTa-like text tower 2x64; projection "
        f"{PROJECTION_DIM}) trained contrastively on the sound concepts of "
        "`mm_feast.synthetic` (captions like \"a rising chirp\"). Input: 1 s of 16 kHz mono "
        "audio (shorter clips are repeat-padded; longer ones are randomly cropped by the "
        "feature extractor, so window audio to 1 s yourself for deterministic embeddings). "
        "Load with `ClapModel.from_pretrained(dir)` and `ClapProcessor.from_pretrained(dir)`.",
    )
    return report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; defaults are the settings the committed weights were trained with."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "mm_feast" / "models")
    parser.add_argument("--only", choices=("all", "clip", "clap"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--clip-steps", type=int, default=1250)
    parser.add_argument("--clip-batch", type=int, default=128)
    parser.add_argument("--clip-lr", type=float, default=5e-4)
    parser.add_argument("--clip-images", type=int, default=6000)
    parser.add_argument("--clap-steps", type=int, default=400)
    parser.add_argument("--clap-batch", type=int, default=128)
    parser.add_argument("--clap-lr", type=float, default=5e-4)
    parser.add_argument("--clap-clips", type=int, default=3000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train the requested models, save them under ``--out`` and log a metrics summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports: list[TrainReport] = []
    if args.only in ("all", "clip"):
        reports.append(train_clip(out_dir, args.clip_steps, args.clip_batch, args.clip_lr,
                                  args.seed, args.clip_images))
    if args.only in ("all", "clap"):
        reports.append(train_clap(out_dir, args.clap_steps, args.clap_batch, args.clap_lr,
                                  args.seed, args.clap_clips))
    total = time.perf_counter() - started
    logger.info("=== summary (total %.1f s) ===", total)
    for report in reports:
        logger.info(
            "%s: %d steps in %.1f s (+%.1f s data), %.2f MB, final loss %.4f",
            report.name, report.steps, report.seconds_train, report.seconds_data,
            report.size_bytes / 1e6, report.final_loss,
        )
        for evaluation, values in report.metrics.items():
            logger.info("  %-32s %s", evaluation,
                        ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
