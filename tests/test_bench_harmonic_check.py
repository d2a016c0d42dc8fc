"""bench/harmonic_check.py's sweep and choice: frames moved wrong -> right and right -> wrong per setting, and the
setting chosen only where it corrects frames without a net loss anywhere."""

from __future__ import annotations

import numpy as np

import bench.harmonic_check as harmonic_check


def test_right_frames_is_within_50_cents_of_a_voiced_reference():
    reference = np.array([220.0, 220.0, 220.0, 0.0, 220.0])
    tracked = np.array([220.0 * 2 ** (49 / 1200), 220.0 * 2 ** (51 / 1200), 0.0, 220.0, 110.0])
    np.testing.assert_array_equal(harmonic_check.right_frames(tracked, reference), [True, False, False, False, False])


def evidence(f0_hz: np.ndarray, contrast: np.ndarray) -> dict:
    """Measurements of voiced frames ``f0_hz`` whose octave candidate has ``contrast`` (the others none)."""
    n = f0_hz.size
    contrasts = np.stack([contrast, np.full(n, -50.0), np.full(n, -50.0)], axis=1)
    return {
        "f0_hz": f0_hz.astype(np.float32),
        "frames": np.arange(n),
        "contrast": contrasts,
        "strength": np.zeros((n, 3)),
        "uncertainty": np.zeros(n),
    }


def test_sweep_counts_frames_fixed_and_broken_at_each_setting(monkeypatch):
    monkeypatch.setattr(harmonic_check, "GRID", {"min_contrast_db": (5.0, 20.0)})
    # frame 0: read an octave too high, strong lower harmonics; frame 1: right, weaker ones; frame 2: unvoiced label
    ev = evidence(np.array([440.0, 220.0, 220.0]), np.array([15.0, 8.0, 30.0]))
    reference = np.array([220.0, 220.0, 0.0])
    rows = harmonic_check.sweep([ev], [reference])
    assert [(r["fixed"], r["broken"]) for r in rows] == [(1, 1), (0, 0)]  # contrast > 5: both move; > 20: neither
    assert all(r["voiced"] == 2 and r["right_before"] == 1 for r in rows)


def test_choice_needs_a_net_gain_and_no_net_loss_anywhere(monkeypatch):
    monkeypatch.setattr(harmonic_check, "GRID", {"min_contrast_db": (3.0, 6.0, 10.0)})

    def rows(*fixed_broken):
        return [{"min_contrast_db": t, "fixed": f, "broken": b} for t, (f, b) in zip((3.0, 6.0, 10.0), fixed_broken)]

    choice = {"a": rows((9, 1), (5, 0), (1, 0)), "b": rows((0, 0), (2, 1), (0, 0))}
    assert harmonic_check.choose(choice, {"c": rows((0, 0), (0, 0), (0, 0))}) == {"min_contrast_db": 3.0}
    assert harmonic_check.choose(choice, {"c": rows((0, 3), (0, 0), (0, 0))}) == {"min_contrast_db": 6.0}
    nothing = {"a": rows((0, 0), (0, 1), (0, 0))}
    assert harmonic_check.choose(nothing, {}) is None  # no setting corrects a frame: the check stays off
