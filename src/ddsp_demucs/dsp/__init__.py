"""Differentiable DSP in pure torch: synthesisers, effects, loudness and spectral losses.

Shapes and units are in each function's docstring; frame controls follow the convention of
:mod:`ddsp_demucs.dsp.core` (frame ``j`` at sample ``j * hop_length``, linear interpolation, edges held). Bad
inputs (wrong shapes, NaN controls, non-positive rates) raise ``ValueError`` naming the argument.
"""

from ddsp_demucs.dsp.core import fft_convolve, interpolation_weights, next_fast_len, power_of_two_frame, upsample
from ddsp_demucs.dsp.effects import Reverb
from ddsp_demucs.dsp.loudness import LOUDNESS_FLOOR_DB, a_weighted_loudness, a_weighting_db
from ddsp_demucs.dsp.spectral import (
    MultiResolutionSTFTLoss,
    log_spectral_distance,
    mask_ambiguity,
    separation_ambiguity,
    separator_mask,
    spectral_convergence,
    stft,
    stft_magnitude,
)
from ddsp_demucs.dsp.synths import filtered_noise, harmonic_phase, harmonic_synth, noise_impulse_responses

__all__ = [
    "harmonic_synth",
    "harmonic_phase",
    "filtered_noise",
    "noise_impulse_responses",
    "fft_convolve",
    "upsample",
    "interpolation_weights",
    "next_fast_len",
    "power_of_two_frame",
    "Reverb",
    "a_weighted_loudness",
    "a_weighting_db",
    "LOUDNESS_FLOOR_DB",
    "MultiResolutionSTFTLoss",
    "spectral_convergence",
    "log_spectral_distance",
    "stft",
    "stft_magnitude",
    "separation_ambiguity",
    "separator_mask",
    "mask_ambiguity",
]
