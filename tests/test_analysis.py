"""Analyses: F0 / audio perturbations, the F0-noise table, output stability, training-stability runs (table,
divergence, resume) and the ``ddsp-demucs analyze`` CLI, on tiny models and in-memory synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    FR,
    REPO,
    SR,
    TINY_OVERRIDES,
    ListDataset,
    NaNDataset,
    RatedDataset,
    make_example,
    read_csv,
    strict_json,
    tiny_config,
    tiny_model,
)

from ddsp_demucs.analysis import (
    add_noise,
    apply_gain,
    f0_accuracy,
    f0_noise_analysis,
    flip_voicing,
    jitter_cents,
    loss_spikes,
    octave_errors,
    output_stability,
    shift,
    stability_analysis,
    write_f0_noise_outputs,
    write_output_stability_outputs,
)
from ddsp_demucs.core.utils import config_to_dict
from ddsp_demucs.metrics import octave_error_rate, raw_chroma_accuracy, si_sdr
from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.training.batches import collate


def voiced_f0(n_rows=4, n_frames=4000, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f0 = 100 + 300 * torch.rand(n_rows, n_frames, generator=g)
    return torch.where(torch.rand(n_rows, n_frames, generator=g) < 0.8, f0, torch.zeros(()))


# ----------------------------------------------------------------------------------------- perturbations
@pytest.mark.parametrize("std", [10.0, 50.0])
def test_jitter_has_the_requested_std_in_cents(std):
    f0 = voiced_f0()
    out = jitter_cents(f0, std, generator=torch.Generator().manual_seed(1))
    voiced = f0 > 0
    assert torch.equal(out[~voiced], f0[~voiced])  # unvoiced frames stay 0
    cents = 1200 * torch.log2(out[voiced].double() / f0[voiced].double())
    assert float(cents.std()) == pytest.approx(std, rel=0.03)
    assert abs(float(cents.mean())) < 0.05 * std
    again = jitter_cents(f0, std, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.10])
def test_octave_errors_hit_the_exact_fraction_of_voiced_frames(rate):
    f0 = voiced_f0()
    out = octave_errors(f0, rate, generator=torch.Generator().manual_seed(2))
    for ref, est in zip(f0, out):
        n_voiced = int((ref > 0).sum())
        expected = round(rate * n_voiced) / n_voiced
        assert octave_error_rate(ref.numpy(), est.numpy()) == pytest.approx(expected, abs=1e-12)
        assert raw_chroma_accuracy(ref.numpy(), est.numpy()) == 1.0
        changed = est != ref
        ratios = (est[changed] / ref[changed]).double()
        assert torch.all(((ratios - 2).abs() < 1e-6) | ((ratios - 0.5).abs() < 1e-6))
        assert 0 < int((ratios > 1).sum()) < int(changed.sum())  # both directions occur
        assert torch.all(est[ref == 0] == 0)


@pytest.mark.parametrize("rate", [0.05, 0.10])
def test_voicing_flips_are_exact_and_plausible(rate):
    f0 = voiced_f0(n_rows=3, n_frames=1000)
    f0[2] = 0.0  # a row with no voiced frame: fallback pitch
    conf = torch.where(f0 > 0, 0.9, 0.1)
    out_f0, out_conf = flip_voicing(f0, conf, rate, generator=torch.Generator().manual_seed(3), fallback_hz=200.0)
    for r in range(3):
        flipped = (out_f0[r] > 0) != (f0[r] > 0)
        assert int(flipped.sum()) == round(rate * f0.shape[-1])
        assert torch.equal(out_f0[r][~flipped], f0[r][~flipped]) and torch.equal(
            out_conf[r][~flipped], conf[r][~flipped]
        )
        to_unvoiced = flipped & (f0[r] > 0)
        to_voiced = flipped & (f0[r] == 0)
        assert torch.all(out_conf[r][to_unvoiced] == 0) and torch.all(out_conf[r][to_voiced] == 1)
        voiced_idx = torch.nonzero(f0[r] > 0).flatten()
        for i in torch.nonzero(to_voiced).flatten().tolist():
            if voiced_idx.numel():
                nearest = voiced_idx[(voiced_idx - i).abs().argmin()]  # earliest of the nearest on a tie
                assert float(out_f0[r, i]) == float(f0[r, nearest])
            else:
                assert float(out_f0[r, i]) == 200.0


def test_zero_level_is_the_identity():
    f0 = voiced_f0()
    conf = torch.rand(f0.shape)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(jitter_cents(f0, 0.0, generator=g), f0)
    assert torch.equal(octave_errors(f0, 0.0, generator=g), f0)
    out_f0, out_conf = flip_voicing(f0, conf, 0.0, generator=g)
    assert torch.equal(out_f0, f0) and torch.equal(out_conf, conf)
    audio = torch.randn(2, 1000)
    assert torch.equal(shift(audio, 0), audio) and torch.equal(apply_gain(audio, 0.0), audio)
    with pytest.raises(ValueError, match="fraction"):
        octave_errors(f0, 1.5)


def test_audio_perturbations():
    audio = torch.randn(3, 20000, dtype=torch.float64) * torch.tensor([[0.1], [1.0], [0.5]], dtype=torch.float64)
    noisy = add_noise(audio, -60.0, generator=torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(audio.square().sum(-1) / (noisy - audio).square().sum(-1))
    torch.testing.assert_close(snr, torch.full((3,), 60.0, dtype=torch.float64), rtol=0, atol=1e-6)
    delayed = shift(audio, 2)
    assert torch.equal(delayed[:, 2:], audio[:, :-2]) and torch.all(delayed[:, :2] == 0)
    assert torch.equal(shift(audio, -3)[:, :-3], audio[:, 3:])
    torch.testing.assert_close(apply_gain(audio, 20.0), audio * 10)


def test_loss_spikes_rule():
    losses = [1.0] * 30 + [2.5] + [1.0] * 5 + [float("nan")] + [1.9, 2.01] + [0.5] * 3
    assert loss_spikes(losses, factor=2.0, window=50, min_history=10) == [30, 38]
    assert loss_spikes([5.0] + [1.0] * 5, min_history=10) == []  # too little history
    assert loss_spikes([1.0] * 20 + [3.0], factor=4.0) == []


# ------------------------------------------------------------------------------------------- F0 noise
def test_f0_noise_table(examples, tmp_path):
    model = tiny_model("synth")
    result = f0_noise_analysis(model, examples, batch_size=4, f0_accuracy_part=False, progress=False)
    table = {(r["family"], r["level"]): r for r in result["table"] if r["family"] != "baseline"}
    assert len(result["table"]) == 1 + 5 + 4 + 3 and all(r["n"] == len(examples) for r in result["table"])
    # level 0 of each family is the unperturbed model run, computed independently here
    batch = collate([examples[i] for i in range(len(examples))])
    target = batch["target_audio"]
    baseline = next(r for r in result["table"] if r["family"] == "baseline")
    assert baseline["si_sdr_median"] == pytest.approx(
        float(np.median(si_sdr(batch["input_audio"], target).numpy())), abs=1e-5
    )
    level0 = [table[(f, 0.0)] for f in ("jitter", "octave", "voicing")]
    for row in level0:
        assert row["delta_si_sdr_median"] == 0.0 and row["delta_si_sdr_mean"] == 0.0
        assert row["si_sdr_median"] == level0[0]["si_sdr_median"]
    per_example = [e["si_sdr"] for e in result["examples"] if e["family"] == "jitter" and e["level"] == 0.0]
    with torch.no_grad():
        direct = [
            float(
                si_sdr(
                    model(
                        {k: v[i : i + 1] for k, v in batch.items() if torch.is_tensor(v)},
                        generator=torch.Generator().manual_seed(0),
                    )["audio"][0],
                    target[i],
                )
            )
            for i in range(len(examples))
        ]
    # pure resynthesis with its own noise seed: harmonics dominate, the unperturbed SI-SDR matches closely
    assert np.allclose(per_example, direct, atol=0.5)
    # a semitone of jitter or 10 % octave errors wreck a resynthesis
    assert table[("jitter", 100.0)]["delta_si_sdr_median"] < -3
    assert table[("octave", 0.1)]["delta_si_sdr_median"] < -3
    assert table[("jitter", 100.0)]["mrstft_median"] > table[("jitter", 0.0)]["mrstft_median"]
    again = f0_noise_analysis(model, examples, batch_size=4, f0_accuracy_part=False, progress=False)
    assert again["examples"] == result["examples"]


def test_f0_perturbations_do_not_depend_on_the_batch_size(examples):
    # fixed seeds per example; a mask model has no random noise, so its outputs match across batchings
    model = tiny_model("mask")
    torch.nn.init.constant_(model.residual_head.bias, 1.0)  # leave the identity: F0 matters
    runs = [
        f0_noise_analysis(
            model,
            examples,
            batch_size=bs,
            cents_jitter=(50,),
            octave_error_rates=(0.1,),
            voicing_flip_rates=(0.1,),
            f0_accuracy_part=False,
            progress=False,
        )
        for bs in (4, 6)
    ]
    a, b = ({(e["family"], e["level"], e["index"]): e["si_sdr"] for e in r["examples"]} for r in runs)
    assert a.keys() == b.keys() and len(a) == 4 * len(examples)
    assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=1e-3)
    assert any(abs(v["delta_si_sdr_median"]) > 0.01 for v in runs[0]["table"][1:])


def tone_example(f0_hz: float, n_samples: int = 11025, input_f0_hz: float | None = None) -> dict:
    """A clean harmonic tone (the 'target') with a silent gap; the 'separated' input is the same tone, or the
    tone at ``input_f0_hz``."""
    t = np.arange(n_samples) / SR
    gap = (t > 0.2) & (t < 0.3)

    def render(f0):
        return (0.3 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * ~gap).astype(np.float32)

    target = render(f0_hz)
    inp = target if input_f0_hz is None else render(input_f0_hz)
    n_frames = n_samples * FR // SR
    return {
        "input_audio": torch.from_numpy(inp),
        "target_audio": torch.from_numpy(target),
        "f0_hz": torch.zeros(n_frames),
        "f0_confidence": torch.zeros(n_frames),
        "loudness_db": torch.full((n_frames,), -20.0),
        "track": f"tone{f0_hz:g}",
        "start_s": 0.0,
    }


def test_f0_accuracy_separated_vs_clean(tmp_path):
    data = RatedDataset([tone_example(220.0), tone_example(200.0, input_f0_hz=400.0)])
    acc = f0_accuracy(tiny_model("mask"), data, progress=False)
    same, octave = acc["examples"]
    assert same["raw_pitch_accuracy"] == 1.0 and same["median_cents_error"] == 0.0
    assert same["octave_error_rate"] == 0.0 and same["n_voiced_clean"] == same["n_voiced_separated"] > 0
    assert octave["octave_error_rate"] > 0.8 and octave["raw_pitch_accuracy"] < 0.2
    assert octave["raw_chroma_accuracy"] > 0.8
    assert acc["summary"]["n"] == 2 and acc["method"] == "crepe-tiny"
    assert acc["summary"]["octave_error_rate_mean"] == pytest.approx(octave["octave_error_rate"] / 2)


def test_f0_noise_outputs(examples, tmp_path):
    result = f0_noise_analysis(
        tiny_model("mask"),
        examples,
        cents_jitter=(0, 50),
        octave_error_rates=(0, 0.1),
        voicing_flip_rates=(0.1,),
        n_examples=3,
        progress=False,
    )
    path = write_f0_noise_outputs(result, tmp_path, extra_settings={"request": {"checkpoint": "x"}})
    summary = strict_json(path)
    assert summary["settings"]["n_examples"] == 3 and summary["settings"]["request"] == {"checkpoint": "x"}
    assert summary["table"][0]["family"] == "baseline" and summary["table"][0]["delta_si_sdr_median"] is None
    rows = read_csv(tmp_path / "f0_noise.csv")
    assert [(r["family"], r["level"]) for r in rows] == [
        ("baseline", ""),
        ("jitter", "0.0"),
        ("jitter", "50.0"),
        ("octave", "0.0"),
        ("octave", "0.1"),
        ("voicing", "0.1"),
    ]
    assert len(read_csv(tmp_path / "f0_noise_examples.csv")) == 3 * 6
    assert len(read_csv(tmp_path / "f0_accuracy.csv")) == 3
    assert "| voicing | 0.10 | 3 |" in (tmp_path / "f0_noise.md").read_text()
    assert (tmp_path / "f0_noise.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------- output stability
def test_output_stability_of_the_identity_model(examples, tmp_path):
    model = tiny_model("mask")  # identity at initialisation
    result = output_stability(model, examples, gains_db=(-1.0, 1.0), progress=False)
    rows = {(r["perturbation"], r["level"]): r for r in result["table"]}
    assert set(rows) == {("noise", -60.0), ("shift", 1), ("gain", -1.0), ("gain", 1.0)}
    noise = rows[("noise", -60.0)]
    assert noise["input_snr_median"] == pytest.approx(60.0, abs=0.01)
    assert noise["output_si_sdr_median"] == pytest.approx(60.0, abs=0.1)  # the output is the input
    assert noise["output_snr_min"] == pytest.approx(noise["input_snr_median"], abs=0.1)
    for key in (("shift", 1), ("gain", -1.0), ("gain", 1.0)):
        assert rows[key]["output_si_sdr_min"] > 80 and rows[key]["output_snr_min"] > 80, rows[key]  # compensated
        assert rows[key]["delta_si_sdr_max_abs"] < 0.01
    assert noise["delta_si_sdr_max_abs"] < 0.01
    path = write_output_stability_outputs(result, tmp_path)
    assert strict_json(path)["table"][0]["perturbation"] == "noise"
    assert len(read_csv(tmp_path / "output_stability_examples.csv")) == 4 * len(examples)
    assert (tmp_path / "output_stability.png").is_file() and (tmp_path / "output_stability.md").is_file()


def test_output_stability_sees_a_model_that_ignores_the_input_timing(examples):
    # pure resynthesis renders from frame controls on a fixed grid: a one-sample shift of the input does not
    # move the output, so the aligned outputs differ; a gain moves the loudness control only
    result = output_stability(tiny_model("synth"), examples, n_examples=3, progress=False)
    rows = {r["perturbation"]: r for r in result["table"]}
    assert rows["shift"]["output_si_sdr_median"] < 20 < rows["noise"]["output_si_sdr_median"]
    assert rows["noise"]["n"] == 3


# ----------------------------------------------------------------------------------- training stability
STABILITY = (
    "training.max_steps=3",
    "training.val_every_steps=3",
    "training.batch_size=2",
    "loss.fft_sizes=[256,128]",
    "model.composition=mask",
)


@pytest.fixture(scope="module")
def small_sets():
    train = ListDataset([make_example(s, n_samples=4096) for s in range(6)])
    val = ListDataset([make_example(500 + s, n_samples=4096) for s in range(3)])
    return train, val


def test_stability_runs_table_and_resume(small_sets, tmp_path, monkeypatch):
    train, val = small_sets
    config = tiny_config(*STABILITY)
    result = stability_analysis(config, train, val, tmp_path, seeds=(0, 1), precisions=("32",), progress=False)
    names = [r["name"] for r in result["runs"]]
    assert names == ["seed0_lr0.001_fp32", "seed1_lr0.001_fp32"]
    for r in result["runs"]:
        assert not r["diverged"] and r["steps"] == 3 and r["nonfinite_steps"] == 0
        assert math.isfinite(r["val_loss"]) and math.isfinite(r["val_si_sdr"])
        assert 0 < r["grad_norm_median"] <= r["grad_norm_p95"] <= r["grad_norm_max"]
        # the recorder's gradient norms are the ones the trainer logged
        logged = [
            float(row["train/grad_norm"])
            for row in read_csv(tmp_path / "runs" / r["name"] / "logs" / "csv" / "metrics.csv")
            if row.get("train/grad_norm")
        ]
        steps = read_csv(tmp_path / "runs" / r["name"] / "steps.csv")
        assert np.allclose([float(s["grad_norm"]) for s in steps], logged, rtol=1e-6)
    assert result["runs"][0]["val_loss"] != result["runs"][1]["val_loss"]  # seeds differ
    (spread,) = result["spread"]
    assert spread["n_runs"] == 2 and spread["n_diverged"] == 0
    losses = [r["val_loss"] for r in result["runs"]]
    assert spread["val_loss_std"] == pytest.approx(float(np.std(losses, ddof=1)))
    assert spread["val_loss_min"] == min(losses) and spread["val_loss_max"] == max(losses)
    assert len(read_csv(tmp_path / "stability_runs.csv")) == 2
    for name in ("stability.md", "stability_loss.png", "stability_final.png", "stability_spread.csv"):
        assert (tmp_path / name).is_file(), name
    assert strict_json(tmp_path / "stability.json")["settings"]["seeds"] == [0, 1]

    # re-run: finished runs are skipped (training is not called)
    import ddsp_demucs.analysis.stability as stability_module  # training stability

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    with monkeypatch.context() as m:
        m.setattr(stability_module, "train_from_config", no_training)
        again = stability_analysis(config, train, val, tmp_path, seeds=(0, 1), precisions=("32",), progress=False)
    assert all(r["skipped_rerun"] for r in again["runs"])
    assert [r["val_loss"] for r in again["runs"]] == losses

    # more steps: the run resumes from its last checkpoint and keeps the recorded history
    before = read_csv(tmp_path / "runs" / names[0] / "steps.csv")
    longer = stability_analysis(
        config, train, val, tmp_path, seeds=(0,), precisions=("32",), max_steps=5, progress=False
    )
    (run,) = longer["runs"]
    assert not run["skipped_rerun"] and run["steps"] == 5
    steps = read_csv(tmp_path / "runs" / run["name"] / "steps.csv")
    assert [int(s["step"]) for s in steps] == [1, 2, 3, 4, 5]
    assert steps[:3] == before


def test_divergence_is_flagged_not_raised(small_sets, tmp_path):
    train, val = small_sets
    items = [train[i] for i in range(len(train))]
    config = tiny_config(*STABILITY, "training.max_nonfinite_steps=1")
    result = stability_analysis(
        config,
        NaNDataset(items, bad=set(range(len(items)))),
        val,
        tmp_path,
        seeds=(0,),
        precisions=("32",),
        progress=False,
    )
    (run,) = result["runs"]
    assert run["diverged"] and "max_nonfinite_steps=1" in run["divergence_reason"]
    assert run["nonfinite_steps"] == 2 and math.isnan(run["val_loss"])
    assert result["spread"][0]["n_diverged"] == 1
    summary = strict_json(tmp_path / "runs" / run["name"] / "run_summary.json")
    assert summary["diverged"] is True and summary["val_loss"] is None
    assert "Diverged: seed0_lr0.001_fp32" in (tmp_path / "stability.md").read_text()


def test_run_summary_counts_spikes_and_flags_a_loss_blow_up(small_sets, tmp_path, monkeypatch):
    import ddsp_demucs.analysis.stability as stability_module  # training stability

    train, val = small_sets
    config = tiny_config(*STABILITY)
    ckpt = save_checkpoint(tiny_model("mask"), tmp_path / "model.ckpt", config)
    losses = [1.0] * 20 + [5.0] + [1.0] * 9 + [3.0] * 10  # a spike at index 20, then the loss triples

    def fake_training(cfg, train_ds, val_ds, out_dir, resume=True, extra_callbacks=()):
        (recorder,) = extra_callbacks
        recorder.steps = [
            {"step": i + 1, "loss": v, "grad_norm": 1.0 + i, "skipped": False} for i, v in enumerate(losses)
        ]
        return {"last_checkpoint": str(ckpt)}

    monkeypatch.setattr(stability_module, "train_from_config", fake_training)
    run = stability_module.train_run(config, train, val, tmp_path / "run")
    assert run["n_loss_spikes"] == 11 and run["spike_steps"][0] == 21  # the jump to 3.0 counts once per step
    assert run["loss_start"] == 1.0 and run["loss_end"] == 3.0
    assert run["grad_norm_max"] == 40.0 and run["grad_norm_end"] == pytest.approx(35.5)
    assert run["diverged"] and "blew up" in run["divergence_reason"]
    assert math.isfinite(run["val_si_sdr"])  # the final model was still evaluated


# --------------------------------------------------------------------------------------------------- CLI
def save_checkpoint(model: ResidualDDSPDecoder, path: Path, config) -> Path:
    torch.save(
        {
            "ddsp_demucs": {
                "model_class": "ddsp_demucs.model.ResidualDDSPDecoder",
                "model_args": dict(model.init_args),
                "config": config_to_dict(config),
            },
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def test_cli_f0_noise(examples, tmp_path, monkeypatch, capsys):
    from ddsp_demucs.cli import main

    monkeypatch.setattr("ddsp_demucs.data.load_dataset", lambda data, split: examples, raising=False)
    ckpt = save_checkpoint(tiny_model("synth"), tmp_path / "model.ckpt", tiny_config())
    (tmp_path / "data").mkdir()
    args = [
        "analyze",
        "f0-noise",
        "--checkpoint",
        str(ckpt),
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "--n-examples",
        "2",
        "--jitter-cents",
        "0",
        "25",
        "--no-f0-accuracy",
    ]
    assert main(args) == 0
    summary = strict_json(tmp_path / "out" / "f0_noise.json")
    assert summary["settings"]["request"]["jitter_cents"] == [0.0, 25.0]
    assert len(summary["table"]) == 1 + 2 + 4 + 3
    mtime = (tmp_path / "out" / "f0_noise.json").stat().st_mtime_ns
    assert main(args) == 0  # same request: nothing redone
    assert (tmp_path / "out" / "f0_noise.json").stat().st_mtime_ns == mtime
    capsys.readouterr()
    assert (
        main(
            [
                "analyze",
                "f0-noise",
                "--checkpoint",
                str(tmp_path / "missing.ckpt"),
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().endswith("missing.ckpt: checkpoint not found")
    assert (
        main(
            [
                "analyze",
                "f0-noise",
                "--checkpoint",
                str(ckpt),
                "--data",
                str(tmp_path / "nodata"),
                "--out",
                str(tmp_path / "o3"),
            ]
        )
        == 2
    )
    assert "nodata: dataset directory not found" in capsys.readouterr().err


def test_cli_stability(small_sets, tmp_path, monkeypatch):
    from ddsp_demucs.cli import main

    train, val = small_sets
    splits = {"train": train, "validation": RatedDataset(val.items)}
    monkeypatch.setattr("ddsp_demucs.data.load_dataset", lambda data, split: splits[split], raising=False)
    config = tmp_path / "tiny.yaml"
    config.write_text("base: " + str(REPO / "configs" / "base.yaml") + "\n")
    (tmp_path / "data").mkdir()
    code = main(
        [
            "analyze",
            "stability",
            "--config",
            str(config),
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
            *TINY_OVERRIDES,
            *STABILITY,
            "--seeds",
            "3",
            "--precisions",
            "32",
            "--max-steps",
            "2",
            "--n-examples",
            "2",
        ]
    )
    assert code == 0
    runs = read_csv(tmp_path / "out" / "stability_runs.csv")
    assert [(r["name"], r["steps"], r["diverged"]) for r in runs] == [("seed3_lr0.001_fp32", "2", "False")]
    out = strict_json(tmp_path / "out" / "output_stability.json")
    assert out["settings"]["checkpoint"].endswith("seed3_lr0.001_fp32/checkpoints/last.ckpt")
    assert out["settings"]["n_examples"] == 2
