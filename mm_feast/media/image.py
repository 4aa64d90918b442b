"""Still images: decode any Pillow-readable file into one RGB uint8 array.

Encoders expect a single, predictable layout (HxWx3 uint8 RGB, upright), so every source
mode (palette, alpha, CMYK, 16-bit, greyscale, EXIF-rotated) is normalised here rather than
in each encoder.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import Locator, MediaError, Segment, require_nonempty_file

logger = logging.getLogger(__name__)

#: Refuse images above this many pixels (50 MP ~ 150 MB as RGB) to stop decompression bombs.
DEFAULT_MAX_PIXELS = 50_000_000

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


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an upright HxWx3 uint8 RGB array.

    The pixel limit is checked from the header (``Image.open`` reads only the header) before
    any pixel data is decoded. Multi-frame files (GIF, TIFF) yield their first frame.
    """
    p = require_nonempty_file(path)
    try:
        with Image.open(p) as probe:
            _check_size(p, probe.size, max_pixels)
            probe.verify()  # structural check (PNG CRCs etc.); invalidates the object
        with Image.open(p) as img:
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


def segment_image(
    path: str | Path, sha256: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[Segment]:
    """An image is a single segment covering the whole file."""
    arr = load_image(path, max_pixels=max_pixels)
    locator = Locator(uri=str(path), sha256=sha256, modality="image")
    return [Segment(locator=locator, data=arr, extra={"height": arr.shape[0], "width": arr.shape[1]})]
