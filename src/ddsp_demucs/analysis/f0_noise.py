"""F0-noise analysis: how wrong F0 is on separated vocals, and how the refined output degrades with F0 errors.

1. :func:`f0_accuracy`: F0 tracked on the separated vocal (``input_audio``) against F0 tracked the same way on
   the clean vocal (``target_audio``), per example: raw pitch and chroma accuracy, octave-error rate, voicing
   recall and false alarm, median cents error (:func:`ddsp_demucs.metrics.f0_metrics`, 50-cent tolerance).
2. :func:`f0_noise_analysis`: the model is run on each example with its F0 controls perturbed by one family
   at a time (:mod:`ddsp_demucs.analysis.perturb`; the dataset's F0, already tracked on the separated vocal,
   plus the perturbation, applied on the dataset's frame grid):

   - ``jitter``: Gaussian cents jitter, independent per frame, std = level in cents;
   - ``octave``: the level's fraction of voiced frames doubled or halved;
   - ``voicing``: the level's fraction of all frames with voicing flipped (voiced -> 0 Hz and confidence 0;
     unvoiced -> the nearest voiced frame's F0 and confidence 1).

   The refined output is scored against the target with SI-SDR (dB) and the multi-resolution STFT distance;
   ``delta_si_sdr`` is the paired change from the unperturbed refined output, ``improvement`` the paired change
   from the unrefined input. Each (family, level, example) has its own fixed seed, so the perturbations are
   reproducible and independent of the batch size; the model's filtered noise (``synth``/``gate``) is seeded
   per batch, the same for every condition. A ``baseline`` row scores the unrefined separated vocal.

:func:`write_f0_noise_outputs` writes ``f0_noise.csv`` (the table), ``f0_noise_examples.csv`` (per example and
condition), ``f0_accuracy.csv`` (per example), ``f0_noise.md``, ``f0_noise.png`` and ``f0_noise.json``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ddsp_demucs.analysis.perturb import flip_voicing, jitter_cents, octave_errors
from ddsp_demucs.core.utils import get_logger
from ddsp_demucs.evaluation.common import (
    F0_PERTURBATION,
    MODEL_NOISE,
    MRSTFTDistance,
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
from ddsp_demucs.inference.refine import f0_tracker
from ddsp_demucs.metrics import f0_metrics, si_sdr

log = get_logger("analysis.f0_noise")

F0_METRICS = (
    "raw_pitch_accuracy",
    "raw_chroma_accuracy",
    "octave_error_rate",
    "voicing_recall",
    "voicing_false_alarm",
    "median_cents_error",
)
FAMILIES = ("jitter", "octave", "voicing")
UNITS = {"jitter": "cents (std)", "octave": "fraction of voiced frames", "voicing": "fraction of frames"}
TABLE_COLUMNS = (
    "family",
    "level",
    "n",
    "si_sdr_median",
    "si_sdr_mean",
    "delta_si_sdr_median",
    "delta_si_sdr_mean",
    "improvement_median",
    "mrstft_median",
    "mrstft_mean",
)

__all__ = ["f0_accuracy", "f0_noise_analysis", "perturb_controls", "write_f0_noise_outputs", "FAMILIES"]


def perturb_controls(batch: dict, family: str, level: float, generators: list[torch.Generator]) -> dict:
    """A copy of ``batch`` with its ``f0_hz`` (and for ``voicing`` its ``f0_confidence``) ``(batch, n_frames)``
    perturbed by ``family`` at ``level``, example ``i`` drawing from ``generators[i]``."""
    out = dict(batch)
    f0, conf = batch["f0_hz"], batch["f0_confidence"]
    if family == "jitter":
        out["f0_hz"] = torch.stack([jitter_cents(f0[i], level, generator=g) for i, g in enumerate(generators)])
    elif family == "octave":
        out["f0_hz"] = torch.stack([octave_errors(f0[i], level, generator=g) for i, g in enumerate(generators)])
    elif family == "voicing":
        pairs = [flip_voicing(f0[i], conf[i], level, generator=g) for i, g in enumerate(generators)]
        out["f0_hz"] = torch.stack([p[0] for p in pairs])
        out["f0_confidence"] = torch.stack([p[1] for p in pairs])
    else:
        raise ValueError(f"unknown perturbation family {family!r}; choose one of {', '.join(FAMILIES)}")
    return out


def f0_accuracy(
    model: torch.nn.Module,
    dataset,
    *,
    n_examples: int | None = None,
    f0_method: str | None = None,
    voicing_threshold: float | None = None,
    progress: bool = True,
) -> dict:
    """F0 of the separated vocal against F0 of the clean vocal, both from
    :func:`~ddsp_demucs.features.extract_f0` at the model's rates (method and voicing threshold: the arguments,
    else the checkpoint's ``features`` config).

    Returns ``{"method", "voicing_threshold", "crepe_hop", "examples": [row per example: track, start_s, n_voiced_clean,
    n_voiced_separated, and the six metrics of F0_METRICS], "summary": {metric_median, metric_mean, ...}}``;
    a metric is NaN for an example where it is undefined (e.g. no voiced frame in the clean vocal).
    """
    sr, fr = check_rates(model, dataset)
    tracker = f0_tracker(model, f0_method, voicing_threshold)
    rows = []
    for i in tqdm(select_indices(len(dataset), n_examples), desc="F0 separated vs clean", disable=not progress):
        item = dataset[i]
        tracked = {}
        for key in ("target_audio", "input_audio"):
            audio = np.asarray(item[key], dtype=np.float32)
            tracked[key], _ = tracker.track(audio, sr, fr)
        ref, est = tracked["target_audio"], tracked["input_audio"]
        metrics = f0_metrics(ref, est)
        rows.append(
            {
                "index": i,
                "track": item.get("track", str(i)),
                "start_s": float(item.get("start_s", 0.0)),
                "n_voiced_clean": int((ref > 0).sum()),
                "n_voiced_separated": int((est > 0).sum()),
                **{k: float(metrics[k]) for k in F0_METRICS},
            }
        )
    summary: dict = {"n": len(rows)}
    for k in F0_METRICS:
        summary.update(stats((r[k] for r in rows), k))
    settings = tracker.settings()
    return {
        "method": settings["f0_method"],
        "voicing_threshold": settings["voicing_threshold"],
        "crepe_hop": settings["crepe_hop"],
        "examples": rows,
        "summary": summary,
    }


def f0_noise_analysis(
    model: torch.nn.Module,
    dataset,
    *,
    cents_jitter: Sequence[float] = (0, 10, 25, 50, 100),
    octave_error_rates: Sequence[float] = (0, 0.01, 0.05, 0.10),
    voicing_flip_rates: Sequence[float] = (0, 0.05, 0.10),
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    f0_accuracy_part: bool = True,
    f0_method: str | None = None,
    progress: bool = True,
) -> dict:
    """Both parts of the F0-noise analysis (see the module docstring) on ``dataset`` (items with ``input_audio``,
    ``target_audio`` ``(n_samples,)`` and frame controls, at the model's rates).

    Args:
        model: a trained (or any) :class:`~ddsp_demucs.model.ResidualDDSPDecoder`, put in eval mode.
        cents_jitter, octave_error_rates, voicing_flip_rates: the levels of each family (varied one at a time).
        n_examples: analyse this many examples spread evenly over the dataset (default: all).
        seed: base seed of the perturbations.
        f0_accuracy_part: also run :func:`f0_accuracy` (the F0 tracker on both vocals; slower).
        f0_method: F0 tracker for :func:`f0_accuracy` (default: the checkpoint's).

    Returns ``{"settings", "table": [rows of TABLE_COLUMNS], "examples": [per example and condition],
    "f0_accuracy": f0_accuracy(...) or None}``.
    """
    check_rates(model, dataset)
    model.eval()
    levels = {
        "jitter": [float(v) for v in cents_jitter],
        "octave": [float(v) for v in octave_error_rates],
        "voicing": [float(v) for v in voicing_flip_rates],
    }
    conditions = [(f, lv) for f in FAMILIES for lv in levels[f]]
    indices = select_indices(len(dataset), n_examples)
    mrstft = MRSTFTDistance()
    examples: list[dict] = []
    n_batches = math.ceil(len(indices) / batch_size)
    for b, (chunk, batch) in enumerate(
        tqdm(batches(dataset, indices, batch_size), total=n_batches, desc="F0 perturbations", disable=not progress)
    ):
        target, inp = batch["target_audio"], batch["input_audio"]
        noise_seed = example_seed(seed, MODEL_NOISE, b)
        reference = run_model(model, batch, noise_seed)
        ref_sdr, in_sdr = si_sdr(reference, target).numpy(), si_sdr(inp, target).numpy()
        in_mrstft = mrstft(inp, target)
        for j, i in enumerate(chunk):
            examples.append(
                {
                    "index": i,
                    "track": batch["track"][j],
                    "family": "baseline",
                    "level": math.nan,
                    "si_sdr": float(in_sdr[j]),
                    "mrstft": float(in_mrstft[j]),
                    "delta_si_sdr": math.nan,
                    "improvement": 0.0,
                }
            )
        for family, level in conditions:
            key = (seed, F0_PERTURBATION, FAMILIES.index(family), int(round(level * 1e6)))
            gens = [torch.Generator().manual_seed(example_seed(*key, i)) for i in chunk]
            audio = run_model(model, perturb_controls(batch, family, level, gens), noise_seed)
            sdr = si_sdr(audio, target).numpy()
            dist = mrstft(audio, target)
            for j, i in enumerate(chunk):
                examples.append(
                    {
                        "index": i,
                        "track": batch["track"][j],
                        "family": family,
                        "level": level,
                        "si_sdr": float(sdr[j]),
                        "mrstft": float(dist[j]),
                        "delta_si_sdr": float(sdr[j] - ref_sdr[j]),
                        "improvement": float(sdr[j] - in_sdr[j]),
                    }
                )
    table = [_table_row(examples, "baseline", math.nan)] + [_table_row(examples, f, lv) for f, lv in conditions]
    settings = {
        "cents_jitter": levels["jitter"],
        "octave_error_rates": levels["octave"],
        "voicing_flip_rates": levels["voicing"],
        "n_examples": len(indices),
        "seed": seed,
        "composition": getattr(model, "composition", None),
    }
    accuracy = (
        f0_accuracy(model, dataset, n_examples=n_examples, f0_method=f0_method, progress=progress)
        if f0_accuracy_part
        else None
    )
    return {"settings": settings, "table": table, "examples": examples, "f0_accuracy": accuracy}


def _table_row(examples: list[dict], family: str, level: float) -> dict:
    rows = [e for e in examples if e["family"] == family and (family == "baseline" or e["level"] == level)]
    out = {"family": family, "level": level, "n": len(rows)}
    for key in ("si_sdr", "delta_si_sdr", "mrstft"):
        out.update(stats((r[key] for r in rows), key))
    out.update(stats((r["improvement"] for r in rows), "improvement", ("median",)))
    return out


# ------------------------------------------------------------------------------------------------- outputs
def plot_f0_noise(result: dict, path: str | os.PathLike) -> None:
    """SI-SDR and MR-STFT distance (median, interquartile band) against the level of each family, with the
    unrefined baseline's median as a dashed line; PNG at ``path``."""
    plt = pyplot()
    examples = result["examples"]
    baseline = [e for e in examples if e["family"] == "baseline"]
    fig, axes = plt.subplots(2, len(FAMILIES), figsize=(4.2 * len(FAMILIES), 6.5), squeeze=False)
    for col, family in enumerate(FAMILIES):
        levels = sorted({e["level"] for e in examples if e["family"] == family})
        for row, (key, label) in enumerate((("si_sdr", "SI-SDR (dB)"), ("mrstft", "MR-STFT distance"))):
            ax = axes[row, col]
            if levels:
                values = [[e[key] for e in examples if e["family"] == family and e["level"] == lv] for lv in levels]
                q = np.array([np.nanpercentile(v, [25, 50, 75]) for v in values])
                ax.fill_between(levels, q[:, 0], q[:, 2], alpha=0.25, label="refined, IQR")
                ax.plot(levels, q[:, 1], "o-", label="refined, median")
            ax.axhline(
                float(np.nanmedian([e[key] for e in baseline])),
                color="k",
                ls="--",
                label="separated (unrefined), median",
            )
            ax.set_xlabel(f"{family}: {UNITS[family]}")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Refined output vs F0 perturbation ({result['settings']['n_examples']} examples)")
    fig.tight_layout()
    save_figure(fig, path)


def write_f0_noise_outputs(result: dict, out_dir: str | os.PathLike, *, extra_settings: dict | None = None) -> Path:
    """Write the tables, markdown, plot and ``f0_noise.json`` (settings, table, F0-accuracy summary) into
    ``out_dir``; returns the JSON path. ``extra_settings`` (e.g. checkpoint, data) are recorded in the JSON."""
    out_dir = Path(out_dir)
    write_csv(out_dir / "f0_noise.csv", result["table"], TABLE_COLUMNS)
    write_csv(
        out_dir / "f0_noise_examples.csv",
        result["examples"],
        ("index", "track", "family", "level", "si_sdr", "delta_si_sdr", "improvement", "mrstft"),
    )
    sections = [
        (
            "Refined output vs F0 perturbation",
            "SI-SDR / MR-STFT of the refined output against the clean vocal; `delta_si_sdr`: paired change "
            "from the unperturbed refined output; `improvement`: paired change from the separated input. "
            "`baseline` is the separated vocal, unrefined. Levels: jitter in cents (std), octave as a "
            "fraction of voiced frames, voicing as a fraction of frames.\n\n"
            + markdown_table(result["table"], TABLE_COLUMNS),
        )
    ]
    accuracy = result.get("f0_accuracy")
    if accuracy is not None:
        write_csv(
            out_dir / "f0_accuracy.csv",
            accuracy["examples"],
            ("index", "track", "start_s", "n_voiced_clean", "n_voiced_separated") + F0_METRICS,
        )
        rows = [
            {"metric": k, "median": accuracy["summary"][f"{k}_median"], "mean": accuracy["summary"][f"{k}_mean"]}
            for k in F0_METRICS
        ]
        sections.insert(
            0,
            (
                "F0 on the separated vocal vs the clean vocal",
                f"Tracker `{accuracy['method']}`, voicing threshold {accuracy['voicing_threshold']}, "
                f"{accuracy['summary']['n']} examples; the clean vocal's F0 is the reference "
                "(50-cent tolerance; median cents over frames voiced in both).\n\n"
                + markdown_table(rows, ("metric", "median", "mean"), digits=3),
            ),
        )
    write_markdown(out_dir / "f0_noise.md", "F0-noise analysis", sections)
    plot_f0_noise(result, out_dir / "f0_noise.png")
    summary = {
        "settings": {**result["settings"], **(extra_settings or {})},
        "table": result["table"],
        "f0_accuracy": accuracy["summary"] if accuracy else None,
        "f0_method": accuracy["method"] if accuracy else None,
        "files": ["f0_noise.csv", "f0_noise_examples.csv", "f0_noise.md", "f0_noise.png"]
        + (["f0_accuracy.csv"] if accuracy else []),
    }
    path = out_dir / "f0_noise.json"
    write_json(path, summary)
    return path
