"""Core DSP helpers: input checks, frame-to-sample upsampling and FFT convolution.

Frame convention shared by every function of :mod:`ddsp_demucs.dsp` that takes frame controls: frame ``j`` of
``n_frames`` sits at sample ``j * hop_length``; ``hop_length`` defaults to ``n_samples / n_frames`` (exact for the
dataset convention ``n_frames = n_samples * frame_rate // sample_rate`` whenever the frame rate divides the
sample rate; pass ``hop_length=sample_rate / frame_rate`` to be exact always, e.g. for a centred STFT grid of
``n_samples // hop + 1`` frames pass ``hop_length=hop``). Between frames values are interpolated linearly; before
frame 0 and after the last frame the edge frame's value is held.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["upsample", "interpolation_weights", "fft_convolve", "next_fast_len", "power_of_two_frame"]


# ------------------------------------------------------------------------------------------------ checks
def check_tensor(x: torch.Tensor, name: str, *, min_dim: int = 1, finite: bool = True) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a floating tensor with ``>= min_dim`` dims and (when
    ``finite``) no NaN or infinity."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}")
    if finite and x.numel() and not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ValueError(f"{name} contains {bad} values (shape {tuple(x.shape)})")
    return x


def check_positive(value: float, name: str, *, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0 (an ``int`` when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_nonnegative(x: torch.Tensor, name: str) -> None:
    if x.numel() and bool((x < 0).any()):
        raise ValueError(f"{name} must be >= 0, got minimum {float(x.min()):.4g}")


def resolve_hop(n_frames: int, n_samples: int, hop_length: float | None) -> float:
    """Samples between frames: ``hop_length`` if given (checked), else ``n_samples / n_frames``."""
    if hop_length is None:
        return n_samples / n_frames
    check_positive(hop_length, "hop_length")
    return float(hop_length)


# ------------------------------------------------------------------------------------------- upsampling
def interpolation_weights(
    n_frames: int, n_samples: int, hop_length: float | None = None, *, device=None, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear-interpolation indices and weights from frames to samples (see the module's frame convention).

    Returns ``lo (n_samples,)`` and ``hi (n_samples,)`` int64 frame indices and ``w (n_samples,)`` such that the
    value at sample ``n`` is ``(1 - w[n]) * frames[lo[n]] + w[n] * frames[hi[n]]``. Positions are computed in
    float64 so long signals do not lose sample accuracy.
    """
    check_positive(n_frames, "n_frames", integer=True)
    check_positive(n_samples, "n_samples", integer=True)
    hop = resolve_hop(n_frames, n_samples, hop_length)
    pos = (torch.arange(n_samples, device=device, dtype=torch.float64) / hop).clamp(0, n_frames - 1)
    lo = pos.floor().long().clamp(max=n_frames - 1)
    hi = (lo + 1).clamp(max=n_frames - 1)
    w = (pos - lo.to(torch.float64)).to(dtype)
    return lo, hi, w


def upsample(frames: torch.Tensor, n_samples: int, *, hop_length: float | None = None, dim: int = -1) -> torch.Tensor:
    """Upsample frame values to the sample rate by linear interpolation (edge frames held).

    Args:
        frames: ``(..., n_frames, ...)`` with the frame axis at ``dim``.
        n_samples: output length along ``dim``.
        hop_length: samples between frames (float allowed); default ``n_samples / n_frames``.
        dim: the frame axis.

    Returns:
        ``frames`` with axis ``dim`` resampled to ``n_samples``; differentiable in ``frames``.
    """
    check_tensor(frames, "frames", finite=False)
    dim = dim % frames.dim()
    lo, hi, w = interpolation_weights(
        frames.shape[dim], n_samples, hop_length, device=frames.device, dtype=frames.dtype
    )
    w = w.reshape((-1,) + (1,) * (frames.dim() - dim - 1))
    a, b = frames.index_select(dim, lo), frames.index_select(dim, hi)
    return a + (b - a) * w


def power_of_two_frame(sample_rate: int, seconds: float) -> int:
    """The power of two closest to ``seconds * sample_rate`` samples (at least 16): an STFT window length that
    keeps its duration at any rate."""
    return int(2 ** round(math.log2(max(seconds * sample_rate, 16))))


