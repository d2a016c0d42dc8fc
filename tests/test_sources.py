"""Track sources: MUSDB18-HQ layout with the validation split, song folders, real remixes, bad inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import shared_file

from ddsp_demucs import InputError
from ddsp_demucs.data import (
    MUSDB_VALIDATION_TRACKS,
    Track,
    folder_tracks,
    loop_to_length,
    make_remix,
    musdb_tracks,
    remix_tracks,
    vocal_to_accompaniment_db,
)

SR = 44100


def _tone(n, channels=2, sr=SR, f=220.0, seed=0):
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def _track_folder(folder: Path, n=4410, ext=".wav", skip=(), lengths=None, channels=None, sr=SR):
    folder.mkdir(parents=True)
    for i, name in enumerate(("mixture", "drums", "bass", "other", "vocals")):
        if name in skip:
            continue
        length = (lengths or {}).get(name, n)
        ch = (channels or {}).get(name, 2)
        sf.write(str(folder / f"{name}{ext}"), _tone(length, ch, sr, 110.0 * (i + 1), i), sr)


@pytest.fixture
def musdb_root(tmp_path):
    root = tmp_path / "musdb"
    _track_folder(root / "train" / "Actions - One Minute Smile")
    _track_folder(root / "train" / "Some Band - A Song", ext=".flac")
    _track_folder(root / "train" / "Leaf - Summerghost")
    _track_folder(root / "test" / "Other Band - Test Song")
    return root


def test_validation_list_matches_musdb_package():
    spec = importlib.util.find_spec("musdb")  # locates the package without importing it (which needs ffmpeg)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("musdb package not installed: cannot compare with its validation_tracks")
    config = Path(list(spec.submodule_search_locations)[0]) / "configs" / "mus.yaml"
    official = yaml.safe_load(config.read_text())["validation_tracks"]
    assert sorted(MUSDB_VALIDATION_TRACKS) == sorted(official) and len(MUSDB_VALIDATION_TRACKS) == 14


def test_musdb_layout_and_splits(musdb_root):
    tracks = musdb_tracks(musdb_root)
    assert [(t.name, t.subset, t.split) for t in tracks] == [
        ("Actions - One Minute Smile", "train", "valid"),
        ("Leaf - Summerghost", "train", "valid"),
        ("Some Band - A Song", "train", "train"),
        ("Other Band - Test Song", "test", "test"),
    ]
    assert tracks.skipped == []
    assert [t.name for t in musdb_tracks(musdb_root, split="train")] == ["Some Band - A Song"]
    assert [t.name for t in musdb_tracks(musdb_root, split="valid")] == [
        "Actions - One Minute Smile",
        "Leaf - Summerghost",
    ]
    assert [t.name for t in musdb_tracks(musdb_root, split="test")] == ["Other Band - Test Song"]
    assert [t.name for t in musdb_tracks(musdb_root, subsets=("test",))] == ["Other Band - Test Song"]
    flac = musdb_tracks(musdb_root, split="train")[0]
    mix = flac.mixture()
    assert mix.shape == (4410, 2) and mix.dtype == np.float32
    stems = flac.stems()
    assert sorted(stems) == ["bass", "drums", "other", "vocals"]
    expected_vocals, _ = sf.read(str(musdb_root / "train/Some Band - A Song/vocals.flac"), dtype="float32")
    np.testing.assert_array_equal(flac.vocals(), expected_vocals)
    assert flac.f0() is None
    with pytest.raises(ValueError, match="split"):
        musdb_tracks(musdb_root, split="validation")
    with pytest.raises(InputError, match="no MUSDB18-HQ layout"):
        musdb_tracks(musdb_root / "train")


def test_mono_is_upmixed_and_other_rates_resampled(tmp_path):
    root = tmp_path / "m"
    _track_folder(root / "test" / "mono48k", n=4800, sr=48000, channels={"vocals": 1, "mixture": 1})
    (track,) = musdb_tracks(root)
    vocals = track.vocals()
    assert vocals.shape == (4410, 2)  # ceil(4800 * 44100 / 48000)
    np.testing.assert_array_equal(vocals[:, 0], vocals[:, 1])
    assert {k: v.shape for k, v in track.stems().items()} == {
        k: (4410, 2) for k in ("drums", "bass", "other", "vocals")
    }


def test_bad_tracks_are_skipped_and_reported(musdb_root):
    bad = musdb_root / "train"
    _track_folder(bad / "short stem", lengths={"bass": 4000})
    _track_folder(bad / "no vocals", skip=("vocals",))
    _track_folder(bad / "no mixture", skip=("mixture",))
    _track_folder(bad / "six channels", sr=96000, n=9600, channels={"other": 6})
    _track_folder(bad / "unreadable")
    (bad / "unreadable" / "drums.wav").write_bytes(b"RIFF\x00\x00garbage, not a wave file")
    tracks = musdb_tracks(musdb_root)
    assert len(tracks) == 4  # the good ones are still there
    reasons = dict(tracks.skipped)
    assert sorted(reasons) == ["no mixture", "no vocals", "short stem", "six channels", "unreadable"]
    assert "bass.wav" in reasons["short stem"] and "4000 samples" in reasons["short stem"]
    assert "vocals" in reasons["no vocals"] and "missing" in reasons["no vocals"]
    assert "mixture" in reasons["no mixture"]
    assert "other.wav" in reasons["six channels"] and "6 channels at 96000 Hz" in reasons["six channels"]
    assert "drums.wav" in reasons["unreadable"]
    assert all("\n" not in r for r in reasons.values())


def test_loading_a_bad_file_raises_one_line_input_error(tmp_path):
    _track_folder(tmp_path / "t", lengths={"vocals": 3000}, channels={"drums": 6})
    folder = tmp_path / "t"
    track = Track("t", folder / "mixture.wav", {s: folder / f"{s}.wav" for s in ("drums", "vocals")})
    with pytest.raises(InputError, match=r"drums\.wav: 6 channels"):
        track.stems()
    track = Track("t", folder / "mixture.wav", {"vocals": folder / "vocals.wav"})
    with pytest.raises(InputError, match=r"vocals\.wav: 3000 samples but the mixture mixture\.wav has 4410"):
        track.stems()
    with pytest.raises(InputError, match="file not found"):
        Track("gone", folder / "nothing.wav").mixture()


def test_folder_tracks(tmp_path):
    songs = tmp_path / "songs"
    (songs / "album").mkdir(parents=True)
    sf.write(str(songs / "a.wav"), _tone(2000), SR)
    sf.write(str(songs / "album" / "b.flac"), _tone(2000, 1), 22050)
    sf.write(str(songs / "album" / "c.ogg"), _tone(22050), SR)
    sf.write(str(songs / "album" / "d.mp3"), _tone(22050), SR)
    sf.write(str(songs / "album" / "a.wav"), _tone(1000), SR)  # same stem as ../a.wav: named by its path
    sf.write(str(songs / "surround.wav"), _tone(1000, 6), SR)
    (songs / "broken.flac").write_bytes(b"fLaC but not really")
    (songs / "notes.txt").write_text("not audio")
    tracks = folder_tracks(songs)
    assert [t.name for t in tracks] == ["a", "album__a", "b", "c", "d"]
    assert sorted(name for name, _ in tracks.skipped) == ["broken", "surround"]
    for t in tracks:
        assert t.stems() is None and t.vocals() is None
        mix = t.mixture()
        assert mix.ndim == 2 and mix.shape[1] == 2 and mix.dtype == np.float32
    assert tracks[2].mixture().shape == (4000, 2)  # 22.05 kHz mono -> 44.1 kHz stereo
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    with pytest.raises(InputError, match="no song files"):
        folder_tracks(empty)


def test_make_remix_ratio_and_exact_sum():
    rng = np.random.default_rng(0)
    vocals = rng.standard_normal((5000, 2)) * 0.1
    acc = {
        "drums": rng.standard_normal((5000, 2)),
        "bass": rng.standard_normal((5000, 2)) * 0.5,
        "other": rng.standard_normal((5000, 2)) * 0.2,
    }
    for ratio in (-9.0, -3.0, 0.0, 6.0):
        stems = make_remix(vocals, acc, ratio)
        accompaniment = stems["drums"] + stems["bass"] + stems["other"]
        assert vocal_to_accompaniment_db(stems["vocals"], accompaniment) == pytest.approx(ratio, abs=1e-3)
        np.testing.assert_array_equal(stems["mixture"], accompaniment + stems["vocals"])
        assert np.max(np.abs(stems["mixture"])) == pytest.approx(0.9, abs=1e-6)
        # the reference ratio by hand
        v = np.sum(stems["vocals"].astype(np.float64) ** 2)
        a = np.sum(accompaniment.astype(np.float64) ** 2)
        assert 10 * np.log10(v / a) == pytest.approx(ratio, abs=1e-3)


def test_loop_to_length():
    x = np.random.default_rng(1).standard_normal((1000, 2))
    np.testing.assert_array_equal(loop_to_length(x, 600), x[:600])
    y = loop_to_length(x, 3500, crossfade=100)
    assert y.shape == (3500, 2)
    np.testing.assert_array_equal(y[:900], x[:900])  # before the first crossfade: the original
    np.testing.assert_allclose(y[1000:1800], x[100:900])  # second copy, past its fade-in (period 900)
    mid = np.cos(0.5 * np.pi * 50.5 / 100) * x[950] + np.sin(0.5 * np.pi * 50.5 / 100) * x[50]
    np.testing.assert_allclose(y[950], mid)


def test_remix_tracks_from_shared_data(tmp_path):
    shared = shared_file("musdb18_sample/music_delta_80s_rock/drums.flac").parents[2]
    shared_file("vocadito/vocadito_1.flac")
    out = tmp_path / "remix"
    tracks = remix_tracks(out, shared, vocal_ratio_db=-3.0, max_duration_s=8.0)
    assert tracks.skipped == []
    assert [t.name for t in tracks] == [
        "remix_medleydb_nightowl",
        "remix_sms_singing_female",
        "remix_sms_vignesh",
        "remix_vocadito_1",
    ]
    for t in tracks:
        stems = t.stems()
        accompaniment = stems["drums"] + stems["bass"] + stems["other"]
        assert abs(vocal_to_accompaniment_db(stems["vocals"], accompaniment) + 3.0) < 0.1, t.name
        np.testing.assert_array_equal(t.mixture(), accompaniment + stems["vocals"])
        assert t.split == "test" and t.mixture().shape[0] <= 8 * SR
    vocadito = tracks[3]
    assert vocadito.mixture().shape == (8 * SR, 2)  # cropped to max_duration_s; accompaniment looped (6.8 s)
    times, f0 = vocadito.f0()
    ref_t, ref_f0 = np.loadtxt(shared / "vocadito/annotations/vocadito_1_f0.csv", delimiter=",", unpack=True)
    keep = ref_t < 8.0
    np.testing.assert_allclose(times, ref_t[keep], atol=1e-6)
    np.testing.assert_allclose(f0, ref_f0[keep], atol=1e-6)
    assert tracks[1].f0() is None
    # a re-run with the same request rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    remix_tracks(out, shared, vocal_ratio_db=-3.0, max_duration_s=8.0)
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}


def test_remix_cli_reports_missing_vocals(tmp_path):
    from ddsp_demucs.cli import main

    acc = shared_file("musdb18_sample/music_delta_80s_rock/drums.flac").parent
    shared = tmp_path / "shared"
    (shared / "musdb18_sample").mkdir(parents=True)
    (shared / "musdb18_sample" / "music_delta_80s_rock").symlink_to(acc)
    (shared / "sms_tools").mkdir()
    sf.write(str(shared / "sms_tools" / "vignesh.flac"), _tone(SR), SR)
    code = main(
        [
            "corpus",
            "--kind",
            "remix-sample",
            "--out",
            str(tmp_path / "out"),
            "--shared-data",
            str(shared),
            "--vocal-ratio-db",
            "0",
        ]
    )
    assert code == 1  # the other three vocals are missing: reported, the one present is written
    (track,) = musdb_tracks(tmp_path / "out")
    assert track.name == "remix_sms_vignesh"
    stems = track.stems()
    assert abs(vocal_to_accompaniment_db(stems["vocals"], stems["drums"] + stems["bass"] + stems["other"])) < 0.1
