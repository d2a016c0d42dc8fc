"""The same command gives the same figures (issue 27): a short pipeline, features (CREPE-tiny F0, loudness) then
training, run twice in the same conditions gives the same model bit for bit; another seed does not."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import SR, ListDataset, batch_of, make_example, tiny_config

from ddsp_demucs.features import compute_features
from ddsp_demucs.training.checkpoints import load_model
from ddsp_demucs.training.trainer import train_from_config

N_SAMPLES = 8192


def _pipeline(out: Path, seed: int) -> tuple[list[dict], dict, torch.Tensor]:
    """Features of 8 synthetic examples, a 3-step training run on them into ``out``, and the trained model's output
    on a held-out example: ``(features, checkpoint state dict, output audio)``."""
    config = tiny_config("training.max_steps=3", f"training.seed={seed}")
    features, items = [], []
    for s in range(8):
        example = make_example(s, n_samples=N_SAMPLES)
        feats = compute_features(example["input_audio"].numpy(), SR, config)
        features.append(feats)
        items.append(
            {
                **example,
                "f0_hz": torch.from_numpy(feats["f0_hz"]),
                "f0_confidence": torch.from_numpy(feats["confidence"]),
                "loudness_db": torch.from_numpy(feats["loudness_db"]),
            }
        )
    result = train_from_config(config, ListDataset(items), None, out, resume=False, enable_progress_bar=False)
    checkpoint = Path(result["last_checkpoint"])
    model = load_model(checkpoint)
    batch = batch_of([make_example(99, n_samples=N_SAMPLES)])
    with torch.no_grad():
        audio = model(batch, generator=torch.Generator().manual_seed(1))["audio"]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return features, state, audio


def test_same_pipeline_twice_gives_the_same_model_bit_for_bit(tmp_path, one_thread):
    features, state, audio = _pipeline(tmp_path / "first", seed=0)
    features_again, state_again, audio_again = _pipeline(tmp_path / "second", seed=0)
    for a, b in zip(features, features_again):
        for key in ("f0_hz", "confidence", "loudness_db"):
            assert a[key].tobytes() == b[key].tobytes(), key
    assert state.keys() == state_again.keys()
    for key in state:
        assert torch.equal(state[key], state_again[key]), key
    assert torch.equal(audio, audio_again)
    _, _, other_seed = _pipeline(tmp_path / "other_seed", seed=1)  # the comparison can fail
    assert not torch.equal(audio, other_seed)
