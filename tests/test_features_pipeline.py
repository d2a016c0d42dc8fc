"""Per-track feature files, skip on re-run, bad inputs and the `features` command end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.core.config import Config
from ddsp_demucs.features import (
    FEATURE_KEYS,
    SEGMENT_COLUMNS,
    compute_features,
    load_features,
    read_segments_csv,
    run_features,
)
from ddsp_demucs.features.pipeline import save_features

SR = 22050


def sung_note(seconds: float, f0: float = 220.0, gap_s: float = 0.0) -> np.ndarray:
    """A harmonic tone with vibrato, silent for the last ``gap_s`` seconds, (n, 2) stereo float32."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
    if gap_s:
        tone[t >= seconds - gap_s] = 0.0
    return np.stack([tone, tone], axis=1).astype(np.float32)


def small_config(**gate) -> Config:
    config = Config()
    config.data.win_s, config.data.hop_s = 1.0, 0.5
    for key, value in gate.items():
        setattr(config.gate, key, value)
    return config


def write_vocals(stems, track, audio):
    folder = stems / "sep" / track
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.wav", audio, SR, subtype="FLOAT")
    return folder / "vocals.wav"


def test_compute_features_shapes_and_values():
    audio = sung_note(1.0)
    feats = compute_features(audio, SR, Config())
    n_frames = audio.shape[0] * 250 // SR
    for key in FEATURE_KEYS:
        assert feats[key].shape == (n_frames,) and feats[key].dtype == np.float32, key
    inner = slice(20, -20)
    assert np.all(np.abs(1200 * np.log2(feats["f0_hz"][inner] / 220.0)) < 40)  # vibrato +-17 cents
    assert feats["frame_rate"] == 250 and feats["sample_rate"] == SR


def test_feature_files_csv_and_skip_on_rerun(tmp_path):
    stems, out = tmp_path / "stems", tmp_path / "features"
    write_vocals(stems, "song_a", sung_note(3.0, gap_s=1.5))
    vocals_b = write_vocals(stems, "song_b", sung_note(2.0, f0=330.0))
    config = small_config()
    report = run_features(stems, "sep", out, config, progress=False)
    assert sorted(report.computed) == ["song_a", "song_b"] and not report.skipped
    feats = load_features(out / "sep" / "song_a.npz")
    assert feats["f0_hz"].shape == (3 * SR * 250 // SR,)
    assert feats["meta"]["f0_method"] == "crepe-tiny" and len(feats["meta"]["input_sha256"]) == 64

    rows = read_segments_csv(out / "sep" / "accepted_segments.csv")
    assert [r["track"] for r in rows] == ["song_a"] * 5 + ["song_b"] * 3
    by_start = {r["start_s"]: r for r in rows if r["track"] == "song_a"}
    assert by_start[0.0]["accepted"] and by_start[0.5]["accepted"]  # fully sung
    assert not by_start[2.0]["accepted"]  # the silent last second
    assert "voiced_fraction" in by_start[2.0]["reason"] and "mean_loudness_db" in by_start[2.0]["reason"]

    mtime = os.stat(out / "sep" / "song_a.npz").st_mtime_ns
    again = run_features(stems, "sep", out, config, progress=False)
    assert again.computed == [] and sorted(again.reused) == ["song_a", "song_b"]
    assert os.stat(out / "sep" / "song_a.npz").st_mtime_ns == mtime
    assert read_segments_csv(out / "sep" / "accepted_segments.csv") == rows

    # a file of an earlier version, which also held three spectral features nothing read, loads and is reused
    with np.load(out / "sep" / "song_a.npz") as data:
        arrays = {key: data[key] for key in data.files}
    spectral = {key: np.zeros_like(arrays["f0_hz"]) for key in ("centroid_hz", "flatness", "harmonic_ratio")}
    np.savez(out / "sep" / "song_a.npz", **arrays, **spectral)
    assert "song_a" in run_features(stems, "sep", out, config, progress=False).reused
    assert np.array_equal(load_features(out / "sep" / "song_a.npz")["f0_hz"], arrays["f0_hz"])

    sf.write(vocals_b, sung_note(2.0, f0=250.0), SR, subtype="FLOAT")  # changed input -> recomputed
    config.features.voicing_threshold = 0.6  # changed parameter -> recomputed
    third = run_features(stems, "sep", out, config, progress=False)
    assert sorted(third.computed) == ["song_a", "song_b"]

    # a file written before the CREPE hop was recorded was made at 160 samples: reused at 160, not at 320
    feats = load_features(out / "sep" / "song_a.npz")
    meta = {k: v for k, v in feats["meta"].items() if k not in ("crepe_hop", "frame_rate", "sample_rate")}
    save_features(out / "sep" / "song_a.npz", feats, meta)
    assert run_features(stems, "sep", out, config, progress=False).computed == []
    config.features.crepe_hop = 320  # the CREPE hop is a parameter of the file too
    fourth = run_features(stems, "sep", out, config, progress=False)
    assert sorted(fourth.computed) == ["song_a", "song_b"]
    assert load_features(out / "sep" / "song_a.npz")["meta"]["crepe_hop"] == 320


def test_features_of_a_fine_tuned_tracker_are_remade_when_its_weights_change(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from ddsp_demucs.features import crepe
    from ddsp_demucs.features.pipeline import feature_params

    weights = tmp_path / "crepe_separated_tiny.safetensors"
    weights.write_bytes(crepe.SEPARATED_WEIGHTS.read_bytes())
    monkeypatch.setattr(crepe, "SEPARATED_WEIGHTS", weights)
    crepe.load_crepe.cache_clear()
    stems, out = tmp_path / "stems", tmp_path / "features"
    write_vocals(stems, "song_a", sung_note(1.0))
    config = small_config()
    config.features.f0_method = "crepe-separated"
    first = feature_params(config)["f0_weights"]
    assert run_features(stems, "sep", out, config, progress=False).computed == ["song_a"]
    assert run_features(stems, "sep", out, config, progress=False).reused == ["song_a"]
    state = load_file(weights)
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}, str(weights))
    crepe.load_crepe.cache_clear()  # another training of the tracker, installed
    assert feature_params(config)["f0_weights"] != first
    assert run_features(stems, "sep", out, config, progress=False).computed == ["song_a"]
    assert load_features(out / "sep" / "song_a.npz")["meta"]["f0_weights"] == feature_params(config)["f0_weights"]
    crepe.load_crepe.cache_clear()

    # a file written before the weights were recorded: which weights made it is unknown, so it is remade
    feats = load_features(out / "sep" / "song_a.npz")
    save_features(out / "sep" / "song_a.npz", feats, {k: v for k, v in feats["meta"].items() if k != "f0_weights"})
    assert run_features(stems, "sep", out, config, progress=False).computed == ["song_a"]


