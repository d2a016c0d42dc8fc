"""Train the residual DDSP model on one dataset directory or several.

Reads DIR's train and validation splits (written by `ddsp-demucs build-dataset`); with --data given more than
once (the same songs separated by several separators, e.g. the fallback and oracle-bands16), the windows of every
dataset are drawn together, so a training batch mixes separation qualities. It trains with the config's
model / loss / training sections, and writes into OUT: config.yaml (resolved), checkpoints/best.ckpt and
checkpoints/last.ckpt (each loadable alone with ddsp_demucs.training.checkpoints.load_model), logs/tensorboard and
logs/csv/metrics.csv, and train_summary.json. Re-running with the same OUT resumes from last.ckpt (no step
lost or repeated) unless --no-resume is given; it refuses, naming the settings, when the run in OUT was trained
with other settings (only its length, logging, checkpointing and hardware may change: training.max_steps, ...).

examples:
  ddsp-demucs train --config configs/ddsp_residual_small.yaml --data data/dataset --out runs/small
  ddsp-demucs train --config configs/base.yaml --data data/dataset --out runs/gate model.composition=gate
  ddsp-demucs train --config configs/demo.yaml --data data/fallback --data data/oracle-bands16 --out runs/mixed
  ddsp-demucs train --config configs/base.yaml --data data/dataset --out runs/ddp training.devices=2 \\
      training.strategy=ddp training.accelerator=cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="YAML config (e.g. configs/base.yaml)")
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        action="append",
        metavar="DIR",
        help="dataset directory (from build-dataset); repeat to train on several separators' windows together",
    )
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, logs, config)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoints/last.ckpt exists")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. training.max_steps=100")


def run(args: argparse.Namespace) -> int:
    from ddsp_demucs.core.utils import load_config, write_json_atomic

    config = load_config(args.config, args.overrides)
    for folder in args.data:
        if not folder.is_dir():
            raise InputError(f"{folder}: dataset directory not found")
    from ddsp_demucs.data import SeparatorMixDataset, load_dataset  # the dataset pipeline; imported only when training
    from ddsp_demucs.training.trainer import train_from_config

    train_sets, val_sets, missing = [], [], []
    for folder in args.data:
        train_sets.append(load_dataset(folder, "train"))
        if len(train_sets[-1]) == 0:
            raise InputError(f"{folder}: the train split is empty")
        try:
            val_sets.append(load_dataset(folder, "validation"))
        except (FileNotFoundError, InputError) as exc:
            missing.append(f"{folder} ({exc})")
    if missing:
        then = "validating on the other folders' windows" if val_sets else "training without validation"
        log.warning("no validation split in %s: %s", "; ".join(missing), then)
    train_ds = SeparatorMixDataset(train_sets)  # one dataset: its own windows and separator
    val_ds = SeparatorMixDataset(val_sets) if val_sets else None
    result = train_from_config(config, train_ds, val_ds, args.out, resume=not args.no_resume)
    write_json_atomic(args.out / "train_summary.json", result)
    log.info("done: %d steps; best checkpoint %s", result["global_step"], result["best_checkpoint"])
    print(result["best_checkpoint"])
    return 0
