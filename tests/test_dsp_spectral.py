"""MultiResolutionSTFTLoss, spectral_convergence and log_spectral_distance: zero on equal inputs and closed
forms on stationary cosines (each frame holds whole periods of a cosine on a bin centre, whose periodic-Hann
spectrum is exactly n/4 at the bin and n/8 at its two neighbours, 0 elsewhere); separation_ambiguity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.train import autograd_mrstft
from ddsp_demucs.dsp import (
    MultiResolutionSTFTLoss,
    log_spectral_distance,
    separation_ambiguity,
    separator_mask,
    spectral_convergence,
    stft,
    stft_magnitude,
)

PERIOD = 16  # samples: a bin centre for every FFT size that is a multiple of 16
N = 8 * 512 + 1  # (N - 1) a multiple of PERIOD / 2, so reflect padding continues the cosine exactly


def cosine(amp: float) -> torch.Tensor:
    return amp * torch.cos(2 * math.pi * torch.arange(N, dtype=torch.float64) / PERIOD)[None]


def test_stft_magnitude_of_cosine_is_closed_form():
    mag = stft_magnitude(cosine(2.0), 64, 16)[0]
    k0 = 64 // PERIOD
    np.testing.assert_allclose(mag[k0].numpy(), 2.0 * 64 / 4, rtol=1e-9)
    np.testing.assert_allclose(mag[k0 + 1].numpy(), 2.0 * 64 / 8, rtol=1e-9)
    others = torch.ones(mag.shape[0], dtype=torch.bool)
    others[k0 - 1 : k0 + 2] = False
    assert float(mag[others].abs().max()) < 1e-9


@pytest.mark.parametrize("sizes,a,b", [((256, 128, 64), 0.5, 2.0), ((64,), 1.0, 0.3), ((512, 64), 3.0, 3.5)])
def test_mrstft_loss_closed_form_on_cosines(sizes, a, b):
    loss = MultiResolutionSTFTLoss(fft_sizes=sizes, overlap=0.75, mag_weight=1.0, logmag_weight=1.0)
    got = float(loss(cosine(a), cosine(b)))
    expected = sum((n / 2) / (n / 2 + 1) * abs(a - b) + 3 / (n / 2 + 1) * abs(math.log(a / b)) for n in sizes)
    assert got == pytest.approx(expected, rel=1e-5)  # zero bins: float64 noise ~1e-13 against eps 1e-7
    lin_only = MultiResolutionSTFTLoss(fft_sizes=sizes, logmag_weight=0.0)
    assert float(lin_only(cosine(a), cosine(b))) == pytest.approx(
        sum((n / 2) / (n / 2 + 1) * abs(a - b) for n in sizes), rel=1e-9
    )


@pytest.mark.parametrize("shape", [(1, 4000), (3, 1001), (2, 2, 513), (100,)])
def test_losses_zero_on_equal_inputs(shape):
    x = torch.randn(*shape)
    assert float(MultiResolutionSTFTLoss()(x, x)) == 0.0
    assert torch.all(spectral_convergence(x, x, n_fft=256, hop_length=64) == 0)
    assert torch.all(log_spectral_distance(x, x, n_fft=256, hop_length=64) == 0)
    assert spectral_convergence(x, x, n_fft=256, hop_length=64).shape == shape[:-1]


def test_spectral_distances_closed_form_on_cosines():
    a, b, n = 0.5, 2.0, 64
    sc = spectral_convergence(cosine(a), cosine(b), n_fft=n, hop_length=16)
    assert float(sc[0]) == pytest.approx(abs(a - b) / b, rel=1e-9)
    lsd = log_spectral_distance(cosine(a), cosine(b), n_fft=n, hop_length=16, floor=1e-12)
    assert float(lsd[0]) == pytest.approx(math.sqrt(3 / (n / 2 + 1)) * abs(20 * math.log10(a / b)), rel=1e-6)


def reference_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Float64 STFT magnitude ``(bins, frames)`` in numpy: periodic Hann, frames centred by reflect padding."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)], axis=1)
    return np.abs(np.fft.rfft(frames * window[:, None], axis=0))


@pytest.mark.parametrize("n_fft, hop", [(256, 64), (512, 128), (256, 100)])
def test_spectral_distances_match_a_float64_numpy_reference_in_both_modules(n_fft, hop):
    """``ddsp_demucs.metrics`` (numpy in) and ``ddsp_demucs.dsp`` (torch in) against the definitions in float64
    numpy, per example: an independent and a close estimate, the default floor and another, a hop that divides the
    FFT size and one that does not."""
    from ddsp_demucs import metrics

    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3001))
    for x in (rng.standard_normal((2, 3001)), 0.8 * y + 0.2 * rng.standard_normal((2, 3001))):
        for floor in (None, 1.0):
            sc_ref, lsd_ref = [], []
            for xi, yi in zip(x, y):
                X, Y = reference_magnitude(xi, n_fft, hop), reference_magnitude(yi, n_fft, hop)
                sc_ref.append(np.linalg.norm(X - Y) / (np.linalg.norm(Y) + 1e-12))
                power_floor = 1e-10 if floor is None else floor  # the documented default
                log_ratio = 10 * np.log10((X**2 + power_floor) / (Y**2 + power_floor))
                lsd_ref.append(np.mean(np.sqrt(np.mean(log_ratio**2, axis=0))))
            floor_arg = {} if floor is None else {"floor": floor}
            for sc_fn, lsd_fn, args in (
                (metrics.spectral_convergence, metrics.log_spectral_distance, (x, y)),
                (spectral_convergence, log_spectral_distance, (torch.from_numpy(x), torch.from_numpy(y))),
            ):
                sc = np.asarray(sc_fn(*args, n_fft=n_fft, hop_length=hop))
                lsd = np.asarray(lsd_fn(*args, n_fft=n_fft, hop_length=hop, **floor_arg))
                assert sc.shape == lsd.shape == (2,)
                np.testing.assert_allclose(sc, sc_ref, rtol=1e-9)
                np.testing.assert_allclose(lsd, lsd_ref, rtol=1e-9)


@pytest.mark.parametrize("mag_weight, logmag_weight", [(1.0, 1.0), (0.0, 2.0), (0.5, 0.0)])
def test_mrstft_value_and_gradients_match_autograd_in_float64(mag_weight, logmag_weight):
    """Value and both gradients against the same formula differentiated by autograd, float64, with a silent
    stretch in the estimate (bins of magnitude zero: gradient zero there, as ``abs`` gives)."""
    gen = torch.Generator().manual_seed(0)
    sizes = (256, 64)
    est = torch.randn(2, 2000, generator=gen, dtype=torch.float64)
    est[:, 600:1400] = 0.0
    tgt = torch.randn(2, 2000, generator=gen, dtype=torch.float64)
    grads = []
    for fn in (
        lambda e, t: MultiResolutionSTFTLoss(fft_sizes=sizes, mag_weight=mag_weight, logmag_weight=logmag_weight)(e, t),
        lambda e, t: autograd_mrstft(e, t, sizes, [n // 4 for n in sizes], mag_weight, logmag_weight),
    ):
        e, t = est.clone().requires_grad_(), tgt.clone().requires_grad_()
        value = fn(e, t)
        value.backward()
        grads.append((value.detach(), e.grad, t.grad))
    (v_new, ge_new, gt_new), (v_ref, ge_ref, gt_ref) = grads
    torch.testing.assert_close(v_new, v_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(ge_new, ge_ref, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(gt_new, gt_ref, rtol=1e-9, atol=1e-15)
    assert float(ge_new.abs().max()) > 0 and float(gt_new.abs().max()) > 0


@pytest.mark.parametrize(
    "n_samples, n_fft, hop",
    [(2000, 256, 64), (2000, 255, 64), (1500, 200, 30), (100, 64, 16), (20, 64, 7)],  # even, odd, hop not
)  # dividing n_fft, long enough to reflect, too short to reflect (zero padding)
def test_stft_gradient_matches_torch_stft_autograd(n_samples, n_fft, hop):
    """The closed-form backward of the framing and FFT against torch.stft's own autograd, float64, for a
    random complex cotangent on a (2, 3, n) batch."""
    gen = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 3, n_samples, generator=gen, dtype=torch.float64)
    pad_mode = "reflect" if n_samples > n_fft // 2 else "constant"
    window = torch.hann_window(n_fft, dtype=torch.float64)
    results = []
    for fn in (
        lambda a: stft(a, n_fft, hop),
        lambda a: torch.stft(
            a.reshape(-1, n_samples), n_fft, hop, window=window, center=True, pad_mode=pad_mode, return_complex=True
        ).reshape(2, 3, n_fft // 2 + 1, -1),
    ):
        a = audio.clone().requires_grad_()
        spec = fn(a)
        cotangent = torch.randn(spec.shape, generator=torch.Generator().manual_seed(2), dtype=torch.complex128)
        (spec.real * cotangent.real + spec.imag * cotangent.imag).sum().backward()
        results.append((spec.detach(), a.grad))
    (spec_new, grad_new), (spec_ref, grad_ref) = results
    torch.testing.assert_close(spec_new, spec_ref, rtol=0, atol=0)
    torch.testing.assert_close(grad_new, grad_ref, rtol=1e-10, atol=1e-12)


def test_stft_gradient_passes_gradcheck():
    """Finite differences, independent of any STFT implementation's backward."""
    audio = torch.randn(2, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: torch.view_as_real(stft(a, 16, 6)), (audio,))


def test_separation_ambiguity_closed_form_and_float64_reference():
    mixture = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0])
    separated = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, 0.0, 1.0])  # m = 0, 1/4, 1/2, 1, >1, silent, silent
    expected = torch.tensor([0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert torch.equal(separation_ambiguity(separated, mixture), expected)
    assert torch.equal(separator_mask(separated, mixture), torch.tensor([0.0, 0.25, 0.5, 1.0, 1.0, 0.0, 0.0]))
    rng = np.random.default_rng(0)
    s, m = rng.uniform(0, 2, (3, 33, 20)), rng.uniform(0.01, 2, (3, 33, 20))
    ratio = np.clip(s / m, 0, 1)
    got = separation_ambiguity(torch.from_numpy(s), torch.from_numpy(m))
    np.testing.assert_allclose(got.numpy(), 4 * ratio * (1 - ratio), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="one shape"):
        separation_ambiguity(torch.ones(3, 4), torch.ones(4, 3))
