"""Training windows whose separated input is made cleaner: the model sees inputs of every quality.

A separated vocal is its target plus the separator's error. :func:`blend_toward_target` replaces, in a random part of
a batch's windows, the input by ``target + alpha * (input - target)`` with ``alpha`` drawn uniformly from [0, 1]: the
same song as a better separator would have left it, down to the clean vocal itself. A model trained on such windows
learns how much to change an input from the input alone, so it can leave a clean separation (nearly) alone.
"""

from __future__ import annotations

import torch

from ddsp_demucs.dsp import a_weighted_loudness

__all__ = ["blend_toward_target", "moved_loudness"]


def blend_toward_target(
    batch: dict, *, fraction: float, generator: torch.Generator, sample_rate: int, frame_rate: int
) -> dict:
    """A copy of ``batch`` in which each window, with probability ``fraction``, has the input
    ``target + alpha (input - target)``, ``alpha ~ U[0, 1]`` (one draw per window).

    ``batch`` holds ``input_audio`` and ``target_audio`` ``(B, n_samples)`` at ``sample_rate`` and ``loudness_db``
    ``(B, n_frames)`` (the input's A-weighted loudness at ``frame_rate``, measured on the whole song). A blended
    window's ``loudness_db`` is moved by the change the blend makes to the loudness measured on the window
    (:func:`ddsp_demucs.dsp.a_weighted_loudness` of both), so frames near the window's edges, whose analysis
    reaches outside it, keep the song's context. F0 and confidence describe the vocal and are kept. Draws come from
    ``generator`` only (two per window), so a batch is blended the same way on every run.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    inputs, targets = batch["input_audio"], batch["target_audio"]
    n_windows = inputs.shape[0]
    chosen = torch.rand(n_windows, generator=generator) < fraction
    alpha = torch.rand(n_windows, generator=generator)
    if not bool(chosen.any()):
        return dict(batch)
    rows = chosen.nonzero()[:, 0].to(inputs.device)
    a = alpha[chosen].to(device=inputs.device, dtype=inputs.dtype)[:, None]
    blended = targets[rows] + a * (inputs[rows] - targets[rows])
    loudness = moved_loudness(
        batch["loudness_db"], rows, inputs[rows], blended, sample_rate=sample_rate, frame_rate=frame_rate
    )
    input_audio = inputs.clone()
    input_audio[rows] = blended
    return {**batch, "input_audio": input_audio, "loudness_db": loudness}


def moved_loudness(
    loudness_db: torch.Tensor,
    rows: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    *,
    sample_rate: int,
    frame_rate: int,
) -> torch.Tensor:
    """A copy of ``loudness_db (B, n_frames)`` whose windows ``rows`` move by the change from input ``before`` to
    input ``after`` (each ``(len(rows), n_samples)`` at ``sample_rate``) in the A-weighted loudness measured on the
    window (:func:`ddsp_demucs.dsp.a_weighted_loudness` at ``frame_rate``): frames near a window's edges, whose
    analysis reaches outside it, keep the song's context."""
    with torch.no_grad():
        old, new = (a_weighted_loudness(x, sample_rate=sample_rate, frame_rate=frame_rate) for x in (before, after))
    loudness = loudness_db.clone()
    loudness[rows] += (new - old).to(loudness.dtype)
    return loudness
