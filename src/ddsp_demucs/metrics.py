"""Evaluation metrics: SI-SDR, SiSEC18 SDR (BSSEval v4), spectral distances and F0 metrics.

Conventions (each function says its own shapes):

- Waveform metrics return one value per example: leading dimensions are kept, the sample axis (and for
  :func:`sdr` the channel axis) is reduced.
- :func:`si_sdr` and the spectral metrics accept numpy arrays or torch tensors; a torch input gives a torch
  output (differentiable, usable as a loss), a numpy input gives float64 numpy output.
- :func:`sdr` follows the I/O convention ``(n_samples, n_channels)`` and computes in float64 numpy.
- F0 inputs are frame arrays in Hz with 0 meaning unvoiced.

Why :func:`sdr` needs no distortion filters: in museval v4 (``bss_eval`` with ``bsseval_sources_version=False``,
time-invariant filters) the decomposition of an estimate of source ``j`` in a window is
``s_true + e_spat + e_interf + e_artif`` with ``e_artif = estimate - s_true - e_spat - e_interf`` (both signals
zero-padded by ``filters_len - 1`` samples), and the SDR is ``10 log10(||s_true||² / ||e_spat + e_interf +
e_artif||²)``. The three error terms add up to ``estimate - s_true`` whatever the filters are, so the v4 SDR of a
window is exactly ``10 log10(Σ ref² / Σ (est - ref)²)`` over the window's samples and channels; the padding adds
zeros to both sums. Only SIR, ISR and SAR need the 512-tap projections. A window is NaN when, in museval's test,
a reference or an estimate is "silent" there (its channel sum is zero at every sample of the window).
"""

from __future__ import annotations

import math
import warnings
from typing import Union

import numpy as np
import torch

from ddsp_demucs.dsp import spectral as _dsp_spectral

ArrayLike = Union[np.ndarray, torch.Tensor]

__all__ = [
    "si_sdr",
    "sdr",
    "sdr_frames",
    "spectral_convergence",
    "log_spectral_distance",
    "raw_pitch_accuracy",
    "raw_chroma_accuracy",
    "octave_error_rate",
    "voicing_recall",
    "voicing_false_alarm",
    "median_cents_error",
    "f0_metrics",
    "f0_on_frames",
    "BANDS_HZ",
    "BAND_NAMES",
    "REGION_NAMES",
    "band_error_db",
    "region_error_db",
    "interharmonic_share",
]


# ------------------------------------------------------------------------------------------------- helpers
def _as_float64_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _as_tensor_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both inputs as tensors (numpy -> float64), and whether the caller gave torch tensors."""
    is_torch = isinstance(estimate, torch.Tensor) or isinstance(reference, torch.Tensor)
    est = estimate if isinstance(estimate, torch.Tensor) else torch.from_numpy(np.asarray(estimate, dtype=np.float64))
    ref = (
        reference if isinstance(reference, torch.Tensor) else torch.from_numpy(np.asarray(reference, dtype=np.float64))
    )
    if is_torch:
        dtype = torch.promote_types(est.dtype, ref.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        est, ref = est.to(dtype), ref.to(device=est.device, dtype=dtype)
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference shapes differ: {tuple(est.shape)} vs {tuple(ref.shape)}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise ValueError(f"estimate and reference need a non-empty last (sample) axis, got shape {tuple(est.shape)}")
    if not (torch.isfinite(est).all() and torch.isfinite(ref).all()):
        raise ValueError("estimate or reference contains NaN or infinite values")
    return est, ref, is_torch


def _out(x: torch.Tensor, is_torch: bool) -> ArrayLike:
    return x if is_torch else x.detach().cpu().double().numpy()[()]


# --------------------------------------------------------------------------------------------------- SI-SDR
def si_sdr(estimate: ArrayLike, reference: ArrayLike, *, eps: float = 1e-8) -> ArrayLike:
    """Scale-invariant SDR in dB, one value per example.

    Args:
        estimate, reference: waveforms ``(..., n_samples)`` (any leading dims, e.g. ``(batch,)`` or
            ``(batch, channels)``), numpy or torch, same shape.
        eps: added to both energies so silent inputs give a finite value.

    Returns:
        ``(...)`` in dB: with means removed, ``10 log10(||a r||² / ||e - a r||²)`` where
        ``a = <e, r> / ||r||²``. A torch input gives a differentiable torch output; numpy gives float64.
    """
    est, ref, is_torch = _as_tensor_pair(estimate, reference)
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    value = 10 * torch.log10(((target * target).sum(-1) + eps) / ((noise * noise).sum(-1) + eps))
    return _out(value, is_torch)


# ---------------------------------------------------------------------------------------------- SiSEC18 SDR
def _stereo_layout(x: ArrayLike, name: str) -> np.ndarray:
    x = _as_float64_numpy(x, name)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2 or x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must be (..., n_samples, n_channels) with samples and channels, got {x.shape}")
    return x


def _frame_bounds(n_samples: int, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Window start/stop sample indices exactly as museval's ``Framing`` (a trailing partial window is dropped;
    a window longer than the signal gives one window over all of it)."""
    n_windows = int(math.floor((n_samples - window + hop) / hop)) if window < n_samples else 1
    index = np.arange(n_windows)
    starts = index * hop
    stops = np.minimum(index * hop + window, n_samples)
    return starts, stops


