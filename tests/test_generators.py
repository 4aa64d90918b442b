"""Generators on their own: the bundled captioner's accuracy on fresh renders, an OCR round trip
through Tesseract, and the settings and version rules every generator follows."""

from __future__ import annotations

import numpy as np
import pytest

from mm_feast.generators import get_generated_encoder, get_generator
from mm_feast.synthetic import COLORS, IMAGE_CAPTIONS, SHAPES, render_shape

CAPTIONER = "mm-feast/caption-shapes"


def test_the_captioner_writes_the_exact_caption_of_freshly_rendered_shapes():
    rng = np.random.default_rng(2024)  # seeds the training never used
    labels = np.repeat(np.arange(len(IMAGE_CAPTIONS)), 5)
    images = [render_shape(COLORS[i // len(SHAPES)], SHAPES[i % len(SHAPES)], size=64, rng=rng) for i in labels]
    captions = get_generator(CAPTIONER).generate("image", images)
    exact = np.mean([c == IMAGE_CAPTIONS[i] for c, i in zip(captions, labels)])
    assert exact >= 0.9, f"exact match {exact:.3f}"


def test_the_captioner_reads_its_decoding_defaults_without_its_weights():
    from mm_feast.generators.captioner import Captioner

    captioner = Captioner(CAPTIONER)  # a new instance: the cache's may be loaded already
    assert not captioner.weights_loaded
    planned = dict(captioner.decoding)
    captioner.generate("image", [render_shape("red", "circle", size=64)])
    assert captioner.weights_loaded
    loaded = captioner.model.generation_config.to_diff_dict()  # what the loaded model would decode with
    assert planned == {k: loaded[k] for k in ("num_beams", "do_sample", "max_new_tokens") if k in loaded}
    assert planned, "the bundled captioner saves its decoding settings"


def test_a_generated_encoder_reports_and_loads_the_weights_of_both_its_parts():
    """The Ray actors call load_weights and the driver checks weights_loaded (issue 9), for a
    captioner (lazy weights) and for a generator run by an external engine (no weights)."""
    from mm_feast.encoders.cache import load_encoder
    from mm_feast.generators.base import Generator
    from mm_feast.generators.captioner import Captioner
    from mm_feast.generators.generated import GeneratedTextEncoder

    class ExternalEngine(Generator):
        modalities = ("image",)

        def engine_version(self) -> str:
            return "1.0"

        def _generate(self, modality, items):
            return ["" for _ in items]

    captioned = GeneratedTextEncoder(Captioner(CAPTIONER), load_encoder("mm-feast/clip-shapes"))
    assert not captioned.weights_loaded
    captioned.load_weights()
    assert captioned.generator.weights_loaded and captioned.text_encoder.weights_loaded

    external = GeneratedTextEncoder(ExternalEngine("external"), load_encoder("mm-feast/clip-shapes"))
    assert not external.weights_loaded
    external.load_weights()
    assert external.weights_loaded and not external.generator.weights_loaded


def test_a_generator_version_covers_its_settings_and_the_text_encoder():
    plain = get_generated_encoder(CAPTIONER, None, "mm-feast/clip-shapes")
    beams = get_generated_encoder(CAPTIONER, {"num_beams": 2}, "mm-feast/clip-shapes")
    other_encoder = get_generated_encoder(CAPTIONER, None, "sentence-transformers/all-MiniLM-L6-v2")
    assert len({plain.version, beams.version, other_encoder.version}) == 3
    assert beams.generator.describe()["decoding"]["num_beams"] == 2
    assert plain.space == plain.text_encoder.space  # captions are searched in the text encoder's space
    with pytest.raises(ValueError, match="unknown settings"):
        get_generator(CAPTIONER, {"temperature": 0.7})


def test_ocr_reads_text_rendered_into_an_image():
    from mm_feast.media.ocr import unavailable_reason

    if unavailable_reason():
        pytest.skip(f"OCR needs Tesseract: {unavailable_reason()}")
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.new("RGB", (360, 120), (250, 250, 245))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=30)
    draw.text((12, 14), "INVOICE 4471", fill=(10, 10, 10), font=font)
    draw.text((12, 64), "paid in full", fill=(10, 10, 10), font=font)
    [text] = get_generator("tesseract").generate("image", [np.asarray(picture)])
    assert text.split() == ["INVOICE", "4471", "paid", "in", "full"]
    assert get_generator("tesseract").describe()["engine_version"].startswith("tesseract ")


def test_a_generator_refuses_a_modality_it_cannot_read():
    with pytest.raises(ValueError, match="reads image, video, not audio"):
        get_generator(CAPTIONER).generate("audio", [np.zeros(16000, dtype=np.float32)])


def test_a_transcript_vocabulary_is_checked_against_the_dictionary_and_is_part_of_the_version():
    general = get_generator("pocketsphinx")
    domain = get_generator("pocketsphinx", {"vocabulary": ["Open", "the", "door", "door"]})
    assert domain.settings["vocabulary"] == ["door", "open", "the"]  # one canonical form
    assert general.version != domain.version
    assert get_generator("pocketsphinx", {"vocabulary": ["the", "open", "door"]}).version == domain.version
    with pytest.raises(ValueError, match=r"not in PocketSphinx's en-US dictionary: \['qzxv'\]"):
        get_generator("pocketsphinx", {"vocabulary": ["open", "qzxv"]})
    with pytest.raises(ValueError, match="must be a non-empty list of words"):
        get_generator("pocketsphinx", {"vocabulary": "open the door"})
    with pytest.raises(ValueError, match="not single words"):
        get_generator("pocketsphinx", {"vocabulary": ["open door"]})