def test_bad_inputs_are_skipped_and_listed(tmp_path, caplog):
    stems, out = tmp_path / "stems", tmp_path / "features"
    write_vocals(stems, "good", sung_note(1.5))
    write_vocals(stems, "silent", np.zeros((SR * 2, 2), np.float32))
    write_vocals(stems, "short", sung_note(0.5))
    nan = sung_note(1.5)
    nan[100] = np.nan
    write_vocals(stems, "nan", nan)
    (stems / "sep" / "corrupt").mkdir()
    (stems / "sep" / "corrupt" / "vocals.wav").write_bytes(b"RIFF not really a wave file")
    (stems / "sep" / "missing").mkdir()
    code = cli_main(
        [
            "features",
            "--stems-dir",
            str(stems),
            "--separator",
            "sep",
            "--out",
            str(out),
            "data.win_s=1.0",
            "data.hop_s=0.5",
        ]
    )
    assert code == 1
    rows = read_segments_csv(out / "sep" / "accepted_segments.csv")
    assert {r["track"] for r in rows} == {"good"}
    assert sorted(p.name for p in (out / "sep").glob("*.npz")) == ["good.npz"]
    err = caplog.text
    for track, problem in [
        ("silent", "silent"),
        ("short", "too short"),
        ("nan", "NaN"),
        ("corrupt", "cannot decode"),
        ("missing", "not found"),
    ]:
        assert any(f"{track}/vocals.wav" in line and problem in line for line in err.splitlines()), track


def test_sharded_run_then_gate_only(tmp_path):
    stems, out = tmp_path / "stems", tmp_path / "features"
    for i in range(3):
        write_vocals(stems, f"t{i}", sung_note(1.0, f0=200.0 + 50 * i))
    config = small_config()
    first = run_features(stems, "sep", out, config, num_shards=2, shard_index=0, progress=False)
    assert first.computed == ["t0", "t2"] and first.segments_csv is None
    assert not (out / "sep" / "accepted_segments.csv").exists()
    gate = run_features(stems, "sep", out, config, gate_only=True, progress=False)
    assert gate.skipped and "t1.npz" in gate.skipped[0][1]  # shard 1 has not run yet
    run_features(stems, "sep", out, config, num_shards=2, shard_index=1, progress=False)
    config.gate.min_voiced_fraction = 1.01  # re-gate with a stricter threshold, no recomputation
    gate = run_features(stems, "sep", out, config, gate_only=True, progress=False)
    assert not gate.skipped and gate.computed == [] and gate.n_windows == 3 and gate.n_accepted == 0
    with open(gate.segments_csv) as fh:
        assert fh.readline().strip() == ",".join(SEGMENT_COLUMNS)


def test_unknown_separator_names_the_ones_found(tmp_path):
    write_vocals(tmp_path, "x", sung_note(1.0))
    with pytest.raises(Exception, match="separators found: sep"):
        run_features(tmp_path, "htdemucs", tmp_path / "out", small_config(), progress=False)


def test_unknown_f0_method_in_config_is_one_clear_error(tmp_path):
    from ddsp_demucs import DDSPDemucsError

    write_vocals(tmp_path, "x", sung_note(1.0))
    config = small_config()
    config.features.f0_method = "yin"
    with pytest.raises(DDSPDemucsError, match="features.f0_method 'yin' is not one of crepe-tiny"):
        run_features(tmp_path, "sep", tmp_path / "out", config, progress=False)


def test_crepe_hop_of_the_config_reaches_the_tracker():
    """``features.crepe_hop`` is the hop the features are tracked with: the same F0 as ``extract_f0`` at that hop."""
    from ddsp_demucs.features import extract_f0

    audio, config = sung_note(1.0), Config()
    config.features.crepe_hop = 480
    feats = compute_features(audio, SR, config)
    expected, _ = extract_f0(audio, SR, frame_rate=250, crepe_hop=480)
    default, _ = extract_f0(audio, SR, frame_rate=250)
    np.testing.assert_array_equal(feats["f0_hz"], expected)
    assert not np.array_equal(expected, default)


def test_bad_crepe_hop_in_config_is_one_clear_error(tmp_path):
    from ddsp_demucs import DDSPDemucsError

    write_vocals(tmp_path, "x", sung_note(1.0))
    config = small_config()
    config.features.crepe_hop = 0
    with pytest.raises(DDSPDemucsError, match="features.crepe_hop must be a positive number of samples, got 0"):
        run_features(tmp_path, "sep", tmp_path / "out", config, progress=False)
