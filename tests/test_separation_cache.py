"""The stem cache: layout and manifest, skip when unchanged, redo on changed input or parameters, bad tracks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddsp_demucs import InputError
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.core.audio_io import load_audio, save_audio
from ddsp_demucs.separation.cache import mixture_checksum, separate_tracks, track_dir


class ScaleSeparator:
    """A deterministic separator that counts its calls: vocals = gain * mixture, plus two other sources."""

    name = "scale"
    signature = "scale-v1"

    def __init__(self, gain: float = 0.5):
        self.gain = gain
        self.calls: list[int] = []

    @property
    def params(self) -> dict:
        return {"gain": self.gain}

    def separate(self, mixture, sample_rate):
        self.calls.append(mixture.shape[0])
        rest = (1 - self.gain) * mixture
        return {"drums": rest / 2, "other": rest / 2, "vocals": self.gain * mixture}


class Track:
    def __init__(self, name, audio=None, error=None):
        self.name, self._audio, self._error = name, audio, error

    def mixture(self):
        if self._error:
            raise InputError(self._error)
        return self._audio


def _audio(seed, n=44100):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 2)).astype(np.float32)


def test_writes_stems_and_manifest_then_skips_and_redoes(tmp_path):
    a, b = Track("song a", _audio(0)), Track("song b", _audio(1))
    sep = ScaleSeparator()
    assert separate_tracks([a, b], sep, tmp_path, progress=False) == []
    folder = track_dir(tmp_path, "scale", "song a")
    assert folder == tmp_path / "scale" / "song a"
    vocals, sr = load_audio(folder / "vocals.wav")
    accompaniment, _ = load_audio(folder / "accompaniment.wav")
    assert sr == 44100
    np.testing.assert_array_equal(vocals, 0.5 * a.mixture())
    np.testing.assert_allclose(accompaniment, 0.5 * a.mixture(), atol=1e-7)  # drums + other
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["separator"] == "scale" and manifest["weights_signature"] == "scale-v1"
    assert manifest["parameters"] == {"gain": 0.5} and manifest["input_sha1"] == mixture_checksum(a.mixture())
    assert manifest["demucs_version"] and manifest["ddsp_demucs_version"]
    assert len(sep.calls) == 2

    assert separate_tracks([a, b], sep, tmp_path, progress=False) == []
    assert len(sep.calls) == 2  # nothing redone

    b._audio = _audio(2)  # input changed
    separate_tracks([a, b], sep, tmp_path, progress=False)
    assert len(sep.calls) == 3
    sep.gain = 0.25  # parameters changed: both redone
    separate_tracks([a, b], sep, tmp_path, progress=False)
    assert len(sep.calls) == 5
    np.testing.assert_array_equal(load_audio(folder / "vocals.wav")[0], 0.25 * a.mixture())

    (tmp_path / "scale" / "song b" / "vocals.wav").unlink()  # a lost stem is redone
    separate_tracks([a, b], sep, tmp_path, progress=False)
    assert len(sep.calls) == 6


def test_bad_tracks_are_reported_and_the_others_processed(tmp_path):
    tracks = [
        Track("good 1", _audio(0)),
        Track("unreadable", error="/x/song.wav: cannot decode audio"),
        Track("nan", np.full((44100, 2), np.nan, dtype=np.float32)),
        Track("flat", np.zeros(100, np.float32)),
        Track("good 2", _audio(1)),
    ]

    class Checking(ScaleSeparator):
        def separate(self, mixture, sample_rate):
            if not np.all(np.isfinite(mixture)):
                raise InputError("mixture contains NaN or infinite samples")
            return super().separate(mixture, sample_rate)

    failures = separate_tracks(tracks, Checking(), tmp_path, progress=False)
    assert [f.track for f in failures] == ["unreadable", "nan", "flat"]
    assert "cannot decode" in failures[0].reason and "NaN" in failures[1].reason and "shape" in failures[2].reason
    assert (tmp_path / "scale" / "good 1" / "manifest.json").is_file()
    assert (tmp_path / "scale" / "good 2" / "manifest.json").is_file()
    assert not (tmp_path / "scale" / "nan").exists()


def test_shards_split_the_tracks(tmp_path):
    tracks = [Track(f"t{i}", _audio(i)) for i in range(5)]
    for index in range(2):
        separate_tracks(tracks, ScaleSeparator(), tmp_path, num_shards=2, shard_index=index, progress=False)
        done = sorted(p.parent.name for p in (tmp_path / "scale").glob("*/manifest.json"))
        assert done == (["t0", "t2", "t4"] if index == 0 else [f"t{i}" for i in range(5)])


def test_cli_separates_songs_with_fallback_and_exits_nonzero_on_a_bad_file(tmp_path, capsys):
    good = tmp_path / "songs" / "good.wav"
    save_audio(good, _audio(3, 44100), 44100)
    mono = tmp_path / "songs" / "mono.flac"
    save_audio(mono, _audio(4, 22050)[:, :1], 22050)
    (tmp_path / "songs" / "broken.wav").write_bytes(b"RIFF not really audio")
    stems = tmp_path / "stems"
    code = cli_main(
        ["separate", "--songs", str(tmp_path / "songs"), "--separator", "fallback", "--stems-dir", str(stems)]
    )
    assert code == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(stems / "fallback")  # the folder, for scripts
    assert sorted(p.parent.name for p in stems.glob("fallback/*/manifest.json")) == ["good", "mono"]
    vocals, sr = load_audio(stems / "fallback" / "mono" / "vocals.wav")
    assert sr == 44100 and vocals.shape == (44100, 2)  # resampled to 44.1 kHz and made stereo as a track
    with pytest.raises(SystemExit):
        cli_main(["separate", "--help"])
    assert "--demucs-repo" in capsys.readouterr().out


def test_demucs_vocals_of_musdb_training_songs_are_flagged(tmp_path):
    from ddsp_demucs.separation.demucs import training_songs_warning

    for folder in ("train/A", "train/B", "test/C"):
        (tmp_path / "musdb" / folder).mkdir(parents=True)
    message = training_songs_warning("htdemucs", tmp_path / "musdb", ["A", "B", "C"])
    assert message.startswith("htdemucs was trained on MUSDB18-HQ's training songs, and 2 of the songs")
    assert "\n" not in message
    assert training_songs_warning("htdemucs", tmp_path / "musdb", ["C"]) is None  # test songs only
    assert training_songs_warning("fallback", tmp_path / "musdb", ["A"]) is None
    assert training_songs_warning("oracle-bands16", tmp_path / "musdb", ["A"]) is None
    (tmp_path / "musdb" / "manifest.json").write_text("{}")  # this project's own corpora: songs no model heard
    assert training_songs_warning("htdemucs", tmp_path / "musdb", ["A"]) is None


def test_training_on_such_a_dataset_warns_from_its_manifest(tmp_path):
    from ddsp_demucs.training.trainer import separator_training_overlap

    (tmp_path / "musdb" / "train" / "A").mkdir(parents=True)

    class Dataset:
        manifest = {
            "separator": "fallback+htdemucs",
            "musdb_root": str(tmp_path / "musdb"),
            "splits": {"train": {"tracks": ["A"]}, "validation": {"tracks": []}, "test": {"tracks": []}},
        }

    [warning] = separator_training_overlap(Dataset())
    assert warning.startswith("htdemucs was trained on MUSDB18-HQ's training songs, and 1 of the songs")
    Dataset.manifest = {**Dataset.manifest, "separator": "fallback"}
    assert separator_training_overlap(Dataset()) == []
