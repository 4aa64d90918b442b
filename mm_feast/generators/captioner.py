"""Captions from an image-to-text transformers model (``VisionEncoderDecoderModel`` and the like):
every image and sampled video frame gets a sentence. Decoding settings come from the model's
generation config and the view's settings, and are recorded."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from mm_feast.core.errors import ModelNotFound
from mm_feast.encoders.base import LazyModel, load_pretrained, pick_device, weights_version
from mm_feast.generators.base import Generator, register


def saved_generation_config(generator_id: str) -> Any:
    """The decoding defaults the model would load with, read without its weights: its
    generation_config.json, or (none saved) the defaults derived from its config, as from_pretrained does."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return load_pretrained(GenerationConfig, generator_id)
    except ModelNotFound:
        return GenerationConfig.from_model_config(load_pretrained(AutoConfig, generator_id))


@register(default=True)
class Captioner(LazyModel, Generator):  # LazyModel first: its weights_loaded over Generator's
    kind = "caption"
    modalities = ("image", "video")

    def __init__(self, generator_id: str, settings: Optional[Mapping[str, Any]] = None, device: Optional[str] = None):
        Generator.__init__(self, generator_id, settings)
        LazyModel.__init__(self)  # the weights load at the first caption, so a planning driver holds none
        from transformers import AutoImageProcessor, AutoTokenizer

        self.device = pick_device(device)
        self._weights_version = weights_version(generator_id)  # hashes the files: once, not per describe()
        self.image_processor = load_pretrained(AutoImageProcessor, generator_id)
        self.tokenizer = load_pretrained(AutoTokenizer, generator_id)
        saved = saved_generation_config(generator_id).to_diff_dict()
        self.decoding = {k: saved[k] for k in ("num_beams", "do_sample", "max_new_tokens") if k in saved}
        self.decoding.update({k: v for k, v in self.settings.items() if v is not None})

    def _load_model(self) -> Any:
        from transformers import AutoModelForImageTextToText, VisionEncoderDecoderModel

        try:
            model = load_pretrained(VisionEncoderDecoderModel, self.model_id)
        except Exception:  # other image-to-text families (BLIP-style) load through the auto class
            model = load_pretrained(AutoModelForImageTextToText, self.model_id)
        return model.to(self.device).eval()

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"num_beams": None, "do_sample": None, "max_new_tokens": None}  # None: the model's own

    def engine_version(self) -> str:
        return self._weights_version

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "decoding": dict(self.decoding)}

    def _generate(self, modality: str, items: list[Any]) -> list[str]:
        import torch

        pixels = self.image_processor(images=items, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(pixel_values=pixels, **self.decoding)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)
