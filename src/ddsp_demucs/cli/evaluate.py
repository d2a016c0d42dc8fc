"""Evaluate a checkpoint against the separator alone on a dataset split.

For every window of the split (4 s mono at the model's rate, as in training) the separator's vocal (baseline)
and the model's refinement are scored against the true vocal: SI-SDR, SDR (SiSEC18), spectral convergence,
log-spectral distance, multi-resolution STFT distance and F0 metrics (F0 tracked on each against F0 tracked on
the true vocal). Writes into OUT: examples.csv (one row per window), tracks.csv (per-song medians),
summary.json (medians, means, the median improvement with a bootstrap 95 % interval, counts improved and
worsened; positive improvement = better for every metric), evaluation.png, evaluation_examples.png and
report.html (self-contained: figures, audio players, the command). --full-tracks also refines whole songs at
44.1 kHz stereo and scores them against the true vocals (SiSEC18 SDR, comparable with published MUSDB18
figures): full_tracks.csv, full_tracks*.png and "full_tracks" in summary.json.

--songs DIR scores the path a user takes instead: every song of DIR (MUSDB18-HQ layout: a folder per song with
mixture and vocals; --songs-subset test by default, e.g. a corpus from `ddsp-demucs corpus --kind remix`) is
separated by --separator and refined whole, at its own rate and channels, as `ddsp-demucs refine` does, by the
checkpoint (applied at --strength, as refine does) or, with --comb, by the non-learned F0-guided harmonic comb
filter; --songs-subset valid scores the validation songs of a real corpus (where a strength is chosen). Per
song: SI-SDR of the mono downmix, SiSEC18 SDR, and the error per frequency band (< 0.3, 0.3-1, 1-3, 3-8,
> 8 kHz) and per region of the true vocal (voiced, unvoiced, silent), so a regression shows where it is;
examples.csv (one row per song, with its singer), summary.json, plots and report.html as above. Separations
are cached in OUT/song_cache.

Windows with a silent true vocal are skipped (listed); windows whose refined output is not finite, and songs
that cannot be read, are listed at the end and make the exit status 1.

examples:
  ddsp-demucs evaluate --checkpoint runs/train/checkpoints/best.ckpt --data runs/dataset --out runs/eval
  ddsp-demucs evaluate --checkpoint best.ckpt --data dataset --out eval --n-examples 200 --no-f0
  ddsp-demucs evaluate --checkpoint best.ckpt --data dataset --out eval --full-tracks --n-tracks 5
  ddsp-demucs evaluate --checkpoint runs/demo/model.ckpt --songs data/real --separator auto --out eval_real
  ddsp-demucs evaluate --comb --songs data/real --separator auto --out eval_comb
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import F0_METHODS
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    system = p.add_mutually_exclusive_group(required=True)
    system.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="model checkpoint (from `ddsp-demucs train` or `ddsp-demucs demo`), or hf://owner/repo/file.ckpt "
        "(hf://owner/repo@revision/file.ckpt) on the Hugging Face Hub, downloaded once into its cache",
    )
    system.add_argument(
        "--comb",
        action="store_true",
        help="with --songs: score the non-learned F0-guided harmonic comb filter instead of a model",
    )
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, metavar="DIR", help="dataset folder (`ddsp-demucs build-dataset`)")
    data.add_argument(
        "--songs",
        type=Path,
        metavar="DIR",
        help="folder of songs with true vocals (MUSDB18-HQ layout): score whole songs, the user's path",
    )
    p.add_argument(
        "--songs-subset",
        default="test",
        choices=("train", "valid", "test"),
        help="with --songs: the songs to score: the test folder (default), the train folder, or valid: the "
        "validation songs a corpus manifest lists (in the train folder)",
    )
    p.add_argument(
        "--separator",
        default="auto",
        metavar="NAME",
        help="with --songs: separator (a Demucs model name, fallback, auto, or an oracle separator of controlled "
        "quality made from the true vocal: oracle, oracle-bands16, oracle-smooth0.2-err1...; default auto)",
    )
    p.add_argument("--demucs-repo", type=Path, metavar="DIR", help="with --songs: local folder of Demucs weights")
    p.add_argument(
        "--oracle-f0",
        action="store_true",
        help="with --songs: a diagnosis, not a user's path: the system tracks F0 on the true vocal "
        "instead of on the separated one",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="with --songs and --checkpoint: how much of the refinement to apply, 0-1, as refine --strength "
        "(default 1)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument(
        "--split",
        default="test",
        choices=("train", "validation", "test"),
        help="dataset split to evaluate (default: test)",
    )
    p.add_argument(
        "--n-examples", type=int, metavar="N", help="evaluate N windows spread over the split (default: all)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="windows per model call (default 8)")
    p.add_argument(
        "--f0-method",
        choices=F0_METHODS,
        help="F0 tracker for the F0 metrics (default: the checkpoint's)",
    )
    p.add_argument("--no-f0", action="store_true", help="leave out the F0 metrics (they take most of the time)")
    p.add_argument(
        "--full-tracks",
        action="store_true",
        help="also evaluate whole songs at 44.1 kHz stereo through the full-song refinement",
    )
    p.add_argument("--n-tracks", type=int, metavar="N", help="with --full-tracks: N songs of the split (default: all)")
    p.add_argument("--window-s", type=float, default=30.0, help="with --full-tracks: refinement window in seconds")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the 95 %% intervals (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model noise and the bootstrap (default 0)")


def command_line(args: argparse.Namespace) -> str:
    """The command as it could be typed again (every option with its value)."""
    parts = ["ddsp-demucs", "evaluate"] + (["--comb"] if args.comb else ["--checkpoint", str(args.checkpoint)])
    if args.songs is not None:
        parts += ["--songs", str(args.songs), "--songs-subset", args.songs_subset, "--separator", args.separator]
        if args.demucs_repo is not None:
            parts += ["--demucs-repo", str(args.demucs_repo)]
    else:
        parts += ["--data", str(args.data), "--split", args.split]
    parts += ["--out", str(args.out)]
    for flag, value in (
        ("--n-examples", args.n_examples),
        ("--batch-size", args.batch_size),
        ("--f0-method", args.f0_method),
        ("--n-tracks", args.n_tracks),
        ("--n-boot", args.n_boot),
        ("--seed", args.seed),
        ("--strength", args.strength if args.strength != 1.0 else None),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if args.no_f0:
        parts.append("--no-f0")
    if args.oracle_f0:
        parts.append("--oracle-f0")
    if args.full_tracks:
        parts += ["--full-tracks", "--window-s", f"{args.window_s:g}"]
    return shlex.join(parts)


def headline(summary: dict, what: str) -> str:
    """Two lines: SI-SDR and SDR medians (separated -> refined) and the verdict sentence."""
    from ddsp_demucs.evaluation import verdict

    lines = []
    for key in ("si_sdr", "si_sdr_mono", "sdr"):
        m = summary.get(key)
        if m:
            lo, hi = m["improvement_ci95"]
            lines.append(
                f"{what}: {m['label']} separated {m['baseline_median']:.2f} dB -> refined "
                f"{m['refined_median']:.2f} dB (median improvement {m['improvement_median']:+.2f} dB, "
                f"95% CI {lo:+.2f} to {hi:+.2f}; {m['n_improved']} improved, {m['n_worsened']} worsened)"
            )
    return "\n".join(lines + [verdict(summary)])


def load_refinement_model(checkpoint: str | Path):
    """The ResidualDDSPDecoder of ``checkpoint``; DDSPDemucsError naming the file otherwise."""
    from ddsp_demucs.model import ResidualDDSPDecoder
    from ddsp_demucs.training.checkpoints import load_model

    model = load_model(checkpoint)
    if not isinstance(model, ResidualDDSPDecoder):
        raise DDSPDemucsError(f"{checkpoint}: holds a {type(model).__name__}, not a ResidualDDSPDecoder")
    return model


def run_songs(args: argparse.Namespace) -> int:
    """``evaluate --songs``: whole songs through separation and refinement (see the module docstring)."""
    from ddsp_demucs.cli.refine import check_output_folder
    from ddsp_demucs.evaluation import write_evaluation
    from ddsp_demucs.evaluation.songs import comb_refiner, evaluate_songs, model_refiner
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.provenance import provenance_warnings

    if not args.songs.is_dir():
        raise DDSPDemucsError(f"{args.songs}: songs folder not found")
    check_output_folder(args.out)
    separator = get_separator(args.separator, repo=args.demucs_repo)
    if args.comb:
        refiner, system, provenance = (
            comb_refiner(f0_method=args.f0_method, oracle_f0=args.oracle_f0),
            "comb filter (no training)",
            {},
        )
    else:
        model = load_refinement_model(args.checkpoint)
        provenance = getattr(model, "provenance", {}) or {}
        for warning in provenance_warnings(provenance, separator.name):
            log.warning("%s: %s", args.checkpoint, warning)
        refiner = model_refiner(
            model, window_s=args.window_s, seed=args.seed, oracle_f0=args.oracle_f0, strength=args.strength
        )
        system = f"model {args.checkpoint}" + (f" at strength {args.strength:g}" if args.strength != 1.0 else "")
    if args.oracle_f0:
        system += " with oracle F0 (tracked on the true vocal)"
    results = evaluate_songs(
        refiner,
        args.songs,
        separator,
        system=system,
        cache_dir=args.out / "song_cache",
        subset="train" if args.songs_subset == "valid" else args.songs_subset,
        split="valid" if args.songs_subset == "valid" else None,
        n_songs=args.n_tracks,
        f0_method=args.f0_method,
        settings={"provenance": provenance},
        progress=True,
    )
    written = write_evaluation(
        args.out,
        results,
        n_boot=args.n_boot,
        seed=args.seed,
        title=f"ddsp-demucs evaluation: {system} on the songs of {args.songs.name}",
        command=command_line(args),
    )
    summary = written["summary"]
    print(headline(summary, f"{summary['n_examples']} whole songs ({system}, separator {separator.name})"))
    print(f"report: {written['paths']['report']}\nsummary: {written['paths']['summary']}")
    problems = [f"{e}: {r}" for e, r in results.failed + results.errors]
    if not results.rows:
        problems.append(f"{args.songs}: no song could be scored")
    if problems:
        log.error("%d song(s) failed or could not be evaluated:\n  %s", len(problems), "\n  ".join(problems))
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from ddsp_demucs.cli.refine import check_output_folder
    from ddsp_demucs.evaluation import evaluate_model, evaluate_tracks, write_evaluation
    from ddsp_demucs.inference.refine import check_strength

    for name in ("n_examples", "n_tracks", "batch_size", "n_boot"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise DDSPDemucsError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    check_strength(args.strength)
    if args.strength != 1.0 and (args.songs is None or args.comb):
        raise DDSPDemucsError("--strength applies to a checkpoint's refinement of whole songs: use it with --songs")
    if args.songs is not None:
        return run_songs(args)
    if args.comb:
        raise DDSPDemucsError("--comb scores whole songs: use it with --songs DIR")
    model = load_refinement_model(args.checkpoint)
    if not args.data.is_dir():
        raise DDSPDemucsError(f"{args.data}: dataset folder not found")
    from ddsp_demucs.data import load_dataset

    dataset = load_dataset(args.data, args.split)
    check_output_folder(args.out)
    log.info(
        "evaluating %s (%s model) on %d %s windows of %s; separator %s",
        args.checkpoint,
        model.composition,
        len(dataset),
        args.split,
        args.data,
        (getattr(dataset, "manifest", None) or {}).get("separator"),
    )
    results = evaluate_model(
        model,
        dataset,
        args.n_examples,
        batch_size=args.batch_size,
        f0_method=args.f0_method,
        compute_f0=not args.no_f0,
        seed=args.seed,
        progress=True,
    )
    tracks = None
    if args.full_tracks:
        tracks = evaluate_tracks(
            model,
            args.data,
            args.split,
            n_tracks=args.n_tracks,
            window_s=args.window_s,
            f0_method=args.f0_method,
            compute_f0=not args.no_f0,
            seed=args.seed,
            progress=True,
        )
    written = write_evaluation(
        args.out,
        results,
        tracks=tracks,
        n_boot=args.n_boot,
        seed=args.seed,
        title=f"ddsp-demucs evaluation: {Path(args.checkpoint).name} on {args.data.name} ({args.split})",
        command=command_line(args),
    )
    summary = written["summary"]
    print(headline(summary, f"{summary['n_examples']} windows"))
    if tracks is not None:
        print(headline(summary["full_tracks"], f"{summary['full_tracks']['n_examples']} whole songs"))
    print(f"report: {written['paths']['report']}\nsummary: {written['paths']['summary']}")
    problems = [f"{e}: {r}" for res in (results, tracks) if res is not None for e, r in res.failed + res.errors]
    if not results.rows:
        problems.append(f"{args.data}: no {args.split} window could be scored (see the skipped windows above)")
    if problems:
        log.error("%d example(s) failed or could not be evaluated:\n  %s", len(problems), "\n  ".join(problems))
        return 1
    return 0
