"""Shared fixtures: the real audio in ../shared/data (skipped clearly where absent), the one trained tiny checkpoint,
synthetic examples, a dataset folder for ``evaluate --data`` and the small real-singing corpus. Plain helpers are
in ``helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    REPO,
    SMALL_SPLIT,
    ListDataset,
    RatedDataset,
    WindowDataset,
    make_example,
    musdb_with_stems,
    small_shared,
    train_checkpoint,
    windows,
)

SHARED_DATA = Path(os.environ.get("DDSP_DEMUCS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path of a file in ../shared/data, skipping the test with a clear message when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test audio not found: {path} (expected ../shared/data beside the repository)")
    return path


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, the previous count restored after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test audio not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny mask model saved by the trainer after one step (the real checkpoint format), trained once per session.
    Read-only: a test that changes a checkpoint saves its own copy."""
    dataset = ListDataset([make_example(s, n_samples=4096) for s in range(2)])
    return train_checkpoint(tmp_path_factory.mktemp("checkpoint"), dataset)


@pytest.fixture(scope="module")
def examples():
    """Six synthetic examples in a dataset that names its rates (what the analyses take)."""
    return RatedDataset([make_example(s, n_samples=8192) for s in range(6)])


@pytest.fixture
def fake_dataset_dir(tmp_path, monkeypatch) -> Path:
    """A dataset folder served by an in-memory ``load_dataset`` (the contract), with whole songs behind it."""
    from ddsp_demucs import data as data_module

    manifest = musdb_with_stems(tmp_path, n_songs=1, duration_s=2.0)
    folder = tmp_path / "dataset"
    folder.mkdir()
    splits = {"test": WindowDataset(windows(4), **manifest)}
    splits["test"].tracks = ["synth_0000"]

    def load_dataset(dataset_dir, split):
        assert Path(dataset_dir) == folder
        return splits[split]

    monkeypatch.setattr(data_module, "load_dataset", load_dataset, raising=False)
    return folder


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """The real-singing corpus built from the small index of real files: ``(shared folder, corpus, tracks)``."""
    from ddsp_demucs.corpus.real_corpus import write_real_corpus

    if not (SHARED_DATA / "index.csv").is_file():
        pytest.skip(f"real test audio not found: {SHARED_DATA}/index.csv")
    root = tmp_path_factory.mktemp("real")
    shared = small_shared(SHARED_DATA, root / "shared")
    out = root / "corpus"
    tracks = write_real_corpus(out, shared, accompaniments_per_vocal=1, n_synthetic_bands=1, **SMALL_SPLIT)
    return shared, out, tracks
