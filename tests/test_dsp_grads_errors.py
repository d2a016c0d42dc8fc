"""Gradients of every differentiable input against finite differences, shape handling, and the errors bad
inputs raise."""

from __future__ import annotations

import math

import pytest
import torch

from ddsp_demucs.dsp import (
    MultiResolutionSTFTLoss,
    Reverb,
    a_weighted_loudness,
    fft_convolve,
    filtered_noise,
    harmonic_synth,
    log_spectral_distance,
    spectral_convergence,
)

SR, N, F, K = 8000, 401, 5, 4


def _controls():
    """Float64 inputs away from the kinks of |.|, sqrt and log (every value positive, signals random)."""
    g = torch.Generator().manual_seed(0)
    d = dict(dtype=torch.float64)
    return dict(
        f0=(torch.rand(2, F, generator=g, **d) * 300 + 100),
        amp=torch.rand(2, F, generator=g, **d) + 0.1,
        dist=torch.rand(2, F, K, generator=g, **d) + 0.1,
        noise=torch.rand(2, F, 9, generator=g, **d) + 0.1,
        audio=torch.randn(2, N, generator=g, **d),
        target=torch.randn(2, N, generator=g, **d),
    )


def _harm(c):
    return harmonic_synth(c["f0"], c["amp"], c["dist"], sample_rate=SR, n_samples=N).pow(2).sum()


def _noise(c):  # the same noise stream at every evaluation
    return filtered_noise(c["noise"], n_samples=N, generator=torch.Generator().manual_seed(3)).pow(2).sum()


