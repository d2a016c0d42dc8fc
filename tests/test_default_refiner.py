"""Exported models (safetensors weights and a JSON card, nothing that runs code when read) and the default refiner
the package ships in that form, which ``ddsp-demucs refine`` uses when no --checkpoint is given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_file
from helpers import make_example, refine_cli, write
from helpers import song as make_song
from safetensors.torch import load_file, save_file

from ddsp_demucs import InputError
from ddsp_demucs.training import checkpoints
from ddsp_demucs.training.checkpoints import CARD_KEYS, DEFAULT_REFINER, card_path, export_model, load_model
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, load_checkpoint

MAX_SHIPPED_BYTES = 10 * 1024 * 1024


def outputs(model: torch.nn.Module) -> torch.Tensor:
    batch = {k: v[None] for k, v in make_example(3, n_samples=4096).items() if torch.is_tensor(v)}
    with torch.no_grad():
        return model(batch, generator=torch.Generator().manual_seed(0))["audio"]


def test_an_exported_model_is_the_checkpoints_model_from_plain_files(tmp_path, checkpoint):
    weights = tmp_path / "refiner.safetensors"
    card_file = export_model(checkpoint, weights, {"figures": {"fallback": 1.5}, "licence": "CC0"})
    assert card_file == tmp_path / "refiner.json" and str(card_file) == card_path(weights)
    card = json.loads(card_file.read_text())
    meta = load_checkpoint(checkpoint)[CHECKPOINT_KEY]
    assert all(card[key] == json.loads(json.dumps(meta[key])) for key in CARD_KEYS)
    assert card["figures"] == {"fallback": 1.5} and card["licence"] == "CC0" and len(card["weights_sha256"]) == 64
    original, exported = load_model(checkpoint), load_model(weights)
    assert load_file(weights).keys() == original.state_dict().keys()
    assert type(exported) is type(original) and not exported.training
    assert exported.config == original.config and exported.provenance == original.provenance
    assert exported.card["figures"] == {"fallback": 1.5} and original.card == {}
    assert torch.equal(outputs(exported), outputs(original))


def test_an_exported_model_that_does_not_match_its_card_is_refused_in_one_line(tmp_path, checkpoint):
    weights = tmp_path / "refiner.safetensors"
    card_file = export_model(checkpoint, weights, {})
    card = json.loads(card_file.read_text())

    def refused(match: str) -> None:
        with pytest.raises(InputError, match=match) as err:
            load_model(weights)
        assert "\n" not in str(err.value)

    state = load_file(weights)
    name = next(iter(state))
    save_file({**state, name: state[name] + 1.0}, weights)  # other weights under the same card
    refused("refiner.safetensors: these weights are not the ones refiner.json describes")
    export_model(checkpoint, weights, {})
    for change, match in (
        ({"model_class": "os.system"}, "refiner.safetensors: unknown model class 'os.system'"),
        ({"model_args": {**card["model_args"], "hidden_size": 3}}, "its weights do not fit"),
    ):
        card_file.write_text(json.dumps(card | change))
        refused(match)
    card_file.write_text(json.dumps({k: v for k, v in card.items() if k != "config"}))
    refused("refiner.json: not a ddsp-demucs model card")
    card_file.write_text("{not json")
    refused("refiner.json: not a readable model card")
    card_file.unlink()
    refused("refiner.json: not found")
    for elsewhere in (tmp_path / "refiner.ckpt", "hf://owner/repo/refiner.safetensors"):
        with pytest.raises(ValueError, match="local .safetensors file"):
            export_model(checkpoint, elsewhere, {})


@pytest.fixture
def package_refiner(tmp_path, checkpoint, monkeypatch):
    """The refiner the package ships where it ships one, else the tiny checkpoint exported in its place."""
    if DEFAULT_REFINER.is_file():
        return DEFAULT_REFINER
    weights = tmp_path / "package" / "default_refiner.safetensors"
    export_model(checkpoint, weights, {"summary": "a tiny test model"})
    monkeypatch.setattr(checkpoints, "DEFAULT_REFINER", weights)
    return weights


def test_the_shipped_refiner_is_small_plain_files_with_its_licence_and_met_the_do_no_harm_target():
    if not DEFAULT_REFINER.is_file():
        pytest.skip(f"no refiner ships in this version ({DEFAULT_REFINER.name}: make model found it does harm)")
    assert DEFAULT_REFINER.stat().st_size <= MAX_SHIPPED_BYTES
    model = load_model(DEFAULT_REFINER)
    card = model.card
    assert "CC BY-NC-SA 4.0" in card["licence"] and "CC BY-NC-SA 4.0" in card["summary"]
    assert "CC BY-NC-SA 4.0" in (DEFAULT_REFINER.parent / "LICENSE-weights.md").read_text()
    assert model.provenance["corpus"]["kind"] != "synthetic"
    assert not set(card["test_singers"]) & set(card["training_singers"] + card["validation_singers"])
    graded = {level: f for level, f in card["figures"].items() if "si_sdr_change_median" in f}
    assert {"fallback", "bands16", "smooth_low"} <= graded.keys()
    for level, figures in graded.items():  # what `python -m bench.model --install` refuses to ship otherwise
        assert figures["si_sdr_change_median"] >= 0 and figures["fraction_worse"] <= 0.10, level


def test_refine_without_a_checkpoint_uses_the_package_refiner_on_a_real_song(tmp_path, package_refiner):
    from ddsp_demucs.core.audio_io import load_audio

    mixture, sr = load_audio(shared_file("full_song/Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"))
    song = write(tmp_path / "fishin.wav", mixture[30 * sr : 36 * sr], sr)  # 6 s of a song no model heard
    assert refine_cli(str(song), "--separator", "fallback", "--out", str(tmp_path / "out")) == 0
    separated, _ = load_audio(tmp_path / "out" / "fishin" / "separated_vocals.wav")
    refined, out_sr = load_audio(tmp_path / "out" / "fishin" / "refined_vocals.wav")
    assert out_sr == sr and refined.shape == separated.shape == (6 * sr, mixture.shape[1])
    assert np.isfinite(refined).all() and not np.array_equal(refined, separated)
    record = json.loads((tmp_path / "out" / "fishin" / "refine.json").read_text())
    assert record["checkpoint"] == str(package_refiner)


def test_refine_without_a_checkpoint_where_no_refiner_ships_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoints, "DEFAULT_REFINER", tmp_path / "absent.safetensors")
    song = write(tmp_path / "a.wav", make_song(1.0), 44100)
    assert refine_cli(str(song), "--separator", "fallback", "--out", str(tmp_path / "out")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no --checkpoint given and this installation ships no")
    assert not (tmp_path / "out").exists()
