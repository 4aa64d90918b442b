"""Content filter for audio, at the file's own sample rate (before any resampling): energy above
about 17 kHz (near-ultrasonic carriers a person cannot hear but a microphone and a model can
pick up), near-silent windows that are one strong tone (a modulated carrier), and clipping.

Findings locate 1 s windows; a video's soundtrack goes through the same checks."""

from __future__ import annotations

import numpy as np

from mm_feast.governance.thresholds import AudioThresholds
from mm_feast.governance.verdict import Finding
from mm_feast.media import AudioWindowing, SegmentationConfig, iter_segments
from mm_feast.media.audio import native_sample_rate
from mm_feast.media.file import MediaFile

WINDOW_S = 1.0


def _where(prefix: str, start_s: float, end_s: float) -> str:
    return f"{prefix}t={start_s:.2f}-{end_s:.2f}s"


def check_audio(file: MediaFile, thresholds: AudioThresholds, prefix: str = "") -> list[Finding]:
    """Every audio finding, window by window while decoding at the file's own rate: memory holds
    one window, not the soundtrack (an hour at 48 kHz would be 690 MB as float32)."""
    rate = native_sample_rate(file)
    windowing = AudioWindowing(window_s=WINDOW_S, hop_s=WINDOW_S, sample_rate=rate, min_last_fraction=0.0)
    findings: list[Finding] = []
    worst_ultrasonic = (0.0, 0.0, 0.0)
    clipped_total, samples_total = 0, 0
    first_clipped: tuple[float, float] | None = None
    for segment in iter_segments(file, "audio", SegmentationConfig(audio_windowing=windowing)):
        window = np.asarray(segment.data, dtype=np.float64)
        start_s, end_s = float(segment.locator.start_s or 0.0), float(segment.locator.end_s or 0.0)
        clipped = int((np.abs(window) >= 0.999).sum())
        clipped_total, samples_total = clipped_total + clipped, samples_total + window.size
        if clipped and first_clipped is None:
            first_clipped = (start_s, end_s)
        if window.size < 64 or (start_s > 0 and window.size < rate * WINDOW_S / 4):
            continue  # a short tail's spectrum says little; its samples still count for clipping
        spectrum = np.abs(np.fft.rfft(window * np.hanning(window.size))) ** 2
        total = float(spectrum.sum())
        if total <= 1e-12:
            continue  # digital silence
        freqs = np.fft.rfftfreq(window.size, 1.0 / rate)
        if rate / 2 > thresholds.cutoff_hz:
            # Only narrowband energy counts: power above ten times the band's own median. Hiss and
            # broadband noise fill the band evenly and stay below; a carrier is a sharp peak.
            band = spectrum[freqs >= thresholds.cutoff_hz]
            share = float(np.clip(band - 10.0 * np.median(band), 0, None).sum() / total)
            if share > worst_ultrasonic[0]:
                worst_ultrasonic = (share, start_s, end_s)
        rms = float(np.sqrt(np.mean(window ** 2)))
        if 1e-5 < rms < thresholds.quiet_rms:
            prominence = float(spectrum[1:].max() / max(np.median(spectrum[1:]), 1e-30))
            if prominence >= thresholds.carrier_prominence:
                peak_hz = float(freqs[1 + int(np.argmax(spectrum[1:]))])
                level = thresholds.near_silent_carrier.level(1.0)
                findings.append(Finding("near_silent_carrier", _where(prefix, start_s, end_s), round(prominence, 1), level,
                                        f"near-silent window ({20 * np.log10(rms):.0f} dBFS) carrying one strong tone at {peak_hz:.0f} Hz"))
    share, start_s, end_s = worst_ultrasonic
    level = thresholds.ultrasonic_energy.level(share)
    if share > 0 and level != "allow":
        findings.append(Finding("ultrasonic_energy", _where(prefix, start_s, end_s), round(share, 4), level,
                                f"{share:.0%} of the energy is above {thresholds.cutoff_hz / 1000:.0f} kHz (inaudible to most listeners)"))
    share = clipped_total / samples_total if samples_total else 0.0
    level = thresholds.clipping.level(share)
    if level != "allow" and first_clipped is not None:
        findings.append(Finding("clipping", _where(prefix, *first_clipped), round(share, 5), level,
                                f"{share:.2%} of the samples are at full scale (clipped)"))
    return findings
