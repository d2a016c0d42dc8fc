"""The segment gate: fixed windows over a track's frame features, each accepted or rejected by thresholds.

A window of ``win_s`` seconds starting at ``start_s`` (0, hop_s, 2 hop_s, ... while it fits in the track)
covers frames ``round(start_s * frame_rate)`` to that plus ``round(win_s * frame_rate)`` (exclusive). Per window:

- ``voiced_fraction``: fraction of its frames with ``f0_hz > 0``;
- ``mean_confidence``: mean F0 confidence over its voiced frames (0 when none is voiced);
- ``mean_loudness_db``: the mean power of its frames, in dB: ``10 log10(mean(10 ** (loudness_db / 10)))``.

It is accepted when ``voiced_fraction >= min_voiced_fraction``, ``mean_confidence >= min_mean_confidence`` and
``mean_loudness_db >= min_loudness_db``; otherwise ``reason`` lists every failed test, e.g.
``"voiced_fraction 0.12 < 0.40"``, joined by ``"; "``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ddsp_demucs.core.utils import atomic_path

COLUMNS = ("track", "start_s", "end_s", "voiced_fraction", "mean_confidence", "mean_loudness_db", "accepted", "reason")
THRESHOLD_KEYS = ("min_voiced_fraction", "min_mean_confidence", "min_loudness_db")


def _threshold(thresholds: Any, key: str) -> float:
    value = thresholds[key] if isinstance(thresholds, Mapping) else getattr(thresholds, key)
    return float(value)


def gate_windows(
    features: Mapping[str, Any], win_s: float, hop_s: float, thresholds: Any, *, track: str = ""
) -> list[dict]:
    """Rows (dicts with the keys of :data:`COLUMNS`) for every window of a track, accepted or not.

    Args:
        features: ``f0_hz``, ``confidence``, ``loudness_db`` (each ``(n_frames,)``; f0 in Hz, 0 where unvoiced;
            loudness in dB) and ``frame_rate`` (frames per second).
        win_s, hop_s: window length and hop in seconds (> 0).
        thresholds: a :class:`ddsp_demucs.core.config.GateConfig` or a mapping with ``min_voiced_fraction``,
            ``min_mean_confidence`` and ``min_loudness_db``.
        track: the track name written in each row.

    Returns an empty list when the track is shorter than one window.
    """
    if win_s <= 0 or hop_s <= 0:
        raise ValueError(f"win_s and hop_s must be positive, got {win_s} and {hop_s}")
    limits = {key: _threshold(thresholds, key) for key in THRESHOLD_KEYS}
    frame_rate = float(features["frame_rate"])
    f0 = np.asarray(features["f0_hz"], dtype=np.float64)
    conf = np.asarray(features["confidence"], dtype=np.float64)
    loud = np.asarray(features["loudness_db"], dtype=np.float64)
    if not f0.shape == conf.shape == loud.shape or f0.ndim != 1:
        raise ValueError(
            f"f0_hz, confidence and loudness_db must be equal 1-D shapes, got {f0.shape}, {conf.shape}, {loud.shape}"
        )
    n_frames = f0.shape[0]
    win = int(round(win_s * frame_rate))
    rows = []
    k = 0
    while True:
        start_s = k * hop_s
        first = int(round(start_s * frame_rate))
        if first + win > n_frames or win == 0:
            break
        sl = slice(first, first + win)
        voiced = f0[sl] > 0
        voiced_fraction = float(voiced.mean())
        mean_confidence = float(conf[sl][voiced].mean()) if voiced.any() else 0.0
        mean_loudness_db = float(10.0 * np.log10(np.mean(10.0 ** (loud[sl] / 10.0)) + 1e-30))
        values = {
            "voiced_fraction": voiced_fraction,
            "mean_confidence": mean_confidence,
            "mean_loudness_db": mean_loudness_db,
        }
        failed = []
        for name, key in zip(values, THRESHOLD_KEYS):
            if not values[name] >= limits[key]:
                fmt = ".1f" if name == "mean_loudness_db" else ".2f"
                failed.append(f"{name} {values[name]:{fmt}} < {limits[key]:{fmt}}")
        rows.append(
            {
                "track": track,
                "start_s": start_s,
                "end_s": start_s + win_s,
                **values,
                "accepted": not failed,
                "reason": "; ".join(failed),
            }
        )
        k += 1
    return rows


def write_segments_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write gate rows atomically as CSV with the header :data:`COLUMNS`; ``accepted`` is ``True``/``False``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow(
                    [
                        row["track"],
                        f"{row['start_s']:.3f}",
                        f"{row['end_s']:.3f}",
                        f"{row['voiced_fraction']:.4f}",
                        f"{row['mean_confidence']:.4f}",
                        f"{row['mean_loudness_db']:.2f}",
                        "True" if row["accepted"] else "False",
                        row["reason"],
                    ]
                )
    return path


def read_segments_csv(path: str | os.PathLike) -> list[dict]:
    """Read an ``accepted_segments.csv`` back into typed rows (floats, bool ``accepted``)."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for row in reader:
            for key in ("start_s", "end_s", "voiced_fraction", "mean_confidence", "mean_loudness_db"):
                row[key] = float(row[key])
            row["accepted"] = row["accepted"] == "True"
            rows.append(row)
    return rows
