"""Baseline (the separator's vocal) against refined (the model's output), both scored against the true vocal.

Two protocols:

- ``"windows"`` (:func:`evaluate_model`): the dataset's windows (4 s, mono, at the model's ``train_sr``), the
  model run on each batch exactly as in training;
- ``"tracks"`` (:func:`evaluate_tracks`): whole songs at 44.1 kHz stereo, refined by
  :func:`ddsp_demucs.inference.refine.refine_vocals` and scored against the ground-truth vocals, so that the SDR is the
  SiSEC18 figure published for MUSDB18.

Metrics of one estimate against the reference (:data:`METRICS`): SI-SDR (dB), SDR (SiSEC18: median over 1 s
windows of BSSEval v4), spectral convergence, log-spectral distance (dB), multi-resolution STFT distance, and
F0 metrics: the F0 tracked on the estimate against the F0 tracked (same tracker, same settings) on the
reference — raw pitch and chroma accuracy, octave-error rate, voicing recall and false alarm (50-cent
tolerance), median cents error. Stereo signals are scored per channel and averaged (SDR: both channels
together, as museval), their F0 is tracked on the channel mean.

Examples whose target is silent are skipped (logged, counted, with the reason); examples with non-finite
input or target samples, and songs that cannot be read, are errors (counted, listed); examples whose refined
output is not finite are failures: kept in the results with their baseline figures and NaN refined figures,
counted, listed, never dropped silently.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio
from ddsp_demucs.core.utils import get_logger
from ddsp_demucs.corpus.sources import SAMPLE_RATE, musdb_tracks
from ddsp_demucs.dsp import MultiResolutionSTFTLoss
from ddsp_demucs.evaluation.common import MODEL_NOISE, check_rates, example_seed, mrstft_distance, select_indices
from ddsp_demucs.features.pitch import F0Tracker
from ddsp_demucs.inference.refine import f0_tracker, refine_vocals
from ddsp_demucs.metrics import (
    BAND_NAMES,
    REGION_NAMES,
    f0_metrics,
    log_spectral_distance,
    sdr,
    si_sdr,
    spectral_convergence,
)
from ddsp_demucs.training.batches import collate

log = get_logger("evaluate")

SILENCE_DB = -80.0  # a target whose RMS is below this (dBFS) is silent: its figures would be meaningless
EXCERPT_S = 4.0  # length of the kept excerpt of a whole song (tracks protocol), seconds


@dataclass(frozen=True)
class MetricSpec:
    """A metric: its key, label and unit for tables, and whether a higher value is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    f0: bool = False


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("si_sdr", "SI-SDR", "dB", True),
    MetricSpec("sdr", "SDR (SiSEC18)", "dB", True),
    MetricSpec("spectral_convergence", "spectral convergence", "", False),
    MetricSpec("log_spectral_distance", "log-spectral distance", "dB", False),
    MetricSpec("mrstft", "multi-resolution STFT distance", "", False),
    MetricSpec("raw_pitch_accuracy", "raw pitch accuracy", "", True, f0=True),
    MetricSpec("raw_chroma_accuracy", "raw chroma accuracy", "", True, f0=True),
    MetricSpec("octave_error_rate", "octave-error rate", "", False, f0=True),
    MetricSpec("voicing_recall", "voicing recall", "", True, f0=True),
    MetricSpec("voicing_false_alarm", "voicing false alarm", "", False, f0=True),
    MetricSpec("median_cents_error", "median F0 error", "cents", False, f0=True),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
#: The ``"songs"`` protocol's metrics (:mod:`ddsp_demucs.evaluation.songs`): SI-SDR of the mono downmix, SiSEC18
#: SDR, and the error energy per frequency band and per region of the true vocal (dB, lower is better).
SONG_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("si_sdr_mono", "SI-SDR (mono downmix)", "dB", True),
    MetricSpec("sdr", "SDR (SiSEC18)", "dB", True),
    *(MetricSpec(f"band_err_{b}", f"error in band {b} Hz", "dB", False) for b in BAND_NAMES),
    *(MetricSpec(f"region_err_{r}", f"error where the vocal is {r}", "dB", False) for r in REGION_NAMES),
)
SIDES = ("baseline", "refined")
F0_NAMES = {"baseline": "separated", "refined": "refined"}  # keys of ExampleAudio.f0 (and "target")


