"""Analyses of the refinement model: F0 noise and stability.

f0-noise   how wrong F0 is on the separated vocals (F0 tracked on the separated vs the clean vocal: raw pitch and
           chroma accuracy, octave errors, voicing, median cents), and how the refined output degrades when the
           F0 given to the model is perturbed (Gaussian cents jitter, octave errors, voicing flips; one family at
           a time, fixed seeds). Writes OUT/f0_noise.{csv,md,png,json}, f0_noise_examples.csv, f0_accuracy.csv.
           Skipped when OUT/f0_noise.json already holds the same request (--force to redo).
stability  trains one run per precision x learning rate x seed on DIR's train split into OUT/runs/<name>/
           (finished runs are skipped on re-run, interrupted ones resume), compares final validation metrics,
           divergences, gradient norms and loss spikes (OUT/stability_{runs,spread}.csv, stability.md,
           stability_{loss,final}.png, stability.json), then measures the output stability of a trained model
           under tiny input changes (-60 dB noise, one-sample shift, +-1 dB gain) on the validation split
           (OUT/output_stability.*): --checkpoint, else the run with the best final validation SI-SDR.

examples:
  ddsp-demucs analyze f0-noise --checkpoint runs/small/checkpoints/best.ckpt --data data/dataset --out runs/f0
  ddsp-demucs analyze f0-noise --checkpoint CKPT --data DIR --out OUT --split validation --n-examples 50
  ddsp-demucs analyze stability --config configs/ddsp_residual_small.yaml --data data/dataset --out runs/stab \\
      --seeds 0 1 2 --learning-rates 1e-3 3e-3 --precisions 32 bf16-mixed --max-steps 2000
  ddsp-demucs analyze stability --config CFG --data DIR --out OUT training.batch_size=4 --seeds 0 1
  (config overrides go before the list options, or after "--")
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)
SPLITS = ("train", "validation", "test")


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    doc = (__doc__ or "").strip()
    f = sub.add_parser(
        "f0-noise",
        help="F0 errors on separated vocals and the refined output under F0 perturbation",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument(
        "--checkpoint",
        required=True,
        help="trained model checkpoint, or hf://owner/repo/file.ckpt (hf://owner/repo@revision/file.ckpt) on the "
        "Hugging Face Hub, downloaded once into its cache",
    )
    f.add_argument("--data", required=True, type=Path, help="dataset directory (from build-dataset)")
    f.add_argument("--out", required=True, type=Path, help="output folder")
    f.add_argument("--split", default="test", choices=SPLITS, help="dataset split (default: test)")
    f.add_argument(
        "--n-examples", type=int, default=None, help="analyse N windows spread over the split (default: all)"
    )
    f.add_argument(
        "--jitter-cents",
        type=float,
        nargs="+",
        default=[0, 10, 25, 50, 100],
        metavar="C",
        help="Gaussian jitter std levels in cents (default: 0 10 25 50 100)",
    )
    f.add_argument(
        "--octave-rates",
        type=float,
        nargs="+",
        default=[0, 0.01, 0.05, 0.10],
        metavar="R",
        help="fractions of voiced frames with an octave error (default: 0 0.01 0.05 0.10)",
    )
    f.add_argument(
        "--voicing-rates",
        type=float,
        nargs="+",
        default=[0, 0.05, 0.10],
        metavar="R",
        help="fractions of frames with flipped voicing (default: 0 0.05 0.10)",
    )
    f.add_argument("--f0-method", default=None, help="F0 tracker for the accuracy part (default: the checkpoint's)")
    f.add_argument("--no-f0-accuracy", action="store_true", help="skip tracking F0 on the separated and clean vocals")
    f.add_argument("--seed", type=int, default=0, help="perturbation seed (default: 0)")
    f.add_argument("--batch-size", type=int, default=8, help="examples per model call (default: 8)")
    f.add_argument("--force", action="store_true", help="redo even if OUT/f0_noise.json holds the same request")
    f.set_defaults(_analysis=_run_f0_noise)

    s = sub.add_parser(
        "stability",
        help="training stability over seeds / learning rates / precisions, and output "
        "stability under tiny input changes",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--config", required=True, type=Path, help="YAML config (e.g. configs/ddsp_residual_small.yaml)")
    s.add_argument("--data", required=True, type=Path, help="dataset directory (train and validation splits)")
    s.add_argument("--out", required=True, type=Path, help="output folder (runs/ inside)")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    s.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=None,
        metavar="LR",
        help="learning rates (default: the config's)",
    )
    s.add_argument(
        "--precisions",
        nargs="+",
        default=["32", "bf16-mixed"],
        choices=["32", "bf16-mixed", "16-mixed"],
        help="training precisions (default: 32 bf16-mixed)",
    )
    s.add_argument("--max-steps", type=int, default=None, help="steps per run (default: the config's)")
    s.add_argument(
        "--checkpoint",
        default=None,
        help="model for the output-stability part, a file or hf://owner/repo/file.ckpt (default: the run with the "
        "best validation SI-SDR)",
    )
    s.add_argument(
        "--n-examples", type=int, default=None, help="validation windows for the output-stability part (default: all)"
    )
    s.add_argument("--no-output-stability", action="store_true", help="only the training runs")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. training.batch_size=4")
    s.set_defaults(_analysis=_run_stability)


def run(args: argparse.Namespace) -> int:
    return args._analysis(args)


def _load_split(data: Path, split: str):
    if not data.is_dir():
        raise InputError(f"{data}: dataset directory not found")
    from ddsp_demucs.data import load_dataset

    dataset = load_dataset(data, split)
    if len(dataset) == 0:
        raise InputError(f"{data}: the {split} split is empty")
    return dataset


def _run_f0_noise(args: argparse.Namespace) -> int:
    from ddsp_demucs.analysis import f0_noise_analysis, write_f0_noise_outputs
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.hub import is_hub_reference, resolve_checkpoint

    if args.n_examples is not None and args.n_examples < 1:
        raise InputError(f"--n-examples must be >= 1, got {args.n_examples}")
    local = resolve_checkpoint(args.checkpoint)
    ckpt = local.resolve()
    request = {
        "checkpoint": args.checkpoint if is_hub_reference(args.checkpoint) else str(ckpt),
        "checkpoint_mtime_ns": ckpt.stat().st_mtime_ns if ckpt.is_file() else None,
        "data": str(args.data.resolve()),
        "split": args.split,
        "n_examples_requested": args.n_examples,
        "jitter_cents": args.jitter_cents,
        "octave_rates": args.octave_rates,
        "voicing_rates": args.voicing_rates,
        "f0_method": args.f0_method,
        "f0_accuracy": not args.no_f0_accuracy,
        "seed": args.seed,
    }
    summary_path = args.out / "f0_noise.json"
    if not args.force and summary_path.is_file():
        try:
            previous = json.loads(summary_path.read_text()).get("settings", {}).get("request")
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = None
        if previous == request:
            log.info("%s is up to date with this request; nothing to do (--force to redo)", summary_path)
            print(summary_path)
            return 0
    model = load_model(local)
    dataset = _load_split(args.data, args.split)
    log.info(
        "F0-noise analysis of %s on %s/%s (%s windows)",
        args.checkpoint,
        args.data,
        args.split,
        args.n_examples or len(dataset),
    )
    result = f0_noise_analysis(
        model,
        dataset,
        cents_jitter=args.jitter_cents,
        octave_error_rates=args.octave_rates,
        voicing_flip_rates=args.voicing_rates,
        n_examples=args.n_examples,
        seed=args.seed,
        batch_size=args.batch_size,
        f0_accuracy_part=not args.no_f0_accuracy,
        f0_method=args.f0_method,
    )
    path = write_f0_noise_outputs(result, args.out, extra_settings={"request": request})
    log.info("wrote %s and the tables and plot beside it", path)
    print(path)
    return 0


def _run_stability(args: argparse.Namespace) -> int:
    from ddsp_demucs.analysis import output_stability, stability_analysis, write_output_stability_outputs
    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.hub import resolve_checkpoint

    config = load_config(args.config, args.overrides)
    if args.max_steps is not None and args.max_steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
    checkpoint = resolve_checkpoint(args.checkpoint) if args.checkpoint is not None else None  # before training
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"{checkpoint}: checkpoint not found")
    train_ds = _load_split(args.data, "train")
    val_ds = _load_split(args.data, "validation")
    result = stability_analysis(
        config,
        train_ds,
        val_ds,
        args.out,
        seeds=args.seeds,
        learning_rates=args.learning_rates,
        precisions=args.precisions,
        max_steps=args.max_steps,
    )
    diverged = [r["name"] for r in result["runs"] if r["diverged"]]
    log.info(
        "%d runs, %d diverged%s; tables in %s",
        len(result["runs"]),
        len(diverged),
        f" ({', '.join(diverged)})" if diverged else "",
        args.out,
    )
    if not args.no_output_stability:
        ckpt = checkpoint
        if ckpt is None:
            finished = [r for r in result["runs"] if not r["diverged"] and r.get("last_checkpoint")]
            if not finished:
                raise DDSPDemucsError(
                    "every run diverged: no trained model for the output-stability part "
                    "(give --checkpoint, or --no-output-stability)"
                )
            best = max(finished, key=lambda r: r["val_si_sdr"])
            ckpt = Path(best["last_checkpoint"])
            log.info("output stability on %s (run %s: best final validation SI-SDR)", ckpt, best["name"])
        out = output_stability(load_model(ckpt), val_ds, n_examples=args.n_examples)
        used = args.checkpoint or str(ckpt)  # an hf:// reference as given
        write_output_stability_outputs(out, args.out, extra_settings={"checkpoint": used, "split": "validation"})
    print(args.out / "stability.json")
    return 0
