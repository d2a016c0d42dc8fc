"""Figures of an evaluation (matplotlib, Agg backend): baseline vs refined distributions per metric with the
improvement against the input SI-SDR, and per kept example the spectrograms (target, separated, refined,
refined - separated) and F0 tracks."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from ddsp_demucs.core.utils import atomic_path
from ddsp_demucs.dsp import stft_magnitude
from ddsp_demucs.evaluation.common import pyplot
from ddsp_demucs.evaluation.core import EvaluationResults, ExampleAudio, metric_spec

SPEC_N_FFT, SPEC_HOP = 1024, 256  # spectrogram STFT (samples at the example's rate)
SPEC_RANGE_DB = 80.0  # dynamic range shown
DIFF_RANGE_DB = 20.0  # colour range of the difference panel (+/- dB)
MAX_PAIR_LINES = 200  # draw baseline-refined pairs as lines up to this many examples
FIGURE_DPI = 90
COLORS = {"target": "black", "separated": "tab:blue", "refined": "tab:orange"}


def metrics_figure(results: EvaluationResults):
    """One panel per metric with finite pairs: baseline ("separated") vs refined as box plots over the
    examples (pairs joined by thin lines), and a last panel: SI-SDR improvement against the input SI-SDR."""
    plt = pyplot()
    panels = []
    for key in results.metric_keys:
        b, r = results.values(key, "baseline"), results.values(key, "refined")
        valid = np.isfinite(b) & np.isfinite(r)
        if valid.any():
            panels.append((key, b[valid], r[valid]))
    n = len(panels) + 1
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.1 * rows), squeeze=False)
    flat = axes.ravel()
    rng = np.random.default_rng(0)
    for ax, (key, b, r) in zip(flat, panels):
        spec = metric_spec(key)
        ax.boxplot([b, r], showfliers=False, widths=0.5)
        ax.set_xticks([1, 2], ["separated", "refined"])
        jitter = rng.uniform(-0.08, 0.08, size=b.size)
        if b.size <= MAX_PAIR_LINES:
            ax.plot(np.stack([1 + jitter, 2 + jitter]), np.stack([b, r]), color="0.6", lw=0.5, alpha=0.5)
        ax.scatter(1 + jitter, b, s=8, color=COLORS["separated"], alpha=0.7, zorder=3)
        ax.scatter(2 + jitter, r, s=8, color=COLORS["refined"], alpha=0.7, zorder=3)
        better = "higher" if spec.higher_is_better else "lower"
        ax.set_title(f"{spec.label}\n({better} is better, n={b.size})", fontsize=9)
        if spec.unit:
            ax.set_ylabel(spec.unit)
        ax.grid(alpha=0.3)
    ax = flat[len(panels)]
    x, gain = results.values("si_sdr", "baseline"), results.improvements("si_sdr")
    valid = np.isfinite(x) & np.isfinite(gain)
    ax.scatter(x[valid], gain[valid], s=10, color=COLORS["refined"], alpha=0.7)
    ax.axhline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("input (separated) SI-SDR, dB")
    ax.set_ylabel("SI-SDR improvement, dB")
    ax.set_title(f"improvement vs input quality (n={int(valid.sum())})", fontsize=9)
    ax.grid(alpha=0.3)
    for extra in flat[n:]:
        extra.set_visible(False)
    unit = "windows" if results.protocol == "windows" else "songs"
    fig.suptitle(f"separated ({results.separator}) vs refined, {len(results.rows)} {unit}", fontsize=11)
    fig.tight_layout()
    return fig


def spectrogram_db(audio: np.ndarray) -> np.ndarray:
    """``20 log10 |STFT|`` ``(n_bins, n_frames)`` of ``audio`` ``(n,)`` or ``(n, ch)`` (channels averaged)."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    with torch.inference_mode():
        mag = stft_magnitude(torch.from_numpy(np.ascontiguousarray(mono)), SPEC_N_FFT, SPEC_HOP).numpy()
    return 20.0 * np.log10(mag + 1e-6)


