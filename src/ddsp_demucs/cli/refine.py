"""Separate and refine the vocals of whole songs with a trained checkpoint, or without --checkpoint with the
default refiner shipped in the package where it ships one (README, Your own songs: when it does, and the licence
its weights carry).

For each SONG (a file, or every audio file under a folder) writes OUT/<song file stem>/separated_vocals.wav
(the separator's vocal), refined_vocals.wav (the model's refinement of it) and refine.json (settings,
checkpoint and its provenance, separator, timings), at the song's sample rate, channel count and exact length.
The checkpoint's provenance is checked first: a warning is logged when it was trained on another separator,
on synthetic voices only, or does not say. Songs are refined in overlapping windows (--window-s, crossfaded
over --overlap-s), so memory does not grow with the song's length. --strength S < 1 applies part of the
refinement (separated + S * (refined - separated)). A re-run skips songs whose outputs are newer than the song
and the checkpoint and were made with the same settings (--force redoes them). Songs that cannot be read or
separated are reported at the end and make the exit status 1; the others are still processed. --checkpoint also
takes hf://owner/repo/file.ckpt: downloaded into the Hugging Face cache, then used from there offline too.

Separators: any Demucs model name (htdemucs, htdemucs_ft, ...), "fallback" (weight-free, much lower quality),
or "auto" (htdemucs if its weights load, else fallback, with a warning). --demucs-repo DIR holds Demucs
weights for offline machines (<name>.yaml + <sig>.th).

examples:
  ddsp-demucs refine song.wav --out refined
  ddsp-demucs refine song.wav --checkpoint runs/demo/model.ckpt --separator htdemucs --out refined
  ddsp-demucs refine album/ other.flac --checkpoint best.ckpt --separator auto --out refined --demucs-repo weights/
  ddsp-demucs refine long_set.wav --checkpoint best.ckpt --separator fallback --out refined --window-s 20
  ddsp-demucs refine song.wav --checkpoint hf://owner/repo/model.ckpt --separator htdemucs --out refined
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.config import F0_METHODS
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("songs", nargs="+", metavar="SONG", help="song files and/or folders of songs")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="model checkpoint (from `ddsp-demucs train` or `ddsp-demucs demo`; an exported .safetensors with its "
        ".json card), or hf://owner/repo/file.ckpt (hf://owner/repo@revision/file.ckpt) on the Hugging Face Hub, "
        "downloaded once into its cache (default: the refiner shipped in the package, where it ships one)",
    )
    p.add_argument(
        "--separator", default="auto", metavar="NAME", help="a Demucs model name, 'fallback', or 'auto' (default: auto)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--demucs-repo", metavar="DIR", help="local folder of Demucs weights for offline use")
    p.add_argument(
        "--window-s",
        type=float,
        default=30.0,
        help="refinement window in seconds (default 30; rounded down to the model's window grid)",
    )
    p.add_argument("--overlap-s", type=float, default=1.0, help="crossfade between windows in seconds (default 1)")
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="how much of the refinement to apply, 0-1: the output is separated + S * (refined - separated) "
        "(default 1: the model's output; README, Your own songs: what lower values did on real songs)",
    )
    p.add_argument(
        "--f0-method",
        choices=F0_METHODS,
        help="F0 tracker (default: the checkpoint's; crepe-separated: CREPE-tiny fine-tuned on separated vocals; "
        "crepe-mixture: the same, also reading the song, better on the weight-free fallback's vocals and worse on "
        "good separations; README, Pitch)",
    )
    p.add_argument(
        "--harmonic-check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check the tracked pitch for the octave, fifth or fourth above the sung one and move it down where the "
        "spectrum holds the lower pitch's harmonics, in frames the separator was sure of (default: the "
        "checkpoint's, off in every one trained here; README, Pitch: what it did to real songs)",
    )
    p.add_argument("--force", action="store_true", help="redo songs whose outputs are up to date")


def collect_songs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Song paths from files and folders, and the problems found (an empty folder; two songs with the same
    file stem, which would share an output folder: the later one is not processed)."""
    from ddsp_demucs.core.audio_io import AUDIO_EXTENSIONS, list_audio_files

    songs: list[Path] = []
    problems: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_audio_files(path)
            if not found:
                problems.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            songs.extend(found)
        else:
            songs.append(path)  # a missing or unreadable file fails as a song; the others still run
    unique: dict[str, Path] = {}
    for song in songs:
        if song.stem in unique:
            if unique[song.stem].resolve() != song.resolve():
                problems.append(
                    f"{song}: same file name as {unique[song.stem]} (both would write OUT/{song.stem}/); rename one"
                )
            continue
        unique[song.stem] = song
    return list(unique.values()), problems


