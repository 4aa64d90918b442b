"""Content filter for audio, at the file's own sample rate (before any resampling): energy above
about 17 kHz (near-ultrasonic carriers a person cannot hear but a microphone and a model can
pick up), near-silent windows that are one strong tone (a modulated carrier), and clipping.

Findings locate 1 s windows; a video's soundtrack goes through the same checks."""

from __future__ import annotations

import numpy as np

from mm_feast.governance.thresholds import AudioThresholds
from mm_feast.governance.verdict import Finding
from mm_feast.media.audio import load_audio_native
from mm_feast.media.file import MediaFile

WINDOW_S = 1.0


def _windows(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    step = max(1, int(rate * WINDOW_S))
    return [(start, min(start + step, samples.size)) for start in range(0, samples.size, step)
            if min(start + step, samples.size) - start >= step // 4 or start == 0]


def _where(prefix: str, start: int, end: int, rate: int) -> str:
    return f"{prefix}t={start / rate:.2f}-{end / rate:.2f}s"


def check_samples(samples: np.ndarray, rate: int, thresholds: AudioThresholds, prefix: str = "") -> list[Finding]:
    findings: list[Finding] = []
    worst_ultrasonic: tuple[float, int, int] = (0.0, 0, 0)
    for start, end in _windows(samples, rate):
        window = samples[start:end].astype(np.float64)
        if window.size < 64:
            continue
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
                worst_ultrasonic = (share, start, end)
        rms = float(np.sqrt(np.mean(window ** 2)))
        if 1e-5 < rms < thresholds.quiet_rms:
            prominence = float(spectrum[1:].max() / max(np.median(spectrum[1:]), 1e-30))
            if prominence >= thresholds.carrier_prominence:
                peak_hz = float(freqs[1 + int(np.argmax(spectrum[1:]))])
                level = thresholds.near_silent_carrier.level(1.0)
                findings.append(Finding("near_silent_carrier", _where(prefix, start, end, rate), round(prominence, 1), level,
                                        f"near-silent window ({20 * np.log10(rms):.0f} dBFS) carrying one strong tone at {peak_hz:.0f} Hz"))
    share, start, end = worst_ultrasonic
    if share > 0:
        level = thresholds.ultrasonic_energy.level(share)
        if level != "allow":
            findings.append(Finding("ultrasonic_energy", _where(prefix, start, end, rate), round(share, 4), level,
                                    f"{share:.0%} of the energy is above {thresholds.cutoff_hz / 1000:.0f} kHz (inaudible to most listeners)"))
    clipped = np.abs(samples) >= 0.999
    share = float(clipped.mean()) if samples.size else 0.0
    level = thresholds.clipping.level(share)
    if level != "allow":
        first = int(np.argmax(clipped))
        step = max(1, int(rate * WINDOW_S))
        start = first - first % step
        findings.append(Finding("clipping", _where(prefix, start, min(start + step, samples.size), rate), round(share, 5), level,
                                f"{share:.2%} of the samples are at full scale (clipped)"))
    return findings


def check_audio(file: MediaFile, thresholds: AudioThresholds, prefix: str = "") -> list[Finding]:
    samples, rate = load_audio_native(file)
    return check_samples(samples, rate, thresholds, prefix)
