"""Training of :class:`~ddsp_demucs.model.ResidualDDSPDecoder` on Lightning.

Public API (the original README's, in PyTorch)::

    setup_training_environment(use_mixed_precision=False, seed=0, threads=None)
    trainer = DDSPTrainer(model, config=config)           # facade over DDSPLightningModule (trainer.module)
    trainer.compile(optimizer=...)                         # optional: factory, optimizer class or config
    callbacks = create_callbacks(checkpoint_dir, log_dir)  # checkpoints, early stopping, LR monitor, loggers
    trainer.fit(train_dataset, validation_data=val_dataset, epochs=..., callbacks=callbacks)
    model = load_model("runs/x/checkpoints/best.ckpt")     # from the checkpoint alone
    train_from_config(config, train_dataset, val_dataset, out_dir, resume=True)  # what the CLI runs

Datasets are any ``torch.utils.data.Dataset`` of dicts with ``input_audio (n_samples,)``, ``target_audio``,
``f0_hz (n_frames,)``, ``f0_confidence``, ``loudness_db`` (``track`` / ``start_s`` are passed through).

Resumption is exact: the training order comes from :class:`ResumableSampler` (a permutation per pass seeded
by ``training.seed`` and the pass number, sharded over ranks), the number of batches consumed is saved in
every checkpoint, and the filtered-noise generator is seeded per (seed, batch index, rank). Resuming from
``last.ckpt`` continues with the next unseen batch: no step is lost or repeated.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset, Sampler

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.config import Config, LossConfig, TrainingConfig
from ddsp_demucs.core.utils import (
    atomic_path,
    config_to_dict,
    from_dict,
    get_logger,
    route_lightning_logging,
    write_text_atomic,
)
from ddsp_demucs.data.breath_noise import add_breath_noise
from ddsp_demucs.data.input_blend import blend_toward_target
from ddsp_demucs.dsp import MultiResolutionSTFTLoss
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.model import ResidualDDSPDecoder, model_from_config
from ddsp_demucs.separation.demucs import training_songs_warning
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, load_checkpoint, read_checkpoint_meta, training_provenance

log = get_logger("train")
route_lightning_logging()
BLEND_STREAM = 1  # tells the input blend's random stream apart from others seeded by (seed, batch, rank)
BREATH_STREAM = 2  # the breath-noise augmentation's stream
AUDIO_KEYS = ("input_audio", "target_audio", "f0_hz", "f0_confidence", "loudness_db")


class TrainingDiverged(DDSPDemucsError):
    """Too many training steps had a non-finite loss or gradient."""


# ------------------------------------------------------------------------------------------ environment
def setup_training_environment(use_mixed_precision: bool = False, seed: int = 0, threads: int | None = None) -> str:
    """Seed Python, numpy and torch, set torch's CPU threads, and choose the precision.

    Returns the Lightning precision string (``"bf16-mixed"`` if ``use_mixed_precision``, else ``"32"``);
    it also becomes the default precision of :meth:`DDSPTrainer.fit`.
    """
    global _DEFAULT_PRECISION
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    _DEFAULT_PRECISION = "bf16-mixed" if use_mixed_precision else "32"
    return _DEFAULT_PRECISION


_DEFAULT_PRECISION: str | None = None


# ------------------------------------------------------------------------------------------------ losses
class MelLoss(torch.nn.Module):
    """L1 distance of log-mel spectrograms ``(batch, n_samples)`` x2 -> scalar (Hann STFT, 1024 / 256)."""

    def __init__(self, sample_rate: int, n_mels: int = 80, n_fft: int = 1024, hop: int = 256):
        super().__init__()
        import librosa

        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.n_fft, self.hop = n_fft, hop

    def _logmel(self, x: torch.Tensor) -> torch.Tensor:
        mag = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        return torch.log(torch.einsum("mf,bft->bmt", self.fb, mag) + 1e-5)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self._logmel(estimate), self._logmel(target))


class LossTerms(torch.nn.Module):
    """Loss terms by name, weighted from a :class:`~ddsp_demucs.core.config.LossConfig`.

    ``forward(estimate, target, separated)`` with ``(batch, n_samples)`` waveforms -> dict of unweighted scalar
    terms (``stft``: multi-resolution linear + log magnitude; ``si_sdr``: negative mean SI-SDR in dB / 10;
    ``mel``: log-mel L1; ``no_harm``: the mean over examples of how far the estimate's SI-SDR falls below the
    separated input's, ``relu(si_sdr(separated) - si_sdr(estimate))`` in dB / 10, so only examples the model
    makes worse are pushed back; only the terms with a non-zero weight) and ``total``, the weighted sum.
    """

    def __init__(self, config: LossConfig, sample_rate: int):
        super().__init__()
        self.config = config
        self.weights = {
            "stft": 1.0,
            "si_sdr": config.si_sdr_weight,
            "mel": config.mel_weight,
            "no_harm": config.no_harm_weight,
        }
        self.stft = MultiResolutionSTFTLoss(
            fft_sizes=tuple(config.fft_sizes),
            overlap=config.overlap,
            mag_weight=config.mag_weight,
            logmag_weight=config.logmag_weight,
        )
        self.mel = MelLoss(sample_rate, config.n_mels) if config.mel_weight else None

    def forward(
        self, estimate: torch.Tensor, target: torch.Tensor, separated: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        estimate, target = estimate.float(), target.float()
        terms = {"stft": self.stft(estimate, target)}
        if self.weights["si_sdr"] or self.weights["no_harm"]:
            sdr_out = si_sdr(estimate, target)
        if self.weights["si_sdr"]:
            terms["si_sdr"] = -sdr_out.mean() / 10.0
        if self.mel is not None:
            terms["mel"] = self.mel(estimate, target)
        if self.weights["no_harm"]:
            if separated is None:
                raise ValueError("the no_harm loss term needs the separated input")
            with torch.no_grad():
                sdr_in = si_sdr(separated.float(), target)
            terms["no_harm"] = F.relu(sdr_in - sdr_out).mean() / 10.0
        terms["total"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms


def warmup_cosine(step: int, *, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine decay to ``min_ratio`` at
    ``max_steps`` (held there after)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------- sampling
class ResumableSampler(Sampler[int]):
    """Training order that a resumed run continues exactly.

    The stream is pass after pass over the dataset, each a permutation seeded by ``(seed, pass)``; rank
    ``r`` of ``world_size`` takes every ``world_size``-th item, and each pass is cut to a whole number of
    batches. ``__iter__`` starts at ``position()`` items into the stream (the batches the module has
    consumed x ``batch_size``) and runs to the end of that pass; ``__len__`` is a full pass.
    """

    def __init__(
        self, n_items: int, batch_size: int, seed: int, position: Callable[[], int], rank: int = 0, world_size: int = 1
    ):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.position, self.rank, self.world_size = position, rank, world_size
        self.per_pass = (n_items // world_size) // batch_size * batch_size
        if self.per_pass == 0:
            raise DDSPDemucsError(
                f"training dataset has {n_items} examples: too few for batch size {batch_size} "
                f"on {world_size} device(s)"
            )

    def order(self, pass_index: int) -> list[int]:
        """This rank's items of pass ``pass_index``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_index)
        perm = torch.randperm(self.n_items, generator=g).tolist()
        return perm[self.rank :: self.world_size][: self.per_pass]

    def __iter__(self) -> Iterator[int]:
        pass_index, offset = divmod(self.position(), self.per_pass)
        return iter(self.order(pass_index)[offset:])

    def __len__(self) -> int:
        return self.per_pass