def check_output_folder(out: Path) -> None:
    """Create ``out`` if needed and check that files can be written in it, before any song is processed;
    raises :class:`DDSPDemucsError` naming the folder and the problem."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise DDSPDemucsError(f"{out}: cannot write the output folder ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ddsp_demucs.inference.refine import check_strength, check_window_args, refine_song
    from ddsp_demucs.model import ResidualDDSPDecoder
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.separation.oracle import is_oracle_name
    from ddsp_demucs.training.checkpoints import DEFAULT_REFINER, load_model
    from ddsp_demucs.training.provenance import provenance_warnings

    if is_oracle_name(args.separator):
        raise InputError(
            f"separator {args.separator} needs each song's true vocal, which a song file does not have; oracle "
            "separators are for corpora with stems (ddsp-demucs separate --musdb, evaluate --songs)"
        )
    check_window_args(args.window_s, args.overlap_s)
    check_strength(args.strength)
    packaged = args.checkpoint is None
    if packaged:
        if not DEFAULT_REFINER.is_file():
            raise InputError(
                "no --checkpoint given and this installation ships no default refiner (make model builds one and "
                "ships it only where it makes at most 10 % of songs worse at every separation quality measured); "
                "pass --checkpoint"
            )
        args.checkpoint = str(DEFAULT_REFINER)
    model = load_model(args.checkpoint)
    if packaged:
        log.info("no --checkpoint: refining with the package's default refiner (%s)", model.card.get("summary", "?"))
    if not isinstance(model, ResidualDDSPDecoder):
        raise DDSPDemucsError(f"{args.checkpoint}: holds a {type(model).__name__}, not a ResidualDDSPDecoder")
    check_output_folder(args.out)
    songs, failures = collect_songs(args.songs)
    for problem in failures:
        log.error(problem)
    separator = get_separator(args.separator, repo=args.demucs_repo)
    log.info(
        "refining %d song(s) with %s (%s model), separator %s, into %s",
        len(songs),
        args.checkpoint,
        model.composition,
        separator.name,
        args.out,
    )
    for warning in provenance_warnings(getattr(model, "provenance", {}), separator.name):
        log.warning("%s: %s", args.checkpoint, warning)
    done = skipped = 0
    for song in tqdm(songs, desc="songs", unit="song", disable=len(songs) < 2):
        try:
            record = refine_song(
                song,
                model,
                separator,
                args.out,
                window_s=args.window_s,
                overlap_s=args.overlap_s,
                force=args.force,
                checkpoint=args.checkpoint,
                progress=True,
                strength=args.strength,
                f0_method=args.f0_method,
                harmonic_check=args.harmonic_check,
            )
        except (DDSPDemucsError, OSError) as exc:
            message = str(exc) if isinstance(exc, DDSPDemucsError) else f"{exc.filename or song}: {exc.strerror or exc}"
            if not message.startswith(str(song)):
                message = f"{song}: {message}"
            log.error(message)
            failures.append(message)
            continue
        skipped += record["skipped"]
        done += not record["skipped"]
    log.info("%d song(s) refined, %d up to date, %d failed", done, skipped, len(failures))
    if failures:
        log.error("%d song(s) not refined:\n  %s", len(failures), "\n  ".join(failures))
        return 1
    return 0
