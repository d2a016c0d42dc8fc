"""The real-singing corpus: every real vocal listed in ``../shared/data/index.csv`` over several accompaniments
(real instrumental music and synthetic bands) at several vocal-to-accompaniment ratios, plus the real
multitracks as they are, split by singer, written in the MUSDB18-HQ layout. Optionally, each training singer's
takes are also written augmented (:mod:`ddsp_demucs.corpus.augment`: pitch, tempo, formants, EQ, reverb, level).

Splits are by ``singer_or_source``: no singer is in two splits. Test singers go to ``test/``; training and
validation singers to ``train/``, the validation singers' songs listed in ``manifest.json``
(``validation_tracks``), so :func:`~ddsp_demucs.data.musdb_tracks` and the dataset builder read the corpus
unchanged. Everything is a pure function of the index, the audio and the seed: a rebuild writes the same corpus.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ddsp_demucs import InputError
from ddsp_demucs.core.audio_io import load_audio, resample, save_audio
from ddsp_demucs.core.utils import atomic_folder, get_logger, write_json_atomic
from ddsp_demucs.corpus.augment import EQ_DB, VocalAugmentation, augment_vocal, draw_augmentation
from ddsp_demucs.corpus.sources import (
    SAMPLE_RATE,
    TrackList,
    load_track_audio,
    loop_to_length,
    make_remix,
    musdb_tracks,
    read_f0_csv,
    write_f0_csv,
)
from ddsp_demucs.corpus.synthetic import generate_song

log = get_logger(__name__)

INDEX_NAME = "index.csv"
RATIOS_DB = (-6.0, -3.0, 0.0, 3.0)
SYNTHETIC_BAND_S = 60.0  # length of each synthetic band, looped or cropped under a vocal
RECORD_NAME = "remix.json"
CORPUS_VERSION = 1


@dataclass(frozen=True)
class IndexEntry:
    """One row of ``index.csv``: ``path`` relative to the shared-data folder, ``kind`` (``vocal``,
    ``accompaniment``, ``accompaniment_stem``, ``impulse_response``), ``singer`` (``singer_or_source``),
    ``song``, ``seconds``, ``f0_annotation`` (relative path or ``""``)."""

    path: str
    kind: str
    singer: str
    song: str
    seconds: float
    f0_annotation: str = ""


@dataclass(frozen=True)
class RemixPlan:
    """One song of the corpus: ``vocal`` over ``accompaniment`` (a pool key, see :func:`accompaniment_pool`) at
    ``ratio_db`` (None: a multitrack at its own balance), the accompaniment read from ``offset`` (a fraction of
    its spare length), in ``split`` (``train``, ``valid`` or ``test``), the vocal transformed by ``augmentation``
    where one is given."""

    name: str
    vocal: IndexEntry
    accompaniment: str
    ratio_db: float | None
    offset: float
    split: str
    augmentation: VocalAugmentation | None = None

    def request(self) -> dict:
        """What the song is made from (its ``remix.json``): equal requests give equal files."""
        request = {
            "version": CORPUS_VERSION,
            "vocal": self.vocal.path,
            "singer": self.vocal.singer,
            "accompaniment": self.accompaniment,
            "ratio_db": self.ratio_db,
            "offset": self.offset,
            "split": self.split,
        }
        return request | ({"augmentation": self.augmentation.as_dict()} if self.augmentation else {})


def read_index(shared_data: str | os.PathLike) -> list[IndexEntry]:
    """The rows of ``shared_data/index.csv`` whose files exist; InputError when there is no index."""
    root = Path(shared_data)
    path = root / INDEX_NAME
    if not path.is_file():
        raise InputError(f"{path}: no index of the real audio (see ../shared/data/SOURCES.md)")
    entries = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                entry = IndexEntry(
                    row["path"],
                    row["kind"],
                    row["singer_or_source"],
                    row["song"],
                    float(row["seconds"]),
                    row.get("f0_annotation") or "",
                )
            except (KeyError, ValueError) as exc:
                raise InputError(f"{path}: bad row {row} ({exc})") from None
            if not (root / entry.path).is_file():
                log.warning("%s lists %s, which is missing: left out", path, entry.path)
                continue
            if entry.f0_annotation and not (root / entry.f0_annotation).is_file():
                log.warning(
                    "%s: the F0 annotation %s is missing; %s is used without it", path, entry.f0_annotation, entry.path
                )
                entry = replace(entry, f0_annotation="")
            entries.append(entry)
    return entries


def _unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_singers(
    vocals: Sequence[IndexEntry],
    *,
    seed: int = 0,
    min_test_singers: int = 4,
    min_test_vocals: int = 6,
    n_valid_singers: int = 2,
    max_test_vocals_per_singer: int | None = None,
) -> dict[str, str]:
    """Assign every singer to ``"train"``, ``"valid"`` or ``"test"``.

    Singers are ordered by a hash of ``(seed, singer)``; test takes singers in that order until it holds at least
    ``min_test_singers`` singers and ``min_test_vocals`` vocal takes (a test singer counting at most
    ``max_test_vocals_per_singer``), validation the next ``n_valid_singers``, training the rest. Returns
    singer -> split.
    """
    takes: dict[str, int] = {}
    for v in vocals:
        takes[v.singer] = min(takes.get(v.singer, 0) + 1, max_test_vocals_per_singer or len(vocals))
    order = sorted(takes, key=lambda s: (_unit_hash(seed, "split", s), s))
    split, n_test, n_valid = {}, 0, 0
    for singer in order:
        test_full = sum(1 for s in split.values() if s == "test") >= min_test_singers and n_test >= min_test_vocals
        if not test_full:
            split[singer], n_test = "test", n_test + takes[singer]
        elif n_valid < n_valid_singers:
            split[singer], n_valid = "valid", n_valid + 1
        else:
            split[singer] = "train"
    if len(set(split.values())) < 3:
        raise InputError(f"{len(takes)} singers are too few for training, validation and test splits")
    return split


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-")


def multitrack_accompaniments(entries: Sequence[IndexEntry]) -> dict[str, list[IndexEntry]]:
    """Vocal path -> the accompaniment files recorded with it (same folder and song): the real multitracks."""
    out: dict[str, list[IndexEntry]] = {}
    for v in (e for e in entries if e.kind == "vocal"):
        parts = [
            e
            for e in entries
            if e.kind in ("accompaniment", "accompaniment_stem")
            and e.song == v.song
            and Path(e.path).parent == Path(v.path).parent
        ]
        if parts:
            out[v.path] = parts
    return out


def plan_corpus(
    entries: Sequence[IndexEntry],
    *,
    accompaniments_per_vocal: int = 2,
    ratios_db: Sequence[float] = RATIOS_DB,
    n_synthetic_bands: int = 2,
    seed: int = 0,
    min_test_singers: int = 4,
    min_test_vocals: int = 6,
    n_valid_singers: int = 2,
    augmentations_per_vocal: int = 0,
    augmentation_eq_db: float = EQ_DB,
    max_test_vocals_per_singer: int | None = None,
) -> list[RemixPlan]:
    """Every song of the corpus (see the module docstring), in a deterministic order.

    Vocal ``i`` goes over ``accompaniments_per_vocal`` accompaniments of the pool (the index's
    ``accompaniment`` files, the accompaniment stems of a multitrack summed, and ``n_synthetic_bands`` synthetic
    bands), taken in turn, each at the next ratio of ``ratios_db`` in turn; a vocal recorded with its own
    accompaniment is also written as that multitrack (``ratio_db`` None). A training singer's vocal is also
    written ``augmentations_per_vocal`` times augmented (one draw each, from ``seed`` and the vocal), each draw
    over the next ``accompaniments_per_vocal`` accompaniments and ratios, equaliser gains within
    ``+-augmentation_eq_db`` dB; validation and test vocals never are. A test singer contributes at most
    ``max_test_vocals_per_singer`` takes (the first in a seeded order; None: all), so no singer dominates the
    test songs; their other takes are left out (a held-out singer is never trained on).
    """
    if accompaniments_per_vocal < 1 or not ratios_db or augmentations_per_vocal < 0 or not augmentation_eq_db >= 0:
        raise ValueError(
            "accompaniments_per_vocal must be >= 1, ratios_db not empty, augmentations_per_vocal >= 0, "
            "augmentation_eq_db >= 0"
        )
    vocals = [e for e in entries if e.kind == "vocal"]
    if not vocals:
        raise InputError("the index lists no real vocals")
    splits = split_singers(
        vocals,
        seed=seed,
        min_test_singers=min_test_singers,
        min_test_vocals=min_test_vocals,
        n_valid_singers=n_valid_singers,
        max_test_vocals_per_singer=max_test_vocals_per_singer,
    )
    if max_test_vocals_per_singer is not None:
        seen: dict[str, int] = {}
        dropped = set()
        for v in sorted(vocals, key=lambda v: (_unit_hash(seed, "test take", v.path), v.path)):
            if splits[v.singer] == "test":
                seen[v.singer] = seen.get(v.singer, 0) + 1
                if seen[v.singer] > max_test_vocals_per_singer:
                    dropped.add(v.path)
        vocals = [v for v in vocals if v.path not in dropped]
    pool = accompaniment_pool_keys(entries, n_synthetic_bands)
    multitracks = multitrack_accompaniments(entries)
    impulse_responses = [e.path for e in entries if e.kind == "impulse_response"]
    plans = []
    for i, vocal in enumerate(vocals):
        base = f"{_slug(vocal.singer)}__{_slug(Path(vocal.path).stem)[:32]}"
        split = splits[vocal.singer]
        if vocal.path in multitracks:
            plans.append(RemixPlan(f"{base}__multitrack", vocal, "multitrack", None, 0.0, split))
        n_versions = 1 + (augmentations_per_vocal if split == "train" else 0)
        for k in range(n_versions):
            augmentation = None
            if k:
                rng = np.random.default_rng(int(_unit_hash(seed, "augment", vocal.path, k) * 2**63))
                augmentation = draw_augmentation(rng, impulse_responses, augmentation_eq_db)
            for j in range(min(accompaniments_per_vocal, len(pool))):
                turn = (i + k) * accompaniments_per_vocal + j
                acc, ratio = pool[turn % len(pool)], float(ratios_db[(i + k + j) % len(ratios_db)])
                name = f"{base}__{'aug%d__' % k if k else ''}{_accompaniment_label(acc)}{ratio:+g}dB"
                offset = round(_unit_hash(seed, "offset", vocal.path, acc, *([k] if k else [])), 6)
                plans.append(RemixPlan(name, vocal, acc, ratio, offset, split, augmentation))
    return plans


def _accompaniment_label(key: str) -> str:
    """A short name for a pool key in song names: the file or folder name, cut to 20 characters."""
    return _slug(Path(key).name.split(".")[0])[:20]


def accompaniment_pool_keys(entries: Sequence[IndexEntry], n_synthetic_bands: int) -> list[str]:
    """Keys of the accompaniment pool: each ``accompaniment`` file of at least 5 s by its path, each
    multitrack's summed ``accompaniment_stem`` files by their folder, then ``synthetic_band_<k>``."""
    keys = [e.path for e in entries if e.kind == "accompaniment" and e.seconds >= 5.0]
    keys += sorted({str(Path(e.path).parent) for e in entries if e.kind == "accompaniment_stem"})
    return keys + [f"synthetic_band_{k}" for k in range(n_synthetic_bands)]


