"""The modality registry (detect, probe, lazy segments, decode at a locator) and the read-once file
layer under it, on real files written into tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mm_feast import media
from mm_feast.media import (
    EXTENSIONS,
    MODALITIES,
    AudioWindowing,
    FrameSampling,
    MediaError,
    MediaFile,
    ReadCache,
    SegmentationConfig,
    decode_at,
    iter_segments,
    load_audio,
    probe_safely,
    segment_file,
    sha256_file,
)
from mm_feast.media import registry
from mm_feast.media.audio import window_bounds
from mm_feast.synthetic import render_shape, render_sound, write_video, write_wav

CONFIG = SegmentationConfig(FrameSampling("every_n_seconds", 0.5), AudioWindowing(1.0, 0.5, 16000), max_chars=40)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "image": tmp_path / "shape.png",
        "video": tmp_path / "clip.mp4",
        "audio": tmp_path / "tone.wav",
        "text": tmp_path / "notes.txt",
    }
    Image.fromarray(render_shape("green", "triangle", size=48)).save(out["image"])
    write_video(out["video"], [render_shape(c, "circle", size=48) for c in ["red", "blue", "green"] * 4], fps=6)
    write_wav(out["audio"], render_sound("rising_chirp", 2.3, 22050), 22050)
    out["text"].write_text("First paragraph, short.\n\nA second one that is long enough to be cut in two blocks.\n")
    return out


def test_every_modality_is_registered_with_its_own_extensions() -> None:
    assert set(registry.names()) == set(MODALITIES)
    assert {EXTENSIONS[e] for e in ("png", "mp4", "wav", "md")} == {"image", "video", "audio", "text"}
    for name in MODALITIES:
        assert all(EXTENSIONS[ext] == name for ext in registry.modality(name).extensions)
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        registry.modality("smell")


@pytest.mark.parametrize("modality", MODALITIES)
def test_decode_at_each_locator_gives_back_what_the_segmenter_gave(files: dict[str, Path], modality: str) -> None:
    segments = segment_file(files[modality], config=CONFIG)
    assert segments and all(s.locator.modality == modality for s in segments)
    assert all(s.locator.sha256 == sha256_file(files[modality]) for s in segments)
    for segment in segments:
        again = decode_at(segment.locator, CONFIG)
        if modality == "text":
            assert again == segment.data
        else:
            np.testing.assert_array_equal(np.asarray(again), np.asarray(segment.data))


def test_decode_at_refuses_a_file_whose_bytes_changed(files: dict[str, Path]) -> None:
    locator = segment_file(files["text"], config=CONFIG)[0].locator
    files["text"].write_text("Someone edited this file.\n")
    with pytest.raises(MediaError, match="content changed since ingestion"):
        decode_at(locator, CONFIG)
    files["text"].unlink()
    with pytest.raises(MediaError, match="no longer exists"):
        decode_at(locator, CONFIG)


def test_probe_reads_headers_for_every_modality(files: dict[str, Path]) -> None:
    image, video, audio, text = (probe_safely(files[m], m) for m in ("image", "video", "audio", "text"))
    assert (image.error, image.facts.width, image.facts.format, image.actual_modality) == ("", 48.0, "png", "image")
    assert video.facts.video_streams == 1 and video.facts.duration_s == pytest.approx(2.0, abs=0.01)
    assert video.facts.frame_interval_cv == pytest.approx(0.0, abs=1e-6)
    assert (audio.facts.sample_rate, audio.facts.channels) == (22050.0, 1.0)
    assert audio.facts.duration_s == pytest.approx(2.3, abs=0.01) and audio.facts.duration_mismatch < 0.01
    assert (text.facts.encoding, text.facts.chars) == ("utf-8", float(len(files["text"].read_text().strip())))
    assert "no video stream" in segment_error(files["audio"], "video")
    broken = probe_safely(files["text"], "image")
    assert broken.error.startswith("cannot decode image header") and broken.actual_modality == "text"


def segment_error(path: Path, modality: str) -> str:
    with pytest.raises(MediaError) as info:
        segment_file(path, modality=modality)
    return info.value.reason


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.1, 2.0, 2.3, 2.6, 3.17])
@pytest.mark.parametrize("window_s,hop_s", [(1.0, 1.0), (1.0, 0.5), (0.5, 1.0)])
def test_streamed_audio_windows_match_the_window_arithmetic(tmp_path: Path, seconds: float, window_s: float, hop_s: float) -> None:
    """Windows are cut while decoding; they must be exactly the windows of the whole signal."""
    path = tmp_path / "a.wav"
    write_wav(path, render_sound("noise_burst", seconds, 16000), 16000)
    windowing = AudioWindowing(window_s, hop_s, 16000)
    whole = load_audio(path, 16000)
    segments = list(iter_segments(path, "audio", SegmentationConfig(audio_windowing=windowing)))
    expected = window_bounds(whole.size, windowing)
    assert [(round(s.locator.start_s * 16000), round(s.locator.end_s * 16000)) for s in segments] == expected
    for segment, (start, end) in zip(segments, expected):
        np.testing.assert_array_equal(segment.data, whole[start:end])


def test_segments_are_lazy_a_consumer_can_stop_after_the_first(files: dict[str, Path]) -> None:
    frames = iter_segments(files["video"], "video", CONFIG)
    first = next(frames)
    assert first.locator.start_s == 0.0 and first.locator.end_s == pytest.approx(0.5)
    frames.close()  # the container is closed without decoding the rest


def test_a_file_is_read_once_and_served_from_memory_until_it_changes(files: dict[str, Path]) -> None:
    cache = ReadCache()
    path = files["image"]
    first = cache.read(path)
    assert first.data == path.read_bytes() and first.sha256 == sha256_file(path)
    assert media.detect(first) == "image"
    probe_safely(first, "image")
    segment_file(first, modality="image")
    assert cache.read(path) is first and cache.reads == 1
    Image.fromarray(render_shape("blue", "square", size=48)).save(path)  # an edit: new stamp
    second = cache.read(path)
    assert cache.reads == 2 and second.sha256 != first.sha256
    with pytest.raises(MediaError, match="content changed"):
        segment_file(second, modality="image", sha256=first.sha256)


def test_the_cache_keeps_within_its_budget(tmp_path: Path) -> None:
    paths = []
    for name in "abc":
        paths.append(tmp_path / f"{name}.txt")
        paths[-1].write_text(name * 100)
    cache = ReadCache(budget=250)
    for path in paths:  # the third read (300 bytes held) pushes the oldest out
        cache.read(path)
    cache.read(paths[1]), cache.read(paths[2])
    assert cache.reads == 3
    cache.read(paths[0])
    assert cache.reads == 4


def test_a_file_bigger_than_the_memory_limit_is_streamed_from_disk(files: dict[str, Path]) -> None:
    big = MediaFile.read(files["video"], in_memory_limit=1024)
    assert big.data is None and big.sha256 == sha256_file(files["video"]) and big.head[4:8] == b"ftyp"
    assert len(segment_file(big, config=CONFIG)) == len(segment_file(files["video"], config=CONFIG))


def test_missing_and_empty_files_have_clear_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert MediaFile.read(empty).sha256 == sha256_file(empty)  # it has a hash: the gate reports it
    assert probe_safely(empty, "image").error == "empty file"
    assert segment_error(empty, "image") == "empty file"
    assert segment_error(tmp_path / "nope.wav", "audio") == "no such file"
    os.mkfifo(tmp_path / "pipe")
    assert segment_error(tmp_path / "pipe", "audio") == "not a regular file"
