"""Oracle separators: names, each degradation against its closed form on tones, the quality ordering on real
stems, determinism, and their use (and refusal) wherever a separator name is taken."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddsp_demucs import InputError
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.core.audio_io import load_audio, save_audio
from ddsp_demucs.evaluation.songs import oracle_refiner
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.separation.cache import separate_tracks
from ddsp_demucs.separation.demucs import get_separator
from ddsp_demucs.separation.oracle import (
    ORACLE_BOUNDS,
    OracleDegradation,
    OracleSeparator,
    band_of_bins,
    oracle_refinement,
    parse_oracle_name,
)

SR = 44100


def tone(freq: float, amplitude: float, seconds: float = 2.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.repeat((amplitude * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1).astype(np.float32)


def interior(x: np.ndarray) -> np.ndarray:
    """Samples away from the edges, where the STFT's boundary padding plays no part."""
    return x[8192:-8192]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("oracle", OracleDegradation()),
        ("oracle-bands16", OracleDegradation(bands=16)),
        ("oracle-smooth0.25-err1.5", OracleDegradation(smooth_s=0.25, error=1.5)),
        ("oracle-bands32-exp2-floor0.05", OracleDegradation(bands=32, exponent=2.0, floor=0.05)),
    ],
)
def test_names_round_trip(name, expected):
    assert parse_oracle_name(name) == expected
    assert expected.name == name
    assert get_separator(name).name == name


@pytest.mark.parametrize(
    "name, message",
    [
        ("oracle-bands", "cannot read 'bands'"),
        ("oracle-bands16-bands4", "cannot read 'bands4'"),
        ("oracle-blur3", "cannot read 'blur3'"),
        ("oracle-bands2.5", "whole number"),
        ("oracle-bands0", "bands must be >= 1"),
        ("oracle-floor1", "0 <= floor < 1"),
    ],
)
def test_malformed_names_are_one_line_errors(name, message):
    with pytest.raises(InputError, match=message) as info:
        get_separator(name)
    assert "\n" not in str(info.value)


def test_ideal_mask_separates_disjoint_tones_and_floor_adds_that_much_accompaniment():
    vocal, accompaniment = tone(440.0, 0.3), tone(3000.0, 0.5)
    mixture = vocal + accompaniment
    ideal = get_separator("oracle").separate(mixture, SR, vocals=vocal)
    assert si_sdr(interior(ideal["vocals"]).T.astype(np.float64), interior(vocal).T.astype(np.float64)).min() > 40
    np.testing.assert_allclose(ideal["accompaniment"], mixture - ideal["vocals"], atol=1e-6)
    floored = get_separator("oracle-floor0.2").separate(mixture, SR, vocals=vocal)["vocals"]
    np.testing.assert_allclose(interior(floored), interior(vocal + 0.2 * accompaniment), atol=2e-3)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 0.5])
def test_one_band_is_the_energy_ratio_raised_to_the_exponent(exponent):
    """With one band the mask of stationary tones is ``(Ev / (Ev + Ea)) ** P`` at every bin."""
    vocal, accompaniment = tone(440.0, 0.3), tone(3000.0, 0.5)
    mask = (0.3**2 / (0.3**2 + 0.5**2)) ** exponent
    name = "oracle-bands1" + (f"-exp{exponent:g}" if exponent != 1.0 else "")
    out = get_separator(name).separate(vocal + accompaniment, SR, vocals=vocal)["vocals"]
    np.testing.assert_allclose(interior(out), interior(mask * (vocal + accompaniment)), atol=2e-3)


def test_bands_are_log_spaced_and_cover_every_bin():
    bands = band_of_bins(1025, SR, 16)
    assert bands[0] == 0 and bands[-1] == 15 and np.all(np.diff(bands) >= 0)
    freqs = np.arange(1025) * (SR / 2) / 1024
    edges = np.geomspace(40.0, SR / 2, 17)
    for b in (3, 9, 14):  # an interior band holds exactly the bins between its edges
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        np.testing.assert_array_equal(bands == b, inside)


