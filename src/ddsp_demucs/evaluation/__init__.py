"""Evaluation of a refinement model against the separator alone: metrics (``core``), statistics and tables
(``summary``), figures (``plots``), the HTML report (``report``) and all outputs of a run (``outputs``).

Quick start (as the original README)::

    from ddsp_demucs.evaluation import evaluate_model, plot_evaluation_results, summarize, write_report
    results = evaluate_model(model, test_dataset, n_examples=100)
    plot_evaluation_results(results, output_path=Path("results/eval.png"))
    summary = summarize(results)
    write_report("results", summary, results)
"""

from ddsp_demucs.evaluation.common import mrstft_distance
from ddsp_demucs.evaluation.core import (
    EXCERPT_S,
    METRIC_KEYS,
    METRICS,
    SILENCE_DB,
    EvaluationResults,
    ExampleAudio,
    MetricSpec,
    evaluate_model,
    evaluate_tracks,
    loudest_start,
    metric_spec,
    rms_db,
    track_f0,
    waveform_metrics,
)
from ddsp_demucs.evaluation.outputs import write_evaluation
from ddsp_demucs.evaluation.plots import evaluation_figures, figure_png, plot_evaluation_results
from ddsp_demucs.evaluation.report import summary_table, write_report
from ddsp_demucs.evaluation.summary import (
    bootstrap_median_ci,
    metric_summary,
    summarize,
    track_table,
    verdict,
    write_examples_csv,
    write_tracks_csv,
)

__all__ = [
    "EXCERPT_S",
    "EvaluationResults",
    "ExampleAudio",
    "METRICS",
    "METRIC_KEYS",
    "MetricSpec",
    "SILENCE_DB",
    "bootstrap_median_ci",
    "evaluate_model",
    "evaluate_tracks",
    "evaluation_figures",
    "figure_png",
    "loudest_start",
    "metric_spec",
    "metric_summary",
    "mrstft_distance",
    "plot_evaluation_results",
    "rms_db",
    "summarize",
    "summary_table",
    "track_f0",
    "track_table",
    "verdict",
    "waveform_metrics",
    "write_evaluation",
    "write_examples_csv",
    "write_report",
    "write_tracks_csv",
]
