"""A non-learned F0-guided harmonic comb post-filter: the baseline a user can pick instead of a trained model.

Each channel is taken to the STFT domain (Hann window, centred frames, zero padding at the edges), and in every
voiced STFT frame the magnitude is multiplied by a real mask that passes the harmonics ``k * f0`` and lowers
everything between them to ``floor`` (phase kept); the result is inverted back to the exact input length.

Mask of a voiced frame, at bin frequency ``f`` (Hz)::

    m(f) = min(1, floor + (1 - floor) * sum_k exp(-0.5 * ((f - k f0) / sigma_k) ** 2))   for f <  max_harmonic_hz
    m(f) = 1                                                                            for f >= max_harmonic_hz

over the harmonics ``k >= 1`` with ``k * f0 < max_harmonic_hz``. ``sigma_k`` comes from ``bandwidth_cents``, the
full width at half maximum of each harmonic's Gaussian in cents around ``k * f0``::

    sigma_k = max(k f0 (2 ** (c / 2400) - 2 ** (-c / 2400)) / (2 sqrt(2 ln 2)),  2 * sample_rate / n_fft)

The second term, the half width of the Hann window's main lobe (2 bins), keeps a steady harmonic's own main lobe
inside its Gaussian for low harmonics, where ``bandwidth_cents`` alone would be narrower than one bin. Unvoiced
frames get ``m = 1``: consonants, breaths and silences pass unchanged. Because ``m <= 1`` everywhere the filter
never adds energy in the STFT domain.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ddsp_demucs.features import extract_f0

__all__ = ["harmonic_comb_filter", "comb_refine", "frame_f0"]


def frame_f0(f0_hz: np.ndarray, frame_rate: float, times_s: np.ndarray) -> np.ndarray:
    """F0 at arbitrary times from a frame track.

    Args:
        f0_hz: ``(n_frames,)`` Hz, 0 where unvoiced; frame ``j`` is at ``j / frame_rate`` s.
        frame_rate: frames per second (> 0).
        times_s: ``(n_times,)`` seconds.

    Returns:
        ``(n_times,)`` float64 Hz. A time is unvoiced (0) when the nearest frame (clamped to the track) is
        unvoiced; otherwise F0 is interpolated linearly in log-frequency between the two frames around it when
        both are voiced, or taken from the nearest frame. An empty track gives 0 everywhere.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    if f0.size == 0:
        return np.zeros(times.shape)
    pos = np.clip(times * frame_rate, 0.0, f0.size - 1)
    left = np.floor(pos).astype(int)
    right = np.minimum(left + 1, f0.size - 1)
    frac = pos - left
    nearest = np.where(frac <= 0.5, left, right)
    out = f0[nearest].copy()
    both = (f0[left] > 0) & (f0[right] > 0) & (out > 0)
    log_l = np.log(np.where(both, f0[left], 1.0))
    log_r = np.log(np.where(both, f0[right], 1.0))
    return np.where(both, np.exp(log_l + frac * (log_r - log_l)), out)


def _comb_mask(
    freqs_hz: np.ndarray,
    f0_hz: np.ndarray,
    *,
    bandwidth_cents: float,
    floor: float,
    max_harmonic_hz: float,
    min_sigma_hz: float,
) -> np.ndarray:
    """Magnitude mask ``(n_bins, n_stft_frames)`` in [floor, 1] for bin frequencies ``(n_bins,)`` Hz and per-frame
    F0 ``(n_stft_frames,)`` Hz (0 = unvoiced, mask 1). See the module docstring for the formula."""
    mask = np.ones((freqs_hz.size, f0_hz.size))
    half = bandwidth_cents / 2400.0  # half the width, in octaves
    sigma_ratio = (2.0**half - 2.0**-half) / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # FWHM -> std, relative to k f0
    below = freqs_hz < max_harmonic_hz
    for j in np.flatnonzero(f0_hz > 0):
        f0 = f0_hz[j]
        harmonics = f0 * np.arange(1, int(math.ceil(max_harmonic_hz / f0)) + 1)
        harmonics = harmonics[harmonics < max_harmonic_hz]
        sigma = np.maximum(harmonics * sigma_ratio, min_sigma_hz)
        bumps = np.exp(-0.5 * ((freqs_hz[below, None] - harmonics[None, :]) / sigma[None, :]) ** 2).sum(axis=1)
        mask[below, j] = np.minimum(1.0, floor + (1.0 - floor) * bumps)
    return mask


