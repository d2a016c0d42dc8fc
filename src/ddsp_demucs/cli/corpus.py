"""Write a corpus in the MUSDB18-HQ layout: the synthetic songs (default) or real remixes.

--kind synthetic: deterministic songs (a singing-like lead voice over drums, bass and chords) with exact stems
and the voice's exact F0 (f0.csv, time_s,f0_hz at 250 Hz, 0 = unvoiced) in OUT/train/<name>/ and OUT/test/<name>/,
plus OUT/manifest.json. Re-running skips finished songs.

--kind remix: the real-singing corpus. Every real vocal that --shared-data/index.csv lists goes over
--accompaniments-per-vocal accompaniments (the real instrumental recordings, the MUSDB sample's stems and
synthetic bands, taken in turn), each at the next of --ratios-db (vocal-to-accompaniment, dB) in turn, full
length; the real multitracks are also written as they are. Split by singer (no singer in two splits): at least
--min-test-singers singers and --min-test-vocals vocal takes in test/, --valid-singers singers for validation
(listed in manifest.json), the rest for training. 24-bit FLAC; F0 annotations copied where they exist.
--augment N also writes each training singer's takes N times transformed (pitch +-3 semitones, tempo +-10 %,
formants, EQ within +-4 dB or --augment-eq-db, room or impulse-response reverb, a slow level envelope; drawn from
--corpus-seed), each over other accompaniments; validation and test takes stay as recorded.

--kind remix-sample: the earlier, small remix set (four real vocals over the MUSDB sample's drums, bass and
other at one --vocal-ratio-db), kept because experiments/exp002 was measured on it.

examples:
  ddsp-demucs corpus --out data/synthetic --n-train 40 --n-test 10 --n-valid 4 --duration 20 --seed 0
  ddsp-demucs corpus --kind remix --out data/real --shared-data ../shared/data
  ddsp-demucs corpus --kind remix --out data/real_aug --shared-data ../shared/data --augment 2
  ddsp-demucs corpus --kind remix-sample --out data/remix --shared-data ../shared/data --vocal-ratio-db -3
"""

from __future__ import annotations

import argparse

from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kind",
        choices=("synthetic", "remix", "remix-sample"),
        default="synthetic",
        help="what to write (default synthetic)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output root (MUSDB18-HQ layout)")
    g = p.add_argument_group("synthetic")
    g.add_argument("--n-train", type=int, default=8, help="training songs (default 8)")
    g.add_argument("--n-test", type=int, default=2, help="test songs (default 2)")
    g.add_argument(
        "--n-valid", type=int, default=0, help="how many of the training songs form the validation split (default 0)"
    )
    g.add_argument("--duration", type=float, default=20.0, metavar="S", help="seconds per song (default 20)")
    g.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument(
        "--shared-data",
        default="../shared/data",
        metavar="DIR",
        help="folder with the real audio and its index.csv (remix kinds; default ../shared/data)",
    )
    q = p.add_argument_group("remix")
    q.add_argument(
        "--accompaniments-per-vocal",
        type=int,
        default=2,
        metavar="N",
        help="accompaniments each vocal is mixed over (default 2)",
    )
    q.add_argument(
        "--ratios-db",
        type=float,
        nargs="+",
        default=[-6.0, -3.0, 0.0, 3.0],
        metavar="DB",
        help="vocal-to-accompaniment ratios used in turn (default -6 -3 0 3)",
    )
    q.add_argument(
        "--synthetic-bands",
        type=int,
        default=2,
        metavar="N",
        help="synthetic bands added to the accompaniment pool (default 2)",
    )
    q.add_argument("--min-test-singers", type=int, default=4, help="at least this many test singers (default 4)")
    q.add_argument("--min-test-vocals", type=int, default=6, help="at least this many test vocal takes (default 6)")
    q.add_argument("--valid-singers", type=int, default=2, help="validation singers (default 2)")
    q.add_argument(
        "--max-test-takes",
        type=int,
        default=None,
        metavar="K",
        help="at most K takes per test singer, so no singer dominates the test songs (default: all)",
    )
    q.add_argument(
        "--augment",
        type=int,
        default=0,
        metavar="N",
        help="augmented versions of each training singer's take (default 0)",
    )
    q.add_argument(
        "--augment-eq-db",
        type=float,
        default=4.0,
        metavar="DB",
        help="augmentation equaliser gains (200 Hz low shelf, 0.5-4 kHz peak, 6 kHz high shelf) drawn uniformly "
        "within +-DB (default 4)",
    )
    q.add_argument("--corpus-seed", type=int, default=0, help="seed of the split and the pairing (default 0)")
    r = p.add_argument_group("remix-sample")
    r.add_argument("--vocal-ratio-db", type=float, default=-3.0, help="vocal-to-accompaniment ratio in dB (default -3)")
    r.add_argument("--subset", choices=("train", "test"), default="test", help="folder for the remixes (default test)")
    r.add_argument(
        "--max-duration",
        type=float,
        default=30.0,
        metavar="S",
        help="crop remixes to at most S seconds (default 30; 0 = the whole vocal)",
    )


def run(args: argparse.Namespace) -> int:
    if args.kind == "synthetic":
        from ddsp_demucs.corpus.synthetic import write_corpus

        manifest = write_corpus(
            args.out, args.n_train, args.n_test, args.duration, args.seed, n_valid=args.n_valid, progress=True
        )
        log.info("wrote %d songs to %s", len(manifest["tracks"]), args.out)
        return 0
    if args.kind == "remix":
        from ddsp_demucs import InputError
        from ddsp_demucs.corpus.real_corpus import write_real_corpus

        if args.augment < 0 or args.augment_eq_db < 0 or args.accompaniments_per_vocal < 1:
            raise InputError(
                f"--augment ({args.augment}) and --augment-eq-db ({args.augment_eq_db:g}) must be >= 0 and "
                f"--accompaniments-per-vocal ({args.accompaniments_per_vocal}) >= 1"
            )
        if args.max_test_takes is not None and args.max_test_takes < 1:
            raise InputError(f"--max-test-takes must be >= 1, got {args.max_test_takes}")

        tracks = write_real_corpus(
            args.out,
            args.shared_data,
            accompaniments_per_vocal=args.accompaniments_per_vocal,
            ratios_db=args.ratios_db,
            n_synthetic_bands=args.synthetic_bands,
            seed=args.corpus_seed,
            min_test_singers=args.min_test_singers,
            min_test_vocals=args.min_test_vocals,
            n_valid_singers=args.valid_singers,
            augmentations_per_vocal=args.augment,
            augmentation_eq_db=args.augment_eq_db,
            max_test_vocals_per_singer=args.max_test_takes,
            progress=True,
        )
        log.info("%d real-singing songs in %s (splits by singer in %s/manifest.json)", len(tracks), args.out, args.out)
    else:
        from ddsp_demucs.data import remix_tracks

        tracks = remix_tracks(
            args.out,
            args.shared_data,
            args.vocal_ratio_db,
            subset=args.subset,
            max_duration_s=args.max_duration or None,
        )
        log.info("%d remixes in %s", len(tracks), args.out)
    if tracks.skipped:
        log.error(
            "%d remix(es) skipped:\n  %s",
            len(tracks.skipped),
            "\n  ".join(f"{name}: {reason}" for name, reason in tracks.skipped),
        )
        return 1
    return 0
