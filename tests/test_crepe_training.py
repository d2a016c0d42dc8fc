"""Fine-tuning CREPE on separated vocals (ddsp_demucs.features.crepe_training) and the crepe-separated tracker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.features import crepe, extract_f0
from ddsp_demucs.features.crepe_training import (
    LABEL_HOP,
    SHIFT_GRID,
    TARGET_STD_CENTS,
    TIMBRE_WIDTH_OCTAVES,
    TrackerSong,
    TrackerTrainingConfig,
    accompaniment_gain,
    draw_batch,
    frames_at,
    low_cut,
    shifted_frame,
    target_activations,
    train_tracker,
    widened,
)
from ddsp_demucs.metrics import raw_pitch_accuracy

SR = crepe.SAMPLE_RATE


def tone(f0: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def tone_song(f0: float, noise: float = 0.05, seconds: float = 1.0, seed: int = 0) -> TrackerSong:
    """A harmonic tone and a noisy copy of it, voiced everywhere at ``f0``."""
    clean = tone(f0, seconds)
    noisy = clean + noise * np.random.default_rng(seed).standard_normal(clean.shape).astype(np.float32)
    n_frames = 1 + clean.shape[0] // LABEL_HOP
    cents = np.full(n_frames, 1200.0 * np.log2(f0 / 10.0))
    return TrackerSong(np.stack([clean, noisy]), cents, np.ones(n_frames, dtype=bool))


def fitted_tones(frames: torch.Tensor, f_vocal: float, f_other: float) -> list[np.ndarray]:
    """Least-squares coefficients of each frame on :func:`tone`'s five harmonics of ``f_vocal`` (sines, then
    cosines) and a sine and cosine at ``f_other``: 12 per frame, only for frames the basis explains (away from the
    edges, where float32 phase noise or zero padding leaves a residual)."""
    n = np.arange(crepe.FRAME_SIZE) / SR
    columns = [np.sin(2 * np.pi * k * f_vocal * n) / k for k in range(1, 6)]
    columns += [np.cos(2 * np.pi * k * f_vocal * n) / k for k in range(1, 6)]
    basis = np.stack([*columns, np.sin(2 * np.pi * f_other * n), np.cos(2 * np.pi * f_other * n)], axis=1)
    fits = []
    for frame in frames.numpy().astype(np.float64):
        coef, residual, *_ = np.linalg.lstsq(basis, frame, rcond=None)
        if residual.size and residual[0] < 1e-3 * float(frame @ frame):
            fits.append(coef)
    return fits


def tone_levels(coef: np.ndarray) -> tuple[float, float]:
    """RMS of the vocal tone (its harmonics at 1/k, any phase) and of the other tone in :func:`fitted_tones`'
    coefficients."""
    vocal_rms = float(np.mean(np.hypot(coef[:5], coef[5:10]))) * np.sqrt(np.sum(1.0 / np.arange(1, 6) ** 2) / 2)
    return vocal_rms, float(np.hypot(coef[10], coef[11]) / np.sqrt(2))


def test_target_is_crepes_gaussian_over_the_pitch_bins_and_zero_when_unvoiced():
    bins = crepe.bin_to_cents(np.arange(crepe.N_BINS))
    cents = torch.tensor([bins[100], bins[200] + 10.0, 3000.0], dtype=torch.float32)
    target = target_activations(cents, torch.tensor([True, True, False]))
    assert target.shape == (3, crepe.N_BINS)
    assert int(target[0].argmax()) == 100 and float(target[0, 100]) == pytest.approx(1.0)
    # float64 reference of the Gaussian, 25 cents wide
    expected = np.exp(-0.5 * ((bins - (bins[200] + 10.0)) / TARGET_STD_CENTS) ** 2)
    np.testing.assert_allclose(target[1].numpy(), expected, atol=1e-6)
    assert float(target[2].abs().max()) == 0.0


def test_training_frames_are_the_frames_salience_analyses():
    audio = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    padded = np.pad(audio, (crepe.FRAME_SIZE // 2, crepe.FRAME_SIZE // 2))
    expected = torch.from_numpy(padded).unfold(0, crepe.FRAME_SIZE, LABEL_HOP)[: 1 + audio.shape[0] // LABEL_HOP]
    frames = np.arange(expected.shape[0])
    np.testing.assert_array_equal(frames_at(audio, frames), expected.numpy())


def test_draw_batch_skips_digitally_silent_frames_and_normalises():
    song = tone_song(220.0)
    song.versions[1, : SR // 2] = 0.0  # the noisy copy silent in its first half
    x, cents, voiced = draw_batch([song], np.random.default_rng(0), 256)
    assert x.shape == (256, crepe.FRAME_SIZE) and cents.shape == (256,) and voiced.all()
    np.testing.assert_allclose(x.std(dim=-1, unbiased=False).numpy(), 1.0, rtol=1e-4)
    np.testing.assert_allclose(x.mean(dim=-1).numpy(), 0.0, atol=1e-5)


def test_breathy_draws_add_the_songs_breath_at_a_power_up_to_the_asked_share_and_keep_the_labels():
    """A tone vocal and, as its "breath", a tone of another pitch with the vocal's power: least squares on the two
    tones recovers each draw's breath-to-vocal power, which must spread over [0, breath_max_power]."""
    f_vocal, f_breath, max_power = 220.0, 347.0, 0.25
    vocal = tone(f_vocal, 2.0, amplitude=0.2)
    t = np.arange(vocal.shape[0]) / SR
    breath = np.sqrt(2.0) * np.sqrt(np.mean(np.square(vocal, dtype=np.float64))) * np.sin(2 * np.pi * f_breath * t)
    n_frames = 1 + vocal.shape[0] // LABEL_HOP
    song = TrackerSong(
        np.stack([vocal, vocal]),
        np.full(n_frames, 3000.0),
        np.ones(n_frames, bool),
        breath=breath.astype(np.float32),
    )
    x, cents, voiced = draw_batch([song], np.random.default_rng(0), 128, breath_share=1.0, breath_max_power=max_power)
    assert voiced.all() and torch.all(cents == 3000.0)
    powers = [(other / vocal) ** 2 for vocal, other in map(tone_levels, fitted_tones(x, f_vocal, f_breath))]
    assert len(powers) > 64
    assert min(powers) >= -1e-4 and max(powers) <= max_power + 1e-3
    assert max(powers) > 0.8 * max_power and min(powers) < 0.2 * max_power  # uniform over the range
    plain, *_ = draw_batch([song], np.random.default_rng(0), 32, breath_share=0.0)
    fits = fitted_tones(plain, f_vocal, f_breath)
    assert len(fits) > 16
    for coef in fits:  # no breath: the vocal tone alone
        assert np.hypot(coef[10], coef[11]) < 1e-3 * np.abs(coef[:10]).max()
    with pytest.raises(ValueError, match="breath"):
        draw_batch([tone_song(220.0)], np.random.default_rng(0), 4, breath_share=0.5)
    with pytest.raises(ValueError, match="breath_share"):
        TrackerTrainingConfig(breath_share=-0.1)
    with pytest.raises(ValueError, match="breath_max_power"):
        TrackerTrainingConfig(breath_max_power=-1.0)


