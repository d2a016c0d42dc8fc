"""Full-song refinement: identity at init, shapes / rates / lengths, windows (plan, crossfade, windowed == whole
song, bounded model calls), the gate and synth paths, and ``ddsp-demucs refine`` end to end with bad inputs."""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import TINY, refine_cli, song, tiny_model, write

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import resample
from ddsp_demucs.corpus.synthetic import generate_song
from ddsp_demucs.features.pitch import F0Tracker
from ddsp_demucs.inference.refine import (
    NOISE_BLOCK,
    crossfade_weights,
    f0_tracker,
    frame_controls,
    noise_stream,
    plan_windows,
    refine_vocals,
    time_quantum,
    window_step,
)
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.model import ResidualDDSPDecoder

pytestmark = pytest.mark.usefixtures("one_thread")


def vocal(duration_s: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A 'separated vocal': a synthetic song's vocal stem with some accompaniment bleed, ``(n, channels)``."""
    song = generate_song(seed, duration_s=duration_s)
    x = resample(song.stems["vocals"] + 0.3 * song.stems["other"] + 0.2 * song.stems["drums"], 44100, sample_rate)
    return np.ascontiguousarray(x if channels == 2 else x.mean(axis=1, keepdims=True), dtype=np.float32)


def sisdr_db(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel SI-SDR in dB of ``(n, ch)`` arrays."""
    return si_sdr(torch.from_numpy(estimate.T.copy()), torch.from_numpy(reference.T.copy())).numpy()


# ------------------------------------------------------------------------------------------------ identity
@pytest.mark.parametrize("composition", ["mask", "gate", "harmonic"])
@pytest.mark.parametrize("sample_rate, channels, n_samples", [(44100, 2, 88201), (48000, 1, 96001)])
def test_identity_at_init(composition, sample_rate, channels, n_samples):
    x = vocal(2.1, sample_rate, channels)[:n_samples]
    y = refine_vocals(tiny_model(composition), x, sample_rate)
    assert y.shape == x.shape and y.dtype == np.float32
    assert sisdr_db(y, x).min() > 40.0
    assert np.abs(y - x).max() < 1e-5


def test_identity_windowed():
    x = vocal(7.3, 44100, 2)[:321_999]
    y = refine_vocals(tiny_model("mask"), x, 44100, window_s=6.0, overlap_s=1.0)
    assert y.shape == x.shape
    assert sisdr_db(y, x).min() > 40.0


# ------------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 96000])
def test_window_grid_matches_model_and_control_frames(sample_rate):
    model = tiny_model()
    step = window_step(sample_rate, model)
    seconds = step / sample_rate
    for unit in (model.hop / model.sample_rate, 1 / model.frame_rate, 1 / sample_rate):
        assert abs(seconds / unit - round(seconds / unit)) < 1e-9
    q = time_quantum(sample_rate, model.sample_rate, int(model.frame_rate))
    assert step % q == 0 and (q * model.sample_rate) % sample_rate == 0 and (q * 250) % sample_rate == 0


@pytest.mark.parametrize(
    "n_samples, window_s, overlap_s",
    [
        (10 * 44100 + 17, 6.0, 1.0),
        (60 * 44100, 30.0, 1.0),
        (61 * 44100 + 1, 12.0, 0.0),
        (40 * 44100, 12.0, 6.0),
        (int(15.35 * 44100), 6.0, 1.0),
        (11 * 44100, 11.0, 1.0),
        (5 * 44100, 30.0, 1.0),
    ],
)
def test_plan_covers_song_and_weights_sum_to_one(n_samples, window_s, overlap_s):
    sr, model = 44100, tiny_model()
    windows = plan_windows(n_samples, sr, model, window_s, overlap_s)
    total = np.zeros(n_samples)
    for i, w in enumerate(windows):
        assert 0 <= w.context_start <= w.start < w.stop <= w.context_stop <= n_samples
        assert w.start % window_step(sr, model) == 0
        if len(windows) > 1 and window_s * sr >= window_step(sr, model) + overlap_s * sr:
            assert w.stop - w.start <= window_s * sr
        if i > 0:
            assert windows[i - 1].stop - w.start == w.fade_in == windows[i - 1].fade_out
        total[w.start : w.stop] += crossfade_weights(w)
    assert windows[0].start == 0 and windows[-1].stop == n_samples
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    if n_samples <= window_s * sr:
        assert len(windows) == 1 and windows[0].context_stop == n_samples


def test_bad_window_arguments():
    model = tiny_model()
    for window_s, overlap_s in ((0.0, 0.0), (-1.0, 0.0), (4.0, 2.5), (4.0, -0.1), (float("nan"), 1.0)):
        with pytest.raises(InputError, match="window|overlap"):
            plan_windows(10 * 44100, 44100, model, window_s, overlap_s)


def test_windowed_matches_whole_song_and_calls_stay_within_a_window():
    sr, x = 44100, vocal(8.0, 44100, 2)[:352_799]
    model = tiny_model("mask", perturb=0.5)
    calls: list[int] = []
    original = model.compute_mask

    def counting(batch):
        calls.append(batch["input_audio"].shape[-1])
        return original(batch)

    model.compute_mask = counting
    windows = plan_windows(x.shape[0], sr, model, 6.0, 1.0)
    assert len(windows) == 2
    windowed = refine_vocals(model, x, sr, window_s=6.0, overlap_s=1.0)
    longest = max(w.stop - w.start for w in windows)
    assert len(calls) == len(windows) and max(calls) <= math.ceil(longest * model.sample_rate / sr)
    assert max(calls) < x.shape[0] * model.sample_rate / sr * 0.8
    whole = refine_vocals(model, x, sr, window_s=None)
    assert calls[-1] == math.ceil(x.shape[0] * model.sample_rate / sr)
    assert sisdr_db(whole, x).max() < 15.0  # the model really changes the vocal...
    assert sisdr_db(windowed, whole).min() > 30.0  # ...and windows reproduce the whole-song result
    inner = slice(int(0.5 * sr), x.shape[0] - int(0.5 * sr))
    assert np.abs(windowed[inner] - whole[inner]).max() < 0.01 * np.abs(whole).max()


def test_shapes_rates_and_lengths_with_a_non_identity_model():
    model = tiny_model("mask", perturb=0.3)
    for sr, ch, n, window_s in [
        (44100, 2, 2 * 44100 + 1, 30.0),  # shorter than one window
        (48000, 1, 3 * 48000, 3.0),  # exactly one window
        (22050, 3, 7 * 22050 + 5, 6.0),  # three channels, windowed
        (16000, 1, 8001, 30.0),
    ]:  # below the model rate
        x = vocal(n / sr + 0.05, sr, 2)[:n]
        x = np.concatenate([x, x[:, :1] * 0.5], axis=1)[:, :ch] if ch == 3 else x[:, :ch]
        y = refine_vocals(model, x, sr, window_s=window_s)
        assert y.shape == (n, ch) and y.dtype == np.float32 and np.all(np.isfinite(y))
        assert np.abs(y - x).max() > 1e-3  # the model did something, per channel
        if ch > 1:
            assert not np.allclose(y[:, 0], y[:, 1])  # channels keep their own content and phase


def test_strength_mixes_the_refinement_with_its_input():
    """``strength`` s gives ``x + s (refined - x)``: 1 is the model's output bit for bit, 0 the input."""
    model = tiny_model("mask", perturb=0.3)
    x = vocal(3.0, 44100, 2)
    full = refine_vocals(model, x, 44100, window_s=2.0)
    assert np.array_equal(refine_vocals(model, x, 44100, window_s=2.0, strength=1.0), full)
    assert np.array_equal(refine_vocals(model, x, 44100, window_s=2.0, strength=0.0), x)
    part = refine_vocals(model, x, 44100, window_s=2.0, strength=0.3)
    assert part.dtype == np.float32
    np.testing.assert_allclose(part, x.astype(np.float64) + 0.3 * (full.astype(np.float64) - x), atol=1e-6)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match="strength"):
            refine_vocals(model, x, 44100, strength=bad)


def test_f0_reference_drives_the_controls():
    model = tiny_model("mask", perturb=0.3)
    x = vocal(3.0, 44100, 2)
    np.testing.assert_array_equal(refine_vocals(model, x, 44100, f0_reference=x), refine_vocals(model, x, 44100))
    other = vocal(3.0, 44100, 1, seed=5)  # another song's voice: other F0, other voicing
    assert np.abs(refine_vocals(model, x, 44100, f0_reference=other) - refine_vocals(model, x, 44100)).max() > 1e-4
    with pytest.raises(InputError, match="f0_reference"):
        refine_vocals(model, x, 44100, f0_reference=other[:-1])


def test_mask_keeps_each_channels_phase():
    sr, x = 44100, vocal(2.0, 44100, 1)
    stereo = np.concatenate([x, -x], axis=1)  # the second channel is the first inverted
    y = refine_vocals(tiny_model("mask", perturb=0.5), stereo, sr)
    np.testing.assert_allclose(y[:, 1], -y[:, 0], atol=1e-6)


# ------------------------------------------------------------------------------------------ gate and synth
def test_gate_path_blends_each_channel_with_the_synthesis():
    sr, x = 44100, vocal(2.0, 44100, 2)
    model = tiny_model("gate", perturb=0.05, bias=0.5)  # gate about 0.5, varying over time
    y = refine_vocals(model, x, sr)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert sisdr_db(y, x).max() < 30.0
    # the blend is the same per-sample gate for every channel: y_c - x_c = (1 - g) (s - x_c), so
    # (y_0 - x_0) - (y_1 - x_1) = (1 - g) (x_1 - x_0)
    d = (y[:, 0] - x[:, 0]) - (y[:, 1] - x[:, 1])
    one_minus_g = np.divide(d, x[:, 1] - x[:, 0], out=np.full_like(d, np.nan), where=np.abs(x[:, 1] - x[:, 0]) > 1e-3)
    ok = np.isfinite(one_minus_g)
    assert ok.sum() > 1000 and np.all((one_minus_g[ok] > -1e-3) & (one_minus_g[ok] < 1 + 1e-3))


def test_synth_path_is_the_model_resynthesis_on_every_channel():
    sr, x = 44100, vocal(2.0, 44100, 2)
    model = tiny_model("synth")
    y = refine_vocals(model, x, sr, seed=3)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y[:, 0], y[:, 1])
    mono = resample(x.mean(axis=1), sr, model.sample_rate)
    controls = frame_controls(mono, model, tracker=F0Tracker())
    batch = {"input_audio": torch.from_numpy(mono)[None], **{k: torch.from_numpy(v)[None] for k, v in controls.items()}}
    with torch.no_grad():
        c = model.controls(batch)
        direct = model.synthesize(c, mono.shape[0], white_noise=noise_stream(3, 0, mono.shape[0])[None])
    expected = resample(direct["synth_audio"][0].numpy(), model.sample_rate, sr)[: x.shape[0]]
    np.testing.assert_allclose(y[:, 0], expected, atol=1e-5)


