"""Evaluation: per-example figures against direct metric calls, identity model, skipped / failed examples,
summary schema and bootstrap interval, CSV tables, plots, the HTML report, whole-song protocol and the
``ddsp-demucs evaluate`` CLI, on tiny models and in-memory synthetic windows."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shared_file
from helpers import (
    EVAL_N_SAMPLES,
    FR,
    SR,
    WindowDataset,
    import_museval,
    musdb_with_stems,
    read_csv,
    strict_json,
    tiny_model,
    window,
    windows,
)

from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.dsp import MultiResolutionSTFTLoss
from ddsp_demucs.evaluation import (
    EXCERPT_S,
    METRIC_KEYS,
    METRICS,
    EvaluationResults,
    bootstrap_median_ci,
    evaluate_model,
    evaluate_tracks,
    metric_spec,
    plot_evaluation_results,
    summarize,
    track_table,
    verdict,
    write_examples_csv,
    write_report,
    write_tracks_csv,
)
from ddsp_demucs.features import extract_f0
from ddsp_demucs.metrics import f0_metrics, log_spectral_distance, sdr, si_sdr, spectral_convergence
from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.training.batches import collate

pytestmark = pytest.mark.usefixtures("one_thread")


class NaNFor(torch.nn.Module):
    """Returns the input, except NaN for the windows of the named tracks."""

    sample_rate, frame_rate = SR, FR

    def __init__(self, bad_tracks: set[str]):
        super().__init__()
        self.bad_tracks = bad_tracks

    def forward(self, batch, generator=None):
        out = batch["input_audio"].clone()
        for j, track in enumerate(batch["track"]):
            if track in self.bad_tracks:
                out[j] = float("nan")
        return {"audio": out}


def num(text: str) -> float:
    return float(text) if text else math.nan


def png_size(path_or_bytes) -> tuple[int, int]:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def dataset() -> WindowDataset:
    return WindowDataset(windows())


@pytest.fixture(scope="module")
def refined_results(dataset) -> tuple[ResidualDDSPDecoder, EvaluationResults]:
    model = tiny_model(perturb=0.3)
    return model, evaluate_model(model, dataset, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def identity_results(dataset) -> EvaluationResults:
    return evaluate_model(tiny_model(), dataset, batch_size=4, compute_f0=False, progress=False)


# ------------------------------------------------------------------------------------------- figures
def test_figures_equal_direct_metric_calls(dataset, refined_results):
    model, results = refined_results
    assert results.protocol == "windows" and results.separator == "fallback" and len(results) == len(dataset)
    with torch.no_grad():  # the same batches as the evaluation (batch_size=4)
        refined = np.concatenate(
            [
                model(collate([dataset[i] for i in range(start, min(start + 4, len(dataset)))]))["audio"].numpy()
                for start in range(0, len(dataset), 4)
            ]
        )
    stft_distance = MultiResolutionSTFTLoss()
    for row, est_refined in zip(results.rows, refined):
        item = dataset[row["index"]]
        target, separated = item["target_audio"].numpy(), item["input_audio"].numpy()
        assert row["track"] == item["track"] and row["start_s"] == item["start_s"] and row["status"] == "ok"
        assert row["duration_s"] == pytest.approx(EVAL_N_SAMPLES / SR)
        ref_f0, _ = extract_f0(target, SR, frame_rate=FR)
        for side, est in (("baseline", separated), ("refined", est_refined)):
            assert row[f"si_sdr_{side}"] == pytest.approx(float(si_sdr(est.astype(np.float64), target)), abs=1e-4)
            assert row[f"sdr_{side}"] == pytest.approx(float(sdr(est[:, None], target[:, None], SR)), abs=1e-4)
            assert row[f"spectral_convergence_{side}"] == pytest.approx(
                float(spectral_convergence(torch.from_numpy(est), torch.from_numpy(target))), rel=1e-5
            )
            assert row[f"log_spectral_distance_{side}"] == pytest.approx(
                float(log_spectral_distance(torch.from_numpy(est), torch.from_numpy(target))), rel=1e-5
            )
            assert row[f"mrstft_{side}"] == pytest.approx(
                float(stft_distance(torch.from_numpy(est)[None], torch.from_numpy(target)[None])), rel=1e-5
            )
            est_f0, _ = extract_f0(est, SR, frame_rate=FR)
            for key, value in f0_metrics(ref_f0, est_f0).items():
                assert row[f"{key}_{side}"] == pytest.approx(float(value), abs=1e-9, nan_ok=True)
    # the model changed the vocal, so the two sides differ
    assert not np.allclose(results.values("si_sdr", "baseline"), results.values("si_sdr", "refined"))


def test_improvement_sign_follows_the_metric_direction(refined_results):
    _, results = refined_results
    for spec in METRICS:
        diff = results.values(spec.key, "refined") - results.values(spec.key, "baseline")
        expected = diff if spec.higher_is_better else -diff
        np.testing.assert_array_equal(results.improvements(spec.key), expected)
    assert metric_spec("si_sdr").higher_is_better and not metric_spec("mrstft").higher_is_better


def test_identity_model_improves_nothing(identity_results):
    summary = summarize(identity_results, n_boot=200)
    assert summary["metrics"] == [m.key for m in METRICS if not m.f0]  # F0 left out on request
    for key in summary["metrics"]:
        m = summary[key]
        assert m["improvement_median"] == 0.0 and m["improvement_ci95"] == [0.0, 0.0]
        assert m["n_improved"] == 0 and m["n_worsened"] == 0 and m["n"] == len(identity_results)
        assert m["baseline_median"] == m["refined_median"]
    assert "do not clearly beat" in verdict(summary)


def test_improved_and_worsened_counts_match_the_examples(refined_results):
    _, results = refined_results
    summary = summarize(results, n_boot=200)
    for key in summary["metrics"]:
        gain = results.improvements(key)
        gain = gain[np.isfinite(gain)]
        m = summary[key]
        assert m["n_improved"] == int(np.sum(gain > 0)) and m["n_worsened"] == int(np.sum(gain < 0))
        assert m["n_improved"] + m["n_worsened"] <= m["n"] == gain.size
        assert m["improvement_median"] == pytest.approx(float(np.median(gain)))
        lo, hi = m["improvement_ci95"]
        assert lo <= m["improvement_median"] <= hi


def test_n_examples_spreads_over_the_dataset(dataset):
    results = evaluate_model(tiny_model(), dataset, n_examples=3, compute_f0=False, progress=False)
    assert [r["index"] for r in results.rows] == [0, 2, 5]
    assert len(results) == 3 and results.settings["n_examples_requested"] == 3


def test_noise_of_synth_models_is_seeded(dataset):
    model = tiny_model("synth")
    first, second = (evaluate_model(model, dataset, compute_f0=False, progress=False, n_keep=0) for _ in range(2))
    np.testing.assert_array_equal(first.values("si_sdr", "refined"), second.values("si_sdr", "refined"))


# ------------------------------------------------------------------------------ skipped and failed
def test_silent_targets_are_skipped_and_nan_outputs_fail():
    items = windows(4)
    silent = dict(items[1], target_audio=torch.zeros(EVAL_N_SAMPLES))
    broken = dict(items[2], input_audio=torch.full((EVAL_N_SAMPLES,), float("nan")))
    items = [items[0], silent, broken, items[3], window(7, "bad_song", 0.0)]
    results = evaluate_model(NaNFor({"bad_song"}), WindowDataset(items), batch_size=2, compute_f0=False, progress=False)
    assert [r["track"] for r in results.rows] == ["song_a", "song_b", "bad_song"]
    assert [label for label, _ in results.skipped] == [f"{silent['track']} @ {silent['start_s']:.2f} s"]
    assert "silent target" in results.skipped[0][1]
    assert len(results.errors) == 1 and "non-finite samples in the input" in results.errors[0][1]
    assert [label for label, _ in results.failed] == ["bad_song @ 0.00 s"]
    failed = results.rows[-1]
    assert failed["status"] == "failed" and math.isnan(failed["si_sdr_refined"])
    assert math.isfinite(failed["si_sdr_baseline"])  # the baseline is still scored
    summary = summarize(results, n_boot=100)
    assert (summary["n_examples"], summary["n_failed"], summary["n_skipped"], summary["n_errors"]) == (3, 1, 1, 1)
    assert summary["si_sdr"]["n"] == 2  # the failure is not in the statistics
    assert "1 windows failed" in verdict(summary)


# ------------------------------------------------------------------------------------------ summary
def test_summary_schema_and_strict_json(refined_results, tmp_path):
    _, results = refined_results
    summary = summarize(results, n_boot=300, seed=3)
    assert summary["separator"] == "fallback" and summary["separator_is_fallback"]
    assert summary["protocol"] == "windows" and summary["n_examples"] == len(results)
    assert summary["bootstrap"]["n_boot"] == 300 and summary["bootstrap"]["seed"] == 3
    assert set(summary["metrics"]) | set(summary["metrics_without_values"]) == set(METRIC_KEYS)
    for key in ("si_sdr", "sdr", "spectral_convergence", "log_spectral_distance", "mrstft", "raw_pitch_accuracy"):
        m = summary[key]
        assert set(m) >= {
            "baseline_median",
            "refined_median",
            "baseline_mean",
            "refined_mean",
            "improvement_median",
            "improvement_ci95",
            "n_improved",
            "n_worsened",
            "higher_is_better",
        }
        assert m["higher_is_better"] == metric_spec(key).higher_is_better
        base, ref = results.values(key, "baseline"), results.values(key, "refined")
        valid = np.isfinite(base) & np.isfinite(ref)
        assert m["baseline_median"] == pytest.approx(float(np.median(base[valid])))
        assert m["refined_mean"] == pytest.approx(float(np.mean(ref[valid])))
        assert list(m["improvement_ci95"]) == pytest.approx(
            list(bootstrap_median_ci(results.improvements(key)[valid], n_boot=300, seed=3))
        )
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary, allow_nan=False))  # strict JSON: no NaN
    assert strict_json(path)["si_sdr"] == summary["si_sdr"]


def test_bootstrap_interval_agrees_with_scipy_and_covers_the_true_median():
    from scipy.stats import bootstrap

    values = np.random.default_rng(40).normal(0.5, 2.0, size=40)
    ours = bootstrap_median_ci(values, n_boot=20000, seed=11)
    theirs = bootstrap(
        (values,),
        np.median,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(5),
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.08)  # Monte-Carlo error about 0.02
    covered = 0
    for rep in range(200):  # the true median 0.5 lies in about 95 % of the intervals (binomial sd 1.5 %)
        lo, hi = bootstrap_median_ci(np.random.default_rng(1000 + rep).normal(0.5, 2.0, size=40), n_boot=400, seed=rep)
        covered += lo <= 0.5 <= hi
    assert 0.88 <= covered / 200 <= 0.995
    assert bootstrap_median_ci(values, n_boot=500, seed=11) == bootstrap_median_ci(values, n_boot=500, seed=11)
    assert bootstrap_median_ci(values, n_boot=500, seed=12) != bootstrap_median_ci(values, n_boot=500, seed=11)


def test_bootstrap_in_chunks_draws_the_same_resamples(monkeypatch):
    from ddsp_demucs.evaluation import summary

    values = np.random.default_rng(7).normal(size=500)
    whole = bootstrap_median_ci(values, n_boot=301, seed=3)
    monkeypatch.setattr(summary, "BOOTSTRAP_MAX_ELEMENTS", 4 * values.size)  # chunks of 4 resamples
    assert bootstrap_median_ci(values, n_boot=301, seed=3) == whole


def test_bootstrap_ignores_non_finite_values_and_handles_none():
    values = np.array([1.0, np.nan, 2.0, np.inf, 4.0])
    assert bootstrap_median_ci(values, n_boot=100) == bootstrap_median_ci(np.array([1.0, 2.0, 4.0]), n_boot=100)
    assert all(math.isnan(v) for v in bootstrap_median_ci(np.array([np.nan]), n_boot=10))


# ------------------------------------------------------------------------------------------ tables
def test_examples_and_tracks_csv(refined_results, tmp_path):
    _, results = refined_results
    rows = read_csv(write_examples_csv(results, tmp_path / "examples.csv"))
    assert len(rows) == len(results)
    for row, original in zip(rows, results.rows):
        assert row["track"] == original["track"] and float(row["start_s"]) == original["start_s"]
        for key in METRIC_KEYS:
            for side in ("baseline", "refined"):
                assert num(row[f"{key}_{side}"]) == pytest.approx(original[f"{key}_{side}"], nan_ok=True)
        assert num(row["si_sdr_improvement"]) == pytest.approx(original["si_sdr_refined"] - original["si_sdr_baseline"])
    tracks = read_csv(write_tracks_csv(results, tmp_path / "tracks.csv"))
    assert [t["track"] for t in tracks] == ["song_a", "song_b"]
    for t in tracks:
        mine = [r for r in results.rows if r["track"] == t["track"]]
        assert int(t["n_examples"]) == len(mine) == 3
        assert float(t["si_sdr_refined_median"]) == pytest.approx(float(np.median([r["si_sdr_refined"] for r in mine])))
        assert float(t["mrstft_improvement_median"]) == pytest.approx(
            float(np.median([r["mrstft_baseline"] - r["mrstft_refined"] for r in mine]))
        )
    assert len(track_table(results)) == 2


# ----------------------------------------------------------------------------------- plots, report
def test_plots_are_written(refined_results, tmp_path):
    _, results = refined_results
    paths = plot_evaluation_results(results, tmp_path / "plots" / "eval.png")
    assert paths == [tmp_path / "plots" / "eval.png", tmp_path / "plots" / "eval_examples.png"]
    for path in paths:
        width, height = png_size(path)
        assert width > 300 and height > 200


def test_report_is_self_contained(refined_results, tmp_path):
    _, results = refined_results
    summary = summarize(results, n_boot=200)
    page = write_report(tmp_path, summary, results, title="tiny <test>", command="ddsp-demucs evaluate --x 1")
    assert page == tmp_path / "report.html"
    text = page.read_text()
    assert "<title>tiny &lt;test&gt;</title>" in text and "ddsp-demucs evaluate --x 1" in text
    for key in summary["metrics"]:
        assert f"<code>{key}</code>" in text
    assert text.count("<tr>") == len(summary["metrics"]) + 1
    assert len(results.examples) == 4
    assert text.count("<audio") == 4 * 4  # mixture, separated, refined, target
    assert text.count("<img") == 2
    assert not re.search(r"https?://", text)
    sources = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", text)
    assert sources and all(s.startswith(("data:image/png;base64,", "data:audio/wav;base64,")) for s in sources)
    assert "<script" not in text and "<link" not in text
    assert "weight-free <b>fallback</b>" in text
    assert verdict(summary).replace("'", "&#x27;") in text
    assert text.count("<audio") == text.count("</audio>")


def test_report_names_a_demucs_separator_without_warning(identity_results, tmp_path):
    results = identity_results
    results_htdemucs = EvaluationResults(**{**results.__dict__, "separator": "htdemucs"})
    text = write_report(tmp_path, summarize(results_htdemucs, n_boot=50), results_htdemucs, n_audio=1).read_text()
    assert "<b>htdemucs</b>" in text and "fallback" not in text.lower()
    assert text.count("<audio") == 4


# ---------------------------------------------------------------------------------------- tracks
def test_whole_tracks_at_the_original_rate_and_channels(tmp_path):
    manifest = musdb_with_stems(tmp_path)
    results = evaluate_tracks(tiny_model(), manifest, "test", compute_f0=False, progress=False)
    assert results.protocol == "tracks" and results.separator == "fake" and results.sample_rate == 44100
    assert [r["track"] for r in results.rows] == ["synth_0000", "synth_0001"]
    for row in results.rows:
        truth, _ = sf.read(Path(manifest["musdb_root"]) / "test" / row["track"] / "vocals.wav", dtype="float32")
        separated, _ = sf.read(Path(manifest["stems_dir"]) / row["track"] / "vocals.wav", dtype="float32")
        assert truth.shape == separated.shape and truth.shape[1] == 2
        assert row["sdr_baseline"] == pytest.approx(float(sdr(separated, truth, 44100)), abs=1e-6)
        per_channel = si_sdr(separated.T.astype(np.float64), truth.T.astype(np.float64))
        assert row["si_sdr_baseline"] == pytest.approx(float(np.mean(per_channel)), abs=1e-4)
        assert row["duration_s"] == pytest.approx(3.0)
        # a mask model at initialisation returns its input: no improvement
        assert abs(row["sdr_refined"] - row["sdr_baseline"]) < 1e-3
    ex = results.examples[0]
    assert set(ex.signals) == {"mixture", "separated", "refined", "target"}
    assert all(s.shape == (3 * 44100, 2) for s in ex.signals.values())  # the whole (short) song, stereo
    summary = summarize(results, n_boot=100)
    assert summary["protocol"] == "tracks" and summary["n_examples"] == 2


def test_whole_tracks_report_unreadable_songs(tmp_path):
    manifest = musdb_with_stems(tmp_path)
    (Path(manifest["stems_dir"]) / "synth_0001" / "vocals.wav").write_bytes(b"not audio")
    results = evaluate_tracks(tiny_model(), manifest, "test", compute_f0=False, progress=False)
    assert [r["track"] for r in results.rows] == ["synth_0000"]
    assert [name for name, _ in results.errors] == ["synth_0001"] and "vocals.wav" in results.errors[0][1]


def test_whole_track_sdr_is_the_museval_v4_figure_on_real_audio(tmp_path):
    """The MUSDB sample (real stems) in the MUSDB layout, an imperfect 'separation' (vocals + 0.3 x
    accompaniment): the whole-song baseline SDR is museval v4's (nanmedian over 1 s windows)."""

    source = shared_file("musdb18_sample/music_delta_80s_rock/vocals.flac").parent
    song = tmp_path / "musdb" / "test" / source.name
    song.mkdir(parents=True)
    for stem in ("mixture", "drums", "bass", "other", "vocals"):
        (song / f"{stem}.flac").symlink_to(source / f"{stem}.flac")
    read = lambda stem: sf.read(source / f"{stem}.flac", dtype="float32", always_2d=True)[0]  # noqa: E731
    vocals = read("vocals")
    separated = vocals + 0.3 * (read("drums") + read("bass") + read("other"))
    (tmp_path / "stems" / source.name).mkdir(parents=True)
    sf.write(tmp_path / "stems" / source.name / "vocals.wav", separated, 44100, subtype="FLOAT")
    manifest = {
        "separator": "vocals+0.3acc",
        "stems_dir": str(tmp_path / "stems"),
        "musdb_root": str(tmp_path / "musdb"),
    }
    results = evaluate_tracks(tiny_model(perturb=0.3), manifest, "test", progress=False)
    (row,) = results.rows
    museval = import_museval()
    frames = museval.evaluate(
        vocals[None].astype(np.float64), separated[None].astype(np.float64), win=44100, hop=44100, mode="v4"
    )[0]
    assert row["sdr_baseline"] == pytest.approx(float(np.nanmedian(frames)), abs=1e-6)
    assert math.isfinite(row["sdr_refined"]) and row["sdr_refined"] != row["sdr_baseline"]
    # F0 of real singing: the clean vocal's own F0 against the separated one's is mostly right
    assert 0.5 < row["raw_pitch_accuracy_baseline"] <= 1.0
    ex = results.examples[0]
    assert ex.signals["target"].shape == (int(EXCERPT_S * 44100), 2) and ex.f0["target"].size == int(EXCERPT_S * FR)