def load_accompaniment(key: str, shared_data: Path, entries: Sequence[IndexEntry], seed: int) -> np.ndarray:
    """The accompaniment of a pool key, float32 ``(n_samples, 2)`` at 44.1 kHz."""
    if key.startswith("synthetic_band_"):
        song = generate_song(int(_unit_hash(seed, key) * 2**31), SYNTHETIC_BAND_S, SAMPLE_RATE)
        return song.stems["drums"] + song.stems["bass"] + song.stems["other"]
    stems = [e for e in entries if e.kind == "accompaniment_stem" and str(Path(e.path).parent) == key]
    paths = [e.path for e in stems] if stems else [key]
    return sum(load_track_audio(shared_data / p) for p in paths)


def load_vocal(shared_data: Path, entry: IndexEntry) -> np.ndarray:
    """A real vocal take as float64 ``(n_samples, 2)`` at 44.1 kHz, channels averaged to a centred mono."""
    audio, sr = load_audio(shared_data / entry.path, allow_silent=False)
    mono = resample(audio.mean(axis=1), sr, SAMPLE_RATE).astype(np.float64)
    return np.repeat(mono[:, None], 2, axis=1)


def render(
    plan: RemixPlan, shared_data: Path, entries: Sequence[IndexEntry], accompaniments: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The stems and the mixture of one planned song, float32 ``(n_samples, 2)``; the mixture is the float32 sum
    of the accompaniment stems and then the vocals. ``accompaniments`` caches the pool by key."""
    vocal = load_vocal(shared_data, plan.vocal)
    if plan.augmentation is not None:
        mono = augment_vocal(vocal[:, 0], SAMPLE_RATE, plan.augmentation, shared_data)
        vocal = np.repeat(mono[:, None], 2, axis=1)
    n = vocal.shape[0]
    if plan.ratio_db is None:
        stems: dict[str, np.ndarray] = {}
        for part in multitrack_accompaniments(entries)[plan.vocal.path]:  # MUSDB's stem names, else "other"
            name = Path(part.path).stem if Path(part.path).stem in ("drums", "bass", "other") else "other"
            audio = loop_to_length(load_track_audio(shared_data / part.path), n).astype(np.float32)
            stems[name] = stems[name] + audio if name in stems else audio
        stems["vocals"] = vocal.astype(np.float32)
        peak = max(1.0, float(np.max(np.abs(sum(stems.values())))) / 0.9)
        stems = {k: (v / peak).astype(np.float32) for k, v in stems.items()}
        mixture = np.zeros_like(stems["vocals"])
        for v in stems.values():
            mixture = mixture + v
        return {**stems, "mixture": mixture}
    acc = accompaniments[plan.accompaniment]
    spare = max(0, acc.shape[0] - n)
    start = int(plan.offset * spare)
    return make_remix(vocal, {"other": loop_to_length(acc[start:], n)}, plan.ratio_db)


def write_real_corpus(
    out_dir: str | os.PathLike,
    shared_data: str | os.PathLike,
    *,
    accompaniments_per_vocal: int = 2,
    ratios_db: Sequence[float] = RATIOS_DB,
    n_synthetic_bands: int = 2,
    seed: int = 0,
    min_test_singers: int = 4,
    min_test_vocals: int = 6,
    n_valid_singers: int = 2,
    augmentations_per_vocal: int = 0,
    augmentation_eq_db: float = EQ_DB,
    max_test_vocals_per_singer: int | None = None,
    progress: bool = False,
) -> TrackList:
    """Write (or finish) the real-singing corpus in ``out_dir`` and list its tracks.

    Songs go to ``out_dir/{train,test}/<name>/`` as 24-bit FLAC ``mixture``, ``vocals`` and the accompaniment
    stems (``other`` for remixes; a multitrack's own stems), with ``remix.json`` (what it is made from) and
    ``f0.csv`` where the vocal has an F0 annotation. A song whose ``remix.json`` matches is not rewritten;
    folders of songs no longer planned are removed. ``out_dir/manifest.json`` records the parameters, the singers
    of each split and every song (``kind: "real"``). See :func:`plan_corpus` for the arguments.
    """
    from tqdm.auto import tqdm

    shared, out = Path(shared_data), Path(out_dir)
    entries = read_index(shared)
    plans = plan_corpus(
        entries,
        accompaniments_per_vocal=accompaniments_per_vocal,
        ratios_db=ratios_db,
        n_synthetic_bands=n_synthetic_bands,
        seed=seed,
        min_test_singers=min_test_singers,
        min_test_vocals=min_test_vocals,
        n_valid_singers=n_valid_singers,
        augmentations_per_vocal=augmentations_per_vocal,
        augmentation_eq_db=augmentation_eq_db,
        max_test_vocals_per_singer=max_test_vocals_per_singer,
    )
    accompaniments: dict[str, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    for plan in tqdm(plans, desc="real corpus", unit="song", disable=not progress):
        folder = out / _subset(plan.split) / plan.name
        if _read_request(folder) == plan.request():
            continue
        try:
            if plan.accompaniment != "multitrack" and plan.accompaniment not in accompaniments:
                accompaniments[plan.accompaniment] = load_accompaniment(plan.accompaniment, shared, entries, seed)
            stems = render(plan, shared, entries, accompaniments)
            f0 = read_f0_csv(shared / plan.vocal.f0_annotation) if plan.vocal.f0_annotation else None
            if f0 is not None and plan.augmentation is not None:
                f0 = plan.augmentation.map_f0(*f0)
            write_song_folder(folder, stems, plan.request(), f0)
        except InputError as exc:
            skipped.append((plan.name, str(exc)))
            log.warning("skipping %s: %s", plan.name, exc)
    _remove_unplanned(out, {(_subset(p.split), p.name) for p in plans})
    singers = {
        split: sorted({p.vocal.singer for p in plans if p.split == key})
        for split, key in (("train", "train"), ("validation", "valid"), ("test", "test"))
    }
    write_json_atomic(
        out / "manifest.json",
        {
            "kind": "real",
            "version": CORPUS_VERSION,
            "seed": seed,
            "shared_data": str(shared.resolve()),
            "accompaniments_per_vocal": accompaniments_per_vocal,
            "ratios_db": [float(r) for r in ratios_db],
            "n_synthetic_bands": n_synthetic_bands,
            "augmentations_per_vocal": augmentations_per_vocal,
            "augmentation_eq_db": augmentation_eq_db,
            "max_test_vocals_per_singer": max_test_vocals_per_singer,
            "accompaniment_pool": accompaniment_pool_keys(entries, n_synthetic_bands),
            "singers": singers,
            "validation_tracks": [p.name for p in plans if p.split == "valid"],
            "tracks": {p.name: {**p.request(), "vocal_entry": asdict(p.vocal)} for p in plans},
            "mixture": "accompaniment stems + vocals (float32 sum, stored as 24-bit FLAC)",
        },
    )
    tracks = musdb_tracks(out)
    return TrackList(tracks, skipped + tracks.skipped)


def _subset(split: str) -> str:
    return "test" if split == "test" else "train"


def _read_request(folder: Path) -> dict | None:
    import json

    try:
        return json.loads((folder / RECORD_NAME).read_text()) if (folder / "mixture.flac").is_file() else None
    except (OSError, ValueError):
        return None


def write_song_folder(
    folder: Path, stems: dict[str, np.ndarray], request: dict, f0: tuple[np.ndarray, np.ndarray] | None = None
) -> Path:
    """Write ``stems`` (name -> float ``(n, 2)`` at 44.1 kHz, ``mixture`` included) as 24-bit FLAC, the F0
    annotation (``(times_s, f0_hz)``, rows past the end dropped) and ``remix.json``, into a temporary sibling
    folder renamed onto ``folder`` at the end: an interrupted write leaves no partial song."""
    with atomic_folder(folder) as tmp:
        for name, audio in stems.items():
            save_audio(tmp / f"{name}.flac", audio, SAMPLE_RATE, subtype="PCM_24")
        if f0 is not None:
            times, values = f0
            keep = times < stems["mixture"].shape[0] / SAMPLE_RATE
            write_f0_csv(tmp / "f0.csv", times[keep], values[keep])
        write_json_atomic(tmp / RECORD_NAME, request)
    return folder


def _remove_unplanned(out: Path, planned: set[tuple[str, str]]) -> None:
    for subset in ("train", "test"):
        for folder in sorted((out / subset).glob("*")) if (out / subset).is_dir() else []:
            if folder.is_dir() and (subset, folder.name) not in planned and (folder / RECORD_NAME).is_file():
                log.info("removing %s: no longer part of the corpus", folder)
                shutil.rmtree(folder)


__all__ = [
    "IndexEntry",
    "RemixPlan",
    "RATIOS_DB",
    "read_index",
    "split_singers",
    "plan_corpus",
    "accompaniment_pool_keys",
    "multitrack_accompaniments",
    "load_accompaniment",
    "load_vocal",
    "render",
    "write_real_corpus",
    "write_song_folder",
]