def test_temporal_smoothing_leaks_accompaniment_after_the_voice_stops():
    vocal = tone(440.0, 0.3)
    vocal[SR:] = 0.0  # the voice stops after 1 s, the accompaniment plays on at the same frequency
    accompaniment = tone(440.0, 0.3)
    accompaniment[:SR] = 0.0
    mixture = vocal + accompaniment
    sharp = get_separator("oracle").separate(mixture, SR, vocals=vocal)["vocals"]
    smooth = get_separator("oracle-smooth0.5").separate(mixture, SR, vocals=vocal)["vocals"]
    after = slice(SR + 2048, SR + 6144)  # 0.05-0.14 s after the voice stopped, within the 0.25 s half-window
    assert np.abs(sharp[after]).max() < 1e-3
    assert np.abs(smooth[after]).max() > 0.05


def test_random_error_is_seeded_by_the_song_and_grows_with_its_size():
    vocal, accompaniment = tone(440.0, 0.3), tone(3000.0, 0.3)
    mixture = vocal + accompaniment
    ref = interior(vocal).T.astype(np.float64)
    first, second = (get_separator("oracle-err1").separate(mixture, SR, vocals=vocal)["vocals"] for _ in range(2))
    np.testing.assert_array_equal(first, second)
    scores = [
        si_sdr(interior(get_separator(n).separate(mixture, SR, vocals=vocal)["vocals"]).T.astype(np.float64), ref)
        for n in ("oracle", "oracle-err1", "oracle-err3")
    ]
    assert scores[0].min() > scores[1].max() and scores[1].min() > scores[2].max()


def test_quality_falls_with_coarser_bands_on_real_stems(shared_data):
    folder = shared_data / "musdb18_sample" / "music_delta_80s_rock"
    stems = {p.stem: load_audio(p)[0] for p in folder.iterdir() if p.stem in ("vocals", "drums", "bass", "other")}
    vocal = stems["vocals"]
    mixture = vocal + stems["drums"] + stems["bass"] + stems["other"]
    scores = []
    for name in ("oracle", "oracle-bands64", "oracle-bands16", "oracle-bands4"):
        est = get_separator(name).separate(mixture, SR, vocals=vocal)["vocals"]
        scores.append(float(si_sdr(est.mean(1).astype(np.float64), vocal.mean(1).astype(np.float64))))
    assert scores == sorted(scores, reverse=True), scores
    assert scores[0] > 10 and scores[-1] < scores[0] - 3


def test_without_the_true_vocal_it_refuses_in_one_line():
    with pytest.raises(InputError, match="needs the song's true vocal") as info:
        OracleSeparator.from_name("oracle-bands16").separate(tone(440.0, 0.3), SR)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="mixture's shape"):
        OracleSeparator().separate(tone(440.0, 0.3), SR, vocals=tone(440.0, 0.3, seconds=1.0))


class StemTrack:
    def __init__(self, name, vocal, accompaniment):
        self.name, self._vocal, self._acc = name, vocal, accompaniment

    def mixture(self):
        return self._vocal + self._acc

    def vocals(self):
        return self._vocal


def test_stem_cache_gives_oracles_the_true_vocal_and_records_the_quality(tmp_path):
    track = StemTrack("song", tone(440.0, 0.3), tone(3000.0, 0.3))
    assert separate_tracks([track], get_separator("oracle-floor0.1"), tmp_path, progress=False) == []
    manifest = json.loads((tmp_path / "oracle-floor0.1" / "song" / "manifest.json").read_text())
    vocals, _ = load_audio(tmp_path / "oracle-floor0.1" / "song" / "vocals.wav")
    expected = si_sdr(vocals.mean(1).astype(np.float64), track.vocals().mean(1).astype(np.float64))
    assert manifest["vocals_si_sdr_db"] == pytest.approx(float(expected), abs=1e-4)
    assert manifest["separator"] == "oracle-floor0.1" and manifest["parameters"]["floor"] == 0.1


