"""Spectral features on the F0 frame grid: centroid, flatness and harmonic ratio.

Frames: frame i is centred on sample ``round(i * sample_rate / frame_rate)`` of the signal zero-padded by
``n_fft // 2`` on each side, Hann window of ``n_fft`` samples (default: the power of two nearest 93 ms, 4096 at
44.1 kHz, 2048 at 22.05 and 16 kHz), ``n_frames = n_samples * frame_rate // sample_rate`` as everywhere.
Power spectra ``P (n_frames, n_fft // 2 + 1)`` with bin frequencies ``k * sample_rate / n_fft``.
"""

from __future__ import annotations

import math

import numpy as np

from ddsp_demucs.features.pitch import as_mono, n_frames_for

FLATNESS_AMIN = 1e-10  # floor on power in the flatness (as librosa)
_CHUNK = 512  # frames per FFT batch (bounds memory on long tracks)


def default_n_fft(sample_rate: int) -> int:
    """The power of two nearest 93 ms at ``sample_rate``."""
    return 2 ** int(round(math.log2(0.0929 * sample_rate)))


def power_spectra(audio: np.ndarray, sample_rate: int, *, frame_rate: int = 250, n_fft: int | None = None):
    """Yield ``(first_frame, power (chunk, n_fft // 2 + 1) float64)`` over the frame grid, in order.

    ``audio`` is ``(n_samples,)`` or ``(n_samples, n_channels)`` (averaged); see the module doc for the grid.
    """
    audio = as_mono(audio).astype(np.float64)
    n_fft = n_fft or default_n_fft(sample_rate)
    n_frames = n_frames_for(audio.shape[0], sample_rate, frame_rate)
    padded = np.pad(audio, (n_fft // 2, n_fft // 2))
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    starts = np.rint(np.arange(n_frames) * sample_rate / frame_rate).astype(np.int64)
    offsets = np.arange(n_fft)
    for first in range(0, n_frames, _CHUNK):
        frames = padded[starts[first : first + _CHUNK, None] + offsets[None, :]] * window
        yield first, np.abs(np.fft.rfft(frames, axis=1)) ** 2


def spectral_centroid(power: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Magnitude-weighted mean frequency (Hz): ``sum(f * |X|) / sum(|X|)``; ``(n_frames, n_bins)`` -> ``(n_frames,)``.

    0 for an all-zero frame.
    """
    mag = np.sqrt(power)
    total = mag.sum(axis=-1)
    return np.where(total > 0, (mag * freqs).sum(axis=-1) / np.where(total > 0, total, 1.0), 0.0)


def spectral_flatness(power: np.ndarray) -> np.ndarray:
    """Geometric over arithmetic mean of the power spectrum (floored at 1e-10), in (0, 1]; ``-> (n_frames,)``.

    About 0.56 (``exp(-euler_gamma)``) for white noise, near 0 for a pure tone, 1 for an all-zero frame.
    """
    p = np.maximum(power, FLATNESS_AMIN)
    return np.exp(np.log(p).mean(axis=-1)) / p.mean(axis=-1)


def harmonic_ratio(power: np.ndarray, freqs: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
    """Fraction of a frame's power lying near the harmonics of its F0, in [0, 1]; ``-> (n_frames,)``.

    A bin counts as harmonic when it is within ``w = min(2 bin widths, f0 / 4)`` Hz of some ``k * f0``
    (k >= 1, up to Nyquist): 2 bins is the main lobe of the Hann window, f0 / 4 keeps the bands of neighbouring
    harmonics apart for low voices. 0 where ``f0_hz`` is 0 (unvoiced) or the frame is all zeros.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)[:, None]
    bin_width = freqs[1] - freqs[0]
    width = np.minimum(2.0 * bin_width, f0 / 4.0)
    safe_f0 = np.where(f0 > 0, f0, 1.0)
    k = np.maximum(np.rint(freqs[None, :] / safe_f0), 1.0)
    near = (np.abs(freqs[None, :] - k * safe_f0) <= width) & (f0 > 0)
    total = power.sum(axis=-1)
    harmonic = np.where(near, power, 0.0).sum(axis=-1)
    return np.where(total > 0, harmonic / np.where(total > 0, total, 1.0), 0.0)


def spectral_features(
    audio: np.ndarray, sample_rate: int, f0_hz: np.ndarray, *, frame_rate: int = 250, n_fft: int | None = None
) -> dict[str, np.ndarray]:
    """Centroid (Hz), flatness and harmonic ratio of ``audio`` on the frame grid, float32 ``(n_frames,)`` each.

    ``f0_hz (n_frames,)`` (0 where unvoiced) locates the harmonics; it must have ``n_samples * frame_rate //
    sample_rate`` frames, as :func:`ddsp_demucs.features.extract_f0` gives.
    """
    n_fft = n_fft or default_n_fft(sample_rate)
    n_frames = n_frames_for(np.asarray(audio).shape[0], sample_rate, frame_rate)
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    if f0_hz.shape != (n_frames,):
        raise ValueError(f"f0_hz has shape {f0_hz.shape}, expected ({n_frames},) frames for this audio")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    out = {name: np.zeros(n_frames, dtype=np.float32) for name in ("centroid_hz", "flatness", "harmonic_ratio")}
    for first, power in power_spectra(audio, sample_rate, frame_rate=frame_rate, n_fft=n_fft):
        sl = slice(first, first + power.shape[0])
        out["centroid_hz"][sl] = spectral_centroid(power, freqs)
        out["flatness"][sl] = spectral_flatness(power)
        out["harmonic_ratio"][sl] = harmonic_ratio(power, freqs, f0_hz[sl])
    return out