def test_accompaniment_gain_puts_the_vocal_the_asked_ratio_above_it():
    for vocal, accompaniment, ratio in ((1.0, 1.0, 0.0), (0.3, 0.05, 12.0), (0.02, 0.4, -5.0)):
        gain = accompaniment_gain(vocal, accompaniment, ratio)
        assert 20 * np.log10(vocal / (gain * accompaniment)) == pytest.approx(ratio, abs=1e-9)
    assert accompaniment_gain(0.3, 0.0, 6.0) == 0.0


def test_mixed_draws_add_another_songs_accompaniment_at_the_asked_ratio_and_keep_the_vocals_labels():
    """A tone vocal (voiced nowhere, so the labels must be the vocal's) and a tone accompaniment of another pitch:
    least squares on the two tones' sines and cosines recovers each frame's vocal-to-accompaniment ratio."""
    f_vocal, f_acc, ratio = 220.0, 347.0, 6.0
    vocal = tone(f_vocal, 2.0, amplitude=0.2)
    n_frames = 1 + vocal.shape[0] // LABEL_HOP
    t = np.arange(vocal.shape[0]) / SR
    accompaniment = (0.7 * np.sin(2 * np.pi * f_acc * t)).astype(np.float32)
    song = TrackerSong(
        np.stack([vocal, np.zeros_like(vocal)]), np.full(n_frames, 3000.0), np.zeros(n_frames, bool), accompaniment
    )
    x, _, voiced = draw_batch([song], np.random.default_rng(0), 64, mix_share=1.0, mix_ratio_db=(ratio, ratio))
    assert not voiced.any()  # every draw is the true vocal (the silent second version is never drawn) plus the mix
    estimated = [20 * np.log10(vocal / other) for vocal, other in map(tone_levels, fitted_tones(x, f_vocal, f_acc))]
    assert len(estimated) > 32
    # frame ratio = song ratio here: both tones are stationary (the vocal's song RMS is its tone's RMS)
    np.testing.assert_allclose(estimated, ratio, atol=0.05)
    with pytest.raises(ValueError, match="accompaniment"):
        draw_batch([tone_song(220.0)], np.random.default_rng(0), 4, mix_share=0.5)
    with pytest.raises(ValueError, match="mix_share"):
        TrackerTrainingConfig(mix_share=1.5)


