"""Content filter for images: text hidden in metadata (PNG text chunks, EXIF descriptions and
comments) goes through the text filter, located by the field it came from.

Text rendered into the pixels (visible or at a contrast a person cannot see) needs OCR with
Tesseract; that check is not built yet (docs/governance.md)."""

from __future__ import annotations

from PIL import Image

from mm_feast.governance.text import check_text
from mm_feast.governance.thresholds import TextThresholds
from mm_feast.governance.verdict import Finding
from mm_feast.media.file import MediaFile

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


def check_image(file: MediaFile, thresholds: TextThresholds) -> list[Finding]:
    findings: list[Finding] = []
    for where, text in metadata_texts(file).items():
        findings += check_text(text, thresholds, prefix=f"{where} ")
    return findings
