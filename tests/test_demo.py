"""`ddsp-demucs demo` end to end on a tiny version of its config: every stage, the three top-level outputs, the
verdict printed, and a re-run that reuses every finished stage."""

from __future__ import annotations

import json
import logging

from helpers import REPO, TINY_OVERRIDES

from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.core.utils import load_config

TINY_DEMO = TINY_OVERRIDES + [
    "training.batch_size=2",
    "training.n_audio_examples=0",
    "corpus.n_train=3",
    "corpus.n_valid=1",
    "corpus.n_test=1",
    "corpus.duration_s=5.0",
    "data.win_s=2.0",
    "data.hop_s=1.0",
    "training.max_steps=4",
    "training.warmup_steps=1",
    "training.val_every_steps=2",
    "training.limit_val_batches=1",
    "training.log_every_steps=1",
]


def test_demo_end_to_end_then_rerun_reuses_every_stage(tmp_path, capsys, caplog):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--separator", "fallback", "--no-progress", *TINY_DEMO]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "separator: fallback  (weight-free fallback, not Demucs)" in printed
    for name in ("report.html", "summary.json", "model.ckpt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    si = summary["si_sdr"]  # the verdict and its figures are the summary's
    verdict = "beat" if si["improvement_median"] > 0 else "do NOT beat"
    lo, hi = si["improvement_ci95"]
    assert (
        f"the refined vocals {verdict} the separator's: median SI-SDR improvement "
        f"{si['improvement_median']:+.2f} dB (95% CI {lo:+.2f} to {hi:+.2f}), {si['n_improved']} windows "
        f"improved, {si['n_worsened']} worsened"
    ) in printed
    assert f"held-out windows: {summary['n_examples']}; SI-SDR separated {si['baseline_median']:.2f} dB" in printed
    assert summary["separator"] == "fallback"
    for metric in ("si_sdr", "sdr"):
        assert set(summary[metric]) >= {
            "baseline_median",
            "refined_median",
            "improvement_median",
            "improvement_ci95",
            "n_improved",
            "n_worsened",
        }
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["tracks"] == ["synth_0003"] and manifest["separator"] == "fallback"
    report = (out / "report.html").read_text()
    assert "fallback" in report and "<audio" in report

    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.provenance import read_provenance

    model = load_model(out / "model.ckpt")
    assert model.composition == "mask"
    # each training song separated once more, by the training separators in turn, and their windows trained on
    extra = load_config(REPO / "configs" / "demo.yaml").corpus.training_separators[:3]
    assert extra, "configs/demo.yaml names no training separators"
    for k, name in enumerate(extra):
        folder = json.loads((out / f"dataset-{name}" / "manifest.json").read_text())
        assert folder["separator"] == name and folder["splits"]["train" if k < 2 else "validation"]["tracks"] == [
            f"synth_000{k}"
        ]
    assert read_provenance(out / "model.ckpt")["separator"] == "+".join(["fallback", *extra[:2]])
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix in (".wav", ".npz", ".npy")}
    steps = json.loads((out / "summary.json").read_text())["n_examples"]
    caplog.clear()
    caplog.set_level(logging.INFO, logger="ddsp_demucs")
    assert cli_main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # corpus, stems, features, shards kept
    assert "0 separated, 4 already done" in caplog.text
    assert json.loads((out / "summary.json").read_text())["n_examples"] == steps
    assert not list(out.rglob(".*.tmp*"))


def test_training_separations_take_the_songs_in_turn():
    from types import SimpleNamespace

    from ddsp_demucs.demo import training_separations

    songs = [SimpleNamespace(name=f"song_{i}") for i in (3, 0, 4, 1, 2)]
    shares = training_separations(songs, ["a", "b", "c", "d", "e", "f"])
    assert {k: [s.name for s in v] for k, v in shares.items()} == {
        "a": ["song_0"],
        "b": ["song_1"],
        "c": ["song_2"],
        "d": ["song_3"],
        "e": ["song_4"],
    }
    shares = training_separations(songs, ["a", "b"])
    assert [s.name for s in shares["a"]] == ["song_0", "song_2", "song_4"] and len(shares["b"]) == 2
    assert training_separations(songs, []) == {}
