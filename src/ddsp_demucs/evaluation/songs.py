"""The user's path, scored: whole songs separated and refined exactly as ``ddsp-demucs refine`` does (the song's
rate, channels and length), against their true vocals.

Protocol ``"songs"``: for every song of a MUSDB18-HQ-layout folder (``mixture`` and ``vocals`` per track
folder), the separator's vocal (baseline) and a *system*'s refinement of it (a trained model through
:func:`~ddsp_demucs.inference.refine.refine_vocals`, or the comb filter of :mod:`~ddsp_demucs.inference.comb`) are
scored against the true vocal:

- ``si_sdr_mono``: SI-SDR of the mono downmix (dB);
- ``sdr``: the SiSEC18 SDR of all channels (median over 1 s frames of BSSEval v4);
- ``band_err_<band>``: the error energy in a frequency band (< 0.3, 0.3-1, 1-3, 3-8, > 8 kHz) relative to the
  whole true vocal's energy, dB (:func:`ddsp_demucs.metrics.band_error_db`);
- ``region_err_<region>``: the same for the samples where the true vocal is voiced, unvoiced or silent
  (:func:`ddsp_demucs.metrics.region_error_db`; voicing from F0 tracked on the true vocal).

Lower error is better, so a positive improvement in a band or region means the system removed error there; the
band (or region) errors add up, in energy, to the whole error. Separations and the true vocals' F0 are cached
in ``cache_dir`` so several systems are scored on the same separated vocals.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio, save_audio
from ddsp_demucs.core.utils import atomic_path, get_logger
from ddsp_demucs.corpus.sources import SAMPLE_RATE, musdb_tracks
from ddsp_demucs.evaluation.common import select_indices
from ddsp_demucs.evaluation.core import (
    EXCERPT_S,
    REGION_NAMES,
    SONG_METRICS,
    EvaluationResults,
    check_signals,
    log_outcome,
    song_excerpt,
    track_f0,
)
from ddsp_demucs.inference.comb import comb_refine
from ddsp_demucs.inference.refine import refine_vocals
from ddsp_demucs.metrics import band_error_db, region_error_db, sdr, si_sdr
from ddsp_demucs.separation.oracle import ORACLE_BOUNDS, oracle_refinement, separate_song

log = get_logger("evaluate")

REGION_F0_RATE = 100  # frames/s of the true vocal's F0 that defines the voiced region

#: A system: ``(separated (n_samples, n_channels) float32, sample_rate, true vocal (n_samples, n_channels), mixture
#: (n_samples, n_channels)) -> refined``, same shape as ``separated``. Only oracle diagnoses (``oracle_f0=True``)
#: read the true vocal; models that read the accompaniment estimate read the mixture, as ``refine`` gives it.
Refiner = Callable[[np.ndarray, int, np.ndarray, np.ndarray], np.ndarray]


def song_figures(
    estimate: np.ndarray, reference: np.ndarray, sample_rate: int, reference_f0: np.ndarray, f0_rate: int
) -> dict[str, float]:
    """The ``"songs"`` metrics (see the module docstring) of one estimate ``(n, ch)`` against ``reference``."""
    est64, ref64 = np.asarray(estimate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    out = {
        "si_sdr_mono": float(si_sdr(est64.mean(axis=1), ref64.mean(axis=1))),
        "sdr": float(sdr(est64.astype(np.float32), ref64.astype(np.float32), sample_rate)),
    }
    out.update({f"band_err_{k}": v for k, v in band_error_db(est64, ref64, sample_rate).items()})
    regions = region_error_db(est64, ref64, sample_rate, reference_f0, f0_rate)
    out.update({f"region_err_{k}": regions[k] for k in REGION_NAMES})
    return out


class SongCache:
    """Separated vocals and true-vocal F0 of songs, on disk under ``folder/<song>/``, keyed by the separator's
    name and signature (a separation made by other settings is redone)."""

    def __init__(self, folder: str | os.PathLike, separator, f0_method: str | None, voicing_threshold: float):
        self.folder, self.separator = Path(folder), separator
        self.f0_method, self.voicing_threshold = f0_method, voicing_threshold
        signature = json.dumps([separator.name, getattr(separator, "signature", None)], sort_keys=True, default=str)
        self.key = hashlib.sha256(signature.encode()).hexdigest()[:16]

    def separated(self, name: str, mixture: np.ndarray, sample_rate: int, target: np.ndarray) -> np.ndarray:
        """The separator's vocal of ``mixture`` (oracle separators are given the true vocal ``target``)."""
        path = self.folder / name / f"separated_{self.key}.wav"
        if path.is_file():
            return load_audio(path, allow_silent=True)[0]
        vocals = np.asarray(separate_song(self.separator, mixture, sample_rate, target)["vocals"], dtype=np.float32)
        save_audio(path, vocals, sample_rate)
        return vocals

    def reference_f0(self, name: str, target: np.ndarray, sample_rate: int) -> np.ndarray:
        path = self.folder / name / f"target_f0_{self.f0_method}_{self.voicing_threshold:g}.npy"
        if path.is_file():
            return np.load(path)
        f0 = track_f0(target, sample_rate, REGION_F0_RATE, self.f0_method, self.voicing_threshold)
        with atomic_path(path) as tmp:
            np.save(tmp, f0)
        return f0


