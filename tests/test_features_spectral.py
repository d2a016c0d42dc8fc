"""Spectral features against closed forms and independent float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from ddsp_demucs.features import harmonic_ratio, spectral_centroid, spectral_features, spectral_flatness
from ddsp_demucs.features.spectral import default_n_fft, power_spectra


@pytest.mark.parametrize("sr, expected", [(44100, 4096), (48000, 4096), (22050, 2048), (16000, 2048)])
def test_default_n_fft(sr, expected):
    assert default_n_fft(sr) == expected


def test_frames_are_centred_on_the_grid():
    sr, frame_rate, n_fft = 8000, 100, 256
    audio = np.zeros(800)
    audio[400] = 1.0  # impulse at 50 ms = frame 5
    power = np.concatenate([p for _, p in power_spectra(audio, sr, frame_rate=frame_rate, n_fft=n_fft)])
    assert power.shape == (10, n_fft // 2 + 1)  # 800 * 100 // 8000
    energy = power.sum(axis=1)
    assert energy.argmax() == 5
    # the impulse sits on the window centre: the periodic Hann is 1 there, so |X|^2 = 1 in every bin
    np.testing.assert_allclose(power[5], 1.0, atol=1e-12)


def test_centroid_of_a_sine_at_a_bin_centre():
    sr, n_fft = 16000, 2048
    freq = 100 * sr / n_fft  # bin 100
    t = np.arange(sr) / sr
    feats = spectral_features(np.sin(2 * np.pi * freq * t), sr, np.zeros(250), frame_rate=250, n_fft=n_fft)
    inner = feats["centroid_hz"][20:-20]  # windows (128 ms) inside the signal
    np.testing.assert_allclose(inner, freq, rtol=1e-4)  # Hann leakage is symmetric about the bin


def test_centroid_closed_form():
    freqs = np.array([0.0, 100.0, 200.0, 300.0])
    power = np.array([[0.0, 1.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # magnitudes 1 and 2 at 100 and 200 Hz -> (100 + 400) / 3
    np.testing.assert_allclose(spectral_centroid(power, freqs), [500.0 / 3.0, 0.0])


def test_flatness_of_white_noise_and_a_tone():
    rng = np.random.default_rng(0)
    sr = 22050
    noise = rng.standard_normal(sr * 2)
    flat = spectral_features(noise, sr, np.zeros(500))["flatness"][20:-20]
    # periodogram bins of white noise are exponential: E[log P] = log E[P] - gamma -> ratio exp(-gamma)
    assert abs(np.mean(flat) - np.exp(-np.euler_gamma)) < 0.02
    tone = np.sin(2 * np.pi * 440.0 * np.arange(sr) / sr)
    assert np.max(spectral_features(tone, sr, np.zeros(250))["flatness"][20:-20]) < 1e-3


def test_flatness_closed_form():
    power = np.array([[1.0, 4.0, 16.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(spectral_flatness(power), [4.0 / 7.0, 1.0])


def test_harmonic_ratio_tone_noise_and_unvoiced():
    sr, f0 = 44100, 220.0
    t = np.arange(sr) / sr
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    n_frames = 250
    ratio = spectral_features(tone, sr, np.full(n_frames, f0))["harmonic_ratio"][20:-20]
    assert np.min(ratio) > 0.99
    assert np.all(spectral_features(tone, sr, np.zeros(n_frames))["harmonic_ratio"] == 0)


def test_harmonic_ratio_matches_an_independent_bin_count():
    """On a flat spectrum the ratio is the fraction of bins within the band of some harmonic."""
    n_fft, sr = 1024, 16000
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    f0 = np.array([150.0, 97.0, 0.0])
    power = np.ones((3, freqs.size))
    bin_width = sr / n_fft
    expected = []
    for f in f0:
        if f == 0:
            expected.append(0.0)
            continue
        width = min(2 * bin_width, f / 4)
        harmonics = f * np.arange(1, int(sr / 2 / f) + 2)
        near = [np.any(np.abs(b - harmonics) <= width) for b in freqs]
        expected.append(np.mean(near))
    np.testing.assert_allclose(harmonic_ratio(power, freqs, f0), expected, rtol=0, atol=1e-12)


def test_f0_length_must_match():
    with pytest.raises(ValueError, match="expected"):
        spectral_features(np.zeros(16000), 16000, np.zeros(10))
