"""The callbacks of a training run: ``best.ckpt`` and ``last.ckpt``, early stopping, the learning-rate monitor and
the loggers."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from ddsp_demucs.training.logger import ResumableCSVLogger


class _LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``: saved at each validation (and every ``every_n_train_steps``) and when training ends.

    A plain ``ModelCheckpoint`` (no monitor, top 1, named ``last``) plus the public ``on_train_end`` hook. Not
    ``ModelCheckpoint(save_last=True)``: at the end of training that saves ``last.ckpt`` only if the run saved no
    checkpoint before, so the steps after the last periodic save would be missing from it.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.dirpath is not None and not trainer.interrupted:
            trainer.save_checkpoint(os.path.join(self.dirpath, "last.ckpt"), weights_only=False)  # resumable


def create_callbacks(
    checkpoint_dir: str | os.PathLike,
    log_dir: str | os.PathLike | None = None,
    *,
    monitor: str = "val/loss",
    patience: int = 10,
    every_n_train_steps: int = 0,
    early_stopping: bool = True,
) -> list:
    """Callbacks and loggers for :meth:`DDSPTrainer.fit`.

    ``checkpoint_dir/best.ckpt`` (lowest ``monitor``) and ``checkpoint_dir/last.ckpt`` (each validation,
    every ``every_n_train_steps`` if > 0, and at the end), early stopping after ``patience`` validations
    without improvement, a learning-rate monitor, and (if ``log_dir``) loggers under ``log_dir``: TensorBoard
    (``tensorboard/``) and CSV (``csv/metrics.csv``, continued when a run resumes: :class:`ResumableCSVLogger`).
    Loggers are returned in the same list; ``fit`` separates them. Only Lightning's public API is used.
    """
    checkpoint_dir = Path(checkpoint_dir)
    items: list = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="best",
            monitor=monitor,
            mode="min",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        _LastCheckpoint(
            dirpath=checkpoint_dir,
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_train_steps=every_n_train_steps or None,
            enable_version_counter=False,
        ),
        LearningRateMonitor(logging_interval="step"),
    ]
    if early_stopping:
        items.append(EarlyStopping(monitor=monitor, mode="min", patience=patience, check_finite=False))
    if log_dir is not None:
        items += [
            TensorBoardLogger(str(log_dir), name="tensorboard", version=""),
            ResumableCSVLogger(str(log_dir), name="csv", version=""),
        ]
    return items


__all__ = ["create_callbacks"]
