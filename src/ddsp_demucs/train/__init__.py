"""Deprecated import path, kept for the original quick-start: training is the package :mod:`ddsp_demucs.training`,
one module per concern. The public names ``ddsp_demucs.train`` had are re-exported here."""

from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.training.batches import ResumableSampler, collate
from ddsp_demucs.training.callbacks import create_callbacks
from ddsp_demucs.training.checkpoints import MODEL_CLASSES, load_model
from ddsp_demucs.training.environment import TrainingDiverged, setup_training_environment
from ddsp_demucs.training.losses import LossTerms, MelLoss
from ddsp_demucs.training.module import DDSPLightningModule
from ddsp_demucs.training.resume import RESUMABLE_TRAINING_KEYS, check_resumable, config_changes
from ddsp_demucs.training.schedule import warmup_cosine
from ddsp_demucs.training.trainer import DDSPTrainer, train_from_config

__all__ = [
    "DDSPTrainer",
    "DDSPLightningModule",
    "create_callbacks",
    "setup_training_environment",
    "load_model",
    "MODEL_CLASSES",
    "train_from_config",
    "check_resumable",
    "config_changes",
    "RESUMABLE_TRAINING_KEYS",
    "LossTerms",
    "MelLoss",
    "ResumableSampler",
    "TrainingDiverged",
    "warmup_cosine",
    "collate",
    "ResidualDDSPDecoder",
]
