"""Every output of an evaluation in one folder: ``summary.json``, ``examples.csv``, ``tracks.csv``, the
figures and ``report.html`` (plus ``full_tracks.csv`` and ``full_tracks.png`` for a whole-song evaluation)."""

from __future__ import annotations

import os
from pathlib import Path

from ddsp_demucs.evaluation.common import write_json
from ddsp_demucs.evaluation.core import EvaluationResults
from ddsp_demucs.evaluation.plots import plot_evaluation_results
from ddsp_demucs.evaluation.report import write_report
from ddsp_demucs.evaluation.summary import summarize, write_examples_csv, write_tracks_csv


def write_evaluation(
    out_dir: str | os.PathLike,
    results: EvaluationResults,
    *,
    tracks: EvaluationResults | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    title: str = "ddsp-demucs evaluation",
    command: str | None = None,
) -> dict:
    """Summarise ``results`` (and ``tracks``, a whole-song evaluation) and write, each atomically:
    ``examples.csv`` (one row per example), ``tracks.csv`` (per-track medians), ``evaluation.png`` and
    ``evaluation_examples.png``, ``summary.json`` (:func:`~ddsp_demucs.evaluation.summarize`; a whole-song
    summary is nested under ``"full_tracks"``, its rows in ``full_tracks.csv``, its figures in
    ``full_tracks*.png``) and ``report.html`` last.

    Returns ``{"summary": summary dict, "paths": {name: Path}}``.
    """
    out = Path(out_dir)
    summary = summarize(results, n_boot=n_boot, seed=seed)
    paths = {
        "examples_csv": write_examples_csv(results, out / "examples.csv"),
        "tracks_csv": write_tracks_csv(results, out / "tracks.csv"),
    }
    images = plot_evaluation_results(results, out / "evaluation.png")
    pair = None
    if tracks is not None:
        summary["full_tracks"] = summarize(tracks, n_boot=n_boot, seed=seed)
        paths["full_tracks_csv"] = write_examples_csv(tracks, out / "full_tracks.csv")
        for p in plot_evaluation_results(tracks, out / "full_tracks.png"):
            paths[p.stem] = p
        pair = (summary["full_tracks"], tracks)
    paths.update({p.stem: p for p in images})
    write_json(out / "summary.json", summary)
    paths["summary"] = out / "summary.json"
    paths["report"] = write_report(out, summary, results, title=title, command=command, tracks=pair, images=images)
    return {"summary": summary, "paths": paths}


__all__ = ["write_evaluation"]