def _f0_line(f0: np.ndarray) -> np.ndarray:
    return np.where(f0 > 0, f0, np.nan)


def examples_figure(results: EvaluationResults):
    """Per kept example (a row): spectrograms of the target, separated and refined vocals (dB), the difference
    refined - separated (dB), and the F0 tracks of the three. None when no example was kept."""
    if not results.examples:
        return None
    plt = pyplot()
    n = len(results.examples)
    fig, axes = plt.subplots(n, 5, figsize=(17, 2.7 * n), squeeze=False)
    for row, ex in zip(axes, results.examples):
        _example_row(row, ex)
    fig.tight_layout()
    return fig


def _example_row(axes, ex: ExampleAudio) -> None:
    specs = {k: spectrogram_db(ex.signals[k]) for k in ("target", "separated", "refined")}
    top = max(float(np.max(s)) for s in specs.values())
    duration = ex.signals["target"].shape[0] / ex.sample_rate
    extent = (ex.start_s, ex.start_s + duration, 0.0, ex.sample_rate / 2000.0)
    for ax, name in zip(axes[:3], ("target", "separated", "refined")):
        image = ax.imshow(
            specs[name], origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=top - SPEC_RANGE_DB, vmax=top
        )
        ax.set_title(f"{name}: {ex.label}", fontsize=9)
        ax.set_ylabel("kHz")
    axes[2].figure.colorbar(image, ax=axes[2], label="dB")
    diff = axes[3].imshow(
        specs["refined"] - specs["separated"],
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap="RdBu_r",
        vmin=-DIFF_RANGE_DB,
        vmax=DIFF_RANGE_DB,
    )
    axes[3].set_title("refined - separated (dB)", fontsize=9)
    axes[3].figure.colorbar(diff, ax=axes[3], label="dB")
    ax = axes[4]
    if ex.f0:
        for name in ("target", "separated", "refined"):
            if name in ex.f0:
                f0 = ex.f0[name]
                ax.plot(
                    ex.start_s + np.arange(f0.size) / ex.frame_rate,
                    _f0_line(f0),
                    color=COLORS[name],
                    lw=1.2 if name == "target" else 0.9,
                    label=name,
                )
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylabel("F0 (Hz)")
    else:
        ax.text(0.5, 0.5, "F0 not computed", ha="center", va="center", transform=ax.transAxes)
    gain = ex.row.get("si_sdr_refined", math.nan) - ex.row.get("si_sdr_baseline", math.nan)
    ax.set_title(
        f"F0; SI-SDR {ex.row.get('si_sdr_baseline', math.nan):.1f} -> "
        f"{ex.row.get('si_sdr_refined', math.nan):.1f} dB ({gain:+.2f})",
        fontsize=9,
    )
    for a in axes:
        a.set_xlabel("time (s)")
    ax.grid(alpha=0.3)


def evaluation_figures(results: EvaluationResults) -> dict[str, object]:
    """``{"metrics": figure, "examples": figure}`` (``examples`` only when examples were kept)."""
    figures = {"metrics": metrics_figure(results)}
    examples = examples_figure(results)
    if examples is not None:
        figures["examples"] = examples
    return figures


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (no software-version metadata); the figure is closed."""
    plt = pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def plot_evaluation_results(results: EvaluationResults, output_path: str | os.PathLike) -> list[Path]:
    """Write the evaluation figures as PNG (atomically): ``output_path`` (per-metric distributions and the
    improvement against the input SI-SDR) and, when examples were kept, ``<stem>_examples.png`` beside it
    (spectrograms and F0 tracks). Returns the paths written."""
    path = Path(output_path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    written = []
    for name, fig in evaluation_figures(results).items():
        target = path if name == "metrics" else path.with_name(f"{path.stem}_{name}.png")
        with atomic_path(target) as tmp:
            tmp.write_bytes(figure_png(fig))
        written.append(target)
    return written


__all__ = [
    "plot_evaluation_results",
    "evaluation_figures",
    "metrics_figure",
    "examples_figure",
    "figure_png",
    "spectrogram_db",
]
