"""The segment gate: window placement, statistics, thresholds, reasons and the CSV schema."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ddsp_demucs.core.config import GateConfig
from ddsp_demucs.features import SEGMENT_COLUMNS, gate_windows, read_segments_csv, write_segments_csv

FR = 100
THRESHOLDS = {"min_voiced_fraction": 0.4, "min_mean_confidence": 0.5, "min_loudness_db": -45.0}


def features(n_frames, voiced=None, conf=0.9, loud=-20.0):
    f0 = np.zeros(n_frames)
    if voiced is not None:
        f0[voiced] = 200.0
    return {
        "f0_hz": f0,
        "confidence": np.full(n_frames, conf),
        "loudness_db": np.full(n_frames, loud),
        "frame_rate": FR,
    }


def test_window_placement():
    rows = gate_windows(features(1000), 4.0, 1.5, THRESHOLDS, track="a")  # 10 s
    assert [r["start_s"] for r in rows] == [0.0, 1.5, 3.0, 4.5, 6.0]  # 7.5 + 4 > 10
    assert all(r["end_s"] - r["start_s"] == 4.0 and r["track"] == "a" for r in rows)
    assert gate_windows(features(399), 4.0, 1.0, THRESHOLDS) == []  # shorter than one window
    assert len(gate_windows(features(400), 4.0, 1.0, THRESHOLDS)) == 1


def test_statistics_and_acceptance():
    feats = features(800, voiced=slice(0, 300))  # 3 s voiced then 5 s unvoiced
    feats["confidence"][:150] = 0.6
    feats["confidence"][150:300] = 1.0
    feats["loudness_db"][:400] = -10.0
    feats["loudness_db"][400:] = -40.0
    rows = gate_windows(feats, 4.0, 1.0, THRESHOLDS)
    first = rows[0]
    assert first["voiced_fraction"] == pytest.approx(300 / 400)
    assert first["mean_confidence"] == pytest.approx(0.8)  # voiced frames only
    assert first["mean_loudness_db"] == pytest.approx(-10.0)
    assert first["accepted"] and first["reason"] == ""
    # window 1..5 s: frames 100..500, 200 voiced (conf 0.6 x 50, 1.0 x 150), loudness 300 frames -10, 100 -40
    second = rows[1]
    assert second["voiced_fraction"] == pytest.approx(0.5)
    assert second["mean_confidence"] == pytest.approx((50 * 0.6 + 150 * 1.0) / 200)
    expected_db = 10 * np.log10((300 * 10**-1.0 + 100 * 10**-4.0) / 400)
    assert second["mean_loudness_db"] == pytest.approx(expected_db)
    last = rows[-1]  # 4..8 s: nothing voiced
    assert last["voiced_fraction"] == 0 and last["mean_confidence"] == 0
    assert not last["accepted"]
    assert last["reason"] == "voiced_fraction 0.00 < 0.40; mean_confidence 0.00 < 0.50"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"conf": 0.3}, "mean_confidence 0.30 < 0.50"),
        ({"loud": -60.0}, "mean_loudness_db -60.0 < -45.0"),
    ],
)
def test_each_threshold_rejects(change, reason):
    rows = gate_windows(features(400, voiced=slice(None), **change), 4.0, 1.0, THRESHOLDS)
    assert not rows[0]["accepted"] and rows[0]["reason"] == reason


def test_threshold_boundary_is_inclusive_and_config_object_works():
    feats = features(400, voiced=slice(0, 160))  # exactly 0.4
    assert gate_windows(feats, 4.0, 1.0, GateConfig())[0]["accepted"]
    strict = GateConfig(min_voiced_fraction=0.41)
    assert gate_windows(feats, 4.0, 1.0, strict)[0]["reason"] == "voiced_fraction 0.40 < 0.41"


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        gate_windows(features(400), 0.0, 1.0, THRESHOLDS)
    bad = features(400)
    bad["confidence"] = np.zeros(10)
    with pytest.raises(ValueError, match="shapes"):
        gate_windows(bad, 1.0, 1.0, THRESHOLDS)


def test_csv_schema_and_round_trip(tmp_path):
    rows = gate_windows(features(600, voiced=slice(0, 350)), 4.0, 1.0, THRESHOLDS, track="song, one")
    path = write_segments_csv(rows, tmp_path / "accepted_segments.csv")
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    assert (
        tuple(table[0])
        == SEGMENT_COLUMNS
        == ("track", "start_s", "end_s", "voiced_fraction", "mean_confidence", "mean_loudness_db", "accepted", "reason")
    )
    assert len(table) == 1 + len(rows) == 4
    back = read_segments_csv(path)
    assert [r["accepted"] for r in back] == [r["accepted"] for r in rows] == [True, True, False]
    assert back[0]["track"] == "song, one"
    assert back[2]["reason"] == rows[2]["reason"] and back[2]["reason"].startswith("voiced_fraction 0.38")
    assert back[1]["start_s"] == 1.0 and back[1]["end_s"] == 5.0
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file
