"""F0 metrics on frame arrays in Hz (0 = unvoiced): raw pitch and chroma accuracy, octave errors, voicing recall
and false alarms, median cents error, and F0 resampled onto another frame grid."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ddsp_demucs.metrics.arrays import ArrayLike, as_float64_numpy


def _f0_inputs(
    ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, est_voicing: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(ref, est, ref_voiced, est_voiced)``; est voicing is ``est_voicing`` where given (forced off
    where ``est_f0_hz`` is 0, as mir_eval does), else ``est_f0_hz > 0``."""
    ref = as_float64_numpy(ref_f0_hz, "ref_f0_hz")
    est = as_float64_numpy(est_f0_hz, "est_f0_hz")
    if ref.shape != est.shape or ref.ndim == 0:
        raise ValueError(f"ref_f0_hz and est_f0_hz must be frame arrays of one shape, got {ref.shape} and {est.shape}")
    for name, f0 in (("ref_f0_hz", ref), ("est_f0_hz", est)):
        if np.any(f0 < 0):
            raise ValueError(
                f"{name} has negative values; use 0 for unvoiced frames (and est_voicing for a "
                "separate voicing decision)"
            )
    ref_voiced = ref > 0
    if est_voicing is None:
        est_voiced = est > 0
    else:
        voicing = (
            est_voicing.detach().cpu().numpy() if isinstance(est_voicing, torch.Tensor) else np.asarray(est_voicing)
        )
        if voicing.shape != est.shape:
            raise ValueError(f"est_voicing shape {voicing.shape} differs from est_f0_hz shape {est.shape}")
        if voicing.dtype != bool and not np.all((voicing == 0) | (voicing == 1)):
            raise ValueError("est_voicing must be boolean (or 0/1); threshold probabilities first")
        est_voiced = voicing.astype(bool) & (est > 0)
    return ref, est, ref_voiced, est_voiced


