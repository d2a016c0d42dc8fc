"""bench/quality.py's figures: the per-level summary, the two bootstrap intervals, the targets."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_model

import bench.quality as quality
from bench.model import card, harmful_levels, same_weights
from bench.quality import LEVELS, RECOMMENDED, TRUE_LEVEL, Level, singer_bootstrap_median_ci, summarise, targets
from ddsp_demucs.evaluation.summary import bootstrap_median_ci


def rows(changes, singers, base=5.0):
    return [
        {
            "song": f"s{i}",
            "singer": singer,
            "baseline": {"si_sdr": base, "err_voiced": -10.0, "err_unvoiced": -20.0, "err_silent": -30.0},
            "refined": {"si_sdr": base + c, "err_voiced": -10.0 - c, "err_unvoiced": -20.0, "err_silent": -31.0},
        }
        for i, (c, singer) in enumerate(zip(changes, singers))
    ]


def test_summary_counts_medians_and_regions():
    changes = [1.0, 2.0, -0.5, 3.0, 0.0]
    out = summarise(rows(changes, ["a", "a", "b", "b", "c"]), Level("x", "oracle", "bands"))
    assert out["si_sdr_change_median"] == 1.0 and out["input_si_sdr_median"] == 5.0
    assert (out["n_better"], out["n_worse"], out["n_songs"], out["n_singers"]) == (3, 1, 5, 3)
    assert out["fraction_worse"] == 0.2 and out["worst_change"] == -0.5
    assert out["error_reduction_median_db"] == {"voiced": 1.0, "unvoiced": 0.0, "silent": 1.0}
    for key in ("si_sdr_change_ci95_songs", "si_sdr_change_ci95_singers"):
        lo, hi = out[key]
        assert -0.5 <= lo <= 1.0 <= hi <= 3.0


def test_true_level_reports_the_refined_score_only():
    out = summarise(rows([0.0, 0.0], ["a", "b"], base=80.0), Level(TRUE_LEVEL, None, "true"))
    assert out["refined_si_sdr_median"] == 80.0 and "si_sdr_change_median" not in out


def test_resampling_singers_widens_the_interval_when_singers_differ():
    """Two singers whose songs all change alike (+3 and -1): resampled by song, the median stays near the middle;
    resampled by singer, half the resamples hold one singer only, so the interval spans both values."""
    values = np.array([3.0] * 10 + [-1.0] * 10)
    groups = np.array(["a"] * 10 + ["b"] * 10)
    by_song = bootstrap_median_ci(values)
    by_singer = singer_bootstrap_median_ci(values, groups)
    assert by_singer[0] == pytest.approx(-1.0) and by_singer[1] == pytest.approx(3.0)
    assert by_singer[1] - by_singer[0] >= by_song[1] - by_song[0]


def entry(change, worse, input_db=5.0, true_db=40.0):
    return {
        lv.name: (
            {"refined_si_sdr_median": true_db}
            if lv.separator is None
            else {"si_sdr_change_median": change, "fraction_worse": worse, "input_si_sdr_median": input_db}
        )
        for lv in LEVELS
    }


def test_targets_follow_the_issue():
    good = {RECOMMENDED: entry(2.5, 0.05), "demo": entry(0.1, 0.2), "comb": entry(1.0, 0.0)}
    assert all(targets(good).values())
    bad = {RECOMMENDED: entry(1.0, 0.15, true_db=20.0), "demo": entry(-0.1, 0.2), "comb": entry(3.0, 0.0)}
    assert not any(targets(bad).values())


def test_feature_overrides_give_systems_their_own_datasets(tmp_path, monkeypatch):
    overrides = ("training.max_steps=2000", "features.f0_method=crepe-separated", "model.ambiguity_gate=inference")
    assert quality.feature_overrides(overrides) == ("features.f0_method=crepe-separated",)
    assert quality.feature_overrides(("training.max_steps=2000",)) == ()
    built = []

    def fake_separated_dataset(config, separator, corpus, stems, features, dataset):
        built.append((config.features.f0_method, features.name, dataset.name))
        return dataset

    monkeypatch.setattr(quality, "OUT", tmp_path)
    monkeypatch.setattr("bench.real_singing.separated_dataset", fake_separated_dataset)

    class Separator:
        name = "oracle-bands4"

    quality.separator_dataset(Separator(), tmp_path / "corpus")
    quality.separator_dataset(Separator(), tmp_path / "corpus", quality.feature_overrides(overrides))
    assert built[0][0] != "crepe-separated"  # the demo config's own tracker
    assert built == [
        (built[0][0], "features", "oracle-bands4"),
        ("crepe-separated", "features_f0_method-crepe-separated", "oracle-bands4_f0_method-crepe-separated"),
    ]


def test_make_model_ships_only_a_harmless_model_and_says_where_it_was_measured():
    levels = [Level("fallback", "fallback", "fallback"), Level("smooth_low", "x", "smooth"), *LEVELS[2:4]]
    figures = {
        lv.name: summarise(rows([1.0, 2.0, 0.5], ["a", "b", "c"], base=b), lv) for lv, b in zip(levels, (0, 9, 6, 12))
    }
    figures[TRUE_LEVEL] = summarise(rows([0.0], ["a"], base=40.0), Level(TRUE_LEVEL, None, "true"))
    assert harmful_levels(figures) == []
    manifest = {"singers": {"train": ["p", "q"], "validation": ["r"], "test": ["a", "b", "c"]}}
    extra = card(figures, manifest, {"code_version": {"package": "1"}})
    assert "+1.00 dB at the fallback, +1.00 dB at 9.0 dB input" in extra["summary"]  # smooth_low
    assert (
        "CC BY-NC-SA 4.0" in extra["licence"]
        and extra["figures"] is figures
        and extra["training_singers"] == ["p", "q"]
    )
    figures["bands16"] = summarise(rows([1.0, -0.5, 0.5], ["a", "b", "c"]), LEVELS[3])  # one song of three worse
    assert harmful_levels(figures) == ["bands16: 1 of 3 songs worse, median +0.50 dB"]
    assert same_weights(tiny_model(seed=0), tiny_model(seed=0)) and not same_weights(
        tiny_model(seed=0), tiny_model(seed=1)
    )


def test_refiner_key_follows_the_checkpoint_and_the_fine_tuned_tracker_weights(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from safetensors.torch import load_file, save_file

    from ddsp_demucs.core.utils import file_sha256
    from ddsp_demucs.features import crepe

    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"weights of a refiner")
    weights = tmp_path / "crepe_separated_tiny.safetensors"
    weights.write_bytes(crepe.SEPARATED_WEIGHTS.read_bytes())
    monkeypatch.setattr(crepe, "SEPARATED_WEIGHTS", weights)

    tiny = SimpleNamespace(config={"features": {"f0_method": "crepe-tiny"}})
    assert quality.refiner_key(checkpoint, tiny) == file_sha256(checkpoint)[:16]  # keys stored before stay valid
    separated = SimpleNamespace(config={"features": {"f0_method": "crepe-separated"}})
    before = quality.refiner_key(checkpoint, separated)
    assert before == f"{file_sha256(checkpoint)[:16]}-{file_sha256(weights)[:16]}"
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in load_file(weights).items()}, str(weights))
    assert quality.refiner_key(checkpoint, separated) not in (before, file_sha256(checkpoint)[:16])
