"""An audio encoder bound into another model's space, ImageBind-style: its audio vectors land in
the parent's (clip-shapes') image-text space, so a sound finds frames and an image finds sounds.

A bound model is a CLAP-architecture directory with a ``binding.json`` that names the parent
and the parent's weights version it was trained against. Audio goes through the bound tower;
text, images and frames through the frozen parent itself. Its ``space`` is the parent's, so
views of both are searched in one space and never fused across spaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mm_feast.encoders.base import Encoder, resolve_model_path
from mm_feast.encoders.clap import ClapEncoder

BINDING_FILE = "binding.json"


def binding_of(model_id: str) -> Optional[dict[str, Any]]:
    """The binding a model directory declares, or None (not a bound model)."""
    location = resolve_model_path(model_id)
    if isinstance(location, Path) and (location / BINDING_FILE).is_file():
        return json.loads((location / BINDING_FILE).read_text())
    return None


class BoundAudioEncoder(ClapEncoder):
    """Audio by the bound tower; every other modality by the parent (frozen) encoder."""

    modalities = ("audio", "image", "video", "text")  # a bound model's parent is an image-text model

    def __init__(self, model_id: str, revision: Optional[str], device: str):
        super().__init__(model_id, revision, device)
        self.binding = binding_of(model_id) or {}
        self.parent: Optional[Encoder] = None  # set by bind(): the cache loads it (mm_feast.encoders.cache)

    @property
    def parent_id(self) -> str:
        return str(self.binding["space_of"])

    def bind(self, parent: Encoder) -> None:
        """Attach the frozen parent; refuse one whose weights are not those the binding was trained on."""
        from mm_feast.core.errors import ModelNotFound

        if parent.version != self.binding.get("space_version"):
            raise ModelNotFound(
                f"model '{self.model_id}' was bound to {self.parent_id} version {self.binding.get('space_version')}, but that"
                f" model is version {parent.version} here: its audio vectors would not land in this space. Re-train the"
                " binding (scripts/train_derived_models.py --only bind)", model_id=self.model_id)
        if self.dim != parent.dim:
            raise ModelNotFound(f"model '{self.model_id}' gives {self.dim}-d audio vectors; its parent {parent.model_id}"
                                f" gives {parent.dim}-d", model_id=self.model_id)
        self.parent = parent
        self.modalities = tuple(dict.fromkeys(("audio", *parent.modalities)))  # what this parent takes

    @property
    def space(self) -> str:
        return self.parent.space

    @property
    def parent_model(self) -> str:
        """What lineage records as the frozen parent: its id and weights version."""
        return f"{self.parent.model_id}@{self.parent.version}"

    def encode(self, modality: str, batch: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        if modality == "audio":
            return super().encode(modality, batch, batch_size=batch_size)
        return self.parent.encode(modality, batch, batch_size=batch_size)