def _window_sums(per_sample: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Sum of ``per_sample[..., start:stop]`` for each window, ``(..., n_windows)``, in O(n_samples)."""
    padded = np.concatenate([per_sample, np.zeros(per_sample.shape[:-1] + (1,), per_sample.dtype)], axis=-1)
    bounds = np.stack([starts, stops], axis=1).reshape(-1)
    return np.add.reduceat(padded, bounds, axis=-1)[..., ::2]


def sdr_frames(
    estimate: ArrayLike,
    reference: ArrayLike,
    sample_rate: int,
    *,
    window_s: float = 1.0,
    hop_s: float = 1.0,
    joint_sources: bool = False,
) -> np.ndarray:
    """BSSEval v4 SDR of each window, in dB, exactly as ``museval.evaluate(..., mode="v4")``.

    Args:
        estimate, reference: ``(..., n_samples, n_channels)``, numpy or torch, same shape; computed in
            float64. A 1-D array is one mono signal; a 2-D array is always ``(n_samples, n_channels)``, so pass a
            mono batch as ``(batch, n_samples, 1)``.
        sample_rate: Hz; the window is ``int(window_s * sample_rate)`` samples and the hop
            ``int(hop_s * sample_rate)`` samples, as museval's ``eval_mus_track`` does.
        joint_sources: treat the first axis as museval's sources axis (``(n_sources, n_samples,
            n_channels)``): a window where any source's reference or estimate is silent is NaN for every
            source, as in museval's multi-source call. Otherwise each example is evaluated on its own, like a
            single-source ``museval.evaluate`` call.

    Returns:
        ``(..., n_windows)`` float64 dB; NaN in windows where the reference or the estimate is silent (channel
        sum zero at every sample), +inf where the estimate equals the reference. museval raises instead when a
        whole signal is silent; here all its windows are NaN.
    """
    est = _stereo_layout(estimate, "estimate")
    ref = _stereo_layout(reference, "reference")
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference shapes differ: {est.shape} vs {ref.shape}")
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    window, hop = int(window_s * sample_rate), int(hop_s * sample_rate)
    if window <= 0 or hop <= 0:
        raise ValueError(f"window_s and hop_s must give at least one sample, got {window_s} s and {hop_s} s")
    if joint_sources and est.ndim != 3:
        raise ValueError(f"joint_sources needs (n_sources, n_samples, n_channels) inputs, got shape {est.shape}")

    starts, stops = _frame_bounds(est.shape[-2], window, hop)
    ref_energy = _window_sums(np.einsum("...nc,...nc->...n", ref, ref), starts, stops)
    err = est - ref
    err_energy = _window_sums(np.einsum("...nc,...nc->...n", err, err), starts, stops)
    silent = (_window_sums((ref.sum(-1) != 0).astype(np.int64), starts, stops) == 0) | (
        _window_sums((est.sum(-1) != 0).astype(np.int64), starts, stops) == 0
    )
    if joint_sources:
        silent = np.broadcast_to(silent.any(axis=0, keepdims=True), silent.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = 10 * np.log10(ref_energy / err_energy)
    values[err_energy == 0] = np.inf
    values[silent] = np.nan
    return values


def sdr(
    estimate: ArrayLike,
    reference: ArrayLike,
    sample_rate: int,
    *,
    window_s: float = 1.0,
    hop_s: float = 1.0,
    joint_sources: bool = False,
) -> np.ndarray:
    """The SiSEC18 SDR in dB: median over 1 s windows of the BSSEval v4 SDR, NaN windows ignored.

    Agrees with museval v4 (``museval.evaluate`` with ``win = hop = sample_rate``, then ``np.nanmedian`` over
    windows, as museval's ``TrackStore`` aggregates) to float64 rounding; see :func:`sdr_frames` for the
    arguments and the module docstring for why no distortion filters are needed.

    Args:
        estimate, reference: ``(..., n_samples, n_channels)`` (1-D = mono), numpy or torch, same shape.
        sample_rate: Hz.

    Returns:
        ``(...)`` float64 dB (a numpy scalar for one example); NaN when every window is silent.
    """
    frames = sdr_frames(estimate, reference, sample_rate, window_s=window_s, hop_s=hop_s, joint_sources=joint_sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice -> NaN, which is the intended result
        return np.nanmedian(frames, axis=-1)[()]


# ------------------------------------------------------------------------------------- spectral distances
def spectral_convergence(
    estimate: ArrayLike, reference: ArrayLike, *, n_fft: int = 2048, hop_length: int = 512, eps: float = 1e-12
) -> ArrayLike:
    """Spectral convergence ``|| |X| - |Y| ||_F / (|| |Y| ||_F + eps)`` per example (dimensionless, 0 when equal).

    :func:`ddsp_demucs.dsp.spectral_convergence` (periodic Hann window, centred frames), also accepting numpy.

    Args:
        estimate, reference: waveforms ``(..., n_samples)``, numpy or torch, same shape.
        n_fft, hop_length: STFT size and hop in samples.
        eps: added to the denominator so a silent reference gives a finite value.

    Returns:
        ``(...)``; torch in, torch out (differentiable); numpy in, float64 out.
    """
    est, ref, is_torch = _as_tensor_pair(estimate, reference)
    return _out(_dsp_spectral.spectral_convergence(est, ref, n_fft=n_fft, hop_length=hop_length, eps=eps), is_torch)


def log_spectral_distance(
    estimate: ArrayLike, reference: ArrayLike, *, n_fft: int = 2048, hop_length: int = 512, floor: float = 1e-10
) -> ArrayLike:
    """Log-spectral distance in dB per example (0 when equal):
    ``mean over frames of sqrt(mean over bins of (10 log10((|X|² + floor) / (|Y|² + floor)))²)``.

    :func:`ddsp_demucs.dsp.log_spectral_distance` (periodic Hann window, centred frames), also accepting numpy.

    Args:
        estimate, reference: waveforms ``(..., n_samples)``, numpy or torch, same shape.
        n_fft, hop_length: STFT size and hop in samples.
        floor: power floor (linear power units) added to both spectra, keeping silent bins finite.

    Returns:
        ``(...)`` dB; torch in, torch out (differentiable); numpy in, float64 out.
    """
    est, ref, is_torch = _as_tensor_pair(estimate, reference)
    value = _dsp_spectral.log_spectral_distance(est, ref, n_fft=n_fft, hop_length=hop_length, floor=floor)
    return _out(value, is_torch)


# --------------------------------------------------------------------------------------------- F0 metrics
def _f0_inputs(
    ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, est_voicing: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(ref, est, ref_voiced, est_voiced)``; est voicing is ``est_voicing`` where given (forced off
    where ``est_f0_hz`` is 0, as mir_eval does), else ``est_f0_hz > 0``."""
    ref = _as_float64_numpy(ref_f0_hz, "ref_f0_hz")
    est = _as_float64_numpy(est_f0_hz, "est_f0_hz")
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


def raw_pitch_accuracy(ref_f0_hz: ArrayLike, est_f0_hz: ArrayLike, *, cent_tolerance: float = 50.0) -> np.ndarray:
    """Fraction of reference-voiced frames whose estimated pitch is within ``cent_tolerance`` cents (strictly).

    As mir_eval.melody: the estimate's voicing decision is ignored, a frame with ``est_f0_hz == 0`` counts as
    wrong. Inputs ``(..., n_frames)`` in Hz (0 = unvoiced); output ``(...)`` in [0, 1], NaN where the reference
    has no voiced frame.
    """
    ref, est, ref_voiced, _ = _f0_inputs(ref_f0_hz, est_f0_hz, None)
    with np.errstate(invalid="ignore"):
        correct = _cents_difference(ref, est) < cent_tolerance
    return _fraction(correct, ref_voiced)


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
    times = _as_float64_numpy(times_s, "times_s")
    f0 = _as_float64_numpy(f0_hz, "f0_hz")
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


# ------------------------------------------------------------------------------ where the error lies
BANDS_HZ = ((0.0, 300.0), (300.0, 1000.0), (1000.0, 3000.0), (3000.0, 8000.0), (8000.0, None))
BAND_NAMES = ("lt300", "300_1k", "1k_3k", "3k_8k", "gt8k")
REGION_NAMES = ("voiced", "unvoiced", "silent")


def _error_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(error, reference)`` as float64 ``(n_samples, n_channels)``; ``(n_samples,)`` inputs become one channel."""
    est, ref = _as_float64_numpy(estimate, "estimate"), _as_float64_numpy(reference, "reference")
    if est.shape != ref.shape or est.ndim not in (1, 2) or est.shape[0] == 0 or est.size == 0:
        raise ValueError(
            f"estimate and reference must share a non-empty (n_samples,) or (n_samples, n_channels) "
            f"shape, got {est.shape} and {ref.shape}"
        )
    ref = ref.reshape(ref.shape[0], -1)
    if not np.any(ref):
        raise ValueError("reference is all zeros: error relative to its energy is undefined")
    return est.reshape(ref.shape) - ref, ref


def _ratio_db(numerator: float, denominator: float) -> float:
    """``10 log10(numerator / denominator)``; ``-inf`` when the numerator is 0."""
    return 10.0 * math.log10(numerator / denominator) if numerator > 0 else -math.inf


def _power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Two-sided ``|STFT|²`` folded onto ``(n_channels, n_stft_frames, n_fft // 2 + 1)`` one-sided bins (bins other
    than DC and Nyquist count twice) of ``x (n_samples, n_channels)``: periodic Hann window, frames centred at
    ``m * hop`` samples, zero padding of ``n_fft // 2`` samples at both ends."""
    padded = np.pad(x.T, ((0, 0), (n_fft // 2, n_fft // 2)))
    n_stft = 1 + (padded.shape[1] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop][:, :n_stft]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[0] = 1.0
    weights[-1] = 1.0 if n_fft % 2 == 0 else 2.0
    return np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 * weights


def band_error_db(
    estimate: ArrayLike, reference: ArrayLike, sample_rate: int, *, n_fft: int = 2048, hop: int = 512
) -> dict[str, float]:
    """Error energy per frequency band, relative to the whole reference energy, in dB (lower is better).

    For band ``b`` of :data:`BANDS_HZ` (``[lo, hi)`` Hz, named by :data:`BAND_NAMES`)::

        band_error_db[b] = 10 log10(sum_{channels, frames, bins f in b} |E|² / sum_{channels, frames, all bins} |R|²)

    with ``E`` and ``R`` the STFTs (float64, periodic Hann of ``n_fft`` samples, hop ``hop``, centred frames with
    zero padding) of ``estimate - reference`` and ``reference``; bin ``k`` is at ``k * sample_rate / n_fft`` Hz and
    sums are over the two-sided spectrum (one-sided bins other than DC and Nyquist count twice). The bands
    partition the bins, so ``10 log10(sum_b 10 ** (band_error_db[b] / 10))`` is the whole-signal
    error-to-reference energy ratio in the STFT domain; with a hop of ``n_fft / 4`` (the squared Hann windows sum
    to a constant) it equals the waveform ratio ``sum (estimate - reference)² / sum reference²`` up to the first
    and last ``n_fft`` samples, where fewer frames overlap. A band with no error energy (or no bins, e.g. ``gt8k``
    below 16 kHz sampling) is ``-inf``.

    Args:
        estimate, reference: ``(n_samples,)`` or ``(n_samples, n_channels)``, same shape; numpy or torch.
        sample_rate: Hz. n_fft: STFT size in samples (>= 2). hop: STFT hop in samples (>= 1).

    Returns:
        ``{name: dB}`` for the names of :data:`BAND_NAMES`, in that order.

    Raises:
        ValueError: on mismatched or empty shapes, non-finite values, an all-zero reference or bad parameters.
    """
    if sample_rate <= 0 or n_fft < 2 or hop < 1:
        raise ValueError(f"need sample_rate > 0, n_fft >= 2, hop >= 1; got {sample_rate}, {n_fft}, {hop}")
    error, ref = _error_pair(estimate, reference)
    error_per_bin = _power_spectrogram(error, n_fft, hop).sum(axis=(0, 1))
    ref_total = float(_power_spectrogram(ref, n_fft, hop).sum())
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    out = {}
    for name, (lo, hi) in zip(BAND_NAMES, BANDS_HZ):
        in_band = (freqs >= lo) & (freqs < (math.inf if hi is None else hi))
        out[name] = _ratio_db(float(error_per_bin[in_band].sum()), ref_total)
    return out


def _sample_regions(
    reference: np.ndarray, sample_rate: int, f0_hz: np.ndarray, frame_rate: float, silence_db: float
) -> np.ndarray:
    """Region index per sample ``(n_samples,)``: 0 voiced, 1 unvoiced, 2 silent (see :func:`region_error_db`)."""
    n_samples = reference.shape[0]
    frame = np.minimum(np.floor(np.arange(n_samples) * frame_rate / sample_rate + 0.5).astype(int), f0_hz.size - 1)
    power = np.bincount(frame, weights=(reference**2).mean(axis=1), minlength=f0_hz.size)
    count = np.bincount(frame, minlength=f0_hz.size)
    mean_power = np.divide(power, count, out=np.zeros_like(power), where=count > 0)
    with np.errstate(divide="ignore"):
        level_db = 10.0 * np.log10(mean_power / mean_power.max())
    silent = level_db < silence_db
    regions = np.where(silent, 2, np.where(f0_hz > 0, 0, 1))
    return regions[frame]


def region_error_db(
    estimate: ArrayLike,
    reference: ArrayLike,
    sample_rate: int,
    reference_f0_hz: ArrayLike,
    frame_rate: float,
    *,
    silence_db: float = -50.0,
) -> dict[str, float]:
    """Error energy in the voiced, unvoiced and silent parts of the reference, relative to its whole energy, in dB.

    Each sample belongs to the F0 frame whose centre is nearest (frame ``j`` centred at ``j / frame_rate`` s, so it
    spans ``[(j - 0.5) / frame_rate, (j + 0.5) / frame_rate)``; samples past the last frame belong to the last).
    A frame is *silent* when the reference's RMS over its samples (channels averaged in power) is more than
    ``-silence_db`` dB below the loudest frame's; otherwise *voiced* where ``reference_f0_hz > 0`` and *unvoiced*
    elsewhere. For each region ``r``::

        region_error_db[r] = 10 log10( sum_{samples in r, channels} (estimate - reference)² / sum_{all} reference² )

    The regions partition the samples, so ``10 log10(sum_r 10 ** (region_error_db[r] / 10))`` is the whole-signal
    error-to-reference energy ratio. An empty or error-free region is ``-inf``.

    Args:
        estimate, reference: ``(n_samples,)`` or ``(n_samples, n_channels)``, same shape; numpy or torch.
        sample_rate: Hz.
        reference_f0_hz: ``(n_frames,)`` Hz, 0 where unvoiced, with ``n_frames`` within one of
            ``n_samples * frame_rate // sample_rate`` (the project's frame count).
        frame_rate: frames per second. silence_db: silence threshold in dB relative to the loudest frame (<= 0).

    Returns:
        ``{"voiced": dB, "unvoiced": dB, "silent": dB}``.

    Raises:
        ValueError: on mismatched shapes, an F0 track of the wrong length, an all-zero reference or bad parameters.
    """
    error, ref = _error_pair(estimate, reference)
    f0 = _as_float64_numpy(reference_f0_hz, "reference_f0_hz")
    if sample_rate <= 0 or not frame_rate or frame_rate <= 0 or silence_db > 0:
        raise ValueError(
            f"need sample_rate > 0, frame_rate > 0, silence_db <= 0; got {sample_rate}, {frame_rate}, {silence_db}"
        )
    expected = int(ref.shape[0] * frame_rate // sample_rate)
    if f0.ndim != 1 or f0.size == 0 or abs(f0.size - expected) > 1 or np.any(f0 < 0):
        raise ValueError(
            f"reference_f0_hz must be (n_frames,) >= 0 with about {expected} frames "
            f"(n_samples * frame_rate // sample_rate), got shape {f0.shape}"
        )
    regions = _sample_regions(ref, sample_rate, f0, frame_rate, silence_db)
    error_per_sample = (error**2).sum(axis=1)
    ref_total = float((ref**2).sum())
    return {
        name: _ratio_db(float(error_per_sample[regions == i].sum()), ref_total) for i, name in enumerate(REGION_NAMES)
    }


# ------------------------------------------------------------------------------------------ voice character
def interharmonic_share(
    audio: ArrayLike,
    sample_rate: int,
    f0_hz: ArrayLike,
    frame_rate: float,
    *,
    n_fft: int = 4096,
    band_hz: tuple[float, float] = (60.0, 5000.0),
    half_width_hz: float = 25.0,
) -> float:
    """Share of a voice's power, in its voiced frames, that lies away from the harmonics of its F0.

    ``audio (n_samples,)`` or ``(n_samples, n_channels)`` goes through a periodic-Hann STFT of ``n_fft`` samples,
    hop ``n_fft // 4``, frames centred at ``m * hop`` (as :func:`band_error_db`), power summed over channels. Each
    STFT frame takes the F0 of the F0 frame nearest its centre (F0 frame ``j`` at ``j / frame_rate`` s; 0 =
    unvoiced). In the voiced frames, a bin inside ``band_hz`` is *harmonic* when its centre frequency lies within
    ``half_width_hz`` of a multiple ``k * F0`` (``k >= 1``); the default covers the Hann main lobe (2 bins either
    side: 21.5 Hz at 44.1 kHz and 4096 points). Returns::

        sum_{voiced frames, band bins not harmonic} |X|^2 / sum_{voiced frames, band bins} |X|^2

    in ``[0, 1]``: about 0 for a perfectly periodic voice with the right F0 (Hann side lobes leak a few tenths of a
    percent), the share of non-harmonic bins for white noise; breath, roughness, reverberation and accompaniment
    raise it. NaN when no voiced frame holds power in the band.
    """
    x = _as_float64_numpy(audio, "audio")
    x = x[:, None] if x.ndim == 1 else x
    f0 = _as_float64_numpy(f0_hz, "f0_hz")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"audio must be (n_samples,) or (n_samples, n_channels), got shape {x.shape}")
    if f0.ndim != 1 or f0.size == 0 or np.any(f0 < 0):
        raise ValueError(f"f0_hz must be a non-empty (n_frames,) array >= 0 (0 = unvoiced), got shape {f0.shape}")
    if sample_rate <= 0 or not frame_rate or frame_rate <= 0 or n_fft < 4 or half_width_hz <= 0:
        raise ValueError(
            f"need sample_rate > 0, frame_rate > 0, n_fft >= 4, half_width_hz > 0; got {sample_rate}, "
            f"{frame_rate}, {n_fft}, {half_width_hz}"
        )
    if not 0 <= band_hz[0] < band_hz[1]:
        raise ValueError(f"band_hz must be (low, high) with 0 <= low < high, got {band_hz}")
    hop = n_fft // 4
    power = _power_spectrogram(x, n_fft, hop).sum(axis=0)  # (n_stft_frames, n_bins)
    centres_s = np.arange(power.shape[0]) * hop / sample_rate
    frame_f0 = f0[np.minimum(np.floor(centres_s * frame_rate + 0.5).astype(int), f0.size - 1)]
    bin_hz = np.arange(power.shape[1]) * sample_rate / n_fft
    in_band = (bin_hz >= band_hz[0]) & (bin_hz <= band_hz[1])
    voiced = frame_f0 > 0
    p, f = power[voiced][:, in_band], frame_f0[voiced][:, None]
    nearest = np.maximum(np.round(bin_hz[in_band][None, :] / f), 1.0)  # the nearest harmonic, k >= 1
    harmonic = np.abs(bin_hz[in_band][None, :] - nearest * f) <= half_width_hz
    total = float(p.sum())
    return float(p[~harmonic].sum() / total) if total > 0 else math.nan
