"""Synthetic, fully offline media with known content.

The demo, the retrieval tests and the tiny trained models all need media whose true content
is known exactly: which shape/colour is in an image, which sound plays in which second of an
audio file, when a video cuts from one shape to the next.  Everything here is rendered from a
small vocabulary (6 colours x 4 shapes for pictures, 6 sound concepts for audio) so that tiny
CLIP/CLAP models trained on the same vocabulary (``scripts/train_models.py``) can retrieve it
for real, without any network access or pretrained weights.

All functions are pure apart from :func:`write_demo_corpus`, which writes files.  Randomness
always comes from an explicit ``numpy.random.Generator`` so results are reproducible.
"""

from __future__ import annotations

import logging
import wave
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

# Reference RGB for each colour; jittered a little at training time.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 40),
    "purple": (150, 60, 200),
    "orange": (250, 140, 25),
}

#: Background grey level of deterministic renders (dark, neutral, so every colour contrasts).
BACKGROUND_LEVEL = 40

SOUNDS: tuple[str, ...] = (
    "low_tone",
    "high_tone",
    "rising_chirp",
    "falling_chirp",
    "noise_burst",
    "beeping_tone",
)
SOUND_CAPTIONS: dict[str, str] = {name: "a " + name.replace("_", " ") for name in SOUNDS}

#: The sound that goes with each colour in the audio-visual clips (:func:`write_av_video`): the
#: pairs the bound audio encoder (mm-feast/clap-bound-clip) was trained on, so a sound finds the
#: frames of its colour and a frame finds its sound.
SOUND_FOR_COLOR: dict[str, str] = dict(zip(COLORS, SOUNDS))

#: Sample rate used for all demo audio and for the CLAP feature extractor.
AUDIO_SAMPLE_RATE = 16000
VIDEO_FPS = 10
SEGMENT_S = 1.0


def image_caption(color: str, shape: str) -> str:
    """Canonical caption of a concept: ``"a red circle"``, ``"an orange cross"``."""
    article = "an" if color[0] in "aeiou" else "a"
    return f"{article} {color} {shape}"


IMAGE_CAPTIONS: list[str] = [image_caption(c, s) for c in COLORS for s in SHAPES]
AUDIO_CAPTIONS: list[str] = [SOUND_CAPTIONS[s] for s in SOUNDS]


def parse_image_caption(caption: str) -> tuple[str, str]:
    """Inverse of :func:`image_caption`; raises ValueError for captions outside the vocabulary."""
    words = caption.lower().split()
    colors = [w for w in words if w in COLORS]
    shapes = [w for w in words if w in SHAPES]
    if len(colors) != 1 or len(shapes) != 1:
        raise ValueError(f"not an image caption of the synthetic vocabulary: {caption!r}")
    return colors[0], shapes[0]


def sound_name(sound: str) -> str:
    """Accept either a sound key (``"low_tone"``) or its caption (``"a low tone"``)."""
    if sound in SOUND_CAPTIONS:
        return sound
    for name, caption in SOUND_CAPTIONS.items():
        if sound.strip().lower() == caption:
            return name
    raise ValueError(f"unknown sound {sound!r}; expected one of {SOUNDS}")


