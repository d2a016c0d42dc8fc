"""The harmonic check after the tracker (:mod:`ddsp_demucs.features.harmonic_check`): harmonic tones whose tracked
F0 is the octave, fifth or fourth above are moved down, tones tracked right are left alone, the separator gate
leaves unsure frames alone, and the pieces agree with direct loops and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from ddsp_demucs.features.harmonic_check import (
    HarmonicCheck,
    check_lower_pitch,
    frame_power,
    local_peaks,
    separator_uncertainty,
    window_length,
)
from ddsp_demucs.features.pitch import F0Tracker

SR, FR = 16000, 100


def harmonic_tone(f0: float, seconds: float = 1.0, first: int = 1, n_harmonics: int = 30, seed: int = 0) -> np.ndarray:
    """Harmonics ``first .. n_harmonics`` of ``f0`` (amplitude 1/k, random phases) below 7 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for k in range(first, n_harmonics + 1):
        if k * f0 < 7000:
            x += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def frames_of(x: np.ndarray) -> int:
    return x.shape[0] * FR // SR


@pytest.mark.parametrize(
    ("true_hz", "tracked_hz", "first"),
    [
        (110.0, 220.0, 1),  # the octave above
        (110.0, 165.0, 1),  # the fifth above
        (120.0, 160.0, 1),  # the fourth above
        (110.0, 220.0, 2),  # the octave above a tone with a missing fundamental
    ],
)
def test_moves_upper_harmonic_errors_down(true_hz, tracked_hz, first):
    x = harmonic_tone(true_hz, first=first)
    f0 = np.full(frames_of(x), tracked_hz, dtype=np.float32)
    f0[:5] = 0.0  # unvoiced frames stay unvoiced
    out = check_lower_pitch(f0, x, SR, FR)
    assert out.dtype == np.float32 and out.shape == f0.shape
    assert np.all(out[:5] == 0.0)
    np.testing.assert_allclose(out[5:], true_hz, rtol=1e-6)


@pytest.mark.parametrize("f0_hz", [98.0, 196.0, 440.0])
def test_leaves_a_tone_tracked_right_alone(f0_hz):
    x = harmonic_tone(f0_hz, seed=1)
    x = x + np.random.default_rng(2).normal(0, 1e-3, x.shape).astype(np.float32)  # a noise floor 34 dB down
    f0 = np.full(frames_of(x), f0_hz, dtype=np.float32)
    np.testing.assert_array_equal(check_lower_pitch(f0, x, SR, FR), f0)


def test_gate_leaves_frames_the_separator_was_unsure_of():
    x = harmonic_tone(110.0)
    f0 = np.full(frames_of(x), 220.0, dtype=np.float32)
    sure = check_lower_pitch(f0, x, SR, FR, mixture=x)  # every bin wholly the vocal's: uncertainty 0
    np.testing.assert_allclose(sure, 110.0)
    unsure = check_lower_pitch(f0, x, SR, FR, mixture=2.0 * x)  # every bin split in half: uncertainty 1
    np.testing.assert_array_equal(unsure, f0)
    with pytest.raises(ValueError, match="mixture must have the vocal's shape"):
        check_lower_pitch(f0, x, SR, FR, mixture=x[:-1])


def test_separator_uncertainty_closed_forms():
    vocal = np.array([[1.0, 4.0], [1.0, 1.0], [2.0, 2.0]])
    mixture = np.array([[1.0, 4.0], [4.0, 4.0], [1.0, 1.0]])  # m = 1; m = 1/2; m clipped to 1
    np.testing.assert_allclose(separator_uncertainty(vocal, mixture), [0.0, 1.0, 0.0])
    # two bins, m = 1 and m = 1/4, weighted by the vocal's power 3 and 1: (3 * 0 + 1 * 0.75) / 4
    np.testing.assert_allclose(separator_uncertainty(np.array([[3.0, 1.0]]), np.array([[3.0, 16.0]])), [0.1875])


def test_local_peaks_match_a_direct_loop():
    rng = np.random.default_rng(3)
    level = rng.normal(size=(4, 700))
    out = local_peaks(level, 0.02)
    for b in range(level.shape[1]):
        w = max(1, int(round(0.02 * b)))
        expected = level[:, max(b - w, 0) : min(b + w, level.shape[1] - 1) + 1].max(axis=1)
        np.testing.assert_array_equal(out[:, b], expected)


