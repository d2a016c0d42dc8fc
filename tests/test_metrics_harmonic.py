"""``interharmonic_share``, ``error_change_by_harmonicity`` and ``harmonic_levels_db`` against closed forms: a
periodic tone, white noise, unvoiced frames left out, errors placed on or between the harmonics, harmonic levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddsp_demucs.metrics import error_change_by_harmonicity, harmonic_levels_db, interharmonic_share

SR, FRAME_RATE, N_FFT = 44100, 100, 4096


def harmonic_tone(f0: float, seconds: float, n_harmonics: int = 20) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, n_harmonics + 1))


def non_harmonic_fraction(f0: float, band=(60.0, 5000.0), half_width=25.0) -> float:
    """The share of band bins more than ``half_width`` from every harmonic: white noise's expected share."""
    bins = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    bins = bins[(bins >= band[0]) & (bins <= band[1])]
    distance = np.abs(bins - np.maximum(np.round(bins / f0), 1) * f0)
    return float(np.mean(distance > half_width))


def test_periodic_tone_with_its_f0_is_almost_all_harmonic():
    tone = harmonic_tone(220.0, 2.0)
    f0 = np.full(2 * FRAME_RATE, 220.0)
    assert interharmonic_share(tone, SR, f0, FRAME_RATE) < 0.01


def test_the_wrong_f0_puts_the_odd_harmonics_between():
    # an octave-up F0 matches only the even harmonics: the odd ones (1, 3, 5, ... with power 1/k^2) fall between
    tone = harmonic_tone(220.0, 2.0)
    odd = sum(1 / k**2 for k in range(1, 21, 2) if k * 220.0 <= 5000.0)
    all_ = sum(1 / k**2 for k in range(1, 21) if k * 220.0 <= 5000.0)
    share = interharmonic_share(tone, SR, np.full(2 * FRAME_RATE, 440.0), FRAME_RATE)
    assert share == pytest.approx(odd / all_, abs=0.01)


def test_white_noise_shares_the_non_harmonic_bins():
    noise = np.random.default_rng(0).standard_normal((4 * SR, 2))
    f0 = np.full(4 * FRAME_RATE, 180.0)
    assert interharmonic_share(noise, SR, f0, FRAME_RATE) == pytest.approx(non_harmonic_fraction(180.0), abs=0.02)


def test_only_voiced_frames_count():
    tone, noise = harmonic_tone(300.0, 2.0), 0.5 * np.random.default_rng(1).standard_normal(2 * SR)
    audio = np.concatenate([tone, noise])  # 2 s of tone (voiced), then 2 s of noise (unvoiced)
    f0 = np.concatenate([np.full(2 * FRAME_RATE, 300.0), np.zeros(2 * FRAME_RATE)])
    # the STFT frames around the boundary see some noise; the rest of the noise is not counted
    assert interharmonic_share(audio, SR, f0, FRAME_RATE) < 0.05
    assert math.isnan(interharmonic_share(audio, SR, np.zeros(4 * FRAME_RATE), FRAME_RATE))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="f0_hz"):
        interharmonic_share(np.ones(SR), SR, np.array([-1.0, 100.0]), FRAME_RATE)
    with pytest.raises(ValueError, match="band_hz"):
        interharmonic_share(np.ones(SR), SR, np.ones(10), FRAME_RATE, band_hz=(5000.0, 60.0))


def test_error_change_is_split_on_and_between_the_harmonics():
    t = np.arange(2 * SR) / SR
    target = harmonic_tone(220.0, 2.0)
    between = 0.1 * np.sin(2 * np.pi * 330.0 * t)  # half-way between harmonics 1 and 2
    on = 0.1 * np.sin(2 * np.pi * 660.0 * t + 0.3)  # on harmonic 3
    separated, refined = target + between + on, target + on  # the refinement removed the error between
    voiced = np.full(2 * FRAME_RATE, 220.0)
    change = error_change_by_harmonicity(separated, refined, target, SR, voiced, FRAME_RATE)
    assert change["between_harmonics"] == pytest.approx(-0.5, abs=0.02)
    assert change["on_harmonics"] == pytest.approx(0.0, abs=0.02)
    assert change["elsewhere"] == pytest.approx(0.0, abs=0.02)

    def error_energy(x):
        e = x - (target @ x) / (target @ target) * target
        return e @ e

    whole = error_energy(refined) / error_energy(separated) - 1.0
    assert sum(change.values()) == pytest.approx(whole, abs=0.01)  # the parts add up to the whole change
    unvoiced = error_change_by_harmonicity(separated, refined, target, SR, np.zeros(2 * FRAME_RATE), FRAME_RATE)
    assert unvoiced["elsewhere"] == pytest.approx(-0.5, abs=0.02)
    assert unvoiced["on_harmonics"] == unvoiced["between_harmonics"] == 0.0
    no_error = error_change_by_harmonicity(target, refined, target, SR, voiced, FRAME_RATE)
    assert all(math.isnan(v) for v in no_error.values())  # nothing to share out
    with pytest.raises(ValueError, match="refined and target must be equal"):
        error_change_by_harmonicity(separated, refined[:-1], target, SR, voiced, FRAME_RATE)
    with pytest.raises(ValueError, match="band_hz"):  # the same checks as interharmonic_share
        error_change_by_harmonicity(separated, refined, target, SR, voiced, FRAME_RATE, band_hz=(5000.0, 60.0))


def test_harmonic_levels_follow_a_voice_whose_third_harmonic_is_strongest():
    n_fft = 8192
    f0 = 41 * SR / n_fft  # 220.7 Hz, every harmonic on an STFT bin: the levels are exact
    amplitudes = np.array([0.1, 0.3, 1.0, 0.5])
    t = np.arange(2 * SR) / SR
    voice = sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(amplitudes))
    f0_frames = np.full(201, f0)
    f0_frames[:100] = 0.0  # the first second unvoiced: left out
    levels = harmonic_levels_db(np.stack([voice, voice], axis=1), SR, f0_frames, FRAME_RATE, n_harmonics=5)
    assert 19 <= levels.shape[0] <= 23  # one row per STFT frame (hop 2048) centred in the voiced second
    inside = levels[2:-2]  # away from the signal's ends (the STFT pads with zeros)
    np.testing.assert_allclose(inside[:, :4], np.tile(20 * np.log10(amplitudes), (inside.shape[0], 1)), atol=1e-3)
    assert np.all(inside[:, 4] < -100)  # a harmonic the voice lacks
    high = harmonic_levels_db(voice, SR, np.full(201, 5000.0), FRAME_RATE, n_harmonics=6)
    assert np.all(np.isnan(high[:, 5])) and not np.any(np.isnan(high[:, :4]))  # 25 kHz and 30 kHz: past Nyquist