def harmonic_comb_filter(
    vocals: np.ndarray,
    sample_rate: int,
    f0_hz: np.ndarray,
    frame_rate: float,
    *,
    n_fft: int = 2048,
    hop: int = 512,
    bandwidth_cents: float = 50.0,
    floor: float = 0.3,
    max_harmonic_hz: float = 8000.0,
) -> np.ndarray:
    """Pass the harmonics of ``f0_hz`` and lower the spectrum between them to ``floor`` (module docstring).

    Args:
        vocals: ``(n_samples, n_channels)`` (or ``(n_samples,)``) float waveform at ``sample_rate``.
        sample_rate: Hz.
        f0_hz: ``(n_frames,)`` Hz, 0 where unvoiced; frame ``j`` at ``j / frame_rate`` s. The STFT frame centred at
            ``m * hop / sample_rate`` s takes its F0 from :func:`frame_f0` (voicing of the nearest frame).
        frame_rate: frames per second of ``f0_hz``.
        n_fft: STFT size in samples (Hann window of that length). hop: STFT hop in samples, ``1..n_fft // 2``.
        bandwidth_cents: full width at half maximum of each harmonic's Gaussian, in cents (> 0).
        floor: mask value far from any harmonic, in [0, 1] (0.3 is -10.5 dB).
        max_harmonic_hz: harmonics at or above this frequency are not placed, and bins at or above it pass (mask 1).

    Returns:
        float32 array of the same shape as ``vocals``, the exact input length.
    """
    x = np.asarray(vocals, dtype=np.float64)
    f0 = np.asarray(f0_hz, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[0] == 0 or (x.ndim == 2 and x.shape[1] == 0):
        raise ValueError(f"vocals must be (n_samples,) or (n_samples, n_channels), non-empty, got shape {x.shape}")
    if f0.ndim != 1:
        raise ValueError(f"f0_hz must be (n_frames,), got shape {f0.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f0))) or np.any(f0 < 0):
        raise ValueError("vocals and f0_hz must be finite and f0_hz >= 0 (0 = unvoiced)")
    if sample_rate <= 0 or frame_rate <= 0 or n_fft < 2 or not 0 < hop <= n_fft // 2:
        raise ValueError(
            f"need sample_rate, frame_rate > 0, n_fft >= 2 and 0 < hop <= n_fft // 2; got "
            f"{sample_rate}, {frame_rate}, {n_fft}, {hop}"
        )
    if not (0.0 <= floor <= 1.0) or bandwidth_cents <= 0 or max_harmonic_hz <= 0:
        raise ValueError(
            f"need 0 <= floor <= 1, bandwidth_cents > 0, max_harmonic_hz > 0; got "
            f"{floor}, {bandwidth_cents}, {max_harmonic_hz}"
        )

    channels = torch.from_numpy(np.ascontiguousarray(x.reshape(x.shape[0], -1).T))  # (n_channels, n_samples)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(channels, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    frame_times = np.arange(spec.shape[-1]) * hop / sample_rate
    freqs = np.arange(spec.shape[-2]) * sample_rate / n_fft
    mask = _comb_mask(
        freqs,
        frame_f0(f0, frame_rate, frame_times),
        bandwidth_cents=bandwidth_cents,
        floor=floor,
        max_harmonic_hz=max_harmonic_hz,
        min_sigma_hz=2.0 * sample_rate / n_fft,
    )
    out = torch.istft(spec * torch.from_numpy(mask), n_fft, hop, window=window, center=True, length=x.shape[0])
    return out.numpy().T.reshape(x.shape).astype(np.float32)


def comb_refine(
    vocals: np.ndarray,
    sample_rate: int,
    *,
    f0_method: str | None = None,
    voicing_threshold: float = 0.5,
    frame_rate: int = 100,
    n_fft: int = 2048,
    hop: int = 512,
    bandwidth_cents: float = 50.0,
    floor: float = 0.3,
    max_harmonic_hz: float = 8000.0,
    f0_reference: np.ndarray | None = None,
    mixture: np.ndarray | None = None,
) -> np.ndarray:
    """The comb baseline as a system: track F0 on the channel mean, then :func:`harmonic_comb_filter`.

    Args:
        vocals: ``(n_samples, n_channels)`` (or ``(n_samples,)``) float waveform at ``sample_rate`` Hz.
        f0_method, voicing_threshold, frame_rate: passed to :func:`ddsp_demucs.features.extract_f0` as ``method``,
            ``voicing_threshold`` and ``frame_rate`` (frames per second).
        n_fft, hop, bandwidth_cents, floor, max_harmonic_hz: as in :func:`harmonic_comb_filter`.
        f0_reference: a signal shaped like ``vocals`` to track F0 on instead (the oracle-F0 diagnosis passes
            the true vocal).
        mixture: the song ``vocals`` was separated from (same number of samples), for a tracker that reads it
            (``crepe-mixture``); not used with ``f0_reference``.

    Returns:
        float32 array of the same shape as ``vocals``.
    """
    x = np.asarray(vocals, dtype=np.float64)
    tracked = x if f0_reference is None else np.asarray(f0_reference, dtype=np.float64)
    if tracked.shape[0] != x.shape[0]:
        raise ValueError(f"f0_reference has {tracked.shape[0]} samples, vocals {x.shape[0]}")
    mono = tracked.mean(axis=1) if tracked.ndim == 2 else tracked
    song = mixture if f0_reference is None else None  # extract_f0 reads it only for a tracker that does
    f0_hz, _ = extract_f0(
        mono, sample_rate, frame_rate=frame_rate, method=f0_method, voicing_threshold=voicing_threshold, mixture=song
    )
    return harmonic_comb_filter(
        x,
        sample_rate,
        f0_hz,
        frame_rate,
        n_fft=n_fft,
        hop=hop,
        bandwidth_cents=bandwidth_cents,
        floor=floor,
        max_harmonic_hz=max_harmonic_hz,
    )
