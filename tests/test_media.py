"""Tests for mm_feast.media on real files generated into tmp_path (no mocks)."""

from __future__ import annotations

import struct
import wave
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mm_feast.media import (
    AudioWindowing,
    FrameSampling,
    MediaError,
    SegmentationConfig,
    detect_modality,
    load_audio,
    load_image,
    segment_audio,
    segment_file,
    segment_image,
    segment_text,
    segment_video,
    sha256_file,
    video_duration,
)

# --------------------------------------------------------------------------- helpers


def write_video(path: Path, times_ms: list[int], codec: str = "libx264",
                keyframe_idx: tuple[int, ...] = ()) -> None:
    """Encode tiny frames at exact presentation times (ms); optionally force keyframes."""
    tb = Fraction(1, 1000)
    options = {"x264-params": "scenecut=0", "g": "1000"} if codec == "libx264" else {}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10, options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), (i * 23) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, tb
            if i in keyframe_idx:
                frame.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_audio_only_mp4(path: Path) -> None:
    """An .mp4 holding one 16 kHz mono AAC stream and no video stream (0.5 s of silence)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_wav(path: Path, rate: int, channels: int, seconds: float,
              channel_values: list[int] | None = None) -> None:
    """16-bit PCM WAV; each channel holds a constant (to check the downmix) if given."""
    n = int(round(rate * seconds))
    values = channel_values or [1000 * (c + 1) for c in range(channels)]
    data = np.tile(np.array(values, dtype="<i2"), n)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


def starts(segments) -> list[float]:
    return [s.locator.start_s for s in segments]


# ---------------------------------------------------------------------------- images


def test_image_modes_to_rgb(tmp_path: Path) -> None:
    # palette with a transparent index -> white
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    arr = load_image(tmp_path / "pal.png")
    assert arr.dtype == np.uint8 and arr.shape == (4, 4, 3)
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[1, 1]) == (0, 0, 255)

    # RGBA: half-transparent red composited on white
    Image.new("RGBA", (3, 2), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    arr = load_image(tmp_path / "rgba.png")
    assert arr.shape == (2, 3, 3)
    assert arr[0, 0, 0] == 255 and abs(int(arr[0, 0, 1]) - 127) <= 1

    # CMYK JPEG: pure cyan
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert tuple(load_image(tmp_path / "cmyk.jpg")[0, 0]) == (0, 255, 255)

    # 16-bit greyscale keeps its range (Pillow's convert would clip 0x8000 to 255)
    grey16 = np.array([[0, 0x8000, 0xFFFF, 0x00FF]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "i16.png")
    with Image.open(tmp_path / "i16.png") as im:
        assert im.mode == "I;16"
    arr = load_image(tmp_path / "i16.png")
    assert arr[0, :, 0].tolist() == [0, 128, 255, 0]
    assert (arr[..., 0] == arr[..., 2]).all()

    # L greyscale
    Image.new("L", (2, 2), 77).save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").tolist() == [[[77, 77, 77]] * 2] * 2


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (4, 2), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (4, 2, 3)


def test_truncated_jpeg_and_empty_file(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cannot decode image") as err:
        load_image(tmp_path / "cut.jpg")
    assert "cut.jpg" in str(err.value)

    (tmp_path / "zero.jpg").write_bytes(b"")
    for call in (lambda: load_image(tmp_path / "zero.jpg"),
                 lambda: segment_file(tmp_path / "zero.jpg")):
        with pytest.raises(MediaError, match="empty file"):
            call()


def test_png_named_jpg_is_image(tmp_path: Path) -> None:
    path = tmp_path / "liar.jpg"
    Image.new("RGB", (5, 3), (1, 2, 3)).save(path, format="PNG")
    assert detect_modality(path) == "image"
    segs = segment_file(path)
    assert len(segs) == 1
    loc = segs[0].locator
    assert loc.modality == "image" and loc.sha256 == sha256_file(path) and loc.uri == str(path)
    assert segs[0].data.shape == (3, 5, 3)


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries one tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    Image.new("RGB", (200, 200)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match="too large"):
        load_image(tmp_path / "big.png", max_pixels=1000)
    config = SegmentationConfig(max_pixels=1000)
    with pytest.raises(MediaError, match="too large"):
        segment_file(tmp_path / "big.png", config=config)
    assert segment_image(tmp_path / "big.png", max_pixels=40_000)[0].data.shape == (200, 200, 3)

    # Header-only bombs: refused from the header, before any pixel data is decoded.
    (tmp_path / "bomb60mp.png").write_bytes(_png_with_size(10_000, 6_000))  # our limit
    (tmp_path / "bomb400mp.png").write_bytes(_png_with_size(20_000, 20_000))  # Pillow's limit
    for name in ("bomb60mp.png", "bomb400mp.png"):
        with pytest.raises(MediaError, match="too large"):
            load_image(tmp_path / name)


# ----------------------------------------------------------------------------- video

CFR_MS = list(range(0, 2000, 100))  # 10 fps, 2 s
VFR_MS = [0, 100, 200, 500, 600, 1000, 1100, 1200, 2000, 2050, 3300]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video")
    paths = {
        "cfr_mp4": root / "cfr.mp4",
        "cfr_mpeg4_mkv": root / "cfr_mpeg4.mkv",
        "vfr_mp4": root / "vfr.mp4",
        "vfr_mkv": root / "vfr.mkv",
    }
    write_video(paths["cfr_mp4"], CFR_MS, keyframe_idx=(0, 7, 15))
    write_video(paths["cfr_mpeg4_mkv"], CFR_MS, codec="mpeg4")
    write_video(paths["vfr_mp4"], VFR_MS, keyframe_idx=(0, 4, 8))
    write_video(paths["vfr_mkv"], VFR_MS, keyframe_idx=(0, 4, 8))
    return paths


def _assert_times(segments, expected_ms: list[int]) -> None:
    assert starts(segments) == pytest.approx([ms / 1000 for ms in expected_ms], abs=1e-6)
    for seg, nxt in zip(segments, segments[1:]):
        assert seg.locator.end_s == nxt.locator.start_s
    assert segments[-1].locator.end_s > segments[-1].locator.start_s


@pytest.mark.parametrize("key", ["cfr_mp4", "cfr_mpeg4_mkv"])
def test_cfr_video_timestamps(videos, key: str) -> None:
    path = videos[key]
    segs = segment_video(path, FrameSampling("every_n_seconds", 0.5))
    _assert_times(segs, [0, 500, 1000, 1500])
    assert segs[-1].locator.end_s == pytest.approx(2.0, abs=1e-3)  # last frame 1.9 + 0.1
    assert segs[0].data.shape == (48, 64, 3) and segs[0].data.dtype == np.uint8
    assert all(s.locator.modality == "video" for s in segs)

    every_frame = segment_video(path, FrameSampling("fps", 10))
    _assert_times(every_frame, CFR_MS)
    # more samples than frames: each frame is used once, never duplicated
    _assert_times(segment_video(path, FrameSampling("fps", 30)), CFR_MS)
    _assert_times(segment_video(path, FrameSampling("fps", 3)),
                  [0, 400, 700, 1000, 1400, 1700])


@pytest.mark.parametrize("key", ["vfr_mp4", "vfr_mkv"])
def test_vfr_video_timestamps_follow_pts(videos, key: str) -> None:
    path = videos[key]
    # grid 0, .5, 1, 1.5 (gap -> 2.0), 2.5 (gap -> 3.3), 3.0 (same frame, not repeated)
    expected = [0, 500, 1000, 2000, 3300]
    _assert_times(segment_video(path, FrameSampling("every_n_seconds", 0.5)), expected)
    _assert_times(segment_video(path, FrameSampling("fps", 2)), expected)
    _assert_times(segment_video(path, FrameSampling("fps", 1000)), VFR_MS)

    # Frame content proves the right frame sits at each timestamp (frame i has value 23*i).
    segs = segment_video(path, FrameSampling("every_n_seconds", 1.0))
    _assert_times(segs, [0, 1000, 2000, 3300])
    for seg in segs:
        index = VFR_MS.index(round(seg.locator.start_s * 1000))
        assert abs(int(seg.data[24, 32, 1]) - (index * 23) % 256) <= 3

    dur = video_duration(path)
    assert 3.3 < dur <= 3.5
    assert segs[-1].locator.end_s == pytest.approx(dur)


@pytest.mark.parametrize("key, key_ms", [("vfr_mp4", [0, 600, 2000]),
                                         ("vfr_mkv", [0, 600, 2000]),
                                         ("cfr_mp4", [0, 700, 1500])])
def test_keyframes_mode(videos, key: str, key_ms: list[int]) -> None:
    path = videos[key]
    segs = segment_video(path, FrameSampling("keyframes", 0))
    _assert_times(segs, key_ms)
    assert all(s.extra["key_frame"] for s in segs)
    # ground truth from a full decode
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        truth = [float(f.pts * stream.time_base) for f in container.decode(stream) if f.key_frame]
    assert starts(segs) == pytest.approx(truth)


def test_audio_only_file_as_video(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    write_wav(wav, 8000, 1, 0.5)
    with pytest.raises(MediaError, match="no video stream"):
        segment_file(wav, modality="video")

    m4 = tmp_path / "audio_only.mp4"
    write_audio_only_mp4(m4)
    assert detect_modality(m4) == "video"  # by extension; the content says otherwise
    with pytest.raises(MediaError, match="no video stream") as err:
        segment_file(m4)
    assert "audio_only.mp4" in str(err.value)
    assert segment_file(m4, modality="audio")[0].sample_rate == 16000


def test_undecodable_video(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4)
    with pytest.raises(MediaError):
        segment_video(path)


# ----------------------------------------------------------------------------- audio


def test_audio_windows_8k_mono(tmp_path: Path) -> None:
    path = tmp_path / "phone.wav"
    write_wav(path, 8000, 1, 2.5, channel_values=[16384])
    segs = segment_audio(path, AudioWindowing(window_s=1.0, hop_s=1.0, sample_rate=16000))
    assert [(s.locator.start_s, s.locator.end_s) for s in segs] == [(0, 1), (1, 2), (2, 2.5)]
    assert [s.data.size for s in segs] == [16000, 16000, 8000]
    assert all(s.sample_rate == 16000 and s.data.dtype == np.float32 for s in segs)
    assert segs[1].data[8000] == pytest.approx(0.5, abs=1e-3)


def test_audio_windows_96k_six_channels(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    write_wav(path, 96000, 6, 2.5)  # channels hold 1000..6000 -> mean 3500
    audio = load_audio(path, 16000)
    assert audio.ndim == 1 and audio.size == 40000
    assert audio[20000] == pytest.approx(3500 / 32768, abs=1e-3)

    segs = segment_audio(path, AudioWindowing(window_s=1.0, hop_s=0.5, sample_rate=16000))
    assert [(s.locator.start_s, s.locator.end_s) for s in segs] == [
        (0, 1), (0.5, 1.5), (1, 2), (1.5, 2.5)]

    # trailing partial below min_last_fraction is dropped
    segs = segment_audio(path, AudioWindowing(window_s=2.0, hop_s=2.0, sample_rate=8000,
                                                   min_last_fraction=0.5))
    assert [(s.locator.start_s, s.locator.end_s) for s in segs] == [(0, 2)]
    assert segs[0].sample_rate == 8000 and segs[0].data.size == 16000


def test_short_audio_is_one_segment(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    write_wav(path, 16000, 1, 0.1)
    segs = segment_file(path)
    assert len(segs) == 1 and segs[0].locator.end_s == pytest.approx(0.1)


def test_zero_sample_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    assert path.stat().st_size > 0  # header only
    with pytest.raises(MediaError, match="zero-length audio"):
        segment_file(path)


# ------------------------------------------------------------------------------ text


def test_text_blocks_offsets_exact(tmp_path: Path) -> None:
    body = ("Title line\r\n\r\n"
            "First paragraph, line one.\nLine two with émoji 🎉 and 漢字.\n"
            "  \n\t\n\n"
            "   Indented third paragraph.   \n\n\n")
    path = tmp_path / "doc.txt"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    segs = segment_text(path)
    assert [s.data for s in segs] == [
        "Title line",
        "First paragraph, line one.\nLine two with émoji 🎉 and 漢字.",
        "Indented third paragraph.",
    ]
    for seg in segs:
        assert body[seg.locator.char_start:seg.locator.char_end] == seg.data
        assert seg.locator.modality == "text"


def test_text_long_paragraph_split(tmp_path: Path) -> None:
    sentences = " ".join(f"Sentence number {i} says something." for i in range(40))
    words = "x" * 250 + " " + "word " * 100
    body = sentences + "\n\n" + words.strip()
    path = tmp_path / "long.md"
    path.write_text(body, encoding="utf-8")
    segs = segment_file(path, config=SegmentationConfig(max_chars=200))
    assert len(segs) > 5
    for seg in segs:
        assert 0 < len(seg.data) <= 200
        assert body[seg.locator.char_start:seg.locator.char_end] == seg.data
        assert seg.data == seg.data.strip()
    # sentence-boundary splits in the prose paragraph
    prose = [s for s in segs if s.data.startswith("Sentence") or "says" in s.data]
    assert all(s.data.endswith(".") for s in prose)
    # nothing lost: all non-whitespace text is covered, in order
    assert "".join(s.data for s in segs).replace(" ", "") == body.replace(" ", "").replace("\n", "")


def test_text_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\u00e9 ok".encode("latin-1"))
    with pytest.raises(MediaError, match=r"not valid UTF-8 \(byte 0xe9 at offset 3\)") as err:
        segment_file(bad)
    assert err.value.path == str(bad) and "latin1.txt" in str(err.value)

    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n\t \n", encoding="utf-8")
    with pytest.raises(MediaError, match="empty") as err:
        segment_file(blank)
    assert "blank.txt" in str(err.value)

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file") as err:
        segment_text(empty)
    assert "empty.txt" in str(err.value)


# ------------------------------------------------------------------------- dispatch


def test_detect_modality_and_unsupported(tmp_path: Path) -> None:
    weird = tmp_path / "data.xyz"
    weird.write_bytes(b"some bytes")
    with pytest.raises(MediaError, match=r"unsupported file type '\.xyz'"):
        segment_file(weird)
    with pytest.raises(MediaError, match="no such file"):
        segment_file(tmp_path / "missing.png")

    wav = tmp_path / "sound.txt"  # a WAV with a lying extension
    write_wav(wav, 8000, 1, 0.2)
    assert detect_modality(wav) == "audio"
    (tmp_path / "notes.md").write_text("hello", encoding="utf-8")
    assert detect_modality(tmp_path / "notes.md") == "text"
    seg = segment_file(tmp_path / "notes.md", sha256=sha256_file(tmp_path / "notes.md"))[0]
    assert seg.locator.sha256 == sha256_file(tmp_path / "notes.md") and seg.data == "hello"
    with pytest.raises(MediaError, match="content changed"):  # the hash a caller holds must still be the file's
        segment_file(tmp_path / "notes.md", sha256="0" * 64)
