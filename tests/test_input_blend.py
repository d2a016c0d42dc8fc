"""Training inputs blended toward their targets (``training.input_blend_fraction``)."""

from __future__ import annotations

import pytest
import torch
from helpers import ListDataset, make_example, tiny_config

import ddsp_demucs.training.module as train_module
from ddsp_demucs.data.input_blend import blend_toward_target
from ddsp_demucs.dsp import a_weighted_loudness
from ddsp_demucs.training.module import BLEND_STREAM, BREATH_STREAM, DDSPLightningModule
from ddsp_demucs.training.trainer import train_from_config

RATE, FRAME_RATE = 16000, 250


def make_batch(n_windows: int, n_samples: int = 4000, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(n_windows, n_samples, generator=g) * 0.1
    inputs = target + 0.05 * torch.randn(n_windows, n_samples, generator=g)
    inputs[0, : n_samples // 2] = 0.0  # a stretch the separator silenced
    inputs[1, : n_samples // 2] = target[1, : n_samples // 2] = 0.0  # a silent stretch of the song
    loudness = a_weighted_loudness(inputs, sample_rate=RATE, frame_rate=FRAME_RATE)
    n_frames = loudness.shape[-1]
    return {
        "input_audio": inputs,
        "target_audio": target,
        "loudness_db": loudness,
        "f0_hz": torch.full((n_windows, n_frames), 220.0),
        "f0_confidence": torch.ones(n_windows, n_frames),
    }


def blend(batch: dict, fraction: float, seed: int = 0) -> dict:
    return blend_toward_target(
        batch, fraction=fraction, generator=torch.Generator().manual_seed(seed), sample_rate=RATE, frame_rate=FRAME_RATE
    )


def test_blended_inputs_lie_between_the_target_and_the_separated_input():
    batch = make_batch(6)
    out = blend(batch, 1.0)
    error, left = batch["input_audio"] - batch["target_audio"], out["input_audio"] - batch["target_audio"]
    alpha = (left * error).sum(-1) / (error * error).sum(-1)  # the least-squares scale of the error left
    assert torch.all((alpha >= 0) & (alpha <= 1)) and len(set(alpha.tolist())) == 6
    torch.testing.assert_close(left, alpha[:, None] * error, atol=1e-6, rtol=0)
    for key in ("target_audio", "f0_hz", "f0_confidence"):
        assert out[key] is batch[key]
    assert not torch.equal(out["input_audio"], batch["input_audio"])  # a copy: the batch itself is untouched
    torch.testing.assert_close(batch["input_audio"], make_batch(6)["input_audio"])


def test_loudness_of_a_blended_window_is_that_of_its_new_input():
    """The batch's loudness was measured on these very windows here, so the moved loudness must equal the
    blended input's own (where it is not the floor on either side)."""
    batch = make_batch(6)
    out = blend(batch, 1.0)
    expected = a_weighted_loudness(out["input_audio"], sample_rate=RATE, frame_rate=FRAME_RATE)
    audible = expected > -99.0
    torch.testing.assert_close(out["loudness_db"][audible], expected[audible], atol=1e-3, rtol=0)
    assert torch.all(out["loudness_db"][1, :10] == -100.0)  # the song's silence stays at the floor
    assert torch.all(out["loudness_db"][0, :10] > batch["loudness_db"][0, :10] + 20)  # the vocal put back


def test_fraction_of_windows_blended_and_reproducible_draws():
    batch = make_batch(2000, n_samples=400)
    changed = ~torch.all(blend(batch, 0.3)["input_audio"] == batch["input_audio"], dim=-1)
    assert 0.26 < float(changed.float().mean()) < 0.34
    torch.testing.assert_close(blend(batch, 0.3)["input_audio"], blend(batch, 0.3)["input_audio"], atol=0, rtol=0)
    assert not torch.equal(blend(batch, 0.3, seed=1)["input_audio"], blend(batch, 0.3)["input_audio"])
    assert torch.equal(blend(batch, 0.0)["input_audio"], batch["input_audio"])
    with pytest.raises(ValueError, match="fraction"):
        blend(batch, 1.5)


def test_training_blends_each_batch_from_its_own_stream(tmp_path, monkeypatch):
    calls = []

    def spy(batch, **kwargs):
        calls.append(kwargs)
        return blend_toward_target(batch, **kwargs)

    monkeypatch.setattr(train_module, "blend_toward_target", spy)
    train = ListDataset([make_example(s, n_samples=8192) for s in range(8)])
    val = ListDataset([make_example(1000 + s, n_samples=8192) for s in range(4)])
    config = tiny_config("training.max_steps=2", "training.val_every_steps=2", "training.input_blend_fraction=0.5")
    train_from_config(config, train, val, tmp_path)
    assert len(calls) == 2  # training steps only, not validation
    assert {(c["fraction"], c["sample_rate"], c["frame_rate"]) for c in calls} == {
        (0.5, config.data.train_sr, config.data.frame_rate)
    }
    module = DDSPLightningModule(config=config)
    draws = [torch.rand(4, generator=module._draw_generator(i, BLEND_STREAM)) for i in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert not torch.equal(draws[0], torch.rand(4, generator=module._noise_generator(0)))
    assert not torch.equal(draws[0], torch.rand(4, generator=module._draw_generator(0, BREATH_STREAM)))

    calls.clear()
    train_from_config(tiny_config("training.max_steps=2", "training.val_every_steps=2"), train, val, tmp_path / "b")
    assert calls == []  # off by default
