#!/usr/bin/env python
"""Train the two models derived from the bundled CLIP, on CPU, fully offline.

- ``caption-shapes``: a ``transformers.VisionEncoderDecoderModel`` that writes a caption ("a red
  circle") for an image or a video frame. Its vision encoder starts from clip-shapes' vision
  tower; a tiny GPT-2 decoder with cross-attention learns the words.
- ``clap-bound-clip``: the clap-sounds audio tower trained, ImageBind-style, so that its outputs
  land in clip-shapes' space. CLIP stays frozen; each sound is paired with the frames and
  captions of the clips it plays in (``mm_feast.synthetic.SOUND_FOR_COLOR``: the soundtrack of
  a synthetic video goes with the colour on screen), and trained contrastively against them.

Both need ``clip-shapes`` (and the binding ``clap-sounds``) under ``--out`` already
(``scripts/train_models.py``)::

    python scripts/train_derived_models.py --out mm_feast/models
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import transformers  # noqa: E402
from train_models import (  # noqa: E402  (the shared training helpers)
    BOS_ID,
    CLAP_DIR_NAME,
    CLIP_DIR_NAME,
    EOS_ID,
    PAD_ID,
    REPO_ROOT,
    ImageAugment,
    TrainReport,
    clap_embed_audio,
    clap_features,
    clip_embed_images,
    dir_size,
    embed_texts,
    features_tensor,
    preprocess_images,
    render_clip_dataset,
    soft_clip_loss,
    train_loop,
    write_report,
)
from transformers import (  # noqa: E402
    ClapModel,
    ClapProcessor,
    CLIPModel,
    CLIPProcessor,
    GenerationConfig,
    GPT2Config,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
)

from mm_feast.encoders.base import weights_version  # noqa: E402
from mm_feast.synthetic import (  # noqa: E402
    AUDIO_SAMPLE_RATE,
    COLORS,
    IMAGE_CAPTIONS,
    SHAPES,
    SOUND_FOR_COLOR,
    render_shape,
    render_sound,
)

logger = logging.getLogger("train_derived_models")

CAPTION_DIR_NAME = "caption-shapes"
BOUND_DIR_NAME = "clap-bound-clip"
CAPTION_MAX_TOKENS = 8
# Recorded with the weights (generation_config.json) and in every caption's lineage.
CAPTION_DECODING = {"num_beams": 1, "do_sample": False, "max_new_tokens": CAPTION_MAX_TOKENS}


# --------------------------------------------------------------------------------------------
# Captioner
# --------------------------------------------------------------------------------------------


def caption_labels(tokenizer: Any, captions: Sequence[str]) -> torch.Tensor:
    """Decoder targets: the caption's words and [EOS] (the model prepends [BOS]); padding is -100."""
    ids = tokenizer(list(captions), padding=True, return_tensors="pt")["input_ids"][:, 1:].clone()
    ids[ids == PAD_ID] = -100
    return ids