def test_training_lowers_the_loss_and_resumes_where_it_stopped(tmp_path):
    songs = [tone_song(f0, noise=0.3, seed=i) for i, f0 in enumerate((150.0, 260.0, 410.0))]
    cfg = TrackerTrainingConfig(steps=4, batch_size=16, learning_rate=1e-3, checkpoint_every=2)

    def loss(net) -> float:
        x, cents, voiced = draw_batch(songs, np.random.default_rng(123), 64)
        with torch.no_grad():
            return float(torch.nn.functional.binary_cross_entropy(net(x), target_activations(cents, voiced)))

    before = loss(crepe.load_crepe("tiny"))
    straight = train_tracker(songs, cfg, tmp_path / "a.pt", progress=False)
    assert loss(straight) < before
    # 2 steps, then a new call to 4: the same weights as 4 straight steps
    train_tracker(songs, TrackerTrainingConfig(**{**vars(cfg), "steps": 2}), tmp_path / "b.pt", progress=False)
    resumed = train_tracker(songs, cfg, tmp_path / "b.pt", progress=False)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="past the 2"):
        train_tracker(songs, TrackerTrainingConfig(**{**vars(cfg), "steps": 2}), tmp_path / "b.pt", progress=False)


def test_missing_separated_weights_give_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(crepe, "SEPARATED_WEIGHTS", tmp_path / "missing.safetensors")
    crepe.load_crepe.cache_clear()
    try:
        with pytest.raises(DDSPDemucsError, match="crepe-separated weights are missing"):
            crepe.load_crepe("separated")
    finally:
        crepe.load_crepe.cache_clear()


@pytest.mark.skipif(not crepe.SEPARATED_WEIGHTS.is_file(), reason="crepe-separated weights not installed")
def test_shipped_separated_tracker_follows_a_tone_and_has_its_provenance():
    import json

    f0_hz, _ = extract_f0(tone(330.0, 2.0), SR, frame_rate=100, method="crepe-separated")
    assert raw_pitch_accuracy(np.full(f0_hz.shape, 330.0)[20:-20], f0_hz[20:-20]) > 0.95
    provenance = json.loads(crepe.SEPARATED_WEIGHTS.with_suffix(".json").read_text())
    assert "CC BY-NC-SA 4.0" in provenance["licence"] and provenance["training_singers"]


