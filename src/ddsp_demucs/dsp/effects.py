"""Effects with learned state: :class:`Reverb`."""

from __future__ import annotations

import torch
from torch import nn

from ddsp_demucs.dsp.core import check_positive, check_tensor, fft_convolve

__all__ = ["Reverb"]


class Reverb(nn.Module):
    """A learned reverb: ``y = x + h * x`` (``*`` is causal convolution by FFT, :func:`fft_convolve`).

    The impulse response ``h`` is a trainable parameter of ``length`` samples whose first tap is forced to 0, so
    the dry path is exactly ``x`` and the IR only adds reflections. It starts as uniform noise scaled by
    ``initial_gain`` under an exponential decay with time constant ``initial_decay`` samples (drawn from torch's
    global RNG, like other parameter initialisations); ``initial_gain=0`` starts from the dry signal alone.

    Args:
        length: IR length in samples (>= 2).
        initial_gain: peak amplitude of the initial noise IR (>= 0).
        initial_decay: time constant of the initial IR's exponential decay, in samples (> 0); default
            ``length / 4``.
        add_dry: keep the dry path (default True); False returns ``h * x`` only.

    ``forward(audio (..., n_samples)) -> (..., n_samples)``; differentiable in the audio and the IR.
    """

    def __init__(
        self,
        length: int = 4096,
        *,
        initial_gain: float = 1e-2,
        initial_decay: float | None = None,
        add_dry: bool = True,
    ):
        super().__init__()
        check_positive(length, "length", integer=True)
        if int(length) < 2:
            raise ValueError(f"Reverb length must be >= 2 samples, got {length}")
        if not (initial_gain >= 0):
            raise ValueError(f"initial_gain must be >= 0, got {initial_gain!r}")
        self.length = int(length)
        decay = self.length / 4.0 if initial_decay is None else initial_decay
        check_positive(decay, "initial_decay")
        self.add_dry = bool(add_dry)
        t = torch.arange(self.length, dtype=torch.float32)
        ir = (torch.rand(self.length) * 2.0 - 1.0) * torch.exp(-t / decay) * initial_gain
        self.ir = nn.Parameter(ir)

    def impulse_response(self) -> torch.Tensor:
        """The effective wet IR ``(length,)`` (first tap 0)."""
        return torch.cat([self.ir.new_zeros(1), self.ir[1:]])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        check_tensor(audio, "audio")
        ir = self.impulse_response().to(audio.dtype)
        ir = ir.reshape((1,) * (audio.dim() - 1) + (-1,))
        wet = fft_convolve(audio, ir)
        return audio + wet if self.add_dry else wet

    def extra_repr(self) -> str:
        return f"length={self.length}, add_dry={self.add_dry}"
