"""Build the training dataset from the gate's accepted windows.

Reads FEATURES_DIR/<separator>/accepted_segments.csv and the feature files beside it (from `ddsp-demucs
features`), the separated vocals STEMS_DIR/<separator>/<track>/vocals.wav (from `ddsp-demucs separate`) and
the mixtures and true vocals of MUSDB_ROOT (MUSDB18-HQ layout). Writes, mono at data.train_sr, one shard per
song: input_audio (separated vocal), target_audio (true vocal), mixture_audio, and the frame controls f0_hz,
f0_confidence (the feature file's) and loudness_db (A-weighted, at train_sr), as .npy arrays that training
memory-maps, plus OUT/manifest.json (counts, shapes, rates, splits, SHA-256 of every file, the config).

Splits are by song: MUSDB's test folder is the test split, its validation songs the validation split (a corpus
without any holds out data.val_fraction of its training songs). A re-run keeps shards whose inputs and
parameters are unchanged. A sharded run (--num-shards) builds only its songs; run once more with --index-only
to write the manifest. Songs that cannot be used are reported in one line each, the others are still built,
and the command exits 1 listing them.

examples:
  ddsp-demucs build-dataset --features-dir features --stems-dir stems --separator htdemucs \\
      --musdb-root musdb18hq --out data/dataset
  ddsp-demucs build-dataset ... --num-shards 8 --shard-index 3        # one job of an array
  ddsp-demucs build-dataset ... --index-only                          # then the manifest
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--features-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="features root (DIR/<separator>/accepted_segments.csv and <track>.npz)",
    )
    p.add_argument("--stems-dir", required=True, type=Path, metavar="DIR", help="root of the separated stems")
    p.add_argument("--separator", required=True, metavar="NAME", help="separator folder (e.g. htdemucs, fallback)")
    p.add_argument(
        "--musdb-root",
        required=True,
        type=Path,
        metavar="DIR",
        help="songs in the MUSDB18-HQ layout (train/, test/), for mixtures and true vocals",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="dataset folder to write")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML config (default: built-in defaults)")
    p.add_argument(
        "--segments",
        type=Path,
        metavar="CSV",
        help="segments CSV (default: FEATURES_DIR/<separator>/accepted_segments.csv)",
    )
    p.add_argument("--num-shards", type=int, default=1, help="split the songs into N shards (default 1)")
    p.add_argument("--shard-index", type=int, default=0, help="which shard this process builds (0-based)")
    p.add_argument("--index-only", action="store_true", help="write the manifest from the shards on disk")
    p.add_argument("--force", action="store_true", help="rebuild shards even when up to date")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.val_fraction=0.2")


def run(args: argparse.Namespace) -> int:
    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.data import build_dataset_from_segments
    from ddsp_demucs.features import SEGMENTS_CSV

    config = load_config(args.config, args.overrides)
    features = args.features_dir / args.separator
    stems = args.stems_dir / args.separator
    if not stems.is_dir():
        raise InputError(f"{stems}: no separated stems for separator {args.separator!r}")
    report = build_dataset_from_segments(
        args.segments or features / SEGMENTS_CSV,
        stems,
        args.musdb_root,
        args.out,
        train_sr=config.data.train_sr,
        win_s=config.data.win_s,
        hop_s=config.data.hop_s,
        config=config,
        features_dir=features,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        index_only=args.index_only,
        force=args.force,
    )
    print(report)
    if report.skipped:
        log.error("%d song(s) skipped:\n  %s", len(report.skipped), "\n  ".join(r for _, r in report.skipped))
        return 1
    return 0
