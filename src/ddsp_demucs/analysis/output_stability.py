"""Output stability of a trained model (:func:`output_stability`): tiny changes to ``input_audio`` of each example
(white noise at -60 dB relative to its RMS, a one-sample delay, a gain of -1 and +1 dB); ``loudness_db`` is
recomputed from the audio for the unperturbed and the perturbed input alike (as the pipeline would), F0 and
confidence are kept. Measured on the overlapping samples after undoing the shift and the gain: SI-SDR and plain SNR
of the perturbed output against the unperturbed output (high = stable; the same SNR of the inputs is given for
reference), and the change in SI-SDR against the target.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.analysis.perturb import add_noise, apply_gain, db_to_gain, shift
from ddsp_demucs.dsp import a_weighted_loudness
from ddsp_demucs.evaluation.common import (
    AUDIO_NOISE,
    MODEL_NOISE,
    batches,
    check_rates,
    example_seed,
    markdown_table,
    pyplot,
    run_model,
    save_figure,
    select_indices,
    stats,
    write_csv,
    write_json,
    write_markdown,
)
from ddsp_demucs.metrics import si_sdr

OUTPUT_COLUMNS = (
    "perturbation",
    "level",
    "n",
    "output_si_sdr_median",
    "output_si_sdr_min",
    "output_snr_median",
    "output_snr_min",
    "input_snr_median",
    "delta_si_sdr_median",
    "delta_si_sdr_mean",
    "delta_si_sdr_max_abs",
)
OUTPUT_UNITS = {"noise": "dB re RMS", "shift": "samples", "gain": "dB"}


def _snr_db(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> np.ndarray:
    """``10 log10((Σ ref² + eps) / (Σ (est - ref)² + eps))`` per example in float64: ``(batch, n)`` ->
    ``(batch,)`` dB (eps bounds it for identical signals, at about 100 dB for speech-level windows)."""
    e, r = estimate.double(), reference.double()
    return (10 * torch.log10((r.square().sum(-1) + eps) / ((e - r).square().sum(-1) + eps))).numpy()


def _align(unperturbed: torch.Tensor, perturbed: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples where ``perturbed`` (delayed by ``n``) and ``unperturbed`` correspond."""
    if n > 0:
        return unperturbed[..., :-n], perturbed[..., n:]
    if n < 0:
        return unperturbed[..., -n:], perturbed[..., :n]
    return unperturbed, perturbed


def _perturb_audio(x: torch.Tensor, kind: str, level: float, seeds: list[int]) -> torch.Tensor:
    """``x (batch, n_samples)`` with one perturbation: ``noise`` at ``level`` dB re RMS (example ``i`` seeded
    with ``seeds[i]``), ``shift`` by ``level`` samples, or ``gain`` of ``level`` dB."""
    if kind == "noise":
        return torch.stack(
            [add_noise(x[j], level, generator=torch.Generator().manual_seed(s)) for j, s in enumerate(seeds)]
        )
    if kind == "shift":
        return shift(x, int(level))
    return apply_gain(x, level)


def _with_loudness(batch: dict, audio: torch.Tensor, sr: int, fr: int) -> dict:
    out = dict(batch, input_audio=audio)
    with torch.no_grad():
        out["loudness_db"] = a_weighted_loudness(audio, sample_rate=sr, frame_rate=fr).float()
    return out


