"""One entry point for every content filter: a file (or a text query) in, a verdict out.

The modality comes from the media registry; each modality's filter is one module of this
package, and this is the one place that maps modalities to them."""

from __future__ import annotations

import logging
from typing import Callable, Optional

from mm_feast.governance.audio import check_audio
from mm_feast.governance.image import check_image
from mm_feast.governance.text import check_text
from mm_feast.governance.thresholds import SafetyThresholds
from mm_feast.governance.verdict import Finding, Verdict
from mm_feast.governance.video import check_video
from mm_feast.media import MediaError, decode_text, detect
from mm_feast.media.file import MediaFile, Source, as_media_file

logger = logging.getLogger(__name__)

UNREADABLE = "unreadable"  # the finding of a file no filter could read

#: modality -> filter(file, thresholds, errors): findings; a filter that cannot run one of its
#: checks says why in ``errors`` (it ends up in the verdict).
FILTERS: dict[str, Callable[[MediaFile, SafetyThresholds, list[str]], list[Finding]]] = {
    "text": lambda file, t, errors: check_text(decode_text(file), t.text),
    "image": check_image,
    "audio": lambda file, t, errors: check_audio(file, t.audio),
    "video": check_video,
}


def scan_file(source: Source, thresholds: Optional[SafetyThresholds] = None, modality: Optional[str] = None) -> Verdict:
    """Every filter of the file's modality. A file no filter can read is blocked with the reason:
    content that cannot be checked must not reach a model unchecked."""
    thresholds = thresholds or SafetyThresholds()
    try:
        file = as_media_file(source)
        uri = str(file.path)
        modality = modality or detect(file)
        errors: list[str] = []
        return Verdict(uri, FILTERS[modality](file, thresholds, errors), errors=errors)
    except MediaError as exc:
        uri = exc.path
        finding = Finding(UNREADABLE, "whole file", 1.0, "block", f"cannot be checked: {exc.reason}")
        return Verdict(uri, [finding], errors=[exc.reason])


def scan_text(text: str, thresholds: Optional[SafetyThresholds] = None, uri: str = "<query>") -> Verdict:
    """A text search query, checked like a text file."""
    return Verdict(uri, check_text(text, (thresholds or SafetyThresholds()).text))
