"""Text rendered into pixels, read with Tesseract (Debian ``tesseract-ocr`` through
``pytesseract``), one record per line with its box and how visible it is.

Tesseract reads text a person cannot see (36 px at 3/255 contrast, docs/governance.md), so each
line also carries the contrast ratio of its ink to its background, measured on the original
pixels: the content filters call a line below a threshold "hidden".

Tesseract reads each picture twice: as it is (visible text on busy pictures, where equalising
would amplify the texture into noise) and histogram-equalised (which spreads two nearly equal
grey levels apart wherever they cover many pixels: faint text on a flat background). Lines of the
second pass that overlap a line of the first are dropped. Small images are upscaled first
(Tesseract wants ~20 px letters). Known limit, measured: 3/255 text under sensor noise of one
grey level is not read (docs/governance.md)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

MIN_SIDE = 16  # below this no line of text fits
TIMEOUT_S = 60  # one Tesseract call; a picture that takes longer is reported, not waited on


class OcrError(RuntimeError):
    """Tesseract failed or timed out on one picture (the reason is in the message)."""
UPSCALE_BELOW = 200  # images whose short side is smaller are enlarged (up to 4x) before OCR


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in an image, in the original image's pixel coordinates."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float  # Tesseract's mean word confidence, 0-100
    contrast: float  # WCAG contrast ratio of ink to background: 1 (invisible) to 21 (black on white)

    @property
    def box(self) -> str:
        return f"box {self.left},{self.top} {self.width}x{self.height}"


@lru_cache(maxsize=1)
def unavailable_reason() -> Optional[str]:
    """Why OCR cannot run here (None when it can): the Python binding or the binary is missing."""
    try:
        import pytesseract
    except ImportError:
        return "pytesseract is not installed"
    binary = shutil.which(pytesseract.pytesseract.tesseract_cmd) or shutil.which("tesseract")
    if binary is None:
        return "the tesseract binary is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
    return None


def relative_luminance(grey: np.ndarray) -> np.ndarray:
    """sRGB-encoded 0-255 levels to linear relative luminance 0-1 (WCAG 2.x)."""
    c = np.asarray(grey, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def otsu_split(values: np.ndarray) -> Optional[float]:
    """The level that best separates ``values`` into two classes (Otsu), or None if uniform."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2 or values.min() == values.max():
        return None
    histogram, edges = np.histogram(values, bins=256, range=(0, 256))
    weights = histogram.astype(np.float64)
    levels = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(weights)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weights * levels)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def contrast_ratio(grey_box: np.ndarray) -> float:
    """Contrast of the two grey classes in a text box, as a WCAG ratio (lighter + 0.05) / (darker + 0.05)."""
    split = otsu_split(grey_box)
    if split is None:
        return 1.0
    values = np.asarray(grey_box, dtype=np.float64).ravel()
    dark, light = values[values < split], values[values >= split]
    if dark.size == 0 or light.size == 0:
        return 1.0
    low, high = relative_luminance(np.array([dark.mean(), light.mean()]))
    return float((high + 0.05) / (low + 0.05))


def _tesseract_lines(picture: Image.Image, scale: int) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """(text, mean confidence, (left, top, right, bottom) in unscaled pixels) per line."""
    import pytesseract

    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.LANCZOS)
    try:
        data = pytesseract.image_to_data(picture, output_type=pytesseract.Output.DICT, timeout=TIMEOUT_S)
    except (pytesseract.TesseractError, RuntimeError, OSError) as exc:  # RuntimeError: pytesseract's timeout
        raise OcrError(f"tesseract failed: {str(exc).strip() or type(exc).__name__}") from exc
    grouped: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if word.strip() and float(data["conf"][i]) >= 0:
            grouped.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    lines = []
    for indices in grouped.values():
        text = " ".join(data["text"][i].strip() for i in indices)
        confidence = float(np.mean([float(data["conf"][i]) for i in indices]))
        box = (min(data["left"][i] for i in indices) // scale, min(data["top"][i] for i in indices) // scale,
               -(-max(data["left"][i] + data["width"][i] for i in indices) // scale),
               -(-max(data["top"][i] + data["height"][i] for i in indices) // scale))
        lines.append((text, confidence, box))
    return lines


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two boxes share more than half of the smaller one's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height > 0.5 * max(smaller, 1)


def read_lines(image: Image.Image | np.ndarray, min_confidence: float = 60.0) -> list[OcrLine]:
    """Every line Tesseract reads with at least ``min_confidence``, top to bottom, with its
    visibility. Raises ``RuntimeError`` with the reason when OCR cannot run here."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"OCR unavailable: {reason}")
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    grey = picture.convert("L")
    if min(grey.size) < MIN_SIDE:
        return []
    scale = min(4, -(-UPSCALE_BELOW // min(grey.size))) if min(grey.size) < UPSCALE_BELOW else 1
    kept: list[tuple[str, float, tuple[int, int, int, int]]] = []
    for candidate in (grey, ImageOps.equalize(grey)):
        for text, confidence, box in _tesseract_lines(candidate, scale):
            if confidence < min_confidence or sum(ch.isalnum() for ch in text) < 2:
                continue
            if not any(_overlaps(box, other) for _, _, other in kept):
                kept.append((text, confidence, box))
    pixels = np.asarray(grey)
    found = [OcrLine(text, left, top, right - left, bottom - top, confidence, contrast_ratio(pixels[top:bottom, left:right]))
             for text, confidence, (left, top, right, bottom) in sorted(kept, key=lambda line: (line[2][1], line[2][0]))]
    logger.debug("OCR: %d lines in a %dx%d image", len(found), grey.width, grey.height)
    return found
