"""Analyses of a trained refinement model: F0 noise (:mod:`~ddsp_demucs.analysis.f0_noise`), training
stability (:mod:`~ddsp_demucs.analysis.stability`), output stability (:mod:`~ddsp_demucs.analysis.output_stability`),
and the perturbations they apply
(:mod:`~ddsp_demucs.analysis.perturb`). ``ddsp-demucs analyze f0-noise | stability`` is the CLI."""

from ddsp_demucs.analysis.f0_noise import f0_accuracy, f0_noise_analysis, perturb_controls, write_f0_noise_outputs
from ddsp_demucs.analysis.output_stability import output_stability, write_output_stability_outputs
from ddsp_demucs.analysis.perturb import add_noise, apply_gain, flip_voicing, jitter_cents, octave_errors, shift
from ddsp_demucs.analysis.stability import (
    SPIKE_FACTOR,
    SPIKE_MIN_HISTORY,
    SPIKE_WINDOW,
    StepRecorder,
    loss_spikes,
    run_name,
    stability_analysis,
    train_run,
)

__all__ = [
    "f0_accuracy",
    "f0_noise_analysis",
    "perturb_controls",
    "write_f0_noise_outputs",
    "add_noise",
    "apply_gain",
    "flip_voicing",
    "jitter_cents",
    "octave_errors",
    "shift",
    "SPIKE_FACTOR",
    "SPIKE_MIN_HISTORY",
    "SPIKE_WINDOW",
    "StepRecorder",
    "loss_spikes",
    "output_stability",
    "run_name",
    "stability_analysis",
    "train_run",
    "write_output_stability_outputs",
]
