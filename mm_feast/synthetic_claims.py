"""Synthetic insurance claims for the demo's decision model: a damage picture (an image, or a video
whose frames show it at known times), a claim text, and an optional call recording, each with the
ground truth that made its label.

In this synthetic world the demo's CLIP (trained on coloured shapes) sees "damage" as a cross;
the claim text is consistent with it or contradicts itself; the call is calm (a low tone) or
stressed (a noise burst). The label is a fixed additive rule of those three facts, so the
explanations can be checked against what actually drove each decision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from mm_feast.synthetic import COLORS, render_shape, render_sound, write_video, write_wav

CONSISTENT = [
    "A van reversed into my parked car on {day} and dented the rear bumper; the photos show the dent.",
    "Hail on {day} cracked the windscreen while the car was parked outside the house.",
    "On {day} a branch fell on the bonnet during the storm; the neighbour saw it happen.",
    "I scraped the left door against a pillar in the car park on {day}; the repair quote is attached.",
    "The car was hit at a junction on {day}; the other driver admitted fault and we swapped details.",
    "A shopping trolley rolled into the passenger door on {day} and left a long scratch.",
]
INCONSISTENT = [
    "The car was stolen on {day} but I still drove it to work the next morning, and it is destroyed.",
    "I was abroad on {day} when I crashed the car at home; nobody else was there and there are no photos.",
    "On {day} the engine caught fire, although the car has been in the garage and never left it.",
    "Everything was damaged on {day}, but I cannot say where or how, and the receipts are lost.",
    "The accident on {day} happened twice, first in the morning and again in the evening, at the same spot.",
    "My parked car hit another car on {day} while I was asleep, and the other car drove away.",
]
DAYS = ["3 May", "12 June", "1 March", "28 October", "9 January", "17 August"]

#: reject when 1.2·damage + 1.0·inconsistent text + 0.6·stressed call − 1.5 > 0
WEIGHTS = {"damage": 1.2, "inconsistent": 1.0, "stressed": 0.6}
BIAS = -1.5


@dataclass(frozen=True)
class Claim:
    picture: Path  # an image or a video
    text: Path
    call: Optional[Path]
    damage: bool
    inconsistent: bool
    stressed: bool
    damage_frames_s: tuple[float, ...] = ()  # video only: when the damage is on screen

    @property
    def rejected(self) -> bool:
        score = BIAS + WEIGHTS["damage"] * self.damage + WEIGHTS["inconsistent"] * self.inconsistent
        return score + WEIGHTS["stressed"] * self.stressed > 0


def _picture(rng: np.random.Generator, damage: bool) -> np.ndarray:
    shape = "cross" if damage else str(rng.choice(["circle", "square", "triangle"]))
    return render_shape(str(rng.choice(COLORS)), shape, size=64, rng=rng)


def write_claim(out_dir: Path, name: str, damage: bool, inconsistent: bool, stressed: Optional[bool],
                video: bool = False, seed: int = 0) -> Claim:
    """One claim's files. ``stressed=None`` leaves the call recording out. A damage video shows the
    cross in frames 2 and 3 of 6 (1.0 s and 1.5 s at 2 fps) and intact shapes elsewhere."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames_s: tuple[float, ...] = ()
    if video:
        picture = out_dir / f"{name}.mp4"
        frames = [_picture(rng, damage and i in (2, 3)) for i in range(6)]
        write_video(picture, frames, fps=2)
        frames_s = (1.0, 1.5) if damage else ()
    else:
        picture = out_dir / f"{name}.png"
        Image.fromarray(_picture(rng, damage)).save(picture)
    text = out_dir / f"{name}.txt"
    template = (INCONSISTENT if inconsistent else CONSISTENT)[int(rng.integers(6))]
    text.write_text(template.format(day=DAYS[int(rng.integers(len(DAYS)))]) + "\n", encoding="utf-8")
    call = None
    if stressed is not None:
        call = out_dir / f"{name}.wav"
        write_wav(call, render_sound("noise_burst" if stressed else "low_tone", 2.0, 16000), 16000)
    return Claim(picture, text, call, damage, inconsistent, bool(stressed), frames_s)


def write_claims(out_dir: Path, count: int, seed: int = 0, video_share: float = 0.4) -> list[Claim]:
    """``count`` random claims (some without a call, some with a video), for training and tests."""
    rng = np.random.default_rng(seed)
    claims = []
    for i in range(count):
        facts = rng.random(3) < 0.5
        stressed = None if rng.random() < 0.2 else bool(facts[2])
        claims.append(write_claim(out_dir, f"claim_{i:04d}", bool(facts[0]), bool(facts[1]), stressed,
                                  video=bool(rng.random() < video_share), seed=seed * 100003 + i))
    return claims
