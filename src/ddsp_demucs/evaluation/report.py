"""``report.html``: one self-contained page (no network, no scripts, no external files) presenting an
evaluation: the separator used (with a plain warning for the weight-free fallback), a verdict sentence, the
summary table, the figures (base64 PNG), audio players (base64 WAV) for a few examples — mixture, separated,
refined, target — and the command, settings and training config that produced it."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from ddsp_demucs import __version__
from ddsp_demucs.core.utils import write_text_atomic
from ddsp_demucs.evaluation.core import EvaluationResults, ExampleAudio
from ddsp_demucs.evaluation.plots import evaluation_figures, figure_png
from ddsp_demucs.evaluation.summary import verdict
from ddsp_demucs.separation.demucs import FALLBACK_NAME

MAX_AUDIO_EXAMPLES = 4
MAX_AUDIO_BYTES = 8_000_000  # WAV bytes embedded at most (examples beyond it get no players)
AUDIO_ORDER = ("mixture", "separated", "refined", "target")
HEADROOM = 0.99  # an example whose peak exceeds this is scaled down (all its signals alike)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#555;font-size:.9em}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em .9em;border-radius:4px}
.verdict{font-size:1.1em;font-weight:600;padding:.6em .9em;border-left:4px solid #888;background:#f6f6f6}
.verdict.good{border-color:#2e7d32}.verdict.bad{border-color:#c62828}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;white-space:nowrap}th{background:#f0f0f0}
td.l,th.l{text-align:left;white-space:normal}code{font-size:.85em;color:#555}td.pos{color:#2e7d32}td.neg{color:#c62828}
img{max-width:100%;height:auto;border:1px solid #eee}
.players{display:flex;flex-wrap:wrap;gap:.8em}.players figure{margin:0}
.players figcaption{font-size:.85em;color:#444}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.82em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _signed(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:+.{digits}f}"


def summary_table(summary: dict) -> str:
    """The per-metric table (HTML) of a summary: medians, median improvement with its 95 % interval, counts."""
    head = (
        "<tr><th class='l'>metric</th><th>unit</th><th>better</th><th>n</th><th>separated median</th>"
        "<th>refined median</th><th>median improvement</th><th>95 % CI</th><th>improved / worsened</th></tr>"
    )
    rows = []
    for key in summary.get("metrics", []):
        m = summary[key]
        lo, hi = m["improvement_ci95"]
        cls = "pos" if lo is not None and lo > 0 else "neg" if hi is not None and hi < 0 else ""
        rows.append(
            f"<tr><td class='l'>{_e(m['label'])}<br><code>{_e(key)}</code></td><td>{_e(m['unit'])}</td>"
            f"<td>{'higher' if m['higher_is_better'] else 'lower'}</td><td>{m['n']}</td>"
            f"<td>{_num(m['baseline_median'])}</td><td>{_num(m['refined_median'])}</td>"
            f"<td class='{cls}'>{_signed(m['improvement_median'])}</td>"
            f"<td class='{cls}'>{_signed(lo)} to {_signed(hi)}</td>"
            f"<td>{m['n_improved']} / {m['n_worsened']}</td></tr>"
        )
    missing = summary.get("metrics_without_values") or []
    note = f"<p class='meta'>No finite values for: {_e(', '.join(missing))}.</p>" if missing else ""
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _counts(summary: dict) -> str:
    unit = "windows" if summary.get("protocol") == "windows" else "songs"
    parts = [f"{summary['n_examples']} {unit} scored"]
    lists = []
    for key, what in (
        ("failed", "failed (non-finite refined output)"),
        ("skipped", "skipped"),
        ("errors", "not evaluated (bad input)"),
    ):
        items = summary.get(key) or []
        if items:
            parts.append(f"{len(items)} {what}")
            entries = "".join(f"<li>{_e(i['example'])}: {_e(i['reason'])}</li>" for i in items)
            lists.append(f"<details><summary>{len(items)} {_e(what)}</summary><ul>{entries}</ul></details>")
    return f"<p>{_e('; '.join(parts))}.</p>" + "".join(lists)


def _verdict_html(summary: dict) -> str:
    m = summary.get("si_sdr") or {}
    lo, hi = m.get("improvement_ci95") or [None, None]
    cls = "good" if lo is not None and lo > 0 else "bad" if hi is not None and hi < 0 else ""
    return f"<p class='verdict {cls}'>{_e(verdict(summary))}</p>"


def _separator_html(summary: dict) -> str:

    sep = summary.get("separator", "unknown")
    text = f"<p>Separator (the baseline): <b>{_e(sep)}</b>.</p>"
    if sep == FALLBACK_NAME:
        text += (
            "<p class='warn'><b>Warning:</b> the baseline is the weight-free <b>fallback</b> separator "
            "(REPET-SIM), not Demucs: it is much weaker than htdemucs, so these figures say nothing about "
            "refining Demucs vocals.</p>"
        )
    elif sep == "unknown":
        text += "<p class='warn'>The dataset does not say which separator produced its vocals.</p>"
    return text


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of float ``audio`` ``(n,)`` or ``(n, ch)`` (clipped to [-1, 1])."""
    buffer = io.BytesIO()
    sf.write(
        buffer, np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _example_html(ex: ExampleAudio) -> tuple[str, int]:
    """The players of one example and the WAV bytes they embed."""
    names = [n for n in AUDIO_ORDER if n in ex.signals]
    peak = max(float(np.max(np.abs(ex.signals[n]))) for n in names)
    gain = HEADROOM / peak if peak > HEADROOM else 1.0
    players, size = [], 0
    for name in names:
        data = wav_bytes(ex.signals[name] * gain, ex.sample_rate)
        size += len(data)
        players.append(
            f"<figure><figcaption>{_e(name)}</figcaption><audio controls preload='metadata' "
            f"src='{_data_uri('audio/wav', data)}'></audio></figure>"
        )
    row = ex.row
    figures = (
        f"SI-SDR separated {_num(row.get('si_sdr_baseline'), 2)} dB, refined "
        f"{_num(row.get('si_sdr_refined'), 2)} dB; SDR separated {_num(row.get('sdr_baseline'), 2)} dB, "
        f"refined {_num(row.get('sdr_refined'), 2)} dB"
    )
    note = f" All four scaled by {20 * math.log10(gain):.1f} dB to avoid clipping." if gain < 1 else ""
    return (
        f"<section><h3>{_e(ex.label)}</h3><p class='meta'>{_e(figures)}.{_e(note)}</p>"
        f"<div class='players'>{''.join(players)}</div></section>",
        size,
    )


def _audio_section(results: EvaluationResults, max_examples: int) -> str:
    parts, total = [], 0
    for ex in results.examples[:max_examples]:
        block, size = _example_html(ex)
        if total + size > MAX_AUDIO_BYTES and parts:
            break
        parts.append(block)
        total += size
    if not parts:
        return ""
    return (
        "<h2>Listen</h2><p class='meta'>Mixture, the separator's vocal (separated), the model's refinement "
        "(refined) and the true vocal (target), at the evaluation's rate.</p>" + "".join(parts)
    )


def _images_html(images: Sequence[tuple[str, bytes]]) -> str:
    return "".join(
        f"<figure><img alt='{_e(caption)}' src='{_data_uri('image/png', png)}'>"
        f"<figcaption class='meta'>{_e(caption)}</figcaption></figure>"
        for caption, png in images
    )


CAPTIONS = {
    "metrics": "Separated vs refined per metric over the examples (boxes: quartiles; lines join an "
    "example's pair); last panel: SI-SDR improvement against the input SI-SDR.",
    "examples": "Examples: spectrograms of the target, separated and refined vocals, what the model "
    "changed (refined - separated, dB), and F0 tracks.",
}


def _render_images(results: EvaluationResults) -> list[tuple[str, bytes]]:
    return [(CAPTIONS.get(name, name), figure_png(fig)) for name, fig in evaluation_figures(results).items()]


def _caption(path: Path) -> str:
    return CAPTIONS["examples" if path.stem.endswith("_examples") else "metrics"]


def _results_section(summary: dict, results: EvaluationResults, images) -> str:
    png = _render_images(results) if images is None else [(_caption(Path(p)), Path(p).read_bytes()) for p in images]
    return summary_table(summary) + _counts(summary) + "<h3>Figures</h3>" + _images_html(png)


def write_report(
    out_dir: str | os.PathLike,
    summary: dict,
    results: EvaluationResults,
    *,
    title: str = "ddsp-demucs evaluation",
    command: str | None = None,
    tracks: tuple[dict, EvaluationResults] | None = None,
    images: Sequence[str | os.PathLike] | None = None,
    n_audio: int = MAX_AUDIO_EXAMPLES,
    filename: str = "report.html",
) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path.

    Args:
        summary, results: from :func:`~ddsp_demucs.evaluation.summarize` and
            :func:`~ddsp_demucs.evaluation.evaluate_model` (or :func:`~ddsp_demucs.evaluation.evaluate_tracks`).
        title: the page title.
        command: the command line that produced the evaluation (shown verbatim).
        tracks: ``(summary, results)`` of a whole-song evaluation shown in its own section.
        images: PNG files to embed instead of rendering the figures again (e.g. from
            :func:`~ddsp_demucs.evaluation.plot_evaluation_results`).
        n_audio: examples with audio players (at most; embedded WAV is kept under about 8 MB).

    Everything is embedded (PNG and WAV as base64 data URIs, inline CSS, no scripts), so the page opens from a
    file with no network.
    """
    protocol = {
        "windows": "windows (the dataset's mono windows at the model's rate)",
        "tracks": "whole songs at 44.1 kHz stereo (SiSEC18 SDR)",
        "songs": "whole songs separated and refined as `ddsp-demucs refine` does (SI-SDR of the mono "
        "downmix, SiSEC18 SDR, error per band and region)",
    }
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>ddsp-demucs {_e(__version__)}, {_e(when)}; protocol: "
        f"{_e(protocol.get(summary.get('protocol'), summary.get('protocol')))}; model: "
        f"{_e(results.settings.get('system') or results.settings.get('composition'))}</p>",
        _separator_html(summary),
        _verdict_html(summary),
        "<h2>Summary</h2>",
        _results_section(summary, results, images),
        _audio_section(results, n_audio),
    ]
    if tracks is not None:
        t_summary, t_results = tracks
        body += [
            "<h2>Whole songs (44.1 kHz stereo, SiSEC18 SDR)</h2>",
            _verdict_html(t_summary),
            _results_section(t_summary, t_results, None),
        ]
    settings = {results.protocol: results.settings}
    if tracks is not None:
        settings[tracks[1].protocol] = tracks[1].settings
    body += [
        "<h2>How this was produced</h2>",
        f"<p>Command:</p><pre>{_e(command or '(called from Python; see the settings below)')}</pre>",
        f"<p>Evaluation settings:</p><pre>{_e(json.dumps(settings, indent=2, default=str))}</pre>",
        f"<p>Bootstrap: {_e(json.dumps(summary.get('bootstrap', {}), default=str))}</p>",
    ]
    if results.model_config:
        body.append(
            f"<details><summary>Training config of the checkpoint</summary>"
            f"<pre>{_e(json.dumps(results.model_config, indent=2, default=str))}</pre></details>"
        )
    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    return write_text_atomic(Path(out_dir) / filename, page)


__all__ = ["write_report", "summary_table", "wav_bytes", "MAX_AUDIO_EXAMPLES"]
