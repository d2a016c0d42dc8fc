"""bench/network_separator.py: a small HTDemucs trained on a MUSDB-layout corpus, resumed from its state, saved in
Demucs' package format and loaded back through the real loading path (``get_separator(sig, repo=...)``); the
networks shipped in Demucs' safetensors format, and where bench-quality loads each network from."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

import bench.network_separator as network_separator
from bench.network_separator import (
    NETWORKS,
    SHIPPED,
    SIGNATURE,
    SOURCES,
    Crops,
    Network,
    build_model,
    save_package,
    separator_repo,
    train,
    trained_separator_available,
    training_singers,
)
from bench.quality import Level
from ddsp_demucs.core.utils import file_sha256
from ddsp_demucs.data import musdb_tracks
from ddsp_demucs.separation.demucs import WeightsUnavailableError, get_separator, save_safetensors_model

SR = 44100
TINY = {"channels": 8, "depth": 4, "t_layers": 0}


def tiny_corpus(root, seconds=1.5):
    """Two tracks in ``root/train/``: a harmonic 'vocal' over noise, ``mixture = vocals + other``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    for k in range(2):
        folder = root / "train" / f"track{k}"
        folder.mkdir(parents=True)
        vocals = 0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t)[:, None] * np.ones((1, 2))
        other = 0.1 * rng.standard_normal((t.size, 2))
        for name, audio in (("vocals", vocals), ("other", other), ("mixture", vocals + other)):
            sf.write(folder / f"{name}.wav", audio.astype(np.float32), SR, subtype="FLOAT")
    return root


def test_trains_resumes_saves_and_loads_through_demucs(tmp_path):
    torch.set_num_threads(1)
    crops = Crops(musdb_tracks(tiny_corpus(tmp_path / "corpus"), subsets=("train",)))
    mixture, sources = crops.batch(np.random.default_rng(0), 2, SR)
    assert mixture.shape == (2, 2, SR) and sources.shape == (2, len(SOURCES), 2, SR)
    assert torch.allclose(sources.sum(dim=1), mixture)

    torch.manual_seed(0)
    model = build_model(segment_s=1.0, **TINY)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    status = train(model, crops, tmp_path / "training", steps=2, batch_size=1, log_every=1, progress=False)
    assert status["step"] == 2 and (tmp_path / "training" / "state.pt").is_file()
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items())
    status = train(model, crops, tmp_path / "training", steps=3, batch_size=1, progress=False)  # resumes at 2
    assert status["step"] == 3 and [h["step"] for h in status["history"]] == [2, 3]

    repo = tmp_path / "repo"
    save_package(model, repo, {"steps": 3})
    assert not trained_separator_available(repo)  # no summary saying it finished
    (repo / "summary.json").write_text(json.dumps({"finished": True}))
    assert trained_separator_available(repo)

    separator = get_separator(SIGNATURE, repo=repo, device="cpu")
    assert separator.sources == list(SOURCES)
    loaded = separator.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    song = crops.batch(np.random.default_rng(1), 1, SR)[0][0].T.numpy()
    vocals = separator.extract_vocals(song, SR)
    assert vocals.shape == (SR, 2) and np.all(np.isfinite(vocals))


def test_training_singers_halves_are_disjoint_and_cover_every_singer():
    class Named:
        def __init__(self, name):
            self.name = name

    names = {f"s{k}_{take}": f"singer{k}" for k in (3, 1, 4, 0, 2) for take in range(2)}
    tracks = [Named(n) for n in names]
    manifest = {"tracks": {n: {"singer": s} for n, s in names.items()}}
    every = training_singers(tracks, manifest, None)
    assert every == [f"singer{k}" for k in range(5)]
    first, second = training_singers(tracks, manifest, 0), training_singers(tracks, manifest, 1)
    assert first == ["singer0", "singer2", "singer4"] and second == ["singer1", "singer3"]
    # the networks trained here have their own signatures and folders, which Demucs' LocalRepo can name
    assert len({n.signature for n in NETWORKS.values()}) == len({n.folder for n in NETWORKS.values()}) == len(NETWORKS)
    assert all("-" not in n.signature for n in NETWORKS.values())


