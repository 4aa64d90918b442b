"""Content filter for images: text in the pixels and text in the metadata, both through the text
filter.

* Pixels: Tesseract reads every line (``mm_feast.media.ocr``); a line whose ink is below the
  contrast a person can see is "hidden text" (flagged on its own, and blocked if the text filter
  blocks what it says); visible text is reported and checked the same way. Findings name the box.
* Metadata: PNG text chunks and EXIF descriptions and comments, located by field."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from mm_feast.governance.text import check_text
from mm_feast.governance.thresholds import SafetyThresholds
from mm_feast.governance.verdict import Finding
from mm_feast.media import ocr
from mm_feast.media import load_image
from mm_feast.media.file import MediaFile

logger = logging.getLogger(__name__)
_WARNED: set[str] = set()  # each reason OCR cannot run is logged once per process

# EXIF tags that carry free text: ImageDescription, Make, Model, Software, Artist, Copyright,
# UserComment, XPTitle, XPComment, XPAuthor, XPKeywords, XPSubject.
EXIF_TEXT_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x013B: "Artist",
                  0x8298: "Copyright", 0x9286: "UserComment", 0x9C9B: "XPTitle", 0x9C9C: "XPComment",
                  0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords", 0x9C9F: "XPSubject"}


def _decode(value: object) -> str:
    if isinstance(value, bytes):
        if value[:8] in (b"ASCII\x00\x00\x00", b"UNICODE\x00"):  # EXIF UserComment's charset header
            body = value[8:]
            return body.decode("utf-16-le" if value.startswith(b"UNICODE") else "ascii", errors="replace").strip("\x00")
        for encoding in ("utf-16-le", "utf-8") if value.endswith(b"\x00\x00") else ("utf-8", "latin-1"):
            try:
                return value.decode(encoding).strip("\x00")
            except UnicodeDecodeError:
                continue
        return ""
    return str(value)


def metadata_texts(file: MediaFile) -> dict[str, str]:
    """Every free-text metadata field of an image, by where it is ("png:Comment", "exif:Artist")."""
    texts: dict[str, str] = {}
    with Image.open(file.open()) as img:
        for key, value in (getattr(img, "text", None) or {}).items():  # PNG tEXt / iTXt / zTXt
            texts[f"png:{key}"] = _decode(value)
        exif = img.getexif()
        for tag, name in EXIF_TEXT_TAGS.items():
            if tag in exif:
                texts[f"exif:{name}"] = _decode(exif[tag])
        for tag, name in EXIF_TEXT_TAGS.items():  # UserComment lives in the Exif sub-IFD
            value = exif.get_ifd(0x8769).get(tag) if tag == 0x9286 else None
            if value is not None:
                texts[f"exif:{name}"] = _decode(value)
    return {k: v for k, v in texts.items() if v.strip()}


def check_pixels(pixels: Image.Image | np.ndarray, thresholds: SafetyThresholds, prefix: str = "") -> list[Finding]:
    """Every line of text in the pixels, hidden or visible, then what the hidden text and the
    visible text each say (lines joined, so a sentence broken over two lines still reads as one).
    ``prefix`` locates the picture inside its file (a video frame's time)."""
    settings = thresholds.image
    findings: list[Finding] = []
    said: dict[str, list[str]] = {"hidden": [], "visible": []}
    try:
        lines = ocr.read_lines(pixels, settings.ocr_min_confidence)
    except ocr.OcrError as exc:  # this picture could not be read: say so, flagged, and go on
        return [Finding("ocr_failed", f"{prefix}whole picture".strip(), 1.0, "flag", str(exc))]
    for line in lines:
        where = f"{prefix}{line.box}"
        if line.contrast < settings.hidden_contrast:
            letters = sum(ch.isalnum() for ch in line.text)
            findings.append(Finding("hidden_text", where, float(letters), settings.hidden_text.level(letters),
                                    f"text at contrast {line.contrast:.3f}:1, below what a person can see "
                                    f"({settings.hidden_contrast}:1): {line.text[:80]!r}"))
            said["hidden"].append(line.text)
        else:
            findings.append(Finding("visible_text", where, line.contrast, "allow", f"text: {line.text[:80]!r}"))
            said["visible"].append(line.text)
    for kind, texts in said.items():
        if texts:
            findings += check_text("\n".join(texts), thresholds.text, prefix=f"{prefix}ocr {kind} text ")
    return findings


def ocr_enabled(thresholds: SafetyThresholds, errors: list[str]) -> bool:
    """Whether OCR runs; when the repo asks for it and Tesseract is missing, say so in ``errors``
    (the verdict's) and the log, rather than pass unread pixels off as checked."""
    if not thresholds.image.ocr:
        return False
    reason = ocr.unavailable_reason()
    if reason:
        errors.append(f"OCR did not run: {reason}")
        if reason not in _WARNED:
            _WARNED.add(reason)
            logger.warning("content filter: OCR did not run, text in pixels goes unchecked: %s", reason)
        return False
    return True


def check_image(file: MediaFile, thresholds: SafetyThresholds, errors: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    for where, text in metadata_texts(file).items():
        findings += check_text(text, thresholds.text, prefix=f"{where} ")
    if ocr_enabled(thresholds, errors):
        findings += check_pixels(load_image(file), thresholds)  # the pixels the model and a person see
    return findings
