"""The breath-noise augmentation: noise shaped like the true vocal, at the drawn share of its power, added alike to
target, input and mixture; reproducible draws; training calls it from its own stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import ListDataset, make_example, tiny_config

import ddsp_demucs.training.module as train_module
from ddsp_demucs.data.breath_noise import ENVELOPE_BINS, N_FFT, add_breath_noise, vocal_shaped_noise
from ddsp_demucs.dsp import a_weighted_loudness
from ddsp_demucs.metrics import interharmonic_share
from ddsp_demucs.training.trainer import train_from_config

SR, FRAME_RATE = 22050, 250


def harmonic_vocal(n_windows: int, n_samples: int = SR, f0: float = 220.0) -> torch.Tensor:
    t = torch.arange(n_samples, dtype=torch.float64) / SR
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 30) if k * f0 < SR / 2)
    return (0.1 * tone).float().expand(n_windows, -1).clone()


def make_batch(n_windows: int, n_samples: int = SR) -> dict:
    target = harmonic_vocal(n_windows, n_samples)
    error = 0.02 * torch.randn(n_windows, n_samples, generator=torch.Generator().manual_seed(3))
    accompaniment = 0.05 * torch.randn(n_windows, n_samples, generator=torch.Generator().manual_seed(4))
    inputs = target + error
    loudness = a_weighted_loudness(inputs, sample_rate=SR, frame_rate=FRAME_RATE)
    return {
        "target_audio": target,
        "input_audio": inputs,
        "mixture_audio": target + accompaniment,
        "loudness_db": loudness,
        "f0_hz": torch.full_like(loudness, 220.0),
    }


def breathe(batch: dict, fraction: float = 1.0, max_share: float = 0.1, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return add_breath_noise(
        batch, fraction=fraction, max_share=max_share, generator=generator, sample_rate=SR, frame_rate=FRAME_RATE
    )


def test_noise_follows_the_vocal_envelope_not_its_harmonics():
    vocal = harmonic_vocal(1)
    noise = vocal_shaped_noise(vocal, torch.Generator().manual_seed(0))
    assert noise.shape == vocal.shape

    # the vocal's spectral balance: the share of power below 1 kHz (the tone's 1/k^2 harmonics put 97 % there)
    def low_share(x: torch.Tensor) -> float:
        power = torch.fft.rfft(x[0].double()).abs().square()
        return float(power[: int(1000 * x.shape[-1] / SR)].sum() / power.sum())

    assert abs(low_share(noise) - low_share(vocal)) < 0.1
    f0 = np.full(FRAME_RATE, 220.0)
    assert interharmonic_share(vocal[0].numpy(), SR, f0, FRAME_RATE, n_fft=N_FFT * 4) < 0.01
    assert interharmonic_share(noise[0].numpy(), SR, f0, FRAME_RATE, n_fft=N_FFT * 4) > 0.5
    assert ENVELOPE_BINS % 2 == 1  # a centred average


def test_the_same_noise_goes_into_target_input_and_mixture_at_the_drawn_share():
    batch = make_batch(6)
    out = breathe(batch, max_share=0.2)
    added = out["target_audio"] - batch["target_audio"]
    for key in ("input_audio", "mixture_audio"):
        torch.testing.assert_close(out[key] - batch[key], added, atol=1e-6, rtol=0)
    # the separator's error is unchanged
    torch.testing.assert_close(
        out["input_audio"] - out["target_audio"], batch["input_audio"] - batch["target_audio"], atol=1e-6, rtol=0
    )
    generator = torch.Generator().manual_seed(0)
    torch.rand(6, generator=generator)  # the windows chosen
    shares = torch.rand(6, generator=generator) * 0.2
    measured = added.square().sum(-1) / batch["target_audio"].square().sum(-1)
    torch.testing.assert_close(measured, shares, atol=1e-5, rtol=1e-4)


def test_loudness_moves_with_the_input():
    batch = make_batch(2)
    out = breathe(batch, max_share=1.0)
    expected = a_weighted_loudness(out["input_audio"], sample_rate=SR, frame_rate=FRAME_RATE)
    inner = slice(10, -10)  # frames away from the window's edges match a loudness measured on the window alone
    torch.testing.assert_close(out["loudness_db"][:, inner], expected[:, inner], atol=1e-3, rtol=0)
    assert torch.equal(out["f0_hz"], batch["f0_hz"])


def test_fraction_reproducibility_and_bad_arguments():
    batch = make_batch(1000, n_samples=2048)
    changed = ~torch.all(breathe(batch, 0.3)["target_audio"] == batch["target_audio"], dim=-1)
    assert 0.25 < float(changed.float().mean()) < 0.35
    assert torch.equal(breathe(batch, 0.3)["target_audio"], breathe(batch, 0.3)["target_audio"])
    assert not torch.equal(breathe(batch, 0.3, seed=1)["target_audio"], breathe(batch, 0.3)["target_audio"])
    assert torch.equal(breathe(batch, 0.0)["input_audio"], batch["input_audio"])
    assert torch.equal(breathe(batch, 1.0, max_share=0.0)["input_audio"], batch["input_audio"])
    with pytest.raises(ValueError, match="fraction"):
        breathe(batch, 1.5)


def test_training_adds_breath_noise_when_configured(tmp_path, monkeypatch):
    calls = []

    def spy(batch, **kwargs):
        calls.append(kwargs)
        return add_breath_noise(batch, **kwargs)

    monkeypatch.setattr(train_module, "add_breath_noise", spy)
    train = ListDataset([make_example(s, n_samples=8192) for s in range(8)])
    val = ListDataset([make_example(1000 + s, n_samples=8192) for s in range(4)])
    overrides = ("training.breath_noise_fraction=0.5", "training.breath_noise_max_share=0.2")
    config = tiny_config("training.max_steps=2", "training.val_every_steps=2", *overrides)
    train_from_config(config, train, val, tmp_path)
    assert len(calls) == 2  # training steps only
    assert {(c["fraction"], c["max_share"], c["sample_rate"]) for c in calls} == {(0.5, 0.2, config.data.train_sr)}
    calls.clear()
    train_from_config(tiny_config("training.max_steps=2", "training.val_every_steps=2"), train, val, tmp_path / "b")
    assert calls == []  # off by default
