"""Generators: models that write text about a segment (a caption of a frame, the text in an image,
the words in an audio window). A generated-text view runs one, then encodes its text like any
text block, so the text is a feature with lineage and is searchable by keyword and by vector."""

from mm_feast.generators.base import Generator, GeneratorUnavailable
from mm_feast.generators.generated import GeneratedTextEncoder, get_generated_encoder, get_generator

__all__ = ["GeneratedTextEncoder", "Generator", "GeneratorUnavailable", "get_generated_encoder", "get_generator"]
