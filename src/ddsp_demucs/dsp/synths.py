"""Synthesisers: a harmonic oscillator bank and time-varying filtered noise.

Both take frame controls and follow the frame convention of :mod:`ddsp_demucs.dsp.core` (frame ``j`` at sample
``j * hop_length``, linear interpolation between frames, edge frames held).
"""

from __future__ import annotations

import math

import torch

from ddsp_demucs.dsp.core import (
    check_nonnegative,
    check_positive,
    check_tensor,
    fft_convolve,
    interpolation_weights,
    resolve_hop,
    upsample,
)

__all__ = ["harmonic_synth", "filtered_noise", "noise_impulse_responses"]

TWO_PI = 2.0 * math.pi
_CHUNK_ELEMENTS = 1 << 20  # (batch x samples x harmonics) elements per chunk: a few MiB, cache friendly


# ---------------------------------------------------------------------------------------------- harmonic
def harmonic_synth(
    f0_hz: torch.Tensor,
    amplitudes: torch.Tensor,
    harmonic_distribution: torch.Tensor,
    *,
    sample_rate: float,
    n_samples: int,
    initial_phase: torch.Tensor | None = None,
    hop_length: float | None = None,
) -> torch.Tensor:
    """Additive synthesis of a harmonic sound from frame controls.

    ``y[n] = sum_k m_k[n] A_k[n] sin(k * phi[n])`` with, per sample ``n`` and harmonic ``k = 1..n_harmonics``:

    - ``A_k``: the frame values ``amplitudes * harmonic_distribution[..., k-1]`` (used as given, no
      normalisation) upsampled by linear interpolation (frame ``j`` at sample ``j * hop_length``, edge frames held;
      see :mod:`ddsp_demucs.dsp.core`);
    - ``phi[n] = initial_phase + sum_{i<=n} 2 pi f0[i] / sample_rate``, the inclusive cumulative phase of the
      fundamental (so harmonic ``k`` has phase ``k * 2 pi f0[0] / sample_rate`` at sample 0), with ``f0`` the
      linearly upsampled ``f0_hz``. It is accumulated in float64 and wrapped to ``[0, 2 pi)`` before the cast to the
      working dtype, so it does not drift however long the signal;
    - ``m_k[n] = 1`` if ``k * f0[n] < sample_rate / 2`` else 0: harmonics at or above Nyquist contribute nothing.

    Args:
        f0_hz: ``(..., n_frames)`` fundamental frequency in Hz, 0 where unvoiced (>= 0).
        amplitudes: ``(..., n_frames)`` linear amplitude, >= 0.
        harmonic_distribution: ``(..., n_frames, n_harmonics)`` per-harmonic linear gains, >= 0.
        sample_rate: output sample rate in Hz (> 0).
        n_samples: output length in samples (> 0).
        initial_phase: optional ``(...)`` phase of the fundamental in radians before sample 0 (default 0);
            harmonic ``k`` starts from ``k * initial_phase``.
        hop_length: samples between frames; default ``n_samples / n_frames``.

    Returns:
        ``(..., n_samples)`` audio in the dtype of ``amplitudes`` (float32 by default). Differentiable in ``f0_hz``,
        ``amplitudes``, ``harmonic_distribution`` and ``initial_phase``.

    Raises:
        ValueError: on mismatched shapes, negative or NaN controls, or a non-positive ``sample_rate`` /
            ``n_samples`` / ``hop_length``.
    """
    check_positive(sample_rate, "sample_rate")
    check_positive(n_samples, "n_samples", integer=True)
    n_samples = int(n_samples)
    check_tensor(f0_hz, "f0_hz")
    check_tensor(amplitudes, "amplitudes")
    check_tensor(harmonic_distribution, "harmonic_distribution", min_dim=2)
    if amplitudes.shape != f0_hz.shape or harmonic_distribution.shape[:-1] != f0_hz.shape:
        raise ValueError(
            "f0_hz (..., n_frames), amplitudes (..., n_frames) and harmonic_distribution (..., n_frames, "
            f"n_harmonics) must agree, got {tuple(f0_hz.shape)}, {tuple(amplitudes.shape)} and "
            f"{tuple(harmonic_distribution.shape)}")
    if f0_hz.shape[-1] < 1 or harmonic_distribution.shape[-1] < 1:
        raise ValueError(f"need at least one frame and one harmonic, got harmonic_distribution shape "
                         f"{tuple(harmonic_distribution.shape)}")
    check_nonnegative(f0_hz, "f0_hz")
    check_nonnegative(amplitudes, "amplitudes")
    check_nonnegative(harmonic_distribution, "harmonic_distribution")
    lead, n_frames, n_harmonics = f0_hz.shape[:-1], f0_hz.shape[-1], harmonic_distribution.shape[-1]
    hop = resolve_hop(n_frames, n_samples, hop_length)
    dtype = amplitudes.dtype

    f0 = f0_hz.reshape(-1, n_frames)
    # fundamental phase: float64 accumulation, wrapped, then the working dtype
    f0_up64 = upsample(f0.to(torch.float64), n_samples, hop_length=hop)
    phase64 = torch.cumsum(f0_up64 * (TWO_PI / sample_rate), dim=-1)
    if initial_phase is not None:
        check_tensor(initial_phase, "initial_phase", min_dim=0)
        if initial_phase.shape != lead:
            raise ValueError(f"initial_phase must have shape {tuple(lead)} (the leading dims of f0_hz), got "
                             f"{tuple(initial_phase.shape)}")
        phase64 = phase64 + initial_phase.reshape(-1, 1).to(torch.float64)
    phase = torch.remainder(phase64, TWO_PI).to(dtype)
    # harmonics at or above Nyquist: per-sample cutoff harmonic number (mask is k < cutoff)
    cutoff = ((sample_rate / 2.0) / f0_up64.detach()).to(dtype)  # inf where f0 == 0 (silent anyway if amp 0)

    harm_amps = (amplitudes.unsqueeze(-1) * harmonic_distribution).reshape(-1, n_frames, n_harmonics)
    lo, hi, w = interpolation_weights(n_frames, n_samples, hop, device=phase.device, dtype=dtype)
    audio = _HarmonicBank.apply(phase, harm_amps, cutoff, lo, hi, w)
    return audio.reshape(*lead, n_samples)