def evaluate_songs(
    refiner: Refiner,
    songs_root: str | os.PathLike,
    separator,
    *,
    system: str,
    cache_dir: str | os.PathLike,
    subset: str = "test",
    split: str | None = None,
    n_songs: int | None = None,
    f0_method: str | None = None,
    voicing_threshold: float = 0.5,
    n_keep: int = 4,
    settings: dict | None = None,
    progress: bool = True,
) -> EvaluationResults:
    """Score ``refiner`` on the songs of ``songs_root`` (MUSDB18-HQ layout, the ``subset`` folder, or every
    folder when ``subset`` is None) separated by ``separator`` (an object with ``name`` and ``separate``).

    Args:
        system: what ``refiner`` is, recorded in the results (e.g. ``"model runs/x/model.ckpt"``, ``"comb"``).
        cache_dir: separations and true-vocal F0 are kept there between runs and systems.
        split: only the songs of this split of :func:`ddsp_demucs.data.musdb_tracks` (``"valid"``: the
            validation songs a corpus manifest lists, in the train folder).
        n_songs: score this many songs spread evenly over the folder (default all).
        f0_method, voicing_threshold: the tracker defining the voiced region of the true vocal.
        n_keep: songs whose excerpts (signals) are kept for the report.
        settings: more entries for ``results.settings`` (e.g. the model's provenance).

    Returns:
        :class:`EvaluationResults`, protocol ``"songs"``, one row per song with ``singer`` where the corpus
        manifest names it; ``settings["metrics"]`` lists the metric keys.
    """
    root = Path(songs_root)
    tracks = musdb_tracks(root, subsets=(subset,) if subset else ("train", "test"), split=split)
    if not tracks:
        raise DDSPDemucsError(f"{root}: no songs with a mixture and true vocals to evaluate")
    singers = _singers(root)
    cache = SongCache(cache_dir, separator, f0_method, voicing_threshold)
    results = EvaluationResults("songs", separator.name, SAMPLE_RATE, float(REGION_F0_RATE))
    results.settings = {
        "protocol": "songs",
        "system": system,
        "songs_root": str(root),
        "subset": subset,
        "split": split,
        "metrics": [m.key for m in SONG_METRICS],
        "f0_method": f0_method,
        "voicing_threshold": voicing_threshold,
        "compute_f0": False,
        **(settings or {}),
    }
    results.errors.extend(tracks.skipped)
    chosen = [tracks[j] for j in select_indices(len(tracks), n_songs)]
    keep = {chosen[j].name for j in select_indices(len(chosen), n_keep)} if n_keep > 0 else set()
    for index, track in enumerate(tqdm(chosen, desc=f"songs ({system})", unit="song", disable=not progress)):
        try:
            mixture, target = track.mixture(), track.vocals()
            problem = check_signals(mixture, target)
            if problem is not None:
                (results.skipped if problem[0] == "skipped" else results.errors).append((track.name, problem[1]))
                continue
            separated = cache.separated(track.name, mixture, SAMPLE_RATE, target)
            refined = np.asarray(refiner(separated, SAMPLE_RATE, target, mixture), dtype=np.float32)
        except InputError as exc:
            results.errors.append((track.name, str(exc)))
            log.error("song %s not evaluated: %s", track.name, exc)
            continue
        if refined.shape != separated.shape:
            raise DDSPDemucsError(f"{system}: refined {refined.shape} but separated {separated.shape} for {track.name}")
        ref_f0 = cache.reference_f0(track.name, target, SAMPLE_RATE)
        row = {
            "index": index,
            "track": track.name,
            "singer": singers.get(track.name, ""),
            "start_s": 0.0,
            "duration_s": target.shape[0] / SAMPLE_RATE,
            "status": "ok",
        }
        row.update(
            {
                f"{k}_baseline": v
                for k, v in song_figures(separated, target, SAMPLE_RATE, ref_f0, REGION_F0_RATE).items()
            }
        )
        if np.all(np.isfinite(refined)):
            row.update(
                {
                    f"{k}_refined": v
                    for k, v in song_figures(refined, target, SAMPLE_RATE, ref_f0, REGION_F0_RATE).items()
                }
            )
        else:
            row["status"] = "failed"
            results.failed.append((track.name, "the refined song has non-finite samples"))
        results.rows.append(row)
        if track.name in keep:
            signals = {"mixture": mixture, "separated": separated, "refined": refined, "target": target}
            results.examples.append(song_excerpt(track.name, signals, {}, SAMPLE_RATE, REGION_F0_RATE, row, EXCERPT_S))
    log_outcome(results)
    return results


