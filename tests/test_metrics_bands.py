"""ddsp_demucs.metrics.band_error_db and region_error_db: partition identities, closed forms, a scipy reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import stft

from ddsp_demucs import metrics

SR = 16000


def _db_sum(values) -> float:
    return 10 * np.log10(sum(10 ** (v / 10) for v in values))


def _scipy_band_error_db(est, ref, sample_rate, n_fft, hop):
    """Independent float64 reference: scipy's STFT (periodic Hann, zero boundary padding), summed per band."""
    est, ref = np.atleast_2d(est.T).T, np.atleast_2d(ref.T).T

    def spec(x):  # (n_channels, n_bins, n_frames)
        _, _, z = stft(x.T, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="zeros", padded=False, axis=-1)
        return np.abs(z) ** 2

    two_sided = np.where((np.arange(n_fft // 2 + 1) % (n_fft // 2)) == 0, 1.0, 2.0)[:, None]  # fold -f onto f
    err_pow, ref_pow = spec(est - ref) * two_sided, spec(ref) * two_sided
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    out = {}
    for name, (lo, hi) in zip(metrics.BAND_NAMES, metrics.BANDS_HZ):
        sel = (freqs >= lo) & (freqs < (np.inf if hi is None else hi))
        num = err_pow[:, sel].sum()
        out[name] = 10 * np.log10(num / ref_pow.sum()) if num > 0 else -np.inf
    return out


@pytest.mark.parametrize(
    "shape, sample_rate, n_fft, hop",
    [((20001,), SR, 2048, 512), ((30001, 2), 44100, 1024, 256), ((5000, 2), 22050, 512, 100)],
)
def test_band_error_matches_scipy_and_partitions(shape, sample_rate, n_fft, hop):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(shape)
    est = ref + 0.3 * np.cumsum(rng.standard_normal(shape), axis=0) / 30  # error tilted to low frequencies
    got = metrics.band_error_db(est, ref, sample_rate, n_fft=n_fft, hop=hop)
    assert tuple(got) == metrics.BAND_NAMES
    expected = _scipy_band_error_db(est, ref, sample_rate, n_fft, hop)
    for name in metrics.BAND_NAMES:
        assert got[name] == pytest.approx(expected[name], abs=1e-9)

    # the bands partition the bins: they add up to the whole error-to-reference ratio of the STFTs
    def spec(x):
        return np.abs(stft(x.T, nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros", padded=False)[2]) ** 2

    two_sided = np.where((np.arange(n_fft // 2 + 1) % (n_fft // 2)) == 0, 1.0, 2.0)[:, None]
    whole = np.sum(spec(est - ref) * two_sided) / np.sum(spec(ref) * two_sided)
    assert _db_sum(got.values()) == pytest.approx(10 * np.log10(whole), abs=1e-9)


def test_band_error_partition_equals_time_domain_ratio_with_cola_hop():
    # periodic Hann at hop n_fft/4 sums (squared) to a constant, so the STFT energy ratio is the waveform one
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((16000, 2))
    err = 0.1 * rng.standard_normal((16000, 2))
    ref[:1024] = ref[-1024:] = err[:1024] = err[-1024:] = 0.0  # keep the edges (partial overlap) silent
    got = metrics.band_error_db(ref + err, ref, SR, n_fft=2048, hop=512)
    assert _db_sum(got.values()) == pytest.approx(10 * np.log10(np.sum(err**2) / np.sum(ref**2)), abs=1e-9)


def test_sine_error_lands_in_its_band():
    t = np.arange(SR) / SR
    ref = np.random.default_rng(2).standard_normal(SR)
    err = 0.1 * np.sin(2 * np.pi * 2000.0 * t)
    got = metrics.band_error_db(ref + err, ref, SR)
    # the 2 kHz error band holds the whole error; the rest is leakage of the edges and Hann sidelobes
    assert got["1k_3k"] == pytest.approx(10 * np.log10(np.sum(err**2) / np.sum(ref**2)), abs=0.05)
    for name in ("lt300", "300_1k", "3k_8k"):
        assert got[name] < got["1k_3k"] - 40
    assert got["gt8k"] < got["1k_3k"] - 40  # only the Nyquist bin at 16 kHz


def test_band_error_exact_and_bad_inputs():
    ref = np.random.default_rng(3).standard_normal((4000, 2))
    assert all(v == -np.inf for v in metrics.band_error_db(ref, ref, SR).values())
    assert metrics.band_error_db(ref, ref, 8000)["gt8k"] == -np.inf  # no bins at or above 8 kHz
    with pytest.raises(ValueError):
        metrics.band_error_db(ref, ref[:, :1], SR)
    with pytest.raises(ValueError):
        metrics.band_error_db(ref, np.zeros_like(ref), SR)
    with pytest.raises(ValueError):
        metrics.band_error_db(ref[None], ref[None], SR)


def _three_segment_reference(frame_rate=100):
    """0-0.5 s a 220 Hz tone (voiced), 0.5-1.0 s noise (unvoiced), 1.0-1.5 s zeros (silent); stereo."""
    n = SR // 2
    t = np.arange(n) / SR
    tone = 0.5 * np.sin(2 * np.pi * 220.0 * t)
    noise = 0.2 * np.random.default_rng(4).standard_normal(n)
    ref = np.concatenate([tone, noise, np.zeros(n)])
    ref = np.stack([ref, 0.5 * ref], axis=1)
    f0 = np.zeros(3 * n * frame_rate // SR)
    f0[: f0.size // 3] = 220.0
    return ref, f0


@pytest.mark.parametrize(
    "region, span", [("voiced", (1000, 7000)), ("unvoiced", (8500, 15000)), ("silent", (17000, 23000))]
)
def test_region_error_closed_form(region, span):
    ref, f0 = _three_segment_reference()
    err = np.zeros_like(ref)
    err[span[0] : span[1]] = 0.05  # a constant error: energy 0.05² per sample and channel
    got = metrics.region_error_db(ref + err, ref, SR, f0, 100)
    assert tuple(got) == metrics.REGION_NAMES
    expected = 10 * np.log10(0.05**2 * (span[1] - span[0]) * 2 / np.sum(ref**2))
    assert got[region] == pytest.approx(expected, abs=1e-9)
    assert all(got[name] == -np.inf for name in metrics.REGION_NAMES if name != region)


def test_region_error_partitions_the_whole_ratio():
    rng = np.random.default_rng(5)
    ref, f0 = _three_segment_reference(frame_rate=50)
    ref[:, 0] += 1e-4 * rng.standard_normal(ref.shape[0])  # a quiet floor: still below -50 dB of the tone
    f0[rng.random(f0.size) < 0.2] = 0.0
    err = 0.01 * rng.standard_normal(ref.shape)
    got = metrics.region_error_db(ref + err, ref, SR, f0, 50)
    assert all(np.isfinite(v) for v in got.values())
    assert _db_sum(got.values()) == pytest.approx(10 * np.log10(np.sum(err**2) / np.sum(ref**2)), abs=1e-9)
    mono = metrics.region_error_db(ref[:, 0] + err[:, 0], ref[:, 0], SR, f0, 50)
    assert _db_sum(mono.values()) == pytest.approx(10 * np.log10(np.sum(err[:, 0] ** 2) / np.sum(ref[:, 0] ** 2)))


def test_region_silence_threshold_is_relative_to_the_loudest_frame():
    ref, f0 = _three_segment_reference()
    ref[SR:] = 1e-3  # the last third: a quiet constant, about 48 dB below the tone
    err = np.zeros_like(ref)
    err[17000:23000] = 0.05
    loud_db = 10 * np.log10(np.mean(ref[:8000] ** 2))
    quiet_db = 10 * np.log10(np.mean(ref[17000:] ** 2))
    level = quiet_db - loud_db
    silent = metrics.region_error_db(ref + err, ref, SR, f0, 100, silence_db=level + 1)
    unvoiced = metrics.region_error_db(ref + err, ref, SR, f0, 100, silence_db=level - 1)
    assert np.isfinite(silent["silent"]) and silent["unvoiced"] == -np.inf
    assert np.isfinite(unvoiced["unvoiced"]) and unvoiced["silent"] == -np.inf
    assert silent["silent"] == pytest.approx(unvoiced["unvoiced"])


def test_region_error_bad_inputs():
    ref, f0 = _three_segment_reference()
    with pytest.raises(ValueError):
        metrics.region_error_db(ref, ref, SR, f0[:-10], 100)  # F0 track of the wrong length
    with pytest.raises(ValueError):
        metrics.region_error_db(ref, ref, SR, f0[:, None], 100)
    with pytest.raises(ValueError):
        metrics.region_error_db(ref, np.zeros_like(ref), SR, f0, 100)
    with pytest.raises(ValueError):
        metrics.region_error_db(ref, ref, SR, f0, 100, silence_db=3.0)