# -------------------------------------------------------------------------------------------- CLI
def test_cli_end_to_end(checkpoint, fake_dataset_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(fake_dataset_dir),
            "--out",
            str(out),
            "--batch-size",
            "3",
            "--no-f0",
            "--full-tracks",
            "--n-boot",
            "100",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 windows: SI-SDR separated" in printed and "1 whole songs: SI-SDR separated" in printed
    for name in (
        "examples.csv",
        "tracks.csv",
        "summary.json",
        "evaluation.png",
        "evaluation_examples.png",
        "report.html",
        "full_tracks.csv",
        "full_tracks.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = strict_json(out / "summary.json")
    assert summary["separator"] == "fake" and summary["n_examples"] == 4
    assert summary["full_tracks"]["protocol"] == "tracks" and summary["full_tracks"]["n_examples"] == 1
    assert len(read_csv(out / "examples.csv")) == 4 and len(read_csv(out / "tracks.csv")) == 2
    report = (out / "report.html").read_text()
    assert "--full-tracks" in report and "Whole songs" in report
    assert not list(out.glob(".*.tmp*"))  # no temporary files left


def test_cli_errors_are_one_line(checkpoint, fake_dataset_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    cases = [
        (["--checkpoint", str(tmp_path / "missing.ckpt"), "--data", str(fake_dataset_dir)], "checkpoint not found"),
        (["--checkpoint", str(foreign), "--data", str(fake_dataset_dir)], "not a ddsp-demucs checkpoint"),
        (["--checkpoint", str(checkpoint), "--data", str(tmp_path / "nothing")], "dataset folder not found"),
        (["--checkpoint", str(checkpoint), "--data", str(fake_dataset_dir), "--n-examples", "0"], "at least 1"),
    ]
    for args, message in cases:
        code = cli_main(["evaluate", *args, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out" / "report.html").exists()
