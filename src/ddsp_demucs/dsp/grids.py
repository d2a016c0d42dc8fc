"""Moving per-frame values between time grids: frame values onto any times, F0 without gliding through 0 Hz, a
time-frequency mask onto another STFT grid, a per-frame gate onto samples. Times in seconds, frequencies in Hz."""

from __future__ import annotations

import torch


def frames_to_grid(values: torch.Tensor, frame_rate: float, times_s: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of frame values onto arbitrary times.

    ``values (batch, n_frames)`` with frame ``j`` at ``j / frame_rate`` seconds; ``times_s (n_out,)`` in
    seconds -> ``(batch, n_out)``. Times outside the frame range take the first / last frame's value.
    """
    n_frames = values.shape[-1]
    pos = (times_s * frame_rate).clamp(0, n_frames - 1).to(values.dtype)
    lo = pos.floor().long().clamp(max=n_frames - 1)
    hi = (lo + 1).clamp(max=n_frames - 1)
    w = pos - lo.to(pos.dtype)
    return values[..., lo] * (1 - w) + values[..., hi] * w


def f0_to_grid(f0_hz: torch.Tensor, frame_rate: float, times_s: torch.Tensor) -> torch.Tensor:
    """Interpolate F0 ``(batch, n_frames)`` (Hz, 0 = unvoiced) onto ``times_s`` without gliding through 0 Hz.

    Between a voiced and an unvoiced frame the voiced frame's F0 is held; between two unvoiced frames the
    result is 0. Returns ``(batch, n_out)`` in Hz.
    """
    voiced = (f0_hz > 0).to(f0_hz.dtype)
    num = frames_to_grid(f0_hz * voiced, frame_rate, times_s)
    den = frames_to_grid(voiced, frame_rate, times_s)
    return torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.zeros_like(num))


def interpolate_mask(
    mask: torch.Tensor,
    *,
    src_sample_rate: int,
    src_n_fft: int,
    src_hop: int,
    dst_sample_rate: int,
    dst_n_fft: int,
    dst_hop: int,
    dst_n_frames: int,
    above_nyquist: float = 1.0,
) -> torch.Tensor:
    """Transfer a TF mask to another STFT grid by frequency in Hz and time in seconds (bilinear).

    ``mask (batch, src_n_fft // 2 + 1, src_n_frames)`` on centred frames ``i * src_hop / src_sample_rate``
    -> ``(batch, dst_n_fft // 2 + 1, dst_n_frames)``. Frequencies above the source Nyquist take ``above_nyquist``
    (1: a mask leaves them unchanged; the model never saw them); times beyond the source frames take the edge frame.
    """
    src_bins = src_n_fft // 2 + 1
    dst_freqs = torch.arange(dst_n_fft // 2 + 1, dtype=mask.dtype, device=mask.device) * (dst_sample_rate / dst_n_fft)
    dst_times = torch.arange(dst_n_frames, dtype=mask.dtype, device=mask.device) * (dst_hop / dst_sample_rate)
    # time: treat source frames as a frame sequence at rate src_sample_rate / src_hop
    over_t = frames_to_grid(mask, src_sample_rate / src_hop, dst_times)  # (b, src_bins, dst_frames)
    fpos = dst_freqs * (src_n_fft / src_sample_rate)
    inside = fpos <= src_bins - 1
    over_f = frames_to_grid(over_t.transpose(1, 2), 1.0, fpos).transpose(1, 2)  # (b, dst_bins, dst_frames)
    return torch.where(inside[:, None], over_f, torch.full_like(over_f, above_nyquist))


def interpolate_gate(gate: torch.Tensor, *, frame_rate: float, sample_rate: int, n_samples: int) -> torch.Tensor:
    """Per-sample gate from per-frame values: ``gate (batch, n_frames)`` at frames ``i / frame_rate`` s
    -> ``(batch, n_samples)`` at ``sample_rate`` (linear interpolation, edge frames held)."""
    times = torch.arange(n_samples, dtype=gate.dtype, device=gate.device) / sample_rate
    return frames_to_grid(gate, frame_rate, times)


__all__ = ["frames_to_grid", "f0_to_grid", "interpolate_mask", "interpolate_gate"]