def output_stability(
    model: torch.nn.Module,
    dataset,
    *,
    noise_db: float = -60.0,
    shift_samples: int = 1,
    gains_db: Sequence[float] = (-1.0, 1.0),
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> dict:
    """How much the refined output changes under tiny input changes (see the module docstring).

    Args:
        model: the model (put in eval mode); dataset: items at the model's rates.
        noise_db: white-noise level relative to each example's RMS (dB); shift_samples: delay in samples;
        gains_db: gains to apply (dB), one perturbation each.
        n_examples: this many examples spread evenly over the dataset (default: all); seed: the noise seed.

    Returns ``{"settings", "table": [rows of OUTPUT_COLUMNS], "examples": [per example and perturbation:
    output_si_sdr, output_snr, input_snr, delta_si_sdr (dB)]}``.
    """
    sr, fr = check_rates(model, dataset)
    if shift_samples == 0:
        raise DDSPDemucsError("shift_samples must be non-zero")
    model.eval()
    perturbations = [("noise", float(noise_db)), ("shift", int(shift_samples))] + [("gain", float(g)) for g in gains_db]
    indices = select_indices(len(dataset), n_examples)
    examples: list[dict] = []
    n_batches = math.ceil(len(indices) / batch_size)
    for b, (chunk, batch) in enumerate(
        tqdm(batches(dataset, indices, batch_size), total=n_batches, desc="output stability", disable=not progress)
    ):
        x, target = batch["input_audio"], batch["target_audio"]
        noise_seed = example_seed(seed, MODEL_NOISE, b)
        y = run_model(model, _with_loudness(batch, x, sr, fr), noise_seed)
        for kind, level in perturbations:
            xp = _perturb_audio(x, kind, level, [example_seed(seed, AUDIO_NOISE, i) for i in chunk])
            yp = run_model(model, _with_loudness(batch, xp, sr, fr), noise_seed)
            n, g = (level if kind == "shift" else 0), (db_to_gain(level) if kind == "gain" else 1.0)
            ya, ypa = _align(y, yp / g, n)
            xa, xpa = _align(x, xp / g, n)
            ta, _ = _align(target, target, n)
            out_sdr = si_sdr(ypa.double(), ya.double()).numpy()
            delta = (si_sdr(ypa.double(), ta.double()) - si_sdr(ya.double(), ta.double())).numpy()
            out_snr, in_snr = _snr_db(ypa, ya), _snr_db(xpa, xa)
            for j, i in enumerate(chunk):
                examples.append(
                    {
                        "index": i,
                        "track": batch["track"][j],
                        "perturbation": kind,
                        "level": level,
                        "output_si_sdr": float(out_sdr[j]),
                        "output_snr": float(out_snr[j]),
                        "input_snr": float(in_snr[j]),
                        "delta_si_sdr": float(delta[j]),
                    }
                )
    table = []
    for kind, level in perturbations:
        rows = [e for e in examples if e["perturbation"] == kind and e["level"] == level]
        row = {"perturbation": kind, "level": level, "unit": OUTPUT_UNITS[kind], "n": len(rows)}
        row.update(stats((r["output_si_sdr"] for r in rows), "output_si_sdr", ("median", "min")))
        row.update(stats((r["output_snr"] for r in rows), "output_snr", ("median", "min")))
        row.update(stats((r["input_snr"] for r in rows), "input_snr", ("median",)))
        row.update(stats((r["delta_si_sdr"] for r in rows), "delta_si_sdr", ("median", "mean")))
        row["delta_si_sdr_max_abs"] = stats((abs(r["delta_si_sdr"]) for r in rows), "abs", ("max",))["abs_max"]
        table.append(row)
    settings = {
        "noise_db": float(noise_db),
        "shift_samples": int(shift_samples),
        "gains_db": [float(g) for g in gains_db],
        "n_examples": len(indices),
        "seed": seed,
        "composition": getattr(model, "composition", None),
    }
    return {"settings": settings, "table": table, "examples": examples}


def write_output_stability_outputs(
    result: dict, out_dir: str | os.PathLike, *, extra_settings: dict | None = None
) -> Path:
    """``output_stability.csv`` (table), ``output_stability_examples.csv``, ``.md``, ``.png`` and ``.json`` in
    ``out_dir``; returns the JSON path."""
    out_dir = Path(out_dir)
    columns = ("perturbation", "level", "unit") + OUTPUT_COLUMNS[2:]
    write_csv(out_dir / "output_stability.csv", result["table"], columns)
    write_csv(
        out_dir / "output_stability_examples.csv",
        result["examples"],
        ("index", "track", "perturbation", "level", "output_si_sdr", "output_snr", "input_snr", "delta_si_sdr"),
    )
    write_markdown(
        out_dir / "output_stability.md",
        "Output stability under tiny input changes",
        [
            (
                "Table",
                "`output_si_sdr` / `output_snr`: perturbed output vs unperturbed output after undoing the shift "
                "and the gain (dB; high = stable); `input_snr`: the same for the inputs; `delta_si_sdr`: change of "
                "the output's SI-SDR against the target (dB). Noise level in dB relative to each example's RMS.\n\n"
                + markdown_table(result["table"], columns),
            )
        ],
    )
    plt = pyplot()
    labels = [f"{r['perturbation']}\n{r['level']:+g} {r['unit']}" for r in result["table"]]
    keys = [(r["perturbation"], r["level"]) for r in result["table"]]
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(keys) + 2), 4.2))
    for ax, key, ylabel in (
        (axes[0], "output_si_sdr", "perturbed vs unperturbed output: SI-SDR (dB)"),
        (axes[1], "delta_si_sdr", "change of SI-SDR vs target (dB)"),
    ):
        data = [[e[key] for e in result["examples"] if (e["perturbation"], e["level"]) == k] for k in keys]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(keys) + 1), labels, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Output stability ({result['settings']['n_examples']} examples)")
    fig.tight_layout()
    save_figure(fig, out_dir / "output_stability.png")
    path = out_dir / "output_stability.json"
    write_json(
        path,
        {
            "settings": {**result["settings"], **(extra_settings or {})},
            "table": result["table"],
            "files": [
                "output_stability.csv",
                "output_stability_examples.csv",
                "output_stability.md",
                "output_stability.png",
            ],
        },
    )
    return path


__all__ = ["output_stability", "write_output_stability_outputs", "OUTPUT_COLUMNS"]
