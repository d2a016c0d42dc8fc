"""The F0-error augmentation: each kind of tracker error on one span of frames, audio untouched, reproducible
draws; training calls it from its own stream."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import ListDataset, make_example, tiny_config

import ddsp_demucs.training.module as train_module
from ddsp_demucs.data.f0_errors import ERROR_KINDS, MIN_SPAN, RATIO_ERRORS, WRONG_PITCH_HZ, add_f0_errors
from ddsp_demucs.training.trainer import train_from_config

N_FRAMES = 200
VOICED_F0 = 220.0


def make_batch(n_windows: int) -> dict:
    """Voiced at 220 Hz (confidence 0.9) except the last quarter (0 Hz, confidence 0.1), plus audio."""
    f0 = torch.full((n_windows, N_FRAMES), VOICED_F0)
    f0[:, 3 * N_FRAMES // 4 :] = 0.0
    audio = torch.randn(n_windows, 1024, generator=torch.Generator().manual_seed(1))
    return {
        "f0_hz": f0,
        "f0_confidence": torch.where(f0 > 0, 0.9, 0.1),
        "input_audio": audio,
        "target_audio": audio.clone(),
        "track": ["song"] * n_windows,
    }


def drawn(n_windows: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The draws add_f0_errors makes, in its order."""
    generator = torch.Generator().manual_seed(seed)
    names = ("chosen", "kind", "start", "share", "pitch", "confidence")
    values = [torch.rand(n_windows, generator=generator)]
    values.append(torch.randint(len(ERROR_KINDS), (n_windows,), generator=generator))
    values += [torch.rand(n_windows, generator=generator) for _ in range(4)]
    return dict(zip(names, values))


def test_each_window_gets_one_error_of_the_drawn_kind_on_the_drawn_span():
    n = 400
    batch = make_batch(n)
    out = add_f0_errors(batch, fraction=1.0, generator=torch.Generator().manual_seed(0))
    draws = drawn(n)
    seen = set()
    for row in range(n):
        kind = ERROR_KINDS[int(draws["kind"][row])]
        seen.add(kind)
        first = int(draws["start"][row] * N_FRAMES)
        share = MIN_SPAN + (1 - MIN_SPAN) * float(draws["share"][row])
        span = torch.zeros(N_FRAMES, dtype=torch.bool)
        span[first : first + max(1, round(share * N_FRAMES))] = True
        f0, conf = out["f0_hz"][row], out["f0_confidence"][row]
        old_f0, old_conf = batch["f0_hz"][row], batch["f0_confidence"][row]
        assert torch.equal(f0[~span], old_f0[~span]) and torch.equal(conf[~span], old_conf[~span])
        if kind in RATIO_ERRORS:
            torch.testing.assert_close(f0[span], old_f0[span] * RATIO_ERRORS[kind])  # unvoiced frames stay 0
            assert torch.equal(conf, old_conf)
        elif kind == "wrong_pitch":
            pitch = float(f0[span][0])
            assert torch.all(f0[span] == pitch) and WRONG_PITCH_HZ[0] <= pitch <= WRONG_PITCH_HZ[1]
            low, high = (math.log(f) for f in WRONG_PITCH_HZ)
            assert pitch == pytest.approx(math.exp(low + (high - low) * float(draws["pitch"][row])), rel=1e-5)
            assert torch.all(conf[span] >= 0.5) and torch.all(conf[span] >= old_conf[span])
        else:
            assert torch.all(f0[span] == 0) and torch.all(conf[span] < 0.5)
    assert seen == set(ERROR_KINDS)
    for key in ("input_audio", "target_audio", "track"):
        assert out[key] is batch[key]  # audio is not touched


def test_fraction_reproducibility_and_bad_arguments():
    batch = make_batch(2000)

    def corrupt(fraction: float, seed: int = 0) -> torch.Tensor:
        return add_f0_errors(batch, fraction=fraction, generator=torch.Generator().manual_seed(seed))["f0_hz"]

    changed = (corrupt(0.3) != batch["f0_hz"]).any(dim=-1)
    # a ratio error on a span of unvoiced frames only changes nothing: about 24 % differ
    assert 0.20 < float(changed.float().mean()) < 0.30
    assert torch.equal(corrupt(0.3), corrupt(0.3))
    assert not torch.equal(corrupt(0.3, seed=1), corrupt(0.3))
    assert torch.equal(corrupt(0.0), batch["f0_hz"])
    assert torch.equal(batch["f0_hz"][:, 0], torch.full((2000,), VOICED_F0))  # the input batch is not changed
    with pytest.raises(ValueError, match="fraction"):
        corrupt(1.5)


def test_training_adds_f0_errors_when_configured(tmp_path, monkeypatch):
    calls = []

    def spy(batch, **kwargs):
        calls.append(kwargs)
        return add_f0_errors(batch, **kwargs)

    monkeypatch.setattr(train_module, "add_f0_errors", spy)
    train = ListDataset([make_example(s, n_samples=8192) for s in range(8)])
    val = ListDataset([make_example(1000 + s, n_samples=8192) for s in range(4)])
    config = tiny_config("training.max_steps=2", "training.val_every_steps=2", "training.f0_error_fraction=0.4")
    train_from_config(config, train, val, tmp_path)
    assert [c["fraction"] for c in calls] == [0.4, 0.4]  # training steps only
    seeds = {c["generator"].initial_seed() for c in calls}
    assert len(seeds) == 2  # a stream of its own per batch
    calls.clear()
    train_from_config(tiny_config("training.max_steps=2", "training.val_every_steps=2"), train, val, tmp_path / "b")
    assert calls == []  # off by default
