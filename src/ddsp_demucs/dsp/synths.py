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

__all__ = ["harmonic_synth", "harmonic_phase", "filtered_noise", "noise_impulse_responses"]

TWO_PI = 2.0 * math.pi
_CHUNK_ELEMENTS = 1 << 17  # (samples x harmonics) elements per chunk of one row: 512 KiB in float32


# ---------------------------------------------------------------------------------------------- harmonic
def harmonic_phase(
    f0_hz: torch.Tensor,
    *,
    sample_rate: float,
    n_samples: int,
    initial_phase: torch.Tensor | None = None,
    hop_length: float | None = None,
) -> torch.Tensor:
    """The fundamental's phase ``phi (..., n_samples)`` in radians, float64 in ``[0, 2 pi)``, exactly as
    :func:`harmonic_synth` computes it from the same arguments. ``phi[m - 1]`` is the ``initial_phase`` with which
    a synthesis starting at sample ``m`` continues this one without a phase jump."""
    check_positive(sample_rate, "sample_rate")
    check_positive(n_samples, "n_samples", integer=True)
    check_tensor(f0_hz, "f0_hz")
    check_nonnegative(f0_hz, "f0_hz")
    lead, n_frames = f0_hz.shape[:-1], f0_hz.shape[-1]
    hop = resolve_hop(n_frames, int(n_samples), hop_length)
    f0_up64 = upsample(f0_hz.reshape(-1, n_frames).to(torch.float64), int(n_samples), hop_length=hop)
    phase = wrapped_cumsum(f0_up64 * (TWO_PI / sample_rate), _initial_phase(initial_phase, lead))
    return phase.reshape(*lead, int(n_samples))


def _initial_phase(initial_phase: torch.Tensor | None, lead: torch.Size) -> torch.Tensor | None:
    """``initial_phase (lead)`` checked and flattened to ``(B, 1)`` float64, or None."""
    if initial_phase is None:
        return None
    check_tensor(initial_phase, "initial_phase", min_dim=0)
    if initial_phase.shape != lead:
        raise ValueError(
            f"initial_phase must have shape {tuple(lead)} (the leading dims of f0_hz), got {tuple(initial_phase.shape)}"
        )
    return initial_phase.reshape(-1, 1).to(torch.float64)


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
            f"{tuple(harmonic_distribution.shape)}"
        )
    if f0_hz.shape[-1] < 1 or harmonic_distribution.shape[-1] < 1:
        raise ValueError(
            f"need at least one frame and one harmonic, got harmonic_distribution shape "
            f"{tuple(harmonic_distribution.shape)}"
        )
    check_nonnegative(f0_hz, "f0_hz")
    check_nonnegative(amplitudes, "amplitudes")
    check_nonnegative(harmonic_distribution, "harmonic_distribution")
    lead, n_frames, n_harmonics = f0_hz.shape[:-1], f0_hz.shape[-1], harmonic_distribution.shape[-1]
    hop = resolve_hop(n_frames, n_samples, hop_length)
    dtype = amplitudes.dtype

    f0 = f0_hz.reshape(-1, n_frames)
    # fundamental phase: float64 accumulation, wrapped, then the working dtype
    f0_up64 = upsample(f0.to(torch.float64), n_samples, hop_length=hop)
    phase = wrapped_cumsum(f0_up64 * (TWO_PI / sample_rate), _initial_phase(initial_phase, lead)).to(dtype)
    # harmonics at or above Nyquist: per-sample cutoff harmonic number (mask is k < cutoff)
    cutoff = ((sample_rate / 2.0) / f0_up64.detach()).to(dtype)  # inf where f0 == 0 (silent anyway if amp 0)

    harm_amps = (amplitudes.unsqueeze(-1) * harmonic_distribution).reshape(-1, n_frames, n_harmonics)
    blocks = _BlockLayout(n_frames, n_samples, hop, device=phase.device, dtype=dtype)
    audio = _HarmonicBank.apply(
        blocks.split(phase), harm_amps, blocks.split(cutoff), blocks.weights, blocks.frame_index
    )
    return audio.reshape(-1, blocks.n_blocks * blocks.block)[:, :n_samples].reshape(*lead, n_samples)


