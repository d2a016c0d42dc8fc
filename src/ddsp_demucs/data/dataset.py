"""The training dataset: one shard of windows per song, built from the accepted segments, read by memory map.

:func:`build_dataset_from_segments` takes every accepted window of ``accepted_segments.csv`` (from
``ddsp-demucs features``) and writes, mono at ``train_sr``: the separated vocal (model input), the true vocal
(target), the mixture, and the frame controls of the separated vocal. Layout of ``dataset_dir``::

    manifest.json            rates, shapes, counts, splits, every shard with its files' SHA-256, the config
    <split>/<track>/         one shard per song; split is train | validation | test
        input_audio.npy      float32 (n_windows, n_samples)   separated vocal
        target_audio.npy     float32 (n_windows, n_samples)   true vocal
        mixture_audio.npy    float32 (n_windows, n_samples)   mixture
        f0_hz.npy            float32 (n_windows, n_frames)    Hz, 0 where unvoiced
        f0_confidence.npy    float32 (n_windows, n_frames)    [0, 1]
        loudness_db.npy      float32 (n_windows, n_frames)    A-weighted, dB
        start_s.npy          float64 (n_windows,)             window start in the song (s)
        shard.json           what the shard was built from (written last: a shard without it is unfinished)

``n_samples = win_s * train_sr`` and ``n_frames = n_samples * frame_rate // train_sr``. Every song is
downmixed (channel mean) at 44.1 kHz and resampled once to ``train_sr``; windows are cut from that signal, so
window ``[start_s, start_s + win_s)`` holds samples ``start_s * train_sr ...`` and frames
``start_s * frame_rate ...`` of the song. Controls (:func:`ddsp_demucs.features.controls.dataset_controls`): F0
and confidence are the feature file's (the tracker the gate used, on the same separated vocal at the stem's rate;
CREPE resamples to 16 kHz itself), loudness is :func:`ddsp_demucs.dsp.a_weighted_loudness` of the ``train_sr``
signal, as :func:`~ddsp_demucs.inference.refine.refine_vocals` computes it at inference (which tracks F0 at the
model's rate: see :mod:`ddsp_demucs.features.controls`).

Splits are by song, so no song is in two splits: MUSDB's test folder is the test split, its validation songs
(or the ``validation_tracks`` a corpus ``manifest.json`` declares) the validation split. A corpus without any
validation song holds out ``data.val_fraction`` of its training songs, chosen by a hash of their names.

Builds are deterministic (the same windows give the same bytes), atomic per shard, and resumable: a shard whose
``shard.json`` matches the request (input checksums, windows, parameters) is kept. ``num_shards`` /
``shard_index`` split the songs over processes; ``index_only`` then writes the manifest from all shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio
from ddsp_demucs.core.config import Config
from ddsp_demucs.core.utils import (
    atomic_folder,
    config_to_dict,
    file_sha256,
    get_logger,
    shard_of,
    write_json_atomic,
)
from ddsp_demucs.corpus.sources import musdb_tracks
from ddsp_demucs.features import load_features, read_segments_csv
from ddsp_demucs.features.controls import CONTROL_KEYS, dataset_controls, mono_at
from ddsp_demucs.separation.demucs import training_songs_warning

log = get_logger("data")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_META = "shard.json"
SPLITS = ("train", "validation", "test")
AUDIO_FIELDS = ("input_audio", "target_audio", "mixture_audio")
FRAME_FIELDS = CONTROL_KEYS
ARRAY_FILES = (*AUDIO_FIELDS, *FRAME_FIELDS, "start_s")


# ------------------------------------------------------------------------------------------------ splits
def assign_splits(tracks, val_fraction: float) -> dict[str, str]:
    """Track name -> split (``train`` / ``validation`` / ``test``) for :class:`~ddsp_demucs.data.Track` s.

    MUSDB's roles are kept (``valid`` becomes ``validation``). When no track is a validation track, the
    ``max(1, round(val_fraction * n))`` training tracks with the smallest SHA-1 of their name form the
    validation split (none when ``val_fraction`` is 0 or there is a single training track).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DDSPDemucsError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    splits = {t.name: {"valid": "validation", "test": "test"}.get(t.split, "train") for t in tracks}
    train = sorted(name for name, split in splits.items() if split == "train")
    if "validation" not in splits.values() and val_fraction > 0 and len(train) > 1:
        n_valid = min(len(train) - 1, max(1, round(val_fraction * len(train))))
        chosen = sorted(train, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:n_valid]
        log.info(
            "no validation songs declared: holding out %d of %d training songs (data.val_fraction=%g): %s",
            n_valid,
            len(train),
            val_fraction,
            ", ".join(sorted(chosen)),
        )
        splits.update({name: "validation" for name in chosen})
    return splits


