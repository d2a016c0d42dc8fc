"""ddsp_demucs.metrics against closed forms, numpy float64 references, museval v4 and mir_eval."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shared_file
from helpers import import_museval
from scipy.signal import lfilter

from ddsp_demucs import metrics

MUSDB = "musdb18_sample/music_delta_80s_rock"


# ------------------------------------------------------------------------------------------------- SI-SDR
def _orthogonal_noise(ref: np.ndarray, snr_db: float, scale: float, rng) -> np.ndarray:
    """``scale * ref + noise``: noise zero-mean, orthogonal to the zero-mean ref, ``snr_db`` below ``scale*ref``."""
    r = ref - ref.mean()
    noise = rng.standard_normal(ref.shape)
    noise -= noise.mean()
    noise -= (noise @ r) / (r @ r) * r
    noise *= np.sqrt((scale * scale * (r @ r)) / (noise @ noise) * 10 ** (-snr_db / 10))
    return scale * ref + noise


@pytest.mark.parametrize("snr_db, scale", [(-5.0, 1.0), (0.0, 0.3), (12.5, 2.5), (40.0, -1.0)])
def test_si_sdr_closed_form(snr_db, scale):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4001) + 0.7  # a DC offset, which SI-SDR removes
    est = _orthogonal_noise(ref, snr_db, scale, rng) + 3.0
    assert metrics.si_sdr(est, ref) == pytest.approx(snr_db, abs=1e-6)


def test_si_sdr_batch_torch_and_gradient():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 2, 1000))
    est = ref + rng.standard_normal((3, 2, 1000)) * np.array([0.1, 0.5, 1.0])[:, None, None]
    out = metrics.si_sdr(est, ref)
    assert out.shape == (3, 2)
    for b in range(3):
        for c in range(2):
            assert out[b, c] == pytest.approx(metrics.si_sdr(est[b, c], ref[b, c]))
    est_t = torch.tensor(est, dtype=torch.float32, requires_grad=True)
    out_t = metrics.si_sdr(est_t, torch.tensor(ref, dtype=torch.float32))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (3, 2)
    np.testing.assert_allclose(out_t.detach().numpy(), out, atol=1e-3)
    out_t.sum().backward()
    assert torch.isfinite(est_t.grad).all() and est_t.grad.abs().sum() > 0
    # scale invariance, and lower for noisier estimates
    assert metrics.si_sdr(5 * est, ref) == pytest.approx(out)
    assert out[0, 0] > out[1, 0] > out[2, 0]


def test_si_sdr_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.si_sdr(np.zeros(10), np.zeros(11))
    with pytest.raises(ValueError, match="NaN"):
        metrics.si_sdr(np.full(10, np.nan), np.ones(10))


# ----------------------------------------------------------------------------------------- SiSEC18 SDR
def test_sdr_closed_form_and_framing():
    sr = 100
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((250, 2))  # 2.5 windows: museval drops the partial one
    gains = np.repeat([0.1, 0.5, 0.9], 100)[:250, None]
    frames = metrics.sdr_frames(ref * (1 + gains), ref, sr)
    np.testing.assert_allclose(frames, -20 * np.log10([0.1, 0.5]), rtol=1e-12)
    assert metrics.sdr(ref * (1 + gains), ref, sr) == pytest.approx(-20 * np.log10(0.1) / 2 - 20 * np.log10(0.5) / 2)
    # a window longer than the signal: one window over everything
    short = ref[:70]
    assert metrics.sdr_frames(short * 1.5, short, sr).shape == (1,)
    assert metrics.sdr(short * 1.5, short, sr) == pytest.approx(-20 * np.log10(0.5))
    # a perfect estimate is +inf, a silent reference window is NaN and ignored by the median
    assert metrics.sdr(ref, ref, sr) == np.inf
    silent_ref = ref.copy()
    silent_ref[:100] = 0
    frames = metrics.sdr_frames(ref * 1.1, silent_ref, sr)
    assert np.isnan(frames[0]) and np.isfinite(frames[1])
    assert metrics.sdr(ref * 1.1, silent_ref, sr) == pytest.approx(20.0)
    assert np.isnan(metrics.sdr(ref, np.zeros_like(ref), sr))


def test_sdr_batch_torch_and_mono():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((3, 300, 2))
    est = ref + 0.3 * rng.standard_normal((3, 300, 2))
    batch = metrics.sdr(est, ref, 100)
    assert batch.shape == (3,)
    assert batch[1] == pytest.approx(metrics.sdr(est[1], ref[1], 100))
    assert metrics.sdr(torch.tensor(est[1]), torch.tensor(ref[1]), 100) == pytest.approx(batch[1])
    assert metrics.sdr(est[0, :, 0], ref[0, :, 0], 100) == pytest.approx(metrics.sdr(est[0, :, :1], ref[0, :, :1], 100))


def test_sdr_errors():
    x = np.ones((200, 2))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.sdr(x, np.ones((200, 1)), 100)
    with pytest.raises(ValueError, match="sample_rate"):
        metrics.sdr(x, x, 0)
    with pytest.raises(ValueError, match="joint_sources"):
        metrics.sdr(x, x, 100, joint_sources=True)


def _musdb_stems():
    folder = shared_file(f"{MUSDB}/vocals.flac").parent
    read = lambda name: sf.read(folder / f"{name}.flac", dtype="float64", always_2d=True)[0]  # noqa: E731
    vocals, sr = sf.read(folder / "vocals.flac", dtype="float64", always_2d=True)
    accompaniment = read("drums") + read("bass") + read("other")
    return vocals, accompaniment, read("mixture"), sr


def test_sdr_matches_museval_v4_on_musdb_sample():
    museval = import_museval()
    vocals, accompaniment, mixture, sr = _musdb_stems()
    rng = np.random.default_rng(4)
    b, a = [0.3, 0.5, 0.2], [1.0, -0.2]
    delayed_filtered = np.zeros_like(vocals)
    delayed_filtered[37:] = lfilter(b, a, vocals, axis=0)[:-37]
    vocals_gap = vocals.copy()
    vocals_gap[sr : 2 * sr + 500] = 0  # a silent reference window (NaN in museval) and a partly silent one
    cases = {
        "mixture": (mixture, vocals),
        "vocals + 0.3 accompaniment": (vocals + 0.3 * accompaniment, vocals),
        "delayed, filtered vocals": (delayed_filtered, vocals),
        "noisy float32 estimate": ((vocals + 0.05 * rng.standard_normal(vocals.shape)).astype(np.float32), vocals),
        "reference with a silent second": (mixture, vocals_gap),
    }
    for name, (estimate, reference) in cases.items():
        sdr_frames, *_ = museval.evaluate(reference[None], estimate[None], win=sr, hop=sr, mode="v4")
        ours = metrics.sdr_frames(estimate, reference, sr)
        np.testing.assert_allclose(ours, sdr_frames[0], atol=1e-6, err_msg=name)
        assert abs(metrics.sdr(estimate, reference, sr) - np.nanmedian(sdr_frames[0])) < 0.01, name
    assert np.isnan(metrics.sdr_frames(mixture, vocals_gap, sr)[1])

    # museval's multi-source call (vocals/accompaniment, as in SiSEC18): silent windows are shared
    references = np.stack([vocals_gap, accompaniment])
    estimates = np.stack([mixture - accompaniment * 0.8, accompaniment + 0.2 * vocals])
    sdr_frames, *_ = museval.evaluate(references, estimates, win=sr, hop=sr, mode="v4")
    ours = metrics.sdr_frames(estimates, references, sr, joint_sources=True)
    np.testing.assert_allclose(ours, sdr_frames, atol=1e-6)
    assert np.isnan(ours[1, 1])
    np.testing.assert_allclose(
        metrics.sdr(estimates, references, sr, joint_sources=True), np.nanmedian(sdr_frames, axis=1), atol=0.01
    )


# ------------------------------------------------------------------------------------ spectral distances
# (both modules against the float64 numpy definitions: test_dsp_spectral.py)
def test_spectral_metrics_closed_forms_and_torch():
    rng = np.random.default_rng(6)
    ref = rng.standard_normal(4096)
    assert metrics.spectral_convergence(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert metrics.log_spectral_distance(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # a gain g scales every magnitude: SC = |g - 1|, LSD = |20 log10 g| (the floor is negligible here)
    assert metrics.spectral_convergence(0.5 * ref, ref) == pytest.approx(0.5, rel=1e-9)
    assert metrics.log_spectral_distance(2.0 * ref, ref) == pytest.approx(20 * np.log10(2.0), rel=1e-6)
    est_t = torch.tensor(0.5 * ref, dtype=torch.float32, requires_grad=True)
    out = metrics.spectral_convergence(est_t, torch.tensor(ref, dtype=torch.float32))
    assert out.item() == pytest.approx(0.5, rel=1e-4)
    out.backward()
    assert torch.isfinite(est_t.grad).all()


# --------------------------------------------------------------------------------------------- F0 metrics
def test_f0_metrics_constructed_case():
    ref = np.array([0, 0, 0, 0, 220, 220, 220, 220, 220, 220, 220, 220], dtype=float)
    est = np.array([0, 0, 100, 0, 0, 221, 440, 110, 233, 220 * 2 ** (49 / 1200), 220 * 2 ** (1230 / 1200), 300])
    # ref-voiced frames (8): unvoiced est; +7.9 c ok; +1200 octave; -1200 octave; +99.7 c wrong; +49 c ok;
    # +1230 c octave; +537 c wrong
    out = metrics.f0_metrics(ref, est)
    assert out["raw_pitch_accuracy"] == pytest.approx(2 / 8)
    expected_right = np.zeros(12, dtype=bool)
    expected_right[[5, 9]] = True  # the per-frame test raw pitch accuracy counts
    np.testing.assert_array_equal(metrics.pitch_correct_frames(ref, est), expected_right)
    assert out["raw_chroma_accuracy"] == pytest.approx(5 / 8)
    assert out["octave_error_rate"] == pytest.approx(3 / 8)
    assert out["voicing_recall"] == pytest.approx(7 / 8)
    assert out["voicing_false_alarm"] == pytest.approx(1 / 4)
    cents = np.abs(1200 * np.log2(est[5:] / 220))
    assert out["median_cents_error"] == pytest.approx(np.median(cents))
    # separate voicing: est pitch still counts for RPA, voicing metrics follow est_voicing
    voicing = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    out = metrics.f0_metrics(ref, est, est_voicing=voicing)
    assert out["raw_pitch_accuracy"] == pytest.approx(2 / 8)
    assert out["voicing_recall"] == pytest.approx(5 / 8)
    assert out["voicing_false_alarm"] == pytest.approx(0.0)  # frame 0 has f0 0, so it cannot be voiced
    assert out["median_cents_error"] == pytest.approx(np.median(cents[:5]))
    # batch dims and undefined cases
    batch = metrics.f0_metrics(np.stack([ref, np.zeros(12)]), np.stack([est, est]))
    assert batch["raw_pitch_accuracy"][0] == pytest.approx(2 / 8) and np.isnan(batch["raw_pitch_accuracy"][1])
    assert batch["voicing_false_alarm"][1] == pytest.approx(8 / 12)


def test_f0_metrics_match_mir_eval():
    melody = pytest.importorskip("mir_eval.melody", reason="mir_eval is in the dev extra")
    rng = np.random.default_rng(7)
    n = 2000
    ref = 150 * 2 ** (rng.uniform(-1, 1.5, n)) * (rng.random(n) < 0.7)
    shift_cents = rng.choice([0, 0, 0, 1200, -1200, 2400], n) + rng.normal(0, 40, n)
    est = ref * 2 ** (shift_cents / 1200)
    est[ref == 0] = 180 * (rng.random((ref == 0).sum()) < 0.3)
    est[rng.random(n) < 0.1] = 0
    voicing = (rng.random(n) < 0.8) & (est > 0)
    args = ((ref > 0).astype(float), melody.hz2cents(ref), voicing.astype(float), melody.hz2cents(est))
    assert metrics.raw_pitch_accuracy(ref, est) == pytest.approx(melody.raw_pitch_accuracy(*args))
    assert metrics.raw_chroma_accuracy(ref, est) == pytest.approx(melody.raw_chroma_accuracy(*args))
    recall, false_alarm = melody.voicing_measures(args[0], args[2])
    assert metrics.voicing_recall(ref, est, est_voicing=voicing) == pytest.approx(recall)
    assert metrics.voicing_false_alarm(ref, est, est_voicing=voicing) == pytest.approx(false_alarm)
    assert metrics.octave_error_rate(ref, est) == pytest.approx(
        melody.raw_chroma_accuracy(*args) - melody.raw_pitch_accuracy(*args)
    )


def test_f0_metric_errors():
    with pytest.raises(ValueError, match="one shape"):
        metrics.f0_metrics(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="negative"):
        metrics.raw_pitch_accuracy(np.ones(4), -np.ones(4))
    with pytest.raises(ValueError, match="boolean"):
        metrics.voicing_recall(np.ones(3), np.ones(3), est_voicing=np.array([0.2, 0.9, 1.0]))


# ---------------------------------------------------------------------------------------- f0_on_frames
def test_f0_on_frames_constructed():
    times = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    f0 = np.array([100.0, 200.0, 0.0, 0.0, 300.0, 300.0])
    out = metrics.f0_on_frames(times, f0, frame_rate=25, n_frames=14)  # frames every 40 ms, to 0.52 s
    # 40/80 ms: log-interpolated between 100 and 200 Hz; 120 ms: nearest point is 200 Hz and the next one is
    # unvoiced, so no interpolation into the gap; 160-320 ms: nearest point unvoiced; 360 ms: nearest is 300 Hz
    # (the unvoiced point before it is not blended in); 520 ms: after the annotation ends
    expected = [100, 100 * 2**0.4, 100 * 2**0.8, 200, 0, 0, 0, 0, 0, 300, 300, 300, 300, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="increasing"):
        metrics.f0_on_frames(times[::-1], f0, 20, 5)


def test_f0_on_frames_vocadito_identity():
    path = shared_file("vocadito/annotations/vocadito_1_f0.csv")
    times, f0 = np.loadtxt(path, delimiter=",", unpack=True)
    hop = np.median(np.diff(times))
    out = metrics.f0_on_frames(times, f0, frame_rate=1 / hop, n_frames=times.size)
    np.testing.assert_allclose(out, f0, rtol=1e-9)
    half = metrics.f0_on_frames(times, f0, frame_rate=0.5 / hop, n_frames=times.size // 2)
    np.testing.assert_allclose(half, f0[: 2 * (times.size // 2) : 2], rtol=1e-9)
    assert metrics.f0_metrics(f0, out)["raw_pitch_accuracy"] == pytest.approx(1.0)
