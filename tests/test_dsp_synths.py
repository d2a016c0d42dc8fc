"""harmonic_synth and filtered_noise against numpy float64 references and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddsp_demucs.dsp import filtered_noise, harmonic_phase, harmonic_synth, noise_impulse_responses


def numpy_harmonic_reference(f0, amps, dist, sample_rate, n_samples, hop=None, initial_phase=None):
    """Independent float64 oscillator bank: np.interp upsampling (frame j at j * hop, edges held), float64
    cumulative phase, per-sample Nyquist mask."""
    f0, amps, dist = (np.asarray(x, dtype=np.float64) for x in (f0, amps, dist))
    batch, n_frames, n_harm = dist.shape
    hop = n_samples / n_frames if hop is None else hop
    fx, x = np.arange(n_frames) * hop, np.arange(n_samples, dtype=np.float64)
    out = np.zeros((batch, n_samples))
    for b in range(batch):
        f = np.interp(x, fx, f0[b])
        phase = np.cumsum(2 * np.pi * f / sample_rate) + (0.0 if initial_phase is None else initial_phase[b])
        for k in range(1, n_harm + 1):
            a = np.interp(x, fx, amps[b] * dist[b, :, k - 1])
            out[b] += a * (k * f < sample_rate / 2) * np.sin(k * phase)
    return out


@pytest.mark.parametrize("sample_rate,n_samples,n_frames", [(16000, 16000, 100), (22050, 4411, 17), (8000, 999, 1)])
def test_constant_sines_closed_form(sample_rate, n_samples, n_frames):
    f0, amp = 220.5, 0.7
    gains = torch.tensor([1.0, 0.0, 0.5, 0.25])
    y = harmonic_synth(
        torch.full((1, n_frames), f0),
        torch.full((1, n_frames), amp),
        gains.expand(1, n_frames, 4).clone(),
        sample_rate=sample_rate,
        n_samples=n_samples,
    )
    n = np.arange(1, n_samples + 1)  # inclusive cumulative phase: sample 0 already has one increment
    ref = sum(amp * float(g) * np.sin(2 * np.pi * k * f0 * n / sample_rate) for k, g in enumerate(gains, 1))
    assert y.shape == (1, n_samples) and y.dtype == torch.float32
    np.testing.assert_allclose(y[0].numpy(), ref, atol=2e-6)


def test_initial_phase_and_leading_dims():
    f0 = torch.full((2, 3, 10), 300.0)
    amp = torch.ones(2, 3, 10)
    dist = torch.ones(2, 3, 10, 2)
    phi0 = torch.linspace(0.0, 3.0, 6, dtype=torch.float32).reshape(2, 3)
    y = harmonic_synth(f0, amp, dist, sample_rate=8000, n_samples=501, initial_phase=phi0)
    assert y.shape == (2, 3, 501)
    n = np.arange(1, 502)
    for i in range(2):
        for j in range(3):
            ph = float(phi0[i, j]) + 2 * np.pi * 300.0 * n / 8000
            np.testing.assert_allclose(y[i, j].numpy(), np.sin(ph) + np.sin(2 * ph), atol=3e-6)


@pytest.mark.parametrize(
    "n_samples,n_frames,hop", [(4000, 40, None), (3001, 7, None), (2049, 9, 256.0), (1000, 333, 3.0)]
)
def test_time_varying_matches_float64_reference(n_samples, n_frames, hop):
    rng = np.random.default_rng(n_samples)
    f0 = rng.uniform(80, 1500, (2, n_frames))
    f0[0, n_frames // 3] = 0.0  # an unvoiced frame
    amps, dist = rng.uniform(0, 1, (2, n_frames)), rng.uniform(0, 1, (2, n_frames, 12))
    y = harmonic_synth(
        torch.tensor(f0, dtype=torch.float32),
        torch.tensor(amps, dtype=torch.float32),
        torch.tensor(dist, dtype=torch.float32),
        sample_rate=16000,
        n_samples=n_samples,
        hop_length=hop,
    )
    ref = numpy_harmonic_reference(
        f0.astype(np.float32), amps.astype(np.float32), dist.astype(np.float32), 16000, n_samples, hop
    )
    err_db = 10 * np.log10(np.sum((y.double().numpy() - ref) ** 2) / np.sum(ref**2))
    assert err_db < -80.0


def test_float64_inputs_give_float64_exact_result():
    rng = np.random.default_rng(0)
    f0, amps, dist = rng.uniform(100, 900, (1, 6)), rng.uniform(0, 1, (1, 6)), rng.uniform(0, 1, (1, 6, 20))
    y = harmonic_synth(torch.tensor(f0), torch.tensor(amps), torch.tensor(dist), sample_rate=8000, n_samples=777)
    assert y.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), numpy_harmonic_reference(f0, amps, dist, 8000, 777), atol=1e-9)


def test_nyquist_cut():
    sr, n, f0 = 12000, 4000, 2000.0  # harmonic 3 exactly at Nyquist, harmonic 4 above: both silent; 1 and 2 sound
    y = harmonic_synth(torch.full((1, 4), f0), torch.ones(1, 4), torch.ones(1, 4, 5), sample_rate=sr, n_samples=n)
    t = np.arange(1, n + 1)
    ref = np.sin(2 * np.pi * f0 * t / sr) + np.sin(2 * np.pi * 2 * f0 * t / sr)
    np.testing.assert_allclose(y[0].numpy(), ref, atol=1e-5)


def test_nyquist_mask_is_per_sample():
    # f0 glides so harmonic 2 crosses Nyquist half-way: it must switch off at the exact crossing sample
    sr, n = 8000, 2000
    f0 = torch.tensor([[1500.0, 2500.0]])  # k=2: 3000 Hz .. 5000 Hz, Nyquist 4000 Hz at sample ~1000
    y = harmonic_synth(
        f0, torch.ones(1, 2), torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]), sample_rate=sr, n_samples=n, hop_length=n - 1
    )
    ref = numpy_harmonic_reference(f0.numpy(), np.ones((1, 2)), np.array([[[0.0, 1.0], [0.0, 1.0]]]), sr, n, hop=n - 1)
    np.testing.assert_allclose(y[0].numpy(), ref[0], atol=2e-5)
    f_up = 1500.0 + 1000.0 * np.arange(n) / (n - 1)
    assert np.all(y[0].numpy()[2 * f_up >= sr / 2] == 0.0)
    assert np.abs(y[0].numpy()[2 * f_up < sr / 2]).max() > 0.9


def test_phase_has_no_drift_after_ten_minutes():
    sr, f0 = 44100, 440.0
    n = 10 * 60 * sr + 123
    y = harmonic_synth(torch.full((1, 2), f0), torch.ones(1, 2), torch.ones(1, 2, 1), sample_rate=sr, n_samples=n)
    tail = np.arange(n - 2000, n)
    # exact phase in integer arithmetic: 2 pi * ((440 (n + 1)) mod 44100) / 44100
    ref = np.sin(2 * np.pi * ((440 * (tail + 1)) % sr) / sr)
    np.testing.assert_allclose(y[0, -2000:].numpy(), ref, atol=2e-6)


def test_wrapped_cumsum_matches_exact_sum():
    from ddsp_demucs.dsp.synths import wrapped_cumsum

    rng = np.random.default_rng(0)
    inc = rng.uniform(0, 1, (2, 10007))
    start = rng.uniform(-10, 10, (2, 1))
    got = wrapped_cumsum(torch.tensor(inc), torch.tensor(start), block=64).numpy()
    ref = np.mod(start + np.cumsum(inc, axis=-1), 2 * np.pi)
    diff = np.angle(np.exp(1j * (got - ref)))
    assert np.abs(diff).max() < 1e-10 and got.min() >= 0 and got.max() < 2 * np.pi


# ------------------------------------------------------------------------------------------- filtered noise
def _average_response_db(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """Average magnitude response (dB) of filtered uniform noise (variance 1/3), Hann-windowed periodogram."""
    segs = audio.reshape(-1, n_fft)
    w = np.hanning(n_fft + 1)[:-1]
    psd = np.mean(np.abs(np.fft.rfft(segs * w, axis=-1)) ** 2, axis=0)
    return 10 * np.log10(psd / (np.sum(w**2) / 3.0))


@pytest.mark.parametrize("bands", [[1.0, 0.8, 0.5, 0.3, 0.3, 0.5, 0.8, 0.6, 0.4], [0.2, 1.0, 0.6, 0.1, 0.05]])
def test_noise_average_response_matches_bands(bands):
    n_fft, n_bands = 512, len(bands)
    mags = torch.tensor(bands).expand(16, 8, n_bands).contiguous()
    y = filtered_noise(mags, n_samples=n_fft * 64, generator=torch.Generator().manual_seed(0))
    resp = _average_response_db(y.double().numpy()[:, n_fft:-n_fft], n_fft)
    bins = np.round(np.arange(n_bands) * (n_fft // 2) / (n_bands - 1)).astype(int)
    smooth = np.convolve(resp, np.ones(5) / 5, mode="same")  # average 5 bins; edges use the raw estimate
    measured = np.where((bins > 2) & (bins < n_fft // 2 - 2), smooth[bins], resp[bins])
    np.testing.assert_allclose(measured, 20 * np.log10(bands), atol=1.0)


def test_noise_is_time_varying_by_frames():
    lowpass, highpass = [1.0, 0.5, 0.1, 0.02, 0.01], [0.01, 0.02, 0.1, 0.5, 1.0]
    mags = torch.tensor([lowpass] * 4 + [highpass] * 4).expand(8, 8, 5).contiguous()
    n = 8192 * 8
    y = filtered_noise(mags, n_samples=n, generator=torch.Generator().manual_seed(1)).double().numpy()
    first, second = (
        _average_response_db(y[:, 1024 : n // 2 - 8192], 512),
        _average_response_db(y[:, n // 2 + 8192 :], 512),
    )
    assert first[10] - first[250] > 30 and second[250] - second[10] > 30


def test_noise_filters_are_linear_phase_and_reproducible():
    mags = torch.rand(2, 5, 9)
    ir = noise_impulse_responses(mags, 65)
    torch.testing.assert_close(ir, ir.flip(-1))
    a = filtered_noise(mags, n_samples=1001, generator=torch.Generator().manual_seed(3))
    b = filtered_noise(mags, n_samples=1001, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 1001) and torch.equal(a, b)
    assert filtered_noise(mags[0], n_samples=77).shape == (77,)


def test_harmonic_phase_is_the_float64_reference_and_continues_a_synthesis():
    g = torch.Generator().manual_seed(4)
    f0 = torch.rand(2, 9, generator=g, dtype=torch.float64) * 300 + 80
    phi0 = torch.tensor([0.3, 5.0], dtype=torch.float64)
    n, hop = 1600, 200
    phase = harmonic_phase(f0, sample_rate=8000, n_samples=n, initial_phase=phi0, hop_length=hop)
    x = np.arange(n, dtype=np.float64)
    for b in range(2):
        ref = np.cumsum(2 * np.pi * np.interp(x, np.arange(9) * hop, f0[b].numpy()) / 8000) + float(phi0[b])
        np.testing.assert_allclose(np.exp(1j * phase[b].numpy()), np.exp(1j * ref), atol=1e-9)
    assert float(phase.min()) >= 0 and float(phase.max()) < 2 * np.pi
    # a synthesis of frames 4.. started with phase[m - 1] continues the whole one (constant frames, whole hops)
    amp, dist = torch.ones(2, 9, dtype=torch.float64), torch.rand(2, 9, 3, generator=g, dtype=torch.float64)
    whole = harmonic_synth(f0, amp, dist, sample_rate=8000, n_samples=n, initial_phase=phi0, hop_length=hop)
    m = 4 * hop
    tail = harmonic_synth(
        f0[:, 4:],
        amp[:, 4:],
        dist[:, 4:],
        sample_rate=8000,
        n_samples=n - m,
        initial_phase=phase[:, m - 1],
        hop_length=hop,
    )
    torch.testing.assert_close(tail[:, : 4 * hop], whole[:, m : m + 4 * hop], atol=1e-9, rtol=0)


def test_noise_filters_given_white_noise_as_drawn_noise():
    mags = torch.rand(2, 5, 9)
    drawn = filtered_noise(mags, n_samples=1001, generator=torch.Generator().manual_seed(3))
    white = torch.rand(2, 1001, generator=torch.Generator().manual_seed(3)) * 2 - 1
    torch.testing.assert_close(filtered_noise(mags, n_samples=1001, white_noise=white), drawn)
    with pytest.raises(ValueError, match="white_noise"):
        filtered_noise(mags, n_samples=1001, white_noise=white[:, :1000])


def test_noise_zero_magnitude_is_silent():
    assert torch.equal(filtered_noise(torch.zeros(1, 3, 4), n_samples=300), torch.zeros(1, 300))


def test_long_signal_with_harmonics_leaving_and_entering_the_band_matches_references():
    """Many chunks per row: where every harmonic is above Nyquist (skipped), where none reaches it (no mask) and
    where the cut moves; output against the float64 reference, gradients against a dense float64 oscillator bank."""
    from ddsp_demucs.dsp import upsample

    sr, n, n_frames, n_harm = 8000, 24000, 300, 40
    t = np.linspace(0.0, 1.0, n_frames)
    f0 = np.stack([100.0 + 4500.0 * (t > 0.6) + 300.0 * t, 150.0 + 900.0 * np.sin(np.pi * t) ** 2])
    rng = np.random.default_rng(3)
    amps, dist = rng.uniform(0.1, 1.0, (2, n_frames)), rng.uniform(0.0, 1.0, (2, n_frames, n_harm))
    inputs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (f0, amps, dist)]
    y = harmonic_synth(*inputs, sample_rate=sr, n_samples=n)
    ref = numpy_harmonic_reference(f0, amps, dist, sr, n)
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-8)  # the phase is wrapped, the reference's is not
    assert np.all(ref[0, int(0.61 * n) :] == 0.0)  # f0 above Nyquist there: those chunks are skipped
    g = torch.tensor(rng.standard_normal((2, n)))
    grads = torch.autograd.grad((y * g).sum(), inputs)

    dense = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (f0, amps, dist)]
    k = torch.arange(1, n_harm + 1, dtype=torch.float64)
    f_up = upsample(dense[0], n)[..., None]
    a_up = upsample(dense[1][..., None] * dense[2], n, dim=-2)
    phase = torch.cumsum(2 * np.pi * f_up / sr, dim=-2)
    y_dense = (a_up * (f_up.detach() * k < sr / 2) * torch.sin(k * phase)).sum(-1)
    ref_grads = torch.autograd.grad((y_dense * g).sum(), dense)
    for name, ours, theirs in zip(("f0", "amplitudes", "distribution"), grads, ref_grads):
        np.testing.assert_allclose(
            ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6 * theirs.abs().max().item(), err_msg=name
        )
