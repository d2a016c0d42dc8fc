"""The synthetic corpus: determinism, exact mixtures, the F0 file against the voice, layout, resume, CLI."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import soundfile as sf

from ddsp_demucs.corpus.synthetic import STEM_NAMES, generate_song, rosenberg_harmonics, write_corpus
from ddsp_demucs.data import musdb_tracks

SR = 44100


@pytest.fixture(scope="module")
def songs():
    return {seed: generate_song(seed, duration_s=4.0) for seed in (0, 1, 2)}


def _cents(a, b):
    return 1200.0 * np.log2(a / b)


def test_same_seed_identical_different_seed_differs(songs):
    again = generate_song(0, duration_s=4.0)
    for name in STEM_NAMES:
        assert again.stems[name].tobytes() == songs[0].stems[name].tobytes()
    assert again.f0_hz.tobytes() == songs[0].f0_hz.tobytes()
    assert not np.array_equal(songs[0].stems["vocals"], songs[1].stems["vocals"])
    assert not np.array_equal(songs[0].f0_hz, songs[1].f0_hz)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_format_exact_mixture_no_clipping(songs, seed):
    song = songs[seed]
    n = int(4.0 * SR)
    total = song.stems["drums"] + song.stems["bass"] + song.stems["other"] + song.stems["vocals"]
    assert np.array_equal(song.mixture, total)
    for name, x in [*song.stems.items(), ("mixture", song.mixture)]:
        assert x.shape == (n, 2) and x.dtype == np.float32, name
        assert np.all(np.isfinite(x)), name
        assert np.max(np.abs(x)) < 1.0, name
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3, f"{name} is (nearly) silent"
    # stereo, not dual mono: the room and the detuned chords differ between channels
    assert not np.allclose(song.stems["vocals"][:, 0], song.stems["vocals"][:, 1], atol=1e-4)
    assert not np.allclose(song.stems["other"][:, 0], song.stems["other"][:, 1], atol=1e-4)
    assert len(song.f0_hz) == n * 250 // SR
    assert song.sample_rate == SR


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voice_spectrum_peaks_at_f0_harmonics(songs, seed):
    """In voiced frames the vocal's spectrum has peaks at k * f0 (k = 1..4) and valleys between them."""
    song = songs[seed]
    voice = song.stems["vocals"].astype(np.float64).mean(axis=1)
    n_fft = 4096
    window = np.hanning(n_fft)
    checked = 0
    for i in np.flatnonzero(song.f0_hz > 0)[::25]:
        centre = int(round(i * SR / song.frame_rate))
        lo, hi = centre - n_fft // 2, centre + n_fft // 2
        frames = np.arange((lo * song.frame_rate) // SR, (hi * song.frame_rate) // SR + 1)
        if lo < 0 or hi > len(voice) or frames[-1] >= len(song.f0_hz) or np.any(song.f0_hz[frames] == 0):
            continue
        f0 = song.f0_hz[frames]
        if abs(_cents(f0.max(), f0.min())) > 60:  # a portamento inside the window: no stable harmonics
            continue
        spectrum = np.abs(np.fft.rfft(voice[lo:hi] * window))
        freqs = np.fft.rfftfreq(n_fft, 1.0 / SR)
        f = float(np.median(f0))

        def band_max(centre_hz, rel):
            sel = np.abs(freqs - centre_hz) <= rel * centre_hz
            return spectrum[sel].max()

        harmonic = sum(band_max(k * f, 0.03) for k in range(1, 5))
        between = sum(band_max((k + 0.5) * f, 0.05) for k in range(1, 4))
        assert harmonic > 10 * between, f"frame {i}: harmonics {harmonic:.3g} vs between {between:.3g}"
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f0_file_matches_an_independent_pitch_estimate(songs, seed):
    """librosa's YIN on the vocal stem agrees with the F0 file in steadily voiced frames."""
    song = songs[seed]
    voice = song.stems["vocals"].astype(np.float64).mean(axis=1)
    hop = SR // 100
    est = librosa.yin(voice, fmin=70, fmax=1100, sr=SR, frame_length=2048, hop_length=hop, center=True)
    times = np.arange(len(est)) * hop / SR
    idx = np.round(times * song.frame_rate).astype(int)
    ok = idx + 10 < len(song.f0_hz)
    idx, est = idx[ok], est[ok]
    steady = np.array([np.all(song.f0_hz[max(j - 10, 0) : j + 11] > 0) for j in idx])  # 40 ms inside a note
    assert steady.sum() >= 50
    err = np.abs(_cents(est[steady], song.f0_hz[idx[steady]]))
    assert np.median(err) < 15.0
    assert np.mean(err < 50.0) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rests_are_unvoiced_and_quiet(songs, seed):
    song = songs[seed]
    f0 = song.f0_hz
    assert f0[0] == 0.0  # the intro is unvoiced
    assert np.mean(f0 == 0) > 0.1 and np.mean(f0 > 0) > 0.3
    voice = song.stems["vocals"].astype(np.float64).mean(axis=1)
    hop = SR // song.frame_rate
    energy = np.array([np.mean(voice[i * hop : (i + 1) * hop] ** 2) for i in range(len(f0))])
    voiced_f0 = f0[f0 > 0]
    assert voiced_f0.min() > 70 and voiced_f0.max() < 1100
    assert 10 * np.log10(np.median(energy[f0 > 0]) / np.median(energy[f0 == 0])) > 20.0


def test_vibrato_in_long_notes(songs):
    """The F0 of a long note, detrended, oscillates at the note's vibrato rate (5-6.5 Hz)."""
    found = 0
    for song in songs.values():
        for note in song.notes:
            start, end = note.onset_s + 0.45, note.offset_s - 0.05  # past the delayed vibrato onset and its ramp
            assert note.offset_s <= len(song.f0_hz) / song.frame_rate + 0.01
            if end - start < 0.5 or note.vibrato_depth_cents < 15:
                continue
            i0, i1 = int(np.ceil(start * song.frame_rate)), int(end * song.frame_rate)
            cents = 1200 * np.log2(song.f0_hz[i0:i1])
            t = np.arange(len(cents)) / song.frame_rate
            cents = cents - np.polyval(np.polyfit(t, cents, 1), t)
            spec = np.abs(np.fft.rfft(cents * np.hanning(len(cents)), n=8192))
            freqs = np.fft.rfftfreq(8192, 1.0 / song.frame_rate)
            peak = freqs[1 + np.argmax(spec[1:])]
            assert 5.0 <= note.vibrato_rate_hz <= 6.5
            assert abs(peak - note.vibrato_rate_hz) < 0.7, (peak, note.vibrato_rate_hz)
            assert np.ptp(cents) > 25.0
            found += 1
    assert found >= 1


def test_glottal_source_is_band_limited_and_tilted():
    coeffs = rosenberg_harmonics(0.4, 0.16, 200)
    mags = np.abs(coeffs)
    assert mags.max() == pytest.approx(1.0)
    # spectral tilt: the upper octaves carry far less than the first harmonics
    assert mags[100:200].max() < 0.1 * mags[:4].max()
    # songs: the voice's highest harmonic stays below 0.45 * sample rate (no aliasing) by construction
    song = generate_song(5, duration_s=2.0)
    assert song.f0_hz.max() * int(0.45 * SR / song.f0_hz.max()) < 0.45 * SR


def test_songs_are_varied():
    infos = [generate_song(seed, duration_s=1.5).info for seed in range(10)]
    assert len({i["voice"] for i in infos}) == 2
    assert len({i["key"] for i in infos}) >= 4
    assert len({i["tempo_bpm"] for i in infos}) >= 8
    assert len({tuple(i["vowels"]) for i in infos}) >= 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="duration_s"):
        generate_song(0, duration_s=0)
    with pytest.raises(ValueError, match="n_valid"):
        write_corpus("unused", 1, 1, 1.0, n_valid=2)


