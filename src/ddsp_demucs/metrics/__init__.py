"""Metrics, one module per kind: waveform (SI-SDR, SiSEC18 SDR: ``waveform``), spectral distances (``spectral``),
F0 (``f0``), the error per band and region and the voice character (``bands``).

Conventions (each function says its own shapes):

- Waveform metrics return one value per example: leading dimensions are kept, the sample axis (and for
  :func:`sdr` the channel axis) is reduced.
- :func:`si_sdr` and the spectral metrics accept numpy arrays or torch tensors; a torch input gives a torch
  output (differentiable, usable as a loss), a numpy input gives float64 numpy output.
- :func:`sdr` follows the I/O convention ``(n_samples, n_channels)`` and computes in float64 numpy.
- F0 inputs are frame arrays in Hz with 0 meaning unvoiced.
"""

from ddsp_demucs.metrics.bands import (
    BAND_NAMES,
    BANDS_HZ,
    REGION_NAMES,
    band_error_db,
    error_change_by_harmonicity,
    harmonic_levels_db,
    interharmonic_share,
    region_error_db,
)
from ddsp_demucs.metrics.f0 import (
    f0_metrics,
    f0_on_frames,
    median_cents_error,
    octave_error_rate,
    pitch_correct_frames,
    raw_chroma_accuracy,
    raw_pitch_accuracy,
    voicing_false_alarm,
    voicing_recall,
)
from ddsp_demucs.metrics.spectral import log_spectral_distance, spectral_convergence
from ddsp_demucs.metrics.waveform import sdr, sdr_frames, si_sdr

__all__ = [
    "si_sdr",
    "sdr",
    "sdr_frames",
    "spectral_convergence",
    "log_spectral_distance",
    "pitch_correct_frames",
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
    "error_change_by_harmonicity",
    "interharmonic_share",
    "harmonic_levels_db",
]
