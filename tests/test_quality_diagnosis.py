"""The quality diagnosis' frame bookkeeping: kinds of frames partition the song; the error shares add up."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality_diagnosis import FRAME_KINDS, error_change_by_frames, frame_kinds


def test_frame_kinds_partition_the_frames():
    reference = np.array([200.0, 200.0, 200.0, 0.0, 0.0, 200.0])
    tracked = np.array([201.0, 400.0, 0.0, 150.0, 0.0, 215.0])  # 215 Hz is 125 cents sharp
    kinds = frame_kinds(reference, tracked)
    assert tuple(kinds) == FRAME_KINDS
    assert np.array_equal(sum(m.astype(int) for m in kinds.values()), np.ones(6, dtype=int))
    assert kinds["voiced_tracked"].nonzero()[0].tolist() == [0]
    assert kinds["voiced_wrong_f0"].nonzero()[0].tolist() == [1, 5]
    assert kinds["voiced_missed"].nonzero()[0].tolist() == [2]
    assert kinds["false_alarm"].nonzero()[0].tolist() == [3]
    assert kinds["unvoiced"].nonzero()[0].tolist() == [4]


def test_error_change_shares_add_up_to_the_whole_change():
    rng = np.random.default_rng(0)
    target = rng.standard_normal(4000)
    separated = target + 0.3 * rng.standard_normal(4000)
    refined = target + 0.2 * rng.standard_normal(4000)
    kinds = frame_kinds(np.tile([200.0, 0.0], 20), np.tile([200.0, 100.0], 20))
    change = error_change_by_frames(separated, refined, target, kinds, samples_per_frame=100)

    def error(x):
        return float(((x - (target @ x) / (target @ target) * target) ** 2).sum())

    assert sum(change.values()) == pytest.approx(error(refined) / error(separated) - 1.0, rel=1e-9)
    assert change["voiced_tracked"] < 0 and change["false_alarm"] < 0  # less error where the refinement is cleaner
    assert change["voiced_missed"] == 0.0 and change["unvoiced"] == 0.0  # no such frames