@pytest.mark.skipif(not crepe.MIXTURE_WEIGHTS.is_file(), reason="crepe-mixture weights not installed")
def test_shipped_mixture_tracker_follows_a_tone_alone_and_in_its_song_and_has_its_provenance():
    import json

    vocal = tone(330.0, 2.0)
    song = vocal + 0.5 * tone(110.0, 2.0, amplitude=0.2)  # a quieter bass line under it
    reference = np.full(1 + vocal.size * 100 // SR - 1, 330.0)[20:-20]
    for mixture in (None, song):
        f0_hz, _ = extract_f0(vocal, SR, frame_rate=100, method="crepe-mixture", mixture=mixture)
        assert raw_pitch_accuracy(reference, f0_hz[20:-20]) > 0.95
    provenance = json.loads(crepe.MIXTURE_WEIGHTS.with_suffix(".json").read_text())
    assert "CC BY-NC-SA 4.0" in provenance["licence"] and provenance["training"]["reads_mixture"]


# ------------------------------------------------------------------------------------ a tracker reading the mixture
def two_channel_frames(n: int = 6) -> torch.Tensor:
    """``(n, 2, 1024)`` normalised frames: a harmonic tone and random noise in the first channel, other noise in
    the second."""
    g = torch.Generator().manual_seed(3)
    vocal = torch.cat([torch.from_numpy(tone(196.0)[: 3 * crepe.FRAME_SIZE]).reshape(3, -1), torch.randn(n - 3, 1024)])
    return crepe.normalise_frames(torch.stack([vocal, torch.randn(n, crepe.FRAME_SIZE, generator=g)], dim=1))


def test_a_widened_network_computes_from_its_first_channel_alone_in_every_form():
    """Zero weights on the new channel: CREPE-tiny's activations, whatever the second channel holds; half the
    weights on each: CREPE-tiny's on the mean of the two; and the three forms of the network agree on two channels
    once the second channel's weights are any others."""
    tiny = crepe.load_crepe("tiny")
    wide = crepe.CrepeNet(4, 2)
    wide.load_state_dict(widened(tiny.state_dict(), 2))
    frames = two_channel_frames()
    with torch.inference_mode():
        expected = tiny(frames[:, 0])
        for layout in crepe.LAYOUTS:
            got = crepe.layout_forward(wide.eval(), layout)(frames)
            np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5, err_msg=layout)
        blend = crepe.CrepeNet(4, 2)
        blend.load_state_dict(widened(tiny.state_dict(), 2, share=0.5))
        np.testing.assert_allclose(blend.eval()(frames).numpy(), tiny(frames.mean(dim=1)).numpy(), atol=1e-5)
        wide.conv1.weight[:, 1].normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
        first = wide(frames)
        assert (first - expected).abs().max() > 1e-3  # the second channel now counts
        for layout in crepe.LAYOUTS:
            got = crepe.layout_forward(wide, layout)(frames)
            np.testing.assert_allclose(got.numpy(), first.numpy(), atol=1e-5, err_msg=layout)