def generate_captions(model: VisionEncoderDecoderModel, tokenizer: Any, pixels: torch.Tensor) -> list[str]:
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(pixels), 256):
            ids = model.generate(pixel_values=pixels[start : start + 256], **CAPTION_DECODING)
            out += [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def evaluate_captioner(model: Any, processor: CLIPProcessor, seed: int) -> dict[str, Any]:
    """Exact-match accuracy on fresh jittered renders at 64 and 32 px (seeds never trained on)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(IMAGE_CAPTIONS)), 10)
    metrics: dict[str, Any] = {}
    for size in (64, 32):
        images = [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=size, rng=rng) for i in labels]
        captions = generate_captions(model, processor.tokenizer, preprocess_images(processor, images))
        exact = np.mean([c == IMAGE_CAPTIONS[i] for c, i in zip(captions, labels)])
        metrics[f"fresh_{size}px_caption"] = {"exact_match": float(exact)}
    return metrics


def train_captioner(out_dir: Path, steps: int, batch_size: int, lr: float, seed: int, train_images: int) -> TrainReport:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    clip_dir = out_dir / CLIP_DIR_NAME
    clip = CLIPModel.from_pretrained(clip_dir)
    processor = CLIPProcessor.from_pretrained(clip_dir)
    tokenizer = processor.tokenizer
    images, labels = render_clip_dataset(rng, train_images, (64, 64, 64, 48, 32, 96), 0.25)
    pixels = preprocess_images(processor, images)
    targets = caption_labels(tokenizer, IMAGE_CAPTIONS)
    seconds_data = time.perf_counter() - started

    decoder = GPT2Config(
        vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=16,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
        add_cross_attention=True, is_decoder=True,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(clip.config.vision_config, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = BOS_ID, PAD_ID, EOS_ID
    model = VisionEncoderDecoderModel(config=config)
    model.encoder.load_state_dict(clip.vision_model.state_dict())  # start from CLIP's vision tower
    augment = ImageAugment(processor.image_processor.image_std, torch.Generator().manual_seed(seed + 1))
    batch_rng = np.random.default_rng(seed + 2)

    def step_fn(step: int) -> torch.Tensor:
        index = batch_rng.choice(len(pixels), size=batch_size, replace=False)
        return model(pixel_values=augment(pixels[index]), labels=targets[labels[index]]).loss

    t0 = time.perf_counter()
    final_loss = train_loop(model, steps, lr, step_fn, "captioner")
    seconds_train = time.perf_counter() - t0

    target = out_dir / CAPTION_DIR_NAME
    target.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=BOS_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, **CAPTION_DECODING
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.image_processor.save_pretrained(target)
    tokenizer.save_pretrained(target)
    reloaded = VisionEncoderDecoderModel.from_pretrained(target).eval()
    metrics = evaluate_captioner(reloaded, processor, seed + 1000)
    report = TrainReport(
        name=CAPTION_DIR_NAME, steps=steps, batch_size=batch_size, learning_rate=lr,
        train_examples=len(images), seconds_data=seconds_data, seconds_train=seconds_train,
        final_loss=final_loss, parameters=sum(p.numel() for p in model.parameters()),
        size_bytes=dir_size(target), metrics=metrics,
        config={"decoder": decoder.to_diff_dict(), "decoding": CAPTION_DECODING,
                "encoder_init": f"mm-feast/{CLIP_DIR_NAME} vision tower", "seed": seed},
    )
    write_report(
        target, report,
        "Tiny `transformers.VisionEncoderDecoderModel`: clip-shapes' ViT (3x96, 32x32 input) as the "
        "encoder, a GPT-2 decoder (2x64, cross-attention) over clip-shapes' word-level vocabulary. "
        "It writes the canonical caption of a synthetic shape (\"a red circle\"). Greedy decoding "
        f"({json.dumps(CAPTION_DECODING)}) is saved as its generation_config.json.",
        trained_by="scripts/train_derived_models.py",
    )
    return report


# --------------------------------------------------------------------------------------------
# Audio bound into the CLIP space
# --------------------------------------------------------------------------------------------


def clip_targets(clip: CLIPModel, processor: CLIPProcessor, rng: np.random.Generator, per_concept: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Frozen CLIP embeddings of jittered frames (with their concept index) and of the 24 captions."""
    concepts = np.repeat(np.arange(len(IMAGE_CAPTIONS)), per_concept)
    frames = [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=64, rng=rng) for i in concepts]
    frame_emb = clip_embed_images(clip, preprocess_images(processor, frames))
    return frame_emb, concepts, embed_texts(clip, processor.tokenizer, IMAGE_CAPTIONS)


