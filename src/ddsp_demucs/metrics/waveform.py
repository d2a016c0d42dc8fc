"""Waveform metrics: SI-SDR and the SiSEC18 SDR (BSSEval v4), one value per example.

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

import numpy as np
import torch

from ddsp_demucs.metrics.arrays import ArrayLike, as_float64_numpy, as_tensor_pair, to_output


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
    est, ref, is_torch = as_tensor_pair(estimate, reference)
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    value = 10 * torch.log10(((target * target).sum(-1) + eps) / ((noise * noise).sum(-1) + eps))
    return to_output(value, is_torch)


# ---------------------------------------------------------------------------------------------- SiSEC18 SDR
def _stereo_layout(x: ArrayLike, name: str) -> np.ndarray:
    x = as_float64_numpy(x, name)
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
