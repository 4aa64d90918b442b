"""Still images: decode any Pillow-readable file into one RGB uint8 array.

Encoders expect a single, predictable layout (HxWx3 uint8 RGB, upright), so every source
mode (palette, alpha, CMYK, 16-bit, greyscale, EXIF-rotated) is normalised here rather than
in each encoder.
"""

from __future__ import annotations

import logging
import struct
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import Locator, MediaError, MediaFacts, Segment, canonical_format
from .config import DEFAULT_MAX_PIXELS, SegmentationConfig
from .file import MediaFile, Source, as_media_file
from .registry import Modality, register

logger = logging.getLogger(__name__)

# Errors Pillow raises for corrupt / truncated / unsupported data.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  IndexError, KeyError, struct.error)

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WHITE = (255, 255, 255)


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(path, f"cannot decode image: invalid size {width}x{height}")
    if width * height > max_pixels:
        raise MediaError(
            path,
            f"image too large: {width}x{height} = {width * height} pixels exceeds limit "
            f"of {max_pixels} (possible decompression bomb)",
        )


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """16/32-bit integer and float greyscale -> uint8, keeping the top 8 bits of range.

    Pillow's own ``convert("L")`` clips 16-bit values at 255 (turning most of the image
    white), so scale explicitly.
    """
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        return (arr.astype(np.uint32) >> 8).astype(np.uint8)
    if img.mode == "I":  # 32-bit signed; in practice 16-bit PNG/TIFF data lives here
        arr = np.clip(arr.astype(np.int64), 0, None)
        peak = int(arr.max(initial=0))
        shift = 8 if peak > 255 and peak <= 0xFFFF else (24 if peak > 0xFFFF else 0)
        return (arr >> shift).clip(0, 255).astype(np.uint8)
    # "F": float32, either 0..1 or 0..255 by convention
    arr = np.nan_to_num(arr.astype(np.float64))
    if arr.size and arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8 RGB; alpha is composited on white."""
    mode = img.mode
    if mode == "P":
        # Palette images may carry transparency in info["transparency"]; go via RGBA.
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    elif mode.startswith("I") or mode == "F":
        grey = _high_depth_to_uint8(img)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    elif mode != "RGB":
        # L, 1, CMYK, YCbCr, LAB, HSV: Pillow's converters are correct for 8-bit data.
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(arr)


def load_image(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an upright HxWx3 uint8 RGB array.

    The pixel limit is checked from the header (``Image.open`` reads only the header) before
    any pixel data is decoded. Multi-frame files (GIF, TIFF) yield their first frame.
    """
    file = as_media_file(source)
    p = file.path
    try:
        with Image.open(file.open()) as probe:
            _check_size(p, probe.size, max_pixels)
            probe.verify()  # structural check (PNG CRCs etc.); invalidates the object
        with Image.open(file.open()) as img:
            _check_size(p, img.size, max_pixels)
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception as exc:  # broken EXIF should not lose an otherwise good image
                logger.warning("%s: ignoring unreadable EXIF orientation: %s", p, exc)
                upright = img
            if upright is None:
                upright = img
            _check_size(p, upright.size, max_pixels)
            return _to_rgb(upright)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(p, f"image too large (decompression bomb): {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise MediaError(p, f"cannot decode image: {exc}") from exc


def segment_image(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Segment]:
    """An image is a single segment covering the whole file."""
    return list(ImageModality().iter_segments(as_media_file(source), SegmentationConfig(max_pixels=max_pixels)))


@register
class ImageModality(Modality):
    name = "image"
    extensions = ("jpg", "jpeg", "jpe", "jfif", "png", "gif", "bmp", "dib", "tif", "tiff", "webp",
                  "ppm", "pgm", "pbm", "pnm", "ico", "tga", "jp2", "j2k", "pcx", "psd")

    def probe(self, file: MediaFile) -> MediaFacts:
        facts = MediaFacts()
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP; the gate's own pixel limit decides, with the real count.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file.open()) as img:
                facts.format = canonical_format(img.format or "")
                facts.width, facts.height = float(img.width), float(img.height)
                facts.pixels = float(img.width) * float(img.height)
                facts.mode = img.mode
        return facts

    def iter_segments(self, file: MediaFile, config: SegmentationConfig) -> Iterator[Segment]:
        arr = load_image(file, max_pixels=config.max_pixels)
        locator = Locator(uri=str(file.path), sha256=file.sha256, modality="image")
        yield Segment(locator=locator, data=arr, extra={"height": arr.shape[0], "width": arr.shape[1]})

    def decode_at(self, file: MediaFile, locator: Locator, config: SegmentationConfig) -> Any:
        return load_image(file, max_pixels=config.max_pixels)