def _singers(root: Path) -> dict[str, str]:
    """Song -> singer from a real corpus manifest (``tracks.<name>.singer``), else empty."""
    try:
        tracks = json.loads((root / "manifest.json").read_text()).get("tracks") or {}
    except (OSError, ValueError):
        return {}
    return {name: str(info.get("singer", "")) for name, info in tracks.items() if isinstance(info, dict)}


def model_refiner(
    model,
    *,
    window_s: float | None = 30.0,
    overlap_s: float = 1.0,
    seed: int = 0,
    oracle_f0: bool = False,
    strength: float = 1.0,
    f0_method: str | None = None,
    harmonic_check: bool | None = None,
) -> Refiner:
    """The system of a trained model: :func:`~ddsp_demucs.inference.refine.refine_vocals` with the checkpoint's
    settings and
    ``strength``, exactly as ``ddsp-demucs refine`` runs it (``f0_method``: another tracker than the checkpoint's,
    as ``refine --f0-method``; ``harmonic_check``: as ``refine --harmonic-check``); ``oracle_f0``: F0 tracked on
    the true vocal instead (a diagnosis, not something a user can run)."""

    def refine(separated: np.ndarray, sample_rate: int, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        return refine_vocals(
            model,
            separated,
            sample_rate,
            window_s=window_s,
            overlap_s=overlap_s,
            seed=seed,
            f0_reference=reference if oracle_f0 else None,
            strength=strength,
            mixture=mixture,
            f0_method=f0_method,
            harmonic_check=harmonic_check,
        )

    return refine


def comb_refiner(*, f0_method: str | None = None, voicing_threshold: float = 0.5, oracle_f0: bool = False) -> Refiner:
    """The non-learned baseline: :func:`ddsp_demucs.inference.comb.comb_refine` (F0-guided harmonic comb post-filter);
    ``oracle_f0`` as in :func:`model_refiner`."""

    def refine(separated: np.ndarray, sample_rate: int, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        return comb_refine(
            separated,
            sample_rate,
            f0_method=f0_method,
            voicing_threshold=voicing_threshold,
            f0_reference=reference if oracle_f0 else None,
            mixture=mixture,
        )

    return refine


def oracle_refiner(kind: str) -> Refiner:
    """An oracle diagnosis, not a system: the bound :func:`ddsp_demucs.separation.oracle.oracle_refinement` of ``kind``
    (``mask`` or ``restore``) on each song, made with its true vocal and mixture."""
    if kind not in ORACLE_BOUNDS:
        raise ValueError(f"kind must be one of {ORACLE_BOUNDS}, got {kind!r}")

    def refine(separated: np.ndarray, sample_rate: int, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        return oracle_refinement(separated, mixture, reference, sample_rate, kind)

    return refine


__all__ = [
    "SONG_METRICS",
    "REGION_NAMES",
    "Refiner",
    "SongCache",
    "comb_refiner",
    "evaluate_songs",
    "model_refiner",
    "oracle_refiner",
    "song_figures",
]