# -------------------------------------------------------------------------------------- FFT convolution
def next_fast_len(n: int) -> int:
    """Smallest integer >= ``n`` of the form 2^a 3^b 5^c (fast FFT sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(
    audio: torch.Tensor, impulse_response: torch.Tensor, *, delay: int = 0, hop_length: float | None = None
) -> torch.Tensor:
    """Linear convolution by FFT, cropped to the input length: ``y[n] = sum_m h[m] x[n + delay - m]``.

    Two forms, told apart by the number of dimensions:

    - time-invariant: ``impulse_response (..., ir_size)`` with as many dims as ``audio (..., n_samples)``; leading
      dims broadcast.
    - time-varying: ``impulse_response (..., n_frames, ir_size)`` with one dim more than ``audio``. Frame ``j`` sits
      at sample ``j * hop_length`` (default ``n_samples / n_frames``). The output is
      ``sum_j h_j * (w_j x)`` where ``w_j`` are the linear-interpolation (triangular) weights of frame ``j``, which
      sum to 1 at every sample: equal frames give exactly the time-invariant result, and the filter crossfades
      smoothly between frames.

    Args:
        audio: ``(..., n_samples)`` real waveform.
        impulse_response: see above.
        delay: samples dropped from the start of the full convolution (``(ir_size - 1) // 2`` removes the delay of
            an odd-length linear-phase filter); ``0 <= delay < ir_size``.
        hop_length: samples between IR frames (time-varying form only).

    Returns:
        ``(..., n_samples)``; differentiable in both inputs.
    """
    check_tensor(audio, "audio")
    check_tensor(impulse_response, "impulse_response")
    n_samples, ir_size = audio.shape[-1], impulse_response.shape[-1]
    if n_samples < 1 or ir_size < 1:
        raise ValueError(
            f"audio and impulse_response must be non-empty, got shapes {tuple(audio.shape)} and "
            f"{tuple(impulse_response.shape)}"
        )
    if not (isinstance(delay, int) and 0 <= delay < ir_size):
        raise ValueError(f"delay must be an int in [0, ir_size={ir_size}), got {delay!r}")
    if impulse_response.dim() == audio.dim():
        return _convolve_invariant(audio, impulse_response, delay)
    if impulse_response.dim() == audio.dim() + 1:
        return _convolve_varying(audio, impulse_response, delay, hop_length)
    raise ValueError(
        f"impulse_response must have as many dims as audio {tuple(audio.shape)} (one IR) or one more "
        f"(one IR per frame), got shape {tuple(impulse_response.shape)}"
    )


def _convolve_invariant(audio: torch.Tensor, ir: torch.Tensor, delay: int) -> torch.Tensor:
    n, m = audio.shape[-1], ir.shape[-1]
    n_fft = next_fast_len(n + m - 1)
    spec = torch.fft.rfft(audio, n_fft) * torch.fft.rfft(ir, n_fft)
    return torch.fft.irfft(spec, n_fft)[..., delay : delay + n]


def _convolve_varying(audio: torch.Tensor, ir: torch.Tensor, delay: int, hop_length: float | None) -> torch.Tensor:
    """Blocks of ``block`` samples (``block <= hop``), each spanning at most ``n_near`` frames; per block,
    ``sum_m conv(W_m x_block, h_{j_b + m})`` in the frequency domain, then overlap-add with stride ``block``."""
    n_samples, n_frames, ir_size = audio.shape[-1], ir.shape[-2], ir.shape[-1]
    hop = resolve_hop(n_frames, n_samples, hop_length)
    block = int(max(1, min(math.floor(hop), 4096, n_samples)))
    n_blocks = -(-n_samples // block)
    lo, hi, w = interpolation_weights(n_frames, n_blocks * block, hop, device=audio.device, dtype=audio.dtype)
    first = lo[::block]  # (n_blocks,) first frame of each block
    n_near = int((hi.view(n_blocks, block) - first[:, None]).max()) + 1
    rel_lo = lo.view(n_blocks, block) - first[:, None]  # (n_blocks, block)
    rel_hi = hi.view(n_blocks, block) - first[:, None]
    wb = w.view(n_blocks, block)
    weights = audio.new_zeros(n_blocks, n_near, block)
    weights.scatter_add_(1, rel_lo[:, None], (1 - wb)[:, None])
    weights.scatter_add_(1, rel_hi[:, None], wb[:, None])
    frame_idx = (first[:, None] + torch.arange(n_near, device=audio.device)).clamp(max=n_frames - 1)

    n_fft = next_fast_len(block + ir_size - 1)
    x = F.pad(audio, (0, n_blocks * block - n_samples)).unflatten(-1, (n_blocks, 1, block))
    xw = torch.fft.rfft(x * weights, n_fft)  # (..., n_blocks, n_near, bins)
    h = torch.fft.rfft(ir, n_fft)  # (..., n_frames, bins)
    hb = h[..., frame_idx.reshape(-1), :].unflatten(-2, (n_blocks, n_near))
    y = torch.fft.irfft((xw * hb).sum(-2), n_fft)[..., : block + ir_size - 1]  # (..., n_blocks, seg)
    seg = y.shape[-1]
    lead = y.shape[:-2]
    cols = y.reshape(-1, n_blocks, seg).transpose(1, 2)  # (prod(lead), seg, n_blocks)
    out_len = (n_blocks - 1) * block + seg
    out = F.fold(cols, output_size=(1, out_len), kernel_size=(1, seg), stride=(1, block))
    return out.reshape(*lead, out_len)[..., delay : delay + n_samples]
