"""Track sources behind one interface: MUSDB18-HQ folders (and corpora written in that layout), folders of
songs, and real remixes (a real vocal over a real accompaniment at a chosen vocal-to-accompaniment ratio).

A :class:`Track` has a ``name``, a ``mixture()`` and, where known, ``stems()``, all float32
``(n_samples, 2)`` at 44.1 kHz: mono files are duplicated to both channels, other rates are resampled, and files
with more than two channels are bad input (:class:`ddsp_demucs.InputError`, one line naming the file).

The listing functions check every track's files from their headers (readable, mono or stereo, equal lengths,
a vocals stem where stems are expected) and skip bad tracks with a logged one-line message; the returned
:class:`TrackList` is a list of the good tracks whose ``skipped`` attribute lists the bad ones and why.
"""

from __future__ import annotations

import csv
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Sequence

import numpy as np
import soundfile as sf

from ddsp_demucs import InputError
from ddsp_demucs.core.audio_io import list_audio_files, load_audio, resample
from ddsp_demucs.core.utils import atomic_folder, atomic_path, get_logger, write_json_atomic

log = get_logger(__name__)

SAMPLE_RATE = 44100
MUSDB_STEMS = ("drums", "bass", "other", "vocals")
MUSDB_SUBSETS = ("train", "test")
SPLITS = ("train", "valid", "test")
SONG_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

#: The official MUSDB18 validation subset of the train set (``validation_tracks`` in musdb's ``configs/mus.yaml``).
MUSDB_VALIDATION_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)


def load_track_audio(path: str | os.PathLike) -> np.ndarray:
    """Read a track file as float32 ``(n_samples, 2)`` at 44.1 kHz: mono is duplicated, other rates are
    resampled; more than two channels, unreadable, empty or non-finite files raise a one-line InputError."""
    audio, sr = load_audio(path, allow_silent=True)
    if audio.shape[1] > 2:
        raise InputError(f"{path}: {audio.shape[1]} channels at {sr} Hz; expected mono or stereo")
    if sr != SAMPLE_RATE:
        audio = resample(audio, sr, SAMPLE_RATE)
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.ascontiguousarray(audio, dtype=np.float32)