LOSS_FFT = (128, 64)
GRAD_CASES = {
    "harmonic f0": ("f0", _harm),
    "harmonic amplitudes": ("amp", _harm),
    "harmonic distribution": ("dist", _harm),
    "noise magnitudes": ("noise", _noise),
    "fft_convolve audio": (
        "audio",
        lambda c: fft_convolve(c["audio"], torch.ones(2, 5, dtype=torch.float64)).pow(2).sum(),
    ),
    "loudness audio": ("audio", lambda c: a_weighted_loudness(c["audio"], sample_rate=SR, frame_rate=100).sum()),
    "mrstft estimate": ("audio", lambda c: MultiResolutionSTFTLoss(fft_sizes=LOSS_FFT)(c["audio"], c["target"])),
    "mrstft target": ("target", lambda c: MultiResolutionSTFTLoss(fft_sizes=LOSS_FFT)(c["audio"], c["target"])),
    "spectral convergence": (
        "audio",
        lambda c: spectral_convergence(c["audio"], c["target"], n_fft=128, hop_length=32).sum(),
    ),
    "log spectral distance": (
        "audio",
        lambda c: log_spectral_distance(c["audio"], c["target"], n_fft=128, hop_length=32).sum(),
    ),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradient_table_matches_finite_differences(case):
    """Each input's gradient equals central finite differences (float64; gradcheck's fast mode projects the
    Jacobian on random vectors) and is not zero."""
    name, fn = GRAD_CASES[case]
    c = _controls()

    def of_input(x):
        return fn({**c, name: x})

    x = c[name].clone().requires_grad_()
    assert torch.autograd.gradcheck(of_input, (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    of_input(x).backward()
    assert x.grad.abs().sum() > 0


def test_reverb_ir_gradient():
    """The impulse response's gradient matches finite differences; its first tap is the fixed dry path."""
    rev = Reverb(50).double()
    audio = torch.randn(2, 300, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ir = rev.ir.detach().clone().requires_grad_()

    def with_ir(weights):
        return torch.func.functional_call(rev, {"ir": weights}, (audio,)).pow(2).sum()

    assert torch.autograd.gradcheck(with_ir, (ir,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    rev.ir.grad = None
    rev(audio).pow(2).sum().backward()
    assert rev.ir.grad[1:].abs().sum() > 0 and rev.ir.grad[0] == 0


def test_harmonic_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    f0 = (torch.rand(1, 4, generator=g, dtype=torch.float64) * 200 + 100).requires_grad_()
    amp = torch.rand(1, 4, generator=g, dtype=torch.float64).requires_grad_()
    dist = torch.rand(1, 4, 3, generator=g, dtype=torch.float64).requires_grad_()
    phi0 = torch.rand(1, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda f, a, d, p: harmonic_synth(f, a, d, sample_rate=1000, n_samples=53, initial_phase=p, hop_length=17.5),
        (f0, amp, dist, phi0),
    )


@pytest.mark.parametrize("n_samples,n_frames", [(1, 1), (17, 3), (1001, 10), (999, 1000)])
def test_shapes_batch_one_odd_lengths(n_samples, n_frames):
    y = harmonic_synth(
        torch.full((1, n_frames), 200.0),
        torch.ones(1, n_frames),
        torch.ones(1, n_frames, 3),
        sample_rate=SR,
        n_samples=n_samples,
    )
    assert y.shape == (1, n_samples) and torch.isfinite(y).all()
    assert filtered_noise(torch.ones(1, n_frames, 4), n_samples=n_samples).shape == (1, n_samples)


def _nan(shape):
    x = torch.ones(shape)
    x.view(-1)[0] = math.nan
    return x


ERROR_CASES = {
    "harmonic f0 NaN": (
        lambda: harmonic_synth(_nan((1, F)), torch.ones(1, F), torch.ones(1, F, K), sample_rate=SR, n_samples=N),
        "f0_hz contains NaN",
    ),
    "harmonic amplitudes NaN": (
        lambda: harmonic_synth(torch.ones(1, F), _nan((1, F)), torch.ones(1, F, K), sample_rate=SR, n_samples=N),
        "amplitudes contains NaN",
    ),
    "harmonic zero sample rate": (
        lambda: harmonic_synth(torch.ones(1, F), torch.ones(1, F), torch.ones(1, F, K), sample_rate=0, n_samples=N),
        "sample_rate must be a positive",
    ),
    "harmonic negative sample rate": (
        lambda: harmonic_synth(torch.ones(1, F), torch.ones(1, F), torch.ones(1, F, K), sample_rate=-8000, n_samples=N),
        "sample_rate must be a positive",
    ),
    "harmonic shape mismatch": (
        lambda: harmonic_synth(
            torch.ones(1, F), torch.ones(1, F + 1), torch.ones(1, F, K), sample_rate=SR, n_samples=N
        ),
        "must agree",
    ),
    "harmonic negative amplitude": (
        lambda: harmonic_synth(torch.ones(1, F), -torch.ones(1, F), torch.ones(1, F, K), sample_rate=SR, n_samples=N),
        "amplitudes must be >= 0",
    ),
    "harmonic zero samples": (
        lambda: harmonic_synth(torch.ones(1, F), torch.ones(1, F), torch.ones(1, F, K), sample_rate=SR, n_samples=0),
        "n_samples must be a positive",
    ),
    "noise NaN": (lambda: filtered_noise(_nan((1, F, 4)), n_samples=N), "magnitudes contains NaN"),
    "noise 1-D": (lambda: filtered_noise(torch.ones(4), n_samples=N), "at least 2 dimension"),
    "noise even window": (lambda: filtered_noise(torch.ones(1, F, 4), n_samples=N, window_size=64), "odd"),
    "loudness zero sample rate": (
        lambda: a_weighted_loudness(torch.ones(1, N), sample_rate=0, frame_rate=100),
        "sample_rate must be a positive",
    ),
    "loudness negative frame rate": (
        lambda: a_weighted_loudness(torch.ones(1, N), sample_rate=SR, frame_rate=-1),
        "frame_rate must be a positive",
    ),
    "loudness NaN audio": (
        lambda: a_weighted_loudness(_nan((1, N)), sample_rate=SR, frame_rate=100),
        "audio contains NaN",
    ),
    "loudness too short": (
        lambda: a_weighted_loudness(torch.ones(1, 10), sample_rate=SR, frame_rate=100),
        "shorter than one frame",
    ),
    "loss shape mismatch": (lambda: MultiResolutionSTFTLoss()(torch.ones(1, N), torch.ones(1, N + 1)), "same shape"),
    "convolve bad dims": (lambda: fft_convolve(torch.ones(N), torch.ones(1, 2, 3)), "impulse_response must have"),
    "convolve bad delay": (lambda: fft_convolve(torch.ones(1, N), torch.ones(1, 3), delay=3), "delay must be"),
    "reverb bad length": (lambda: Reverb(0), "length must be a positive"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_inputs_raise_clear_errors(case):
    fn, message = ERROR_CASES[case]
    with pytest.raises(ValueError, match=message):
        fn()