@pytest.mark.parametrize(
    "composition, kwargs",
    [
        ("synth", {}),
        ("gate", dict(perturb=0.05, bias=0.5)),
        pytest.param("mask", dict(perturb=0.5), marks=pytest.mark.slow),  # also checked by the test above
    ],
)
def test_windowed_equals_whole_song_in_every_composition_overlaps_included(composition, kwargs):
    """Windows continue the song's synthesis (oscillator phase carried, one noise stream): the windowed output is
    the whole-song output to -30 dB, in the crossfades too, where two unrelated syntheses would dip and differ."""
    sr, x = 44100, vocal(8.0, 44100, 2)[:352_799]
    model = tiny_model(composition, **kwargs)
    windows = plan_windows(x.shape[0], sr, model, 6.0, 1.0)
    assert len(windows) == 2
    whole = refine_vocals(model, x, sr, window_s=None, seed=5)
    windowed = refine_vocals(model, x, sr, window_s=6.0, overlap_s=1.0, seed=5)
    overlap = slice(windows[1].start, windows[0].stop)

    def error_db(part):
        return 10 * np.log10(np.sum((windowed[part] - whole[part]) ** 2) / np.sum(whole[part] ** 2))

    assert error_db(slice(None)) < -30.0 and error_db(overlap) < -30.0


