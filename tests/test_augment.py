"""Vocal augmentation (ddsp_demucs.corpus.augment): each transform measured on signals whose answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pedalboard")

from ddsp_demucs.corpus.augment import (  # noqa: E402
    EQ_DB,
    LEVEL_DEPTH_DB,
    PITCH_SEMITONES,
    STRETCH,
    VocalAugmentation,
    augment_vocal,
    draw_augmentation,
    level_envelope,
)

SR = 44100
#: The identity: every transform at its neutral setting, no level envelope.
IDENTITY = VocalAugmentation(
    pitch_semitones=0.0,
    stretch=1.0,
    formant_semitones=0.0,
    low_shelf_db=0.0,
    peak_hz=1000.0,
    peak_db=0.0,
    high_shelf_db=0.0,
    reverb="none",
    room_size=0.5,
    impulse_response="",
    wet=0.0,
    level_depth_db=0.0,
    level_seed=0,
)


def harmonic_tone(f0: float, seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.1 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 9))


def peak_frequency(x: np.ndarray) -> float:
    """The strongest partial's frequency (Hz), from 2 s in the middle, parabolic interpolation of the peak bin."""
    n = 2 * SR
    seg = x[(len(x) - n) // 2 :][:n] * np.hanning(n)
    mag = np.log(np.abs(np.fft.rfft(seg, 4 * n)) + 1e-12)
    k = int(np.argmax(mag))
    delta = 0.5 * (mag[k - 1] - mag[k + 1]) / (mag[k - 1] - 2 * mag[k] + mag[k + 1])
    return (k + delta) * SR / (4 * n)


def band_energy_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spec[(freqs >= lo) & (freqs < hi)].sum()))


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_moves_f0_by_the_drawn_interval_and_keeps_the_length(semitones):
    x = harmonic_tone(220.0)
    y = augment_vocal(x, SR, replace(IDENTITY, pitch_semitones=semitones))
    assert peak_frequency(y) == pytest.approx(220.0 * 2 ** (semitones / 12), rel=0.003)
    assert abs(len(y) - len(x)) <= 0.001 * len(x)


@pytest.mark.parametrize("stretch", [0.9, 1.1])
def test_time_stretch_changes_the_length_not_the_pitch(stretch):
    x = harmonic_tone(220.0)
    y = augment_vocal(x, SR, replace(IDENTITY, stretch=stretch))
    assert len(y) == pytest.approx(len(x) / stretch, rel=0.002)
    assert peak_frequency(y) == pytest.approx(220.0, rel=0.003)


def test_formant_shift_moves_the_envelope_and_keeps_the_pitch():
    x = harmonic_tone(150.0)
    up = augment_vocal(x, SR, replace(IDENTITY, formant_semitones=2.0))
    down = augment_vocal(x, SR, replace(IDENTITY, formant_semitones=-2.0))
    for y in (up, down):
        assert peak_frequency(y) == pytest.approx(150.0, rel=0.004)
    # the 1/k envelope is stretched up (more energy above 1 kHz) or down (less)
    high = {
        name: band_energy_db(y, 1000, 8000) - band_energy_db(y, 0, 8000)
        for name, y in (("x", x), ("up", up), ("down", down))
    }
    assert high["down"] < high["x"] - 0.5 and high["up"] > high["x"] + 0.5


def test_peak_filter_raises_its_band_by_its_gain():
    noise = np.random.default_rng(0).standard_normal(2 * SR) * 0.1
    y = augment_vocal(noise, SR, replace(IDENTITY, peak_hz=2000.0, peak_db=4.0))
    assert band_energy_db(y, 1900, 2100) - band_energy_db(noise, 1900, 2100) == pytest.approx(4.0, abs=0.5)
    assert band_energy_db(y, 100, 300) - band_energy_db(noise, 100, 300) == pytest.approx(0.0, abs=0.3)


