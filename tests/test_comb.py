"""ddsp_demucs.inference.comb: the F0-guided harmonic comb post-filter, against closed forms and measured energies."""

from __future__ import annotations

import numpy as np
import pytest

from ddsp_demucs.inference.comb import comb_refine, frame_f0, harmonic_comb_filter

SR = 16000
FRAME_RATE = 100
INNER = slice(2048, -2048)  # away from the edges, where the centred STFT sees zero padding


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, dtype=np.float64)[INNER] ** 2))


def _harmonic_tone(f0: float, n: int, max_hz: float = 7000.0) -> np.ndarray:
    t = np.arange(n) / SR
    return 0.3 * sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, int(max_hz / f0) + 1))


def _constant_f0(f0: float, n: int) -> np.ndarray:
    return np.full(n * FRAME_RATE // SR, f0)


@pytest.mark.parametrize("shape", [(8001,), (8001, 2), (12345, 1), (1000, 2)])
def test_unvoiced_passes_input_unchanged(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = harmonic_comb_filter(x, SR, np.zeros(shape[0] * FRAME_RATE // SR), FRAME_RATE)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_harmonics_kept_and_noise_between_them_removed():
    n, f0 = SR + 37, 300.0
    harmonic = _harmonic_tone(f0, n)
    noise = 0.05 * np.random.default_rng(1).standard_normal(n)
    f0_track = _constant_f0(f0, n)
    kept = harmonic_comb_filter(harmonic[:, None], SR, f0_track, FRAME_RATE)[:, 0]
    assert abs(10 * np.log10(_energy(kept) / _energy(harmonic))) < 0.5

    noisy = (harmonic + noise)[:, None]
    snr_in = 10 * np.log10(_energy(harmonic) / _energy(noise))
    for bandwidth_cents, min_gain_db in [(50.0, 3.0), (20.0, 5.0)]:
        out = harmonic_comb_filter(noisy, SR, f0_track, FRAME_RATE, bandwidth_cents=bandwidth_cents)[:, 0]
        snr_out = 10 * np.log10(_energy(harmonic) / _energy(out - harmonic))
        assert snr_out - snr_in > min_gain_db, (bandwidth_cents, snr_in, snr_out)


@pytest.mark.parametrize("floor", [0.1, 0.3, 0.6])
def test_sine_between_harmonics_is_lowered_to_the_floor(floor):
    n, f0 = SR, 220.0
    sine = np.sin(2 * np.pi * 2.5 * f0 * np.arange(n) / SR)
    out = harmonic_comb_filter(sine[:, None], SR, _constant_f0(f0, n), FRAME_RATE, floor=floor)[:, 0]
    assert 10 * np.log10(_energy(out) / _energy(sine)) == pytest.approx(20 * np.log10(floor), abs=0.1)


def test_above_max_harmonic_passes_and_unvoiced_frames_pass():
    n, f0 = SR, 220.0
    t = np.arange(n) / SR
    high = np.sin(2 * np.pi * 9.5 * f0 * t)  # 2090 Hz, between harmonics but above max_harmonic_hz
    out = harmonic_comb_filter(high, SR, _constant_f0(f0, n), FRAME_RATE, max_harmonic_hz=2000.0)
    np.testing.assert_allclose(out[INNER], high[INNER], atol=1e-4)

    # voiced first half, unvoiced second half: the second half (away from the switch) is untouched
    f0_track = _constant_f0(f0, n)
    f0_track[f0_track.size // 2 :] = 0.0
    mid = 2.5 * f0
    sine = np.sin(2 * np.pi * mid * t)
    out = harmonic_comb_filter(sine, SR, f0_track, FRAME_RATE)
    np.testing.assert_allclose(out[n // 2 + 2048 :], sine[n // 2 + 2048 :], atol=1e-5)
    first = slice(2048, n // 2 - 2048)
    assert np.sum(out[first] ** 2) / np.sum(sine[first] ** 2) == pytest.approx(0.3**2, rel=0.03)


def test_mask_never_adds_energy():
    rng = np.random.default_rng(2)
    n = 9001
    x = rng.standard_normal((n, 2))
    f0_track = rng.uniform(80, 600, n * FRAME_RATE // SR) * (rng.random(n * FRAME_RATE // SR) > 0.3)
    y = harmonic_comb_filter(x, SR, f0_track, FRAME_RATE).astype(np.float64)
    assert np.sum(y**2) <= np.sum(x**2) * (1 + 1e-6)
    assert np.sum(y[:, 1] ** 2) <= np.sum(x[:, 1] ** 2) * (1 + 1e-6)


def test_frame_f0_nearest_voicing_and_log_interpolation():
    f0 = np.array([100.0, 400.0, 0.0, 200.0])
    times = np.array([0.0, 0.005, 0.012, 0.016, 0.03, 0.05]) / 1.0
    out = frame_f0(f0, 100, times)
    # 0.5 frame between 100 and 400 Hz: geometric mean; 1.2 -> nearest 1 voiced, right neighbour unvoiced: 400;
    # 1.6 -> nearest 2 unvoiced; 3.0 -> 200; past the end -> last frame
    np.testing.assert_allclose(out, [100.0, 200.0, 400.0, 0.0, 200.0, 200.0])


@pytest.mark.parametrize(
    "vocals, f0, kwargs",
    [
        (np.zeros((100, 2, 1)), np.zeros(1), {}),
        (np.zeros((0, 2)), np.zeros(1), {}),
        (np.zeros((100, 2)), np.zeros((1, 1)), {}),
        (np.zeros((100, 2)), -np.ones(1), {}),
        (np.full((100, 2), np.nan), np.zeros(1), {}),
        (np.zeros((100, 2)), np.zeros(1), {"hop": 2048}),
        (np.zeros((100, 2)), np.zeros(1), {"floor": 1.5}),
        (np.zeros((100, 2)), np.zeros(1), {"bandwidth_cents": 0.0}),
    ],
)
def test_bad_inputs_raise(vocals, f0, kwargs):
    with pytest.raises(ValueError):
        harmonic_comb_filter(vocals, SR, f0, FRAME_RATE, **kwargs)


def test_comb_refine_tracks_f0_and_filters():
    n, f0 = SR // 2, 300.0
    harmonic = _harmonic_tone(f0, n)
    noisy = np.stack([harmonic, harmonic], axis=1) + 0.05 * np.random.default_rng(3).standard_normal((n, 2))
    out = comb_refine(noisy, SR, frame_rate=FRAME_RATE)  # CREPE tiny, the default tracker
    assert out.shape == noisy.shape and out.dtype == np.float32
    inner = slice(2048, -2048)

    def snr(y):
        return 10 * np.log10(np.sum(harmonic[inner] ** 2) / np.sum((y[inner, 0] - harmonic[inner]) ** 2))

    assert snr(out) - snr(noisy) > 2.0


def test_comb_refine_follows_the_f0_of_its_reference():
    n, f0 = SR // 2, 300.0
    harmonic = _harmonic_tone(f0, n)
    noisy = np.stack([harmonic, harmonic], axis=1) + 0.05 * np.random.default_rng(3).standard_normal((n, 2))
    inner = slice(2048, -2048)

    def snr(y):
        return 10 * np.log10(np.sum(harmonic[inner] ** 2) / np.sum((y[inner, 0] - harmonic[inner]) ** 2))

    np.testing.assert_array_equal(
        comb_refine(noisy, SR, frame_rate=FRAME_RATE, f0_reference=noisy), comb_refine(noisy, SR, frame_rate=FRAME_RATE)
    )
    clean = np.stack([harmonic, harmonic], axis=1)
    assert snr(comb_refine(noisy, SR, frame_rate=FRAME_RATE, f0_reference=clean)) - snr(noisy) > 2.0
    third_up = _harmonic_tone(f0 * 2 ** (4 / 12), n)[:, None]  # the wrong F0 filters the voice away
    assert snr(comb_refine(noisy, SR, frame_rate=FRAME_RATE, f0_reference=third_up)) < snr(noisy) - 3.0
    with pytest.raises(ValueError, match="samples"):
        comb_refine(noisy, SR, f0_reference=noisy[:-1])
