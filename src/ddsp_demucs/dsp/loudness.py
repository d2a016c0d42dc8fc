"""A-weighted loudness per frame."""

from __future__ import annotations

import math

import torch

from ddsp_demucs.dsp.core import check_positive, check_tensor

__all__ = ["a_weighting_db", "a_weighted_loudness", "LOUDNESS_FLOOR_DB"]

LOUDNESS_FLOOR_DB = -100.0
_FRAMES_PER_CHUNK = 512


def a_weighting_db(frequencies_hz: torch.Tensor) -> torch.Tensor:
    """IEC 61672-1 A-weighting in dB (0 dB at 1 kHz) of ``frequencies_hz (...)``; -inf at 0 Hz."""
    f2 = frequencies_hz.to(torch.float64) ** 2
    c1, c2, c3, c4 = 20.598997**2, 107.65265**2, 737.86223**2, 12194.217**2
    ra = c4 * f2 * f2 / ((f2 + c1) * torch.sqrt((f2 + c2) * (f2 + c3)) * (f2 + c4))
    return 20.0 * torch.log10(ra) + 2.0


def _frames(x: torch.Tensor, starts: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``x[:, s : s + n_fft]`` for each ``s`` of ``starts (n,)``: ``(batch, n_samples)`` -> ``(batch, n, n_fft)``.

    Without a gradient to track, whole rows of the view holding every shift (``unfold``) are copied, which is
    faster than gathering elements; through autograd the element gather is used, whose backward scatters only
    the frames (that of the view would span ``n_samples x n_fft``)."""
    if x.requires_grad and torch.is_grad_enabled():
        return x[:, starts[:, None] + torch.arange(n_fft, device=x.device)]
    return x.unfold(-1, n_fft, 1)[:, starts]


def a_weighted_loudness(
    audio: torch.Tensor,
    *,
    sample_rate: float,
    frame_rate: float,
    n_fft: int = 2048,
    floor_db: float = LOUDNESS_FLOOR_DB,
) -> torch.Tensor:
    """A-weighted loudness in dB per frame.

    Frame ``i`` is centred on sample ``round(i * sample_rate / frame_rate)`` (the audio is zero-padded by
    ``n_fft // 2`` at both ends) and windowed by a periodic Hann window ``w`` of ``n_fft`` samples. With ``X`` its
    ``rfft`` and ``A(f)`` the A-weighting as a power gain, the frame's power is the A-weighted power spectrum
    averaged over frequency, scaled by Parseval so that an unweighted spectrum gives the window-weighted mean
    square of the frame:

    ``P = sum_m c_m A(f_m) |X_m|^2 / (n_fft * sum(w^2))`` with ``c_m = 1`` at 0 Hz and Nyquist, 2 elsewhere;
    ``loudness = max(10 log10(P), floor_db)``.

    So loudness is in dB relative to a full-scale mean square: a 1 kHz sine of amplitude ``a`` reads
    ``20 log10(a) - 3.01`` dB; doubling the amplitude adds 6.02 dB; a 100 Hz tone reads about 19.1 dB below a
    1 kHz tone of equal amplitude (the A-weighting curve).

    Args:
        audio: ``(..., n_samples)`` waveform.
        sample_rate: Hz (> 0).
        frame_rate: frames per second (> 0).
        n_fft: analysis window in samples (default 2048).
        floor_db: minimum returned value in dB (default -100; silence reads exactly this).

    Returns:
        ``(..., n_frames)`` dB with ``n_frames = n_samples * frame_rate // sample_rate``; differentiable.
    """
    check_positive(sample_rate, "sample_rate")
    check_positive(frame_rate, "frame_rate")
    check_positive(n_fft, "n_fft", integer=True)
    check_tensor(audio, "audio")
    n_fft = int(n_fft)
    n_samples = audio.shape[-1]
    n_frames = int(math.floor(n_samples * frame_rate / sample_rate + 1e-9))
    if n_frames < 1:
        raise ValueError(
            f"audio of {n_samples} samples is shorter than one frame at frame_rate={frame_rate} and "
            f"sample_rate={sample_rate}"
        )
    lead = audio.shape[:-1]
    x = torch.nn.functional.pad(audio.reshape(-1, n_samples), (n_fft // 2, n_fft // 2))
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate, device=audio.device)
    weight = 10.0 ** (a_weighting_db(freqs) / 10.0)
    weight[0] = 0.0
    weight[1:-1] *= 2.0
    if n_fft % 2:  # no Nyquist bin for odd sizes
        weight[-1] *= 2.0
    weight = (weight / (n_fft * float((window.double() ** 2).sum()))).to(audio.dtype)
    weight_re_im = weight.repeat_interleave(2)  # applied to the squared real and imaginary parts of each bin
    centres = torch.round(torch.arange(n_frames, dtype=torch.float64) * (sample_rate / frame_rate)).long()
    centres = centres.to(audio.device)  # in padded coordinates: the first sample of each frame
    powers = []
    for s in range(0, n_frames, _FRAMES_PER_CHUNK):
        spec = torch.fft.rfft(_frames(x, centres[s : s + _FRAMES_PER_CHUNK], n_fft) * window)  # (B, chunk, bins)
        powers.append(torch.view_as_real(spec).square().flatten(-2) @ weight_re_im)
    power = torch.cat(powers, dim=-1)
    floor = 10.0 ** (floor_db / 10.0)
    return (10.0 * torch.log10(power.clamp_min(floor))).reshape(*lead, n_frames)
