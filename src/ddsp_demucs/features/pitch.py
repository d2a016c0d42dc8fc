"""F0 and confidence on a fixed frame grid: ``extract_f0`` with the CREPE trackers (default) and librosa pYIN.

Frame grid: frame i is centred at time ``i / frame_rate`` seconds, and a signal of ``n_samples`` samples has
``n_samples * frame_rate // sample_rate`` frames (the same count as ``ddsp_demucs.dsp.a_weighted_loudness``).
Each tracker runs on its own grid (CREPE: 10 ms hop at 16 kHz, ``CREPE_HOP``, as the original; pYIN: 10 ms hop at
22.05 kHz) and is interpolated onto this one: pitch linearly in cents, confidence linearly. A coarser CREPE hop
(``crepe_hop``) runs the network on proportionally fewer frames; their activations are interpolated onto the 10 ms
grid before the Viterbi decoding, whose transition model is tuned per 10 ms step (what a coarser hop changes:
bench/results/f0.json, experiments/exp005). The default is 10 ms; ``features.crepe_hop`` sets the hop of a model's
features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddsp_demucs.core.audio_io import resample
from ddsp_demucs.core.config import F0_METHODS, FeaturesConfig
from ddsp_demucs.features import crepe

METHODS = F0_METHODS
DEFAULT_METHOD = "crepe-tiny"
MIXTURE_METHODS = ("crepe-mixture",)  # trackers that read the song's mixture beside the vocal
DEFAULT_VOICING_THRESHOLD = 0.5
PYIN_FMIN, PYIN_FMAX = 50.0, 1100.0  # Hz: the sung range with margin
CREPE_HOP = 160  # samples at 16 kHz: 10 ms between CREPE frames


@dataclass(frozen=True)
class F0Tracker:
    """The F0 settings of a model or a feature set: ``method`` (None: :data:`DEFAULT_METHOD`), the
    ``voicing_threshold``, the CREPE network's ``crepe_hop`` and whether the harmonic check
    (:mod:`ddsp_demucs.features.harmonic_check`) follows; :meth:`track` is :func:`extract_f0` with them."""

    method: str | None = None
    voicing_threshold: float = DEFAULT_VOICING_THRESHOLD
    crepe_hop: int = CREPE_HOP
    harmonic_check: bool = False

    @classmethod
    def from_config(cls, features: FeaturesConfig) -> F0Tracker:
        """The tracker of a config's ``features`` section."""
        return cls(
            features.f0_method, float(features.voicing_threshold), int(features.crepe_hop), features.harmonic_check
        )

    def track(
        self,
        audio: np.ndarray,
        sample_rate: int,
        frame_rate: int,
        *,
        mixture: np.ndarray | None = None,
        return_pitch: bool = False,
    ):
        """:func:`extract_f0` of ``audio`` with these settings (``mixture``, the song ``audio`` was separated from,
        same length, is what ``crepe-mixture`` reads beside it); with the harmonic check, the voiced frames' F0 is
        then checked (:func:`~ddsp_demucs.features.harmonic_check.check_lower_pitch`; ``mixture`` restricts it to
        frames the separator was sure of). The pitch of ``return_pitch`` is the tracker's, unchecked."""
        out = extract_f0(
            audio,
            sample_rate,
            frame_rate=frame_rate,
            method=self.method,
            voicing_threshold=self.voicing_threshold,
            return_pitch=return_pitch,
            crepe_hop=self.crepe_hop,
            mixture=mixture,
        )
        if not self.harmonic_check:
            return out
        from ddsp_demucs.features.harmonic_check import check_lower_pitch

        song = None if mixture is None else as_mono(mixture)
        checked = check_lower_pitch(out[0], as_mono(audio), sample_rate, frame_rate, mixture=song)
        return (checked, *out[1:])

    @property
    def reads_mixture(self) -> bool:
        """Whether :meth:`track` reads the song a vocal was separated from (the harmonic check, ``crepe-mixture``)."""
        return self.harmonic_check or self.method in MIXTURE_METHODS

    def settings(self) -> dict:
        """The settings as JSON-ready values (``method`` resolved), with ``f0_weights``: the digest of the packaged
        weights of a fine-tuned tracker (:func:`~ddsp_demucs.features.crepe.weights_digest`; None for the others),
        so that what another training of those weights would change is not taken for what they made."""
        method = self.method or DEFAULT_METHOD
        return {
            "f0_method": method,
            "voicing_threshold": float(self.voicing_threshold),
            "crepe_hop": int(self.crepe_hop),
            "harmonic_check": bool(self.harmonic_check),
            "f0_weights": crepe.weights_digest(method.split("-", 1)[1]) if method.startswith("crepe") else None,
        }


def n_frames_for(n_samples: int, sample_rate: int, frame_rate: int) -> int:
    """Frames of a signal of ``n_samples`` at ``sample_rate``: ``n_samples * frame_rate // sample_rate``."""
    return int(n_samples) * int(frame_rate) // int(sample_rate)


