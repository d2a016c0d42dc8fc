"""Training stability: seeds x learning rates x precisions on the same data.

Training (:func:`stability_analysis`): one run per (precision, learning rate, seed) on the same data, each
trained with :func:`~ddsp_demucs.training.trainer.train_from_config` into ``out_dir/runs/<name>/`` plus a
:class:`StepRecorder` that keeps every step's training loss and global gradient norm (before clipping, as
``DDSPTrainer`` logs it) in the checkpoints, so a resumed run keeps its history. Per run:

- the final model (``last.ckpt``) evaluated on the whole validation set: the training loss (mean over
  examples) and SI-SDR (median; the separated input's median for reference, and the paired improvement);
- diverged: training stopped with :class:`~ddsp_demucs.training.environment.TrainingDiverged` (too many non-finite
  steps), the final model gives non-finite validation outputs or loss, or the training loss blew up (its median over
  the last :data:`EDGE_STEPS` (10) steps exceeds :data:`SPIKE_FACTOR` times the median over the first 10);
  steps the trainer skipped as non-finite are counted either way and left out of the loss and gradient
  statistics. A run can also end finite but useless (e.g. a saturated network whose gradient norm collapses):
  ``val_si_sdr_improvement``, ``loss_start`` / ``loss_end`` and ``grad_norm_end`` show it;
- gradient-norm median, 95th percentile and maximum over the steps taken, and its median over the last 10;
- loss spikes: steps whose loss exceeds :data:`SPIKE_FACTOR` (2) times the median of the previous
  :data:`SPIKE_WINDOW` (50) finite losses (at least :data:`SPIKE_MIN_HISTORY` (10) of them, median > 0;
  the default MR-STFT loss is always positive). A factor of 2 is far outside the step-to-step scatter of a
  healthy run (a few percent once warm-up is over) and catches the jumps that precede divergence.

A run whose ``run_summary.json`` records the same settings (resolved config, dataset sizes, spike rule) is skipped
on re-run; otherwise it resumes from its ``last.ckpt`` (an interrupted run continues; a finished one with, say, more
``max_steps`` trains on, and with only a new spike rule it is re-evaluated without training). ``stability_runs.csv``
has a row per run, ``stability_spread.csv`` the spread (mean, std, min, max) of the final metrics per (learning
rate, precision) and over all runs; ``stability.md``, ``stability_loss.png`` (loss and gradient norm per step,
spikes marked), ``stability_final.png`` (final metrics per configuration) and ``stability.json``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.utils import config_to_dict, get_logger, route_lightning_logging
from ddsp_demucs.evaluation.common import (
    MODEL_NOISE,
    batches,
    example_seed,
    finite_or_none,
    markdown_table,
    pyplot,
    run_model,
    save_figure,
    stats,
    write_csv,
    write_json,
    write_markdown,
)
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.training.checkpoints import load_model
from ddsp_demucs.training.environment import TrainingDiverged
from ddsp_demucs.training.losses import LossTerms
from ddsp_demucs.training.trainer import train_from_config

log = get_logger("analysis.stability")
route_lightning_logging()

SPIKE_FACTOR = 2.0
SPIKE_WINDOW = 50
SPIKE_MIN_HISTORY = 10
EDGE_STEPS = 10  # steps whose median is the loss / gradient norm at the start and at the end of a run
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
SUMMARY_NAME = "run_summary.json"

RUN_COLUMNS = (
    "name",
    "seed",
    "learning_rate",
    "precision",
    "steps",
    "diverged",
    "nonfinite_steps",
    "val_loss",
    "val_si_sdr",
    "val_si_sdr_input",
    "val_si_sdr_improvement",
    "loss_start",
    "loss_end",
    "grad_norm_median",
    "grad_norm_p95",
    "grad_norm_max",
    "grad_norm_end",
    "n_loss_spikes",
    "wall_s",
    "divergence_reason",
)
SPREAD_COLUMNS = (
    "config",
    "n_runs",
    "n_diverged",
    "val_loss_mean",
    "val_loss_std",
    "val_loss_min",
    "val_loss_max",
    "val_si_sdr_mean",
    "val_si_sdr_std",
    "val_si_sdr_min",
    "val_si_sdr_max",
    "val_si_sdr_improvement_mean",
    "grad_norm_p95_median",
    "n_loss_spikes_total",
)
__all__ = [
    "StepRecorder",
    "loss_spikes",
    "run_name",
    "train_run",
    "stability_analysis",
    "SPIKE_FACTOR",
    "SPIKE_WINDOW",
    "SPIKE_MIN_HISTORY",
]


# ------------------------------------------------------------------------------------------- recording
class StepRecorder(Callback):
    """Lightning callback recording, per training step of a :class:`~ddsp_demucs.training.trainer.DDSPTrainer`, ``step``
    (batches consumed), ``loss`` (total training loss), ``grad_norm`` (global L2 norm before clipping) and
    ``skipped`` (a non-finite step the trainer skipped), and at each validation ``step``, ``val_loss`` and
    ``val_si_sdr``. Its state is saved in checkpoints and restored on resume."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.validations: list[dict] = []
        self._nonfinite_seen = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        grad_norm = trainer.callback_metrics.get("train/grad_norm")
        nonfinite = int(getattr(pl_module, "nonfinite_steps", 0))
        self.steps.append(
            {
                "step": int(getattr(pl_module, "batches_consumed", trainer.global_step)),
                "loss": float(loss) if loss is not None else math.nan,
                "grad_norm": float(grad_norm) if grad_norm is not None else math.nan,
                "skipped": nonfinite > self._nonfinite_seen,
            }
        )
        self._nonfinite_seen = nonfinite

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # the step that stops training (TrainingDiverged) raises before its batch ends: record it as skipped
        nonfinite = int(getattr(pl_module, "nonfinite_steps", 0))
        if nonfinite > self._nonfinite_seen:
            self.steps.append(
                {
                    "step": int(getattr(pl_module, "batches_consumed", trainer.global_step)),
                    "loss": math.nan,
                    "grad_norm": math.nan,
                    "skipped": True,
                }
            )
            self._nonfinite_seen = nonfinite

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        self.validations.append(
            {
                "step": int(trainer.global_step),
                **{
                    name: float(metrics[key])
                    for name, key in (("val_loss", "val/loss"), ("val_si_sdr", "val/si_sdr"))
                    if key in metrics
                },
            }
        )

    def state_dict(self) -> dict:
        return {
            "steps": list(self.steps),
            "validations": list(self.validations),
            "nonfinite_seen": self._nonfinite_seen,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps = list(state_dict.get("steps", []))
        self.validations = list(state_dict.get("validations", []))
        self._nonfinite_seen = int(state_dict.get("nonfinite_seen", 0))


def loss_spikes(
    losses: Sequence[float],
    *,
    factor: float = SPIKE_FACTOR,
    window: int = SPIKE_WINDOW,
    min_history: int = SPIKE_MIN_HISTORY,
) -> list[int]:
    """Indices ``i`` with ``losses[i] > factor * median(finite losses among the previous window)``, where at
    least ``min_history`` previous finite losses exist and their median is positive. Non-finite losses are
    neither spikes nor history (they are counted as skipped steps)."""
    x = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(x)
    out = []
    for i in range(x.shape[0]):
        if not finite[i]:
            continue
        history = x[max(0, i - window) : i]
        history = history[np.isfinite(history)]
        if history.size >= min_history:
            median = float(np.median(history))
            if median > 0 and x[i] > factor * median:
                out.append(i)
    return out


# ----------------------------------------------------------------------------------------------- runs
def run_name(seed: int, learning_rate: float, precision: str) -> str:
    """``seed<seed>_lr<lr>_<precision>``, e.g. ``seed0_lr0.001_fp32`` / ``seed1_lr0.003_bf16-mixed``."""
    return f"seed{seed}_lr{learning_rate:g}_{'fp32' if precision == '32' else precision}"


def _jsonable(obj) -> object:
    return json.loads(json.dumps(finite_or_none(obj), default=str))


def evaluate_run(model: torch.nn.Module, dataset, config, *, batch_size: int = 8) -> dict:
    """The final model on the validation set: ``val_loss`` (the training loss, mean over examples),
    ``val_si_sdr`` / ``val_si_sdr_input`` (medians), ``val_si_sdr_improvement`` (median of the paired difference)
    and ``n_nonfinite`` (examples whose output is not finite; they give NaN and make the run diverged)."""
    losses = LossTerms(config.loss, int(model.sample_rate))
    loss_v, sdr_v, in_v, n_bad = [], [], [], 0
    for b, (chunk, batch) in enumerate(batches(dataset, list(range(len(dataset))), batch_size)):
        audio = run_model(model, batch, example_seed(0, MODEL_NOISE, b))
        target, inp = batch["target_audio"], batch["input_audio"]
        for j in range(len(chunk)):
            in_v.append(float(si_sdr(inp[j], target[j])))
            if not bool(torch.isfinite(audio[j]).all()):
                n_bad += 1
                loss_v.append(math.nan)
                sdr_v.append(math.nan)
                continue
            with torch.no_grad():
                loss_v.append(float(losses(audio[j : j + 1], target[j : j + 1])["total"]))
            sdr_v.append(float(si_sdr(audio[j], target[j])))
    improvement = [s - i for s, i in zip(sdr_v, in_v)]
    return {
        "val_loss": float(np.mean(loss_v)) if loss_v else math.nan,
        "val_si_sdr": float(np.median(sdr_v)) if sdr_v else math.nan,
        "val_si_sdr_input": float(np.median(in_v)) if in_v else math.nan,
        "val_si_sdr_improvement": float(np.median(improvement)) if improvement else math.nan,
        "n_nonfinite": n_bad,
    }


def train_run(
    config,
    train_ds,
    val_ds,
    run_dir: str | os.PathLike,
    *,
    name: str | None = None,
    spike_factor: float = SPIKE_FACTOR,
    spike_window: int = SPIKE_WINDOW,
) -> dict:
    """Train one run into ``run_dir`` (skipped if ``run_dir/run_summary.json`` holds the same settings; resumed
    from ``last.ckpt`` if interrupted), evaluate its final model on ``val_ds``, and write ``steps.csv``
    (per-step loss, gradient norm, skipped) and ``run_summary.json``. Returns the summary (RUN_COLUMNS plus
    ``spike_steps``, ``validations``, ``last_checkpoint``, ``settings``, ``skipped_rerun``)."""
    run_dir = Path(run_dir)
    tc = config.training
    settings = _jsonable(
        {
            "config": config_to_dict(config),
            "n_train": len(train_ds),
            "n_val": len(val_ds),
            "spike_factor": spike_factor,
            "spike_window": spike_window,
        }
    )
    summary_path = run_dir / SUMMARY_NAME
    if summary_path.is_file():
        try:
            previous = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous and previous.get("settings") == settings:
            log.info("%s: finished before with the same settings; skipped", run_dir.name)
            return {**previous, "skipped_rerun": True}
    recorder = StepRecorder()
    t0 = time.perf_counter()
    diverged, reason, result = False, "", None
    try:
        result = train_from_config(config, train_ds, val_ds, run_dir, resume=True, extra_callbacks=[recorder])
    except TrainingDiverged as exc:
        diverged, reason = True, str(exc)
        log.warning("%s diverged: %s", run_dir.name, exc)
    wall_s = time.perf_counter() - t0
    last = result["last_checkpoint"] if result else None
    final = {
        "val_loss": math.nan,
        "val_si_sdr": math.nan,
        "val_si_sdr_input": math.nan,
        "val_si_sdr_improvement": math.nan,
        "n_nonfinite": 0,
    }
    if not diverged and last:
        final = evaluate_run(load_model(last), val_ds, config, batch_size=tc.batch_size)
        if final["n_nonfinite"] or not math.isfinite(final["val_loss"]):
            diverged = True
            reason = (
                f"the final model gives non-finite validation outputs or loss "
                f"({final['n_nonfinite']} of {len(val_ds)} examples non-finite)"
            )
    steps = recorder.steps
    # skipped (non-finite) steps changed nothing: they are counted, not part of the loss / gradient statistics
    losses = [math.nan if s["skipped"] else s["loss"] for s in steps]
    grads = [math.nan if s["skipped"] else s["grad_norm"] for s in steps]
    spikes = loss_spikes(losses, factor=spike_factor, window=spike_window)
    ends = _start_end(losses, "loss") | _start_end(grads, "grad_norm")
    if not diverged and ends["loss_end"] > spike_factor * ends["loss_start"]:
        diverged = True
        reason = (
            f"the training loss blew up: {ends['loss_end']:.4g} at the end vs {ends['loss_start']:.4g} at the "
            f"start (medians of {EDGE_STEPS} steps; limit {spike_factor:g}x)"
        )
    summary = {
        "name": name or run_dir.name,
        "seed": tc.seed,
        "learning_rate": tc.learning_rate,
        "precision": tc.precision,
        "steps": len(steps),
        "diverged": diverged,
        "divergence_reason": reason,
        "nonfinite_steps": int(sum(s["skipped"] for s in steps)),
        **{k: v for k, v in final.items() if k != "n_nonfinite"},
        **stats(grads, "grad_norm", ("median", "p95", "max")),
        **ends,
        "n_loss_spikes": len(spikes),
        "spike_steps": [steps[i]["step"] for i in spikes],
        "spike_factor": spike_factor,
        "spike_window": spike_window,
        "wall_s": wall_s,
        "validations": recorder.validations,
        "last_checkpoint": last,
        "settings": settings,
    }
    write_csv(run_dir / "steps.csv", steps, ("step", "loss", "grad_norm", "skipped"))
    write_json(summary_path, summary)
    log.info(
        "%s: %s after %d steps; val SI-SDR %.2f dB (input %.2f dB), val loss %.4f",
        summary["name"],
        "DIVERGED" if diverged else "finished",
        len(steps),
        summary["val_si_sdr"],
        summary["val_si_sdr_input"],
        summary["val_loss"],
    )
    return {**summary, "skipped_rerun": False}


def _start_end(values: list[float], prefix: str) -> dict[str, float]:
    """Medians of the first and the last :data:`EDGE_STEPS` finite values (NaN with fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return {f"{prefix}_start": math.nan, f"{prefix}_end": math.nan}
    n = min(EDGE_STEPS, x.size // 2)
    return {f"{prefix}_start": float(np.median(x[:n])), f"{prefix}_end": float(np.median(x[-n:]))}


def read_steps(run_dir: str | os.PathLike) -> list[dict]:
    """``steps.csv`` of a run as dicts of floats (``step``, ``loss``, ``grad_norm``) and ``skipped`` (bool)."""
    import csv

    with open(Path(run_dir) / "steps.csv", newline="") as f:
        return [
            {
                "step": int(r["step"]),
                "loss": float(r["loss"] or "nan"),
                "grad_norm": float(r["grad_norm"] or "nan"),
                "skipped": r["skipped"] == "True",
            }
            for r in csv.DictReader(f)
        ]


def spread_table(runs: list[dict]) -> list[dict]:
    """Spread of the final metrics over seeds, per (learning rate, precision) and over all runs; statistics
    use the runs that did not diverge."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(f"lr={r['learning_rate']:g} precision={r['precision']}", []).append(r)
    if len(groups) > 1:
        groups["all runs"] = runs
    rows = []
    for config_name, group in groups.items():
        ok = [r for r in group if not r["diverged"]]
        row = {
            "config": config_name,
            "n_runs": len(group),
            "n_diverged": len(group) - len(ok),
            "n_loss_spikes_total": int(sum(r["n_loss_spikes"] for r in group)),
        }
        for key in ("val_loss", "val_si_sdr"):
            row.update(stats((r[key] for r in ok), key, ("mean", "std", "min", "max")))
        row.update(stats((r["val_si_sdr_improvement"] for r in ok), "val_si_sdr_improvement", ("mean",)))
        row.update(stats((r["grad_norm_p95"] for r in group), "grad_norm_p95", ("median",)))
        rows.append(row)
    return rows


def stability_analysis(
    config,
    train_ds,
    val_ds,
    out_dir: str | os.PathLike,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    learning_rates: Sequence[float] | None = None,
    precisions: Sequence[str] = ("32", "bf16-mixed"),
    max_steps: int | None = None,
    spike_factor: float = SPIKE_FACTOR,
    spike_window: int = SPIKE_WINDOW,
    progress: bool = True,
) -> dict:
    """Train one run per (precision, learning rate, seed) of ``config`` on the same data and compare them (see the
    module docstring).

    Args:
        config: the typed :class:`~ddsp_demucs.core.config.Config`; each run overrides ``training.seed``,
            ``training.learning_rate``, ``training.precision`` and, if given, ``training.max_steps``.
        train_ds, val_ds: datasets of example dicts (``val_ds`` is required: the final metrics come from it).
        out_dir: runs go to ``out_dir/runs/<run_name(...)>/``; the tables, plots and ``stability.json`` beside.
        learning_rates: default: the config's.
    Returns ``{"settings", "runs": [run summaries], "spread": [rows of SPREAD_COLUMNS]}``.
    """
    if val_ds is None or len(val_ds) == 0:
        raise DDSPDemucsError("the stability analysis needs a non-empty validation set for the final metrics")
    if len(train_ds) == 0:
        raise DDSPDemucsError("the training set is empty")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise DDSPDemucsError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
    if not seeds or not precisions:
        raise DDSPDemucsError("need at least one seed and one precision")
    learning_rates = list(learning_rates) if learning_rates else [config.training.learning_rate]
    if any(not lr > 0 for lr in learning_rates):
        raise DDSPDemucsError(f"learning rates must be positive, got {learning_rates}")
    out_dir = Path(out_dir)
    grid = [(p, float(lr), int(s)) for p in precisions for lr in learning_rates for s in seeds]
    runs = []
    for precision, lr, seed in tqdm(grid, desc="stability runs", disable=not progress):
        cfg = copy.deepcopy(config)
        cfg.training.seed, cfg.training.learning_rate, cfg.training.precision = seed, lr, precision
        if max_steps is not None:
            cfg.training.max_steps = int(max_steps)
        name = run_name(seed, lr, precision)
        log.info("run %s (%d of %d)", name, len(runs) + 1, len(grid))
        runs.append(
            train_run(
                cfg,
                train_ds,
                val_ds,
                out_dir / "runs" / name,
                name=name,
                spike_factor=spike_factor,
                spike_window=spike_window,
            )
        )
    spread = spread_table(runs)
    settings = {
        "seeds": [int(s) for s in seeds],
        "learning_rates": learning_rates,
        "precisions": list(precisions),
        "max_steps": max_steps if max_steps is not None else config.training.max_steps,
        "spike_factor": spike_factor,
        "spike_window": spike_window,
        "spike_min_history": SPIKE_MIN_HISTORY,
        "n_train": len(train_ds),
        "n_val": len(val_ds),
    }
    result = {"settings": settings, "runs": runs, "spread": spread}
    _write_stability_outputs(result, out_dir)
    return result


def _write_stability_outputs(result: dict, out_dir: Path) -> None:
    runs, spread = result["runs"], result["spread"]
    write_csv(out_dir / "stability_runs.csv", runs, RUN_COLUMNS)
    write_csv(out_dir / "stability_spread.csv", spread, SPREAD_COLUMNS)
    s = result["settings"]
    diverged = [r["name"] for r in runs if r["diverged"]]
    write_markdown(
        out_dir / "stability.md",
        "Training stability",
        [
            (
                "Runs",
                f"{len(runs)} runs, {s['max_steps']} steps each, {s['n_train']} training and {s['n_val']} validation "
                "examples. Final metrics from the last checkpoint on the whole validation set (val_loss: the training "
                "objective, mean over the validation examples; SI-SDR: medians, dB). Loss spike: loss > "
                f"{s['spike_factor']:g} x the median of the previous {s['spike_window']} finite losses. "
                f"Diverged: {', '.join(diverged) if diverged else 'none'}.\n\n"
                + markdown_table(runs, [c for c in RUN_COLUMNS if c not in ("divergence_reason",)]),
            ),
            ("Spread of the final metrics over seeds", markdown_table(spread, SPREAD_COLUMNS)),
        ],
    )
    _plot_losses(runs, out_dir, out_dir / "stability_loss.png")
    _plot_final(runs, out_dir / "stability_final.png")
    write_json(
        out_dir / "stability.json",
        {
            "settings": s,
            "spread": spread,
            "runs": [{k: v for k, v in r.items() if k not in ("settings", "validations")} for r in runs],
            "files": [
                "stability_runs.csv",
                "stability_spread.csv",
                "stability.md",
                "stability_loss.png",
                "stability_final.png",
            ],
        },
    )


def _plot_losses(runs: list[dict], out_dir: Path, path: Path) -> None:
    plt = pyplot()
    fig, (ax_loss, ax_grad) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    configs = sorted({(r["learning_rate"], r["precision"]) for r in runs})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    seeds = sorted({r["seed"] for r in runs})
    for r in runs:
        steps = read_steps(out_dir / "runs" / r["name"])
        x = [s["step"] for s in steps]
        color = colors[configs.index((r["learning_rate"], r["precision"])) % len(colors)]
        style = styles[seeds.index(r["seed"]) % len(styles)]
        label = r["name"] + (" (diverged)" if r["diverged"] else "")
        ax_loss.plot(x, [s["loss"] for s in steps], style, color=color, lw=0.8, label=label)
        ax_grad.plot(x, [s["grad_norm"] for s in steps], style, color=color, lw=0.8)
        spikes = [s for s in steps if s["step"] in set(r["spike_steps"])]
        ax_loss.plot([s["step"] for s in spikes], [s["loss"] for s in spikes], "v", color="red", ms=5)
    for ax, label in ((ax_loss, "training loss"), (ax_grad, "gradient norm (before clipping)")):
        if any(np.nanmax(np.r_[line.get_ydata(), -1.0]) > 0 for line in ax.get_lines()):
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax_grad.set_xlabel("step")
    ax_loss.legend(fontsize=7, ncol=2)
    ax_loss.set_title("Training loss and gradient norm per step (red triangles: loss spikes)")
    fig.tight_layout()
    save_figure(fig, path)


def _plot_final(runs: list[dict], path: Path) -> None:
    plt = pyplot()
    configs = sorted({(r["learning_rate"], r["precision"]) for r in runs})
    labels = [f"lr={lr:g}\n{p}" for lr, p in configs]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 2.2 * len(configs) + 3), 4.2))
    for ax, key, ylabel in (
        (axes[0], "val_si_sdr", "final val SI-SDR (dB, median)"),
        (axes[1], "val_loss", "final val loss (mean)"),
    ):
        for x, cfg in enumerate(configs):
            group = [r for r in runs if (r["learning_rate"], r["precision"]) == cfg]
            ok = [r for r in group if not r["diverged"]]
            offsets = np.linspace(-0.15, 0.15, max(1, len(ok)))
            ax.plot(x + offsets[: len(ok)], [r[key] for r in ok], "o", color="C0")
            n_div = len(group) - len(ok)
            if n_div:
                ax.annotate(
                    f"{n_div} diverged",
                    (x, 0.02),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    color="red",
                    fontsize=8,
                )
        if key == "val_si_sdr":
            inputs = [r["val_si_sdr_input"] for r in runs if math.isfinite(r["val_si_sdr_input"])]
            if inputs:
                ax.axhline(float(np.median(inputs)), color="k", ls="--", label="separated input")
                ax.legend(fontsize=8)
        ax.set_xticks(range(len(configs)), labels, fontsize=8)
        ax.set_xlim(-0.6, len(configs) - 0.4)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle("Final metrics per configuration (one point per seed)")
    fig.tight_layout()
    save_figure(fig, path)
