"""Statistics of an evaluation: per-metric medians, means, the median improvement with a bootstrap interval,
counts improved and worsened (``summary.json``), the per-example and per-track tables, and a plain verdict.

Improvements are signed so that positive means better for every metric (refined - baseline where higher is
better, baseline - refined where lower is better). Statistics use the examples where both figures are finite;
examples whose refined output failed (non-finite) are counted in ``n_failed`` and listed, not scored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ddsp_demucs.evaluation.common import finite_or_none, write_csv
from ddsp_demucs.evaluation.core import EvaluationResults, metric_spec
from ddsp_demucs.separation.demucs import FALLBACK_NAME

BOOTSTRAP_MAX_ELEMENTS = 4_000_000  # resampled values held at once (chunks of an even number of rows)


def bootstrap_median_ci(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` ``(n,)`` (non-finite values ignored).

    ``n_boot`` resamples of ``n`` values with replacement, indices drawn by ``np.random.default_rng(seed)
    .integers(0, n, size=(n_boot, n))`` (in chunks of rows when large, which draws the same indices), the
    median of each, and their ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles (numpy's linear method).
    ``(nan, nan)`` without finite values.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}")
    rng = np.random.default_rng(seed)
    rows = max(2, (BOOTSTRAP_MAX_ELEMENTS // x.size) // 2 * 2)  # even: whole 64-bit draws per chunk
    medians = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        medians[start : start + k] = np.median(x[rng.integers(0, x.size, size=(k, x.size))], axis=1)
    lo, hi = np.percentile(medians, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def metric_summary(results: EvaluationResults, key: str, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """The statistics of one metric (see :func:`summarize`), or None when no example has both figures."""
    spec = metric_spec(key)
    base, ref = results.values(key, "baseline"), results.values(key, "refined")
    valid = np.isfinite(base) & np.isfinite(ref)
    if not valid.any():
        return None
    base, ref, gain = base[valid], ref[valid], results.improvements(key)[valid]
    lo, hi = bootstrap_median_ci(gain, n_boot=n_boot, seed=seed)
    return {
        "label": spec.label,
        "unit": spec.unit,
        "higher_is_better": spec.higher_is_better,
        "n": int(valid.sum()),
        "baseline_median": float(np.median(base)),
        "refined_median": float(np.median(ref)),
        "baseline_mean": float(np.mean(base)),
        "refined_mean": float(np.mean(ref)),
        "improvement_median": float(np.median(gain)),
        "improvement_mean": float(np.mean(gain)),
        "improvement_ci95": [lo, hi],
        "n_improved": int(np.sum(gain > 0)),
        "n_worsened": int(np.sum(gain < 0)),
    }


def summarize(results: EvaluationResults, n_boot: int = 2000, seed: int = 0) -> dict:
    """``summary.json`` of an evaluation.

    Top level: ``separator``, ``separator_is_fallback``, ``protocol`` (``"windows"`` or ``"tracks"``),
    ``n_examples`` (examples scored, failures included), ``n_failed``, ``n_skipped``, ``n_errors`` and their
    ``failed`` / ``skipped`` / ``errors`` lists (``{"example", "reason"}``), ``sample_rate``, ``settings``,
    ``bootstrap`` (how the intervals were made), ``metrics`` (the keys below) and ``metrics_without_values``.
    Per metric key (``"si_sdr"``, ``"sdr"``, ``"spectral_convergence"``, ``"log_spectral_distance"``,
    ``"mrstft"``, ``"raw_pitch_accuracy"``, ...): ``{"label", "unit", "higher_is_better", "n",
    "baseline_median", "refined_median", "baseline_mean", "refined_mean", "improvement_median",
    "improvement_mean", "improvement_ci95": [lo, hi], "n_improved", "n_worsened"}`` (improvement positive =
    better; the interval is a percentile bootstrap of the median improvement, ``n_boot`` resamples, ``seed``).
    Non-finite numbers are written as null.
    """

    out: dict = {
        "separator": results.separator,
        "separator_is_fallback": results.separator == FALLBACK_NAME,
        "protocol": results.protocol,
        "n_examples": len(results.rows),
        "n_failed": len(results.failed),
        "n_skipped": len(results.skipped),
        "n_errors": len(results.errors),
        "failed": [{"example": e, "reason": r} for e, r in results.failed],
        "skipped": [{"example": e, "reason": r} for e, r in results.skipped],
        "errors": [{"example": e, "reason": r} for e, r in results.errors],
        "sample_rate": results.sample_rate,
        "settings": results.settings,
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "statistic": "median of the paired improvements",
            "interval": "percentile, 95 %",
        },
    }
    measured, without = [], []
    for key in results.metric_keys:
        stats = metric_summary(results, key, n_boot=n_boot, seed=seed)
        if stats is None:
            without.append(key)
            continue
        out[key] = stats
        measured.append(key)
    out["metrics"], out["metrics_without_values"] = measured, without
    return finite_or_none(out)


def _signed(value: float, unit: str) -> str:
    return f"{value:+.2f}{' ' + unit if unit else ''}"


def verdict(summary: dict, metric: str | None = None) -> str:
    """One plain sentence: do the refined vocals beat the separator on ``metric`` (default SI-SDR; of the mono
    downmix for the songs protocol) (median improvement and its 95 % interval: above 0 = beat, below 0 = worse,
    containing 0 = no clear difference), plus failures."""
    protocol = summary.get("protocol")
    metric = metric or ("si_sdr_mono" if protocol == "songs" else "si_sdr")
    unit = {"windows": "windows", "tracks": "songs", "songs": "songs"}.get(protocol, "examples")
    m = summary.get(metric)
    sep = summary.get("separator", "the separator")
    if not m:
        sentence = f"No {unit} could be scored on {metric}, so there is no comparison with the separator ({sep})."
    else:
        lo, hi = m["improvement_ci95"]
        if lo is not None and lo > 0:
            head = f"The refined vocals beat the separator ({sep})"
        elif hi is not None and hi < 0:
            head = f"The refined vocals are worse than the separator ({sep})"
        else:
            head = f"The refined vocals do not clearly beat the separator ({sep}): the interval includes 0"
        ci = "n/a" if lo is None else f"{_signed(lo, m['unit'])} to {_signed(hi, m['unit'])}"
        sentence = (
            f"{head}; median {m['label']} improvement {_signed(m['improvement_median'], m['unit'])} "
            f"(95 % CI {ci}) over {m['n']} {unit}, {m['n_improved']} improved and {m['n_worsened']} "
            "worsened."
        )
    if summary.get("n_failed"):
        sentence += f" {summary['n_failed']} {unit} failed (non-finite refined output) and are not in the figures."
    return sentence


# ------------------------------------------------------------------------------------------------- tables
def example_columns(results: EvaluationResults) -> list[str]:
    cols = ["index", "track"] + (["singer"] if any("singer" in r for r in results.rows) else [])
    cols += ["start_s", "duration_s", "status"]
    for key in results.metric_keys:
        cols += [f"{key}_baseline", f"{key}_refined", f"{key}_improvement"]
    return cols


def write_examples_csv(results: EvaluationResults, path: str | os.PathLike) -> Path:
    """One row per example: index, track, start_s, duration_s, status and every metric's baseline, refined
    and improvement (positive = better); empty where undefined. Written atomically."""
    rows = []
    for row, *gains in zip(results.rows, *(results.improvements(k) for k in results.metric_keys)):
        rows.append({**row, **{f"{k}_improvement": float(g) for k, g in zip(results.metric_keys, gains)}})
    write_csv(path, rows, example_columns(results))
    return Path(path)


def track_table(results: EvaluationResults) -> list[dict]:
    """Per track (in first-seen order): ``track``, ``n_examples``, ``n_failed`` and per metric the median
    baseline, refined and improvement over its examples with both figures finite (NaN when none)."""
    order: dict[str, list[int]] = {}
    for i, row in enumerate(results.rows):
        order.setdefault(row["track"], []).append(i)
    gains = {k: results.improvements(k) for k in results.metric_keys}
    sides = {(k, s): results.values(k, s) for k in results.metric_keys for s in ("baseline", "refined")}
    table = []
    for track, idx in order.items():
        row: dict = {
            "track": track,
            "n_examples": len(idx),
            "n_failed": sum(results.rows[i]["status"] != "ok" for i in idx),
        }
        for k in results.metric_keys:
            b, r = sides[(k, "baseline")][idx], sides[(k, "refined")][idx]
            valid = np.isfinite(b) & np.isfinite(r)
            for name, v in (("baseline", b), ("refined", r), ("improvement", gains[k][idx])):
                row[f"{k}_{name}_median"] = float(np.median(v[valid])) if valid.any() else math.nan
        table.append(row)
    return table


def write_tracks_csv(results: EvaluationResults, path: str | os.PathLike) -> Path:
    """:func:`track_table` as CSV, written atomically."""
    cols = ["track", "n_examples", "n_failed"] + [
        f"{k}_{s}_median" for k in results.metric_keys for s in ("baseline", "refined", "improvement")
    ]
    write_csv(path, track_table(results), cols)
    return Path(path)


__all__ = [
    "bootstrap_median_ci",
    "metric_summary",
    "summarize",
    "verdict",
    "track_table",
    "write_examples_csv",
    "write_tracks_csv",
]
