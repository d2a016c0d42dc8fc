"""The compositions of :class:`~ddsp_demucs.model.ResidualDDSPDecoder`, one class each: how the decoder's
harmonic-plus-noise output becomes the refined vocal.

Each does it in two places: :meth:`Composition.forward` on the model-rate mono batch (training and the window
protocol of ``evaluate``), and :meth:`Composition.refine_window` on one window of a whole song at the song's own
rate and channels (:mod:`ddsp_demucs.inference.refine`):

- :class:`SynthComposition` (``synth``): the resynthesis is the output, on every channel;
- :class:`GateComposition` (``gate``): a per-frame blend of each channel with the resynthesis;
- :class:`MaskComposition` (``mask``): a time-frequency mask moved onto each channel's STFT, keeping its phase;
- :class:`RestoreComposition` (``restore``): the same mask, plus a learned share of the separator's accompaniment
  estimate (the mixture minus the separated vocal) on the F0's harmonics: vocal the separator left behind.

In a song, ``synth`` and ``gate`` continue one synthesis across windows: the oscillators start where the previous
window left them and the noise is cut from one song-long stream (:class:`SongWindow`), so that overlapping windows
synthesise the same signal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from ddsp_demucs.core.audio_io import resample
from ddsp_demucs.dsp import harmonic_phase
from ddsp_demucs.dsp.grids import interpolate_gate, interpolate_mask


class Decoder(Protocol):
    """What a composition uses of :class:`~ddsp_demucs.model.decoder.ResidualDDSPDecoder` (the decoder hands
    itself to its composition, so this module does not import it)."""

    sample_rate: int
    hop: int

    def check_batch(self, batch: dict) -> tuple[torch.Tensor, int]: ...
    def controls(self, batch: dict, magnitude: torch.Tensor | None = None) -> dict: ...
    def compute_mask(self, batch: dict) -> dict: ...
    def compute_restore(self, batch: dict) -> dict: ...
    def compute_harmonic_mask(self, batch: dict) -> dict: ...
    def compute_gate(self, batch: dict) -> dict: ...
    def synthesize(self, controls: dict, n_samples: int, generator: torch.Generator | None = None) -> dict: ...
    def istft(self, spec: torch.Tensor, n_samples: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class SongWindow:
    """One window of a song as :mod:`ddsp_demucs.inference.refine` hands it to a composition.

    ``audio (n_channels, n)``: the separated vocal at ``sample_rate``, on the model's device; the model-rate mono
    batch covers the same time in ``n_model`` samples; ``mixture (n_channels, n)``: the same span of the song it
    was separated from, where the model reads it (``restore``). ``white_noise (1, n_model)``: the window's part
    of the song's noise stream; ``initial_phase``: the oscillator phase (radians) the previous window reached at
    this window's start; ``next_offset``: model samples from this window's start to the next one's (None for the
    last window).
    """

    audio: torch.Tensor
    sample_rate: int
    n_model: int
    white_noise: torch.Tensor
    initial_phase: float = 0.0
    next_offset: int | None = None
    mixture: torch.Tensor | None = None


class Composition(ABC):
    """How a decoder's output becomes the refined vocal (see the module docstring)."""

    name: ClassVar[str]
    reads_song_mixture: ClassVar[bool] = False  # whether refine_window reads SongWindow.mixture

    @abstractmethod
    def forward(self, decoder: Decoder, batch: dict, generator: torch.Generator | None = None) -> dict:
        """``audio (batch, n_samples)``, the refined model-rate mono batch, with the controls and what this
        composition computed; ``generator`` seeds the filtered noise."""

    @abstractmethod
    def refine_window(self, decoder: Decoder, batch: dict, window: SongWindow) -> tuple[torch.Tensor, float]:
        """The refined ``window.audio`` ``(n_channels, n)`` from the decoder run on ``batch`` (the window's
        model-rate mono signal and controls), and the oscillator phase the next window starts from (0 where there
        is no synthesis or no next window)."""


class SynthComposition(Composition):
    """Pure resynthesis (harmonics + filtered noise + reverb), the original DDSP design."""

    name = "synth"

    def forward(self, decoder, batch, generator=None):
        _, n_samples = decoder.check_batch(batch)
        c = decoder.controls(batch)
        s = decoder.synthesize(c, n_samples, generator)
        return dict(audio=s["synth_audio"], **s, **c)

    def refine_window(self, decoder, batch, window):
        synth, phase = continue_synthesis(decoder, decoder.controls(batch), window)
        return synth.expand_as(window.audio), phase


class GateComposition(Composition):
    """``g * input + (1 - g) * synthesis`` with a per-frame gate ``g`` (1 at initialisation)."""

    name = "gate"

    def forward(self, decoder, batch, generator=None):
        audio, n_samples = decoder.check_batch(batch)
        g = decoder.compute_gate(batch)
        s = decoder.synthesize(g["controls"], n_samples, generator)
        gate = interpolate_gate(
            g["gate"], frame_rate=g["frame_rate"], sample_rate=decoder.sample_rate, n_samples=n_samples
        )
        return dict(audio=audio + (1.0 - gate) * (s["synth_audio"] - audio), gate=g["gate"], **s, **g["controls"])

    def refine_window(self, decoder, batch, window):
        g = decoder.compute_gate(batch)
        synth, phase = continue_synthesis(decoder, g["controls"], window)
        x = window.audio
        gate = interpolate_gate(
            g["gate"], frame_rate=g["frame_rate"], sample_rate=window.sample_rate, n_samples=x.shape[-1]
        )
        return x + (1.0 - gate) * (synth - x), phase