def test_cli_separate_takes_oracles_on_musdb_folders_and_refuses_them_on_song_files(tmp_path, capsys):
    track = tmp_path / "musdb" / "test" / "song"
    vocal, accompaniment = tone(440.0, 0.3), tone(3000.0, 0.3)
    save_audio(track / "mixture.wav", vocal + accompaniment, SR)
    save_audio(track / "vocals.wav", vocal, SR)
    stems = tmp_path / "stems"
    args = ["separate", "--separator", "oracle-bands16", "--stems-dir", str(stems)]
    assert cli_main([*args, "--musdb", str(tmp_path / "musdb")]) == 0
    assert json.loads((stems / "oracle-bands16" / "song" / "manifest.json").read_text())["vocals_si_sdr_db"] > 10
    capsys.readouterr()
    assert cli_main([*args, "--songs", str(track / "mixture.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: separator oracle-bands16 needs each song's true vocal")


def test_cli_refine_refuses_an_oracle_before_any_work(tmp_path, capsys):
    song = tmp_path / "song.wav"
    save_audio(song, tone(440.0, 0.3), SR)
    code = cli_main(["refine", str(song), "--separator", "oracle", "--checkpoint", "none.ckpt", "--out", "x"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: separator oracle needs each song's true vocal, which a song file does not have; oracle "
        "separators are for corpora with stems (ddsp-demucs separate --musdb, evaluate --songs)"
    ]


def test_oracle_refinement_bounds_closed_forms():
    rng = np.random.default_rng(3)
    n = SR // 2
    true = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR))[:, None] * np.array([[1.0, 0.5]])
    true = true + 0.01 * rng.standard_normal(true.shape)
    # a separation twice too loud: the mask bound halves every bin, which gives the true vocal back
    half = oracle_refinement(2.0 * true, 3.0 * true, true, SR, "mask")
    assert half.dtype == np.float32 and half.shape == true.shape
    np.testing.assert_allclose(half, true, atol=1e-5)
    # a quarter of the vocal separated from a mixture that is all vocal: the rest comes back whole (g = 1)
    np.testing.assert_allclose(oracle_refinement(0.25 * true, true, true, SR, "restore"), true, atol=1e-5)
    # the same bound as a whole-song refiner of the evaluation (separated, rate, true vocal, mixture)
    np.testing.assert_array_equal(oracle_refiner("mask")(2.0 * true, SR, true, 3.0 * true), half)
    # a perfect separation is left as it is by both
    for kind in ORACLE_BOUNDS:
        np.testing.assert_allclose(oracle_refinement(true, true + 0.1, true, SR, kind), true, atol=1e-5)


def test_oracle_refinement_removes_bleed_and_gives_back_what_was_suppressed():
    rng = np.random.default_rng(4)
    true = (0.3 * np.sin(2 * np.pi * 330 * np.arange(SR) / SR))[:, None] * np.ones((1, 2))
    mixture = true + 0.3 * rng.standard_normal(true.shape)

    def gain(separator: str, kind: str) -> float:
        separated = OracleSeparator.from_name(separator).separate(mixture, SR, vocals=true)["vocals"]
        refined = oracle_refinement(separated, mixture, true, SR, kind)
        return si_sdr(refined.mean(axis=1).astype(np.float64), true.mean(axis=1)) - si_sdr(
            separated.mean(axis=1).astype(np.float64), true.mean(axis=1)
        )

    assert gain("oracle-bands4-floor0.3", "mask") > 3.0  # accompaniment left in: the mask bound takes it out
    assert gain("oracle-exp3", "restore") > 0.5  # vocal over-suppressed: the restore bound gives it back
    with pytest.raises(ValueError, match="kind"):
        oracle_refinement(mixture, mixture, true, SR, "louder")
    with pytest.raises(ValueError, match="shape"):
        oracle_refinement(mixture[:-1], mixture, true, SR, "mask")
