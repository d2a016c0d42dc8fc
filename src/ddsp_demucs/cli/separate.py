"""Separate vocals from songs and cache the stems.

Writes STEMS_DIR/<separator>/<track>/vocals.wav, accompaniment.wav and manifest.json (separator, weights
signature, parameters, versions, input checksum). A re-run skips tracks already done with the same input and
settings and redoes the others. Tracks that fail are reported at the end and make the exit status non-zero.

Separators: any Demucs model name (htdemucs, htdemucs_ft, mdx_extra, ...), "fallback" (weight-free REPET-SIM
masking, much lower quality), "auto" (htdemucs if its weights can be loaded, else fallback, with a warning), or
an oracle separator of controlled quality made from the true vocal (oracle, oracle-bands16, oracle-smooth0.2-err1,
...; --musdb only, whose track folders hold vocals.wav). Each manifest records vocals_si_sdr_db, the separated
vocal's SI-SDR, where the true vocal is known.
Demucs weights come from --demucs-repo DIR (Demucs' format: <name>.yaml + <sig>.th), else the Hugging Face /
torch hub caches, else a download; offline and uncached, the command stops within seconds and says how to
get them.

examples:
  ddsp-demucs separate --musdb data/musdb18hq --stems-dir stems
  ddsp-demucs separate --songs song.mp3 album/ --separator fallback
  ddsp-demucs separate --musdb data/musdb18hq --num-shards 8 --shard-index 3   # one job of an array
  ddsp-demucs separate --musdb runs/real_singing/corpus --separator oracle-bands16   # about 9 dB SI-SDR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)


class AudioFileTrack:
    """A song file as a track: ``name`` (given or the file stem), ``mixture()`` -> ``(n, 2)`` float32 at
    44.1 kHz (mono duplicated; more than two channels is an error) and ``vocals()``: the true vocal file
    ``vocals_path`` read the same way, or None when there is none."""

    sample_rate = 44100

    def __init__(self, path: Path, name: str | None = None, vocals_path: Path | None = None):
        self.path = Path(path)
        self.name = name or self.path.stem
        self.vocals_path = vocals_path

    def _read(self, path: Path) -> np.ndarray:
        from ddsp_demucs.core.audio_io import load_audio

        audio, _ = load_audio(path, sample_rate=self.sample_rate, allow_silent=path != self.path)
        if audio.shape[1] == 1:
            audio = np.repeat(audio, 2, axis=1)
        elif audio.shape[1] != 2:
            raise InputError(f"{path}: {audio.shape[1]} channels; expected mono or stereo")
        return audio

    def mixture(self) -> np.ndarray:
        return self._read(self.path)

    def vocals(self) -> np.ndarray | None:
        return None if self.vocals_path is None else self._read(self.vocals_path)


def tracks_from_songs(items: list[str]) -> list[AudioFileTrack]:
    """Audio files given directly or found under given folders (an empty folder is an error)."""
    from ddsp_demucs.core.audio_io import AUDIO_EXTENSIONS, list_audio_files

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_audio_files(path)
            if not found:
                raise InputError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            paths.extend(found)
        else:
            paths.append(path)  # a missing or unreadable file fails as a track, the others still run
    return [AudioFileTrack(p) for p in paths]


def tracks_from_musdb(root: str) -> list[AudioFileTrack]:
    """MUSDB18-HQ mixtures: ``ROOT/{train,test}/<track>/mixture.wav`` (or .flac), named after the folder."""
    from ddsp_demucs.core.audio_io import AUDIO_EXTENSIONS

    root_path = Path(root)
    mixtures = sorted(
        p
        for split in ("train", "test")
        for p in (root_path / split).glob("*/mixture.*")
        if p.suffix.lower() in AUDIO_EXTENSIONS
    )
    if not mixtures:
        raise InputError(f"{root_path}: no MUSDB18-HQ tracks (expected train/<track>/mixture.wav and test/...)")
    return [AudioFileTrack(p, name=p.parent.name, vocals_path=_find_vocals(p.parent)) for p in mixtures]


def _find_vocals(folder: Path) -> Path | None:
    from ddsp_demucs.core.audio_io import AUDIO_EXTENSIONS

    found = sorted(p for p in folder.glob("vocals.*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    return found[0] if found else None


def add_parser(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--musdb", metavar="ROOT", help="MUSDB18-HQ root (with train/ and test/ track folders)")
    src.add_argument("--songs", nargs="+", metavar="PATH", help="song files and/or folders of songs")
    p.add_argument(
        "--separator",
        default="auto",
        metavar="NAME",
        help="a Demucs model name (htdemucs, htdemucs_ft, mdx_extra...), 'fallback', 'auto' "
        "(default: auto = htdemucs if its weights load, else fallback), or with --musdb an oracle separator "
        "(oracle, oracle-bands16, oracle-smooth0.2-err1, ...: see ddsp_demucs.separation.oracle)",
    )
    p.add_argument(
        "--demucs-repo", metavar="DIR", help="local folder of Demucs weights (<name>.yaml + <sig>.th) for offline use"
    )
    p.add_argument("--shifts", type=int, default=1, help="Demucs random shifts averaged (default 1)")
    p.add_argument("--overlap", type=float, default=0.25, help="Demucs segment overlap (default 0.25)")
    p.add_argument("--segment", type=float, default=None, help="Demucs segment length in s (default: model's)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--stems-dir", default="stems", metavar="DIR", help="output root (default: stems)")
    p.add_argument("--num-shards", type=int, default=1, help="split the tracks into N shards (default 1)")
    p.add_argument("--shard-index", type=int, default=0, help="which shard this process handles (0-based)")


def run(args: argparse.Namespace) -> int:
    from ddsp_demucs.separation.cache import separate_tracks
    from ddsp_demucs.separation.demucs import get_separator

    tracks = tracks_from_musdb(args.musdb) if args.musdb else tracks_from_songs(args.songs)
    separator = get_separator(
        args.separator,
        repo=args.demucs_repo,
        device=args.device,
        shifts=args.shifts,
        overlap=args.overlap,
        segment=args.segment,
    )
    if getattr(separator, "needs_true_vocals", False) and not args.musdb:
        raise InputError(
            f"separator {separator.name} needs each song's true vocal: use it with --musdb ROOT (track folders "
            "with mixture and vocals), not --songs"
        )
    log.info("separator: %s (%s)", separator.name, separator.signature)
    failures = separate_tracks(tracks, separator, args.stems_dir, args.num_shards, args.shard_index)
    print(Path(args.stems_dir) / separator.name)  # the stem folder, for scripts (auto names the one it chose)
    if failures:
        log.error("%d track(s) skipped:\n  %s", len(failures), "\n  ".join(str(f) for f in failures))
        return 1
    return 0
