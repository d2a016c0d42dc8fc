"""fft_convolve, upsample, Reverb, a_weighted_loudness against numpy references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddsp_demucs.dsp import Reverb, a_weighted_loudness, fft_convolve, interpolation_weights, upsample


@pytest.mark.parametrize("n,ir,delay", [(1000, 33, 0), (999, 5, 2), (7, 20, 19), (1, 1, 0)])
def test_fft_convolve_invariant_matches_numpy(n, ir, delay):
    rng = np.random.default_rng(n)
    x, h = rng.standard_normal((3, n)), rng.standard_normal((3, ir))
    y = fft_convolve(torch.tensor(x), torch.tensor(h), delay=delay).numpy()
    ref = np.stack([np.convolve(x[b], h[b])[delay : delay + n] for b in range(3)])
    np.testing.assert_allclose(y, ref, atol=1e-10)


@pytest.mark.parametrize(
    "n,n_frames,ir,hop",
    [(1000, 7, 33, None), (999, 13, 5, None), (500, 3, 64, 100.5), (300, 300, 9, 1.0), (50, 2, 101, None)],
)
def test_fft_convolve_time_varying_matches_crossfaded_numpy(n, n_frames, ir, hop):
    rng = np.random.default_rng(n + n_frames)
    x, h = rng.standard_normal((2, n)), rng.standard_normal((2, n_frames, ir))
    y = fft_convolve(torch.tensor(x), torch.tensor(h), delay=ir // 2, hop_length=hop).numpy()
    step = n / n_frames if hop is None else hop
    ref = np.zeros((2, n))
    for j in range(n_frames):
        onehot = np.zeros(n_frames)
        onehot[j] = 1.0
        wj = np.interp(np.arange(n), np.arange(n_frames) * step, onehot)  # frame j's triangular weight
        for b in range(2):
            ref[b] += np.convolve(x[b] * wj, h[b, j])[ir // 2 : ir // 2 + n]
    np.testing.assert_allclose(y, ref, atol=1e-10)


def test_fft_convolve_equal_frames_equal_invariant():
    x, h = torch.randn(2, 777), torch.randn(2, 31)
    varying = fft_convolve(x, h[:, None].expand(2, 9, 31))
    torch.testing.assert_close(varying, fft_convolve(x, h), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_frames,n_samples,hop", [(10, 100, None), (7, 1001, None), (5, 64, 20.5), (1, 9, None)])
def test_upsample_matches_np_interp(n_frames, n_samples, hop):
    v = np.random.default_rng(1).standard_normal((2, n_frames))
    got = upsample(torch.tensor(v), n_samples, hop_length=hop).numpy()
    step = n_samples / n_frames if hop is None else hop
    ref = np.stack([np.interp(np.arange(n_samples), np.arange(n_frames) * step, row) for row in v])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    three = upsample(torch.tensor(v).T[None], n_samples, hop_length=hop, dim=1)  # (1, n_frames, 2) frame axis 1
    np.testing.assert_allclose(three[0].numpy().T, ref, atol=1e-12)
    lo, hi, w = interpolation_weights(n_frames, n_samples, hop)
    assert lo.shape == hi.shape == w.shape == (n_samples,) and float(w.min()) >= 0 and float(w.max()) <= 1


def test_reverb_keeps_dry_path_and_adds_convolution():
    rev = Reverb(64, initial_gain=0.0)
    x = torch.randn(2, 500)
    torch.testing.assert_close(rev(x), x)
    with torch.no_grad():
        rev.ir.zero_()
        rev.ir[0] = 5.0  # ignored: the first tap is the dry path
        rev.ir[10] = 0.5
    y = rev(x)
    expected = x.clone()
    expected[:, 10:] += 0.5 * x[:, :-10]
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    assert Reverb(32, add_dry=False)(torch.zeros(1, 3, 100)).shape == (1, 3, 100)


# ----------------------------------------------------------------------------------------------- loudness
def a_weight_db_numpy(f):
    """IEC 61672 A-weighting, written independently of the library."""
    f = np.asarray(f, dtype=np.float64)
    num = (12194.0**2) * f**4
    den = (f**2 + 20.6**2) * np.sqrt((f**2 + 107.7**2) * (f**2 + 737.9**2)) * (f**2 + 12194.0**2)
    return 20 * np.log10(num / den) + 2.0


def _tone(freq, amp, sr, seconds=1.0):
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()[None]


@pytest.mark.parametrize("sr,frame_rate", [(44100, 250), (22050, 250), (16000, 100)])
def test_loudness_doubling_a_weighting_and_absolute_scale(sr, frame_rate):
    mid = slice(20, -20)
    l1k = a_weighted_loudness(_tone(1000, 0.25, sr), sample_rate=sr, frame_rate=frame_rate)
    l1k2 = a_weighted_loudness(_tone(1000, 0.5, sr), sample_rate=sr, frame_rate=frame_rate)
    l100 = a_weighted_loudness(_tone(100, 0.25, sr), sample_rate=sr, frame_rate=frame_rate)
    assert l1k.shape == (1, frame_rate)  # 1 s of audio
    np.testing.assert_allclose((l1k2 - l1k)[0, mid].numpy(), 20 * np.log10(2), atol=0.01)
    # absolute scale: dB of mean square, A-weighted: 20 log10(0.25) - 3.01 + A(1 kHz)
    np.testing.assert_allclose(
        l1k[0, mid].numpy(), 20 * np.log10(0.25 / np.sqrt(2)) + a_weight_db_numpy(1000), atol=0.05
    )
    drop = (l1k - l100)[0, mid].numpy()
    np.testing.assert_allclose(drop, a_weight_db_numpy(1000) - a_weight_db_numpy(100), atol=0.35)  # ~19.1 dB


def test_loudness_frames_silence_floor_and_batch_dims():
    sr, fr = 22050, 250
    for n in (22050, 22051, 1000, 89):
        assert a_weighted_loudness(torch.zeros(2, n), sample_rate=sr, frame_rate=fr).shape == (2, n * fr // sr)
    silent = a_weighted_loudness(torch.zeros(3, 2, 4410), sample_rate=sr, frame_rate=fr, floor_db=-100.0)
    assert silent.shape == (3, 2, 50) and torch.all(silent == -100.0)


def _loudness_by_frame_numpy(audio, sr, frame_rate, n_fft):
    """The docstring's formula frame by frame in float64 numpy: the independent reference."""
    padded = np.pad(audio.astype(np.float64), (n_fft // 2, n_fft // 2))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    f2 = freqs**2  # IEC 61672-1 A-weighting as a power gain, with its exact pole frequencies
    ra = 12194.217**2 * f2**2 / ((f2 + 20.598997**2) * np.sqrt((f2 + 107.65265**2) * (f2 + 737.86223**2)))
    gain = (ra / (f2 + 12194.217**2)) ** 2 * 10.0 ** (2.0 / 10.0)
    count = np.full(freqs.size, 2.0)
    count[0] = count[-1] = 1.0
    out = []
    for i in range(int(audio.size * frame_rate // sr)):
        start = int(np.round(i * sr / frame_rate))  # in padded samples: the frame centred on sample start
        spec = np.fft.rfft(padded[start : start + n_fft] * window)
        power = np.sum(count * gain * np.abs(spec) ** 2) / (n_fft * np.sum(window**2))
        out.append(max(10 * np.log10(power), -100.0))
    return np.array(out)


@pytest.mark.parametrize("track_grad", [False, True])
def test_loudness_matches_frame_by_frame_float64_reference(track_grad):
    """A non-integer hop (22050 / 100 Hz), both frame gathers (with and without autograd), against numpy."""
    sr, fr, n_fft = 22050, 100, 2048
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(sr + 777) * np.linspace(0.0, 1.0, sr + 777)
    ref = _loudness_by_frame_numpy(audio, sr, fr, n_fft)
    x = torch.tensor(audio, dtype=torch.float64)[None].requires_grad_(track_grad)
    got = a_weighted_loudness(x, sample_rate=sr, frame_rate=fr, n_fft=n_fft)[0]
    np.testing.assert_allclose(got.detach().numpy(), ref, rtol=0, atol=1e-9)