def _cents_difference(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """|1200 log2(est / ref)|, NaN where either is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(1200.0 * np.log2(est / ref))
    diff[(ref <= 0) | (est <= 0)] = np.nan
    return diff


def _fraction(hits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.sum(hits & mask, axis=-1) / np.sum(mask, axis=-1))[()]


def _pitch_within(ref: np.ndarray, est: np.ndarray, cent_tolerance: float) -> np.ndarray:
    """Whether ``est`` is within ``cent_tolerance`` cents (strictly) of ``ref``, False where either is 0."""
    with np.errstate(invalid="ignore"):
        return _cents_difference(ref, est) < cent_tolerance


def pitch_correct_frames(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, cent_tolerance: float = 50.0) -> np.ndarray:
    """Whether each frame's estimated pitch is within ``cent_tolerance`` cents (strictly) of a voiced reference:
    bool ``(..., n_frames)`` from inputs ``(..., n_frames)`` in Hz (0 = unvoiced; False where either is 0)."""
    ref, est, _, _ = _f0_inputs(ref_f0_hz, est_f0_hz, None)
    return _pitch_within(ref, est, cent_tolerance)


def raw_pitch_accuracy(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, cent_tolerance: float = 50.0) -> np.ndarray:
    """Fraction of reference-voiced frames whose estimated pitch is within ``cent_tolerance`` cents (strictly).

    As mir_eval.melody: the estimate's voicing decision is ignored, a frame with ``est_f0_hz == 0`` counts as
    wrong. Inputs ``(..., n_frames)`` in Hz (0 = unvoiced); output ``(...)`` in [0, 1], NaN where the reference
    has no voiced frame.
    """
    ref, est, ref_voiced, _ = _f0_inputs(ref_f0_hz, est_f0_hz, None)
    return _fraction(_pitch_within(ref, est, cent_tolerance), ref_voiced)


def _chroma_error(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Distance in cents to the nearest whole number of octaves, NaN where either is unvoiced."""
    diff = _cents_difference(ref, est)
    return np.abs(diff - 1200.0 * np.floor(diff / 1200.0 + 0.5))


def raw_chroma_accuracy(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, cent_tolerance: float = 50.0) -> np.ndarray:
    """Like :func:`raw_pitch_accuracy` but octave errors count as correct (pitch folded onto one octave).

    Inputs ``(..., n_frames)`` Hz (0 = unvoiced); output ``(...)`` in [0, 1], NaN without reference-voiced frames.
    """
    ref, est, ref_voiced, _ = _f0_inputs(ref_f0_hz, est_f0_hz, None)
    with np.errstate(invalid="ignore"):
        correct = _chroma_error(ref, est) < cent_tolerance
    return _fraction(correct, ref_voiced)


def octave_error_rate(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, cent_tolerance: float = 50.0) -> np.ndarray:
    """Fraction of reference-voiced frames whose estimate is off by a non-zero whole number of octaves
    (within ``cent_tolerance`` cents of ±1200·k, k ≥ 1), i.e. chroma-correct but not pitch-correct; equals
    ``raw_chroma_accuracy - raw_pitch_accuracy``.

    Inputs ``(..., n_frames)`` Hz (0 = unvoiced); output ``(...)`` in [0, 1], NaN without reference-voiced frames.
    """
    ref, est, ref_voiced, _ = _f0_inputs(ref_f0_hz, est_f0_hz, None)
    diff = _cents_difference(ref, est)
    with np.errstate(invalid="ignore"):
        octave_off = (_chroma_error(ref, est) < cent_tolerance) & ~(diff < cent_tolerance)
    return _fraction(octave_off, ref_voiced)


def voicing_recall(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, est_voicing: ArrayLike | None = None) -> np.ndarray:
    """Fraction of reference-voiced frames the estimate marks voiced.

    Inputs ``(..., n_frames)`` Hz (0 = unvoiced); ``est_voicing`` (same shape, boolean) overrides
    ``est_f0_hz > 0`` as the estimate's voicing. Output ``(...)`` in [0, 1], NaN without reference-voiced frames.
    """
    _, _, ref_voiced, est_voiced = _f0_inputs(ref_f0_hz, est_f0_hz, est_voicing)
    return _fraction(est_voiced, ref_voiced)


def voicing_false_alarm(
    ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, est_voicing: ArrayLike | None = None
) -> np.ndarray:
    """Fraction of reference-unvoiced frames the estimate marks voiced.

    Inputs as :func:`voicing_recall`. Output ``(...)`` in [0, 1], NaN without reference-unvoiced frames.
    """
    _, _, ref_voiced, est_voiced = _f0_inputs(ref_f0_hz, est_f0_hz, est_voicing)
    return _fraction(est_voiced, ~ref_voiced)


def median_cents_error(
    ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, est_voicing: ArrayLike | None = None
) -> np.ndarray:
    """Median of ``|1200 log2(est / ref)|`` in cents over frames voiced in both reference and estimate.

    Inputs as :func:`voicing_recall`. Output ``(...)`` cents, NaN where no frame is voiced in both.
    """
    ref, est, ref_voiced, est_voiced = _f0_inputs(ref_f0_hz, est_f0_hz, est_voicing)
    diff = _cents_difference(ref, est)
    diff[~(ref_voiced & est_voiced)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no common voiced frame -> NaN
        return np.nanmedian(diff, axis=-1)[()]


def f0_metrics(
    ref_f0_hz: ArrayLike,
    est_f0_hz: ArrayLike,
    *,
    est_voicing: ArrayLike | None = None,
    cent_tolerance: float = 50.0,
) -> dict[str, np.ndarray]:
    """All F0 metrics at once: ``{"raw_pitch_accuracy", "raw_chroma_accuracy", "octave_error_rate",
    "voicing_recall", "voicing_false_alarm", "median_cents_error"}``, each ``(...)`` for inputs
    ``(..., n_frames)`` in Hz (0 = unvoiced). See the individual functions for definitions and NaN cases.
    """
    kwargs = {"cent_tolerance": cent_tolerance}
    return {
        "raw_pitch_accuracy": raw_pitch_accuracy(ref_f0_hz, est_f0_hz, **kwargs),
        "raw_chroma_accuracy": raw_chroma_accuracy(ref_f0_hz, est_f0_hz, **kwargs),
        "octave_error_rate": octave_error_rate(ref_f0_hz, est_f0_hz, **kwargs),
        "voicing_recall": voicing_recall(ref_f0_hz, est_f0_hz, est_voicing=est_voicing),
        "voicing_false_alarm": voicing_false_alarm(ref_f0_hz, est_f0_hz, est_voicing=est_voicing),
        "median_cents_error": median_cents_error(ref_f0_hz, est_f0_hz, est_voicing=est_voicing),
    }


def f0_on_frames(times_s: ArrayLike, f0_hz: ArrayLike, frame_rate: float, n_frames: int) -> np.ndarray:
    """Resample an F0 annotation ``(times_s, f0_hz)`` (e.g. vocadito's ``time_s,f0_hz`` csv) onto frames.

    Frame ``k`` is at ``k / frame_rate`` seconds. Its voicing is that of the nearest annotation point; a voiced
    frame gets the F0 interpolated linearly in log-frequency between the two annotation points around it when
    both are voiced, otherwise the nearest point's F0 (never interpolating across an unvoiced gap). Frames
    outside ``[times_s[0], times_s[-1]]`` are unvoiced.

    Args:
        times_s: ``(n_points,)`` strictly increasing seconds. f0_hz: ``(n_points,)`` Hz, 0 = unvoiced.
        frame_rate: frames per second (> 0). n_frames: number of output frames (>= 0).

    Returns:
        ``(n_frames,)`` float64 Hz, 0 where unvoiced.
    """
    times = as_float64_numpy(times_s, "times_s")
    f0 = as_float64_numpy(f0_hz, "f0_hz")
    if times.ndim != 1 or times.shape != f0.shape or times.size == 0:
        raise ValueError(
            f"times_s and f0_hz must be non-empty 1-D arrays of one length, got {times.shape} and {f0.shape}"
        )
    if np.any(np.diff(times) <= 0):
        raise ValueError("times_s must be strictly increasing")
    if np.any(f0 < 0):
        raise ValueError("f0_hz has negative values; use 0 for unvoiced points")
    if not frame_rate or frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")

    t = np.arange(n_frames) / frame_rate
    inside = (t >= times[0]) & (t <= times[-1])
    right = np.clip(np.searchsorted(times, t, side="left"), 1, max(times.size - 1, 1))
    left = right - 1 if times.size > 1 else np.zeros_like(right)
    right = right if times.size > 1 else np.zeros_like(right)
    nearest = np.where(np.abs(t - times[left]) <= np.abs(times[right] - t), left, right)

    out = f0[nearest].copy()
    both = (f0[left] > 0) & (f0[right] > 0) & (right > left)
    if np.any(both):
        span = times[right] - times[left]
        frac = np.divide(t - times[left], span, out=np.zeros_like(t), where=span > 0)
        with np.errstate(divide="ignore"):
            log_left, log_right = np.log2(np.where(both, f0[left], 1.0)), np.log2(np.where(both, f0[right], 1.0))
        out = np.where(both, 2.0 ** (log_left + frac * (log_right - log_left)), out)
    out[~inside] = 0.0
    return out
