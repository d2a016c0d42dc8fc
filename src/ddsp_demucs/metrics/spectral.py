"""Spectral distances per example, numpy or torch: those of :mod:`ddsp_demucs.dsp.spectral` (the one source),
also accepting numpy."""

from __future__ import annotations

from ddsp_demucs.dsp import spectral as dsp_spectral
from ddsp_demucs.metrics.arrays import ArrayLike, as_tensor_pair, to_output


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
    est, ref, is_torch = as_tensor_pair(estimate, reference)
    return to_output(dsp_spectral.spectral_convergence(est, ref, n_fft=n_fft, hop_length=hop_length, eps=eps), is_torch)


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
    est, ref, is_torch = as_tensor_pair(estimate, reference)
    value = dsp_spectral.log_spectral_distance(est, ref, n_fft=n_fft, hop_length=hop_length, floor=floor)
    return to_output(value, is_torch)