def test_noise_stream_is_the_same_whichever_window_asks():
    long = noise_stream(7, 0, 3 * NOISE_BLOCK + 100)
    for start, n in ((0, 10), (NOISE_BLOCK - 3, 7), (1000, 2 * NOISE_BLOCK), (3 * NOISE_BLOCK, 100)):
        torch.testing.assert_close(noise_stream(7, start, n), long[start : start + n], rtol=0, atol=0)
    assert long.min() >= -1.0 and long.max() < 1.0 and abs(float(long.mean())) < 0.02
    assert not torch.equal(noise_stream(8, 0, 100), long[:100])


def test_bad_vocals_are_input_errors():
    model = tiny_model()
    x = vocal(1.0, 44100, 2)
    with pytest.raises(InputError, match="NaN"):
        refine_vocals(model, np.where(np.arange(x.shape[0])[:, None] == 5, np.nan, x), 44100)
    with pytest.raises(InputError, match="too short"):
        refine_vocals(model, x[:500], 44100)
    with pytest.raises(InputError, match="n_samples, n_channels"):
        refine_vocals(model, x[:, 0], 44100)
    with pytest.raises(InputError, match="sample_rate"):
        refine_vocals(model, x, 44100.0)
    with pytest.raises(DDSPDemucsError, match="ResidualDDSPDecoder"):
        refine_vocals(torch.nn.Linear(2, 2), x, 44100)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_end_to_end_with_bad_inputs_and_rerun(tmp_path, checkpoint, caplog):
    caplog.set_level(logging.INFO, logger="ddsp_demucs")
    songs = tmp_path / "songs"
    good = {
        "stereo": (write(songs / "stereo.wav", song(2.1, 44100, 2)[:88_201], 44100), 44100, 2, 88_201),
        "mono48": (
            write(songs / "more" / "mono48.flac", song(1.5, 48000, 1, seed=1)[:71_999], 48000),
            48000,
            1,
            71_999,
        ),
    }
    bad = tmp_path / "bad"
    bad.mkdir()
    truncated = bad / "truncated.wav"
    truncated.write_bytes((songs / "stereo.wav").read_bytes()[:3000])
    (bad / "notaudio.wav").write_text("this is not audio\n" * 50)
    (bad / "empty.wav").write_bytes(b"")
    write(bad / "silent.wav", np.zeros((44100, 2), np.float32), 44100)
    nan = song(1.0)
    nan[100, 0] = np.nan
    write(bad / "nan.wav", nan, 44100)
    write(bad / "short.wav", song(0.2), 44100)
    write(bad / "six.wav", np.tile(song(1.0, 96000, 1), (1, 6)), 96000)
    out = tmp_path / "out"
    bad_names = ["truncated", "notaudio", "empty", "silent", "nan", "short", "six"]
    code = refine_cli(
        str(songs),
        str(bad),
        str(tmp_path / "missing.wav"),
        "--checkpoint",
        str(checkpoint),
        "--separator",
        "fallback",
        "--out",
        str(out),
        "--window-s",
        "6",
    )
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    for name in bad_names + ["missing"]:
        lines = [e for e in errors if e.startswith(str(tmp_path)) and f"{name}." in e.splitlines()[0]]
        assert lines, (name, errors)
        assert "Traceback" not in caplog.text
    assert "channels" in next(e for e in errors if "six." in e)
    summary = errors[-1]
    assert all(f"{name}." in summary for name in bad_names)
    for name, (path, sr, ch, n) in good.items():
        for stem in ("separated_vocals.wav", "refined_vocals.wav"):
            info = sf.info(out / name / stem)
            assert (info.samplerate, info.channels, info.frames) == (sr, ch, n), (name, stem)
        record = json.loads((out / name / "refine.json").read_text())
        assert record["separator"] == "fallback" and record["checkpoint"] == str(checkpoint.resolve())
        assert record["timings_s"]["refine"] > 0
    assert sorted(p.name for p in out.iterdir()) == sorted(good)  # nothing for the bad songs
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]

    # re-run: everything up to date, nothing rewritten; a newer song is redone; --force redoes all
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    caplog.clear()
    assert (
        refine_cli(
            str(songs), "--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(out), "--window-s", "6"
        )
        == 0
    )
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps
    assert caplog.text.count("up to date") >= 2
    later = stamps[out / "stereo" / "refined_vocals.wav"] / 1e9 + 5
    os.utime(good["stereo"][0], (later, later))
    assert (
        refine_cli(
            str(songs), "--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(out), "--window-s", "6"
        )
        == 0
    )
    assert (out / "stereo" / "refined_vocals.wav").stat().st_mtime_ns != stamps[out / "stereo" / "refined_vocals.wav"]
    assert (out / "mono48" / "refined_vocals.wav").stat().st_mtime_ns == stamps[out / "mono48" / "refined_vocals.wav"]

    # another --strength is another output: redone (not skipped as up to date), and recorded
    args = ["--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(out), "--window-s", "6"]
    assert refine_cli(str(good["mono48"][0]), *args, "--strength", "0.5") == 0
    assert json.loads((out / "mono48" / "refine.json").read_text())["strength"] == 0.5
    assert (out / "mono48" / "refined_vocals.wav").stat().st_mtime_ns != stamps[out / "mono48" / "refined_vocals.wav"]
    # so is another F0 tracker
    before = (out / "mono48" / "refined_vocals.wav").stat().st_mtime_ns
    assert refine_cli(str(good["mono48"][0]), *args, "--strength", "0.5", "--f0-method", "pyin") == 0
    assert json.loads((out / "mono48" / "refine.json").read_text())["f0_method"] == "pyin"
    assert (out / "mono48" / "refined_vocals.wav").stat().st_mtime_ns != before


def test_cli_refined_output_is_the_model_applied_to_the_separated_vocal(tmp_path, checkpoint):
    from ddsp_demucs.training.checkpoints import load_model

    path = write(tmp_path / "a.wav", song(2.0), 44100)
    assert (
        refine_cli(
            str(path), "--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(tmp_path / "out")
        )
        == 0
    )
    separated, sr = sf.read(tmp_path / "out" / "a" / "separated_vocals.wav", dtype="float32", always_2d=True)
    refined, _ = sf.read(tmp_path / "out" / "a" / "refined_vocals.wav", dtype="float32", always_2d=True)
    expected = refine_vocals(load_model(checkpoint), separated, sr)
    np.testing.assert_allclose(refined, expected, atol=1e-6)


def test_cli_harmonic_check_is_applied_and_recorded(tmp_path, checkpoint):
    """``--harmonic-check`` refines as ``refine_vocals(harmonic_check=True)`` with the song, records it, and a rerun
    without it redoes the song."""
    from ddsp_demucs.core.audio_io import load_audio
    from ddsp_demucs.training.checkpoints import load_model

    path = write(tmp_path / "a.wav", song(2.0), 44100)
    args = [str(path), "--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(tmp_path / "out")]
    assert refine_cli(*args, "--harmonic-check") == 0
    record = json.loads((tmp_path / "out" / "a" / "refine.json").read_text())
    assert record["harmonic_check"] is True
    separated, sr = sf.read(tmp_path / "out" / "a" / "separated_vocals.wav", dtype="float32", always_2d=True)
    refined, _ = sf.read(tmp_path / "out" / "a" / "refined_vocals.wav", dtype="float32", always_2d=True)
    mixture, _ = load_audio(path)
    expected = refine_vocals(load_model(checkpoint), separated, sr, mixture=mixture, harmonic_check=True)
    np.testing.assert_allclose(refined, expected, atol=1e-6)
    assert refine_cli(*args) == 0  # another setting: not up to date
    assert json.loads((tmp_path / "out" / "a" / "refine.json").read_text())["harmonic_check"] is None


def test_cli_checkpoint_and_output_errors(tmp_path, checkpoint, capsys):
    path = write(tmp_path / "a.wav", song(1.0), 44100)
    assert refine_cli(str(path), "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.ckpt" in err[0] and "not found" in err[0]
    foreign = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(3)}, "epoch": 1}, foreign)
    assert refine_cli(str(path), "--checkpoint", str(foreign), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other.ckpt" in err[0] and "not a ddsp-demucs checkpoint" in err[0]
    assert (
        refine_cli(str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), "--overlap-s", "-1") == 2
    )
    assert "overlap" in capsys.readouterr().err
    assert refine_cli(str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), "--strength", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strength" in err[0] and "between 0 and 1" in err[0]
    # an output "folder" that cannot be created (a plain file is in the way): one line, before any work
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert (
        refine_cli(str(path), "--checkpoint", str(checkpoint), "--separator", "fallback", "--out", str(blocker / "sub"))
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blocker" in err[0] and "cannot write the output folder" in err[0]
    assert blocker.read_text() == "a file, not a folder"
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_f0_tracker_follows_the_checkpoint_features_and_the_arguments():
    """The model's ``features`` config sets method, threshold and CREPE hop; arguments override the first two."""
    model = ResidualDDSPDecoder(**TINY)
    assert f0_tracker(model, None, None) == F0Tracker()
    model.config = {"features": {"f0_method": "pyin", "voicing_threshold": 0.3, "crepe_hop": 320}}
    assert f0_tracker(model, None, None) == F0Tracker("pyin", 0.3, 320)
    assert f0_tracker(model, "crepe-tiny", 0.6) == F0Tracker("crepe-tiny", 0.6, 320)
    assert f0_tracker(model, None, None, True) == F0Tracker("pyin", 0.3, 320, harmonic_check=True)
    model.config["features"]["harmonic_check"] = True
    assert f0_tracker(model, None, None).harmonic_check and not f0_tracker(model, None, None, False).harmonic_check


def test_harmonic_check_reads_each_windows_span_of_the_song(monkeypatch):
    """With the check on, refine runs it on every window's analysis span at the model's rate with the same span of
    the song (also for a model that does not read the song itself), and not at all where it is off."""
    import ddsp_demucs.features.harmonic_check as harmonic_check

    calls = []
    checked = harmonic_check.check_lower_pitch

    def spy(f0_hz, mono, sample_rate, frame_rate, *, mixture=None, check=harmonic_check.HarmonicCheck()):
        calls.append((mono.shape, None if mixture is None else mixture.shape, sample_rate, frame_rate))
        return checked(f0_hz, mono, sample_rate, frame_rate, mixture=mixture, check=check)

    monkeypatch.setattr(harmonic_check, "check_lower_pitch", spy)
    model = tiny_model(perturb=0.5)
    sr, x = 44100, vocal(8.0, 44100, 2)[:352_799]
    mixture = x + 0.3 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    plain = refine_vocals(model, x, sr, window_s=6.0, mixture=mixture)
    assert calls == []
    refine_vocals(model, x, sr, window_s=6.0, mixture=mixture, harmonic_check=True)
    assert len(calls) == 2 and all(m == s and tuple(r) == (model.sample_rate, model.frame_rate) for m, s, *r in calls)
    calls.clear()
    unchecked_song = refine_vocals(model, x, sr, window_s=6.0, harmonic_check=True)  # no song: every voiced frame
    assert len(calls) == 2 and all(s is None for _, s, *_ in calls)
    assert plain.shape == unchecked_song.shape
    with pytest.raises(InputError, match="need the song"):
        refine_vocals(model, x, sr, mixture=mixture[:-1], harmonic_check=True)


def test_a_model_reading_the_mixture_gets_it_window_by_window():
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(composition="mask", use_accompaniment_encoder=True, **TINY).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.residual_head.weight, std=0.5)
        model.residual_head.bias.fill_(0.3)
    sr, x = 44100, vocal(8.0, 44100, 2)[:352_799]
    mixture = x + 0.3 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    with pytest.raises(InputError, match="this model reads the mixture"):
        refine_vocals(model, x, sr)
    windowed = refine_vocals(model, x, sr, window_s=6.0, overlap_s=1.0, mixture=mixture)
    whole = refine_vocals(model, x, sr, window_s=None, mixture=mixture)
    assert sisdr_db(windowed, whole).min() > 30.0  # windows see the mixture where the whole song does
    other = refine_vocals(model, x, sr, window_s=None, mixture=x)  # another accompaniment: another refinement
    assert np.abs(other - whole).max() > 1e-3
    identity = ResidualDDSPDecoder(composition="harmonic", use_accompaniment_encoder=True, **TINY).eval()
    np.testing.assert_allclose(refine_vocals(identity, x, sr, mixture=mixture), x, atol=1e-5)


