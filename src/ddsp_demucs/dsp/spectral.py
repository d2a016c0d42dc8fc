"""STFT magnitudes, spectral distances and the multi-resolution STFT loss.

All STFTs here: periodic Hann window of ``n_fft`` samples, centred frames (``torch.stft(center=True)``) with
reflect padding (zero padding when the signal is too short to reflect), magnitude ``|X|`` unnormalised (a sine of
amplitude ``a`` on a bin centre reads ``a * n_fft / 4``).
"""

from __future__ import annotations

import torch
from torch import nn

from ddsp_demucs.dsp.core import check_positive, check_tensor

__all__ = [
    "stft",
    "stft_magnitude",
    "spectral_convergence",
    "log_spectral_distance",
    "MultiResolutionSTFTLoss",
    "separation_ambiguity",
    "separator_mask",
    "mask_ambiguity",
]


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``|STFT|`` of ``audio (..., n_samples)`` -> ``(..., n_fft // 2 + 1, n_frames)``,
    ``n_frames = n_samples // hop_length + 1`` (see the module docstring for the framing)."""
    return stft(audio, n_fft, hop_length).abs()


def stft(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT of ``audio (..., n_samples)`` -> ``(..., n_fft // 2 + 1, n_frames)`` (the framing of the module
    docstring)."""
    check_positive(n_fft, "n_fft", integer=True)
    check_positive(hop_length, "hop_length", integer=True)
    check_tensor(audio, "audio")
    return _stft(audio, int(n_fft), int(hop_length))


def _stft(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """:func:`stft` without the argument checks (for callers that made them)."""
    lead, n = audio.shape[:-1], audio.shape[-1]
    if n < 1:
        raise ValueError(f"audio must have at least one sample, got shape {tuple(audio.shape)}")
    flat = audio.reshape(-1, n)
    window = torch.hann_window(n_fft, dtype=flat.dtype, device=flat.device)
    pad_mode = "reflect" if n > n_fft // 2 else "constant"
    # centring as torch.stft(center=True) pads; the framing and FFT get a closed-form backward
    padded = torch.nn.functional.pad(flat[:, None], (n_fft // 2, n_fft // 2), mode=pad_mode)[:, 0]
    spec = _FramedRFFT.apply(padded, window, hop_length)
    return spec.reshape(*lead, *spec.shape[-2:])


class _FramedRFFT(torch.autograd.Function):
    """``torch.stft(padded (batch, n), n_fft, hop, window, center=False)`` -> ``(batch, n_fft // 2 + 1, n_frames)``,
    with its backward written out: autograd's runs a full-size complex FFT per frame and scatters the frames back
    element by element.

    For a real frame ``x`` and ``X = rfft(x)``, a real loss with gradient ``G = dL/dRe X + i dL/dIm X`` has
    ``dL/dx_n = Re sum_k G_k exp(2 pi i k n / n_fft) = n_fft * irfft(G')_n``, where ``G'`` is ``G`` with every bin
    but 0 Hz and Nyquist halved (``irfft`` counts those twice). The frames' gradients, times the window, are then
    overlap-added in ``ceil(n_fft / hop)`` slabs of ``hop`` samples.
    """

    @staticmethod
    def forward(ctx, padded, window, hop: int):
        ctx.save_for_backward(window)
        ctx.hop, ctx.n_samples = hop, padded.shape[-1]
        return torch.stft(padded, window.shape[0], hop, window=window, center=False, return_complex=True)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (window,) = ctx.saved_tensors
        hop, n_fft = ctx.hop, window.shape[0]
        scale = torch.full((grad.shape[-2], 1), 0.5 * n_fft, dtype=window.dtype, device=window.device)
        scale[0] = n_fft
        if n_fft % 2 == 0:
            scale[-1] = n_fft
        frames = torch.fft.irfft(grad * scale, n=n_fft, dim=-2) * window[:, None]  # (batch, n_fft, n_frames)
        batch, _, n_frames = frames.shape
        slabs = -(-n_fft // hop)
        frames = torch.nn.functional.pad(frames, (0, 0, 0, slabs * hop - n_fft)).reshape(batch, slabs, hop, n_frames)
        summed = frames.new_zeros(batch, n_frames + slabs - 1, hop)
        for s in range(slabs):  # slab s of frame t covers samples [(t + s) hop, (t + s + 1) hop)
            summed[:, s : s + n_frames] += frames[:, s].transpose(1, 2)
        summed = summed.reshape(batch, -1)[:, : ctx.n_samples]
        return torch.nn.functional.pad(summed, (0, ctx.n_samples - summed.shape[-1])), None, None


def _pair(estimate: torch.Tensor, reference: torch.Tensor) -> None:
    check_tensor(estimate, "estimate")
    check_tensor(reference, "reference")
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate and reference must have the same shape, got {tuple(estimate.shape)} and {tuple(reference.shape)}"
        )


def spectral_convergence(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Spectral convergence per example: ``|| |X| - |Y| ||_F / (|| |Y| ||_F + eps)`` (0 when equal).

    Args:
        estimate, reference: waveforms ``(..., n_samples)`` of the same shape (``X`` and ``Y`` their STFTs).
        n_fft, hop_length: STFT size and hop in samples.
        eps: added to the denominator so a silent reference gives a finite value.

    Returns:
        ``(...)`` dimensionless; differentiable.
    """
    _pair(estimate, reference)
    x, y = stft_magnitude(estimate, n_fft, hop_length), stft_magnitude(reference, n_fft, hop_length)
    return torch.linalg.vector_norm(x - y, dim=(-2, -1)) / (torch.linalg.vector_norm(y, dim=(-2, -1)) + eps)


def log_spectral_distance(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor: float = 1e-10,
) -> torch.Tensor:
    """Log-spectral distance in dB per example (0 when equal):

    ``mean over frames of sqrt(mean over bins of (10 log10((|X|^2 + floor) / (|Y|^2 + floor)))^2)``.

    Args:
        estimate, reference: waveforms ``(..., n_samples)`` of the same shape.
        n_fft, hop_length: STFT size and hop in samples.
        floor: power floor (linear power units) added to both spectra, keeping silent bins finite.

    Returns:
        ``(...)`` dB; differentiable.
    """
    _pair(estimate, reference)
    x, y = stft_magnitude(estimate, n_fft, hop_length), stft_magnitude(reference, n_fft, hop_length)
    log_ratio = 10.0 * torch.log10((x * x + floor) / (y * y + floor))
    return torch.sqrt((log_ratio * log_ratio).mean(dim=-2)).mean(dim=-1)


class MultiResolutionSTFTLoss(nn.Module):
    """Multi-resolution STFT loss: the sum over FFT sizes ``n`` (hop ``round(n * (1 - overlap))``) of

    ``mag_weight * mean|X_n - Y_n| + logmag_weight * mean|log(X_n + eps) - log(Y_n + eps)|``

    with ``X_n, Y_n`` the STFT magnitudes (see the module docstring) of estimate and target and means over every
    batch element, bin and frame. Zero when estimate equals target.

    Args:
        fft_sizes: FFT sizes in samples.
        overlap: frame overlap in [0, 1) (0.75: hop of a quarter window).
        mag_weight, logmag_weight: weights of the linear and log magnitude L1 terms (>= 0).
        eps: added to magnitudes inside the log (default 1e-7).

    ``forward(estimate (..., n_samples), target (..., n_samples)) -> scalar``; differentiable in both.
    """

    def __init__(
        self,
        fft_sizes=(2048, 1024, 512, 256, 128, 64),
        overlap: float = 0.75,
        mag_weight: float = 1.0,
        logmag_weight: float = 1.0,
        eps: float = 1e-7,
    ):
        super().__init__()
        fft_sizes = tuple(int(n) for n in fft_sizes)
        if not fft_sizes:
            raise ValueError("fft_sizes must not be empty")
        for n in fft_sizes:
            check_positive(n, "fft size", integer=True)
        if not (0.0 <= overlap < 1.0):
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
        if not (mag_weight >= 0 and logmag_weight >= 0):
            raise ValueError(f"mag_weight and logmag_weight must be >= 0, got {mag_weight!r}, {logmag_weight!r}")
        check_positive(eps, "eps")
        self.fft_sizes = fft_sizes
        self.overlap = float(overlap)
        self.hops = tuple(max(1, int(round(n * (1.0 - overlap)))) for n in fft_sizes)
        self.mag_weight, self.logmag_weight, self.eps = float(mag_weight), float(logmag_weight), float(eps)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _pair(estimate, target)
        total = estimate.new_zeros(())
        for n_fft, hop in zip(self.fft_sizes, self.hops):
            x, y = _stft(estimate, n_fft, hop), _stft(target, n_fft, hop)  # both checked by _pair
            total = total + _MagnitudeL1.apply(x, y, self.mag_weight, self.logmag_weight, self.eps)
        return total

    def extra_repr(self) -> str:
        return (
            f"fft_sizes={self.fft_sizes}, overlap={self.overlap}, mag_weight={self.mag_weight}, "
            f"logmag_weight={self.logmag_weight}"
        )


class _MagnitudeL1(torch.autograd.Function):
    """``mag_weight * mean| |X| - |Y| | + logmag_weight * mean| log(|X| + eps) - log(|Y| + eps) |`` of complex
    spectra ``X, Y`` of one shape -> scalar, with its gradient in closed form.

    Both terms have the sign of ``|X| - |Y|`` (log is increasing), so ``d/d|X| = sign(|X| - |Y|) (mag_weight +
    logmag_weight / (|X| + eps)) / numel``, and ``d/dX = d/d|X| * X / |X|`` (0 where ``X = 0``, as ``abs``'s own
    gradient); ``Y`` likewise with the opposite sign. One fused pass per side instead of autograd's chain of
    complex ``abs`` / ``sgn`` steps, which on CPU are several times slower than the same work on real tensors.
    """

    @staticmethod
    def forward(ctx, x, y, mag_weight: float, logmag_weight: float, eps: float):
        mag_x, mag_y = _magnitude(x), _magnitude(y)
        diff = mag_x - mag_y
        total = mag_weight * diff.abs().sum() + logmag_weight * torch.log((mag_x + eps) / (mag_y + eps)).abs().sum()
        ctx.save_for_backward(x, y, mag_x, mag_y)
        ctx.weights = (mag_weight, logmag_weight, eps)
        return total / diff.numel()

    @staticmethod
    def backward(ctx, grad):
        x, y, mag_x, mag_y = ctx.saved_tensors
        mag_weight, logmag_weight, eps = ctx.weights
        scale = torch.sign(mag_x - mag_y) * (grad / mag_x.numel())
        grads = []
        sides = ((x, mag_x, 1.0, ctx.needs_input_grad[0]), (y, mag_y, -1.0, ctx.needs_input_grad[1]))
        for spec, mag, sign, needed in sides:
            if not needed:
                grads.append(None)
                continue
            d_mag = sign * scale * (mag_weight + logmag_weight / (mag + eps))
            grads.append(spec * torch.where(mag > 0, d_mag / mag, 0.0))
        return grads[0], grads[1], None, None, None


def separator_mask(separated_magnitude: torch.Tensor, mixture_magnitude: torch.Tensor) -> torch.Tensor:
    """A separator's effective mask in each time-frequency bin: ``m = clip(|S| / |M|, 0, 1)``, the separated
    vocal's magnitude over the mixture's (0 in a silent mixture bin). Both magnitudes ``(..., n_bins, n_frames)``
    on the same STFT grid; returns the same shape, in ``[0, 1]``. No gradient flows through it (it weighs a
    refinement, not a target)."""
    if separated_magnitude.shape != mixture_magnitude.shape:
        raise ValueError(
            f"separated and mixture magnitudes must have one shape, got {tuple(separated_magnitude.shape)} and "
            f"{tuple(mixture_magnitude.shape)}"
        )
    with torch.no_grad():
        ratio = separated_magnitude / mixture_magnitude.clamp_min(torch.finfo(mixture_magnitude.dtype).tiny)
        return torch.where(mixture_magnitude > 0, ratio, torch.zeros_like(ratio)).clamp(0.0, 1.0)


def mask_ambiguity(mask: torch.Tensor) -> torch.Tensor:
    """``4 m (1 - m)`` of an effective mask ``m`` in [0, 1] (:func:`separator_mask`): 0 where the separator kept
    the whole bin or none of it, 1 where it kept half."""
    return 4.0 * mask * (1.0 - mask)


def separation_ambiguity(separated_magnitude: torch.Tensor, mixture_magnitude: torch.Tensor) -> torch.Tensor:
    """How unsure a separator was in each time-frequency bin: :func:`mask_ambiguity` of its
    :func:`separator_mask` ``m = clip(|S| / |M|, 0, 1)``.

    0 where the separator kept the whole bin (``m >= 1``) or none of it (``m = 0``, or a silent mixture bin), 1
    where it kept half; a mask separator that gives every bin wholly to one source (the ideal mask of sources that
    do not overlap) reads 0 everywhere. Shapes as :func:`separator_mask`; in ``[0, 1]``, no gradient.
    """
    return mask_ambiguity(separator_mask(separated_magnitude, mixture_magnitude))


def _magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``|spec|`` of a complex tensor as ``sqrt(re^2 + im^2)`` on its real view (faster on CPU than ``abs``)."""
    parts = torch.view_as_real(spec)
    re, im = parts[..., 0], parts[..., 1]
    return torch.addcmul(re * re, im, im).sqrt_()