class _HarmonicBank(torch.autograd.Function):
    """``y[b, n] = sum_k [k < cutoff[b, n]] A[b, n, k] sin(k phase[b, n])`` with ``A`` the linear interpolation of
    frame amplitudes ``a (B, F, K)`` (indices ``lo, hi``, weight ``w``).

    Computed chunk by chunk over time, saving only the ``(B, n)`` phase and the frame amplitudes: the
    ``(B, n, K)`` intermediates never exist at once, in the forward or the backward pass (which recomputes them).
    """

    @staticmethod
    def forward(ctx, phase, a, cutoff, lo, hi, w):
        ctx.save_for_backward(phase, a, cutoff, lo, hi, w)
        batch, n = phase.shape
        k = torch.arange(1, a.shape[-1] + 1, device=phase.device, dtype=phase.dtype)
        out = phase.new_empty(batch, n)
        step = max(1, _CHUNK_ELEMENTS // (batch * a.shape[-1]))
        for s in range(0, n, step):
            e = min(n, s + step)
            sines = torch.sin(phase[:, s:e, None] * k)
            sines = sines * (k < cutoff[:, s:e, None])
            amps = _interp(a, lo[s:e], hi[s:e], w[s:e])
            out[:, s:e] = (sines * amps).sum(-1)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        phase, a, cutoff, lo, hi, w = ctx.saved_tensors
        batch, n = phase.shape
        k = torch.arange(1, a.shape[-1] + 1, device=phase.device, dtype=phase.dtype)
        need_phase, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_phase = torch.zeros_like(phase) if need_phase else None
        grad_a = torch.zeros_like(a) if need_a else None
        step = max(1, _CHUNK_ELEMENTS // (batch * a.shape[-1]))
        for s in range(0, n, step):
            e = min(n, s + step)
            kphi = phase[:, s:e, None] * k
            g = grad_out[:, s:e, None] * (k < cutoff[:, s:e, None])
            if need_phase:
                amps = _interp(a, lo[s:e], hi[s:e], w[s:e])
                grad_phase[:, s:e] = (g * amps * torch.cos(kphi) * k).sum(-1)
            if need_a:
                ga = g * torch.sin(kphi)
                wc = w[s:e, None]
                grad_a.index_add_(1, lo[s:e], ga * (1 - wc))
                grad_a.index_add_(1, hi[s:e], ga * wc)
        return grad_phase, grad_a, None, None, None, None


def _interp(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(B, F, K)`` frames -> ``(B, len(lo), K)`` linearly interpolated values."""
    x0 = a[:, lo]
    return x0 + (a[:, hi] - x0) * w[:, None]


# ------------------------------------------------------------------------------------------------- noise
def noise_impulse_responses(magnitudes: torch.Tensor, window_size: int) -> torch.Tensor:
    """Linear-phase FIR filters by frequency sampling + Hann window.

    ``magnitudes (..., n_bands)``: linear gains on ``n_bands`` bands spaced linearly from 0 Hz (band 0) to Nyquist
    (band ``n_bands - 1``). The desired response is their linear interpolation, sampled on the
    ``window_size``-point DFT grid, given zero phase (``irfft``), centred and multiplied by a symmetric Hann window
    of ``window_size`` (odd) taps. Returns ``(..., window_size)``, symmetric about tap ``(window_size - 1) // 2``
    (the filter's delay in samples). Its response is the requested one smoothed by the window's main lobe
    (about 4 / window_size of the sample rate wide).
    """
    n_bands = magnitudes.shape[-1]
    n_bins = window_size // 2 + 1
    if n_bands == 1:
        response = magnitudes.expand(*magnitudes.shape[:-1], n_bins)
    else:
        # bin m is at frequency m / window_size * sample_rate, i.e. band position 2 m (n_bands - 1) / window_size
        pos = torch.arange(n_bins, device=magnitudes.device, dtype=torch.float64) * (2.0 * (n_bands - 1) / window_size)
        pos = pos.clamp(max=n_bands - 1)
        lo = pos.floor().long().clamp(max=n_bands - 2)
        wt = (pos - lo).to(magnitudes.dtype)
        m0, m1 = magnitudes[..., lo], magnitudes[..., lo + 1]
        response = m0 + (m1 - m0) * wt
    ir = torch.fft.irfft(response.to(_complex_of(magnitudes.dtype)), n=window_size)
    ir = torch.roll(ir, shifts=(window_size - 1) // 2, dims=-1)
    window = torch.hann_window(window_size, periodic=False, dtype=ir.dtype, device=ir.device)
    return ir * window


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def filtered_noise(
    magnitudes: torch.Tensor,
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    window_size: int = 257,
    hop_length: float | None = None,
) -> torch.Tensor:
    """Uniform white noise in [-1, 1] filtered by a time-varying linear-phase FIR.

    Each frame's filter comes from :func:`noise_impulse_responses` (frequency sampling + Hann window of
    ``window_size`` taps): its magnitude response follows ``magnitudes`` on bands spaced linearly from 0 Hz to
    Nyquist. The filters are applied with :func:`ddsp_demucs.dsp.fft_convolve` (time-varying form: linear
    crossfade between frames at ``j * hop_length``), and the filter delay ``(window_size - 1) / 2`` is removed, so
    the output is aligned with the frames. The noise has variance 1/3, so a stationary output has power spectral
    density ``|H(f)|^2 / 3`` per unit bandwidth (its STFT with a Hann window of ``n`` samples has RMS magnitude
    ``|H| sqrt(n / 8)``).

    Args:
        magnitudes: ``(..., n_frames, n_bands)`` linear band gains, >= 0.
        n_samples: output length (> 0).
        generator: optional ``torch.Generator`` (on the device of ``magnitudes``) for reproducible noise.
        window_size: FIR length in taps, odd, >= 3 (default 257).
        hop_length: samples between frames; default ``n_samples / n_frames``.

    Returns:
        ``(..., n_samples)`` in the dtype of ``magnitudes``; differentiable in ``magnitudes``.
    """
    check_positive(n_samples, "n_samples", integer=True)
    check_positive(window_size, "window_size", integer=True)
    window_size, n_samples = int(window_size), int(n_samples)
    if window_size < 3 or window_size % 2 == 0:
        raise ValueError(f"window_size must be an odd integer >= 3, got {window_size}")
    check_tensor(magnitudes, "magnitudes", min_dim=2)
    if magnitudes.shape[-1] < 1 or magnitudes.shape[-2] < 1:
        raise ValueError(f"magnitudes (..., n_frames, n_bands) needs at least one frame and one band, got "
                         f"{tuple(magnitudes.shape)}")
    check_nonnegative(magnitudes, "magnitudes")
    resolve_hop(magnitudes.shape[-2], n_samples, hop_length)
    lead = magnitudes.shape[:-2]
    noise = torch.rand(*lead, n_samples, generator=generator, device=magnitudes.device, dtype=magnitudes.dtype)
    noise = noise * 2.0 - 1.0
    irs = noise_impulse_responses(magnitudes, window_size)
    return fft_convolve(noise, irs, delay=(window_size - 1) // 2, hop_length=hop_length)
