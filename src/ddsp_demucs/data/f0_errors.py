"""Training windows whose F0 control is wrong where a pitch tracker would be: the model learns not to trust it blindly.

The songs the recommended model makes worse at a network's separation quality are the ones whose pitch no
tracker follows after separation (``make bench-quality-diagnosis``, exp004); the refinement then acts on wrong
harmonics. :func:`add_f0_errors` gives, in a random part of a batch's windows, one random span of frames an F0
error of one of the kinds trackers make on separated vocals (:data:`ERROR_KINDS`): an octave up or down or a
twelfth up (the third harmonic taken for the first), a pitch that has nothing to do with the voice (also where the
voice is silent: a false voicing), or no pitch at all (a missed voicing). Audio and target stay as they are, so
the loss rewards a refinement that leaves the input alone where the F0 contradicts what it hears.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ERROR_KINDS", "add_f0_errors"]

RATIO_ERRORS = {"octave_up": 2.0, "octave_down": 0.5, "twelfth_up": 3.0}  # F0 times this ratio where voiced
ERROR_KINDS = (*RATIO_ERRORS, "wrong_pitch", "unvoiced")
WRONG_PITCH_HZ = (80.0, 1000.0)  # a wrong pitch: log-uniform in this range, one per span
MIN_SPAN = 0.25  # a span covers U[MIN_SPAN, 1] of the window's frames


def add_f0_errors(batch: dict, *, fraction: float, generator: torch.Generator) -> dict:
    """A copy of ``batch`` in which each window, with probability ``fraction``, has one span of its
    ``f0_hz (B, n_frames)`` (Hz, 0 = unvoiced) and ``f0_confidence (B, n_frames)`` changed by one error kind of
    :data:`ERROR_KINDS`, drawn uniformly: the ratios of :data:`RATIO_ERRORS` applied to voiced frames;
    ``wrong_pitch`` sets every frame of the span to one pitch log-uniform in :data:`WRONG_PITCH_HZ` and raises its
    confidence to at least one draw of ``U[0.5, 1]``; ``unvoiced`` sets F0 to 0 and lowers the confidence to at most
    one draw of ``U[0, 0.5)``. The span starts anywhere and covers a share ``U[MIN_SPAN, 1]`` of the frames,
    clipped at the window's end. Audio is not touched. Draws come from ``generator`` only (a fixed number per
    window), so a batch is changed the same way on every run."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"need fraction in [0, 1], got {fraction}")
    f0, confidence = batch["f0_hz"], batch["f0_confidence"]
    n_windows, n_frames = f0.shape
    chosen = torch.rand(n_windows, generator=generator) < fraction
    kinds = torch.randint(len(ERROR_KINDS), (n_windows,), generator=generator)
    starts = torch.rand(n_windows, generator=generator)
    shares = MIN_SPAN + (1.0 - MIN_SPAN) * torch.rand(n_windows, generator=generator)
    pitch_draws = torch.rand(n_windows, generator=generator)
    confidence_draws = torch.rand(n_windows, generator=generator)
    if not bool(chosen.any()):
        return dict(batch)
    low, high = (math.log(f) for f in WRONG_PITCH_HZ)
    f0, confidence = f0.clone(), confidence.clone()
    for row in chosen.nonzero()[:, 0].tolist():
        first = int(starts[row] * n_frames)
        span = slice(first, min(n_frames, first + max(1, round(float(shares[row]) * n_frames))))
        kind = ERROR_KINDS[int(kinds[row])]
        if kind in RATIO_ERRORS:
            f0[row, span] = f0[row, span] * RATIO_ERRORS[kind]
        elif kind == "wrong_pitch":
            f0[row, span] = math.exp(low + (high - low) * float(pitch_draws[row]))
            confidence[row, span] = confidence[row, span].clamp_min(0.5 + 0.5 * float(confidence_draws[row]))
        else:
            f0[row, span] = 0.0
            confidence[row, span] = confidence[row, span].clamp_max(0.5 * float(confidence_draws[row]))
    return {**batch, "f0_hz": f0, "f0_confidence": confidence}