def wrapped_cumsum(increments: torch.Tensor, start: torch.Tensor | None = None, block: int = 4096) -> torch.Tensor:
    """``(start + cumsum(increments, -1)) mod 2 pi`` for ``increments (B, n)`` in float64, without the rounding
    drift of one long running sum: cumulative sums run within blocks of ``block`` samples, and the block
    offsets are summed after wrapping each block's total to ``[0, 2 pi)``. Differentiable (the wraps pass
    gradients through unchanged)."""
    batch, n = increments.shape
    n_blocks = -(-n // block)
    x = torch.nn.functional.pad(increments, (0, n_blocks * block - n)).view(batch, n_blocks, block)
    local = torch.cumsum(x, dim=-1)
    totals = torch.remainder(local[..., -1], TWO_PI)
    offsets = torch.remainder(torch.cumsum(totals, dim=-1) - totals, TWO_PI)  # exclusive: before each block
    if start is not None:
        offsets = offsets + torch.remainder(start, TWO_PI)
    return torch.remainder(local + offsets[..., None], TWO_PI).reshape(batch, -1)[:, :n]


class _BlockLayout:
    """Samples grouped in blocks of ``block <= hop`` samples, so each block's linear interpolation involves at
    most ``n_near`` (<= 3 when ``hop >= 1``) consecutive frames starting at ``frame_index[b, 0]``.

    ``weights (n_blocks, block, n_near)``: interpolation weight of each nearby frame at each sample;
    ``frame_index (n_blocks, n_near)``: those frames (clamped to the last frame, whose extra copies weigh 0).
    """

    def __init__(self, n_frames: int, n_samples: int, hop: float, *, device, dtype):
        self.block = int(max(1, min(math.floor(hop), 1024, n_samples)))
        self.n_blocks = -(-n_samples // self.block)
        self.n_samples = n_samples
        lo, hi, w = interpolation_weights(n_frames, self.n_blocks * self.block, hop, device=device, dtype=dtype)
        lo, hi, w = (t.view(self.n_blocks, self.block) for t in (lo, hi, w))
        first = lo[:, :1]
        self.n_near = int((hi - first).max()) + 1
        weights = torch.zeros(self.n_blocks, self.block, self.n_near, device=device, dtype=dtype)
        weights.scatter_add_(2, (lo - first)[..., None], (1 - w)[..., None])
        weights.scatter_add_(2, (hi - first)[..., None], w[..., None])
        self.weights = weights
        self.frame_index = (first + torch.arange(self.n_near, device=device)).clamp(max=n_frames - 1)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_samples)`` -> zero-padded ``(B, n_blocks, block)``."""
        pad = self.n_blocks * self.block - self.n_samples
        return torch.nn.functional.pad(x, (0, pad)).view(x.shape[0], self.n_blocks, self.block)


class _HarmonicBank(torch.autograd.Function):
    """``y[b, n] = sum_k [k < cutoff[b, n]] A[b, n, k] sin(k phase[b, n])``, ``A`` the linear interpolation of the
    frame amplitudes ``a (B, F, K)``, on the block layout of :class:`_BlockLayout` (inputs ``(B, n_blocks,
    block)``).

    Per block, ``A`` is never formed: ``y = sum_m W_m * (S @ a_{j+m})`` with ``S`` the masked sines
    ``(block, K)`` and ``W_m`` the interpolation weights, a small batched matmul. Work goes row by row and chunk by
    chunk over blocks, and only the ``(B, n)`` inputs are saved; the backward pass recomputes sines and cosines,
    so no ``(B, n, K)`` tensor ever exists. Harmonics at or above Nyquist everywhere in a chunk are not computed
    at all (they contribute nothing), and the Nyquist mask is applied only to the harmonics it cuts somewhere in a
    chunk.
    """

    @staticmethod
    def forward(ctx, phase, a, cutoff, weights, frame_index):
        ctx.save_for_backward(phase, a, cutoff, weights, frame_index)
        ctx.chunks = list(_chunks(cutoff, a.shape[-1]))  # the backward pass walks the same chunks
        k = torch.arange(1, a.shape[-1] + 1, device=phase.device, dtype=phase.dtype)
        out = torch.zeros_like(phase)
        for row, sl, count, first_cut in ctx.chunks:
            kk = k[:count]
            sines = torch.sin(phase[row, sl, :, None] * kk)  # (c, L, count)
            sines[..., first_cut:].masked_fill_(kk[first_cut:] >= cutoff[row, sl, :, None], 0.0)
            near = a[row, frame_index[sl], :count]  # (c, M, count)
            out[row, sl] = (torch.matmul(sines, near.transpose(-1, -2)) * weights[sl]).sum(-1)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        phase, a, cutoff, weights, frame_index = ctx.saved_tensors
        k = torch.arange(1, a.shape[-1] + 1, device=phase.device, dtype=phase.dtype)
        need_phase, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_phase = torch.zeros_like(phase) if need_phase else None
        grad_a = torch.zeros_like(a) if need_a else None
        for row, sl, count, first_cut in ctx.chunks:
            kk = k[:count]
            kphi = phase[row, sl, :, None] * kk
            off = kk[first_cut:] >= cutoff[row, sl, :, None]  # (c, L, count - first_cut)
            gw = grad_out[row, sl, :, None] * weights[sl]  # (c, L, M)
            if need_phase:
                near_k = a[row, frame_index[sl], :count] * kk  # (c, M, count)
                cosines = torch.cos(kphi)
                cosines[..., first_cut:].masked_fill_(off, 0.0)
                grad_phase[row, sl] = (torch.matmul(cosines, near_k.transpose(-1, -2)) * gw).sum(-1)
            if need_a:
                sines = torch.sin(kphi)
                sines[..., first_cut:].masked_fill_(off, 0.0)
                g_near = torch.matmul(gw.transpose(-1, -2), sines)  # (c, M, count)
                grad_a[row, :, :count].index_add_(0, frame_index[sl].reshape(-1), g_near.reshape(-1, count))
        return grad_phase, grad_a, None, None, None


def _chunks(cutoff: torch.Tensor, n_harmonics: int):
    """Work units of :class:`_HarmonicBank` over ``cutoff (B, n_blocks, block)``: ``(row, block slice, count,
    first_cut)``: harmonics ``1..count`` are below Nyquist somewhere in the chunk (chunks with none are skipped),
    and harmonics ``1..first_cut`` everywhere in it, so only harmonics ``first_cut + 1..count`` need the mask."""
    batch, n_blocks, block = cutoff.shape
    step = max(1, _CHUNK_ELEMENTS // (block * n_harmonics))
    for row in range(batch):
        for start in range(0, n_blocks, step):
            sl = slice(start, min(n_blocks, start + step))
            low, high = (float(v) for v in torch.aminmax(cutoff[row, sl]))
            # harmonic k sounds where k < cutoff: 1 .. ceil(cutoff) - 1
            count = n_harmonics if math.isinf(high) else min(n_harmonics, math.ceil(high) - 1)
            if count > 0:
                yield row, sl, count, count if math.isinf(low) else max(0, min(count, math.ceil(low) - 1))


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
    white_noise: torch.Tensor | None = None,
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
        white_noise: ``(..., n_samples)`` (or broadcastable) noise to filter instead of drawing it, e.g. one
            long stream cut into windows (``generator`` is then unused).

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
        raise ValueError(
            f"magnitudes (..., n_frames, n_bands) needs at least one frame and one band, got {tuple(magnitudes.shape)}"
        )
    check_nonnegative(magnitudes, "magnitudes")
    resolve_hop(magnitudes.shape[-2], n_samples, hop_length)
    lead = magnitudes.shape[:-2]
    if white_noise is None:
        noise = torch.rand(*lead, n_samples, generator=generator, device=magnitudes.device, dtype=magnitudes.dtype)
        noise = noise * 2.0 - 1.0
    else:
        check_tensor(white_noise, "white_noise")
        if white_noise.shape[-1] != n_samples:
            raise ValueError(f"white_noise must have n_samples={n_samples} samples, got {tuple(white_noise.shape)}")
        noise = white_noise.to(magnitudes.dtype).expand(*lead, n_samples)
    irs = noise_impulse_responses(magnitudes, window_size)
    return fft_convolve(noise, irs, delay=(window_size - 1) // 2, hop_length=hop_length)
