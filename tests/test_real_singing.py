"""Real singing end to end: train briefly on the training singers' real vocals, then score whole held-out songs
through the user's path (`evaluate --songs`, the model and the comb filter) and refine a held-out song."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import TINY_OVERRIDES

from ddsp_demucs.cli import main as cli_main


def identity(separated, sample_rate, reference, mixture):
    return separated


@pytest.fixture(scope="module")
def real_model(small_corpus, tmp_path_factory):
    """A tiny mask model trained 2 steps on the small corpus' training singers (fallback separator)."""
    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.data import build_dataset_from_segments, load_dataset, musdb_tracks
    from ddsp_demucs.features import run_features
    from ddsp_demucs.separation.cache import separate_tracks
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.trainer import train_from_config

    _, corpus, _ = small_corpus
    work = tmp_path_factory.mktemp("real_model")
    config = load_config(
        None,
        TINY_OVERRIDES
        + [
            "training.batch_size=2",
            "training.n_audio_examples=0",
            "training.max_steps=2",
            "training.warmup_steps=1",
            "training.val_every_steps=2",
            "data.win_s=1.0",
            "data.hop_s=0.5",
            "loss.no_harm_weight=1.0",
            "loss.si_sdr_weight=1.0",
        ],
    )
    separator = get_separator("fallback")
    assert not separate_tracks(musdb_tracks(corpus, subsets=("train",)), separator, work / "stems")
    report = run_features(work / "stems", separator.name, work / "features", config)
    assert report.n_accepted > 0
    build_dataset_from_segments(
        report.segments_csv,
        work / "stems" / separator.name,
        corpus,
        work / "dataset",
        train_sr=config.data.train_sr,
        win_s=config.data.win_s,
        hop_s=config.data.hop_s,
        config=config,
    )
    result = train_from_config(
        config, load_dataset(work / "dataset", "train"), load_dataset(work / "dataset", "validation"), work / "train"
    )
    return Path(result["best_checkpoint"])


def test_identity_scores_zero_change_and_bands_add_up(small_corpus, tmp_path):
    from ddsp_demucs.evaluation.songs import evaluate_songs
    from ddsp_demucs.separation.demucs import get_separator

    _, corpus, tracks = small_corpus
    results = evaluate_songs(
        identity, corpus, get_separator("fallback"), system="identity", cache_dir=tmp_path, progress=False
    )
    test_names = {t.name for t in tracks if t.split == "test"}
    assert {r["track"] for r in results.rows} == test_names and not results.errors
    for key in results.metric_keys:
        np.testing.assert_array_equal(results.improvements(key)[np.isfinite(results.improvements(key))], 0.0)
    for row in results.rows:
        bands = [row[k + "_baseline"] for k in results.metric_keys if k.startswith("band_err_")]
        regions = [row[k + "_baseline"] for k in results.metric_keys if k.startswith("region_err_")]
        track = next(t for t in tracks if t.name == row["track"])
        target = track.vocals().astype(np.float64)
        separated = sf.read(
            tmp_path / row["track"] / next(p.name for p in (tmp_path / row["track"]).glob("separated_*.wav"))
        )[0]
        whole = 10 * np.log10(np.sum((separated - target) ** 2) / np.sum(target**2))
        assert 10 * np.log10(np.sum(10 ** (np.array(regions) / 10))) == pytest.approx(whole, abs=1e-6)
        assert 10 * np.log10(np.sum(10 ** (np.array(bands) / 10))) == pytest.approx(whole, abs=0.1)
        assert row["singer"]  # from the corpus manifest