def test_safetensors_in_demucs_format_round_trips_through_the_local_repo(tmp_path):
    torch.manual_seed(0)
    model = build_model(segment_s=1.0, **TINY)
    save_safetensors_model(model, tmp_path / f"{SIGNATURE}.safetensors", torch.float16)
    separator = get_separator(SIGNATURE, repo=tmp_path, device="cpu")
    assert separator.sources == list(SOURCES) and float(separator.model.segment) == 1.0
    loaded = separator.model.state_dict()
    for key, value in model.state_dict().items():  # stored in float16, loaded as float32
        assert loaded[key].dtype == value.dtype
        assert torch.equal(loaded[key], value.half().to(value.dtype) if value.is_floating_point() else value)
    song = 0.1 * np.random.default_rng(0).standard_normal((SR // 2, 2)).astype(np.float32)
    vocals = separator.extract_vocals(song, SR)
    assert vocals.shape == song.shape and np.all(np.isfinite(vocals))


def test_a_safetensors_file_naming_another_class_imports_nothing(tmp_path):
    assert "antigravity" not in sys.modules
    metadata = {"klass": "antigravity.Anything", "args": "[]", "kwargs": "{}"}
    save_file({"w": torch.zeros(1)}, str(tmp_path / "evil.safetensors"), metadata=metadata)
    with pytest.raises(WeightsUnavailableError, match="not a Demucs model file") as error:
        get_separator("evil", repo=tmp_path, device="cpu")
    assert "antigravity" not in sys.modules and "\n" not in str(error.value)
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsUnavailableError, match="broken.safetensors: not readable safetensors"):
        get_separator("broken", repo=tmp_path, device="cpu")


def test_bench_quality_loads_the_shipped_network_before_one_trained_here(tmp_path, monkeypatch):
    network = Network("net", tmp_path / "trained", TINY, seed=0, minutes=1.0)
    monkeypatch.setattr(network_separator, "SHIPPED", tmp_path / "shipped")
    assert separator_repo(network) is None  # neither trained nor shipped
    model = build_model(segment_s=1.0, **TINY)
    save_package(model, network.folder, {}, "net")
    (network.folder / "summary.json").write_text(json.dumps({"finished": True}))
    assert separator_repo(network) == network.folder
    level = Level("network_net", "net", "network", repo=str(network.folder))
    assert level.score_key == f"net@{file_sha256(network.folder / 'net.th')[:12]}"
    (tmp_path / "shipped").mkdir()
    save_safetensors_model(model, tmp_path / "shipped" / "net.safetensors", torch.float16)
    assert separator_repo(network) == network.folder  # weights without a card are not shipped
    (tmp_path / "shipped" / "net.json").write_text("{}")
    assert separator_repo(network) == tmp_path / "shipped"
    level = Level("network_net", "net", "network", repo=str(tmp_path / "shipped"))
    assert level.score_key == f"net@{file_sha256(tmp_path / 'shipped' / 'net.safetensors')[:12]}"


@pytest.mark.skipif(
    not all((SHIPPED / f"{n.signature}.safetensors").is_file() for n in NETWORKS.values()),
    reason="the networks are not shipped in bench/networks",
)
def test_the_shipped_networks_load_as_their_cards_describe():
    for network in NETWORKS.values():
        card = json.loads((SHIPPED / f"{network.signature}.json").read_text())
        assert card["weights"] == f"{network.signature}.safetensors" and "CC BY-NC-SA 4.0" in card["licence"]
        separator = get_separator(network.signature, repo=SHIPPED, device="cpu")
        assert separator.sources == list(SOURCES)
        assert sum(p.numel() for p in separator.model.parameters()) == card["parameters"]
        assert card["recipe"]["architecture"] == network.architecture and card["recipe"]["seed"] == network.seed