def caption_at(caption: str, t: float, segment_s: float = SEGMENT_S) -> str:
    """What plays or shows at ``t`` seconds of a demo video or audio item: its caption lists
    one concept per ``segment_s`` seconds, joined by ", then "."""
    parts = caption.split(", then ")
    return parts[min(max(int(t // segment_s), 0), len(parts) - 1)]


def feed_second(rng: np.random.Generator, fps: int = VIDEO_FPS, sample_rate: int = AUDIO_SAMPLE_RATE) -> tuple[list[np.ndarray], np.ndarray, str, str]:
    """One second of a synthetic live feed: frames of one shape and the sound that goes with it.

    Returns (frames, audio samples, true visual caption, true sound caption). The frames are
    jittered renders, so they are new inputs, never copies of the demo corpus."""
    color, shape = COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))]
    sound = SOUNDS[rng.integers(len(SOUNDS))]
    frames = [render_shape(color, shape, size=64, rng=rng) for _ in range(fps)]
    return frames, render_sound(sound, 1.0, sample_rate, rng=rng), image_caption(color, shape), SOUND_CAPTIONS[sound]


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_SUPERSAMPLE = 4  # anti-aliasing factor: smooth edges survive resizing and video compression


def _shape_mask(shape: str, xs: np.ndarray, ys: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of ``shape`` centred at the origin of (xs, ys) with half-size ``radius``."""
    ax, ay = np.abs(xs), np.abs(ys)
    if shape == "circle":
        return xs**2 + ys**2 <= radius**2
    if shape == "square":
        half = radius * 0.82
        return (ax <= half) & (ay <= half)
    if shape == "triangle":
        # Upward-pointing isosceles triangle: apex at top (-radius), base at +0.85 radius.
        top, bottom = -radius, 0.85 * radius
        frac = (ys - top) / (bottom - top)
        return (ys >= top) & (ys <= bottom) & (ax <= frac * radius)
    if shape == "cross":
        arm = radius * 0.3
        return ((ax <= arm) & (ay <= radius)) | ((ay <= arm) & (ax <= radius))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_shape(
    color: str,
    shape: str,
    size: int = 32,
    rng: Optional[np.random.Generator] = None,
) -> np.ndarray:
    """Render one coloured shape on a dark neutral background as an HxWx3 uint8 RGB array.

    With ``rng=None`` the result is deterministic and centred (what the demo corpus uses);
    with an ``rng`` position, scale, colour and background brightness are jittered, which is
    what makes the trained CLIP model generalise to renders it has never seen.
    """
    if color not in COLOR_RGB:
        raise ValueError(f"unknown colour {color!r}; expected one of {COLORS}")
    rgb = np.asarray(COLOR_RGB[color], dtype=np.float32)
    background = float(BACKGROUND_LEVEL)
    cx = cy = 0.0
    radius = 0.34 * size
    if rng is not None:
        radius = float(rng.uniform(0.26, 0.40)) * size
        max_shift = max(0.0, 0.5 * size - radius - 1.0)
        cx = float(rng.uniform(-max_shift, max_shift))
        cy = float(rng.uniform(-max_shift, max_shift))
        rgb = np.clip(rgb + rng.normal(0.0, 10.0, size=3), 0, 255)
        background = float(rng.uniform(20.0, 65.0))

    n = size * _SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float32) + 0.5) / _SUPERSAMPLE - size / 2.0
    ys, xs = np.meshgrid(coords - cy, coords - cx, indexing="ij")
    mask = _shape_mask(shape, xs, ys, radius).astype(np.float32)
    coverage = mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    image = background + coverage[..., None] * (rgb[None, None, :] - background)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------

_CHIRP_PERIOD_S = 0.5  # chirps repeat so that any 1 s window contains a full sweep


def _sweep_phase(t: np.ndarray, f_start: float, f_end: float, period: float) -> np.ndarray:
    """Phase of a repeating exponential sweep from ``f_start`` to ``f_end`` every ``period``."""
    k = np.log(f_end / f_start) / period
    local = np.mod(t, period)
    cycles = np.floor(t / period)
    per_sweep = f_start * (np.exp(k * period) - 1.0) / k
    return 2.0 * np.pi * (f_start * (np.exp(k * local) - 1.0) / k + cycles * per_sweep)


def render_sound(
    sound: str,
    duration_s: float,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    rng: Optional[np.random.Generator] = None,
) -> np.ndarray:
    """Synthesize one sound concept as float32 mono samples in [-1, 1].

    The concepts are chosen to look clearly different in a mel spectrogram: a steady low line,
    a steady high line, up- and down-going sweeps, broadband noise and a pulsed mid tone.  With
    an ``rng``, pitch (+-12 %), level, sweep timing and background noise are jittered.
    """
    name = sound_name(sound)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    pitch = 1.0
    level = 0.6
    offset = 0.0
    noise_level = 0.0
    if rng is not None:
        pitch = float(rng.uniform(0.88, 1.12))
        level = float(rng.uniform(0.25, 0.9))
        offset = float(rng.uniform(0.0, 1.0))
        noise_level = float(rng.uniform(0.0, 0.03))

    if name == "low_tone":
        f = 200.0 * pitch
        y = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
    elif name == "high_tone":
        f = 3000.0 * pitch
        y = np.sin(2 * np.pi * f * t)
    elif name in ("rising_chirp", "falling_chirp"):
        lo, hi = 300.0 * pitch, 4000.0 * pitch
        shifted = t + offset * _CHIRP_PERIOD_S
        if name == "rising_chirp":
            y = np.sin(_sweep_phase(shifted, lo, hi, _CHIRP_PERIOD_S))
        else:
            y = np.sin(_sweep_phase(shifted, hi, lo, _CHIRP_PERIOD_S))
    elif name == "noise_burst":
        noise_rng = rng if rng is not None else np.random.default_rng(12345)
        y = noise_rng.standard_normal(n) * 0.5
    elif name == "beeping_tone":
        f = 1000.0 * pitch
        beep_period = 0.2
        gate = (np.mod(t + offset * beep_period, beep_period) < beep_period / 2).astype(np.float64)
        y = np.sin(2 * np.pi * f * t) * gate
    else:  # pragma: no cover - sound_name already validated
        raise ValueError(name)

    peak = np.max(np.abs(y)) if n else 1.0
    y = y / (peak if peak > 0 else 1.0) * level
    # 5 ms fades avoid clicks that would smear energy over all mel bins.
    fade = min(n // 2, int(0.005 * sample_rate))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        y[:fade] *= ramp
        y[n - fade :] *= ramp[::-1]
    if noise_level > 0 and rng is not None:
        y = y + rng.standard_normal(n) * noise_level
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM mono WAV using only the stdlib."""
    pcm = np.clip(np.rint(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.astype("<i2").tobytes())


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = VIDEO_FPS,
                soundtrack: Optional[np.ndarray] = None, sample_rate: int = AUDIO_SAMPLE_RATE) -> str:
    """Encode RGB frames as an mp4 (yuv420p) with frame i at exactly ``i / fps`` seconds, and
    ``soundtrack`` (mono float samples) as an AAC audio stream when given.

    Tries libx264 without B-frames first (so decode order equals presentation order and the
    first PTS is 0), then falls back to mpeg4.  Returns the codec name actually used.
    """
    import av  # local import: only needed when writing videos

    last_error: Optional[Exception] = None
    for codec, options in (("libx264", {"bf": "0", "crf": "18"}), ("mpeg4", {"qscale": "3"})):
        try:
            with av.open(str(path), "w") as container:
                stream: Any = container.add_stream(codec, rate=fps, options=options)
                height, width = frames[0].shape[:2]
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                if codec == "libx264":
                    stream.codec_context.max_b_frames = 0
                # every stream is declared before the first packet is muxed
                audio: Any = container.add_stream("aac", rate=sample_rate, layout="mono") if soundtrack is not None else None
                for index, array in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                    frame.pts = index
                    frame.time_base = Fraction(1, fps)
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
                if audio is not None:
                    _mux_soundtrack(container, audio, soundtrack, sample_rate)
            return codec
        except Exception as error:  # codec missing in this FFmpeg build: try the next one
            logger.debug("video codec %s failed for %s: %s", codec, path, error)
            last_error = error
            if path.exists():
                path.unlink()
    raise RuntimeError(f"could not encode {path} with libx264 or mpeg4: {last_error}")


def _mux_soundtrack(container: Any, stream: Any, samples: np.ndarray, sample_rate: int) -> None:
    """Encode mono float samples into ``stream`` (AAC) of an open output container, from t = 0."""
    import av

    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    step = 1024  # AAC frame size
    for start in range(0, len(pcm), step):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + step], format="flt", layout="mono")
        frame.sample_rate = sample_rate  # pts left to the encoder: consecutive from t = 0
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def soundtrack_for(events: Sequence[tuple[float, float, str]], sample_rate: int = AUDIO_SAMPLE_RATE,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The soundtrack of a clip whose ``events`` are (start, end, image caption): during each
    event, the sound of its colour (:data:`SOUND_FOR_COLOR`), so what is heard goes with what is seen."""
    parts = [render_sound(SOUND_FOR_COLOR[parse_image_caption(caption)[0]], end - start, sample_rate, rng=rng)
             for start, end, caption in events]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def sound_at(caption_at_t: str) -> str:
    """The sound caption that plays with an image caption in an audio-visual clip."""
    return SOUND_CAPTIONS[SOUND_FOR_COLOR[parse_image_caption(caption_at_t)[0]]]


# --------------------------------------------------------------------------------------------
# Demo corpus
# --------------------------------------------------------------------------------------------

_BASE_TIME = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)

#: Sentence patterns of the demo text documents; the CLIP text tower is trained on them too.
TEXT_TEMPLATES: tuple[str, ...] = (
    "{cap}.",
    "A picture of {cap}.",
    "The image shows {cap} on a dark background.",
    "There is {cap} in the middle.",
    "A photo of {cap}.",
)
#: Two-sound sentence patterns used for the sound paragraph of each demo text document.
SOUND_TEMPLATES: tuple[str, ...] = (
    "The recording starts with {a}, then {b}.",
    "You can hear {a} followed by {b}.",
)


def _pick_concepts(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (colour, shape) pairs, consecutive ones differing in colour and shape."""
    chosen: list[tuple[str, str]] = []
    while len(chosen) < count:
        pair = (COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))])
        if chosen and (pair[0] == chosen[-1][0] or pair[1] == chosen[-1][1]):
            continue
        if pair in chosen:
            continue
        chosen.append(pair)
    return chosen


