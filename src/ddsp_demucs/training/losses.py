"""The training loss: the multi-resolution STFT loss plus optional mel and waveform terms (:class:`LossTerms`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddsp_demucs.core.config import LossConfig
from ddsp_demucs.dsp import MultiResolutionSTFTLoss
from ddsp_demucs.metrics import si_sdr


class MelLoss(torch.nn.Module):
    """L1 distance of log-mel spectrograms ``(batch, n_samples)`` x2 -> scalar (Hann STFT, 1024 / 256)."""

    def __init__(self, sample_rate: int, n_mels: int = 80, n_fft: int = 1024, hop: int = 256):
        super().__init__()
        import librosa

        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("fb", torch.as_tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.n_fft, self.hop = n_fft, hop

    def _logmel(self, x: torch.Tensor) -> torch.Tensor:
        mag = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        return torch.log(torch.einsum("mf,bft->bmt", self.fb, mag) + 1e-5)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self._logmel(estimate), self._logmel(target))


class LossTerms(torch.nn.Module):
    """Loss terms by name, weighted from a :class:`~ddsp_demucs.core.config.LossConfig`.

    ``forward(estimate, target, separated)`` with ``(batch, n_samples)`` waveforms -> dict of unweighted scalar
    terms (``stft``: multi-resolution linear + log magnitude; ``si_sdr``: negative mean SI-SDR in dB / 10;
    ``mel``: log-mel L1; ``no_harm``: the mean over examples of how far the estimate's SI-SDR falls below the
    separated input's, ``relu(si_sdr(separated) - si_sdr(estimate))`` in dB / 10, so only examples the model
    makes worse are pushed back; only the terms with a non-zero weight) and ``total``, the weighted sum.
    """

    def __init__(self, config: LossConfig, sample_rate: int):
        super().__init__()
        self.config = config
        self.weights = {
            "stft": 1.0,
            "si_sdr": config.si_sdr_weight,
            "mel": config.mel_weight,
            "no_harm": config.no_harm_weight,
        }
        self.stft = MultiResolutionSTFTLoss(
            fft_sizes=tuple(config.fft_sizes),
            overlap=config.overlap,
            mag_weight=config.mag_weight,
            logmag_weight=config.logmag_weight,
        )
        self.mel = MelLoss(sample_rate, config.n_mels) if config.mel_weight else None

    def forward(
        self, estimate: torch.Tensor, target: torch.Tensor, separated: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        estimate, target = estimate.float(), target.float()
        terms = {"stft": self.stft(estimate, target)}
        if self.weights["si_sdr"] or self.weights["no_harm"]:
            sdr_out = si_sdr(estimate, target)
        if self.weights["si_sdr"]:
            terms["si_sdr"] = -sdr_out.mean() / 10.0
        if self.mel is not None:
            terms["mel"] = self.mel(estimate, target)
        if self.weights["no_harm"]:
            if separated is None:
                raise ValueError("the no_harm loss term needs the separated input")
            with torch.no_grad():
                sdr_in = si_sdr(separated.float(), target)
            terms["no_harm"] = F.relu(sdr_in - sdr_out).mean() / 10.0
        terms["total"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms


__all__ = ["MelLoss", "LossTerms"]
