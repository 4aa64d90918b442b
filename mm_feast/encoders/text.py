"""Sentence-transformers-style text encoder (e.g. all-MiniLM-L6-v2): mean pooling over tokens."""

from __future__ import annotations

from typing import Any, Optional

from mm_feast.encoders.registry import register
from mm_feast.encoders.base import Encoder


@register(default=True)
class SentenceEncoder(Encoder):
    modalities = ("text",)

    def __init__(self, model_id: str, revision: Optional[str], device: str):
        super().__init__(model_id, revision, device)
        from transformers import AutoTokenizer

        self.tokenizer = self._load(AutoTokenizer)
        self.dim = self._config_value("hidden_size")

    def _forward(self, modality: str, items: list[Any]) -> Any:
        inputs = self.tokenizer(
            items, return_tensors="pt", padding=True, truncation=True, max_length=256
        )
        inputs = self.to_model(inputs)
        hidden = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