def test_trained_on_real_singers_scored_on_held_out_songs(small_corpus, real_model, tmp_path, caplog):
    from ddsp_demucs.training.provenance import read_provenance

    _, corpus, tracks = small_corpus
    manifest = json.loads((corpus / "manifest.json").read_text())
    provenance = read_provenance(real_model)
    assert provenance["corpus"]["kind"] == "real" and not provenance["corpus"]["synthetic_only"]
    heard = set(provenance["corpus"]["singers"])
    assert heard == set(manifest["singers"]["train"]) | set(manifest["singers"]["validation"])
    assert not heard & set(manifest["singers"]["test"])
    assert provenance["separator"] == "fallback"

    out = tmp_path / "eval"
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                str(real_model),
                "--songs",
                str(corpus),
                "--separator",
                "fallback",
                "--out",
                str(out),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "songs" and summary["separator"] == "fallback"
    assert summary["n_examples"] == sum(t.split == "test" for t in tracks)
    for key in ("si_sdr_mono", "sdr", "band_err_1k_3k", "region_err_voiced"):
        assert set(summary[key]) >= {"improvement_median", "improvement_ci95", "n_improved", "n_worsened"}, key
    assert "separated" in (out / "examples.csv").read_text().splitlines()[0] or (out / "report.html").is_file()

    comb = tmp_path / "comb"
    assert (
        cli_main(
            [
                "evaluate",
                "--comb",
                "--songs",
                str(corpus),
                "--separator",
                "fallback",
                "--out",
                str(comb),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    comb_summary = json.loads((comb / "summary.json").read_text())
    assert comb_summary["si_sdr_mono"]["baseline_median"] == pytest.approx(summary["si_sdr_mono"]["baseline_median"])
    assert "comb filter" in (comb / "report.html").read_text()
    oracle = tmp_path / "comb_oracle"
    assert (
        cli_main(
            [
                "evaluate",
                "--comb",
                "--oracle-f0",
                "--songs",
                str(corpus),
                "--separator",
                "fallback",
                "--out",
                str(oracle),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    oracle_summary = json.loads((oracle / "summary.json").read_text())
    assert "oracle F0" in oracle_summary["settings"]["system"]
    assert oracle_summary["si_sdr_mono"]["refined_median"] != comb_summary["si_sdr_mono"]["refined_median"]

    song = next(t for t in tracks if t.split == "test")
    refined = tmp_path / "refined"
    assert (
        cli_main(
            [
                "refine",
                str(song.mixture_path),
                "--checkpoint",
                str(real_model),
                "--separator",
                "fallback",
                "--out",
                str(refined),
            ]
        )
        == 0
    )
    audio, sr = sf.read(refined / song.mixture_path.stem / "refined_vocals.wav", always_2d=True)
    info = sf.info(song.mixture_path)
    assert (sr, audio.shape) == (info.samplerate, (info.frames, info.channels)) and np.all(np.isfinite(audio))


def test_validation_songs_at_a_strength(small_corpus, real_model, tmp_path, capsys):
    """``--songs-subset valid --strength S``: the corpus' validation songs, refined at strength S, which the
    report's command repeats; --strength on dataset windows is a one-line error."""
    _, corpus, tracks = small_corpus
    out = tmp_path / "valid"
    args = ["evaluate", "--checkpoint", str(real_model), "--songs", str(corpus), "--separator", "fallback"]
    assert cli_main([*args, "--songs-subset", "valid", "--strength", "0.5", "--out", str(out), "--n-boot", "50"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    valid = {t.name for t in tracks if t.split == "valid"}
    assert valid and {r["track"] for r in csv_rows(out / "examples.csv")} == valid
    assert summary["settings"]["system"].endswith("at strength 0.5") and summary["settings"]["split"] == "valid"
    assert "--strength 0.5" in (out / "report.html").read_text()
    capsys.readouterr()
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                str(real_model),
                "--data",
                str(tmp_path),
                "--strength",
                "0.5",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strength" in err[0] and "--songs" in err[0]


def csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_clean_vocal_scores_refine_each_true_vocal_and_score_it_against_itself(small_corpus):
    """``make bench-real``'s ``clean_vocal``: a system that leaves an error exactly 20 dB below the vocal, at right
    angles to it, scores 20 dB on every song and singer."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.real_singing import clean_vocal_scores

    _, corpus, tracks = small_corpus
    seen = []

    def twenty_db_below(separated, sample_rate, reference, mixture):
        np.testing.assert_array_equal(separated, reference.astype(np.float32))  # the true vocal is the input
        seen.append(sample_rate)
        mono = reference.mean(1)
        noise = np.random.default_rng(len(seen)).standard_normal(mono.shape)
        noise -= (noise @ mono) / (mono @ mono) * mono
        noise *= np.sqrt((mono @ mono) / (noise @ noise) / 100.0)
        return reference + noise[:, None]

    scores = clean_vocal_scores(twenty_db_below, corpus)
    test_singers = set(json.loads((corpus / "manifest.json").read_text())["singers"]["test"])
    assert len(seen) == sum(t.split == "test" for t in tracks)
    assert set(scores["per_singer_median"]) == test_singers
    for value in [scores["si_sdr_median"], *scores["per_singer_median"].values()]:
        assert value == pytest.approx(20.0, abs=1e-3)


def test_strength_bench_refines_each_song_once_and_chooses_on_validation_medians():
    """``make bench-strength``: every strength is mixed from one refinement per song, as ``refine`` mixes it; the
    chosen strength has the largest validation median (the higher strength on a tie)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.strength import cached_refiner, choose
    from ddsp_demucs.inference.refine import apply_strength

    calls = []

    def refiner(separated, sample_rate, reference, mixture):
        calls.append(sample_rate)
        return separated * 0.5 + 0.1

    at = cached_refiner(refiner)
    x = np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)
    for strength in (0.25, 0.5, 1.0, 0.25):
        np.testing.assert_array_equal(at(strength)(x, 44100, x, x), apply_strength(x, x * 0.5 + 0.1, strength))
    assert calls == [44100]
    at(1.0)(x[:500], 44100, x[:500], x[:500])
    assert calls == [44100, 44100]  # another song: refined once more
    medians = {0.25: 1.0, 0.5: 2.0, 0.75: 2.0, 1.0: 1.5}
    assert choose({s: {"si_sdr_change_median": m} for s, m in medians.items()}) == 0.75
