"""``ResidualDDSPDecoder``: a DDSP model that refines a separated vocal instead of replacing it.

The network reads per-frame controls (F0 as normalised MIDI, voicing confidence, normalised loudness) and,
optionally, a learned encoding of the separated vocal's log-mel frames. An RnnFc decoder (as in DDSP: an FC
stack per input, a GRU, an FC stack) turns them into harmonic-plus-noise controls, which are composed with
the separated vocal in one of these ways:

``synth``
    pure resynthesis: harmonic synthesiser + filtered noise (+ optional learned reverb); the original
    baseline. Its oscillator phase cannot match the target's, which SI-SDR punishes.
``gate``
    a learned per-frame blend ``g * input + (1 - g) * synth`` with ``g = 1`` exactly at initialisation.
``mask``
    the synthesised harmonic and noise *spectra* (rendered directly on the STFT grid) become a
    time-frequency mask on the separated vocal's STFT, keeping its phase:
    ``log mask = softclamp(a(t) * (log S_synth - log |X|))`` with ``a(t) = 0`` at initialisation, so
    ``mask = 1`` exactly; ``a = 1`` gives the synthesised magnitude with the vocal's phase.

``harmonic``
    a suppression-only mask built around the F0 harmonics, with no synthesiser: in ``n_mask_bands``
    log-spaced bands the network sets a gain ``g`` (any frame) and a comb depth ``d`` and width ``w`` (voiced
    frames): ``mask = g * (1 - d * voicing * (1 - comb_w))``, where ``comb_w`` is 1 on the harmonics of F0 and
    falls as a Gaussian of standard deviation ``w`` Hz between them. ``g = 1`` and ``d = 0`` at
    initialisation, and the mask never exceeds 1: it can remove what lies between the harmonics or in a band,
    never add, so a wrong decision costs at most what it removes. A learned version of the comb filter of
    :mod:`ddsp_demucs.inference.comb` that can also leave a good separation alone.

``restore``
    the ``mask`` composition's mask, plus a learned share per band of the separator's accompaniment estimate (the
    mixture minus the separated vocal) on a comb around the F0 harmonics: vocal the separator left behind is given
    back (nothing at initialisation; :meth:`ResidualDDSPDecoder.compute_restore`).

``gate``, ``mask``, ``harmonic`` and ``restore`` are the identity before training (output == input vocal, bit-exact
up to float rounding in ``input + istft((mask - 1) * X)``), so a trained model is judged only by what it adds.

All network controls live on the model's frame grid: the centred STFT frames of ``mask_n_fft`` /
``mask_hop`` at ``sample_rate``, i.e. frame ``i`` is centred at ``i * hop / sample_rate`` seconds and
``n_model_frames = n_samples // hop + 1``. The dataset's controls (``n_frames = n_samples * frame_rate //
sample_rate``, frame ``j`` at ``j / frame_rate`` s) are interpolated onto that grid. This keeps harmonic,
noise, mask and audio encoder aligned in time (the original rendered 64,000 samples for 88,200-sample
windows), and runs the GRU at ``sample_rate / hop`` Hz (86 Hz at 22.05 kHz, hop 256) rather than 250 Hz.

Each composition is a class of :mod:`ddsp_demucs.model.compositions` (``model.composer``) that computes ``forward``
and refines a window of a song at another rate and channel count (moving masks and gates with
:func:`~ddsp_demucs.dsp.grids.interpolate_mask` / :func:`~ddsp_demucs.dsp.grids.interpolate_gate`, which map by time in
seconds and frequency in Hz).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ddsp_demucs.dsp import Reverb, filtered_noise, harmonic_synth, mask_ambiguity, separator_mask
from ddsp_demucs.dsp.grids import f0_to_grid, frames_to_grid, interpolate_gate, interpolate_mask
from ddsp_demucs.model.compositions import COMPOSITION_CLASSES

COMPOSITIONS = tuple(COMPOSITION_CLASSES)  # ("synth", "gate", "mask", "harmonic", "restore")
MASKS = ("mask", "restore")  # the compositions whose mask comes from the synthesised spectra (compute_mask)
MAGNITUDE_FLOOR = 1e-6  # added (in quadrature) to the synthetic magnitude of the mask composition
AMBIGUITY_GATES = ("off", "inference", "always")  # when the ambiguity gate applies (see ResidualDDSPDecoder)
GATE_SHAPES = ("symmetric", "suppress_bleed")  # how the ambiguity gate weighs the mask (see ResidualDDSPDecoder)
UNVOICED_CAPS = AMBIGUITY_GATES  # when the mask may not raise unvoiced frames (see ResidualDDSPDecoder)
HARMONIC_WIDTH_HZ = 30.0  # the harmonic composition's comb width (Gaussian standard deviation) at initialisation
LOWEST_BAND_HZ = 60.0  # centre of the harmonic composition's lowest band
QUALITY_SMOOTHING_S = 2.0  # span of the moving mean in frame_ambiguity (the restore share's quality input)
CONFIDENCE_AT_INIT = 0.98  # learned_confidence's share of the mask's change before it learns (a sigmoid's value)
CONFIDENCE_LOGIT_AT_INIT = math.log(CONFIDENCE_AT_INIT / (1 - CONFIDENCE_AT_INIT))  # added to the head's output
CONFIDENCE_UNITS = 64  # width of learned_confidence's FC stack
HARMONICITY_WIDTH = 0.125  # harmonic_energy_share's comb width (standard deviation) as a fraction of F0


# ------------------------------------------------------------------------------------------- pure helpers
def hz_to_midi(f0_hz: torch.Tensor) -> torch.Tensor:
    """MIDI note number of frequencies in Hz (any shape); values below 1 Hz are clamped to 1 Hz."""
    return 69.0 + 12.0 * torch.log2(f0_hz.clamp_min(1.0) / 440.0)


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7):
    """DDSP's scaled sigmoid ``max_value * sigmoid(x) ** log(exponent) + threshold``: a positive amplitude."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def hann_lobe(delta: torch.Tensor) -> torch.Tensor:
    """Normalised magnitude of a periodic Hann window's transform at ``delta`` bins from a sinusoid.

    ``sinc(delta) / (1 - delta**2)``: 1 at 0, 0.5 at +-1, 0 for ``|delta| >= 2``; any shape.
    """
    d2 = 1.0 - delta * delta
    near = d2.abs() < 1e-4
    safe = torch.where(near, torch.ones_like(d2), d2)
    value = torch.where(near, torch.full_like(d2, 0.5), torch.sinc(delta) / safe)
    return torch.where(delta.abs() < 2.0, value, torch.zeros_like(value))


