"""The text in an image or a video frame, read by Tesseract (``mm_feast.media.ocr``): its lines,
top to bottom, joined by newlines."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Optional

from mm_feast.generators.base import Generator, GeneratorUnavailable, register
from mm_feast.media.ocr import read_lines, unavailable_reason


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    import pytesseract

    return str(pytesseract.get_tesseract_version())


@register("tesseract")
class TesseractOcr(Generator):
    kind = "ocr"
    modalities = ("image", "video")

    def __init__(self, generator_id: str, settings: Optional[Mapping[str, Any]] = None, device: Optional[str] = None):
        super().__init__(generator_id, settings)
        reason = unavailable_reason()
        if reason:
            raise GeneratorUnavailable(f"OCR (generator 'tesseract') cannot run here: {reason}")

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"min_confidence": 60.0}

    def engine_version(self) -> str:
        return f"tesseract {tesseract_version()}"

    def _generate(self, modality: str, items: list[Any]) -> list[str]:
        return ["\n".join(line.text for line in read_lines(item, float(self.settings["min_confidence"]))) for item in items]
