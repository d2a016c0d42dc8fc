"""Shared fixtures: the real audio in ../shared/data (skipped clearly where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