def test_reverb_adds_a_tail_and_the_impulse_response_is_convolved_exactly(shared_data):
    from ddsp_demucs.core.audio_io import load_audio

    click = np.zeros(SR)
    click[1000] = 1.0
    dry = augment_vocal(click, SR, IDENTITY)
    assert np.sum(dry[3000:] ** 2) < 1e-6 * np.sum(dry**2)
    room = augment_vocal(click, SR, replace(IDENTITY, reverb="room", room_size=0.7, wet=0.3))
    assert np.sum(room[3000:] ** 2) > 1e-3 * np.sum(room**2)
    path = "impulse_responses/seminar_room_clap.flac"
    wet = augment_vocal(
        click, SR, replace(IDENTITY, reverb="impulse_response", wet=0.3, impulse_response=path), shared_data
    )
    ir, sr = load_audio(shared_data / path)
    assert sr == SR
    ir = ir.mean(axis=1).astype(np.float64)
    expected = 0.7 * dry + 0.3 * np.convolve(dry, ir / np.sqrt(np.sum(ir**2)))[:SR]  # direct-form reference
    assert np.sum((wet - expected) ** 2) < 1e-8 * np.sum(expected**2)


def test_level_envelope_stays_within_its_depth_and_is_seeded():
    env = level_envelope(10 * SR, SR, 4.0, seed=3)
    db = 20 * np.log10(env)
    assert db.min() >= -4.0 - 1e-9 and db.max() <= 4.0 + 1e-9 and db.max() - db.min() > 1.0
    np.testing.assert_array_equal(env, level_envelope(10 * SR, SR, 4.0, seed=3))
    assert np.max(np.abs(np.diff(db))) < 8.0 / (2.0 * SR) + 1e-9  # slow: linear between 2 s knots


def test_map_f0_follows_the_stretch_and_the_shift():
    a = replace(IDENTITY, pitch_semitones=12.0, stretch=1.25)
    times, f0 = a.map_f0(np.array([0.0, 1.0, 2.5]), np.array([100.0, 0.0, 220.0]))
    np.testing.assert_allclose(times, [0.0, 0.8, 2.0])
    np.testing.assert_allclose(f0, [200.0, 0.0, 440.0])


def test_draws_are_seeded_within_their_ranges_and_reverb_needs_a_response_file():
    draws = [draw_augmentation(np.random.default_rng(s), ["ir.flac"]) for s in range(60)]
    assert draws == [draw_augmentation(np.random.default_rng(s), ["ir.flac"]) for s in range(60)]
    assert all(PITCH_SEMITONES[0] <= d.pitch_semitones <= PITCH_SEMITONES[1] for d in draws)
    assert all(STRETCH[0] <= d.stretch <= STRETCH[1] and d.level_depth_db == LEVEL_DEPTH_DB for d in draws)
    assert {d.reverb for d in draws} == {"none", "room", "impulse_response"}
    assert any(d.formant_semitones == 0 for d in draws) and any(d.formant_semitones != 0 for d in draws)
    assert "impulse_response" not in {draw_augmentation(np.random.default_rng(s)).reverb for s in range(60)}


def test_equaliser_range_scales_the_gains_and_keeps_every_other_draw():
    narrow = [draw_augmentation(np.random.default_rng(s), ["ir.flac"]) for s in range(60)]
    wide = [draw_augmentation(np.random.default_rng(s), ["ir.flac"], eq_db=10.0) for s in range(60)]
    gains = ("low_shelf_db", "peak_db", "high_shelf_db")
    assert all(abs(getattr(d, g)) <= EQ_DB for d in narrow for g in gains)
    assert all(abs(getattr(d, g)) <= 10.0 for d in wide for g in gains)
    assert max(abs(getattr(d, g)) for d in wide for g in gains) > EQ_DB  # the wider range is used
    for n, w in zip(narrow, wide):
        assert replace(w, **{g: getattr(n, g) for g in gains}) == n  # pitch, tempo, reverb, ... unchanged
        for g in gains:
            assert getattr(w, g) == pytest.approx(getattr(n, g) * 10.0 / EQ_DB, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="eq_db"):
        draw_augmentation(np.random.default_rng(0), eq_db=-1.0)
