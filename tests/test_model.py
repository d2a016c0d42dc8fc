"""ResidualDDSPDecoder: identity at init, shapes, controls, gradients, mask transfer, spectral synthesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import FR, SR, TINY, batch_of, make_example

from ddsp_demucs.dsp import separation_ambiguity, separator_mask
from ddsp_demucs.metrics import si_sdr
from ddsp_demucs.model import (
    CONFIDENCE_AT_INIT,
    HARMONICITY_WIDTH,
    QUALITY_SMOOTHING_S,
    ResidualDDSPDecoder,
    band_interpolation,
    frame_ambiguity,
    harmonic_comb,
    harmonic_energy_share,
    harmonic_spectrum,
    interpolate_gate,
    interpolate_mask,
    noise_spectrum,
)


def random_batch(seed: int, batch: int = 2, n_samples: int = 8000) -> dict:
    g = torch.Generator().manual_seed(seed)
    n_frames = n_samples * FR // SR
    return {
        "input_audio": 0.3 * torch.randn(batch, n_samples, generator=g),
        "f0_hz": torch.where(
            torch.rand(batch, n_frames, generator=g) > 0.3,
            100 + 300 * torch.rand(batch, n_frames, generator=g),
            torch.zeros(batch, n_frames),
        ),
        "f0_confidence": torch.rand(batch, n_frames, generator=g),
        "loudness_db": -60 + 40 * torch.rand(batch, n_frames, generator=g),
    }


@pytest.mark.parametrize("composition", ["gate", "mask", "harmonic"])
@pytest.mark.parametrize("audio_encoder", [True, False])
def test_identity_at_init(composition, audio_encoder):
    torch.manual_seed(1)
    model = ResidualDDSPDecoder(SR, FR, composition=composition, use_audio_encoder=audio_encoder, **TINY)
    for batch in (random_batch(0), batch_of([make_example(3), make_example(4)])):
        with torch.no_grad():
            out = model(batch)["audio"]
        assert out.shape == batch["input_audio"].shape
        assert si_sdr(out, batch["input_audio"]).min() > 40.0
        assert torch.allclose(out, batch["input_audio"], atol=1e-6)


@pytest.mark.parametrize("composition", ["synth", "gate", "mask"])
def test_shapes_and_controls(composition):
    model = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    batch = random_batch(1, batch=3, n_samples=6000)
    out = model(batch)
    nm = 6000 // 256 + 1
    assert out["audio"].shape == (3, 6000) and torch.isfinite(out["audio"]).all()
    assert out["f0_hz"].shape == out["amplitudes"].shape == out["voicing"].shape == (3, nm)
    assert out["harmonic_distribution"].shape == (3, nm, TINY["n_harmonics"])
    assert out["noise_magnitudes"].shape == (3, nm, TINY["n_noise_bands"])
    dist = out["harmonic_distribution"]
    voiced = out["f0_hz"] > 0
    # normalised once over the harmonics below Nyquist; zero above it
    assert torch.allclose(dist.sum(-1)[voiced], torch.ones(int(voiced.sum())), atol=1e-5)
    k = torch.arange(1, TINY["n_harmonics"] + 1)
    assert (dist[out["f0_hz"].unsqueeze(-1) * k >= SR / 2] == 0).all()
    # harmonics are silent where F0 is 0 and fade with confidence
    assert (out["amplitudes"][~voiced] == 0).all()
    if composition == "mask":
        assert out["mask"].shape == (3, 513, nm) and (out["mask"] == 1).all()
    if composition == "gate":
        assert out["gate"].shape == (3, nm) and (out["gate"] == 1).all()
    if composition != "mask":
        assert out["harmonic_audio"].shape == (3, 6000)


def test_controls_interpolated_onto_model_grid():
    model = ResidualDDSPDecoder(SR, FR, composition="mask", **TINY)
    batch = random_batch(2, batch=1, n_samples=22050)
    batch["f0_hz"] = torch.full_like(batch["f0_hz"], 200.0)
    batch["f0_hz"][:, 125:] = 0.0  # unvoiced from 0.5 s (frame 125 at 0.5 s)
    c = model.controls(batch)
    times = torch.arange(c["f0_hz"].shape[1]) * 256 / SR
    assert torch.all(c["f0_hz"][0, times < 0.496] == 200.0)  # no glide towards 0 Hz
    assert torch.all(c["f0_hz"][0, times >= 0.5] == 0.0)


@pytest.mark.parametrize("composition", ["synth", "gate", "mask", "harmonic"])
def test_gradients_reach_all_parameters(composition):
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    if model.residual_head is not None:  # zero-initialised: move it off zero so upstream gradients are non-zero
        torch.nn.init.normal_(model.residual_head.weight, std=0.1)
        torch.nn.init.constant_(model.residual_head.bias, 0.2 if composition == "gate" else 0.5)
    if model.band_head is not None:  # gain 0.7, depth 0.5, width 30 Hz: every part of the mask is live
        torch.nn.init.normal_(model.band_head.weight, std=0.01)
        bias = torch.tensor([0.3, 0.5, 0.0]).repeat_interleave(model.n_mask_bands)
        model.band_head.bias.data.copy_(bias)
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    out = model(batch)
    loss = (out["audio"] - batch["input_audio"] * 0.5).square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("composition", ["gate", "mask", "harmonic"])
def test_zero_initialised_head_gets_gradient(composition):
    model = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    batch = batch_of([make_example(7, n_samples=6000)])
    out = model(batch)
    (out["audio"] - batch["target_audio"]).square().mean().backward()
    head = model.band_head if composition == "harmonic" else model.residual_head
    assert head.bias.grad.abs().max() > 0  # the identity is not a dead saddle


def test_harmonic_comb_against_a_loop_over_harmonics():
    f0 = torch.tensor([[180.0, 0.0, 333.3]], dtype=torch.float64)
    width = torch.tensor([25.0, 40.0], dtype=torch.float64).repeat_interleave(257).view(1, 514, 1).expand(1, 514, 3)
    bins = torch.arange(514, dtype=torch.float64) * (SR / 1026)
    comb = harmonic_comb(f0, width, bins).numpy()
    for t, f in enumerate(f0[0].tolist()):
        harmonics = np.arange(1, 200) * f if f > 0 else np.array([0.0])
        for i in range(0, 514, 7):
            distance = np.abs(bins[i].item() - harmonics).min()
            if f > 0 and bins[i].item() < f / 2:
                distance = bins[i].item()  # below half the F0: measured from 0 Hz, where no harmonic is
            expected = np.exp(-0.5 * (distance / width[0, i, t].item()) ** 2)
            assert comb[0, i, t] == pytest.approx(expected, abs=1e-9)


def test_band_interpolation_rows_sum_to_one_and_hit_their_centres():
    weights = band_interpolation(513, SR, 8)
    assert weights.shape == (513, 8) and torch.allclose(weights.sum(1), torch.ones(513))
    assert (weights >= 0).all()
    centres = np.geomspace(60.0, SR / 2, 8)
    for band, centre in enumerate(centres):
        row = weights[round(centre / (SR / 1024))]
        assert row[band] > 0.9  # the bin nearest a band's centre takes (nearly) only that band's value


def test_harmonic_mask_is_the_closed_form_and_removes_only_between_harmonics():
    """Depth 1 and gain 1 everywhere: ``mask = 1 - voicing (1 - comb)``; on a voice plus steady off-harmonic
    tones that mask raises SI-SDR, and it never exceeds 1."""
    model = ResidualDDSPDecoder(SR, FR, composition="harmonic", **TINY).double()
    model.band_head.bias.data[model.n_mask_bands : 2 * model.n_mask_bands] = 1.0  # depth 1; gain and width as init
    batch = {k: v.double() if torch.is_tensor(v) else v for k, v in batch_of([make_example(3)]).items()}
    with torch.no_grad():
        m = model.compute_harmonic_mask(batch)
        out = model(batch)["audio"]
    c = m["controls"]
    comb = harmonic_comb(c["f0_hz"], torch.full_like(m["mask"], 30.0), model.bin_hz.double())
    expected = 1.0 - c["voicing"].unsqueeze(1) * (1.0 - comb)
    assert torch.allclose(m["mask"], expected, atol=1e-12)
    assert (m["mask"] <= 1.0 + 1e-12).all() and (m["mask"] >= 0.0).all()
    before = si_sdr(batch["input_audio"], batch["target_audio"])
    assert (si_sdr(out, batch["target_audio"]) > before + 2.0).all()  # 7.6 -> 10.5 dB


def test_harmonic_spectrum_matches_stft_of_a_sinusoid():
    n_fft, sr = 1024, 22050
    f0 = 441.3
    t = torch.arange(sr, dtype=torch.float64) / sr
    x = 0.5 * torch.sin(2 * math.pi * f0 * t) + 0.25 * torch.sin(2 * math.pi * 2 * f0 * t)
    spec = torch.stft(x, n_fft, 256, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True)
    ref = spec.abs()[:, 40]  # a frame away from the edges
    amps = torch.tensor([[[0.5, 0.25, 0.0]]], dtype=torch.float64)
    est = harmonic_spectrum(torch.tensor([[f0]], dtype=torch.float64), amps, sample_rate=sr, n_fft=n_fft)[0, 0]
    for k in (1, 2):
        b = round(k * f0 * n_fft / sr)
        assert est[b - 1 : b + 2].numpy() == pytest.approx(ref[b - 1 : b + 2].numpy(), rel=0.02)
    assert float(est[150:].abs().max()) == 0.0


def test_noise_spectrum_matches_expected_rms():
    torch.manual_seed(0)
    n_fft = 512
    x = torch.rand(200_000, dtype=torch.float64) * 2 - 1  # flat magnitude 1
    spec = torch.stft(x, n_fft, 128, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True)
    rms = spec.abs().square().mean(dim=1).sqrt()[10:-10].mean()
    est = noise_spectrum(torch.ones(1, 1, 5, dtype=torch.float64), n_fft=n_fft)[0, 0, 0]
    assert float(est) == pytest.approx(float(rms), rel=0.02)


def test_mask_transfer_to_another_rate():
    mask = torch.rand(2, 513, 30) + 0.5
    same = interpolate_mask(
        mask,
        src_sample_rate=22050,
        src_n_fft=1024,
        src_hop=256,
        dst_sample_rate=22050,
        dst_n_fft=1024,
        dst_hop=256,
        dst_n_frames=30,
    )
    assert torch.allclose(same, mask, atol=1e-6)
    up = interpolate_mask(
        mask,
        src_sample_rate=22050,
        src_n_fft=1024,
        src_hop=256,
        dst_sample_rate=44100,
        dst_n_fft=2048,
        dst_hop=512,
        dst_n_frames=30,
    )
    assert up.shape == (2, 1025, 30)
    assert torch.allclose(up[:, :513], mask, atol=1e-5)  # same Hz and seconds at both rates
    assert (up[:, 513:] == 1).all()  # above the model's Nyquist: kept


def test_gate_interpolation_is_per_sample():
    gate = torch.tensor([[1.0, 0.0, 1.0]])
    g = interpolate_gate(gate, frame_rate=10, sample_rate=100, n_samples=30)
    assert g[0, 0] == 1 and g[0, 10] == 0 and g[0, 5] == pytest.approx(0.5) and g[0, 29] == 1


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="composition"):
        ResidualDDSPDecoder(SR, FR, composition="blend")
    model = ResidualDDSPDecoder(SR, FR, **TINY)
    batch = random_batch(0)
    with pytest.raises(ValueError, match="missing f0_hz"):
        model({k: v for k, v in batch.items() if k != "f0_hz"})
    with pytest.raises(ValueError, match="batch dim"):
        model({**batch, "input_audio": batch["input_audio"][0]})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("composition", ["synth", "gate", "mask", "harmonic"])
def test_autocast_gradients_are_finite_at_initialisation(composition, dtype):
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    with torch.autocast("cpu", dtype=dtype):
        out = model(batch)
        loss = (out["audio"].float() - batch["target_audio"]).square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients under {dtype} autocast: {bad}"
    assert any(p.grad is not None and torch.any(p.grad != 0) for p in model.parameters())


@pytest.mark.parametrize("composition", ["mask", "harmonic"])
def test_accompaniment_encoder_reads_mixture_minus_input(composition):
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(SR, FR, composition=composition, use_accompaniment_encoder=True, **TINY)
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    with pytest.raises(ValueError, match="this model reads the mixture"):
        model(batch)
    batch["mixture_audio"] = batch["input_audio"] + 0.1 * torch.randn_like(batch["input_audio"])
    out = model(batch)
    assert torch.allclose(out["audio"], batch["input_audio"], atol=1e-6)  # still the identity at init
    out["audio"].sub(batch["target_audio"]).square().mean().backward()
    grads = [p.grad for p in model.accompaniment_encoder.parameters()]
    assert all(g is not None for g in grads)
    with torch.no_grad():  # the decoder's output moves with the accompaniment estimate
        h1, _ = model.frame_state(batch)
        h2, _ = model.frame_state({**batch, "mixture_audio": batch["input_audio"]})
    assert (h1 - h2).abs().max() > 1e-4


@pytest.mark.parametrize("composition", ["mask", "harmonic"])
def test_ambiguity_gate_moves_the_mask_toward_one_where_the_separator_was_sure(composition):
    torch.manual_seed(0)
    gated = ResidualDDSPDecoder(SR, FR, composition=composition, ambiguity_gate="always", **TINY)
    with torch.no_grad():  # away from the identity, so the gate has a mask to weigh
        for p in gated.parameters():
            p.normal_(0.0, 0.3)
    plain = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    plain.load_state_dict(gated.state_dict())
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    with pytest.raises(ValueError, match="this model reads the mixture"):
        gated(batch)
    assert gated.reads_mixture and not plain.reads_mixture
    # the separator kept every bin whole (mixture == vocal): the input comes back bit for bit
    sure = gated({**batch, "mixture_audio": batch["input_audio"]})["audio"]
    assert torch.equal(sure, batch["input_audio"])
    batch["mixture_audio"] = batch["input_audio"] + 0.3 * torch.randn_like(batch["input_audio"])
    compute = "compute_mask" if composition == "mask" else "compute_harmonic_mask"
    mask, free = getattr(gated, compute)(batch), getattr(plain, compute)(batch)
    ambiguity = separation_ambiguity(free["spec"].abs(), gated.stft(batch["mixture_audio"]).abs())
    torch.testing.assert_close(mask["mask"], 1.0 + ambiguity * (free["mask"] - 1.0))
    assert 0.0 < ambiguity.mean() < 1.0 and (free["mask"] - 1.0).abs().max() > 0.1
    gated(batch)["audio"].sub(batch["target_audio"]).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in gated.parameters())
    inference = ResidualDDSPDecoder(SR, FR, composition=composition, ambiguity_gate="inference", **TINY)
    inference.load_state_dict(gated.state_dict())
    torch.testing.assert_close(getattr(inference.eval(), compute)(batch)["mask"], mask["mask"])  # refining: gated
    torch.testing.assert_close(getattr(inference.train(), compute)(batch)["mask"], free["mask"])  # learning: free
    with pytest.raises(ValueError, match="ambiguity_gate must be one of"):
        ResidualDDSPDecoder(SR, FR, composition=composition, ambiguity_gate=True, **TINY)
    with pytest.raises(ValueError, match="ambiguity_gate weighs a mask"):
        ResidualDDSPDecoder(SR, FR, composition="synth", ambiguity_gate="always", **TINY)


@pytest.mark.parametrize("composition", ["mask", "harmonic"])
def test_the_suppress_bleed_gate_lowers_in_full_where_the_separator_kept_less_than_half(composition):
    torch.manual_seed(0)
    bleed = ResidualDDSPDecoder(
        SR, FR, composition=composition, ambiguity_gate="always", gate_shape="suppress_bleed", **TINY
    )
    with torch.no_grad():
        for p in bleed.parameters():
            p.normal_(0.0, 0.3)
    plain = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY)
    plain.load_state_dict(bleed.state_dict())
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    batch["mixture_audio"] = batch["input_audio"] + 0.3 * torch.randn_like(batch["input_audio"])
    compute = "compute_mask" if composition == "mask" else "compute_harmonic_mask"
    got, free = getattr(bleed, compute)(batch)["mask"], getattr(plain, compute)(batch)["mask"]
    kept = separator_mask(plain.stft(batch["input_audio"]).abs(), plain.stft(batch["mixture_audio"]).abs())
    full = (free < 1) & (kept < 0.5)  # lowered where the separator kept less than half: in full
    expected = torch.where(full, free, 1.0 + 4 * kept * (1 - kept) * (free - 1.0))
    assert full.any() and (~full & (kept > 0) & (kept < 1)).any()
    torch.testing.assert_close(got, expected)
    assert torch.all(got[(kept == 1)] == 1)  # a bin the separator kept whole is left alone, raised or lowered
    assert torch.all(got[(free > 1) & (kept == 0)] == 1)  # nothing raised where it kept none
    with pytest.raises(ValueError, match="gate_shape must be one of"):
        ResidualDDSPDecoder(SR, FR, composition=composition, gate_shape="open", **TINY)


def test_unvoiced_cap_keeps_the_mask_from_raising_unvoiced_frames():
    torch.manual_seed(0)
    capped = ResidualDDSPDecoder(SR, FR, composition="mask", unvoiced_cap="always", **TINY)
    with torch.no_grad():  # away from the identity, so the mask boosts some bins
        for p in capped.parameters():
            p.normal_(0.0, 0.3)
    plain = ResidualDDSPDecoder(SR, FR, composition="mask", **TINY)
    plain.load_state_dict(capped.state_dict())
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])  # each with an unvoiced gap
    free, mask = plain.compute_mask(batch), capped.compute_mask(batch)
    unvoiced = (free["controls"]["voicing"] < 0.5).unsqueeze(1).expand_as(free["mask"])
    assert unvoiced.any() and (~unvoiced).any()
    assert (free["mask"][unvoiced] > 1.01).any() and (free["mask"][~unvoiced] > 1.01).any()  # boosts in both
    torch.testing.assert_close(mask["mask"][unvoiced], free["mask"][unvoiced].clamp(max=1.0))
    torch.testing.assert_close(mask["mask"][~unvoiced], free["mask"][~unvoiced])  # voiced frames untouched
    capped(batch)["audio"].sub(batch["target_audio"]).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in capped.parameters())
    inference = ResidualDDSPDecoder(SR, FR, composition="mask", unvoiced_cap="inference", **TINY)
    inference.load_state_dict(capped.state_dict())
    torch.testing.assert_close(inference.eval().compute_mask(batch)["mask"], mask["mask"])  # refining: capped
    torch.testing.assert_close(inference.train().compute_mask(batch)["mask"], free["mask"])  # learning: free
    with pytest.raises(ValueError, match="unvoiced_cap must be one of"):
        ResidualDDSPDecoder(SR, FR, composition="mask", unvoiced_cap=True, **TINY)
    with pytest.raises(ValueError, match="unvoiced_cap caps a mask"):
        ResidualDDSPDecoder(SR, FR, composition="harmonic", unvoiced_cap="inference", **TINY)


def restore_batch() -> dict:
    """Half of each example's voice separated, the mixture holding the whole voice and the bleed: the other half
    of the voice is in the accompaniment estimate, on the harmonics of F0."""
    batch = batch_of([make_example(5, n_samples=6000), make_example(6, n_samples=6000)])
    batch["mixture_audio"] = batch["input_audio"]  # voice + bleed
    batch["input_audio"] = 0.5 * batch["target_audio"]
    return batch


def test_restore_gives_back_the_accompaniment_estimate_on_the_harmonics():
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(SR, FR, composition="restore", **TINY)
    batch = restore_batch()
    assert model.reads_mixture
    with torch.no_grad():
        out = model(batch)
    assert (out["restore"] == 0).all() and (out["mask"] == 1).all()
    torch.testing.assert_close(out["audio"], batch["input_audio"], atol=1e-6, rtol=0)  # the identity at init
    # the whole share everywhere (mask still 1): the estimate's harmonics come back, its bleed mostly not
    torch.nn.init.constant_(model.restore_head.bias, 1.0)
    with torch.no_grad():
        out = model(batch)
    target, separated, mixture = batch["target_audio"], batch["input_audio"], batch["mixture_audio"]
    error = (out["audio"] - target).norm(dim=-1)
    assert (error < 0.5 * (separated - target).norm(dim=-1)).all()  # most of the missing half restored
    assert (error < 0.5 * (mixture - target).norm(dim=-1)).all()  # far less bleed than the whole estimate
    voicing = out["voicing"].unsqueeze(1)
    assert torch.all(out["restore"] <= voicing + 1e-6)  # nothing given back where the tracker hears no voice
    # the ambiguity gate takes nothing from a bin the separator was sure of
    gated = ResidualDDSPDecoder(SR, FR, composition="restore", ambiguity_gate="always", **TINY)
    gated.load_state_dict(model.state_dict())
    with torch.no_grad():
        r = gated.compute_restore(batch)
    ambiguity = separation_ambiguity(r["spec"].abs(), model.stft(mixture).abs())
    torch.testing.assert_close(r["restore"], out["restore"] * ambiguity)
    # the zero-initialised share learns
    fresh = ResidualDDSPDecoder(SR, FR, composition="restore", **TINY)
    (fresh(batch)["audio"] - target).square().mean().backward()
    assert fresh.restore_head.bias.grad.abs().max() > 0
    with pytest.raises(ValueError, match="reads the mixture"):
        fresh({k: v for k, v in batch.items() if k != "mixture_audio"})


def test_frame_ambiguity_is_the_energy_weighted_mean_and_its_moving_mean():
    gen = torch.Generator().manual_seed(0)
    magnitude = torch.rand(2, 5, 40, generator=gen, dtype=torch.float64)
    magnitude[:, :, 7] = 0.0  # a silent frame
    ambiguity = torch.rand(2, 5, 40, generator=gen, dtype=torch.float64)
    frame_rate = 10.0  # QUALITY_SMOOTHING_S = 2 s -> 21 frames
    q = frame_ambiguity(magnitude, ambiguity, frame_rate)
    assert q.shape == (2, 40, 2)
    energy = magnitude.numpy() ** 2
    with np.errstate(invalid="ignore"):
        per_frame = np.nan_to_num((ambiguity.numpy() * energy).sum(1) / energy.sum(1))
    np.testing.assert_allclose(q[..., 0].numpy(), per_frame, atol=1e-12)
    assert (q[:, 7, 0] == 0).all()
    half = int(round(QUALITY_SMOOTHING_S * frame_rate / 2))
    for t in (0, 5, 20, 39):  # frames beyond the ends are not counted
        lo, hi = max(0, t - half), min(40, t + half + 1)
        np.testing.assert_allclose(q[:, t, 1].numpy(), per_frame[:, lo:hi].mean(1), atol=1e-12)


def test_a_restore_share_that_reads_the_quality_follows_how_unsure_the_separator_was():
    torch.manual_seed(0)
    model = ResidualDDSPDecoder(SR, FR, composition="restore", restore_reads_quality=True, **TINY)
    batch = restore_batch()
    with torch.no_grad():
        out = model(batch)
    torch.testing.assert_close(out["audio"], batch["input_audio"], atol=1e-6, rtol=0)  # the identity at init
    # a head that reads only the frame's ambiguity: a share where the separator kept about half of each bin ...
    with torch.no_grad():
        model.restore_head.weight.zero_()
        model.restore_head.weight[:, -2] = 10.0
        unsure = model.compute_restore(batch)
    quality = frame_ambiguity(
        unsure["spec"].abs(),
        separation_ambiguity(unsure["spec"].abs(), model.stft(batch["mixture_audio"]).abs()),
        model.model_frame_rate,
    )
    torch.testing.assert_close(
        unsure["controls"]["restore_share"], (10.0 * quality[..., :1]).clamp(0, 1).expand(-1, -1, 16)
    )
    assert unsure["restore"].max() > 0.5
    # ... and none where it kept every bin whole (the mixture is the separated vocal: ambiguity 0)
    with torch.no_grad():
        sure = model.compute_restore(dict(batch, mixture_audio=batch["input_audio"]))
    assert (sure["controls"]["restore_share"] == 0).all() and (sure["restore"] == 0).all()
    # the share learns from the quality input
    fresh = ResidualDDSPDecoder(SR, FR, composition="restore", restore_reads_quality=True, **TINY)
    (fresh(batch)["audio"] - batch["target_audio"]).square().mean().backward()
    assert fresh.restore_head.weight.grad[:, -2:].abs().max() > 0
    with pytest.raises(ValueError, match="restore_reads_quality feeds the restore share"):
        ResidualDDSPDecoder(SR, FR, composition="mask", restore_reads_quality=True, **TINY)


def changing_mask_model() -> ResidualDDSPDecoder:
    """A ``mask`` model whose mask changes the vocal, as a trained one does (its residual head's bias set)."""
    plain = ResidualDDSPDecoder(SR, FR, composition="mask", **TINY)
    with torch.no_grad():
        plain.residual_head.bias.fill_(0.5)
    return plain


def test_a_learned_confidence_scales_the_masks_change_per_window():
    torch.manual_seed(0)
    batch = restore_batch()
    plain = changing_mask_model()
    confident = ResidualDDSPDecoder(SR, FR, composition="mask", learned_confidence=True, **TINY)
    missing, unexpected = confident.load_state_dict(plain.state_dict(), strict=False)
    assert all(name.startswith("confidence_head.") for name in missing) and missing and not unexpected
    with torch.no_grad():
        mask = plain.compute_mask(batch)["mask"]
        start = confident.compute_mask(batch)
    assert (mask - 1).abs().max() > 0.1
    torch.testing.assert_close(start["controls"]["confidence"], torch.full((2, 1), CONFIDENCE_AT_INIT))
    torch.testing.assert_close(start["mask"], 1 + CONFIDENCE_AT_INIT * (mask - 1))  # nearly the mask at init
    with torch.no_grad():
        confident.confidence_head[-1].bias.fill_(-math.log(CONFIDENCE_AT_INIT / (1 - CONFIDENCE_AT_INIT)) - math.log(3))
        quarter = confident.compute_mask(batch)["mask"]
        confident.confidence_head[-1].bias.fill_(-100.0)  # no confidence: the vocal left as it is
        out = confident(batch)
    torch.testing.assert_close(quarter, 1 + 0.25 * (mask - 1))
    torch.testing.assert_close(out["audio"], batch["input_audio"], atol=1e-6, rtol=0)
    fresh = ResidualDDSPDecoder(SR, FR, composition="mask", learned_confidence=True, **TINY)
    fresh.load_state_dict(plain.state_dict(), strict=False)
    (fresh(batch)["audio"] - batch["target_audio"]).square().mean().backward()
    assert fresh.confidence_head[-1].weight.grad.abs().max() > 0  # it learns
    with torch.no_grad():  # and it reads how unsure the separator was (none where the mixture is the vocal)
        fresh.confidence_head[-1].weight.normal_()
        unsure = fresh.compute_mask(batch)["controls"]["confidence"]
        sure = fresh.compute_mask(dict(batch, mixture_audio=batch["input_audio"]))["controls"]["confidence"]
    assert (unsure - sure).abs().max() > 1e-3
    with pytest.raises(ValueError, match="learned_confidence scales the mask composition's mask"):
        ResidualDDSPDecoder(SR, FR, composition="restore", learned_confidence=True, **TINY)


def test_abstain_below_leaves_windows_of_low_confidence_exactly_alone_when_refining():
    torch.manual_seed(0)
    batch = restore_batch()
    plain = changing_mask_model()
    with torch.no_grad():
        mask = plain.compute_mask(batch)["mask"]
    half_logit = -math.log(CONFIDENCE_AT_INIT / (1 - CONFIDENCE_AT_INIT))  # the head's bias giving a confidence of 0.5
    masks = {}
    for threshold in (0.4, 0.6):
        model = ResidualDDSPDecoder(
            SR, FR, composition="mask", learned_confidence=True, abstain_below=threshold, **TINY
        )
        model.load_state_dict(plain.state_dict(), strict=False)
        with torch.no_grad():
            model.confidence_head[-1].bias.fill_(half_logit)
            masks[threshold, "train"] = model.train().compute_mask(batch)["mask"]
            masks[threshold, "eval"] = model.eval().compute_mask(batch)["mask"]
            refined = model(batch)["audio"]
        assert model.compute_mask(batch)["controls"]["confidence"].allclose(torch.full((2, 1), 0.5))
    half = 1 + 0.5 * (mask - 1)
    for key in ((0.4, "train"), (0.4, "eval"), (0.6, "train")):  # training always learns through the confidence
        torch.testing.assert_close(masks[key], half)
    assert (masks[0.6, "eval"] == 1).all()  # 0.5 < 0.6: when refining, the window is left as it is
    torch.testing.assert_close(refined, batch["input_audio"], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="abstain_below must be in"):
        ResidualDDSPDecoder(SR, FR, composition="mask", learned_confidence=True, abstain_below=1.0, **TINY)
    with pytest.raises(ValueError, match="alone: needs learned_confidence"):
        ResidualDDSPDecoder(SR, FR, composition="mask", abstain_below=0.5, **TINY)


def test_the_harmonic_energy_share_is_the_energy_on_the_f0_combs_teeth():
    bin_hz = torch.arange(257, dtype=torch.float64) * 10.0  # 10 Hz bins
    f0 = torch.tensor([[200.0, 200.0, 0.0, 200.0]], dtype=torch.float64)
    magnitude = torch.zeros(1, 257, 4, dtype=torch.float64)
    magnitude[0, 20::20, 0] = 1.0  # on the harmonics of 200 Hz
    magnitude[0, 30::20, 1] = 1.0  # half-way between them
    magnitude[0, 20::20, 2] = 1.0  # unvoiced: 0 whatever the spectrum
    magnitude[0, 20::20, 3], magnitude[0, 30::20, 3] = 1.0, 1.0  # both: the harmonics hold half the energy
    share = harmonic_energy_share(magnitude, f0, bin_hz)
    between = math.exp(-0.5 * (100.0 / (HARMONICITY_WIDTH * 200.0)) ** 2)  # a Gaussian tooth 100 Hz away
    torch.testing.assert_close(share, torch.tensor([[1.0, between, 0.0, (1.0 + between) / 2]], dtype=torch.float64))
    silent = harmonic_energy_share(torch.zeros(1, 257, 1, dtype=torch.float64), f0[:, :1], bin_hz)
    assert silent.item() == 0.0
