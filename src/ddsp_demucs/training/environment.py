"""The training environment: seeds, torch's CPU threads and the default precision; the error raised when
training diverges."""

from __future__ import annotations

import lightning as L
import torch

from ddsp_demucs import DDSPDemucsError


class TrainingDiverged(DDSPDemucsError):
    """Too many training steps had a non-finite loss or gradient."""


def setup_training_environment(use_mixed_precision: bool = False, seed: int = 0, threads: int | None = None) -> str:
    """Seed Python, numpy and torch, set torch's CPU threads, and choose the precision.

    Returns the Lightning precision string (``"bf16-mixed"`` if ``use_mixed_precision``, else ``"32"``);
    it also becomes the default precision of :meth:`DDSPTrainer.fit`.
    """
    global _DEFAULT_PRECISION
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    _DEFAULT_PRECISION = "bf16-mixed" if use_mixed_precision else "32"
    return _DEFAULT_PRECISION


_DEFAULT_PRECISION: str | None = None


def default_precision() -> str | None:
    """The precision :func:`setup_training_environment` chose last (None before it is called)."""
    return _DEFAULT_PRECISION


__all__ = ["TrainingDiverged", "setup_training_environment", "default_precision"]
