"""CLAP-family encoder: audio windows and text in one space."""

from __future__ import annotations

from typing import Any, Optional

from mm_feast.encoders.registry import register
from mm_feast.encoders.base import Encoder, as_tensor


@register("clap")
class ClapEncoder(Encoder):
    modalities = ("audio", "text")

    def __init__(self, model_id: str, revision: Optional[str], device: str):
        super().__init__(model_id, revision, device)
        from transformers import AutoProcessor

        self.processor = self._load(AutoProcessor)
        self.dim = self._config_value("projection_dim")
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)

    def _forward(self, modality: str, items: list[Any]) -> Any:
        if modality == "text":
            inputs = self.processor(text=items, return_tensors="pt", padding=True, truncation=True)
            return as_tensor(self.model.get_text_features(**self.to_model(inputs)))
        inputs = self.processor(audio=items, sampling_rate=self.sample_rate, return_tensors="pt")
        return as_tensor(self.model.get_audio_features(**self.to_model(inputs)))
