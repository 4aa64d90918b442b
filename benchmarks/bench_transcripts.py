"""Word error rate of the transcript generator (PocketSphinx, bundled en-US model) on espeak-ng
speech with a known transcript (``mm_feast.synthetic_speech``): the general language model
against the same decoder held to a domain vocabulary, per voice, with key-word recall and the
real-time factor.

    python -m benchmarks.bench_transcripts

The audio goes through the pipeline's own decoder (``media.audio.load_audio``, resampled to the
recogniser's 16 kHz), as a transcript view would read it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import word_error_rate
from mm_feast.generators import get_generator
from mm_feast.media.audio import load_audio
from mm_feast.synthetic_speech import SPEECH_VOCABULARY, UTTERANCES, speech_unavailable_reason, write_speech

VOICES = ("en-us", "en-us+f3", "en-us+m3")
WORDS_PER_MINUTE = (140, 120)


def main() -> None:
    reason = speech_unavailable_reason()
    if reason:
        raise SystemExit(f"bench_transcripts: {reason}")
    root = Path(tempfile.mkdtemp(prefix="mm-feast-bench-asr-"))
    decoders = {"general LM": get_generator("pocketsphinx"),
                f"vocabulary ({len(SPEECH_VOCABULARY)} words)": get_generator("pocketsphinx", {"vocabulary": list(SPEECH_VOCABULARY)})}
    references = [u.text for u in UTTERANCES]
    keys = sum(len(u.key_words) for u in UTTERANCES)
    print(f"{len(UTTERANCES)} utterances, {sum(len(r.split()) for r in references)} words\n")
    print("| voice | words/min | decoder | WER | key words found | real-time factor |")
    print("|---|---:|---|---:|---:|---:|")
    examples: dict[str, list[str]] = {}
    for voice in VOICES:
        for wpm in WORDS_PER_MINUTE:
            audio = []
            for i, utterance in enumerate(UTTERANCES):
                path = write_speech(root / f"{voice}_{wpm}_{i}.wav", utterance.text, voice, wpm)
                audio.append(load_audio(path, 16000))
            seconds = sum(len(a) for a in audio) / 16000
            for name, generator in decoders.items():
                start = time.perf_counter()
                hypotheses = generator.generate("audio", audio)
                elapsed = time.perf_counter() - start
                found = sum(w in h.split() for u, h in zip(UTTERANCES, hypotheses) for w in u.key_words)
                print(f"| {voice} | {wpm} | {name} | {word_error_rate(references, hypotheses):.2f} | {found}/{keys} | {elapsed / seconds:.2f} |")
                if voice == "en-us+f3" and wpm == 140:
                    examples[name] = hypotheses
    print("\nen-us+f3 at 140 words/min:\n\n| utterance | " + " | ".join(examples) + " |\n|---|" + "---|" * len(examples))
    for i, reference in enumerate(references):
        print(f"| {reference} | " + " | ".join(examples[name][i] for name in examples) + " |")


if __name__ == "__main__":
    main()