class MaskComposition(Composition):
    """A time-frequency mask from the synthesised spectra on the input's STFT, keeping its phase (1 at
    initialisation)."""

    name = "mask"

    def compute(self, decoder: Decoder, batch: dict) -> dict:
        """The mask and its grid (:meth:`~ddsp_demucs.model.ResidualDDSPDecoder.compute_mask`)."""
        return decoder.compute_mask(batch)

    def forward(self, decoder, batch, generator=None):
        audio, n_samples = decoder.check_batch(batch)
        m = self.compute(decoder, batch)
        # input + istft((mask - 1) X): bit-exact identity when mask == 1, equal to istft(mask X) otherwise.
        out = audio + decoder.istft((m["mask"] - 1.0) * m["spec"], n_samples)
        return dict(audio=out, mask=m["mask"], **m["controls"])

    def refine_window(self, decoder, batch, window):
        return apply_mask(self.compute(decoder, batch), window.audio, window.sample_rate), 0.0


class HarmonicMaskComposition(MaskComposition):
    """A suppression-only mask around the F0 harmonics with learned per-band gain, comb depth and width, applied
    as the ``mask`` composition applies its mask (1 at initialisation)."""

    name = "harmonic"

    def compute(self, decoder, batch):
        return decoder.compute_harmonic_mask(batch)


class RestoreComposition(MaskComposition):
    """The ``mask`` composition's mask on the input's STFT plus a learned share of the accompaniment estimate's
    STFT on the F0's harmonics (:meth:`~ddsp_demucs.model.ResidualDDSPDecoder.compute_restore`; nothing at
    initialisation)."""

    name = "restore"
    reads_song_mixture = True

    def compute(self, decoder, batch):
        return decoder.compute_restore(batch)

    def forward(self, decoder, batch, generator=None):
        audio, n_samples = decoder.check_batch(batch)
        m = self.compute(decoder, batch)
        change = (m["mask"] - 1.0) * m["spec"] + m["restore"] * m["accompaniment_spec"]
        out = audio + decoder.istft(change, n_samples)
        return dict(audio=out, mask=m["mask"], restore=m["restore"], **m["controls"])

    def refine_window(self, decoder, batch, window):
        if window.mixture is None:
            raise ValueError("the restore composition needs the window's mixture (SongWindow.mixture)")
        return apply_mask(self.compute(decoder, batch), window.audio, window.sample_rate, window.mixture), 0.0


def apply_mask(m: dict, x: torch.Tensor, sample_rate: int, mixture: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a model-rate mask (:meth:`~ddsp_demucs.model.ResidualDDSPDecoder.compute_mask`) to every channel of
    ``x (ch, n)`` on an STFT of the same duration at ``sample_rate`` (window and hop scaled by the rate ratio),
    keeping each channel's phase; frequencies above the model's Nyquist are kept. Where ``m`` holds a ``restore``
    share (:meth:`~ddsp_demucs.model.ResidualDDSPDecoder.compute_restore`), that share of the accompaniment
    estimate ``mixture - x`` (``mixture (ch, n)``, the same span of the song) is added; none above that Nyquist."""
    ratio = sample_rate / m["sample_rate"]
    n_fft, hop = max(2, round(m["n_fft"] * ratio)), max(1, round(m["hop"] * ratio))
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)  # (ch, bins, frames)
    grids = dict(
        src_sample_rate=m["sample_rate"],
        src_n_fft=m["n_fft"],
        src_hop=m["hop"],
        dst_sample_rate=sample_rate,
        dst_n_fft=n_fft,
        dst_hop=hop,
        dst_n_frames=spec.shape[-1],
    )
    # x + istft((mask - 1) X): exactly x where the mask is 1 (as the model's own forward)
    change = (interpolate_mask(m["mask"], **grids) - 1.0) * spec
    if "restore" in m:
        accompaniment = torch.stft(mixture - x, n_fft, hop, window=window, center=True, return_complex=True)
        change = change + interpolate_mask(m["restore"], **grids, above_nyquist=0.0) * accompaniment
    return x + torch.istft(change, n_fft, hop, window=window, center=True, length=x.shape[-1])


def continue_synthesis(decoder: Decoder, controls: dict, window: SongWindow) -> tuple[torch.Tensor, float]:
    """The window's synthesis at the song rate ``(1, n)`` (on the window's device), started at
    ``window.initial_phase`` on the window's noise, and the phase at ``window.next_offset``."""
    phase0 = torch.tensor([window.initial_phase], dtype=torch.float64, device=window.audio.device)
    s = decoder.synthesize(controls, window.n_model, initial_phase=phase0, white_noise=window.white_noise)
    n = window.audio.shape[-1]
    song_rate = resample(s["synth_audio"][0].cpu().numpy(), decoder.sample_rate, window.sample_rate)[:n]
    synth = torch.zeros(1, n, dtype=window.audio.dtype)
    synth[0, : song_rate.shape[0]] = torch.from_numpy(song_rate)
    next_phase = 0.0
    if window.next_offset is not None:
        phase = harmonic_phase(
            controls["f0_hz"],
            sample_rate=decoder.sample_rate,
            n_samples=window.n_model,
            initial_phase=phase0,
            hop_length=decoder.hop,
        )
        next_phase = float(phase[0, window.next_offset - 1])
    return synth.to(window.audio.device), next_phase


COMPOSITION_CLASSES: dict[str, type[Composition]] = {
    c.name: c for c in (SynthComposition, GateComposition, MaskComposition, HarmonicMaskComposition, RestoreComposition)
}

__all__ = [
    "Composition",
    "SynthComposition",
    "GateComposition",
    "MaskComposition",
    "HarmonicMaskComposition",
    "RestoreComposition",
    "SongWindow",
    "COMPOSITION_CLASSES",
    "apply_mask",
    "continue_synthesis",
]