def _pick_sounds(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct sound concepts in random order."""
    return [SOUNDS[i] for i in rng.permutation(len(SOUNDS))[:count]]


def write_demo_corpus(out_dir: Path, seed: int = 0) -> list[dict]:
    """Write the small demo corpus (images, videos, audio, text) and return its manifest.

    Every row has ``item_id``, ``uri`` (absolute path), ``modality``, ``caption`` and a
    tz-aware UTC ``event_timestamp``; video and audio rows also carry ``events``, a list of
    ``(start_s, end_s, caption)`` intervals of the true content, so segmenters and retrieval
    can be checked against ground truth.  Output is deterministic for a given ``seed``.
    """
    from PIL import Image  # local import keeps the module importable without pillow

    out_dir = Path(out_dir).resolve()
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    minute = 0

    def stamp() -> datetime:
        nonlocal minute
        minute += 1
        return _BASE_TIME + timedelta(minutes=minute)

    # Images: one centred PNG per concept, plus two jittered JPEG variants.
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for color in COLORS:
        for shape in SHAPES:
            path = image_dir / f"{color}_{shape}.png"
            Image.fromarray(render_shape(color, shape, size=64)).save(path, format="PNG")
            rows.append(
                {
                    "item_id": f"img_{color}_{shape}",
                    "uri": str(path),
                    "modality": "image",
                    "caption": image_caption(color, shape),
                    "event_timestamp": stamp(),
                }
            )
    for color, shape in (("green", "triangle"), ("orange", "cross")):
        path = image_dir / f"{color}_{shape}_photo.jpg"
        array = render_shape(color, shape, size=64, rng=rng)
        Image.fromarray(array).save(path, format="JPEG", quality=90)
        rows.append(
            {
                "item_id": f"img_{color}_{shape}_jpg",
                "uri": str(path),
                "modality": "image",
                "caption": image_caption(color, shape),
                "event_timestamp": stamp(),
            }
        )

    # Videos: 3 s at 10 fps, three concepts of exactly 1 s each (cuts at 1.0 s and 2.0 s).
    video_dir = out_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    frames_per_segment = int(round(SEGMENT_S * VIDEO_FPS))
    for index in range(4):
        concepts = _pick_concepts(rng, 3)
        frames: list[np.ndarray] = []
        events: list[tuple[float, float, str]] = []
        for k, (color, shape) in enumerate(concepts):
            frame = render_shape(color, shape, size=64)
            frames.extend([frame] * frames_per_segment)
            events.append((k * SEGMENT_S, (k + 1) * SEGMENT_S, image_caption(color, shape)))
        path = video_dir / f"video_{index}.mp4"
        # the soundtrack goes with the picture: each colour has its sound (SOUND_FOR_COLOR)
        codec = write_video(path, frames, fps=VIDEO_FPS, soundtrack=soundtrack_for(events))
        logger.debug("wrote %s with %s", path, codec)
        rows.append(
            {
                "item_id": f"vid_{index}",
                "uri": str(path),
                "modality": "video",
                "caption": ", then ".join(e[2] for e in events),
                "event_timestamp": stamp(),
                "events": events,
            }
        )

    # Audio: 3 s WAV at 16 kHz, three sound concepts of exactly 1 s each.
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for index in range(4):
        names = _pick_sounds(rng, 3)
        parts = [render_sound(n, SEGMENT_S, AUDIO_SAMPLE_RATE) for n in names]
        events = [
            (k * SEGMENT_S, (k + 1) * SEGMENT_S, SOUND_CAPTIONS[n]) for k, n in enumerate(names)
        ]
        path = audio_dir / f"audio_{index}.wav"
        write_wav(path, np.concatenate(parts), AUDIO_SAMPLE_RATE)
        rows.append(
            {
                "item_id": f"aud_{index}",
                "uri": str(path),
                "modality": "audio",
                "caption": ", then ".join(e[2] for e in events),
                "event_timestamp": stamp(),
                "events": events,
            }
        )

    # Text: paragraphs separated by blank lines, one concept per paragraph, plus a sound one.
    text_dir = out_dir / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    for index in range(3):
        concepts = _pick_concepts(rng, 4)
        paragraphs = []
        for k, (color, shape) in enumerate(concepts):
            template = TEXT_TEMPLATES[(index + k) % len(TEXT_TEMPLATES)]
            sentence = template.format(cap=image_caption(color, shape))
            paragraphs.append(sentence[0].upper() + sentence[1:])
        a, b = _pick_sounds(rng, 2)
        paragraphs.append(
            SOUND_TEMPLATES[index % len(SOUND_TEMPLATES)].format(
                a=SOUND_CAPTIONS[a], b=SOUND_CAPTIONS[b]
            )
        )
        path = text_dir / f"doc_{index}.txt"
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
        rows.append(
            {
                "item_id": f"txt_{index}",
                "uri": str(path),
                "modality": "text",
                "caption": paragraphs[0],
                "event_timestamp": stamp(),
            }
        )

    logger.info("wrote demo corpus with %d items to %s", len(rows), out_dir)
    return rows