@dataclass(frozen=True)
class Track:
    """A song: ``name``, its mixture file and, where known, its stem files (``stem_paths``: stem name -> path).

    ``subset`` is the folder it came from (``"train"``/``"test"`` for MUSDB layouts, ``""`` otherwise) and
    ``split`` its role (``"train"``, ``"valid"``, ``"test"``, or ``""`` when unknown). ``f0_path`` is a
    ``time_s,f0_hz`` CSV annotation of the vocals (0 = unvoiced) where one exists. Audio loads lazily.
    """

    name: str
    mixture_path: Path
    stem_paths: dict[str, Path] = field(default_factory=dict)
    subset: str = ""
    split: str = ""
    f0_path: Path | None = None
    sample_rate: ClassVar[int] = SAMPLE_RATE

    def mixture(self) -> np.ndarray:
        """The mixture, float32 ``(n_samples, 2)`` at 44.1 kHz."""
        return load_track_audio(self.mixture_path)

    def stems(self) -> dict[str, np.ndarray] | None:
        """Every stem, name -> float32 ``(n_samples, 2)`` at 44.1 kHz, or None for a mixture-only track.
        Stems whose length differs from the mixture's raise InputError naming the file."""
        if not self.stem_paths:
            return None
        n = _probe(self.mixture_path).n_samples
        out = {}
        for name, path in self.stem_paths.items():
            audio = load_track_audio(path)
            if audio.shape[0] != n:
                raise InputError(
                    f"{path}: {audio.shape[0]} samples but the mixture {self.mixture_path.name} has {n} "
                    "(stems must have the mixture's length)"
                )
            out[name] = audio
        return out

    def vocals(self) -> np.ndarray | None:
        """The vocals stem, float32 ``(n_samples, 2)`` at 44.1 kHz, or None when not known."""
        return load_track_audio(self.stem_paths["vocals"]) if "vocals" in self.stem_paths else None

    def f0(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The vocals' F0 annotation as ``(times_s, f0_hz)`` float64 arrays (0 Hz = unvoiced), or None."""
        if self.f0_path is None:
            return None
        return read_f0_csv(self.f0_path)


class TrackList(list):
    """A list of good :class:`Track` s; ``skipped`` holds ``(name, reason)`` for each bad track left out."""

    def __init__(self, tracks: Iterable[Track] = (), skipped: Iterable[tuple[str, str]] = ()):
        super().__init__(tracks)
        self.skipped: list[tuple[str, str]] = list(skipped)


def read_f0_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``time_s,f0_hz`` CSV (header optional) as two float64 arrays; bad content raises InputError."""
    path = Path(path)
    try:
        rows = np.atleast_2d(np.genfromtxt(path, delimiter=",", skip_header=0, dtype=np.float64))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read F0 annotation ({exc})") from None
    rows = rows[~np.isnan(rows).all(axis=1)] if rows.size else rows  # a text header reads as NaN
    if rows.ndim != 2 or rows.shape[1] < 2 or not np.isfinite(rows[:, :2]).all():
        raise InputError(f"{path}: expected rows of time_s,f0_hz")
    return rows[:, 0].copy(), rows[:, 1].copy()


def write_f0_csv(path: str | os.PathLike, times_s: np.ndarray, f0_hz: np.ndarray) -> Path:
    """Write ``time_s,f0_hz`` rows (0 = unvoiced) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", "f0_hz"])
        for t, f in zip(np.asarray(times_s, dtype=np.float64), np.asarray(f0_hz, dtype=np.float64)):
            writer.writerow([f"{t:.6f}", f"{f:.6f}"])
    return Path(path)


def write_wav_float32(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write ``audio (n_samples, n_channels)`` (or ``(n_samples,)``) as a 32-bit float WAV, atomically.

    Unlike libsndfile, no PEAK chunk (which holds the time of writing) is added: equal audio gives equal bytes.
    The values are stored exactly (float32, little-endian)."""
    audio = np.asarray(audio, dtype="<f4")
    if audio.ndim == 1:
        audio = audio[:, None]
    n, channels = audio.shape
    data = np.ascontiguousarray(audio).tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, sample_rate, sample_rate * 4 * channels, 4 * channels, 32)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, n)
        + b"data"
        + struct.pack("<I", len(data))
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        fh.write(data)
    return Path(path)


# ---------------------------------------------------------------------------------------------- probing
@dataclass(frozen=True)
class _Info:
    channels: int
    sample_rate: int
    n_samples: int  # length at 44.1 kHz


def _probe(path: Path) -> _Info:
    """Header facts of an audio file (length in 44.1 kHz samples); InputError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
        channels, sr, frames = info.channels, info.samplerate, info.frames
    except Exception:  # formats libsndfile cannot open: decode fully (load_audio raises a one-line error)
        audio, sr = load_audio(path, allow_silent=True)
        channels, frames = audio.shape[1], audio.shape[0]
    if frames <= 0:
        raise InputError(f"{path}: no audio samples")
    n = frames if sr == SAMPLE_RATE else math.ceil(frames * SAMPLE_RATE / sr)
    return _Info(channels, sr, n)


def check_track(track: Track) -> None:
    """Check a track's files from their headers: readable, mono or stereo, stems as long as the mixture.
    Raises a one-line InputError naming the file and the problem."""
    paths = [track.mixture_path, *track.stem_paths.values()]
    infos = {}
    for path in paths:
        info = _probe(path)
        if info.channels > 2:
            raise InputError(f"{path}: {info.channels} channels at {info.sample_rate} Hz; expected mono or stereo")
        infos[path] = info
    n = infos[track.mixture_path].n_samples
    for path in track.stem_paths.values():
        if infos[path].n_samples != n:
            raise InputError(
                f"{path}: {infos[path].n_samples} samples but the mixture {track.mixture_path.name} "
                f"has {n} (stems must have the mixture's length)"
            )


def _keep_good(candidates: Iterable[Track | tuple[str, str]]) -> TrackList:
    good, bad = [], []
    for item in candidates:
        if isinstance(item, tuple):
            bad.append(item)
            continue
        try:
            check_track(item)
        except InputError as exc:
            bad.append((item.name, str(exc)))
            continue
        good.append(item)
    for name, reason in bad:
        log.warning("skipping track %s: %s", name, reason)
    return TrackList(good, bad)


# ----------------------------------------------------------------------------------------------- sources
def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".wav", ".flac"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def validation_track_names(root: str | os.PathLike) -> tuple[str, ...]:
    """The validation names for a MUSDB-layout root: the ``validation_tracks`` of ``root/manifest.json`` when it
    declares them (synthetic and remix corpora), else MUSDB18's official list."""
    manifest = Path(root) / "manifest.json"
    if manifest.is_file():
        try:
            declared = json.loads(manifest.read_text()).get("validation_tracks")
        except ValueError:
            raise InputError(f"{manifest}: not valid JSON") from None
        if declared is not None:
            return tuple(declared)
    return MUSDB_VALIDATION_TRACKS


def musdb_tracks(
    root: str | os.PathLike, subsets: Sequence[str] = MUSDB_SUBSETS, split: str | None = None
) -> TrackList:
    """Tracks of a MUSDB18-HQ layout: ``root/{train,test}/<track>/`` holding ``mixture`` and the stems
    ``drums, bass, other, vocals`` as ``.wav`` or ``.flac`` (an ``f0.csv`` beside them is picked up).

    ``subsets`` selects folders; ``split`` in ``{"train", "valid", "test"}`` selects MUSDB's split: ``"valid"`` is
    the official validation subset of the train folder (or the ``validation_tracks`` a ``manifest.json`` at
    ``root`` declares), ``"train"`` the rest of it, ``"test"`` the test folder. A track missing its mixture or
    vocals, with unreadable files, more than two channels or stems of different lengths is skipped and reported
    in ``.skipped``. Raises InputError when ``root`` holds no track folder at all.
    """
    root = Path(root)
    for s in subsets:
        if s not in MUSDB_SUBSETS:
            raise ValueError(f"subsets: {s!r} is not one of {MUSDB_SUBSETS}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: {split!r} is not one of {SPLITS}")
    if not root.is_dir():
        raise InputError(f"{root}: MUSDB18-HQ root not found")
    valid_names = set(validation_track_names(root))
    wanted_subsets = [s for s in subsets if split is None or (s == "test") == (split == "test")]
    candidates: list[Track | tuple[str, str]] = []
    n_folders = 0
    for subset in wanted_subsets:
        for folder in sorted(p for p in (root / subset).glob("*") if p.is_dir() and not p.name.startswith(".")):
            n_folders += 1
            role = "test" if subset == "test" else ("valid" if folder.name in valid_names else "train")
            if split is not None and role != split:
                continue
            mixture = _find(folder, "mixture")
            stems = {s: p for s in MUSDB_STEMS if (p := _find(folder, s)) is not None}
            if mixture is None:
                candidates.append((folder.name, f"{folder}: no mixture.wav or mixture.flac"))
            elif "vocals" not in stems:
                candidates.append((folder.name, f"{folder}: no vocals.wav or vocals.flac (the vocals stem is missing)"))
            else:
                f0 = folder / "f0.csv"
                candidates.append(
                    Track(folder.name, mixture, stems, subset=subset, split=role, f0_path=f0 if f0.is_file() else None)
                )
    if n_folders == 0 and not any((root / s).is_dir() for s in wanted_subsets):
        raise InputError(f"{root}: no MUSDB18-HQ layout (expected {'/ or '.join(wanted_subsets)}/ with track folders)")
    return _keep_good(candidates)


def folder_tracks(folder: str | os.PathLike) -> TrackList:
    """Every song file (wav, flac, ogg, mp3) under ``folder`` (recursively) as a mixture-only track named after
    its file stem (the path relative to ``folder`` when stems collide). Unreadable files and files with more than
    two channels are skipped and reported in ``.skipped``; InputError when ``folder`` has no song file at all."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    paths = [p for p in list_audio_files(folder) if p.suffix.lower() in SONG_EXTENSIONS]
    if not paths:
        raise InputError(f"{folder}: no song files ({', '.join(SONG_EXTENSIONS)})")
    stems = [p.stem for p in paths]
    names = [
        p.stem if stems.count(p.stem) == 1 else str(p.relative_to(folder).with_suffix("")).replace(os.sep, "__")
        for p in paths
    ]
    return _keep_good(Track(name, path) for name, path in zip(names, paths))


# ----------------------------------------------------------------------------------------------- remixes
#: Real vocals in ../shared/data usable for remixes: name -> (audio path, F0 annotation path or None).
REMIX_VOCALS = {
    "vocadito_1": ("vocadito/vocadito_1.flac", "vocadito/annotations/vocadito_1_f0.csv"),
    "medleydb_nightowl": (
        "medleydb/AClassicEducation_NightOwl_STEM_08.flac",
        "medleydb/AClassicEducation_NightOwl_STEM_08_f0.csv",
    ),
    "sms_singing_female": ("sms_tools/singing-female.flac", None),
    "sms_vignesh": ("sms_tools/vignesh.flac", None),
}
#: The accompaniment: the MUSDB18 sample's non-vocal stems.
REMIX_ACCOMPANIMENT = "musdb18_sample/music_delta_80s_rock"


def vocal_to_accompaniment_db(vocals: np.ndarray, accompaniment: np.ndarray) -> float:
    """``10 log10(sum(vocals^2) / sum(accompaniment^2))`` over all samples and channels (float64), in dB."""
    v = np.sum(np.asarray(vocals, dtype=np.float64) ** 2)
    a = np.sum(np.asarray(accompaniment, dtype=np.float64) ** 2)
    if v == 0 or a == 0:
        raise ValueError("vocal-to-accompaniment ratio undefined: vocals or accompaniment is silent")
    return float(10.0 * np.log10(v / a))


def loop_to_length(audio: np.ndarray, n_samples: int, crossfade: int = 441) -> np.ndarray:
    """Crop or loop ``audio (n, channels)`` to ``n_samples``; loops are joined by an equal-power crossfade of
    ``crossfade`` samples (the loop period is ``n - crossfade``)."""
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[0]
    if n_samples <= n:
        return audio[:n_samples]
    crossfade = max(1, min(crossfade, n // 2))
    ramp = (np.arange(crossfade) + 0.5) / crossfade
    shape = (crossfade,) + (1,) * (audio.ndim - 1)
    fade_in, fade_out = np.sin(0.5 * np.pi * ramp).reshape(shape), np.cos(0.5 * np.pi * ramp).reshape(shape)
    out = np.zeros((n_samples + n,) + audio.shape[1:])
    start = 0
    while start < n_samples:  # every fade-out inside the output meets the next copy's fade-in
        piece = audio.copy()
        if start:
            piece[:crossfade] *= fade_in
        piece[n - crossfade :] *= fade_out
        out[start : start + n] += piece
        start += n - crossfade
    return out[:n_samples]


def make_remix(
    vocals: np.ndarray, accompaniment: dict[str, np.ndarray], vocal_ratio_db: float, peak: float = 0.9
) -> dict[str, np.ndarray]:
    """Mix ``vocals (n, 2)`` over ``accompaniment`` stems (name -> ``(n, 2)``) at ``vocal_ratio_db`` dB
    vocal-to-accompaniment ratio (:func:`vocal_to_accompaniment_db`).

    The vocals are scaled to the ratio, then every stem by one common gain so the mixture peaks at ``peak``.
    Returns float32 stems plus ``"mixture"``, the float32 sum of the accompaniment stems in their given order and
    then the vocals (exactly reproducible from the stems).
    """
    vocals = np.asarray(vocals, dtype=np.float64)
    acc = {k: np.asarray(v, dtype=np.float64) for k, v in accompaniment.items()}
    for name, stem in acc.items():
        if stem.shape != vocals.shape:
            raise ValueError(f"accompaniment stem {name!r} has shape {stem.shape}, vocals {vocals.shape}")
    acc_sum = sum(acc.values())
    gain = 10.0 ** ((vocal_ratio_db - vocal_to_accompaniment_db(vocals, acc_sum)) / 20.0)
    scale = peak / float(np.max(np.abs(acc_sum + gain * vocals)))
    stems = {name: (stem * scale).astype(np.float32) for name, stem in acc.items()}
    stems["vocals"] = (vocals * gain * scale).astype(np.float32)
    mixture = np.zeros_like(stems["vocals"])
    for name in [*acc, "vocals"]:
        mixture = mixture + stems[name]
    stems["mixture"] = mixture
    return stems


def remix_tracks(
    out_dir: str | os.PathLike,
    shared_data: str | os.PathLike,
    vocal_ratio_db: float = -3.0,
    *,
    subset: str = "test",
    max_duration_s: float | None = 30.0,
    vocals: Sequence[str] | None = None,
) -> TrackList:
    """Write real remixes in the MUSDB18-HQ layout under ``out_dir/<subset>/remix_<vocal>/`` and list them.

    Each remix is one real vocal of :data:`REMIX_VOCALS` (all, or the names in ``vocals``) from ``shared_data``
    over the MUSDB sample's ``drums, bass, other`` looped (equal-power crossfades) or cropped to the vocal's length
    (at most ``max_duration_s``), at ``vocal_ratio_db``; the mixture is the exact float32 sum
    ``drums + bass + other + vocals``. The vocal's F0 annotation, when it has one, is copied to ``f0.csv`` (its own
    time grid, rows past the end dropped; vocadito lists every 5.8 ms frame with 0 = unvoiced, the MedleyDB stem
    only its voiced frames). A remix whose ``remix.json`` matches the request is not rewritten;
    a missing vocal file is skipped and reported. ``out_dir/manifest.json`` records the parameters.
    """
    if subset not in MUSDB_SUBSETS:
        raise ValueError(f"subset: {subset!r} is not one of {MUSDB_SUBSETS}")
    shared = Path(shared_data)
    names = list(REMIX_VOCALS) if vocals is None else list(vocals)
    unknown = [v for v in names if v not in REMIX_VOCALS]
    if unknown:
        raise ValueError(f"vocals: unknown {unknown}; known: {list(REMIX_VOCALS)}")
    acc_dir = shared / REMIX_ACCOMPANIMENT
    accompaniment = {}
    for stem in ("drums", "bass", "other"):
        path = _find(acc_dir, stem)
        if path is None:
            raise InputError(f"{acc_dir}: no {stem}.wav or {stem}.flac for the remix accompaniment")
        accompaniment[stem] = load_track_audio(path)
    out = Path(out_dir)
    skipped: list[tuple[str, str]] = []
    for vocal_name in names:
        audio_rel, f0_rel = REMIX_VOCALS[vocal_name]
        track_name = f"remix_{vocal_name}"
        folder = out / subset / track_name
        request = dict(
            vocal=audio_rel,
            accompaniment=REMIX_ACCOMPANIMENT,
            vocal_ratio_db=float(vocal_ratio_db),
            max_duration_s=max_duration_s,
        )
        try:
            if _read_json(folder / "remix.json") == request and (folder / "mixture.wav").is_file():
                continue
            voc = load_track_audio(shared / audio_rel)
            n = voc.shape[0] if max_duration_s is None else min(voc.shape[0], int(round(max_duration_s * SAMPLE_RATE)))
            voc = voc[:n]
            acc = {k: loop_to_length(v, n) for k, v in accompaniment.items()}
            stems = make_remix(voc, acc, vocal_ratio_db)
            f0 = read_f0_csv(shared / f0_rel) if f0_rel and (shared / f0_rel).is_file() else None
            _write_remix(folder, stems, f0, n / SAMPLE_RATE, request)
        except InputError as exc:
            skipped.append((track_name, str(exc)))
    write_json_atomic(
        out / "manifest.json",
        dict(
            kind="remix",
            vocal_ratio_db=float(vocal_ratio_db),
            subset=subset,
            max_duration_s=max_duration_s,
            accompaniment=REMIX_ACCOMPANIMENT,
            vocals={k: REMIX_VOCALS[k][0] for k in names},
            mixture="drums + bass + other + vocals (float32, in this order)",
            validation_tracks=[],
        ),
    )
    tracks = musdb_tracks(out, subsets=(subset,))
    tracks = TrackList([t for t in tracks if t.name in {f"remix_{v}" for v in names}], skipped + tracks.skipped)
    for name, reason in skipped:
        log.warning("skipping remix %s: %s", name, reason)
    return tracks


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_remix(folder: Path, stems: dict[str, np.ndarray], f0, duration_s: float, request: dict) -> None:
    with atomic_folder(folder) as tmp:
        for name, audio in stems.items():
            write_wav_float32(tmp / f"{name}.wav", audio, SAMPLE_RATE)
        if f0 is not None:
            times, values = f0
            keep = times < duration_s
            write_f0_csv(tmp / "f0.csv", times[keep], values[keep])
        write_json_atomic(tmp / "remix.json", request)
