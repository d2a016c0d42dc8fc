"""Write a corpus in the MUSDB18-HQ layout: the synthetic songs (default) or real remixes.

--kind synthetic: deterministic songs (a singing-like lead voice over drums, bass and chords) with exact stems
and the voice's exact F0 (f0.csv, time_s,f0_hz at 250 Hz, 0 = unvoiced) in OUT/train/<name>/ and OUT/test/<name>/,
plus OUT/manifest.json. Re-running skips finished songs.

--kind remix: real vocals (vocadito, MedleyDB, sms-tools, from --shared-data) over the MUSDB sample's drums, bass
and other, looped or cropped, at --vocal-ratio-db; F0 annotations are copied beside the vocals where they exist.

examples:
  ddsp-demucs corpus --out data/synthetic --n-train 40 --n-test 10 --n-valid 4 --duration 20 --seed 0
  ddsp-demucs corpus --kind remix --out data/remix --shared-data ../shared/data --vocal-ratio-db -3
"""

from __future__ import annotations

import argparse

from ddsp_demucs.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=("synthetic", "remix"), default="synthetic", help="what to write (default synthetic)")
    p.add_argument("--out", required=True, metavar="DIR", help="output root (MUSDB18-HQ layout)")
    g = p.add_argument_group("synthetic")
    g.add_argument("--n-train", type=int, default=8, help="training songs (default 8)")
    g.add_argument("--n-test", type=int, default=2, help="test songs (default 2)")
    g.add_argument("--n-valid", type=int, default=0,
                   help="how many of the training songs form the validation split (default 0)")
    g.add_argument("--duration", type=float, default=20.0, metavar="S", help="seconds per song (default 20)")
    g.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    r = p.add_argument_group("remix")
    r.add_argument("--shared-data", default="../shared/data", metavar="DIR",
                   help="folder with the real vocals and the MUSDB sample (default ../shared/data)")
    r.add_argument("--vocal-ratio-db", type=float, default=-3.0, help="vocal-to-accompaniment ratio in dB (default -3)")
    r.add_argument("--subset", choices=("train", "test"), default="test", help="folder for the remixes (default test)")
    r.add_argument("--max-duration", type=float, default=30.0, metavar="S",
                   help="crop remixes to at most S seconds (default 30; 0 = the whole vocal)")


def run(args: argparse.Namespace) -> int:
    if args.kind == "synthetic":
        from ddsp_demucs.synthetic import write_corpus

        manifest = write_corpus(args.out, args.n_train, args.n_test, args.duration, args.seed,
                                n_valid=args.n_valid, progress=True)
        log.info("wrote %d songs to %s", len(manifest["tracks"]), args.out)
        return 0
    from ddsp_demucs.data import remix_tracks

    tracks = remix_tracks(args.out, args.shared_data, args.vocal_ratio_db, subset=args.subset,
                          max_duration_s=args.max_duration or None)
    log.info("%d remixes in %s", len(tracks), args.out)
    if tracks.skipped:
        log.error("%d remix(es) skipped:\n  %s", len(tracks.skipped),
                  "\n  ".join(f"{name}: {reason}" for name, reason in tracks.skipped))
        return 1
    return 0