def harmonic_spectrum(
    f0_hz: torch.Tensor, harmonic_amplitudes: torch.Tensor, *, sample_rate: int, n_fft: int
) -> torch.Tensor:
    """Expected STFT magnitude of a sum of harmonics, rendered directly on the STFT grid.

    ``f0_hz (batch, n_frames)`` in Hz; ``harmonic_amplitudes (batch, n_frames, n_harmonics)`` linear peak
    amplitudes of harmonic ``k * f0`` (0 at or above Nyquist) -> ``(batch, n_frames, n_fft // 2 + 1)``,
    in the units of ``torch.stft(..., window=hann_window(n_fft), center=True)`` magnitudes: a sinusoid of
    amplitude A on bin centre reads ``A * n_fft / 4``. Each harmonic spreads over the 4 bins of the Hann
    main lobe; harmonics add in magnitude (their relative phases are ignored). Differentiable in both inputs.
    """
    n_bins = n_fft // 2 + 1
    n_h = harmonic_amplitudes.shape[-1]
    k = torch.arange(1, n_h + 1, device=f0_hz.device, dtype=f0_hz.dtype)
    pos = f0_hz.unsqueeze(-1) * k * (n_fft / sample_rate)  # fractional bin, (b, t, k)
    amp = harmonic_amplitudes * (n_fft / 4.0)
    base = pos.detach().floor()
    out = harmonic_amplitudes.new_zeros(*harmonic_amplitudes.shape[:-1], n_bins)
    for offset in (-1, 0, 1, 2):
        idx = base + offset
        valid = (idx >= 0) & (idx < n_bins)
        contrib = amp * hann_lobe(idx - pos) * valid
        out = out.scatter_add(-1, idx.clamp(0, n_bins - 1).long(), contrib)
    return out


def noise_spectrum(noise_magnitudes: torch.Tensor, *, n_fft: int) -> torch.Tensor:
    """Expected STFT magnitude (RMS) of ``filtered_noise`` with the given band magnitudes.

    ``noise_magnitudes (batch, n_frames, n_bands)`` on bands spaced linearly from 0 Hz to Nyquist ->
    ``(batch, n_frames, n_fft // 2 + 1)``: uniform noise in [-1, 1] (variance 1/3) through gain ``|H|``
    under a Hann window of ``n_fft`` (sum of squares ``3 n_fft / 8``) reads ``|H| * sqrt(n_fft / 8)``.
    """
    b, t, n_bands = noise_magnitudes.shape
    n_bins = n_fft // 2 + 1
    if n_bands == 1:
        gains = noise_magnitudes.expand(b, t, n_bins)
    else:
        gains = F.interpolate(
            noise_magnitudes.reshape(b * t, 1, n_bands), size=n_bins, mode="linear", align_corners=True
        ).reshape(b, t, n_bins)
    return gains * math.sqrt(n_fft / 8.0)


def straight_through_unit(x: torch.Tensor) -> torch.Tensor:
    """``clamp(x, 0, 1)`` with the identity's gradient, so a zero-initialised output can leave 0."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


def band_interpolation(n_bins: int, sample_rate: int, n_bands: int) -> torch.Tensor:
    """``(n_bins, n_bands)`` weights that spread per-band values to STFT bins: linear in log frequency between
    band centres log-spaced from :data:`LOWEST_BAND_HZ` to Nyquist, constant beyond the outer centres; each row
    sums to 1."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_bins, dtype=torch.float64).clamp_min(1.0).log()
    if n_bands == 1:
        return torch.ones(n_bins, 1)
    centres = torch.linspace(math.log(LOWEST_BAND_HZ), math.log(sample_rate / 2), n_bands, dtype=torch.float64)
    position = ((freqs - centres[0]) / (centres[1] - centres[0])).clamp(0, n_bands - 1)
    low = position.floor().long().clamp(max=n_bands - 2)
    frac = position - low
    weights = torch.zeros(n_bins, n_bands, dtype=torch.float64)
    weights[torch.arange(n_bins), low] = 1 - frac
    weights[torch.arange(n_bins), low + 1] += frac
    return weights.float()


def harmonic_comb(f0_hz: torch.Tensor, width_hz: torch.Tensor, bin_hz: torch.Tensor) -> torch.Tensor:
    """Gaussian comb on the harmonics of F0: ``exp(-0.5 (distance to the nearest harmonic / width)^2)``.

    ``f0_hz (batch, n_frames)`` (0 where unvoiced: the comb is then 0 everywhere but at 0 Hz);
    ``width_hz (batch, n_bins, n_frames)`` > 0; ``bin_hz (n_bins,)`` -> ``(batch, n_bins, n_frames)`` in [0, 1].
    Bins below half the F0 are measured from 0 Hz (no harmonic there), so they fall off as well.
    """
    f0 = f0_hz.unsqueeze(1)  # (b, 1, t)
    f = bin_hz.view(1, -1, 1)
    nearest = torch.where(f0 > 0, torch.round(f / f0.clamp_min(1.0)), torch.zeros_like(f0))
    distance = torch.where(nearest > 0, f - nearest * f0, f)
    return torch.exp(-0.5 * (distance / width_hz).square())