@dataclass
class ExampleAudio:
    """Signals of one kept example, for plots and the report.

    ``signals``: name (``"mixture"`` where known, ``"separated"``, ``"refined"``, ``"target"``) -> float32
    ``(n_samples,)`` mono or ``(n_samples, n_channels)`` at ``sample_rate`` Hz; ``f0``: ``"target"``,
    ``"separated"``, ``"refined"`` -> F0 in Hz ``(n_frames,)`` at ``frame_rate`` (0 = unvoiced), empty when F0
    was not computed; ``row``: the example's figures (a row of :attr:`EvaluationResults.rows`).
    """

    track: str
    start_s: float
    sample_rate: int
    frame_rate: float
    signals: dict[str, np.ndarray]
    f0: dict[str, np.ndarray]
    row: dict

    @property
    def label(self) -> str:
        return f"{self.track} @ {self.start_s:.2f} s"


@dataclass
class EvaluationResults:
    """What :func:`evaluate_model` / :func:`evaluate_tracks` measured.

    ``rows``: one dict per evaluated example: ``index``, ``track``, ``start_s``, ``duration_s``, ``status``
    (``"ok"`` or ``"failed"``) and ``<metric>_baseline`` / ``<metric>_refined`` for every metric key (NaN
    where undefined: F0 metrics without voiced reference frames, refined figures of a failed example).
    ``skipped`` (silent targets), ``errors`` (unreadable or non-finite inputs) and ``failed`` (non-finite model
    outputs) are ``(label, reason)`` pairs. ``settings`` records how it was run, ``model_config`` the
    checkpoint's training config.
    """

    protocol: str
    separator: str
    sample_rate: int
    frame_rate: float
    rows: list[dict] = field(default_factory=list)
    examples: list[ExampleAudio] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    model_config: dict | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def metric_keys(self) -> list[str]:
        """The metrics measured: ``settings["metrics"]`` where given (the songs protocol), else :data:`METRICS`
        (the F0 metrics only when F0 was computed)."""
        if "metrics" in self.settings:
            return list(self.settings["metrics"])
        return [m.key for m in METRICS if not m.f0 or self.settings.get("compute_f0", True)]

    def values(self, metric: str, side: str) -> np.ndarray:
        """``(n_rows,)`` float64 values of ``metric`` for ``side`` (``"baseline"`` or ``"refined"``)."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        return np.array([r.get(f"{metric}_{side}", math.nan) for r in self.rows], dtype=np.float64)

    def improvements(self, metric: str) -> np.ndarray:
        """``(n_rows,)`` refined minus baseline, sign flipped for lower-is-better metrics (positive = better)."""
        with np.errstate(invalid="ignore"):  # -inf - -inf (an empty region on both sides) is NaN: not scored
            diff = self.values(metric, "refined") - self.values(metric, "baseline")
        return diff if metric_spec(metric).higher_is_better else -diff


def metric_spec(key: str) -> MetricSpec:
    for m in METRICS + SONG_METRICS:
        if m.key == key:
            return m
    raise KeyError(f"unknown metric {key!r}; known: {', '.join(METRIC_KEYS)}")


# ------------------------------------------------------------------------------------------- one example
def waveform_metrics(
    estimate: np.ndarray, reference: np.ndarray, sample_rate: int, mrstft: MultiResolutionSTFTLoss | None = None
) -> dict[str, float]:
    """SI-SDR, SDR, spectral convergence, log-spectral distance and MR-STFT distance of one estimate.

    ``estimate``, ``reference``: finite float ``(n_samples,)`` mono or ``(n_samples, n_channels)`` at
    ``sample_rate`` Hz. Per-channel figures are averaged over channels; the SDR is the SiSEC18 figure of all
    channels together; the MR-STFT distance (``mrstft``, default :func:`mrstft_distance`) averages over
    channels inside the loss.
    """
    mrstft = mrstft if mrstft is not None else mrstft_distance()
    est = np.asarray(estimate, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    if est.ndim == 1:
        est, ref = est[:, None], ref[:, None]
    est_t, ref_t = torch.from_numpy(np.ascontiguousarray(est.T)), torch.from_numpy(np.ascontiguousarray(ref.T))
    with torch.inference_mode():
        return {
            "si_sdr": float(np.mean(si_sdr(est.T.astype(np.float64), ref.T.astype(np.float64)))),
            "sdr": float(sdr(est, ref, sample_rate)),
            "spectral_convergence": float(spectral_convergence(est_t, ref_t).double().mean()),
            "log_spectral_distance": float(log_spectral_distance(est_t, ref_t).double().mean()),
            "mrstft": float(mrstft(est_t, ref_t)),
        }


def track_f0(
    audio: np.ndarray, sample_rate: int, frame_rate: float, method: str | None, voicing_threshold: float
) -> np.ndarray:
    """F0 in Hz ``(n_samples * frame_rate // sample_rate,)`` (0 = unvoiced) of ``audio`` ``(n,)`` or ``(n, ch)``
    (channels averaged), by :func:`ddsp_demucs.features.extract_f0`."""
    return F0Tracker(method, voicing_threshold).track(audio, sample_rate, int(frame_rate))[0]


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS over all samples and channels (-inf for digital silence)."""
    power = float(np.mean(np.square(np.asarray(audio, dtype=np.float64))))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def check_signals(inp: np.ndarray, target: np.ndarray) -> tuple[str, str] | None:
    """``("error" | "skipped", reason)`` when the pair cannot be scored, else None."""
    if not (np.all(np.isfinite(inp)) and np.all(np.isfinite(target))):
        bad = "input" if not np.all(np.isfinite(inp)) else "target"
        return "error", f"non-finite samples in the {bad}"
    level = rms_db(target)
    if level < SILENCE_DB:
        return "skipped", f"silent target (RMS {level:.0f} dBFS, below {SILENCE_DB:.0f} dBFS)"
    return None


class _Scorer:
    """Scores the baseline and refined estimates of examples against their targets (one row each)."""

    def __init__(self, sample_rate: int, frame_rate: float, *, tracker: F0Tracker, compute_f0: bool):
        self.sample_rate, self.frame_rate = sample_rate, frame_rate
        self.tracker, self.compute_f0 = tracker, compute_f0
        self.mrstft = mrstft_distance()

    def f0(self, audio: np.ndarray) -> np.ndarray:
        return self.tracker.track(audio, self.sample_rate, int(self.frame_rate))[0]

    def score(self, separated: np.ndarray, refined: np.ndarray, target: np.ndarray) -> tuple[dict, dict]:
        """``(row figures, F0 tracks)`` of one example; a non-finite ``refined`` gets NaN refined figures."""
        estimates = {"baseline": separated}
        if np.all(np.isfinite(refined)):
            estimates["refined"] = refined
        keys = [m.key for m in METRICS if not m.f0 or self.compute_f0]
        figures = {f"{k}_{side}": math.nan for k in keys for side in SIDES}
        tracks: dict[str, np.ndarray] = {}
        if self.compute_f0:
            tracks["target"] = self.f0(target)
        for side, est in estimates.items():
            values = waveform_metrics(est, target, self.sample_rate, self.mrstft)
            if self.compute_f0:
                tracks[F0_NAMES[side]] = self.f0(est)
                values.update(f0_metrics(tracks["target"], tracks[F0_NAMES[side]]))
            figures.update({f"{k}_{side}": float(v) for k, v in values.items()})
        return figures, tracks


def _separator_name(source: Any) -> str:
    manifest = getattr(source, "manifest", None) if not isinstance(source, dict) else source
    name = (manifest or {}).get("separator")
    return str(name) if name else "unknown"


def _common_settings(model, protocol: str, tracker: F0Tracker, compute_f0, seed) -> dict:
    f0_settings = tracker.settings()
    return {
        "protocol": protocol,
        "composition": getattr(model, "composition", None),
        "model_sample_rate": int(model.sample_rate),
        "frame_rate": float(model.frame_rate),
        "compute_f0": compute_f0,
        **{key: value if compute_f0 else None for key, value in f0_settings.items()},
        "seed": seed,
    }


# ------------------------------------------------------------------------------------------- windows
def evaluate_model(
    model: torch.nn.Module,
    dataset,
    n_examples: int | None = None,
    *,
    batch_size: int = 8,
    f0_method: str | None = None,
    compute_f0: bool = True,
    n_keep: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> EvaluationResults:
    """Score the separated vocal (baseline) and the model's refinement of it on every window of ``dataset``.

    Args:
        model: a :class:`~ddsp_demucs.model.ResidualDDSPDecoder` (e.g. from
            :func:`ddsp_demucs.training.checkpoints.load_model`); run in eval mode under ``torch.inference_mode``.
        dataset: items with ``input_audio``, ``target_audio`` ``(n_samples,)`` (and optionally
            ``mixture_audio``), ``f0_hz``, ``f0_confidence``, ``loudness_db`` ``(n_frames,)``, ``track``,
            ``start_s``, at the model's rates; its ``manifest["separator"]`` names the baseline.
        n_examples: evaluate this many windows spread evenly over the dataset (default: all).
        batch_size: windows per model call.
        f0_method: F0 tracker for the F0 metrics (default: the checkpoint's ``features.f0_method``);
            ``compute_f0=False`` leaves the F0 metrics out (they take most of the time).
        n_keep: how many examples (spread evenly) keep their signals for plots and the report.
        seed: seeds the filtered noise of ``synth``/``gate`` models (one generator per batch), so a re-run
            gives the same figures.

    Returns:
        :class:`EvaluationResults` with protocol ``"windows"``, one row per scored window.
    """
    sr, fr = check_rates(model, dataset)
    if batch_size < 1:
        raise DDSPDemucsError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    tracker = f0_tracker(model, f0_method, None)
    indices = select_indices(len(dataset), n_examples)
    keep = {indices[j] for j in select_indices(len(indices), n_keep)} if n_keep > 0 else set()
    scorer = _Scorer(sr, fr, tracker=tracker, compute_f0=compute_f0)
    results = EvaluationResults(
        "windows", _separator_name(dataset), sr, float(fr), model_config=getattr(model, "config", None)
    )
    results.settings = _common_settings(model, "windows", tracker, compute_f0, seed) | {
        "n_examples_requested": n_examples,
        "batch_size": batch_size,
        "n_windows_in_dataset": len(dataset),
    }
    n_batches = math.ceil(len(indices) / batch_size)
    for b in tqdm(range(n_batches), desc="evaluating windows", unit="batch", disable=not progress):
        chunk = indices[b * batch_size : (b + 1) * batch_size]
        good: list[tuple[int, dict]] = []
        for i in chunk:
            item = dataset[i]
            label = f"{item.get('track', i)} @ {float(item.get('start_s', 0.0)):.2f} s"
            problem = check_signals(_np(item["input_audio"]), _np(item["target_audio"]))
            if problem is None:
                good.append((i, item))
                continue
            kind, reason = problem
            (results.skipped if kind == "skipped" else results.errors).append((label, reason))
            log.warning("window %s %s: %s", label, "skipped" if kind == "skipped" else "not evaluated", reason)
        if not good:
            continue
        batch = collate([item for _, item in good])
        with torch.inference_mode():
            out = model(batch, generator=torch.Generator().manual_seed(example_seed(seed, MODEL_NOISE, b)))
        refined = out["audio"].detach().float().cpu().numpy()
        for j, (i, item) in enumerate(good):
            _score_window(results, scorer, i, item, refined[j], keep)
    log_outcome(results)
    return results


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _score_window(
    results: EvaluationResults, scorer: _Scorer, index: int, item: dict, refined: np.ndarray, keep: set[int]
) -> None:
    separated, target = _np(item["input_audio"]).astype(np.float32), _np(item["target_audio"]).astype(np.float32)
    track, start_s = str(item.get("track", index)), float(item.get("start_s", 0.0))
    figures, f0 = scorer.score(separated, refined, target)
    status = "ok" if np.all(np.isfinite(refined)) else "failed"
    row = {
        "index": index,
        "track": track,
        "start_s": start_s,
        "duration_s": separated.shape[0] / scorer.sample_rate,
        "status": status,
        **figures,
    }
    results.rows.append(row)
    if status == "failed":
        reason = f"the model output has {int(np.sum(~np.isfinite(refined)))} non-finite samples"
        results.failed.append((f"{track} @ {start_s:.2f} s", reason))
        log.error("window %s @ %.2f s failed: %s", track, start_s, reason)
    if index in keep:
        signals = {"separated": separated, "refined": refined.astype(np.float32), "target": target}
        if "mixture_audio" in item:
            signals = {"mixture": _np(item["mixture_audio"]).astype(np.float32), **signals}
        results.examples.append(ExampleAudio(track, start_s, scorer.sample_rate, scorer.frame_rate, signals, f0, row))


def log_outcome(results: EvaluationResults) -> None:
    log.info(
        "%s protocol: %d scored (%d failed), %d skipped, %d errors",
        results.protocol,
        len(results.rows),
        len(results.failed),
        len(results.skipped),
        len(results.errors),
    )


# -------------------------------------------------------------------------------------------- tracks
def _resolve(path: str | os.PathLike, base: Path | None) -> Path:
    p = Path(path)
    if not p.is_absolute() and base is not None and not p.exists() and (base / p).exists():
        return base / p
    return p


def _track_source(source, split: str) -> tuple[dict, list[str] | None, Path | None]:
    """``(manifest, track names of the split or None, dataset dir or None)`` from a dataset folder, a dataset
    object with ``manifest`` (and ``tracks``), or a manifest dict."""
    if isinstance(source, dict):
        return source, None, None
    if isinstance(source, (str, os.PathLike)):
        from ddsp_demucs.data import load_dataset

        folder = Path(source)
        if not folder.is_dir():
            raise DDSPDemucsError(f"{folder}: dataset folder not found")
        dataset = load_dataset(folder, split)
        return dict(dataset.manifest), list(dataset.tracks), folder
    manifest = getattr(source, "manifest", None)
    if not isinstance(manifest, dict):
        raise DDSPDemucsError(
            f"evaluate_tracks needs a dataset folder, a dataset with a manifest, or a manifest "
            f"dict; got {type(source).__name__}"
        )
    tracks = getattr(source, "tracks", None)
    return dict(manifest), (list(tracks) if tracks is not None else None), None


def evaluate_tracks(
    model: torch.nn.Module,
    dataset_manifest_or_dir,
    split: str = "test",
    *,
    n_tracks: int | None = None,
    window_s: float | None = 30.0,
    overlap_s: float = 1.0,
    f0_method: str | None = None,
    compute_f0: bool = True,
    n_keep: int = 4,
    excerpt_s: float = EXCERPT_S,
    seed: int = 0,
    progress: bool = True,
) -> EvaluationResults:
    """Score whole songs at their original rate and channels: the separator's vocal (baseline) and its
    refinement by :func:`ddsp_demucs.inference.refine.refine_vocals` against the ground-truth vocals (44.1 kHz stereo),
    so that the SDR is the SiSEC18 figure (comparable with published MUSDB18 results).

    Args:
        model: a :class:`~ddsp_demucs.model.ResidualDDSPDecoder`.
        dataset_manifest_or_dir: a dataset folder (its ``split`` tracks), a dataset with ``manifest`` and
            ``tracks``, or a manifest dict (every track of ``split`` in the MUSDB layout). The manifest gives
            ``separator``, ``stems_dir`` (``<track>/vocals.wav`` per song) and ``musdb_root``.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        n_tracks: evaluate this many songs spread evenly over the split (default: all).
        window_s, overlap_s: refinement windows (see :func:`~ddsp_demucs.inference.refine.refine_vocals`).
        f0_method, compute_f0, n_keep, seed: as :func:`evaluate_model`; kept songs keep an ``excerpt_s``
            excerpt (where the true vocal is loudest) of each signal.

    Returns:
        :class:`EvaluationResults` with protocol ``"tracks"``, one row per song (``start_s`` 0).
    """
    manifest, names, base = _track_source(dataset_manifest_or_dir, split)
    missing = [k for k in ("stems_dir", "musdb_root") if not manifest.get(k)]
    if missing:
        raise DDSPDemucsError(f"the dataset manifest has no {' or '.join(missing)}: cannot find whole songs")
    stems_dir, root = _resolve(manifest["stems_dir"], base), _resolve(manifest["musdb_root"], base)
    musdb_split = {"validation": "valid"}.get(split, split)
    available = {t.name: t for t in musdb_tracks(root, split=None if names is not None else musdb_split)}
    wanted = sorted(names) if names is not None else sorted(available)
    model.eval()
    tracker = f0_tracker(model, f0_method, None)
    fr = float(model.frame_rate)
    scorer = _Scorer(SAMPLE_RATE, fr, tracker=tracker, compute_f0=compute_f0)
    results = EvaluationResults(
        "tracks", _separator_name(manifest), SAMPLE_RATE, fr, model_config=getattr(model, "config", None)
    )
    results.settings = _common_settings(model, "tracks", tracker, compute_f0, seed) | {
        "split": split,
        "n_tracks_requested": n_tracks,
        "window_s": window_s,
        "overlap_s": overlap_s,
        "stems_dir": str(stems_dir),
        "musdb_root": str(root),
    }
    if not wanted:
        raise DDSPDemucsError(f"no {split} songs to evaluate in {root}")
    chosen = [wanted[j] for j in select_indices(len(wanted), n_tracks)]
    keep = {chosen[j] for j in select_indices(len(chosen), n_keep)} if n_keep > 0 else set()
    for index, name in enumerate(tqdm(chosen, desc="evaluating songs", unit="song", disable=not progress)):
        try:
            track = available.get(name)
            if track is None:
                raise InputError(f"{root}: no MUSDB track folder {name!r}")
            target = track.vocals()
            separated, sep_sr = load_audio(stems_dir / name / "vocals.wav", allow_silent=True)
            if sep_sr != SAMPLE_RATE or separated.shape != target.shape:
                raise InputError(
                    f"{stems_dir / name / 'vocals.wav'}: {separated.shape[0]} x {separated.shape[1]} at "
                    f"{sep_sr} Hz, but the true vocals are {target.shape[0]} x {target.shape[1]} at "
                    f"{SAMPLE_RATE} Hz"
                )
        except (InputError, OSError) as exc:
            reason = str(exc) if isinstance(exc, InputError) else f"{exc.filename}: {exc.strerror or exc}"
            results.errors.append((name, reason))
            log.error("song %s not evaluated: %s", name, reason)
            continue
        problem = check_signals(separated, target)
        if problem is not None:
            (results.skipped if problem[0] == "skipped" else results.errors).append((name, problem[1]))
            log.warning("song %s not evaluated: %s", name, problem[1])
            continue
        refined = refine_vocals(
            model,
            separated,
            SAMPLE_RATE,
            window_s=window_s,
            overlap_s=overlap_s,
            f0_method=tracker.method,
            voicing_threshold=tracker.voicing_threshold,
            seed=seed,
            mixture=track.mixture() if model.accompaniment_encoder is not None else None,
        )
        figures, f0 = scorer.score(separated, refined, target)
        status = "ok" if np.all(np.isfinite(refined)) else "failed"
        row = {
            "index": index,
            "track": name,
            "start_s": 0.0,
            "duration_s": target.shape[0] / SAMPLE_RATE,
            "status": status,
            **figures,
        }
        results.rows.append(row)
        if status == "failed":
            results.failed.append((name, "the refined song has non-finite samples"))
            log.error("song %s failed: the refined song has non-finite samples", name)
        if name in keep:
            signals = {"mixture": track.mixture(), "separated": separated, "refined": refined, "target": target}
            results.examples.append(song_excerpt(name, signals, f0, SAMPLE_RATE, fr, row, excerpt_s))
    log_outcome(results)
    return results


def loudest_start(audio: np.ndarray, sample_rate: int, length: int, step_s: float = 0.5) -> int:
    """Start sample of the ``length``-sample excerpt of ``audio`` ``(n, ...)`` with the most energy, searched
    on a ``step_s`` grid (0 when the signal is not longer than ``length``)."""
    n = audio.shape[0]
    if n <= length:
        return 0
    energy = np.square(np.asarray(audio, dtype=np.float64)).reshape(n, -1).sum(axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    starts = np.arange(0, n - length + 1, max(1, int(step_s * sample_rate)))
    return int(starts[np.argmax(cumulative[starts + length] - cumulative[starts])])


def song_excerpt(
    name: str,
    signals: dict[str, np.ndarray],
    f0: dict[str, np.ndarray],
    sample_rate: int,
    frame_rate: float,
    row: dict,
    excerpt_s: float,
) -> ExampleAudio:
    length = int(round(excerpt_s * sample_rate))
    start = loudest_start(signals["target"], sample_rate, length)
    cut = {k: np.ascontiguousarray(v[start : start + length], dtype=np.float32) for k, v in signals.items()}
    f_start, f_len = int(start * frame_rate // sample_rate), int(length * frame_rate // sample_rate)
    return ExampleAudio(
        name,
        start / sample_rate,
        sample_rate,
        frame_rate,
        cut,
        {k: v[f_start : f_start + f_len] for k, v in f0.items()},
        row,
    )


__all__ = [
    "EvaluationResults",
    "ExampleAudio",
    "METRICS",
    "METRIC_KEYS",
    "SONG_METRICS",
    "REGION_NAMES",
    "MetricSpec",
    "check_signals",
    "log_outcome",
    "song_excerpt",
    "evaluate_model",
    "evaluate_tracks",
    "metric_spec",
    "waveform_metrics",
    "track_f0",
    "loudest_start",
    "rms_db",
    "SILENCE_DB",
    "EXCERPT_S",
]
