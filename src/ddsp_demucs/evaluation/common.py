"""Shared pieces of the analyses: example selection and batching, deterministic model runs, per-example
metrics, statistics, and the CSV / markdown / JSON writers."""

from __future__ import annotations

import csv
import math
import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.utils import atomic_path, write_json_atomic, write_text_atomic
from ddsp_demucs.dsp import MultiResolutionSTFTLoss
from ddsp_demucs.training.batches import collate

MRSTFT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)  # the metric's resolutions (the loss' default)


# ------------------------------------------------------------------------------------------------ examples
def select_indices(n_items: int, n_examples: int | None) -> list[int]:
    """All item indices, or ``n_examples`` of them spread evenly over the dataset (first and last included),
    so that a subset still covers every part (track) of a dataset stored in track order."""
    if n_items == 0:
        raise DDSPDemucsError("the dataset is empty: nothing to analyse")
    if n_examples is None or n_examples >= n_items:
        return list(range(n_items))
    if n_examples < 1:
        raise DDSPDemucsError(f"n_examples must be >= 1, got {n_examples}")
    return sorted(set(np.linspace(0, n_items - 1, n_examples).round().astype(int).tolist()))


def batches(dataset, indices: Sequence[int], batch_size: int) -> Iterator[tuple[list[int], dict]]:
    """``(indices of the batch, collated batch)`` over ``indices`` in order; ``batch["track"]`` is always there
    (the item index as a string for items without a track name)."""
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        batch = collate([dataset[i] for i in chunk])
        batch.setdefault("track", [str(i) for i in chunk])
        yield chunk, batch


def check_rates(model: torch.nn.Module, dataset) -> tuple[int, int]:
    """The model's ``(sample_rate, frame_rate)``; a dataset that states other rates is an error."""
    sr, fr = int(model.sample_rate), int(model.frame_rate)
    for name, model_value in (("sample_rate", sr), ("frame_rate", fr)):
        value = getattr(dataset, name, None)
        if value is not None and int(value) != model_value:
            raise DDSPDemucsError(
                f"the dataset's {name} is {value} but the model's is {model_value}: use a dataset "
                "built for this checkpoint"
            )
    return sr, fr


# Seed streams: ``example_seed(seed, STREAM, ...)`` keeps the draws made for different purposes independent.
MODEL_NOISE, F0_PERTURBATION, AUDIO_NOISE = 1, 2, 3


def example_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (e.g. seed, condition, example index)."""
    return int(
        np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
        >> np.uint64(1)
    )


def run_model(model: torch.nn.Module, batch: dict, seed: int) -> torch.Tensor:
    """``model(batch)["audio"]`` without gradients as float32 ``(batch, n_samples)``; models with filtered noise
    get a generator seeded with ``seed``, so two calls on the same batch and seed give the same output."""
    import inspect

    with torch.no_grad():
        if "generator" in inspect.signature(model.forward).parameters:
            out = model(batch, generator=torch.Generator().manual_seed(seed))
        else:
            out = model(batch)
    return out["audio"].detach().float()


def mrstft_distance() -> MultiResolutionSTFTLoss:
    """The MR-STFT distance metric: :class:`~ddsp_demucs.dsp.MultiResolutionSTFTLoss` at the analyses'
    resolutions (2048 ... 64 samples, linear + log magnitude), a scalar for ``(channels, n_samples)`` pairs."""
    return MultiResolutionSTFTLoss(fft_sizes=MRSTFT_FFT_SIZES)


class MRSTFTDistance:
    """Multi-resolution STFT distance per example: ``(batch, n_samples)`` x2 -> numpy ``(batch,)``
    (:class:`~ddsp_demucs.dsp.MultiResolutionSTFTLoss` with its default resolutions, linear + log magnitude)."""

    def __init__(self) -> None:
        self.loss = mrstft_distance()

    def __call__(self, estimate: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return np.array(
                [
                    float(self.loss(estimate[i : i + 1].float(), target[i : i + 1].float()))
                    for i in range(estimate.shape[0])
                ]
            )


# ---------------------------------------------------------------------------------------------- statistics
def stats(values: Iterable[float], prefix: str, which: Sequence[str] = ("median", "mean")) -> dict[str, float]:
    """``{prefix_median, prefix_mean, ...}`` over the finite values (NaN when there are none); ``which`` from
    median, mean, std (sample, NaN below 2 values), min, max, p95."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    funcs = {
        "median": np.median,
        "mean": np.mean,
        "min": np.min,
        "max": np.max,
        "std": lambda a: np.std(a, ddof=1) if a.size > 1 else math.nan,
        "p95": lambda a: np.percentile(a, 95),
    }
    return {f"{prefix}_{w}": float(funcs[w](x)) if x.size else math.nan for w in which}


# ------------------------------------------------------------------------------------------------- writers
def finite_or_none(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (strict JSON), numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (non-finite numbers as null), written atomically."""
    write_json_atomic(path, finite_or_none(obj))


def write_csv(path: str | os.PathLike, rows: list[dict], columns: Sequence[str]) -> None:
    """Rows as CSV with the given columns (missing values empty), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(row.get(k)) for k in columns})


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return "" if v is None else v


def _md_value(v: Any, digits: int) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"
    return "–" if v is None else str(v)


def markdown_table(rows: list[dict], columns: Sequence[str], *, digits: int = 2) -> str:
    """A GitHub markdown table of ``rows`` over ``columns`` (floats with ``digits`` decimals, or 3 significant
    digits below 0.01; NaN as –)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_md_value(row.get(c), digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(path: str | os.PathLike, title: str, sections: list[tuple[str, str]]) -> None:
    """A markdown page: ``# title`` then ``## heading`` + body for each section, written atomically."""
    text = f"# {title}\n\n" + "\n".join(f"## {h}\n\n{body}\n" for h, body in sections)
    write_text_atomic(path, text)


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