def test_an_ambiguity_gated_model_leaves_a_vocal_the_separator_kept_whole_alone():
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(composition="mask", ambiguity_gate="inference", **TINY).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.residual_head.weight, std=0.5)
        model.residual_head.bias.fill_(0.3)
    sr, x = 44100, vocal(4.0, 44100, 1)
    with pytest.raises(InputError, match="this model reads the mixture"):
        refine_vocals(model, x, sr)
    np.testing.assert_array_equal(refine_vocals(model, x, sr, mixture=x), x)  # every bin the vocal's: no change
    mixture = x + 0.3 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    assert np.abs(refine_vocals(model, x, sr, mixture=mixture) - x).max() > 1e-3


@pytest.mark.parametrize("reads_quality", [False, True])
def test_a_restore_model_gives_back_what_the_separator_left_in_the_accompaniment(reads_quality):
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(composition="restore", restore_reads_quality=reads_quality, **TINY).eval()
    sr, x = 44100, vocal(4.0, 44100, 2)
    separated = 0.5 * x  # the other half of the voice is in the accompaniment estimate, with some noise
    mixture = x + 0.02 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    with pytest.raises(InputError, match="this model reads the mixture"):
        refine_vocals(model, separated, sr)
    np.testing.assert_allclose(refine_vocals(model, separated, sr, mixture=mixture), separated, atol=1e-5)  # init
    with torch.no_grad():
        model.restore_head.bias.fill_(1.0)  # the whole share on the harmonics
        if reads_quality:  # ... as the separator was unsure of about half of each bin: ambiguity near 1
            model.restore_head.bias.fill_(0.2)
            model.restore_head.weight[:, -2:] = 0.5
    whole = refine_vocals(model, separated, sr, window_s=None, mixture=mixture)
    assert np.linalg.norm(whole - x) < 0.5 * np.linalg.norm(separated - x)
    windowed = refine_vocals(model, separated, sr, window_s=2.0, overlap_s=0.5, mixture=mixture)
    assert sisdr_db(windowed, whole).min() > 30.0
    mono_mixture = refine_vocals(model, separated, sr, window_s=None, mixture=mixture.mean(1, keepdims=True))
    assert np.linalg.norm(mono_mixture - x) < 0.5 * np.linalg.norm(separated - x)  # a mono song on both channels