def test_the_mixture_tracker_reads_the_song_beside_the_vocal(monkeypatch, tmp_path):
    """``crepe-mixture`` frames the mixture like the vocal; without a song it reads the vocal twice; widened
    CREPE-tiny weights give CREPE-tiny's activations; a mixture of another length is an error; missing weights
    name the command that makes them."""
    from safetensors.torch import save_file

    path = tmp_path / "mixture.safetensors"
    g = torch.Generator().manual_seed(0)
    state = widened(crepe.load_crepe("tiny").state_dict(), 2)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    monkeypatch.setattr(crepe, "MIXTURE_WEIGHTS", path)
    crepe.load_crepe.cache_clear()
    try:
        vocal = tone(220.0, 0.5)
        song = vocal + 0.3 * torch.randn(vocal.shape, generator=g).numpy()
        tiny = crepe.salience(vocal, model="tiny")
        np.testing.assert_allclose(crepe.salience(vocal, model="mixture", mixture_16k=song), tiny, atol=1e-5)
        with pytest.raises(ValueError, match="mixture_16k"):
            crepe.salience(vocal, model="mixture", mixture_16k=song[:-1])
        # the second channel's frames are the song's: a network reading only that channel tracks the song's pitch
        swapped = {k: v.clone() for k, v in state.items()}
        swapped["conv1.weight"] = swapped["conv1.weight"].flip(1)
        save_file({k: v.contiguous() for k, v in swapped.items()}, str(path))
        crepe.load_crepe.cache_clear()
        other = tone(330.0, 0.5)
        np.testing.assert_allclose(
            crepe.salience(vocal, model="mixture", mixture_16k=other), crepe.salience(other, model="tiny"), atol=1e-5
        )
        np.testing.assert_allclose(crepe.salience(vocal, model="mixture"), tiny, atol=1e-5)  # no song: the vocal
        f0, _ = extract_f0(vocal, SR, frame_rate=100, method="crepe-mixture", mixture=other)
        assert np.median(f0[5:-5]) == pytest.approx(330.0, rel=0.03)
        with pytest.raises(ValueError, match="mixture must have"):
            extract_f0(vocal, SR, frame_rate=100, method="crepe-mixture", mixture=other[:-100])
        monkeypatch.setattr(crepe, "MIXTURE_WEIGHTS", tmp_path / "missing.safetensors")
        crepe.load_crepe.cache_clear()
        with pytest.raises(DDSPDemucsError, match="--reads-mixture"):
            crepe.load_crepe("mixture")
    finally:
        crepe.load_crepe.cache_clear()


def test_draws_for_a_tracker_reading_the_mixture_pair_each_frame_with_the_songs():
    song = tone_song(220.0)
    song.mixture = tone(330.0)  # stands for the song: any signal of the versions' length
    rng = np.random.default_rng(0)
    x, _, _ = draw_batch([song], rng, 8, reads_mixture=True)
    assert x.shape == (8, 2, crepe.FRAME_SIZE)
    # the second channel is the song's (edge frames, zero-padded, fit neither)
    assert len(fitted_tones(x[:, 1], 330.0, 1000.0)) >= 6 and not fitted_tones(x[:, 1], 220.0, 1000.0)
    assert not fitted_tones(x[:, 0], 330.0, 1000.0)  # the first, a version of the vocal
    x_solo, _, _ = draw_batch([song], np.random.default_rng(0), 8, reads_mixture=True, solo_share=1.0)
    torch.testing.assert_close(x_solo[:, 1], x_solo[:, 0])  # a vocal on its own: itself in both channels
    with pytest.raises(ValueError, match="mixture"):
        draw_batch([tone_song(220.0)], rng, 4, reads_mixture=True)
    with pytest.raises(ValueError, match="reads_mixture"):
        TrackerTrainingConfig(reads_mixture=True, breath_share=0.5)


def test_trackers_say_whether_they_read_the_song():
    from ddsp_demucs.features.pitch import F0Tracker

    assert F0Tracker("crepe-mixture").reads_mixture and F0Tracker("crepe-tiny", harmonic_check=True).reads_mixture
    assert not F0Tracker("crepe-separated").reads_mixture and not F0Tracker().reads_mixture