# ------------------------------------------------------------------------------------------------ building
@dataclass
class DatasetReport:
    """What :func:`build_dataset_from_segments` did: shards built and kept, songs skipped with reasons, and
    the windows per split (``None`` until the manifest is written, e.g. in a sharded run)."""

    dataset_dir: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (song or file, one-line reason)
    windows: dict[str, int] | None = None
    songs: dict[str, int] | None = None

    def __str__(self) -> str:
        parts = [
            f"{self.dataset_dir}: {len(self.built)} shards built, {len(self.reused)} up to date, "
            f"{len(self.skipped)} songs skipped"
        ]
        if self.windows is not None:
            parts.append("; ".join(f"{s} {self.windows[s]} windows from {self.songs[s]} songs" for s in SPLITS))
        return " | ".join(parts)


@dataclass(frozen=True)
class _Request:
    """The parameters every shard depends on."""

    train_sr: int
    frame_rate: int
    win_s: float
    hop_s: float

    @property
    def n_samples(self) -> int:
        return round(self.win_s * self.train_sr)

    @property
    def n_frames(self) -> int:
        return self.n_samples * self.frame_rate // self.train_sr

    def as_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "train_sr": self.train_sr,
            "frame_rate": self.frame_rate,
            "win_s": self.win_s,
            "hop_s": self.hop_s,
            "n_samples": self.n_samples,
            "n_frames": self.n_frames,
        }


def _check_windows(csv_path: Path, rows: list[dict], req: _Request) -> None:
    """Windows must be ``win_s`` long and start on the sample and frame grids."""
    for row in rows:
        length = row["end_s"] - row["start_s"]
        if abs(length - req.win_s) > 1e-6:
            raise InputError(
                f"{csv_path}: window {row['track']} @ {row['start_s']:g} s is {length:g} s long, "
                f"but win_s is {req.win_s:g} s (re-run the gate with data.win_s={req.win_s:g})"
            )
        for rate, what in ((req.train_sr, "sample"), (req.frame_rate, "frame")):
            if abs(row["start_s"] * rate - round(row["start_s"] * rate)) > 1e-6:
                raise InputError(
                    f"{csv_path}: window start {row['start_s']} s of {row['track']} is not on the "
                    f"{what} grid at {rate} Hz"
                )


def _cut(signal: np.ndarray, starts: list[int], length: int, what: str) -> np.ndarray:
    if starts and starts[-1] + length > signal.shape[0]:
        raise InputError(f"{what}: window at {starts[-1]} exceeds its {signal.shape[0]} samples")
    return np.stack([signal[s : s + length] for s in starts]).astype(np.float32)


def _shard_key(track, split: str, starts_s: list[float], vocals: Path, features: Path, req: _Request) -> dict:
    return {
        **req.as_dict(),
        "track": track.name,
        "split": split,
        "start_s": starts_s,
        "separated_sha256": file_sha256(vocals),
        "features_sha256": file_sha256(features),
        "target_sha256": file_sha256(track.stem_paths["vocals"]),
        "mixture_sha256": file_sha256(track.mixture_path),
    }


