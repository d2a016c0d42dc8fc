"""The frame controls (``f0_hz``, ``f0_confidence``, ``loudness_db``) of the same separated vocal through the dataset
path (``run_features`` -> ``build_dataset_from_segments`` -> ``load_dataset``, what training reads) and the refine
path (``refine_vocals``, what the model is fed at inference), and the one function both use
(:mod:`ddsp_demucs.features.controls`).

The two paths compute loudness identically. F0 is tracked by the features stage at the stem's rate (44.1 kHz) and by
refine at the model's rate, so with a 22.05 kHz model the two F0 tracks are not identical (two resampling filters in
front of CREPE's own resampling to 16 kHz; differences of thousandths of a cent); with a model at the stem's rate
every control is identical. Both cases
are checked: identity where the rates agree, the documented relationship (and a bound on the difference) where
they do not.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import FR, SR, TINY

from ddsp_demucs.core.audio_io import load_audio
from ddsp_demucs.core.config import Config
from ddsp_demucs.core.utils import config_to_dict
from ddsp_demucs.data import build_dataset_from_segments, load_dataset
from ddsp_demucs.features import FEATURE_KEYS, compute_features, load_features, run_features
from ddsp_demucs.features.controls import (
    CONTROL_KEYS,
    FEATURE_FILE_KEYS,
    f0_from_feature_file,
    frame_controls,
    mono_at,
    to_feature_file,
    track_f0,
)
from ddsp_demucs.features.pitch import F0Tracker
from ddsp_demucs.inference.refine import refine_vocals
from ddsp_demucs.model import ResidualDDSPDecoder

STEM_SR = 44100
TRACK = "synth_0000"


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> dict:
    """One synthetic song separated (true vocal + noise, at 44.1 kHz), its feature files and the gate's CSV; torch on
    one thread for the module (so the F0 network computes the same bits in every call)."""
    from ddsp_demucs.corpus.synthetic import write_corpus

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("controls")
    write_corpus(root / "corpus", n_train=1, n_test=0, duration_s=5.0, seed=3)
    vocals, sr = sf.read(root / "corpus" / "train" / TRACK / "vocals.wav", dtype="float32", always_2d=True)
    assert sr == STEM_SR
    noise = 0.02 * np.random.default_rng(0).standard_normal(vocals.shape).astype(np.float32)
    stems = root / "stems" / "fake"
    (stems / TRACK).mkdir(parents=True)
    sf.write(stems / TRACK / "vocals.wav", vocals + noise, sr, subtype="FLOAT")
    config = Config()
    config.data.win_s, config.data.hop_s = 2.0, 1.0
    report = run_features(root / "stems", "fake", root / "features", config, progress=False)
    assert report.n_accepted >= 1, "the synthetic song should pass the gate"
    yield {"root": root, "config": config, "csv": report.segments_csv, "stems": stems}
    torch.set_num_threads(threads)


def dataset_path(song: dict, train_sr: int) -> list[dict]:
    """Every window of a dataset built at ``train_sr`` from the song (the items training reads)."""
    out = song["root"] / f"dataset_{train_sr}"
    c = song["config"]
    build_dataset_from_segments(
        song["csv"],
        song["stems"],
        song["root"] / "corpus",
        out,
        train_sr=train_sr,
        win_s=c.data.win_s,
        hop_s=c.data.hop_s,
        config=c,
        progress=False,
    )
    ds = load_dataset(out, "train")
    assert len(ds) >= 1
    return [ds[i] for i in range(len(ds))]


def refine_path(song: dict, model_sr: int, monkeypatch) -> dict[str, np.ndarray]:
    """The whole-song controls ``refine_vocals`` feeds a model at ``model_sr`` (one window: the whole song), with the
    checkpoint config of a model trained on this dataset (its ``features`` section is the features stage's)."""
    model = ResidualDDSPDecoder(model_sr, FR, composition="mask", **TINY).eval()
    model.config = config_to_dict(song["config"])
    seen = []
    composer_refine = model.composer.refine_window

    def record(model_, batch, song_window):
        seen.append({k: batch[k][0].cpu().numpy().copy() for k in CONTROL_KEYS})
        return composer_refine(model_, batch, song_window)

    monkeypatch.setattr(model.composer, "refine_window", record)
    audio, sr = load_audio(song["stems"] / TRACK / "vocals.wav")
    refine_vocals(model, audio, sr, window_s=None)
    assert len(seen) == 1
    return seen[0]


def window_of(controls: dict, item: dict) -> dict[str, np.ndarray]:
    """The frames of whole-song ``controls`` that dataset window ``item`` covers."""
    f0 = round(item["start_s"] * FR)
    n = item["f0_hz"].shape[0]
    return {k: v[f0 : f0 + n] for k, v in controls.items()}


def test_dataset_and_refine_controls_are_identical_at_the_stem_rate(song, monkeypatch):
    """A model at the stem's rate (44.1 kHz): the controls training reads and those refine feeds are the same bits."""
    items = dataset_path(song, STEM_SR)
    refined = refine_path(song, STEM_SR, monkeypatch)
    for item in items:
        for key, value in window_of(refined, item).items():
            np.testing.assert_array_equal(item[key].numpy(), value, err_msg=f"{key} @ {item['start_s']} s")


def test_dataset_and_refine_controls_at_the_model_rate(song, monkeypatch):
    """The usual 22.05 kHz model: loudness is identical; F0 and confidence are the same function
    (:func:`~ddsp_demucs.features.controls.track_f0`) of the same vocal, at the stem's rate for the dataset and at
    the model's rate for refine, so they agree closely but not exactly: here under 0.01 cent on every voiced frame,
    confidence within 1e-3, no voicing flipped (on real vocals: at most 0.1 cent, confidence within 0.06)."""
    items = dataset_path(song, SR)
    refined = refine_path(song, SR, monkeypatch)
    audio, sr = load_audio(song["stems"] / TRACK / "vocals.wav")
    tracker = F0Tracker.from_config(song["config"].features)
    at_stem_rate = track_f0(audio, sr, FR, tracker)
    at_model_rate = track_f0(mono_at(audio, sr, SR), SR, FR, tracker)
    voiced_both = voiced_any = 0
    cents = []
    for item in items:
        ours = window_of(refined, item)
        np.testing.assert_array_equal(item["loudness_db"].numpy(), ours["loudness_db"])
        for key in ("f0_hz", "f0_confidence"):
            np.testing.assert_array_equal(item[key].numpy(), window_of(at_stem_rate, item)[key])
            np.testing.assert_array_equal(ours[key], window_of(at_model_rate, item)[key])
        a, b = item["f0_hz"].numpy(), ours["f0_hz"]
        both = (a > 0) & (b > 0)
        voiced_both += int(both.sum())
        voiced_any += int(((a > 0) | (b > 0)).sum())
        cents.append(1200 * np.abs(np.log2(a[both] / b[both])))
        np.testing.assert_allclose(item["f0_confidence"].numpy(), ours["f0_confidence"], atol=0.01)
    cents = np.concatenate(cents)
    assert voiced_any and voiced_both / voiced_any > 0.99
    assert cents.max() < 1.0


def test_features_store_the_controls_at_the_stem_rate_under_their_file_names(song):
    """The feature file's F0, confidence and loudness are :func:`frame_controls` at the stem's rate, renamed in one
    place (:data:`FEATURE_FILE_KEYS`: ``f0_confidence`` is ``confidence`` in the file)."""
    audio, sr = load_audio(song["stems"] / TRACK / "vocals.wav")
    feats = load_features(song["root"] / "features" / "fake" / f"{TRACK}.npz")
    controls = frame_controls(audio.mean(axis=1), sr, FR, tracker=F0Tracker.from_config(song["config"].features))
    stored = to_feature_file(controls)
    assert set(stored) <= set(FEATURE_KEYS) and FEATURE_FILE_KEYS["f0_confidence"] == "confidence"
    for key, value in stored.items():
        np.testing.assert_array_equal(feats[key], value, err_msg=key)
    assert set(f0_from_feature_file(feats)) == {"f0_hz", "f0_confidence"}
    computed = compute_features(audio, sr, song["config"])
    for key, value in stored.items():
        np.testing.assert_array_equal(computed[key], value, err_msg=key)
