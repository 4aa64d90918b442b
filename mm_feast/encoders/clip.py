"""CLIP/SigLIP-family encoder: images, video frames and text in one space."""

from __future__ import annotations

from typing import Any, Optional

from mm_feast.encoders.registry import register
from mm_feast.encoders.base import Encoder, as_tensor


@register("clip", "siglip", "siglip2")
class ClipEncoder(Encoder):
    modalities = ("image", "video", "text")

    def __init__(self, model_id: str, revision: Optional[str], device: str):
        super().__init__(model_id, revision, device)
        from transformers import AutoProcessor

        self.processor = self._load(AutoProcessor)
        self.dim = self._config_value("projection_dim")

    def _forward(self, modality: str, items: list[Any]) -> Any:
        if modality == "text":
            inputs = self.processor(text=items, return_tensors="pt", padding=True, truncation=True)
            return as_tensor(self.model.get_text_features(**self.to_model(inputs)))
        # image and video frames: RGB uint8 arrays
        inputs = self.processor(images=items, return_tensors="pt")
        pixels = self.to_model({"pixel_values": inputs["pixel_values"]})["pixel_values"]
        return as_tensor(self.model.get_image_features(pixel_values=pixels))