def _read_shard_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / SHARD_META).read_text())
    except (OSError, ValueError):
        return None


def _shard_arrays(
    track, starts_s: list[float], vocals: Path, vocals_sha256: str, features_path: Path, req: _Request
) -> dict:
    """The arrays of one song's shard (see the module docstring)."""

    feats = load_features(features_path)
    if int(feats["frame_rate"]) != req.frame_rate:
        raise InputError(
            f"{features_path}: features at {feats['frame_rate']} frames/s, the dataset needs "
            f"{req.frame_rate} (re-run features with data.frame_rate={req.frame_rate})"
        )
    if feats["meta"].get("input_sha256") != vocals_sha256:
        raise InputError(f"{features_path}: computed from another version of {vocals} (re-run features)")
    separated, sr = load_audio(vocals, allow_silent=True)
    mixture = track.mixture()
    target = track.vocals()
    if separated.shape[0] != mixture.shape[0] or sr != track.sample_rate:
        raise InputError(
            f"{vocals}: {separated.shape[0]} samples at {sr} Hz, but the mixture "
            f"{track.mixture_path} has {mixture.shape[0]} at {track.sample_rate} Hz"
        )
    if target.shape[0] != mixture.shape[0]:
        raise InputError(
            f"{track.stem_paths['vocals']}: {target.shape[0]} samples, but the mixture has "
            f"{mixture.shape[0]} (stems must have the mixture's length)"
        )
    signals = {
        "input_audio": mono_at(separated, sr, req.train_sr),
        "target_audio": mono_at(target, track.sample_rate, req.train_sr),
        "mixture_audio": mono_at(mixture, track.sample_rate, req.train_sr),
    }
    frames = dataset_controls(feats, signals["input_audio"], req.train_sr, req.frame_rate)
    sample_starts = [round(s * req.train_sr) for s in starts_s]
    frame_starts = [round(s * req.frame_rate) for s in starts_s]
    out = {k: _cut(v, sample_starts, req.n_samples, f"{track.name} {k}") for k, v in signals.items()}
    out.update(
        {
            k: _cut(np.asarray(v, np.float32), frame_starts, req.n_frames, f"{features_path} {k}")
            for k, v in frames.items()
        }
    )
    out["start_s"] = np.asarray(starts_s, dtype=np.float64)
    return out


