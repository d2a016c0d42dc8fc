"""The original quick-start's import paths still work (thin re-exports of the stage packages), and checkpoints name
their model class as before the move to ``ddsp_demucs.model.decoder``."""

from __future__ import annotations

import importlib

import pytest
from helpers import tiny_model

from ddsp_demucs.training.checkpoints import MODEL_CLASSES, model_class_name

# (old path, name, the module that defines it now)
OLD_PATHS = [
    ("ddsp_demucs.demucs_wrappers", "DemucsSeparator", "ddsp_demucs.separation.demucs"),
    ("ddsp_demucs.data", "build_dataset_from_segments", "ddsp_demucs.data.dataset"),
    ("ddsp_demucs.data", "musdb_tracks", "ddsp_demucs.corpus.sources"),
    ("ddsp_demucs.model", "ResidualDDSPDecoder", "ddsp_demucs.model.decoder"),
    ("ddsp_demucs.train", "load_model", "ddsp_demucs.training.checkpoints"),
    ("ddsp_demucs.train", "DDSPTrainer", "ddsp_demucs.training.trainer"),
    ("ddsp_demucs.train", "create_callbacks", "ddsp_demucs.training.callbacks"),
    ("ddsp_demucs.train", "setup_training_environment", "ddsp_demucs.training.environment"),
    ("ddsp_demucs.evaluate", "evaluate_model", "ddsp_demucs.evaluation.core"),
    ("ddsp_demucs.evaluate", "summarize", "ddsp_demucs.evaluation.summary"),
    ("ddsp_demucs.evaluate", "plot_evaluation_results", "ddsp_demucs.evaluation.plots"),
    ("ddsp_demucs.utils", "load_config", "ddsp_demucs.core.utils"),
    ("ddsp_demucs.refine", "refine_vocals", "ddsp_demucs.inference.refine"),
    ("ddsp_demucs.metrics", "si_sdr", "ddsp_demucs.metrics.waveform"),
    ("ddsp_demucs.metrics", "sdr", "ddsp_demucs.metrics.waveform"),
    ("ddsp_demucs.features", "extract_f0", "ddsp_demucs.features.pitch"),
    ("ddsp_demucs.dsp", "harmonic_synth", "ddsp_demucs.dsp.synths"),
]


@pytest.mark.parametrize("old, name, new", OLD_PATHS)
def test_old_import_path_is_the_new_object(old, name, new):
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_checkpoints_name_the_model_class_as_before():
    assert model_class_name(tiny_model()) == "ddsp_demucs.model.ResidualDDSPDecoder"
    assert MODEL_CLASSES["ddsp_demucs.model.ResidualDDSPDecoder"].__module__ == "ddsp_demucs.model.decoder"
