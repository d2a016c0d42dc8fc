"""Perturbations used by the analyses: F0 errors on frame controls, tiny changes to waveforms.

Pure functions on torch tensors with any leading dims; the last axis is frames (F0) or samples (audio).
Randomness comes only from the ``generator`` argument, so a fixed seed gives a fixed perturbation, and a level
of 0 returns the input values unchanged (a copy).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["jitter_cents", "octave_errors", "flip_voicing", "add_noise", "shift", "apply_gain", "db_to_gain"]


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``(..., n)`` -> ``(rows, n)`` view (a 1-D input is one row)."""
    return x.reshape(-1, x.shape[-1]) if x.dim() else x.reshape(1, 1)


def _check_rate(rate: float, name: str) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {rate!r}")


def jitter_cents(f0_hz: torch.Tensor, std_cents: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian pitch jitter: each voiced frame is multiplied by ``2 ** (n / 1200)``, ``n ~ N(0, std_cents²)``
    drawn independently per frame.

    ``f0_hz (..., n_frames)`` in Hz, 0 where unvoiced (kept 0) -> same shape and dtype.
    """
    if std_cents < 0:
        raise ValueError(f"std_cents must be >= 0, got {std_cents!r}")
    if std_cents == 0:
        return f0_hz.clone()
    cents = torch.randn(f0_hz.shape, generator=generator, dtype=torch.float64) * std_cents
    out = f0_hz.double() * torch.exp2(cents / 1200.0)
    return torch.where(f0_hz > 0, out, f0_hz.double()).to(f0_hz.dtype)


def octave_errors(f0_hz: torch.Tensor, rate: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Octave errors on a fraction of the voiced frames.

    In each row (all leading dims flattened), exactly ``round(rate * n_voiced)`` voiced frames, drawn uniformly
    without replacement, are multiplied by 2 or by 0.5 (each with probability 1/2). ``f0_hz (..., n_frames)`` in
    Hz, 0 = unvoiced -> same shape and dtype.
    """
    _check_rate(rate, "rate")
    out = f0_hz.clone()
    if rate == 0:
        return out
    rows = _rows(out)
    for row in rows:
        voiced = torch.nonzero(row > 0).flatten()
        k = int(round(rate * voiced.numel()))
        if k == 0:
            continue
        chosen = voiced[torch.randperm(voiced.numel(), generator=generator)[:k]]
        up = torch.rand(k, generator=generator) < 0.5
        row[chosen] = row[chosen] * torch.where(up, 2.0, 0.5).to(row.dtype)
    return rows.reshape(f0_hz.shape)


def _nearest_voiced(row: np.ndarray) -> np.ndarray:
    """For each frame of a 1-D F0 row with at least one voiced frame, the F0 of the nearest voiced frame
    (the earlier one on a tie)."""
    voiced = np.flatnonzero(row > 0)
    idx = np.arange(row.shape[0])
    after = np.clip(np.searchsorted(voiced, idx), 0, voiced.size - 1)
    before = np.clip(after - 1, 0, voiced.size - 1)
    take_before = np.abs(idx - voiced[before]) <= np.abs(voiced[after] - idx)
    return row[np.where(take_before, voiced[before], voiced[after])]


def flip_voicing(
    f0_hz: torch.Tensor,
    confidence: torch.Tensor,
    rate: float,
    *,
    generator: torch.Generator | None = None,
    low_confidence: float = 0.0,
    high_confidence: float = 1.0,
    fallback_hz: float = 220.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Voicing errors: in each row exactly ``round(rate * n_frames)`` frames, drawn uniformly without
    replacement, have their voicing flipped.

    A voiced frame becomes unvoiced (0 Hz, confidence ``low_confidence``); an unvoiced frame becomes voiced
    with a plausible pitch, the F0 of the nearest voiced frame of the unperturbed row (``fallback_hz`` when the
    row has none), and confidence ``high_confidence``: what an F0 tracker's misses and false alarms look like.

    ``f0_hz (..., n_frames)`` Hz (0 = unvoiced) and ``confidence`` (same shape, [0, 1]) -> both, perturbed.
    """
    _check_rate(rate, "rate")
    if confidence.shape != f0_hz.shape:
        raise ValueError(f"confidence shape {tuple(confidence.shape)} differs from f0_hz shape {tuple(f0_hz.shape)}")
    f0_out, conf_out = f0_hz.clone(), confidence.clone()
    if rate == 0:
        return f0_out, conf_out
    f0_rows, conf_rows = _rows(f0_out), _rows(conf_out)
    for f0_row, conf_row in zip(f0_rows, conf_rows):
        n = f0_row.numel()
        k = int(round(rate * n))
        if k == 0:
            continue
        original = f0_row.detach().cpu().double().numpy().copy()
        plausible = _nearest_voiced(original) if (original > 0).any() else np.full(n, fallback_hz)
        chosen = torch.randperm(n, generator=generator)[:k]
        was_voiced = torch.from_numpy(original > 0)[chosen]
        new_f0 = torch.where(was_voiced, 0.0, torch.from_numpy(plausible)[chosen])
        f0_row[chosen] = new_f0.to(f0_row.dtype)
        conf_row[chosen] = torch.where(was_voiced, low_confidence, high_confidence).to(conf_row.dtype)
    return f0_rows.reshape(f0_hz.shape), conf_rows.reshape(confidence.shape)


# ------------------------------------------------------------------------------------------------- audio
def db_to_gain(db: float) -> float:
    """Linear amplitude gain of ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


def add_noise(audio: torch.Tensor, level_db: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add white Gaussian noise whose RMS is ``level_db`` dB relative to each example's RMS.

    ``audio (..., n_samples)`` -> same shape and dtype (a silent example stays silent).
    """
    rms = audio.double().square().mean(-1, keepdim=True).sqrt()
    noise = torch.randn(audio.shape, generator=generator, dtype=torch.float64)
    noise = noise / noise.square().mean(-1, keepdim=True).sqrt().clamp_min(1e-12)
    return (audio.double() + noise * rms * db_to_gain(level_db)).to(audio.dtype)


def shift(audio: torch.Tensor, n: int) -> torch.Tensor:
    """Delay by ``n`` samples (``n < 0`` advances), zero-filled, same length: ``out[..., t] = audio[..., t - n]``.

    ``audio (..., n_samples)`` -> same shape.
    """
    out = torch.zeros_like(audio)
    if n == 0:
        out.copy_(audio)
    elif abs(n) < audio.shape[-1]:
        if n > 0:
            out[..., n:] = audio[..., :-n]
        else:
            out[..., :n] = audio[..., -n:]
    return out


def apply_gain(audio: torch.Tensor, gain_db: float) -> torch.Tensor:
    """``audio * 10 ** (gain_db / 20)``, any shape."""
    return audio * db_to_gain(gain_db)