def test_the_features_stage_gives_crepe_mixture_the_song_its_stems_add_up_to(monkeypatch, tmp_path):
    """With a network that reads only its second channel, the feature file's F0 is the song's (vocals plus
    ``accompaniment.wav``), not the vocal's; the accompaniment's checksum is recorded (a changed accompaniment is
    recomputed); a separation without it is skipped with a line naming the missing file."""
    from safetensors.torch import save_file

    from ddsp_demucs.core.audio_io import save_audio
    from ddsp_demucs.core.config import Config
    from ddsp_demucs.features import load_features, run_features

    state = widened(crepe.load_crepe("tiny").state_dict(), 2)
    state["conv1.weight"] = state["conv1.weight"].flip(1)  # reads the song only
    path = tmp_path / "mixture.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    monkeypatch.setattr(crepe, "MIXTURE_WEIGHTS", path)
    crepe.load_crepe.cache_clear()
    try:
        sr, seconds = 22050, 4.5
        t = np.arange(int(sr * seconds)) / sr
        vocal = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        song = (0.3 * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32)
        folder = tmp_path / "stems" / "sep" / "song"
        save_audio(folder / "vocals.wav", vocal[:, None], sr)
        save_audio(folder / "accompaniment.wav", (song - vocal)[:, None], sr)
        save_audio(tmp_path / "stems" / "sep" / "lone" / "vocals.wav", vocal[:, None], sr)
        config = Config()
        config.features.f0_method = "crepe-mixture"
        report = run_features(tmp_path / "stems", "sep", tmp_path / "features", config=config, progress=False)
        features = load_features(tmp_path / "features" / "sep" / "song.npz")
        voiced = features["f0_hz"][features["f0_hz"] > 0]
        assert voiced.size > 100 and np.median(voiced) == pytest.approx(330.0, rel=0.02)
        assert features["meta"]["accompaniment_sha256"]
        assert report.computed == ["song"] and len(report.skipped) == 1
        assert "lone/accompaniment.wav: not found" in report.skipped[0][1]
        save_audio(folder / "accompaniment.wav", (0.5 * song - vocal)[:, None], sr)
        again = run_features(tmp_path / "stems", "sep", tmp_path / "features", config=config, progress=False)
        assert again.computed == ["song"]
    finally:
        crepe.load_crepe.cache_clear()