def as_mono(audio: np.ndarray) -> np.ndarray:
    """``(n_samples,)`` or ``(n_samples, n_channels)`` -> float32 ``(n_samples,)`` (channels averaged); ValueError
    on another shape or non-finite samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"audio must be (n_samples,) or (n_samples, n_channels), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    return audio


def extract_f0(
    audio: np.ndarray,
    sample_rate: int,
    *,
    frame_rate: int = 250,
    method: str | None = None,
    voicing_threshold: float = DEFAULT_VOICING_THRESHOLD,
    return_pitch: bool = False,
    crepe_hop: int = CREPE_HOP,
    mixture: np.ndarray | None = None,
):
    """F0 and its confidence on the frame grid.

    Args:
        audio: ``(n_samples,)`` mono or ``(n_samples, n_channels)`` (channels averaged), any sample rate.
        sample_rate: Hz.
        frame_rate: frames per second; frame i is centred at ``i / frame_rate`` s.
        method: ``"crepe-tiny"`` (default, ``None``), ``"crepe-full"`` (about 20x slower),
            ``"crepe-separated"`` (CREPE-tiny fine-tuned on separated vocals, :mod:`.crepe_training`),
            ``"crepe-mixture"`` (the same, also reading ``mixture``) or ``"pyin"`` (librosa pYIN, the reference
            method).
        voicing_threshold: frames whose confidence is below this are unvoiced (``f0_hz`` 0).
        return_pitch: also return the tracker's pitch on every frame, voiced or not.
        crepe_hop: samples at 16 kHz between the frames the CREPE network sees (default 160: 10 ms, as the
            original CREPE); a coarser hop is interpolated onto the 10 ms grid before decoding.
        mixture: the song ``audio`` was separated from, same shape; read by ``"crepe-mixture"`` only (without it,
            that tracker reads the vocal in its place: a vocal on its own), ignored by the others.

    Returns:
        ``(f0_hz, confidence)``: float32 arrays ``(n_frames,)`` with ``n_frames = n_samples * frame_rate //
        sample_rate``; ``f0_hz`` in Hz, 0 where unvoiced; ``confidence`` in [0, 1] (CREPE: the activation of the
        decoded pitch bin; pYIN: the voiced probability). With ``return_pitch``, a third array ``(n_frames,)``
        holds the pitch in Hz on every frame before the voicing decision.
    """
    audio = as_mono(audio)
    if sample_rate <= 0 or frame_rate <= 0:
        raise ValueError(f"sample_rate and frame_rate must be positive, got {sample_rate} and {frame_rate}")
    if crepe_hop < 1:
        raise ValueError(f"crepe_hop must be a positive number of samples, got {crepe_hop}")
    method = DEFAULT_METHOD if method is None else method
    if method not in METHODS:
        raise ValueError(f"unknown F0 method {method!r}; choose one of {', '.join(METHODS)}")
    n_frames = n_frames_for(audio.shape[0], sample_rate, frame_rate)
    times = np.arange(n_frames) / frame_rate
    if n_frames == 0:
        empty = np.zeros(0, dtype=np.float32)
        return (empty, empty, empty) if return_pitch else (empty, empty)
    if method.startswith("crepe"):
        audio16 = resample(audio, sample_rate, crepe.SAMPLE_RATE)
        song16 = None
        if mixture is not None and method in MIXTURE_METHODS:  # the other trackers never read the song
            song = as_mono(mixture)
            if song.shape != audio.shape:
                raise ValueError(f"mixture must have the audio's length {audio.shape[0]}, got {song.shape[0]}")
            song16 = resample(song, sample_rate, crepe.SAMPLE_RATE)
        act = crepe.salience(audio16, hop=crepe_hop, model=method.split("-", 1)[1], mixture_16k=song16)
        if crepe_hop != CREPE_HOP:
            n_grid = 1 + audio16.shape[0] // CREPE_HOP
            act = crepe.resample_activations(act, crepe_hop, CREPE_HOP, n_grid)
        cents, conf = crepe.decode(act)
        track_times = np.arange(cents.shape[0]) * CREPE_HOP / crepe.SAMPLE_RATE
    else:
        cents, conf, track_times = _pyin(audio, sample_rate)
    pitch_hz = crepe.cents_to_hz(np.interp(times, track_times, cents))
    confidence = np.clip(np.interp(times, track_times, conf), 0.0, 1.0)
    f0_hz = np.where(confidence >= voicing_threshold, pitch_hz, 0.0)
    out = (f0_hz.astype(np.float32), confidence.astype(np.float32))
    return out + (pitch_hz.astype(np.float32),) if return_pitch else out


def _pyin(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa pYIN at 22.05 kHz, 10 ms hop: (cents re 10 Hz on every frame, voiced probability, frame times)."""
    import librosa

    sr = 22050
    y = resample(audio, sample_rate, sr).astype(np.float64)
    hop = 220
    f0, _, voiced_prob = librosa.pyin(
        y, fmin=PYIN_FMIN, fmax=PYIN_FMAX, sr=sr, frame_length=2048, hop_length=hop, center=True, fill_na=np.nan
    )
    # unvoiced frames carry no pitch: hold the nearest voiced pitch so interpolation stays in range
    valid = np.isfinite(f0) & (f0 > 0)
    idx = np.arange(f0.shape[0])
    if valid.any():
        f0 = np.interp(idx, idx[valid], f0[valid])
    else:
        f0 = np.full(f0.shape, PYIN_FMIN)
    cents = 1200.0 * np.log2(f0 / 10.0)
    return cents, np.nan_to_num(voiced_prob), idx * hop / sr