def test_corpus_layout_determinism_resume_and_validation_split(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    manifest = write_corpus(a, n_train=3, n_test=1, duration_s=2.0, seed=7, n_valid=1)
    write_corpus(b, n_train=3, n_test=1, duration_s=2.0, seed=7, n_valid=1)
    write_corpus(c, n_train=3, n_test=1, duration_s=2.0, seed=8, n_valid=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 4 * 7 + 1
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "train/synth_0000/vocals.wav").read_bytes() != (c / "train/synth_0000/vocals.wav").read_bytes()
    assert manifest["validation_tracks"] == ["synth_0002"]
    assert json.loads((a / "manifest.json").read_text()) == manifest

    info = sf.info(str(a / "test/synth_0003/mixture.wav"))
    assert (info.samplerate, info.channels, info.frames) == (SR, 2, 2 * SR)
    tracks = musdb_tracks(a)
    assert [(t.name, t.subset, t.split) for t in tracks] == [
        ("synth_0000", "train", "train"),
        ("synth_0001", "train", "train"),
        ("synth_0002", "train", "valid"),
        ("synth_0003", "test", "test"),
    ]
    assert [t.name for t in musdb_tracks(a, split="valid")] == ["synth_0002"]
    track = tracks[3]
    stems = track.stems()
    assert np.array_equal(track.mixture(), stems["drums"] + stems["bass"] + stems["other"] + stems["vocals"])
    times, f0 = track.f0()
    song = generate_song(manifest["tracks"][3]["seed"], duration_s=2.0)
    assert np.allclose(f0, song.f0_hz, atol=1e-6) and np.allclose(times, song.f0_times, atol=1e-6)

    # resume: finished tracks are not rewritten; a track whose files went missing is redone
    before = {p: p.stat().st_mtime_ns for p in a.rglob("*.wav")}
    (a / "train/synth_0001/vocals.wav").unlink()
    write_corpus(a, n_train=3, n_test=1, duration_s=2.0, seed=7, n_valid=1)
    after = {p: p.stat().st_mtime_ns for p in a.rglob("*.wav")}
    changed = {p.relative_to(a).parent.name for p in after if before.get(p) != after[p]}
    assert changed == {"synth_0001"}
    assert (a / "train/synth_0001/vocals.wav").read_bytes() == (b / "train/synth_0001/vocals.wav").read_bytes()
    assert not list(a.rglob(".*tmp*"))


def test_corpus_cli(tmp_path):
    from ddsp_demucs.cli import main

    out = tmp_path / "corpus"
    assert (
        main(
            [
                "corpus",
                "--out",
                str(out),
                "--n-train",
                "2",
                "--n-test",
                "1",
                "--n-valid",
                "1",
                "--duration",
                "1.5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert [t.split for t in musdb_tracks(out)] == ["train", "valid", "test"]
