"""The stem cache: separate tracks once, keep ``stems_dir/<separator>/<track>/{vocals,accompaniment}.wav``.

Each track folder holds a ``manifest.json`` written last (after the atomic audio writes), recording the
separator, its weights signature, its parameters, the package versions and a checksum of the input mixture, and,
for tracks whose true vocal is known, the quality the separator reached (``vocals_si_sdr_db``: SI-SDR of the mono
downmix). Oracle separators (:mod:`ddsp_demucs.separation.oracle`) are given the track's true vocal.
A re-run skips a track whose manifest matches (same input, separator, weights, parameters, demucs version)
and redoes it otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from ddsp_demucs import DDSPDemucsError, InputError, __version__
from ddsp_demucs.core.audio_io import save_audio
from ddsp_demucs.core.utils import get_logger, shard_of, write_json_atomic
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.separation.oracle import separate_song

log = get_logger(__name__)

MANIFEST = "manifest.json"
STEMS = ("vocals", "accompaniment")
MIN_DURATION_S = 1.0  # shorter clips hold too little to separate (and to refine: no 4 s window fits)


class TrackLike(Protocol):
    """What :func:`separate_tracks` needs of a track: a ``name`` and ``mixture()`` -> ``(n, 2)`` float32 at
    44.1 kHz (``sample_rate`` attribute, if present, overrides 44100); tracks with stems also have ``vocals()``
    -> the true vocal of the mixture's shape, or None."""

    name: str

    def mixture(self) -> np.ndarray: ...


class SeparatorLike(Protocol):
    name: str
    signature: str
    params: dict

    def separate(self, mixture: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class SeparationFailure:
    """A track that could not be separated: its name and a one-line reason."""

    track: str
    reason: str

    def __str__(self) -> str:
        return f"{self.track}: {self.reason}"


def mixture_checksum(mixture: np.ndarray) -> str:
    """sha1 of the mixture's shape and float32 little-endian bytes."""
    audio = np.ascontiguousarray(mixture, dtype="<f4")
    digest = hashlib.sha1(repr(audio.shape).encode())
    digest.update(audio.tobytes())
    return digest.hexdigest()


def track_dir(stems_dir: str | os.PathLike, separator_name: str, track_name: str) -> Path:
    """``stems_dir/<separator_name>/<track_name>`` (path separators in the track name become ``_``)."""
    safe = track_name.replace(os.sep, "_").replace("/", "_").strip()
    if safe in ("", ".", ".."):
        raise InputError(f"track name {track_name!r} cannot be used as a folder name")
    return Path(stems_dir) / separator_name / safe


def _manifest_key(separator: SeparatorLike, checksum: str, sample_rate: int) -> dict:
    import demucs

    return {
        "separator": separator.name,
        "weights_signature": separator.signature,
        "parameters": json.loads(json.dumps(separator.params, default=str)),
        "demucs_version": demucs.__version__,
        "input_sha1": checksum,
        "sample_rate": sample_rate,
    }


def is_done(folder: Path, key: dict) -> bool:
    """Whether ``folder`` holds a manifest matching ``key`` and every stem it lists."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if any(manifest.get(k) != v for k, v in key.items()):
        return False
    return all((folder / f"{stem}.wav").is_file() for stem in manifest.get("stems", ()))


def input_quality(vocals: np.ndarray, true_vocals: np.ndarray | None) -> dict:
    """``{"vocals_si_sdr_db": SI-SDR of the mono downmix}`` of a separated vocal against the true one, both
    ``(n_samples, n_channels)``; empty when the true vocal is unknown or of another shape."""
    if true_vocals is None or np.shape(true_vocals) != np.shape(vocals):
        return {}
    est = np.asarray(vocals, dtype=np.float64).mean(axis=1)
    return {"vocals_si_sdr_db": float(si_sdr(est, np.asarray(true_vocals, dtype=np.float64).mean(axis=1)))}


def separate_tracks(
    tracks: Iterable[TrackLike],
    separator: SeparatorLike,
    stems_dir: str | os.PathLike,
    num_shards: int = 1,
    shard_index: int = 0,
    progress: bool = True,
) -> list[SeparationFailure]:
    """Separate each track (of this shard) into ``stems_dir/<separator.name>/<track.name>/``.

    Writes ``vocals.wav`` and ``accompaniment.wav`` (float32, the mixture's rate and channels; the
    accompaniment is the sum of the separator's other sources, or ``mixture - vocals`` when it gives none),
    then ``manifest.json``. Skips tracks already done with the same input and settings. A track that fails
    (unreadable, NaN, wrong shape...) is logged in one line and returned; the others are still processed.
    Returns the failures (empty when all succeeded).
    """
    from tqdm import tqdm

    mine = shard_of(list(tracks), num_shards, shard_index)
    failures: list[SeparationFailure] = []
    done = skipped = 0
    for track in tqdm(mine, desc=f"separate ({separator.name})", unit="track", disable=not progress):
        name = str(getattr(track, "name", "?"))
        try:
            folder = track_dir(stems_dir, separator.name, name)
            sample_rate = int(getattr(track, "sample_rate", 44100))
            mixture = np.asarray(track.mixture(), dtype=np.float32)
            if mixture.ndim != 2 or mixture.shape[0] == 0:
                raise InputError(f"mixture must be (n_samples, n_channels) with samples, got shape {mixture.shape}")
            if mixture.shape[0] < MIN_DURATION_S * sample_rate:
                raise InputError(
                    f"{getattr(track, 'mixture_path', name)}: too short ({mixture.shape[0] / sample_rate:.2f} s; "
                    f"separation needs at least {MIN_DURATION_S:g} s)"
                )
            key = _manifest_key(separator, mixture_checksum(mixture), sample_rate)
            if is_done(folder, key):
                skipped += 1
                continue
            true_vocals = track.vocals() if hasattr(track, "vocals") else None
            stems = separate_song(separator, mixture, sample_rate, true_vocals)
            vocals = stems["vocals"]
            others = [v for k, v in stems.items() if k not in ("vocals", "accompaniment")]
            accompaniment = stems.get("accompaniment", sum(others) if others else mixture - vocals)
            (folder / MANIFEST).unlink(missing_ok=True)  # a half-redone folder never looks done
            save_audio(folder / "vocals.wav", vocals, sample_rate)
            save_audio(folder / "accompaniment.wav", accompaniment, sample_rate)
            write_json_atomic(
                folder / MANIFEST,
                {
                    **key,
                    "track": name,
                    "stems": list(STEMS),
                    "n_samples": int(mixture.shape[0]),
                    "n_channels": int(mixture.shape[1]),
                    "ddsp_demucs_version": __version__,
                }
                | input_quality(vocals, true_vocals),
            )
            done += 1
        except (DDSPDemucsError, ValueError, OSError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failures.append(SeparationFailure(name, reason))
            log.error("skipped track %s: %s", name, reason)
    log.info(
        "separation with %s: %d separated, %d already done, %d failed (stems in %s)",
        separator.name,
        done,
        skipped,
        len(failures),
        Path(stems_dir) / separator.name,
    )
    return failures