def colour_sound_clips(rng: np.random.Generator, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Jittered 1 s clips of each colour's sound, balanced over the colours (label = colour index)."""
    labels = np.arange(count) % len(COLORS)
    rng.shuffle(labels)
    return [render_sound(SOUND_FOR_COLOR[COLORS[i]], 1.0, AUDIO_SAMPLE_RATE, rng=rng) for i in labels], labels


def recall_at(sim: np.ndarray, query_labels: np.ndarray, item_labels: np.ndarray, k: int = 5) -> dict[str, float]:
    """recall@k (a right item in the top k) and precision@k (the share of right items in it)."""
    top = item_labels[np.argsort(-sim, axis=1, kind="stable")[:, :k]] == query_labels[:, None]
    return {f"recall@{k}": float(top.any(axis=1).mean()), f"p@{k}": float(top.mean())}


def evaluate_binding(bound: ClapModel, processor: ClapProcessor, clip: CLIPModel, clip_processor: CLIPProcessor, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    frame_emb, concepts, _ = clip_targets(clip, clip_processor, rng, 5)
    frame_colour = concepts // len(SHAPES)
    clips, sound_colour = colour_sound_clips(rng, 120)
    audio_emb = clap_embed_audio(bound, clap_features(processor, clips)).numpy()
    frame_emb = frame_emb.numpy()
    return {
        "fresh_audio_to_frame": recall_at(audio_emb @ frame_emb.T, sound_colour, frame_colour),
        "fresh_frame_to_audio": recall_at(frame_emb @ audio_emb.T, frame_colour, sound_colour),
    }


def train_binding(out_dir: Path, steps: int, batch_size: int, lr: float, seed: int, train_clips: int) -> TrainReport:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    clip = CLIPModel.from_pretrained(out_dir / CLIP_DIR_NAME).eval()
    clip_processor = CLIPProcessor.from_pretrained(out_dir / CLIP_DIR_NAME)
    for p in clip.parameters():
        p.requires_grad_(False)  # the image-text space is the anchor: frozen
    frame_emb, concepts, caption_emb = clip_targets(clip, clip_processor, rng, 40)
    frames_of_colour = [np.flatnonzero(concepts // len(SHAPES) == c) for c in range(len(COLORS))]
    bound = ClapModel.from_pretrained(out_dir / CLAP_DIR_NAME)
    processor = ClapProcessor.from_pretrained(out_dir / CLAP_DIR_NAME)
    for name, p in bound.named_parameters():
        p.requires_grad_(name.startswith(("audio_model.", "audio_projection.")))
    clips, labels = colour_sound_clips(rng, train_clips)
    features = clap_features(processor, clips)
    seconds_data = time.perf_counter() - started
    batch_rng = np.random.default_rng(seed + 2)
    scale = 1 / 0.07

    def step_fn(step: int) -> torch.Tensor:
        index = batch_rng.choice(len(features), size=batch_size, replace=False)
        colour = labels[index]
        # each sound's partners: a frame of the clip it plays in (its colour, any shape) and that frame's caption
        partner = np.array([batch_rng.choice(frames_of_colour[c]) for c in colour])
        audio = F.normalize(clap_embed(bound, features[index]), dim=-1)
        target_labels = torch.as_tensor(colour)
        frames = frame_emb[partner]
        captions = caption_emb[concepts[partner]]
        return soft_clip_loss(scale * audio @ frames.T, target_labels) + soft_clip_loss(scale * audio @ captions.T, target_labels)

    t0 = time.perf_counter()
    final_loss = train_loop(bound, steps, lr, step_fn, "bind audio")
    seconds_train = time.perf_counter() - t0
    target = out_dir / BOUND_DIR_NAME
    target.mkdir(parents=True, exist_ok=True)
    bound.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    parent_version = weights_version(f"mm-feast/{CLIP_DIR_NAME}")
    binding = {
        "space_of": f"mm-feast/{CLIP_DIR_NAME}",
        "space_version": parent_version,
        "bound_modalities": ["audio"],
        "initialised_from": f"mm-feast/{CLAP_DIR_NAME}",
        "pairs": "each colour's sound with frames and captions of that colour (mm_feast.synthetic.SOUND_FOR_COLOR)",
    }
    (target / "binding.json").write_text(json.dumps(binding, indent=2) + "\n")
    reloaded = ClapModel.from_pretrained(target).eval()
    metrics = evaluate_binding(reloaded, processor, clip, clip_processor, seed + 1000)
    report = TrainReport(
        name=BOUND_DIR_NAME, steps=steps, batch_size=batch_size, learning_rate=lr,
        train_examples=len(clips), seconds_data=seconds_data, seconds_train=seconds_train,
        final_loss=final_loss, parameters=sum(p.numel() for p in bound.parameters() if p.requires_grad),
        size_bytes=dir_size(target), metrics=metrics, config={"binding": binding, "temperature": 0.07, "seed": seed},
    )
    write_report(
        target, report,
        "clap-sounds' HTSAT audio tower and audio projection, trained so that a sound lands in "
        "clip-shapes' space (ImageBind-style: CLIP frozen, contrastive loss against the frames and "
        "captions the sound goes with). Its text tower is clap-sounds' and unused: text, images and "
        "frames are encoded by clip-shapes itself (binding.json names it and its version).",
        trained_by="scripts/train_derived_models.py",
    )
    return report


def clap_embed(model: ClapModel, features: torch.Tensor) -> torch.Tensor:
    return features_tensor(model.get_audio_features(input_features=features), "audio_embeds")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "mm_feast" / "models")
    parser.add_argument("--only", choices=("all", "caption", "bind"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--caption-steps", type=int, default=600)
    parser.add_argument("--caption-batch", type=int, default=64)
    parser.add_argument("--caption-lr", type=float, default=1e-3)
    parser.add_argument("--caption-images", type=int, default=4800)
    parser.add_argument("--bind-steps", type=int, default=300)
    parser.add_argument("--bind-batch", type=int, default=96)
    parser.add_argument("--bind-lr", type=float, default=3e-4)
    parser.add_argument("--bind-clips", type=int, default=2400)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = args.out.resolve()
    reports = []
    if args.only in ("all", "caption"):
        reports.append(train_captioner(out_dir, args.caption_steps, args.caption_batch, args.caption_lr, args.seed, args.caption_images))
    if args.only in ("all", "bind"):
        reports.append(train_binding(out_dir, args.bind_steps, args.bind_batch, args.bind_lr, args.seed, args.bind_clips))
    for report in reports:
        logger.info("%s: %d steps in %.1f s, %.2f MB, loss %.4f, %s", report.name, report.steps,
                    report.seconds_train, report.size_bytes / 1e6, report.final_loss, json.dumps(report.metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
