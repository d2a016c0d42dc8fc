"""The LightningModule: training and validation steps, loss terms, augmentations and the checkpoint metadata."""

from __future__ import annotations

import copy
import functools
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from ddsp_demucs.core.config import Config, TrainingConfig
from ddsp_demucs.core.utils import (
    config_to_dict,
    get_logger,
    route_lightning_logging,
)
from ddsp_demucs.data.breath_noise import add_breath_noise
from ddsp_demucs.data.f0_errors import add_f0_errors
from ddsp_demucs.data.input_blend import blend_toward_target
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.model import model_from_config
from ddsp_demucs.training.batches import AUDIO_KEYS, ResumableSampler, collate
from ddsp_demucs.training.checkpoints import freeze_all_but, model_class_name, start_from_checkpoint
from ddsp_demucs.training.environment import TrainingDiverged
from ddsp_demucs.training.losses import LossTerms
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, training_provenance
from ddsp_demucs.training.schedule import warmup_cosine

log = get_logger("train")
route_lightning_logging()


BLEND_STREAM = 1  # tells the input blend's random stream apart from others seeded by (seed, batch, rank)
BREATH_STREAM = 2  # the breath-noise augmentation's stream
F0_ERROR_STREAM = 3  # the F0-error augmentation's stream


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
        tc = self.config.training
        if tc.init_checkpoint:
            start_from_checkpoint(self.model, tc.init_checkpoint, tc.trainable)
        else:
            freeze_all_but(self.model, tc.trainable)
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
            learned = [p for p in self.model.parameters() if p.requires_grad]  # training.trainable
            opt = torch.optim.AdamW(learned, lr=tc.learning_rate, weight_decay=tc.weight_decay)
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
        """The draws of an augmentation (``stream``: :data:`BLEND_STREAM`, :data:`BREATH_STREAM`,
        :data:`F0_ERROR_STREAM`) for batch ``index``: streams apart from each other and from the model's noise."""
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
        if self.tcfg.f0_error_fraction > 0:
            batch = add_f0_errors(
                batch,
                fraction=self.tcfg.f0_error_fraction,
                generator=self._draw_generator(index, F0_ERROR_STREAM),
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
        provenance = self.provenance
        if provenance is None:
            provenance = training_provenance(None, model, self.config.features)
        checkpoint[CHECKPOINT_KEY] = {
            "model_class": model_class_name(model),
            "model_args": dict(model.init_args),
            "config": config_to_dict(self.config),
            "batches_consumed": self.batches_consumed,
            "nonfinite_steps": self.nonfinite_steps,
            "provenance": provenance,
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


def _forward_params(model: torch.nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


__all__ = ["BLEND_STREAM", "BREATH_STREAM", "F0_ERROR_STREAM", "DDSPLightningModule"]