def harmonic_energy_share(magnitude: torch.Tensor, f0_hz: torch.Tensor, bin_hz: torch.Tensor) -> torch.Tensor:
    """How much of each frame's energy lies on the harmonics of the tracked F0: ``(batch, n_frames)`` in [0, 1],
    the share of ``magnitude ** 2 (batch, n_bins, n_frames)`` under a Gaussian comb of standard deviation
    :data:`HARMONICITY_WIDTH` times F0 (:func:`harmonic_comb`; ``bin_hz (n_bins,)``); 0 where ``f0_hz (batch,
    n_frames)`` is 0 or the frame silent. A wrong F0 (or a breathy voice) puts less of a voice's energy there."""
    comb = harmonic_comb(f0_hz, HARMONICITY_WIDTH * f0_hz.clamp_min(1.0).unsqueeze(1), bin_hz)
    energy = magnitude.square()
    share = (comb * energy).sum(1) / energy.sum(1).clamp_min(torch.finfo(energy.dtype).tiny)
    return torch.where(f0_hz > 0, share, torch.zeros_like(share))


def frame_ambiguity(magnitude: torch.Tensor, ambiguity: torch.Tensor, frame_rate: float) -> torch.Tensor:
    """How unsure the separator was in each frame: ``(batch, n_frames, 2)``, the separation ``ambiguity (batch,
    n_bins, n_frames)`` averaged over the bins weighted by the input's energy ``magnitude ** 2`` (same shape; 0 in
    a silent frame), and that value's mean over the :data:`QUALITY_SMOOTHING_S` around each frame (frames beyond
    the ends not counted). Both in [0, 1]."""
    energy = magnitude.square()
    per_frame = (ambiguity * energy).sum(1) / energy.sum(1).clamp_min(torch.finfo(energy.dtype).tiny)
    span = 2 * int(round(QUALITY_SMOOTHING_S * frame_rate / 2)) + 1  # odd: centred
    smooth = F.avg_pool1d(per_frame.unsqueeze(1), span, stride=1, padding=span // 2, count_include_pad=False)
    return torch.stack([per_frame, smooth.squeeze(1)], dim=-1)


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smooth clamp to ``(low, high)`` with ``low < 0 < high``: ``high*tanh(x/high)`` above 0,
    ``low*tanh(x/low)`` below; identity with slope 1 at 0 (so 0 maps to exactly 0)."""
    return torch.where(x >= 0, high * torch.tanh(x / high), low * torch.tanh(x / low))


# ------------------------------------------------------------------------------------------------ modules
def fc_stack(in_size: int, hidden: int, n_layers: int) -> nn.Sequential:
    """DDSP's FC stack: ``n_layers`` x (Linear, LayerNorm, LeakyReLU)."""
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(in_size if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class LogMelEncoder(nn.Module):
    """A GRU over the log-mel frames of the separated vocal: ``(batch, n_bins, n_frames)`` STFT magnitude
    -> ``(batch, n_frames, units)`` (timbre and bleed the F0/loudness controls do not show)."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, units: int):
        super().__init__()
        import librosa

        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=40.0, fmax=sample_rate / 2)
        self.register_buffer("mel_fb", torch.as_tensor(fb, dtype=torch.float32), persistent=False)
        self.norm = nn.LayerNorm(n_mels)
        self.gru = nn.GRU(n_mels, units, batch_first=True)

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        mel = torch.einsum("mf,bft->btm", self.mel_fb.to(magnitude.dtype), magnitude)
        out, _ = self.gru(self.norm(torch.log(mel + 1e-4)))
        return out


class RnnFcDecoder(nn.Module):
    """DDSP's RnnFcDecoder: an FC stack per input, concatenated, a GRU, the inputs again, an FC stack.

    ``inputs``: list of ``(batch, n_frames, dim_i)`` -> ``(batch, n_frames, hidden)``.
    """

    def __init__(self, input_sizes: list[int], hidden: int, gru_units: int, n_layers: int):
        super().__init__()
        self.in_stacks = nn.ModuleList(fc_stack(size, hidden, n_layers) for size in input_sizes)
        self.gru = nn.GRU(hidden * len(input_sizes), gru_units, batch_first=True)
        self.out_stack = fc_stack(gru_units + hidden * len(input_sizes), hidden, n_layers)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        hs = [stack(x) for stack, x in zip(self.in_stacks, inputs)]
        h = torch.cat(hs, dim=-1)
        g, _ = self.gru(h)
        return self.out_stack(torch.cat([h, g], dim=-1))


class ResidualDDSPDecoder(nn.Module):
    """Residual DDSP refinement of a separated vocal (mono, ``sample_rate``).

    Args:
        sample_rate: model rate in Hz (the dataset's ``train_sr``).
        frame_rate: rate of the dataset's frame controls in Hz (``f0_hz``, ``f0_confidence``, ``loudness_db``).
        n_harmonics: harmonics of the additive synthesiser.
        n_noise_bands: filtered-noise bands, linear from 0 Hz to Nyquist.
        composition: ``"synth"``, ``"gate"``, ``"mask"``, ``"harmonic"`` or ``"restore"`` (see the module docstring).
        hidden_size, gru_units, n_fc_layers: decoder sizes.
        use_audio_encoder: feed a GRU encoding of the input vocal's log-mel frames (``n_mels``,
            ``encoder_units``) to the decoder.
        use_accompaniment_encoder: also feed an encoding of the separator's accompaniment estimate, the mixture
            minus the input vocal (the batch's ``mixture_audio (batch, n_samples)``, which ``refine`` always has):
            where the rest of the song is loud, the separated vocal is likely to hold some of it.
        ambiguity_gate: (``mask``, ``harmonic``) ``"inference"`` or ``"always"``: let the mask act only where the
            separator was unsure: the mask applied is ``1 + a (mask - 1)`` with ``a`` the separation ambiguity
            ``4 m (1 - m)`` of the separator's own mask ``m = |input| / |mixture|`` in each bin
            (:func:`~ddsp_demucs.dsp.separation_ambiguity`; needs ``mixture_audio`` like the accompaniment
            encoder). A bin the separator gave wholly to the vocal, or wholly to the accompaniment, is left exactly
            as it is. ``"inference"``: in eval mode only (refine, evaluation, validation), so the network learns
            unrestricted; ``"always"``: also while training; ``"off"``: never.
        gate_shape: how the ambiguity gate weighs the mask where it acts: ``"symmetric"``, by ``4 m (1 - m)``
            in every bin; ``"suppress_bleed"``, the same, except that a lowering of a bin the separator gave mostly
            to the accompaniment (``m < 0.5``) acts in full: by the separator's own account what is left there is
            bleed (a separator that leaves a floor of accompaniment everywhere is unsure of none of it).
        unvoiced_cap: (``mask``) ``"inference"`` or ``"always"``: in frames the F0 tracker calls unvoiced
            (``voicing`` below 0.5) the mask is capped at 1, so it may lower the vocal there but never raise it
            (breaths and consonants the separator kept are not boosted toward what the network guesses); when it
            applies, as for ``ambiguity_gate``.
        restore_reads_quality: (``restore``) the head of the share given back also reads how unsure the
            separator was: each frame's separation ambiguity, weighted by the input's energy, and its mean over
            :data:`QUALITY_SMOOTHING_S` around the frame (:func:`frame_ambiguity`; needs ``mixture_audio``), so the
            share can follow the separation's quality (poor separations leave more of the vocal in the
            accompaniment estimate).
        learned_confidence: (``mask``) one confidence ``c`` in (0, 1) per window (per example of the batch), and the
            mask applied (after gate and cap) is ``1 + c (mask - 1)``: a learned ``refine --strength``. A head reads,
            in each frame, the decoder's state, the same two quality inputs and how much of the input's energy lies
            on the tracked F0's harmonics (:func:`harmonic_energy_share`); ``c`` is the sigmoid of its mean over the
            window's frames (:data:`CONFIDENCE_AT_INIT` at initialisation). Meant to be trained alone beside a
            trained mask (``training.trainable=[confidence_head]``), so that the windows' own "did the mask help"
            teaches it where to back off (``controls["confidence"] (batch, 1)``; needs ``mixture_audio``).
        abstain_below: (with ``learned_confidence``) in eval mode (refine, evaluation, validation), a window whose
            confidence is below this is left exactly as it is (the confidence applied is 0) rather than changed a
            little: a window the head doubts gains little and may lose; 0 (default): never. Training is unchanged.
        reverb, reverb_length: learned reverb (samples) on the synthesised audio (``synth``/``gate`` only;
            a reverb tail is not a per-frame spectrum, so ``mask`` does not use it).
        mask_n_fft, mask_hop: the STFT that defines the model frame grid, the audio encoder and the mask.
        voicing_threshold: confidence at which harmonics are half faded; they fade smoothly around it.
        loudness_mean_db, loudness_std_db: normalisation of ``loudness_db`` for the network.
        mask_min, mask_max: the mask's range (soft-clamped in the log domain).
        n_mask_bands: bands of the ``harmonic`` composition's gain, comb depth and comb width.

    ``forward(batch)`` takes a dict with ``input_audio (batch, n_samples)``, ``f0_hz``, ``f0_confidence``,
    ``loudness_db`` (each ``(batch, n_frames)``; ``n_frames = n_samples * frame_rate // sample_rate``) and
    returns a dict with ``audio (batch, n_samples)`` and the controls used, all on the model frame grid
    ``(batch, n_model_frames[, dims])``: ``f0_hz``, ``voicing``, ``amplitudes``, ``harmonic_distribution``,
    ``noise_magnitudes``, plus ``gate`` (gate), ``mask`` ``(batch, n_bins, n_model_frames)`` (mask), and
    ``harmonic_audio``/``noise_audio`` ``(batch, n_samples)`` (synth, gate).
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        frame_rate: int = 250,
        n_harmonics: int = 64,
        n_noise_bands: int = 65,
        composition: Literal["synth", "gate", "mask", "harmonic", "restore"] = "mask",
        *,
        hidden_size: int = 256,
        gru_units: int = 256,
        n_fc_layers: int = 2,
        use_audio_encoder: bool = True,
        use_accompaniment_encoder: bool = False,
        ambiguity_gate: Literal["off", "inference", "always"] = "off",
        gate_shape: Literal["symmetric", "suppress_bleed"] = "symmetric",
        unvoiced_cap: Literal["off", "inference", "always"] = "off",
        restore_reads_quality: bool = False,
        learned_confidence: bool = False,
        abstain_below: float = 0.0,
        n_mels: int = 64,
        encoder_units: int = 128,
        reverb: bool = True,
        reverb_length: int = 8192,
        mask_n_fft: int = 1024,
        mask_hop: int = 256,
        voicing_threshold: float = 0.5,
        loudness_mean_db: float = -40.0,
        loudness_std_db: float = 20.0,
        mask_min: float = 1e-3,
        mask_max: float = 4.0,
        n_mask_bands: int = 16,
    ):
        arguments = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        if composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {composition!r}")
        for name, value in (
            ("sample_rate", sample_rate),
            ("frame_rate", frame_rate),
            ("n_harmonics", n_harmonics),
            ("n_noise_bands", n_noise_bands),
            ("mask_n_fft", mask_n_fft),
            ("mask_hop", mask_hop),
            ("n_mask_bands", n_mask_bands),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if mask_hop > mask_n_fft:
            raise ValueError(f"mask_hop ({mask_hop}) must not exceed mask_n_fft ({mask_n_fft})")
        if not 0 < mask_min < 1 < mask_max:
            raise ValueError(f"need 0 < mask_min < 1 < mask_max, got {mask_min}, {mask_max}")
        self.init_args = arguments  # the constructor's arguments, for self-describing checkpoints
        self.sample_rate, self.frame_rate = int(sample_rate), float(frame_rate)
        self.n_harmonics, self.n_noise_bands = n_harmonics, n_noise_bands
        self.composition = composition
        if ambiguity_gate not in AMBIGUITY_GATES:
            raise ValueError(f"ambiguity_gate must be one of {', '.join(AMBIGUITY_GATES)}, got {ambiguity_gate!r}")
        if ambiguity_gate != "off" and composition not in (*MASKS, "harmonic"):
            raise ValueError(
                f"ambiguity_gate weighs a mask: composition 'mask', 'restore' or 'harmonic', not {composition!r}"
            )
        self.ambiguity_gate = ambiguity_gate
        if gate_shape not in GATE_SHAPES:
            raise ValueError(f"gate_shape must be one of {', '.join(GATE_SHAPES)}, got {gate_shape!r}")
        self.gate_shape = gate_shape
        if unvoiced_cap not in UNVOICED_CAPS:
            raise ValueError(f"unvoiced_cap must be one of {', '.join(UNVOICED_CAPS)}, got {unvoiced_cap!r}")
        if unvoiced_cap != "off" and composition not in MASKS:
            raise ValueError(
                f"unvoiced_cap caps a mask that can exceed 1: composition 'mask' or 'restore', not {composition!r}"
            )
        self.unvoiced_cap = unvoiced_cap
        if restore_reads_quality and composition != "restore":
            raise ValueError(
                f"restore_reads_quality feeds the restore share: composition 'restore', not {composition!r}"
            )
        self.restore_reads_quality = restore_reads_quality
        if learned_confidence and composition != "mask":
            raise ValueError(f"learned_confidence scales the mask composition's mask, not {composition!r}'s")
        if not 0.0 <= abstain_below < 1.0:
            raise ValueError(f"abstain_below must be in [0, 1), got {abstain_below!r}")
        if abstain_below > 0 and not learned_confidence:
            raise ValueError("abstain_below leaves windows of low learned confidence alone: needs learned_confidence")
        self.abstain_below = float(abstain_below)
        self.composer = COMPOSITION_CLASSES[composition]()  # forward and song windows of this composition
        self.n_fft, self.hop = mask_n_fft, mask_hop
        self.voicing_threshold = voicing_threshold
        self.loudness_mean_db, self.loudness_std_db = loudness_mean_db, loudness_std_db
        self.log_mask_min, self.log_mask_max = math.log(mask_min), math.log(mask_max)
        self.register_buffer("window", torch.hann_window(mask_n_fft), persistent=False)

        self.encoder = LogMelEncoder(sample_rate, mask_n_fft, n_mels, encoder_units) if use_audio_encoder else None
        self.accompaniment_encoder = (
            LogMelEncoder(sample_rate, mask_n_fft, n_mels, encoder_units) if use_accompaniment_encoder else None
        )
        sizes = [1, 1, 1] + [encoder_units] * (int(use_audio_encoder) + int(use_accompaniment_encoder))
        self.decoder = RnnFcDecoder(sizes, hidden_size, gru_units, n_fc_layers)
        synthesises = composition != "harmonic"
        self.amp_head = nn.Linear(hidden_size, 1 + n_harmonics) if synthesises else None
        self.noise_head = nn.Linear(hidden_size, n_noise_bands) if synthesises else None
        self.reverb = Reverb(reverb_length) if (reverb and composition in ("synth", "gate")) else None
        # The residual heads start at exactly zero, so gate == 1 / mask == 1: the identity.
        self.residual_head = nn.Linear(hidden_size, 1) if composition in ("gate", *MASKS) else None
        # harmonic: gain, comb depth and log comb width per band, zero at init (gain 1, depth 0: the identity)
        self.band_head = nn.Linear(hidden_size, 3 * n_mask_bands) if composition == "harmonic" else None
        # restore: the share of the accompaniment estimate given back per band, zero at init (nothing given back)
        restore_inputs = hidden_size + (2 if restore_reads_quality else 0)
        self.restore_head = nn.Linear(restore_inputs, n_mask_bands) if composition == "restore" else None
        # learned_confidence: the share of the mask's change applied, CONFIDENCE_AT_INIT at init (an FC stack, so
        # that it can weigh the decoder's state against the separation's quality, and a zero-initialised output)
        self.confidence_head = (
            nn.Sequential(fc_stack(hidden_size + 3, CONFIDENCE_UNITS, 2), nn.Linear(CONFIDENCE_UNITS, 1))
            if learned_confidence
            else None
        )
        confidence_out = None if self.confidence_head is None else self.confidence_head[-1]
        for head in (self.residual_head, self.band_head, self.restore_head, confidence_out):
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        self.n_mask_bands = n_mask_bands
        n_bins = mask_n_fft // 2 + 1
        harmonic = composition in ("harmonic", "restore")  # the band and bin grids only their combs use
        band_weights = band_interpolation(n_bins, sample_rate, n_mask_bands) if harmonic else None
        combs = harmonic or learned_confidence
        bin_hz = torch.arange(n_bins) * (sample_rate / mask_n_fft) if combs else None
        self.register_buffer("band_weights", band_weights, persistent=False)
        self.register_buffer("bin_hz", bin_hz, persistent=False)

    # ------------------------------------------------------------------------------------------ helpers
    def n_model_frames(self, n_samples: int) -> int:
        """Frames of the model grid for ``n_samples``: ``n_samples // mask_hop + 1`` (centred STFT frames)."""
        return n_samples // self.hop + 1

    @property
    def model_frame_rate(self) -> float:
        """Rate of the model frame grid in Hz (``sample_rate / mask_hop``)."""
        return self.sample_rate / self.hop

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Centred Hann STFT ``(batch, n_samples)`` -> complex ``(batch, n_fft // 2 + 1, n_model_frames)``."""
        return torch.stft(
            audio, self.n_fft, self.hop, window=self.window.to(audio.dtype), center=True, return_complex=True
        )

    def istft(self, spec: torch.Tensor, n_samples: int) -> torch.Tensor:
        return torch.istft(
            spec, self.n_fft, self.hop, window=self.window.to(spec.real.dtype), center=True, length=n_samples
        )

    @property
    def reads_mixture(self) -> bool:
        """Whether the batch must hold ``mixture_audio`` (and ``refine`` the song's mixture)."""
        return (
            self.accompaniment_encoder is not None
            or self.ambiguity_gate != "off"
            or self.composition == "restore"
            or self.confidence_head is not None
        )

    @property
    def reads_quality(self) -> bool:
        """Whether a head reads the separation's quality per frame (:func:`frame_ambiguity`)."""
        return self.restore_reads_quality or self.confidence_head is not None

    def applies_now(self, setting: str) -> bool:
        """Whether a ``"off"`` / ``"inference"`` / ``"always"`` setting acts in the current mode."""
        return setting == "always" or (setting == "inference" and not self.training)

    def applied_confidence(self, confidence: torch.Tensor) -> torch.Tensor:
        """The share of the mask's change applied per window, ``(batch, 1)``: the learned ``confidence``, or 0 where
        it is below ``abstain_below`` in eval mode."""
        if self.training or self.abstain_below <= 0:
            return confidence
        return torch.where(confidence < self.abstain_below, torch.zeros_like(confidence), confidence)

    def separator_mask(self, magnitude: torch.Tensor, batch: dict) -> torch.Tensor:
        """The separator's effective mask ``(batch, n_bins, n_model_frames)``
        (:func:`~ddsp_demucs.dsp.separator_mask`) of the input's STFT ``magnitude`` against the batch's mixture."""
        mixture = self.stft(batch["mixture_audio"].to(magnitude.dtype)).abs()
        return separator_mask(magnitude, mixture)

    def gate(self, mask: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
        """``mask (batch, n_bins, n_model_frames)`` moved toward 1 where the separator was sure, as ``gate_shape``
        says, given its effective mask ``kept`` (:meth:`separator_mask`; the mask itself where that is None)."""
        if kept is None:
            return mask
        weight = mask_ambiguity(kept)
        if self.gate_shape == "suppress_bleed":
            weight = torch.where((mask < 1.0) & (kept < 0.5), torch.ones_like(weight), weight)
        return 1.0 + weight * (mask - 1.0)

    def check_batch(self, batch: dict) -> tuple[torch.Tensor, int]:
        missing = [k for k in ("input_audio", "f0_hz", "f0_confidence", "loudness_db") if k not in batch]
        if missing:
            raise ValueError(
                f"batch is missing {', '.join(missing)} (need input_audio, f0_hz, f0_confidence, loudness_db)"
            )
        audio = batch["input_audio"]
        if audio.dim() == 1:
            raise ValueError("input_audio must be (batch, n_samples); got a 1-D tensor (add a batch dim)")
        if audio.dim() != 2:
            raise ValueError(f"input_audio must be (batch, n_samples), got shape {tuple(audio.shape)}")
        if self.reads_mixture:
            mixture = batch.get("mixture_audio")
            if mixture is None or mixture.shape != audio.shape:
                got = "none" if mixture is None else tuple(mixture.shape)
                raise ValueError(f"this model reads the mixture: need mixture_audio {tuple(audio.shape)}, got {got}")
        for key in ("f0_hz", "f0_confidence", "loudness_db"):
            if batch[key].dim() != 2 or batch[key].shape[0] != audio.shape[0]:
                raise ValueError(
                    f"{key} must be (batch, n_frames) with batch {audio.shape[0]}, got {tuple(batch[key].shape)}"
                )
        return audio, audio.shape[-1]

    # ------------------------------------------------------------------------------------------ controls
    def frame_state(self, batch: dict, magnitude: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """The decoder's hidden state ``(batch, n_model_frames, hidden_size)`` and the input controls on the model
        frame grid (``f0_hz``, ``f0_confidence``, ``loudness_db``, ``voicing``: each ``(batch, n_model_frames)``);
        ``magnitude`` is the input's STFT magnitude ``(batch, n_bins, n_model_frames)`` if already computed."""
        audio, n_samples = self.check_batch(batch)
        n_frames = self.n_model_frames(n_samples)
        times = torch.arange(n_frames, device=audio.device, dtype=audio.dtype) * (self.hop / self.sample_rate)
        f0 = f0_to_grid(batch["f0_hz"].to(audio.dtype), self.frame_rate, times)
        conf = frames_to_grid(batch["f0_confidence"].to(audio.dtype), self.frame_rate, times).clamp(0, 1)
        loud = frames_to_grid(batch["loudness_db"].to(audio.dtype), self.frame_rate, times)

        voiced = f0 > 0
        f0_in = torch.where(voiced, (hz_to_midi(f0) - 60.0) / 24.0, torch.zeros_like(f0))
        loud_in = (loud - self.loudness_mean_db) / self.loudness_std_db
        inputs = [f0_in.unsqueeze(-1), conf.unsqueeze(-1), loud_in.unsqueeze(-1)]
        if self.encoder is not None:
            if magnitude is None:
                magnitude = self.stft(audio).abs()
            inputs.append(self.encoder(magnitude))
        if self.accompaniment_encoder is not None:
            inputs.append(self.accompaniment_encoder(self.stft(batch["mixture_audio"].to(audio.dtype) - audio).abs()))
        # Harmonics fade out smoothly as the confidence drops below the threshold, and vanish where F0 is 0.
        voicing = torch.sigmoid((conf - self.voicing_threshold) * 12.0) * voiced
        return self.decoder(inputs), dict(f0_hz=f0, f0_confidence=conf, loudness_db=loud, voicing=voicing)

    def controls(self, batch: dict, magnitude: torch.Tensor | None = None, quality: torch.Tensor | None = None) -> dict:
        """Network controls on the model frame grid (see the class docstring) of a synthesising composition;
        ``magnitude`` as in :meth:`frame_state`; ``quality (batch, n_model_frames, 2)`` from
        :func:`frame_ambiguity`, which the restore share (where ``restore_reads_quality``) and the confidence
        (where ``learned_confidence``) read."""
        if self.amp_head is None:
            raise ValueError(f"the {self.composition!r} composition has no synthesiser controls")
        h, state = self.frame_state(batch, magnitude)
        audio, f0, voicing = batch["input_audio"], state["f0_hz"], state["voicing"]
        raw = self.amp_head(h)
        amplitudes = exp_sigmoid(raw[..., 0]) * voicing
        # Distribution: one softmax over the harmonics below Nyquist (normalised once, no second squashing).
        k = torch.arange(1, self.n_harmonics + 1, device=audio.device, dtype=audio.dtype)
        below = f0.unsqueeze(-1) * k < self.sample_rate / 2
        logits = raw[..., 1:].masked_fill(~below, float("-inf"))
        dist = torch.softmax(logits, dim=-1)
        dist = torch.nan_to_num(dist, nan=0.0)  # frames with no harmonic below Nyquist (never for voice)
        noise = exp_sigmoid(self.noise_head(h) - 5.0)
        out = dict(
            **state,
            amplitudes=amplitudes,
            harmonic_distribution=dist,
            noise_magnitudes=noise,
        )
        if self.residual_head is not None:
            out["residual"] = self.residual_head(h).squeeze(-1)
        if self.restore_head is not None:
            head_input = h if quality is None else torch.cat([h, quality.to(h.dtype)], dim=-1)
            if head_input.shape[-1] != self.restore_head.in_features:
                raise ValueError("restore_reads_quality: the restore share needs the separation quality")
            out["restore_share"] = straight_through_unit(self.restore_head(head_input))  # (batch, frames, bands)
        if self.confidence_head is not None:
            if quality is None or magnitude is None:
                raise ValueError("learned_confidence: the confidence needs the separation quality and the magnitude")
            share = harmonic_energy_share(magnitude, f0, self.bin_hz.to(magnitude.dtype))
            head_input = torch.cat([h, quality.to(h.dtype), share.unsqueeze(-1).to(h.dtype)], dim=-1)
            logits = self.confidence_head(head_input).squeeze(-1)  # (batch, n_model_frames)
            # (batch, 1): one per window, CONFIDENCE_AT_INIT while the head's output is still zero
            out["confidence"] = torch.sigmoid(logits.mean(-1, keepdim=True) + CONFIDENCE_LOGIT_AT_INIT)
        return out

    def compute_mask(self, batch: dict) -> dict:
        """The TF mask of the ``mask`` composition for a batch at the model rate.

        Returns ``mask (batch, mask_n_fft // 2 + 1, n_model_frames)`` (linear gain, in ``[mask_min, mask_max]``,
        exactly 1 at initialisation), its grid ``sample_rate``, ``n_fft``, ``hop`` (centred Hann STFT;
        frame ``i`` at ``i * hop / sample_rate`` s, bin ``f`` at ``f * sample_rate / n_fft`` Hz), the input STFT
        ``spec``, the ``controls`` and the separation ``ambiguity`` the mask was gated by (None where the
        ambiguity gate does not act). Apply to another rate's STFT with :func:`interpolate_mask`.
        """
        if self.composition not in MASKS:
            raise ValueError(f"compute_mask needs composition 'mask' or 'restore', not {self.composition!r}")
        audio, _ = self.check_batch(batch)
        spec = self.stft(audio)
        magnitude = spec.abs()
        gate_acts = self.applies_now(self.ambiguity_gate)
        kept = self.separator_mask(magnitude, batch) if gate_acts or self.reads_quality else None
        ambiguity = None if kept is None else mask_ambiguity(kept)
        quality = frame_ambiguity(magnitude, ambiguity, self.model_frame_rate) if self.reads_quality else None
        c = self.controls(batch, magnitude, quality)
        kept, ambiguity = (kept, ambiguity) if gate_acts else (None, None)  # what the mask is gated by
        harm = harmonic_spectrum(
            c["f0_hz"],
            c["amplitudes"].unsqueeze(-1) * c["harmonic_distribution"],
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
        )
        noise = noise_spectrum(c["noise_magnitudes"], n_fft=self.n_fft)
        # in float32 with a floor: d sqrt(x)/dx is infinite at 0, where a silent bin's magnitude sits (NaN under
        # half-precision autocast, where a float32-sized floor would also round to 0)
        synth_mag = torch.sqrt(harm.float().square() + noise.float().square() + MAGNITUDE_FLOOR**2)
        eps = 1e-3
        log_ratio = torch.log(synth_mag.transpose(1, 2) + eps) - torch.log(magnitude + eps)
        u = c["residual"].unsqueeze(1) * log_ratio  # (b, bins, frames); exactly 0 at init
        mask = self.gate(torch.exp(soft_clamp(u, self.log_mask_min, self.log_mask_max)), kept)
        if self.applies_now(self.unvoiced_cap):  # no boost in unvoiced frames (``unvoiced_cap``)
            unvoiced = (c["voicing"] < 0.5).unsqueeze(1)  # (batch, 1, n_model_frames)
            mask = torch.where(unvoiced, mask.clamp(max=1.0), mask)
        if "confidence" in c:  # the learned share of the change in this window (``learned_confidence``)
            mask = 1.0 + self.applied_confidence(c["confidence"]).unsqueeze(1) * (mask - 1.0)
        c["synth_magnitude"] = synth_mag
        return dict(
            mask=mask,
            ambiguity=ambiguity,
            spec=spec,
            controls=c,
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop=self.hop,
        )

    def compute_restore(self, batch: dict) -> dict:
        """The mask of :meth:`compute_mask` and what the ``restore`` composition gives back of the accompaniment
        estimate (the mixture minus the input vocal): ``restore (batch, mask_n_fft // 2 + 1, n_model_frames)`` in
        [0, 1], exactly 0 at initialisation: a learned share per band (``controls["restore_share"]``) on a Gaussian
        comb of :data:`HARMONIC_WIDTH_HZ` around the F0's harmonics, scaled by the voicing and, where the
        ambiguity gate acts, by the separation ambiguity the mask was gated by (nothing is taken from a bin the
        separator was sure of); ``accompaniment_spec``, that estimate's STFT on the mask's grid."""
        if self.composition != "restore":
            raise ValueError(f"compute_restore needs composition 'restore', not {self.composition!r}")
        m = self.compute_mask(batch)
        c, spec = m["controls"], m["spec"]
        dtype = spec.real.dtype
        mixture_spec = self.stft(batch["mixture_audio"].to(dtype))
        share = torch.einsum("fk,btk->bft", self.band_weights.to(dtype), c["restore_share"])
        comb = harmonic_comb(c["f0_hz"], torch.tensor(HARMONIC_WIDTH_HZ, dtype=dtype), self.bin_hz.to(dtype))
        restore = share * comb * c["voicing"].unsqueeze(1)
        if m["ambiguity"] is not None:  # the mask's own gate
            restore = restore * m["ambiguity"]
        return dict(m, restore=restore, accompaniment_spec=mixture_spec - spec)

    def compute_harmonic_mask(self, batch: dict) -> dict:
        """The suppression mask of the ``harmonic`` composition (see the module docstring) for a batch at the model
        rate: ``mask (batch, mask_n_fft // 2 + 1, n_model_frames)`` in [0, 1], exactly 1 at initialisation, with
        the same grid entries as :meth:`compute_mask` and ``controls``: the input controls plus ``band_gain``,
        ``comb_depth``, ``comb_width_hz``, each ``(batch, n_model_frames, n_mask_bands)``."""
        if self.composition != "harmonic":
            raise ValueError(f"compute_harmonic_mask needs composition 'harmonic', not {self.composition!r}")
        audio, _ = self.check_batch(batch)
        spec = self.stft(audio)
        magnitude = spec.abs()
        h, c = self.frame_state(batch, magnitude)
        gain_raw, depth_raw, width_raw = self.band_head(h).chunk(3, dim=-1)  # each (b, t, bands)
        cut, depth = straight_through_unit(gain_raw), straight_through_unit(depth_raw)  # gain = 1 - cut
        width = HARMONIC_WIDTH_HZ * torch.exp(width_raw.clamp(-3.0, 3.0))
        to_bins = self.band_weights.to(h.dtype)  # (bins, bands)
        cut_b, depth_b, width_b = (torch.einsum("fk,btk->bft", to_bins, x) for x in (cut, depth, width))
        comb = harmonic_comb(c["f0_hz"], width_b, self.bin_hz.to(h.dtype))
        # (1 - cut)(1 - ...) rather than interpolated gains: exactly 1 where cut and depth are exactly 0
        mask = (1.0 - cut_b) * (1.0 - depth_b * c["voicing"].unsqueeze(1) * (1.0 - comb))
        mask = self.gate(mask, self.separator_mask(magnitude, batch) if self.applies_now(self.ambiguity_gate) else None)
        c.update(band_gain=1.0 - cut, comb_depth=depth, comb_width_hz=width)
        return dict(mask=mask, spec=spec, controls=c, sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop)

    def compute_gate(self, batch: dict) -> dict:
        """The per-frame gate of the ``gate`` composition: ``gate (batch, n_model_frames)`` in [0, 1] (1 = keep
        the input vocal; exactly 1 at initialisation), frame ``i`` at ``i * mask_hop / sample_rate`` s, with
        ``frame_rate`` (Hz) and ``controls``. Per-sample values at any rate: :func:`interpolate_gate`.

        ``gate = 1 - clamp(r, 0, 1)`` for the zero-initialised head output ``r``, with a straight-through
        gradient for the clamp so the gate can leave 1 (a smooth [0, 1] function that equals 1 at r = 0
        would have zero gradient there).
        """
        if self.composition != "gate":
            raise ValueError(f"compute_gate needs composition 'gate', this model uses {self.composition!r}")
        c = self.controls(batch)
        return dict(gate=1.0 - straight_through_unit(c["residual"]), frame_rate=self.model_frame_rate, controls=c)

    def synthesize(
        self,
        controls: dict,
        n_samples: int,
        generator: torch.Generator | None = None,
        *,
        initial_phase: torch.Tensor | None = None,
        white_noise: torch.Tensor | None = None,
    ) -> dict:
        """Harmonic + filtered noise (+ reverb) audio ``(batch, n_samples)`` from model-grid controls;
        ``generator`` seeds the noise. ``initial_phase (batch,)`` and ``white_noise (batch, n_samples)`` continue
        a longer synthesis (see :func:`~ddsp_demucs.dsp.harmonic_phase` and ``filtered_noise``)."""
        # model frame i is centred on sample i * hop: the same convention as the dsp functions' hop_length
        harm = harmonic_synth(
            controls["f0_hz"],
            controls["amplitudes"],
            controls["harmonic_distribution"],
            sample_rate=self.sample_rate,
            n_samples=n_samples,
            hop_length=self.hop,
            initial_phase=initial_phase,
        )
        noise = filtered_noise(
            controls["noise_magnitudes"],
            n_samples=n_samples,
            generator=generator,
            hop_length=self.hop,
            white_noise=white_noise,
        )
        audio = harm + noise
        if self.reverb is not None:
            audio = self.reverb(audio)
        return dict(synth_audio=audio, harmonic_audio=harm, noise_audio=noise)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Refine ``batch["input_audio"] (batch, n_samples)``; returns ``audio (batch, n_samples)`` + controls.

        ``generator`` seeds the filtered noise (``synth``/``gate``; the ``mask`` path is deterministic). The
        composition's class (:mod:`ddsp_demucs.model.compositions`) does the work."""
        return self.composer.forward(self, batch, generator)


def model_from_config(model_config, data_config) -> ResidualDDSPDecoder:
    """Build the model from the typed ``model`` and ``data`` config sections (``data.train_sr``,
    ``data.frame_rate``)."""
    import dataclasses

    kwargs = dataclasses.asdict(model_config)
    return ResidualDDSPDecoder(sample_rate=data_config.train_sr, frame_rate=data_config.frame_rate, **kwargs)


__all__ = [
    "ResidualDDSPDecoder",
    "RnnFcDecoder",
    "LogMelEncoder",
    "model_from_config",
    "harmonic_spectrum",
    "harmonic_comb",
    "band_interpolation",
    "straight_through_unit",
    "noise_spectrum",
    "interpolate_mask",
    "interpolate_gate",
    "hz_to_midi",
    "exp_sigmoid",
    "COMPOSITIONS",
    "QUALITY_SMOOTHING_S",
    "CONFIDENCE_AT_INIT",
    "frame_ambiguity",
    "harmonic_energy_share",
]