def collate(items: list[dict]) -> dict:
    """Stack the tensor fields of dataset items; ``track`` and ``start_s`` become lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in AUDIO_KEYS or isinstance(values[0], (torch.Tensor, np.ndarray)):
            out[key] = torch.stack(
                [
                    torch.as_tensor(np.asarray(v) if isinstance(v, np.ndarray) else v, dtype=torch.float32)
                    for v in values
                ]
            )
        else:
            out[key] = values
    return out


# ----------------------------------------------------------------------------------------- checkpointing
class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it and renames it into place; reads it weights-only."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location="cpu", weights_only=None) -> dict:
        """Resuming reads weights-only too (:func:`~ddsp_demucs.training.provenance.load_checkpoint`), whatever is
        asked."""
        return load_checkpoint(path, map_location)


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


class ResumableCSVLogger(Logger):
    """Metrics as CSV in ``save_dir/name/version/metrics.csv``, continued when a run resumes.

    Written the way Lightning's ``CSVLogger`` writes it: one row per :meth:`log_metrics` call holding ``step`` and
    the values logged, columns sorted by name, an empty cell where a row lacks a column, and the file rewritten with
    the wider header when a new metric appears. Unlike ``CSVLogger``, which deletes ``metrics.csv`` (with a warning)
    when its folder is not empty, an existing file keeps its rows and new rows are appended under its header, so
    the log of a resumed run holds the whole run. A pure implementation of Lightning's public ``Logger`` interface;
    it writes on global rank 0 only, and buffers rows until :meth:`save` (which Lightning calls after each
    ``log_metrics``) or :meth:`finalize`. Hyper-parameters are not written here: they are in ``config.yaml`` and in
    every checkpoint.
    """

    NAME_METRICS_FILE = "metrics.csv"

    def __init__(self, save_dir: str | os.PathLike, name: str = "csv", version: str = ""):
        super().__init__()
        self._save_dir, self._name, self._version = os.fspath(save_dir), name, version
        self.metrics_file_path = os.path.join(self.log_dir, self.NAME_METRICS_FILE)
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] | None = None  # the file's header, read from it when it is first needed

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self._name)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.root_dir, self._version)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: the resolved config is ``config.yaml`` and part of every checkpoint."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        row["step"] = step if step is not None else len(self._rows)
        self._rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        """Write the buffered rows: appended, or the whole file rewritten (atomically) when the header widens."""
        if not self._rows:
            return
        path = Path(self.metrics_file_path)
        exists = path.is_file()
        if self._keys is None:
            self._keys = []
            if exists:
                with open(path, newline="") as fh:
                    self._keys = list(csv.DictReader(fh).fieldnames or [])
        new_keys = set().union(*self._rows) - set(self._keys)
        if new_keys:
            self._keys = sorted({*self._keys, *new_keys})
        if new_keys and exists:
            with open(path, newline="") as fh:
                old_rows = list(csv.DictReader(fh))
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self._keys)
                writer.writeheader()
                writer.writerows(old_rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if exists else "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._keys)
            if not exists:
                writer.writeheader()
            writer.writerows(self._rows)
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


# the model classes a checkpoint may name (its "model_class"); no other class is imported or built from a file
MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {"ddsp_demucs.model.ResidualDDSPDecoder": ResidualDDSPDecoder}


def model_class_name(model: torch.nn.Module) -> str:
    """The name a checkpoint stores for ``model``'s class: its key in :data:`MODEL_CLASSES`, fixed whichever module
    defines the class, so that checkpoints name the same class before and after a move."""
    names = [name for name, cls in MODEL_CLASSES.items() if type(model) is cls]
    return names[0] if names else f"{type(model).__module__}.{type(model).__qualname__}"


def load_model(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The model stored in a checkpoint written by :class:`DDSPTrainer`, in eval mode, from the file alone.

    ``checkpoint_path`` is a file or an ``hf://owner/repo/file.ckpt`` reference (:mod:`ddsp_demucs.training.hub`). The
    checkpoint holds the model class (a name in :data:`MODEL_CLASSES`), its init arguments, the resolved config
    and the weights; it is read weights-only (:func:`~ddsp_demucs.training.provenance.load_checkpoint`). Raises
    :class:`InputError` naming the file if it is missing or not such a checkpoint, or if its class is unknown, its
    arguments bad or its weights a misfit.
    """
    path = os.fspath(checkpoint_path)  # as given: Path() would turn hf://owner/... into hf:/owner/...
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt[CHECKPOINT_KEY]
    name = meta.get("model_class")
    cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InputError(f"{path}: unknown model class {name!r} (this version builds {', '.join(MODEL_CLASSES)})")
    try:
        model = cls(**meta.get("model_args"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: bad arguments for {name} ({str(exc).strip().splitlines()[0]})") from None
    weights = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else {}
    try:
        model.load_state_dict({k[len("model.") :]: v for k, v in weights.items() if k.startswith("model.")})
    except RuntimeError:
        raise InputError(f"{path}: its weights do not fit the {name} its arguments describe") from None
    model.config = meta.get("config")
    model.provenance = meta.get("provenance", {})  # see ddsp_demucs.training.provenance ({} for older checkpoints)
    return model.eval()


# ---------------------------------------------------------------------------------------------- trainer
class DDSPLightningModule(L.LightningModule):
    """The LightningModule behind :class:`DDSPTrainer`: the training and validation steps, the loss terms, the
    optimiser and schedule, checkpoint metadata and the resumable data loaders.

    Args:
        model: the model (built from ``config`` if None). It must take a batch dict and return ``audio``, and
            expose ``init_args`` (a dict of its constructor arguments) for self-describing checkpoints.
        config: the resolved :class:`~ddsp_demucs.core.config.Config` (defaults if None); its ``loss`` and
            ``training`` sections drive the loss weights, optimiser, schedule and loop.

    Uses manual optimisation so that a step whose loss or gradient norm is non-finite changes nothing on any rank
    (the optimiser sees no gradients, the scheduler does not advance; the step still counts towards
    ``max_steps``), is counted, and training stops with :class:`TrainingDiverged` after
    ``training.max_nonfinite_steps`` such steps. Clipping and the logged ``train/grad_norm`` act on unscaled
    gradients in every precision; under ``16-mixed`` a gradient overflow is left to the gradient scaler (it skips
    the step and lowers its scale) and is not counted.
    """

    def __init__(self, model: torch.nn.Module | None = None, config: Config | None = None):
        super().__init__()
        self.config = copy.deepcopy(config) if config is not None else Config()
        self.model = model if model is not None else model_from_config(self.config.model, self.config.data)
        if not hasattr(self.model, "init_args"):
            raise ValueError("model must expose init_args (its constructor arguments) to be checkpointed")
        sample_rate = getattr(self.model, "sample_rate", self.config.data.train_sr)
        self.losses = LossTerms(self.config.loss, sample_rate)
        self.automatic_optimization = False
        self.optimizer_spec: Any = None  # see DDSPTrainer.compile; None = AdamW from the training config
        self.train_dataset: Dataset | None = None  # set by DDSPTrainer.fit
        self.batches_consumed = 0  # batches drawn from the training stream (incl. skipped steps)
        self.nonfinite_steps = 0
        self._finite_loss = torch.tensor(True)  # this step's loss was finite (set in training_step)
        self._grad_norm = torch.tensor(0.0)  # this step's gradient norm and verdict (on_before_optimizer_step)
        self._step_ok, self._scaler_overflow = True, False
        self._logged_audio_at = -1
        self.provenance: dict | None = None  # set by DDSPTrainer.fit from the dataset (ddsp_demucs.training.provenance)

    @property
    def tcfg(self) -> TrainingConfig:
        return self.config.training

    # ----------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self):
        spec, tc = self.optimizer_spec, self.tcfg
        if spec is None:
            opt = torch.optim.AdamW(self.model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
        elif isinstance(spec, torch.optim.Optimizer):
            opt = spec
        elif callable(spec):
            opt = spec(self.model.parameters())
        else:
            raise ValueError(f"optimizer must be None, a torch optimizer, a factory or a config, got {spec!r}")
        schedule = functools.partial(
            warmup_cosine, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps, min_ratio=tc.min_lr_ratio
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------------------------- steps
    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        if generator is not None and "generator" in _forward_params(self.model):
            return self.model(batch, generator=generator)
        return self.model(batch)

    def _noise_generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.tcfg.seed * 1_000_003 + index) * 64 + self.global_rank)

    def _draw_generator(self, index: int, stream: int) -> torch.Generator:
        """The draws of an augmentation (``stream``: :data:`BLEND_STREAM`, :data:`BREATH_STREAM`) for batch
        ``index``: streams apart from each other and from the model's noise."""
        entropy = [self.tcfg.seed, index, self.global_rank, stream]
        return torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def training_step(self, batch: dict, batch_idx: int):
        opt = self.optimizers()
        sched = self.lr_schedulers()
        index = self.batches_consumed
        self.batches_consumed += 1
        # Non-finite data or output must not raise (the dsp functions reject NaN) nor desynchronise DDP ranks:
        # compute on a sanitised copy, then skip the update on every rank.
        finite_inputs = torch.tensor(all(bool(torch.isfinite(batch[k]).all()) for k in AUDIO_KEYS if k in batch))
        if not finite_inputs:
            batch = {
                k: torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) if k in AUDIO_KEYS else v
                for k, v in batch.items()
            }
        if self.tcfg.breath_noise_fraction > 0:
            batch = add_breath_noise(
                batch,
                fraction=self.tcfg.breath_noise_fraction,
                max_share=self.tcfg.breath_noise_max_share,
                generator=self._draw_generator(index, BREATH_STREAM),
                sample_rate=self.config.data.train_sr,
                frame_rate=self.config.data.frame_rate,
            )
        if self.tcfg.input_blend_fraction > 0:
            batch = blend_toward_target(
                batch,
                fraction=self.tcfg.input_blend_fraction,
                generator=self._draw_generator(index, BLEND_STREAM),
                sample_rate=self.config.data.train_sr,
                frame_rate=self.config.data.frame_rate,
            )
        out = self(batch, generator=self._noise_generator(index))
        audio = out["audio"]
        finite_out = torch.isfinite(audio.detach()).all()
        if not finite_out:
            audio = torch.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        terms = self.losses(audio, batch["target_audio"], batch["input_audio"])
        loss = terms["total"]
        self._finite_loss = torch.isfinite(loss.detach()) & finite_out & finite_inputs.to(loss.device)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(torch.where(self._finite_loss, loss, torch.zeros_like(loss)))
        opt.step()  # a gradient scaler unscales here, then on_before_optimizer_step clips and checks
        grad_norm, ok = self._grad_norm, self._step_ok
        if ok:
            sched.step()
        elif self._scaler_overflow:
            log.info(
                "gradient scaler overflow at batch %d: step skipped, scale lowered to %g",
                index,
                self._grad_scaler().get_scale(),
            )
        else:
            self.nonfinite_steps += 1
            log.warning(
                "skipped a non-finite training step at batch %d (loss %s, grad norm %s); %d of %d allowed",
                index,
                float(loss.detach()),
                float(grad_norm),
                self.nonfinite_steps,
                self.tcfg.max_nonfinite_steps,
            )
            if self.nonfinite_steps > self.tcfg.max_nonfinite_steps:
                raise TrainingDiverged(
                    f"training stopped: {self.nonfinite_steps} steps had a non-finite loss or gradient (limit "
                    f"training.max_nonfinite_steps={self.tcfg.max_nonfinite_steps}); lower training.learning_rate, "
                    "check the data for NaN/Inf, or use precision 32"
                )
        bs = batch["input_audio"].shape[0]
        self.log("train/loss", loss.detach().float(), prog_bar=True, batch_size=bs)
        for name, value in terms.items():
            if name != "total":
                self.log(f"train/loss_{name}", value.detach().float(), batch_size=bs)
        self.log("train/grad_norm", grad_norm.float(), batch_size=bs)
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=bs)
        return loss.detach()

    def _grad_scaler(self) -> torch.amp.GradScaler | None:
        """The precision plugin's gradient scaler (``16-mixed``), or None."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Inside ``opt.step()``, after a gradient scaler has unscaled the gradients: clip them to
        ``training.grad_clip``, and drop the update (gradients set to None) on every rank unless the loss and the
        gradient norm are finite everywhere. A non-finite gradient under a scaler with a finite loss is an
        overflow: the scaler skips that step and lowers its scale, and it does not count as divergence."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.grad_clip or float("inf"))
        finite_grad = torch.isfinite(grad_norm)
        ok = finite_grad & self._finite_loss
        if self.trainer.world_size > 1:
            ok = self.trainer.strategy.reduce(ok.float(), reduce_op="min") > 0.5
        self._grad_norm, self._step_ok = grad_norm, bool(ok)
        self._scaler_overflow = self._grad_scaler() is not None and not bool(finite_grad) and bool(self._finite_loss)
        if not self._step_ok:
            optimizer.zero_grad(set_to_none=True)

    def validation_step(self, batch: dict, batch_idx: int):
        out = self(batch, generator=self._noise_generator(10**9 + batch_idx))
        target, inp = batch["target_audio"], batch["input_audio"]
        terms = self.losses(out["audio"], target, inp)
        bs = inp.shape[0]
        sdr_out = si_sdr(out["audio"].float(), target)
        sdr_in = si_sdr(inp, target)
        self.log("val/loss", terms["total"], prog_bar=True, sync_dist=True, batch_size=bs)
        for name, value in terms.items():
            if name != "total":
                self.log(f"val/loss_{name}", value, sync_dist=True, batch_size=bs)
        self.log("val/si_sdr", sdr_out.mean(), prog_bar=True, sync_dist=True, batch_size=bs)
        self.log("val/si_sdr_input", sdr_in.mean(), sync_dist=True, batch_size=bs)
        self.log("val/si_sdr_improvement", (sdr_out - sdr_in).mean(), sync_dist=True, batch_size=bs)
        if batch_idx == 0 and self.global_rank == 0 and self._logged_audio_at != self.global_step:
            self._logged_audio_at = self.global_step
            self._log_examples(batch, out)

    def _log_examples(self, batch: dict, out: dict) -> None:
        experiments = [lg.experiment for lg in (self.loggers or []) if isinstance(lg, TensorBoardLogger)]
        if not experiments or self.tcfg.n_audio_examples <= 0:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        sr = int(getattr(self.model, "sample_rate", self.config.data.train_sr))
        n = min(self.tcfg.n_audio_examples, batch["input_audio"].shape[0])
        for i in range(n):
            signals = {
                "input": batch["input_audio"][i],
                "output": out["audio"][i].float(),
                "target": batch["target_audio"][i],
            }
            fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
            for ax, (name, x) in zip(axes, signals.items()):
                x = x.detach().cpu()
                spec = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
                ax.imshow(
                    20 * torch.log10(spec + 1e-6).numpy(),
                    origin="lower",
                    aspect="auto",
                    vmin=-80,
                    extent=(0, x.shape[-1] / sr, 0, sr / 2000),
                )
                ax.set_ylabel(f"{name}\nkHz")
            axes[-1].set_xlabel("s")
            fig.tight_layout()
            for exp in experiments:
                for name, x in signals.items():
                    peak = float(x.abs().max().clamp_min(1e-9))
                    exp.add_audio(
                        f"example{i}/{name}",
                        (x.detach().cpu() / max(peak, 1.0)).unsqueeze(0),
                        self.global_step,
                        sample_rate=sr,
                    )
                exp.add_figure(f"example{i}/spectrograms", fig, self.global_step)
            plt.close(fig)

    # ------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        model = self.model
        checkpoint[CHECKPOINT_KEY] = {
            "model_class": model_class_name(model),
            "model_args": dict(model.init_args),
            "config": config_to_dict(self.config),
            "batches_consumed": self.batches_consumed,
            "nonfinite_steps": self.nonfinite_steps,
            "provenance": self.provenance if self.provenance is not None else training_provenance(None, model),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get(CHECKPOINT_KEY, {})
        self.batches_consumed = int(meta.get("batches_consumed", 0))
        self.nonfinite_steps = int(meta.get("nonfinite_steps", 0))
        if self.provenance is None and meta.get("provenance"):
            self.provenance = meta["provenance"]

    # ------------------------------------------------------------------------------------------- data
    def _train_loader(self, dataset: Dataset) -> DataLoader:
        tc = self.tcfg
        sampler = ResumableSampler(
            len(dataset),
            tc.batch_size,
            tc.seed,
            lambda: self.batches_consumed * tc.batch_size,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
        )
        return DataLoader(
            dataset,
            batch_size=tc.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=tc.num_workers,
            persistent_workers=False,
        )

    def val_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.tcfg.batch_size,
            shuffle=False,
            collate_fn=collate,
            num_workers=self.tcfg.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise RuntimeError("no training dataset: train through DDSPTrainer.fit")
        return self._train_loader(self.train_dataset)


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
        precision = tc.precision if tc.precision != "32" else (_DEFAULT_PRECISION or "32")
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
        module.provenance = training_provenance(train_dataset, module.model)
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


def _forward_params(model: torch.nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


# ------------------------------------------------------------------------------------------- high level
# training settings a resumed run may change: how long it runs, how it logs and checkpoints, the hardware
RESUMABLE_TRAINING_KEYS = frozenset(
    {
        "max_steps",
        "epochs",
        "max_nonfinite_steps",
        "devices",
        "accelerator",
        "strategy",
        "threads",
        "num_workers",
        "log_every_steps",
        "n_audio_examples",
        "checkpoint_every_steps",
    }
)


def config_changes(recorded: dict, config: dict) -> list[str]:
    """``"section.key: old -> new"`` for every setting of ``recorded`` (a checkpoint's config dict) that ``config``
    (a config dict) sets differently, except the ``training`` keys of :data:`RESUMABLE_TRAINING_KEYS`. Keys absent
    from either side are not compared (configs written before a key existed)."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    changes = []
    for section, values in recorded.items():
        current = config.get(section)
        if not isinstance(values, dict) or not isinstance(current, dict):
            continue
        for key, old in values.items():
            if key not in current or (section == "training" and key in RESUMABLE_TRAINING_KEYS):
                continue
            if plain(old) != plain(current[key]):
                changes.append(f"{section}.{key}: {old!r} -> {current[key]!r}")
    return changes


def check_resumable(last_checkpoint: Path, config: Config) -> None:
    """Raise :class:`DDSPDemucsError` if ``last_checkpoint`` was written with settings that ``config`` changes
    (:func:`config_changes`): resuming would continue a different model and report it as this one; or if it is not a
    readable ddsp-demucs checkpoint (:func:`~ddsp_demucs.training.provenance.read_checkpoint_meta`)."""
    meta = read_checkpoint_meta(last_checkpoint)
    changes = config_changes(meta.get("config") or {}, config_to_dict(config))
    if changes:
        raise DDSPDemucsError(
            f"{last_checkpoint.parent.parent}: holds a run trained with other settings ({'; '.join(changes)}); "
            "train into another folder, or start afresh (ddsp-demucs train --no-resume)"
        )


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


__all__ = [
    "DDSPTrainer",
    "DDSPLightningModule",
    "create_callbacks",
    "setup_training_environment",
    "load_model",
    "MODEL_CLASSES",
    "model_class_name",
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