def _write_shard(folder: Path, arrays: dict, key: dict) -> dict:
    """Write a shard folder atomically (temporary folder, then rename); returns its ``shard.json``."""
    with atomic_folder(folder) as tmp:
        files = {}
        for name in ARRAY_FILES:
            path = tmp / f"{name}.npy"
            np.save(path, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            files[f"{name}.npy"] = file_sha256(path)
        meta = {**key, "n_windows": int(arrays["start_s"].shape[0]), "files": files}
        (tmp / SHARD_META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def build_dataset_from_segments(
    accepted_segments_csv: str | os.PathLike,
    stems_dir: str | os.PathLike,
    musdb_root: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    train_sr: int = 22050,
    win_s: float = 4.0,
    hop_s: float = 1.0,
    *,
    config=None,
    features_dir: str | os.PathLike | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
    index_only: bool = False,
    force: bool = False,
    progress: bool = True,
) -> DatasetReport:
    """Build (or bring up to date) the dataset of every accepted window (see the module docstring).

    Args:
        accepted_segments_csv: the gate's CSV (``features/<separator>/accepted_segments.csv``).
        stems_dir: the separator's folder of stems, ``stems/<separator>`` (``<track>/vocals.wav``).
        musdb_root: the songs in the MUSDB18-HQ layout (mixtures and true vocals).
        dataset_dir: output folder.
        train_sr: model rate (Hz); ``win_s``: window length (must match the CSV's windows); ``hop_s``: the
            gate's hop (window starts must lie on it).
        config: a :class:`~ddsp_demucs.core.config.Config` (frame rate, ``val_fraction``; recorded in the manifest);
            ``None`` for the defaults.
        features_dir: the per-track feature files (default: the CSV's folder).
        num_shards, shard_index: this process builds only its share of the songs (round-robin; launcher
            variables are read as in :func:`ddsp_demucs.core.utils.shard_of`) and writes no manifest.
        index_only: build nothing; write the manifest from the shards on disk (after a sharded build).
        force: rebuild shards even when up to date.

    Returns:
        a :class:`DatasetReport`. Songs that cannot be used (missing or unreadable files, stale features) are
        logged in one line each and listed in ``report.skipped``; the others are still built. Raises
        :class:`InputError` when the CSV is missing or malformed, or no window at all could be written.
    """
    from tqdm import tqdm

    config = config if config is not None else Config()
    csv_path, stems_dir, out = Path(accepted_segments_csv), Path(stems_dir), Path(dataset_dir)
    features_dir = Path(features_dir) if features_dir is not None else csv_path.parent
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: segments CSV not found (run `ddsp-demucs features` first)")
    if not isinstance(train_sr, (int, np.integer)) or train_sr <= 0:
        raise InputError(f"train_sr must be a positive integer (Hz), got {train_sr!r}")
    if not win_s > 0 or not hop_s > 0:
        raise InputError(f"win_s and hop_s must be positive, got {win_s} and {hop_s}")
    req = _Request(int(train_sr), int(config.data.frame_rate), float(win_s), float(hop_s))
    try:
        rows = [r for r in read_segments_csv(csv_path) if r["accepted"]]
    except (ValueError, KeyError) as exc:
        raise InputError(f"{csv_path}: not a segments CSV ({str(exc).splitlines()[0]})") from None
    _check_windows(csv_path, rows, req)
    windows: dict[str, list[float]] = {}
    for row in rows:
        windows.setdefault(row["track"], []).append(row["start_s"])
    tracks = musdb_tracks(musdb_root)
    split_of = assign_splits(tracks, float(config.data.val_fraction))
    by_name = {t.name: t for t in tracks}
    report = DatasetReport(out)
    report.skipped.extend((name, reason) for name, reason in tracks.skipped if name in windows)
    wanted = sorted(name for name in windows if name in by_name)
    separator_manifest = _first_stem_manifest(stems_dir, wanted)
    separator_name = separator_manifest.get("separator", stems_dir.name)
    overlap = training_songs_warning(separator_name, musdb_root, [n for n in wanted if split_of[n] != "test"])
    if overlap:
        log.warning(overlap)
    for name in sorted(set(windows) - set(by_name) - {n for n, _ in tracks.skipped}):
        report.skipped.append((name, f"{name}: in {csv_path.name} but not a track of {musdb_root}"))
    if not index_only:
        mine = shard_of(wanted, num_shards, shard_index)
        for name in tqdm(mine, desc="dataset", unit="song", disable=not progress):
            track, split = by_name[name], split_of[name]
            vocals, features_path = stems_dir / name / "vocals.wav", features_dir / f"{name}.npz"
            folder = out / split / name
            try:
                for path in (vocals, features_path):
                    if not path.is_file():
                        raise InputError(f"{path}: not found")
                starts_s = sorted(windows[name])
                key = _shard_key(track, split, starts_s, vocals, features_path, req)
                meta = _read_shard_meta(folder)
                if not force and meta is not None and all(meta.get(k) == v for k, v in key.items()):
                    report.reused.append(name)
                    continue
                arrays = _shard_arrays(track, starts_s, vocals, key["separated_sha256"], features_path, req)
                _write_shard(folder, arrays, key)
                report.built.append(name)
            except InputError as exc:
                log.warning("skipped: %s", exc)
                report.skipped.append((name, str(exc)))
        if len(mine) < len(wanted):
            log.info(
                "sharded run: built %d of %d songs; once every shard is done, run build-dataset again "
                "with --index-only to write the manifest",
                len(mine),
                len(wanted),
            )
            return report
    _write_manifest(
        out,
        wanted,
        split_of,
        report,
        req,
        csv_path,
        stems_dir,
        separator_manifest,
        Path(musdb_root),
        features_dir,
        config,
    )
    return report


def _write_manifest(
    out: Path,
    wanted: list[str],
    split_of: dict,
    report: DatasetReport,
    req: _Request,
    csv_path: Path,
    stems_dir: Path,
    separator_manifest: dict,
    musdb_root: Path,
    features_dir: Path,
    config,
) -> None:
    skipped = {name for name, _ in report.skipped}
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for name in wanted:
        if name in skipped:
            continue
        split = split_of[name]
        meta = _read_shard_meta(out / split / name)
        if meta is None or any(meta.get(k) != v for k, v in req.as_dict().items()) or meta.get("split") != split:
            report.skipped.append((name, f"{out / split / name}: no finished shard (build it first)"))
            continue
        shards[split].append(
            {"track": name, "path": f"{split}/{name}", "n_windows": meta["n_windows"], "files": meta["files"]}
        )
    n_windows = {s: sum(x["n_windows"] for x in shards[s]) for s in SPLITS}
    if not sum(n_windows.values()):
        raise InputError(
            f"{csv_path}: no window could be written to {out} "
            f"({len(report.skipped)} songs skipped, {len(wanted)} with accepted windows)"
        )
    kept = {x["path"] for s in SPLITS for x in shards[s]}
    for split in SPLITS:  # shards of songs no longer in the dataset (or moved to another split)
        for folder in (out / split).glob("*") if (out / split).is_dir() else ():
            if folder.is_dir() and not folder.name.startswith(".") and f"{split}/{folder.name}" not in kept:
                shutil.rmtree(folder)
    manifest = {
        **req.as_dict(),
        "sample_rate": req.train_sr,
        "separator": separator_manifest.get("separator", stems_dir.name),
        "separator_signature": separator_manifest.get("weights_signature"),
        "stems_dir": str(stems_dir.resolve()),
        "musdb_root": str(musdb_root.resolve()),
        "features_dir": str(features_dir.resolve()),
        "segments_csv": str(csv_path.resolve()),
        "segments_sha256": file_sha256(csv_path),
        "fields": {**{k: ["n_samples"] for k in AUDIO_FIELDS}, **{k: ["n_frames"] for k in FRAME_FIELDS}},
        "splits": {
            s: {"n_windows": n_windows[s], "tracks": [x["track"] for x in shards[s]], "shards": shards[s]}
            for s in SPLITS
        },
        "config": config_to_dict(config),
    }
    write_json_atomic(out / MANIFEST, manifest)
    report.windows = n_windows
    report.songs = {s: len(shards[s]) for s in SPLITS}
    log.info(
        "%s: %s", out / MANIFEST, "; ".join(f"{s} {n_windows[s]} windows / {len(shards[s])} songs" for s in SPLITS)
    )


def _first_stem_manifest(stems_dir: Path, tracks: list[str]) -> dict:
    """The stem cache's manifest of the first track that has one (separator name and weights signature)."""
    for name in tracks:
        try:
            return json.loads((stems_dir / name / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
    return {}


# ------------------------------------------------------------------------------------------------ reading
class ShardDataset(torch.utils.data.Dataset):
    """One split of a dataset folder, read through memory maps (no audio decoding).

    Items are dicts: float32 tensors ``input_audio``, ``target_audio``, ``mixture_audio`` ``(n_samples,)`` and
    ``f0_hz``, ``f0_confidence``, ``loudness_db`` ``(n_frames,)``, plus ``track`` (str) and ``start_s``
    (float). Attributes: ``manifest`` (the folder's ``manifest.json``), ``split``, ``tracks`` (song names),
    ``sample_rate``, ``frame_rate``, ``n_samples``, ``n_frames``. Works in DataLoader workers (read-only maps).
    """

    def __init__(self, dataset_dir: str | os.PathLike, split: str = "train"):
        self.dataset_dir = Path(dataset_dir)
        path = self.dataset_dir / MANIFEST
        try:
            self.manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: not found (build the dataset with `ddsp-demucs build-dataset`)") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable dataset manifest ({exc})") from None
        if self.manifest.get("format") != FORMAT_VERSION:
            raise InputError(
                f"{path}: dataset format {self.manifest.get('format')!r}, expected {FORMAT_VERSION} (rebuild it)"
            )
        if split not in self.manifest.get("splits", {}):
            raise InputError(
                f"{self.dataset_dir}: no {split!r} split (splits: {', '.join(self.manifest.get('splits', {}))})"
            )
        self.split = split
        info = self.manifest["splits"][split]
        self.shards = info["shards"]
        self.tracks = list(info["tracks"])
        self.sample_rate, self.frame_rate = int(self.manifest["sample_rate"]), int(self.manifest["frame_rate"])
        self.n_samples, self.n_frames = int(self.manifest["n_samples"]), int(self.manifest["n_frames"])
        self._offsets = np.cumsum([0] + [s["n_windows"] for s in self.shards])
        self._maps: dict[int, dict[str, np.ndarray]] = {}  # shard index -> its arrays, memory-mapped on first use

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if k not in self._maps:
            folder = self.dataset_dir / self.shards[k]["path"]
            try:
                self._maps[k] = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAY_FILES}
            except (OSError, ValueError) as exc:
                raise InputError(f"{folder}: unreadable shard ({exc}); rebuild the dataset") from None
        return self._maps[k]

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        index = index % len(self)
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        row = index - int(self._offsets[k])
        arrays = self._shard(k)
        item: dict = {
            name: torch.from_numpy(np.array(arrays[name][row], dtype=np.float32))
            for name in (*AUDIO_FIELDS, *FRAME_FIELDS)
        }
        item["track"] = self.shards[k]["track"]
        item["start_s"] = float(arrays["start_s"][row])
        return item

    def verify(self) -> None:
        """Check every file of the split against the manifest's SHA-256; raises InputError naming a bad file."""
        for shard in self.shards:
            for name, digest in shard["files"].items():
                path = self.dataset_dir / shard["path"] / name
                if not path.is_file() or file_sha256(path) != digest:
                    raise InputError(f"{path}: missing or changed since the dataset was built (rebuild it)")


class SeparatorMixDataset(torch.utils.data.ConcatDataset):
    """The windows of several datasets of the same songs, each separated by another separator, drawn as one
    (a training batch mixes separation qualities). ``manifest`` is the first dataset's with ``separator`` naming
    every separator joined by ``+`` and ``separators`` listing them, so a checkpoint records what it has seen
    (:mod:`ddsp_demucs.training.provenance`); the datasets must share the rate and window length."""

    def __init__(self, datasets: list[ShardDataset]):
        if not datasets:
            raise ValueError("SeparatorMixDataset needs at least one dataset")
        shapes = {(d.sample_rate, d.frame_rate, d.n_samples) for d in datasets}
        if len(shapes) > 1:
            raise InputError(f"datasets differ in rate or window length: {sorted(shapes)}")
        super().__init__(datasets)
        separators = [str(d.manifest.get("separator")) for d in datasets]
        self.manifest = {**datasets[0].manifest, "separator": "+".join(separators), "separators": separators}


def load_dataset(dataset_dir: str | os.PathLike, split: str = "train", *, verify: bool = False) -> ShardDataset:
    """One split (``train``, ``validation`` or ``test``) of a dataset folder; ``verify`` checks the checksums."""
    dataset = ShardDataset(dataset_dir, split)
    if verify:
        dataset.verify()
    return dataset


__all__ = [
    "DatasetReport",
    "SeparatorMixDataset",
    "ShardDataset",
    "assign_splits",
    "build_dataset_from_segments",
    "load_dataset",
]