def test_frame_power_frames_are_centred_on_the_grid():
    x = np.zeros(SR, dtype=np.float32)
    x[SR // 2] = 1.0  # an impulse at 0.5 s: frame 50's window centre
    n_fft = window_length(SR)
    power = frame_power(x, SR, FR, np.array([50, 40]))
    centre_gain = np.hanning(n_fft)[n_fft // 2] ** 2
    np.testing.assert_allclose(power[0], centre_gain, rtol=1e-9, atol=1e-11)  # flat spectrum at the window's peak
    assert power[1].max() < 1e-3 * centre_gain  # 100 ms away: far out on the window's skirt
    assert window_length(16000) == 2048 and window_length(22050) == 4096 and window_length(44100) == 8192


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="invalid harmonic check"):
        HarmonicCheck(peak_width=0.0)


def test_tracker_runs_the_check_after_the_pitch_and_records_it():
    x = harmonic_tone(110.0, first=2)
    song = x + np.random.default_rng(4).normal(0, 0.02, x.shape).astype(np.float32)
    f0, confidence = F0Tracker("crepe-tiny").track(x, SR, FR)
    on = F0Tracker("crepe-tiny", harmonic_check=True)
    checked, checked_confidence = on.track(x, SR, FR, mixture=song)
    np.testing.assert_array_equal(checked, check_lower_pitch(f0, x, SR, FR, mixture=song))
    np.testing.assert_array_equal(checked_confidence, confidence)
    assert F0Tracker().settings()["harmonic_check"] is False and on.settings()["harmonic_check"] is True


def test_feature_files_record_the_check_and_older_files_stay_current(tmp_path, monkeypatch):
    """The features stage runs the check where the config asks (without the song: every voiced frame), records it,
    and still reuses a file written before the check existed (no ``harmonic_check`` in its meta) when it is off."""
    import ddsp_demucs.features.harmonic_check as harmonic_check
    from ddsp_demucs.core.audio_io import save_audio
    from ddsp_demucs.core.config import Config
    from ddsp_demucs.features import load_features, run_features
    from ddsp_demucs.features.pipeline import save_features

    songs_given = []

    def spy(f0_hz, mono, sample_rate, frame_rate, *, mixture=None, check=HarmonicCheck()):
        songs_given.append(mixture)
        return check_lower_pitch(f0_hz, mono, sample_rate, frame_rate, mixture=mixture, check=check)

    monkeypatch.setattr(harmonic_check, "check_lower_pitch", spy)
    x = harmonic_tone(110.0, seconds=4.5, first=2)
    vocals = tmp_path / "stems" / "sep" / "song" / "vocals.wav"
    save_audio(vocals, x[:, None], SR)
    config = Config()
    config.features.f0_method = "crepe-tiny"
    config.features.harmonic_check = True
    run_features(tmp_path / "stems", "sep", tmp_path / "features", config=config, progress=False)
    checked = load_features(tmp_path / "features" / "sep" / "song.npz")
    assert checked["meta"]["harmonic_check"] is True and songs_given == [None]  # checked, every voiced frame
    f0 = F0Tracker("crepe-tiny").track(x, SR, config.data.frame_rate)[0]
    np.testing.assert_array_equal(checked["f0_hz"], check_lower_pitch(f0, x, SR, config.data.frame_rate))
    config.features.harmonic_check = False
    run_features(
        tmp_path / "stems", "sep", tmp_path / "features", config=config, progress=False
    )  # recomputed without the check
    plain = load_features(tmp_path / "features" / "sep" / "song.npz")
    assert plain["meta"]["harmonic_check"] is False and songs_given == [None]  # not checked again
    np.testing.assert_array_equal(plain["f0_hz"], f0)
    older = {k: v for k, v in plain["meta"].items() if k != "harmonic_check"}
    path = tmp_path / "features" / "sep" / "song.npz"
    save_features(
        path, {k: plain[k] for k in ("f0_hz", "confidence", "loudness_db", "frame_rate", "sample_rate")}, older
    )
    stamp = path.stat().st_mtime_ns
    run_features(tmp_path / "stems", "sep", tmp_path / "features", config=config, progress=False)
    assert path.stat().st_mtime_ns == stamp and "harmonic_check" not in load_features(path)["meta"]
