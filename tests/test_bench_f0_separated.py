"""bench/f0_separated.py's training songs: one version per separator asked for, the true vocal first."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import bench.f0_separated as f0_separated
from ddsp_demucs.core.audio_io import save_audio
from ddsp_demucs.data import SAMPLE_RATE


def song(tmp_path, separators: tuple[str, ...]):
    rng = np.random.default_rng(0)
    vocals = (0.1 * rng.standard_normal((SAMPLE_RATE, 2))).astype(np.float32)
    for k, separator in enumerate(separators):
        save_audio(tmp_path / "stems" / separator / "song" / "vocals.wav", vocals * (k + 2), SAMPLE_RATE)
    labels = {"song": {"pitch_hz": np.full(101, 220.0), "f0_hz": np.r_[np.zeros(50), np.full(51, 220.0)]}}
    return SimpleNamespace(name="song", vocals=lambda: vocals), labels


def test_training_songs_hold_the_true_vocal_and_each_separators_version(tmp_path, monkeypatch):
    monkeypatch.setattr(f0_separated, "QUALITY", tmp_path)
    separators = ("fallback", "htdemucs_half_here")
    track, labels = song(tmp_path, separators)
    (out,) = f0_separated.tracker_songs([track], labels, separators)
    assert out.versions.shape[0] == 3  # the true vocal, then one per separator, in order
    ratios = np.abs(out.versions[1:]).max(axis=1) / np.abs(out.versions[0]).max()
    np.testing.assert_allclose(ratios, [2.0, 3.0], rtol=1e-3)
    assert out.voiced.sum() == 51 and np.allclose(out.cents, 1200 * np.log2(22.0))


def test_a_missing_separators_stem_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(f0_separated, "QUALITY", tmp_path)
    track, labels = song(tmp_path, ("fallback",))
    with pytest.raises(SystemExit, match="htdemucs_half_here/song/vocals.wav not found"):
        f0_separated.tracker_songs([track], labels, ("fallback", "htdemucs_half_here"))


def test_training_songs_carry_their_accompaniment_for_the_mixture_ablation(tmp_path, monkeypatch):
    monkeypatch.setattr(f0_separated, "QUALITY", tmp_path)
    track, labels = song(tmp_path, ("fallback",))
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    accompaniment = np.repeat((0.2 * np.sin(2 * np.pi * 440.0 * t))[:, None], 2, axis=1).astype(np.float32)
    track.mixture = lambda: track.vocals() + accompaniment
    (plain,) = f0_separated.tracker_songs([track], labels, ("fallback",))
    (out,) = f0_separated.tracker_songs([track], labels, ("fallback",), with_accompaniment=True)
    assert plain.accompaniment is None and out.accompaniment.shape == out.versions[0].shape
    # mixture minus vocal at 16 kHz: the 440 Hz tone (RMS 0.2 / sqrt 2), nothing of the vocal
    middle = out.accompaniment[1000:-1000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.2 / np.sqrt(2), rel=1e-2)
    assert abs(np.corrcoef(middle, out.versions[0][1000:-1000])[0, 1]) < 0.05


def test_training_songs_carry_breath_noise_with_the_vocals_envelope_not_its_harmonics(tmp_path, monkeypatch):
    monkeypatch.setattr(f0_separated, "QUALITY", tmp_path)
    track, labels = song(tmp_path, ("fallback",))
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    level = np.where(t < 0.5, 0.3, 0.03)  # loud, then 20 dB quieter: the noise must follow
    vocal = level * sum(np.sin(2 * np.pi * k * 220.0 * t) / k for k in range(1, 8))
    track.vocals = lambda: np.repeat(vocal[:, None], 2, axis=1).astype(np.float32)
    (plain,) = f0_separated.tracker_songs([track], labels, ("fallback",))
    (out,) = f0_separated.tracker_songs([track], labels, ("fallback",), with_breath=True)
    (again,) = f0_separated.tracker_songs([track], labels, ("fallback",), with_breath=True)
    assert plain.breath is None and out.breath.shape == out.versions[0].shape
    np.testing.assert_array_equal(out.breath, again.breath)  # seeded
    half = out.breath.shape[0] // 2
    for part in (slice(1000, half - 1000), slice(half + 1000, -1000)):  # about the vocal's power, in each half
        ratio = np.mean(out.breath[part] ** 2) / np.mean(out.versions[0][part] ** 2)
        assert 0.3 < ratio < 3.0
    spectrum = np.abs(np.fft.rfft(out.breath)) ** 2
    vocal_spectrum = np.abs(np.fft.rfft(out.versions[0])) ** 2
    harmonics = (220 * np.arange(1, 8)).astype(int)  # 1 s of audio: bin k is k Hz
    peakiness = spectrum[harmonics].sum() / spectrum[:1600].sum()
    assert peakiness < 0.05 < vocal_spectrum[harmonics].sum() / vocal_spectrum[:1600].sum()


def test_accuracy_by_singer_pools_each_singers_voiced_frames():
    right = [np.array([True, True, False, False]), np.array([True, False]), np.array([False, True, True])]
    voiced = [np.array([True, True, True, False]), np.array([True, True]), np.array([False, True, True])]
    got = f0_separated.accuracy_by_singer(right, voiced, ["a", "a", "b"])
    assert got == {"a": 0.6, "all": 0.7143, "b": 1.0}  # a: 3 of 5 voiced frames; all: 5 of 7, to 4 places


def test_error_kinds_sort_each_singers_frames_by_the_harmonic_read_as_fundamental():
    ref_a = np.full(10, 200.0)  # every frame voiced
    pitch_a = np.array([205.0, 198.0, 200.0, 100.0, 101.0, 400.0, 600.0, 603.0, 300.0, 200.0 * 2 ** (60 / 1200)])
    ref_b = np.array([0.0, 0.0, 150.0, 150.0])  # unvoiced reference frames are left out whatever the pitch
    pitch_b = np.array([75.0, 300.0, 150.0, 149.0])
    got = f0_separated.error_kinds_by_singer([ref_a, ref_b], [pitch_a, pitch_b], ["a", "b"])
    assert got["a"] == {"right": 0.3, "octave_below": 0.2, "octave_above": 0.1, "twelfth_above": 0.2, "other": 0.2}
    assert got["b"] == {"right": 1.0, "octave_below": 0.0, "octave_above": 0.0, "twelfth_above": 0.0, "other": 0.0}
    assert got["all"]["right"] == round(5 / 12, 4) and got["all"]["octave_below"] == round(2 / 12, 4)


def test_mixture_pitch_counts_a_frame_right_on_either_input():
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    tone = lambda hz: np.repeat((0.3 * np.sin(2 * np.pi * hz * t))[:, None], 2, axis=1).astype(np.float32)  # noqa: E731
    track = SimpleNamespace(name="song", mixture=lambda: tone(220.0))  # the mixture holds the true pitch
    reference = np.full(201, 220.0)
    reference[:20] = 0.0  # unvoiced frames do not count
    got = f0_separated.mixture_pitch([track], ["s"], {"fallback": [tone(440.0)]}, [reference])  # separated: octave up
    assert got["fallback"]["separated"]["all"] < 0.05
    assert got["mixture"]["all"] > 0.95
    assert got["fallback"]["either"]["all"] == got["mixture"]["all"]
    assert set(got) == {"mixture", "fallback"}  # levels not given are left out


def test_tracker_speed_times_each_tracker_in_turns_on_the_same_clips(monkeypatch):
    """A fake clock that each (fake) tracker advances by its cost per second of audio: the figures are exact."""
    import ddsp_demucs.features as features

    cost = {"crepe-tiny": 0.1, "crepe-mixture": 0.15}  # seconds per second of audio
    clock = [0.0]
    calls = []

    def fake_extract_f0(audio, sample_rate, *, frame_rate, method, mixture):
        assert mixture.shape == audio.shape and np.array_equal(mixture, 2 * audio)  # the matching span of its song
        calls.append(method)
        clock[0] += cost[method] * audio.shape[0] / sample_rate

    monkeypatch.setattr(features, "extract_f0", fake_extract_f0)
    monkeypatch.setattr(f0_separated, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(f0_separated, "SPEED_SECONDS", 3.0)
    rng = np.random.default_rng(0)
    vocals = [rng.standard_normal((2 * SAMPLE_RATE, 2)).astype(np.float32) for _ in range(3)]  # 6 s: 3 s used
    speed = f0_separated.tracker_speed(("crepe-mixture", "crepe-tiny"), vocals, [2 * v for v in vocals])
    assert list(speed) == ["crepe-tiny", "crepe-mixture"]  # the reference first, once
    assert calls.count("crepe-tiny") == calls.count("crepe-mixture") == 2 * (f0_separated.SPEED_REPEATS + 1)
    assert calls[:4] == ["crepe-tiny", "crepe-tiny", "crepe-mixture", "crepe-mixture"]  # in turns, two clips each
    assert speed["crepe-tiny"] == {"s_per_min_audio": 6.0, "ratio_to_crepe-tiny": 1.0}
    assert speed["crepe-mixture"] == {"s_per_min_audio": 9.0, "ratio_to_crepe-tiny": 1.5}


def test_voice_profiles_find_the_frames_whose_fundamental_is_weak():
    f0 = 41 * SAMPLE_RATE / 8192  # on an STFT bin of harmonic_levels_db's default
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    first, second = ([1.0, 0.5, 0.3], [0.05, 0.5, 1.0])  # the second half: fundamental 26 dB below the third
    amplitudes = np.where((t < 2.0)[:, None], first, second)
    voice = sum(amplitudes[:, k] * np.sin(2 * np.pi * (k + 1) * f0 * t) for k in range(3)).astype(np.float32)
    track = SimpleNamespace(name="song", vocals=lambda: np.stack([voice, voice], axis=1))
    labels = {"song": {"f0_hz": np.full(401, f0)}}
    (profile,) = f0_separated.voice_profiles([track], labels, {"song": "singer"}).items()
    assert profile[0] == "singer"
    assert profile[1]["weak_fundamental_share"] == pytest.approx(0.5, abs=0.05)
    assert profile[1]["n_frames"] > 80