def harmonic_residual(frame: np.ndarray, f0: float) -> float:
    """Share of ``frame``'s energy that five harmonics of ``f0`` (any amplitudes and phases) and an offset leave
    unexplained."""
    n = np.arange(frame.shape[0]) / SR
    columns = [f(2 * np.pi * k * f0 * n) for k in range(1, 6) for f in (np.sin, np.cos)]
    basis = np.stack([*columns, np.ones_like(n)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, frame.astype(np.float64), rcond=None)
    return float(np.sum((frame - basis @ coef) ** 2) / np.sum(frame.astype(np.float64) ** 2))


def test_a_shifted_frame_is_the_frame_with_every_frequency_scaled_and_stays_centred():
    audio = tone(220.0, seconds=1.0)
    j = 50  # sample 8000: a shift of an octave either way stays inside the tone
    np.testing.assert_array_equal(shifted_frame(audio, j, SHIFT_GRID), frames_at(audio, np.array([j]))[0])
    for k in (32, 51, 80, 128):  # an octave down, about 4 semitones down and up, an octave up
        frame = shifted_frame(audio, j, k)
        assert frame.shape == (crepe.FRAME_SIZE,) and frame.dtype == audio.dtype
        assert harmonic_residual(frame, 220.0 * k / SHIFT_GRID) < 1e-4
        assert harmonic_residual(frame, 220.0) > 0.01  # the harmonics of an octave shift are partly 220 Hz's
    impulse = np.zeros(16000, dtype=np.float32)
    impulse[j * LABEL_HOP] = 1.0  # the frame's centre sample stays at the frame's centre
    for k in (40, 96):
        assert int(np.argmax(shifted_frame(impulse, j, k))) == crepe.FRAME_SIZE // 2


def test_pitch_shifted_draws_carry_labels_that_follow_their_audio():
    clean = tone(220.0)
    n_frames = 1 + clean.shape[0] // LABEL_HOP
    song = TrackerSong(clean[None], np.full(n_frames, 1200.0 * np.log2(22.0)), np.ones(n_frames, dtype=bool))
    x, cents, _ = draw_batch([song], np.random.default_rng(0), 48, pitch_shift_share=1.0, pitch_shift_semitones=7.0)
    semitones = (cents.numpy() - 1200.0 * np.log2(22.0)) / 100.0
    assert np.abs(semitones).max() <= 7.0 + 0.25 and semitones.std() > 2.0  # spread over the range asked for
    for frame, c in zip(x.numpy(), cents.numpy()):
        if np.ptp(frame[:8]) > 1e-6 and np.ptp(frame[-8:]) > 1e-6:  # no zero padding (the song's edges)
            assert harmonic_residual(frame, 10.0 * 2 ** (c / 1200.0)) < 1e-3
    plain, plain_cents, _ = draw_batch([song], np.random.default_rng(0), 48)
    assert np.allclose(plain_cents.numpy(), 1200.0 * np.log2(22.0))  # no shift asked for: the labels as they are
    with pytest.raises(ValueError, match="pitch_shift_share"):
        TrackerTrainingConfig(pitch_shift_share=1.5)
    with pytest.raises(ValueError, match="pitch_shift_semitones"):
        TrackerTrainingConfig(pitch_shift_semitones=13.0)


def test_low_cut_follows_its_closed_form_at_each_harmonic():
    bin_hz = SR / crepe.FRAME_SIZE
    f0 = 14 * bin_hz  # every harmonic on an FFT bin: the circular filter is exact there
    frame = tone(f0, seconds=crepe.FRAME_SIZE / SR)[: crepe.FRAME_SIZE].astype(np.float64)
    corner, cut = 700.0, 24.0
    out = low_cut(frame.astype(np.float32), corner, cut)
    assert out.dtype == np.float32
    before, after = np.abs(np.fft.rfft(frame)), np.abs(np.fft.rfft(out.astype(np.float64)))
    for k in range(1, 6):
        octaves_below = np.log2(corner / (k * f0))
        expected_db = -cut * min(max(octaves_below / TIMBRE_WIDTH_OCTAVES, 0.0), 1.0)
        assert 20 * np.log10(after[14 * k] / before[14 * k]) == pytest.approx(expected_db, abs=0.05)
    np.testing.assert_allclose(low_cut(frame, corner, 0.0), frame, atol=1e-12)  # no cut: the frame itself


def test_timbre_draws_change_the_voice_keep_the_separators_error_and_the_labels():
    f0 = 220.0
    voice = tone(f0, seconds=2.0)
    t = np.arange(voice.shape[0]) / SR
    error = (0.05 * np.sin(2 * np.pi * 3000.0 * t)).astype(np.float32)  # the "separator's" error: a 3 kHz tone
    n_frames = 1 + voice.shape[0] // LABEL_HOP
    cents = np.full(n_frames, 1200.0 * np.log2(f0 / 10.0))
    song = TrackerSong(np.stack([voice, voice + error]), cents, np.ones(n_frames, dtype=bool))
    x, got_cents, voiced = draw_batch([song], np.random.default_rng(0), 64, timbre_share=1.0, timbre_max_cut_db=30.0)
    plain, *_ = draw_batch([song], np.random.default_rng(0), 64)
    assert np.allclose(got_cents.numpy(), cents[0]) and bool(voiced.all())

    def level(frames, hz):  # amplitude at hz, relative to the 5th harmonic's (which no corner reaches)
        spectra = np.abs(np.fft.rfft(frames.numpy().astype(np.float64), axis=-1))
        return spectra[:, round(hz * crepe.FRAME_SIZE / SR)] / spectra[:, round(5 * f0 * crepe.FRAME_SIZE / SR)]

    assert np.median(level(x, f0)) < 0.5 * np.median(level(plain, f0))  # the fundamental cut in most draws
    assert level(x, f0).max() <= 1.01 * level(plain, f0).max()  # and never raised
    assert np.median(level(x, 3000.0)) == pytest.approx(np.median(level(plain, 3000.0)), rel=0.05)  # error as it was
    with pytest.raises(ValueError, match="timbre_share"):
        TrackerTrainingConfig(timbre_share=2.0)
    with pytest.raises(ValueError, match="timbre_max_cut_db"):
        TrackerTrainingConfig(timbre_max_cut_db=-1.0)
