"""build_dataset_from_segments and load_dataset: contents against independent recomputation, splits by song,
determinism, resumption, sharded builds, bad inputs, the build-dataset command, and the real MUSDB sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shared_file
from scipy.signal import resample_poly

from ddsp_demucs import InputError
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.core.config import Config
from ddsp_demucs.data import Track, assign_splits, build_dataset_from_segments, load_dataset
from ddsp_demucs.dsp import a_weighted_loudness
from ddsp_demucs.features import load_features, read_segments_csv, run_features, write_segments_csv

TRAIN_SR, FR = 22050, 250


def small_config() -> Config:
    config = Config()
    config.data.win_s, config.data.hop_s = 2.0, 1.0
    return config


def fake_separation(corpus: Path, stems: Path) -> None:
    """Separated vocals = true vocals + a little noise, in the stem cache layout (no manifest)."""
    for k, folder in enumerate(sorted(p for sub in ("train", "test") for p in (corpus / sub).iterdir())):
        vocals, sr = sf.read(folder / "vocals.wav", dtype="float32", always_2d=True)
        noise = 0.02 * np.random.default_rng(k).standard_normal(vocals.shape).astype(np.float32)
        (stems / folder.name).mkdir(parents=True)
        sf.write(stems / folder.name / "vocals.wav", vocals + noise, sr, subtype="FLOAT")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    """A synthetic corpus (3 train songs, 1 of them validation; 1 test song; 5 s each), separated and gated."""
    from ddsp_demucs.corpus.synthetic import write_corpus

    root = tmp_path_factory.mktemp("pipeline")
    write_corpus(root / "corpus", n_train=3, n_test=1, duration_s=5.0, seed=3, n_valid=1)
    fake_separation(root / "corpus", root / "stems" / "fake")
    config = small_config()
    report = run_features(root / "stems", "fake", root / "features", config, progress=False)
    assert report.n_accepted >= 4, "the synthetic songs should pass the gate"
    return {
        "root": root,
        "config": config,
        "csv": report.segments_csv,
        "stems": root / "stems" / "fake",
        "corpus": root / "corpus",
        "features": root / "features" / "fake",
    }


def build(p: dict, out: Path, **kwargs):
    c = p["config"]
    return build_dataset_from_segments(
        p["csv"],
        p["stems"],
        p["corpus"],
        out,
        train_sr=TRAIN_SR,
        win_s=c.data.win_s,
        hop_s=c.data.hop_s,
        config=c,
        progress=False,
        **kwargs,
    )


def npy_bytes(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def mono_at_train_sr(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample_poly(audio.mean(axis=1).astype(np.float64), 1, sr // TRAIN_SR)


def test_items_equal_an_independent_recomputation(pipeline, tmp_path):
    report = build(pipeline, tmp_path / "ds")
    assert not report.skipped and len(report.built) == 4
    accepted = [r for r in read_segments_csv(pipeline["csv"]) if r["accepted"]]
    assert sum(report.windows.values()) == len(accepted)
    n_samples, n_frames = 2 * TRAIN_SR, 2 * TRAIN_SR * FR // TRAIN_SR
    checked = 0
    for split in ("train", "validation", "test"):
        ds = load_dataset(tmp_path / "ds", split, verify=True)
        assert (ds.sample_rate, ds.frame_rate, ds.n_samples, ds.n_frames) == (TRAIN_SR, FR, n_samples, n_frames)
        for i in range(len(ds)):
            item = ds[i]
            track, start = item["track"], item["start_s"]
            assert {r["start_s"] for r in accepted if r["track"] == track} >= {start}
            sub = "test" if split == "test" else "train"
            s0, f0 = round(start * TRAIN_SR), round(start * FR)
            sep = mono_at_train_sr(pipeline["stems"] / track / "vocals.wav")
            truth = mono_at_train_sr(pipeline["corpus"] / sub / track / "vocals.wav")
            mix = mono_at_train_sr(pipeline["corpus"] / sub / track / "mixture.wav")
            for key, ref in (("input_audio", sep), ("target_audio", truth), ("mixture_audio", mix)):
                assert item[key].dtype == torch.float32 and item[key].shape == (n_samples,)
                np.testing.assert_allclose(item[key].numpy(), ref[s0 : s0 + n_samples], atol=1e-6, err_msg=key)
            feats = load_features(pipeline["features"] / f"{track}.npz")
            np.testing.assert_array_equal(item["f0_hz"].numpy(), feats["f0_hz"][f0 : f0 + n_frames])
            np.testing.assert_array_equal(item["f0_confidence"].numpy(), feats["confidence"][f0 : f0 + n_frames])
            loud = a_weighted_loudness(
                torch.from_numpy(sep.astype(np.float32))[None], sample_rate=TRAIN_SR, frame_rate=FR
            )[0].numpy()
            np.testing.assert_allclose(item["loudness_db"].numpy(), loud[f0 : f0 + n_frames], atol=1e-3)
            checked += 1
    assert checked == len(accepted)


def test_splits_are_by_song_and_follow_the_corpus(pipeline, tmp_path):
    build(pipeline, tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    splits = {s: set(manifest["splits"][s]["tracks"]) for s in ("train", "validation", "test")}
    corpus = json.loads((pipeline["corpus"] / "manifest.json").read_text())
    assert splits["validation"] == set(corpus["validation_tracks"])
    assert splits["test"] == {p.name for p in (pipeline["corpus"] / "test").iterdir()}
    assert (
        not (splits["train"] & splits["validation"]) and not (splits["train"] | splits["validation"]) & splits["test"]
    )
    for split, names in splits.items():
        ds = load_dataset(tmp_path / "ds", split)
        assert set(ds.tracks) == names and {ds[i]["track"] for i in range(len(ds))} == names
    assert manifest["separator"] == "fake" and manifest["sample_rate"] == TRAIN_SR
    assert manifest["config"]["data"]["win_s"] == 2.0 and manifest["stems_dir"] == str(pipeline["stems"].resolve())


def test_validation_hold_out_when_none_is_declared():
    tracks = [Track(f"song{i}", Path(f"/x/{i}.wav"), split="train") for i in range(10)] + [
        Track("t", Path("/x/t.wav"), split="test")
    ]
    splits = assign_splits(tracks, 0.2)
    held = sorted(n for n, s in splits.items() if s == "validation")
    assert len(held) == 2 and splits["t"] == "test"
    assert assign_splits(list(reversed(tracks)), 0.2) == splits  # order does not matter
    assert "validation" not in assign_splits(tracks, 0.0).values()
    declared = tracks[:9] + [Track("v", Path("/x/v.wav"), split="valid")]
    assert [n for n, s in assign_splits(declared, 0.2).items() if s == "validation"] == ["v"]
    with pytest.raises(Exception, match="val_fraction"):
        assign_splits(tracks, 1.0)


def test_rebuild_is_byte_identical_and_rerun_reuses(pipeline, tmp_path):
    build(pipeline, tmp_path / "a")
    build(pipeline, tmp_path / "b")
    assert npy_bytes(tmp_path / "a") == npy_bytes(tmp_path / "b")  # every shard file and the manifest
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.npy")}
    again = build(pipeline, tmp_path / "a")
    assert again.built == [] and len(again.reused) == 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.npy")} == mtimes


def test_a_changed_input_rebuilds_only_its_shard(pipeline, tmp_path):
    p = dict(pipeline, stems=tmp_path / "stems")
    shutil.copytree(pipeline["stems"], p["stems"])
    build(p, tmp_path / "ds")
    test_song = json.loads((tmp_path / "ds" / "manifest.json").read_text())["splits"]["test"]["tracks"][0]
    vocals = p["stems"] / test_song / "vocals.wav"
    audio, sr = sf.read(vocals, dtype="float32")
    sf.write(vocals, 0.5 * audio, sr, subtype="FLOAT")
    # the feature file no longer matches its input: the song is skipped with a message, the others kept
    report = build(p, tmp_path / "ds")
    assert [name for name, _ in report.skipped] == [test_song] and "re-run features" in report.skipped[0][1]
    assert len(report.reused) == 3 and report.windows["test"] == 0


def test_sharded_build_then_index_equals_one_build(pipeline, tmp_path):
    build(pipeline, tmp_path / "one")
    first = build(pipeline, tmp_path / "two", num_shards=2, shard_index=0)
    assert first.windows is None and not (tmp_path / "two" / "manifest.json").exists()
    build(pipeline, tmp_path / "two", num_shards=2, shard_index=1)
    index = build(pipeline, tmp_path / "two", index_only=True)
    one, two = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert index.built == [] and index.windows == {s: one["splits"][s]["n_windows"] for s in one["splits"]}
    assert one["splits"] == two["splits"]
    assert {k: v for k, v in npy_bytes(tmp_path / "one").items() if k.endswith(".npy")} == {
        k: v for k, v in npy_bytes(tmp_path / "two").items() if k.endswith(".npy")
    }


def test_index_only_reports_missing_shards(pipeline, tmp_path):
    build(pipeline, tmp_path / "ds", num_shards=2, shard_index=0)
    report = build(pipeline, tmp_path / "ds", index_only=True)
    assert len(report.skipped) == 2 and all("no finished shard" in r for _, r in report.skipped)


def test_bad_songs_are_skipped_and_the_others_built(pipeline, tmp_path):
    p = dict(pipeline, stems=tmp_path / "stems", csv=tmp_path / "segments.csv")
    shutil.copytree(pipeline["stems"], p["stems"])
    rows = read_segments_csv(pipeline["csv"])
    names = sorted({r["track"] for r in rows if r["accepted"]})
    (p["stems"] / names[0] / "vocals.wav").unlink()  # missing separated vocal
    ghost = dict(rows[0], track="not_a_song")  # a song not in the corpus
    write_segments_csv(rows + [dict(ghost, accepted=True)], p["csv"])
    report = build(p, tmp_path / "ds", features_dir=pipeline["features"])
    reasons = dict(report.skipped)
    assert set(reasons) == {names[0], "not_a_song"}
    assert "vocals.wav: not found" in reasons[names[0]] and "not a track of" in reasons["not_a_song"]
    assert len(report.built) == len(names) - 1 and sum(report.windows.values()) > 0


def test_inconsistent_windows_and_missing_csv_are_errors(pipeline, tmp_path):
    c = pipeline["config"]
    with pytest.raises(InputError, match="win_s is 4 s"):
        build_dataset_from_segments(
            pipeline["csv"],
            pipeline["stems"],
            pipeline["corpus"],
            tmp_path / "ds",
            win_s=4.0,
            hop_s=1.0,
            config=c,
            progress=False,
        )
    with pytest.raises(InputError, match="segments CSV not found"):
        build_dataset_from_segments(
            tmp_path / "none.csv", pipeline["stems"], pipeline["corpus"], tmp_path / "ds", progress=False
        )
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a segments CSV"):
        build_dataset_from_segments(
            tmp_path / "junk.csv", pipeline["stems"], pipeline["corpus"], tmp_path / "ds", progress=False
        )


def test_loading_errors_and_dataloader(pipeline, tmp_path):
    from ddsp_demucs.training.batches import collate

    with pytest.raises(InputError, match="manifest.json: not found"):
        load_dataset(tmp_path / "nothing")
    build(pipeline, tmp_path / "ds")
    with pytest.raises(InputError, match="no 'dev' split"):
        load_dataset(tmp_path / "ds", "dev")
    ds = load_dataset(tmp_path / "ds", "train")
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds[-1]["start_s"] == ds[len(ds) - 1]["start_s"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=1)
    batch = next(iter(loader))
    assert batch["input_audio"].shape == (2, ds.n_samples) and batch["f0_hz"].shape == (2, ds.n_frames)
    assert isinstance(batch["track"][0], str)
    shard = tmp_path / "ds" / ds.shards[0]["path"] / "input_audio.npy"
    data = bytearray(shard.read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="changed since the dataset was built"):
        load_dataset(tmp_path / "ds", "train", verify=True)


def test_cli_end_to_end_with_a_bad_song(pipeline, tmp_path, capsys, caplog):
    stems = tmp_path / "stems"
    shutil.copytree(pipeline["stems"], stems / "fake")
    shutil.copytree(pipeline["features"], tmp_path / "features" / "fake")
    bad = sorted(p.name for p in (stems / "fake").iterdir())[0]
    (stems / "fake" / bad / "vocals.wav").write_bytes(b"not audio at all")
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  win_s: 2.0\n  hop_s: 1.0\n")
    args = [
        "build-dataset",
        "--features-dir",
        str(tmp_path / "features"),
        "--stems-dir",
        str(stems),
        "--separator",
        "fake",
        "--musdb-root",
        str(pipeline["corpus"]),
        "--out",
        str(tmp_path / "ds"),
        "--config",
        str(config),
    ]
    assert cli_main(args) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert f"{bad}.npz: computed from another version of" in caplog.text and "1 song(s) skipped" in caplog.text
    assert len(load_dataset(tmp_path / "ds", "train")) + len(load_dataset(tmp_path / "ds", "validation")) > 0
    assert not list((tmp_path / "ds").rglob(".*tmp*"))
    assert cli_main([*args[:-2], "--config", str(tmp_path / "missing.yaml")]) == 2
    assert cli_main([*args[:6], "nope", *args[7:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "no separated stems for separator 'nope'" in err[-1]


def test_real_musdb_sample_through_separate_features_and_dataset(tmp_path, capsys):
    """The real MUSDB preview (6.8 s) as a one-song test set: fallback separation, features, the gate, the dataset."""
    sample = shared_file("musdb18_sample/music_delta_80s_rock/mixture.flac").parent
    root = tmp_path / "musdb"
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "test" / sample.name).symlink_to(sample)
    config = tmp_path / "c.yaml"
    config.write_text("gate:\n  min_voiced_fraction: 0.2\n  min_mean_confidence: 0.3\n")
    assert (
        cli_main(["separate", "--musdb", str(root), "--separator", "fallback", "--stems-dir", str(tmp_path / "stems")])
        == 0
    )
    assert (
        cli_main(
            [
                "features",
                "--stems-dir",
                str(tmp_path / "stems"),
                "--separator",
                "fallback",
                "--out",
                str(tmp_path / "features"),
                "--config",
                str(config),
            ]
        )
        == 0
    )
    assert (
        cli_main(
            [
                "build-dataset",
                "--features-dir",
                str(tmp_path / "features"),
                "--stems-dir",
                str(tmp_path / "stems"),
                "--separator",
                "fallback",
                "--musdb-root",
                str(root),
                "--out",
                str(tmp_path / "ds"),
                "--config",
                str(config),
            ]
        )
        == 0
    )
    ds = load_dataset(tmp_path / "ds", "test", verify=True)
    assert ds.tracks == [sample.name] and len(ds) >= 1 and ds.manifest["separator"] == "fallback"
    item = ds[0]
    truth = mono_at_train_sr(sample / "vocals.flac")
    s0 = round(item["start_s"] * TRAIN_SR)
    np.testing.assert_allclose(item["target_audio"].numpy(), truth[s0 : s0 + ds.n_samples], atol=1e-5)
    assert float(item["f0_confidence"].max()) > 0.5 and float((item["f0_hz"] > 0).float().mean()) > 0.2


def test_separator_mix_draws_every_dataset_and_records_every_separator(pipeline, tmp_path):
    from ddsp_demucs.data import SeparatorMixDataset
    from ddsp_demucs.training.provenance import dataset_provenance

    build(pipeline, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    (tmp_path / "b" / "manifest.json").write_text(json.dumps({**manifest, "separator": "oracle-bands16"}))
    first, second = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    mix = SeparatorMixDataset([first, second])
    assert len(mix) == len(first) + len(second)
    np.testing.assert_array_equal(mix[len(first)]["input_audio"], second[0]["input_audio"])
    assert mix.manifest["separators"] == ["fake", "oracle-bands16"]
    assert dataset_provenance(mix)["separator"] == "fake+oracle-bands16"
    with pytest.raises(ValueError, match="at least one"):
        SeparatorMixDataset([])
