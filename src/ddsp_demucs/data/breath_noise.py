"""Training windows whose voice is made breathier: the model meets voices with more power between their harmonics.

``make bench-quality-diagnosis`` found every song the recommended model makes worse at a network's separation
quality sung by a test singer with more power between the harmonics (breath, roughness, room) than any training
singer. :func:`add_breath_noise` adds, in a random part of a batch's windows, noise shaped like the window's true
vocal (its spectral envelope, frame by frame, without the harmonic fine structure) to the true vocal, the
separated input and the mixture alike: the separator's error is unchanged, the voice is breathier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddsp_demucs.data.input_blend import moved_loudness

__all__ = ["vocal_shaped_noise", "add_breath_noise"]

N_FFT, HOP = 1024, 256  # the noise's STFT: 46 ms at 22.05 kHz, fine enough to follow syllables
ENVELOPE_BINS = 9  # the envelope: the magnitude averaged over 9 bins (194 Hz at 22.05 kHz), above most voices' F0


def vocal_shaped_noise(vocal: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise ``(B, n_samples)`` with the smoothed STFT magnitude of ``vocal (B, n_samples)`` in every frame and
    random phase: complex Gaussian STFT bins (one draw each from ``generator``) times the vocal's magnitude averaged
    over :data:`ENVELOPE_BINS` neighbouring bins, back through the inverse STFT (Hann, :data:`N_FFT` /
    :data:`HOP`). Its power is about the vocal's; it holds none of the vocal's harmonic fine structure."""
    window = torch.hann_window(N_FFT, dtype=vocal.dtype, device=vocal.device)
    spec = torch.stft(vocal, N_FFT, HOP, window=window, center=True, return_complex=True)
    magnitude = spec.abs()  # (B, bins, frames)
    b, n_bins, n_frames = magnitude.shape
    envelope = F.avg_pool1d(
        magnitude.transpose(1, 2).reshape(b * n_frames, 1, n_bins),
        ENVELOPE_BINS,
        stride=1,
        padding=ENVELOPE_BINS // 2,
        count_include_pad=False,
    ).reshape(b, n_frames, n_bins)
    draws = torch.randn((2, b, n_bins, n_frames), generator=generator, dtype=vocal.dtype).to(vocal.device)
    noise = torch.complex(draws[0], draws[1]) * (0.5**0.5) * envelope.transpose(1, 2)
    return torch.istft(noise, N_FFT, HOP, window=window, center=True, length=vocal.shape[-1])


def add_breath_noise(
    batch: dict, *, fraction: float, max_share: float, generator: torch.Generator, sample_rate: int, frame_rate: int
) -> dict:
    """A copy of ``batch`` in which each window, with probability ``fraction``, has :func:`vocal_shaped_noise` of
    its ``target_audio`` added to ``target_audio``, ``input_audio`` and ``mixture_audio`` (where present) at a
    power ``share ~ U[0, max_share]`` times the target's (one draw per window).

    ``batch`` holds ``(B, n_samples)`` audio at ``sample_rate`` and ``loudness_db (B, n_frames)`` at ``frame_rate``
    (the input's A-weighted loudness, measured on the whole song): a changed window's ``loudness_db`` moves by the
    change the noise makes to the loudness measured on the window (:func:`~ddsp_demucs.data.input_blend.
    moved_loudness`). F0 and confidence describe the vocal and are kept. Draws come from ``generator``
    only, so a batch is changed the same way on every run.
    """
    if not 0.0 <= fraction <= 1.0 or not 0.0 <= max_share:
        raise ValueError(f"need fraction in [0, 1] and max_share >= 0, got {fraction} and {max_share}")
    targets = batch["target_audio"]
    n_windows = targets.shape[0]
    chosen = torch.rand(n_windows, generator=generator) < fraction
    share = torch.rand(n_windows, generator=generator) * max_share
    if not bool(chosen.any()) or max_share == 0:
        return dict(batch)
    rows = chosen.nonzero()[:, 0].to(targets.device)
    with torch.no_grad():
        noise = vocal_shaped_noise(targets[rows], generator)
        gain = torch.sqrt(
            share[chosen].to(targets.device, targets.dtype)[:, None]
            * targets[rows].square().sum(-1, keepdim=True)
            / noise.square().sum(-1, keepdim=True).clamp_min(torch.finfo(targets.dtype).tiny)
        )
        noise = gain * noise
    out = dict(batch)
    for key in ("target_audio", "input_audio", "mixture_audio"):
        if key in batch:
            audio = batch[key].clone()
            audio[rows] += noise
            out[key] = audio
    out["loudness_db"] = moved_loudness(
        batch["loudness_db"],
        rows,
        batch["input_audio"][rows],
        out["input_audio"][rows],
        sample_rate=sample_rate,
        frame_rate=frame_rate,
    )
    return out
