"""Training of :class:`~ddsp_demucs.model.ResidualDDSPDecoder` on Lightning: the facade :class:`DDSPTrainer` over
:class:`~ddsp_demucs.training.module.DDSPLightningModule`, and :func:`train_from_config`, what the CLI runs.

Public API (the original README's, in PyTorch; the names come from the modules of :mod:`ddsp_demucs.training`)::

    setup_training_environment(use_mixed_precision=False, seed=0, threads=None)
    trainer = DDSPTrainer(model, config=config)           # facade over DDSPLightningModule (trainer.module)
    trainer.compile(optimizer=...)                         # optional: factory, optimizer class or config
    callbacks = create_callbacks(checkpoint_dir, log_dir)  # checkpoints, early stopping, LR monitor, loggers
    trainer.fit(train_dataset, validation_data=val_dataset, epochs=..., callbacks=callbacks)
    model = load_model("runs/x/checkpoints/best.ckpt")     # from the checkpoint alone
    train_from_config(config, train_dataset, val_dataset, out_dir, resume=True)  # what the CLI runs

Datasets are any ``torch.utils.data.Dataset`` of dicts with ``input_audio (n_samples,)``, ``target_audio``,
``f0_hz (n_frames,)``, ``f0_confidence``, ``loudness_db`` (``track`` / ``start_s`` are passed through).

Resumption is exact: the training order comes from :class:`~ddsp_demucs.training.batches.ResumableSampler` (a
permutation per pass seeded by ``training.seed`` and the pass number, sharded over ranks), the number of batches
consumed is saved in every checkpoint, and the filtered-noise generator is seeded per (seed, batch index, rank).
Resuming from ``last.ckpt`` continues with the next unseen batch: no step is lost or repeated.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import Config, TrainingConfig
from ddsp_demucs.core.utils import (
    config_to_dict,
    from_dict,
    get_logger,
    route_lightning_logging,
    write_text_atomic,
)
from ddsp_demucs.separation.demucs import training_songs_warning
from ddsp_demucs.training.callbacks import create_callbacks
from ddsp_demucs.training.checkpoints import AtomicCheckpointIO
from ddsp_demucs.training.environment import default_precision, setup_training_environment
from ddsp_demucs.training.losses import LossTerms
from ddsp_demucs.training.module import DDSPLightningModule
from ddsp_demucs.training.provenance import training_provenance
from ddsp_demucs.training.resume import check_resumable

log = get_logger("train")
route_lightning_logging()


class DDSPTrainer:
    """Train a DDSP model the way the original README does: ``DDSPTrainer(model, config).compile(...).fit(...)``.

    A thin facade over :class:`DDSPLightningModule` (``.module``, which holds the model, the config, the loss
    terms and the training state) and a ``lightning.Trainer`` built by :meth:`fit` from the ``training`` config.
    Args as for :class:`DDSPLightningModule`.
    """

    def __init__(self, model: torch.nn.Module | None = None, config: Config | None = None):
        self.module = DDSPLightningModule(model, config)

    @property
    def model(self) -> torch.nn.Module:
        return self.module.model

    @property
    def config(self) -> Config:
        return self.module.config

    @property
    def losses(self) -> LossTerms:
        return self.module.losses

    @property
    def nonfinite_steps(self) -> int:
        """Training steps skipped so far because the loss or the gradient was not finite."""
        return self.module.nonfinite_steps

    def compile(self, optimizer: Any = None, **training_overrides: Any) -> "DDSPTrainer":
        """Choose the optimiser (Keras-style): None (AdamW from ``training``), a torch optimizer class or a
        factory ``params -> Optimizer``, an optimizer already built over this model's parameters, or a dict /
        :class:`TrainingConfig` of training fields. ``training_overrides`` (e.g. ``learning_rate=3e-4``) update
        the training config. The warm-up + cosine schedule is applied on top in every case."""
        if isinstance(optimizer, dict):
            training_overrides = {**optimizer, **training_overrides}
            optimizer = None
        elif isinstance(optimizer, TrainingConfig):
            self.config.training = copy.deepcopy(optimizer)
            optimizer = None
        if training_overrides:
            merged = {**dataclasses.asdict(self.config.training), **training_overrides}
            self.config.training = from_dict(TrainingConfig, merged, "training")
        self.module.optimizer_spec = optimizer
        return self

    def fit(
        self,
        train_dataset: Dataset,
        validation_data: Dataset | None = None,
        epochs: int | None = None,
        callbacks: list | None = None,
        *,
        max_steps: int | None = None,
        ckpt_path: str | None = None,
        default_root_dir: str | os.PathLike | None = None,
        **trainer_kwargs: Any,
    ) -> L.Trainer:
        """Train with a ``lightning.Trainer`` built from the ``training`` config.

        Args:
            train_dataset, validation_data: torch Datasets of example dicts (see the module docstring).
            epochs: passes over the training data (default ``training.epochs``); ``max_steps`` (default
                ``training.max_steps``) usually ends training first.
            callbacks: Lightning callbacks and loggers, e.g. from :func:`create_callbacks`.
            ckpt_path: a checkpoint to resume from (``"last"`` or a path).
            trainer_kwargs: passed to ``lightning.Trainer`` (override the config's values).
        Returns the ``lightning.Trainer`` (``trainer.callback_metrics`` holds the last metrics).
        """
        for name, ds in (("train_dataset", train_dataset), ("validation_data", validation_data)):
            if ds is not None and (
                isinstance(ds, DataLoader) or not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__")
            ):
                raise ValueError(
                    f"{name} must be a map-style torch Dataset of example dicts (got "
                    f"{type(ds).__name__}); the trainer builds its own resumable loader"
                )
        if max_steps is not None:
            self.compile(max_steps=max_steps)
        tc = self.config.training
        items = list(callbacks or [])
        loggers = [c for c in items if isinstance(c, Logger)]
        cbs = [c for c in items if not isinstance(c, Logger)]
        if not loggers:  # Lightning refuses a learning-rate monitor without a logger
            cbs = [c for c in cbs if not isinstance(c, LearningRateMonitor)]
        if validation_data is None:  # nothing to monitor: no early stopping, no best checkpoint
            cbs = [
                c
                for c in cbs
                if not isinstance(c, EarlyStopping) and not (isinstance(c, ModelCheckpoint) and c.monitor is not None)
            ]
        precision = tc.precision if tc.precision != "32" else (default_precision() or "32")
        if precision == "16-mixed" and not torch.cuda.is_available():
            raise DDSPDemucsError("precision 16-mixed needs a GPU; use bf16-mixed on CPU")
        kwargs = dict(
            max_steps=tc.max_steps,
            max_epochs=epochs if epochs is not None else tc.epochs,
            accelerator=tc.accelerator,
            devices=tc.devices,
            strategy=tc.strategy,
            precision=precision,
            callbacks=cbs,
            logger=loggers or False,
            log_every_n_steps=tc.log_every_steps,
            val_check_interval=tc.val_every_steps if validation_data is not None else None,
            check_val_every_n_epoch=None,
            limit_val_batches=tc.limit_val_batches if validation_data else 0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            enable_model_summary=False,
            plugins=[AtomicCheckpointIO()],
            default_root_dir=str(default_root_dir) if default_root_dir else None,
            enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in cbs),
        )
        kwargs.update(trainer_kwargs)
        if kwargs["val_check_interval"] is None:
            kwargs.pop("val_check_interval")
            kwargs["check_val_every_n_epoch"] = 1
        if tc.threads:
            torch.set_num_threads(tc.threads)
        trainer = L.Trainer(**kwargs)
        module = self.module
        module.train_dataset = train_dataset
        module.provenance = training_provenance(train_dataset, module.model, self.config.features)
        val_loader = module.val_loader(validation_data) if validation_data is not None else None
        with warnings.catch_warnings():
            for message in _NOT_NEWS + (_NOT_NEWS_ON_RESUME if ckpt_path else ()):
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            trainer.fit(module, val_dataloaders=val_loader, ckpt_path=ckpt_path)
        return trainer


# Lightning warnings that do not apply to this trainer (regular expressions matched at the message's start):
_NOT_NEWS = (
    # checkpoints are meant to hold the state after the step: resuming continues with the next batch
    "Using ModelCheckpoint with manual optimization and every_n_train_steps",
    # the training loader does resume mid-pass (ResumableSampler, from the batches consumed in the checkpoint)
    "You're resuming from a checkpoint that ended before the epoch ended",
)
# ... nor when a run resumes: its checkpoint folder holds the checkpoints it continues
_NOT_NEWS_ON_RESUME = ("Checkpoint directory .* exists and is not empty",)


def separator_training_overlap(dataset: Dataset) -> list[str]:
    """One-line warnings when the dataset's songs (its manifest's training and validation tracks) include
    MUSDB18-HQ training songs separated by a Demucs model that learned from them
    (:func:`~ddsp_demucs.separation.demucs.training_songs_warning`)."""
    manifest = getattr(dataset, "manifest", None) or {}
    splits = manifest.get("splits") or {}
    songs = [t for split in ("train", "validation") for t in (splits.get(split) or {}).get("tracks", [])]
    if not songs or not manifest.get("musdb_root"):
        return []
    found = (
        training_songs_warning(name, manifest["musdb_root"], songs)
        for name in str(manifest.get("separator", "")).split("+")
    )
    return [w for w in found if w]


def train_from_config(
    config: Config,
    train_dataset: Dataset,
    val_dataset: Dataset | None,
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    extra_callbacks: list | None = None,
    **fit_kwargs: Any,
) -> dict:
    """Train a model from a typed config into ``out_dir``; resume from ``out_dir/checkpoints/last.ckpt`` if
    ``resume`` and it exists (:class:`DDSPDemucsError` if that run's settings differ, :func:`check_resumable`).
    ``extra_callbacks`` are added to :func:`create_callbacks`' list; ``fit_kwargs`` go to :meth:`DDSPTrainer.fit`.

    Writes ``out_dir/config.yaml`` (resolved), ``out_dir/checkpoints/{best,last}.ckpt``, and logs under
    ``out_dir/logs`` (``tensorboard/``, ``csv/metrics.csv``). Returns ``{"best_checkpoint", "last_checkpoint",
    "global_step", "metrics"}`` (metrics: the last logged values as floats).
    """
    import yaml

    out_dir = Path(out_dir)
    tc = config.training
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    if ckpt_path:
        check_resumable(last, config)
        log.info("resuming from %s", ckpt_path)
    for warning in separator_training_overlap(train_dataset):
        log.warning(warning)
    setup_training_environment(use_mixed_precision=False, seed=tc.seed, threads=tc.threads)
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False))
    ddsp = DDSPTrainer(config=config)
    callbacks = create_callbacks(
        ckpt_dir,
        out_dir / "logs",
        patience=tc.early_stopping_patience,
        every_n_train_steps=tc.checkpoint_every_steps,
        early_stopping=val_dataset is not None,
    ) + list(extra_callbacks or [])
    trainer = ddsp.fit(
        train_dataset,
        validation_data=val_dataset,
        callbacks=callbacks,
        ckpt_path=ckpt_path,
        default_root_dir=out_dir,
        **fit_kwargs,
    )
    best = ckpt_dir / "best.ckpt"
    return {
        "best_checkpoint": str(best) if best.is_file() else (str(last) if last.is_file() else None),
        "last_checkpoint": str(last) if last.is_file() else None,
        "global_step": int(trainer.global_step),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1},
    }


__all__ = ["DDSPTrainer", "separator_training_overlap", "train_from_config"]
