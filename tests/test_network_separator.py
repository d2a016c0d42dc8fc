"""bench/network_separator.py: a small HTDemucs trained on a MUSDB-layout corpus, resumed from its state, saved in
Demucs' package format and loaded back through the real loading path (``get_separator(sig, repo=...)``)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

from bench.network_separator import (
    NETWORKS,
    SIGNATURE,
    SOURCES,
    Crops,
    build_model,
    save_package,
    train,
    trained_separator_available,
    training_singers,
)
from ddsp_demucs.data import musdb_tracks
from ddsp_demucs.separation.demucs import get_separator

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
