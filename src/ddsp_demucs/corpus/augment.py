"""Augmentation of real vocal takes, so that few singers sound like many: pitch shift, time stretch, formant shift,
equalisation, reverb and a slow level envelope.

The transforms are Spotify's ``pedalboard`` (Rubber Band for pitch, time and formants; JUCE filters and algorithmic
reverb) and scipy (convolution with a recorded impulse response, at unit energy). A :class:`VocalAugmentation` is
drawn from a seeded generator (:func:`draw_augmentation`), so a corpus built twice holds the same audio, and is
recorded with the song (:meth:`VocalAugmentation.as_dict`). The augmented take is the song's true vocal: reverb
belongs to the vocal stem, as in MUSDB18.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ddsp_demucs.core.audio_io import load_audio, resample

PITCH_SEMITONES = (-3.0, 3.0)  # uniform; F0 annotations scale with it
STRETCH = (0.9, 1.1)  # uniform speed factor: > 1 is faster (shorter)
FORMANT_SEMITONES = (-2.0, 2.0)  # uniform, drawn for half the takes, 0 for the others
EQ_DB = 4.0  # default: each of the three filters' gains uniform in [-EQ_DB, EQ_DB]
PEAK_HZ = (500.0, 4000.0)  # log-uniform centre of the peaking filter
REVERB_KINDS = ("none", "room", "impulse_response")  # drawn with equal probability
LEVEL_DEPTH_DB = 4.0  # level envelope: knots uniform in [-depth, depth] dB ...
LEVEL_KNOT_S = 2.0  # ... every 2 s, linearly interpolated


@dataclass(frozen=True)
class VocalAugmentation:
    """One draw of the transforms. ``pitch_semitones`` moves F0 (and the formants with it unless ``formant_semitones``
    differs), ``stretch`` is the speed factor (the take lasts ``1 / stretch`` as long), ``formant_semitones`` moves
    the spectral envelope alone; ``low_shelf_db`` (200 Hz), ``peak_db`` at ``peak_hz`` (Q 1) and ``high_shelf_db``
    (6 kHz) equalise; ``reverb`` is ``"none"``, ``"room"`` (algorithmic, ``room_size``) or ``"impulse_response"``
    (convolution with the file ``impulse_response``, relative to the shared data, scaled to unit energy), mixed at
    ``wet`` (``(1 - wet) * dry + wet * reverberant``); ``level_seed`` draws the level envelope
    (``level_depth_db``)."""

    pitch_semitones: float
    stretch: float
    formant_semitones: float
    low_shelf_db: float
    peak_hz: float
    peak_db: float
    high_shelf_db: float
    reverb: str
    room_size: float
    impulse_response: str
    wet: float
    level_depth_db: float
    level_seed: int

    def as_dict(self) -> dict:
        """A JSON-ready record (floats rounded, so that equal draws give equal records)."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def map_f0(self, times_s: np.ndarray, f0_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An F0 annotation of the original take, ``(times_s, f0_hz)``, as it is in the augmented take
        (times divided by the stretch, frequencies moved by the pitch shift; unvoiced 0 stays 0)."""
        return np.asarray(times_s) / self.stretch, np.asarray(f0_hz) * 2.0 ** (self.pitch_semitones / 12.0)


def draw_augmentation(
    rng: np.random.Generator, impulse_responses: Sequence[str] = (), eq_db: float = EQ_DB
) -> VocalAugmentation:
    """Draw one augmentation; ``impulse_responses`` (paths) are the convolution reverbs available (without any,
    ``"impulse_response"`` falls back to ``"room"``); each equaliser gain is uniform in ``[-eq_db, eq_db]`` dB.
    The same generator state gives the same draws whatever ``eq_db`` (the gains scale with it)."""
    if not eq_db >= 0.0:
        raise ValueError(f"eq_db must be >= 0, got {eq_db}")
    kind = REVERB_KINDS[int(rng.integers(len(REVERB_KINDS)))]
    if kind == "impulse_response" and not impulse_responses:
        kind = "room"
    pitch = float(rng.uniform(*PITCH_SEMITONES))
    stretch = float(rng.uniform(*STRETCH))
    formant = float(rng.uniform(*FORMANT_SEMITONES)) if rng.random() < 0.5 else 0.0
    low, peak, high = (float(g) for g in eq_db * rng.uniform(-1.0, 1.0, size=3))
    peak_hz = float(np.exp(rng.uniform(np.log(PEAK_HZ[0]), np.log(PEAK_HZ[1]))))
    room = float(rng.uniform(0.2, 0.8))
    ir = str(impulse_responses[int(rng.integers(len(impulse_responses)))]) if kind == "impulse_response" else ""
    wet = float(rng.uniform(0.1, 0.35)) if kind != "none" else 0.0
    return VocalAugmentation(
        pitch, stretch, formant, low, peak_hz, peak, high, kind, room, ir, wet, LEVEL_DEPTH_DB, int(rng.integers(2**31))
    )


def level_envelope(n_samples: int, sample_rate: int, depth_db: float, seed: int) -> np.ndarray:
    """A slow gain curve ``(n_samples,)``: knots every :data:`LEVEL_KNOT_S` uniform in ``[-depth_db, depth_db]``
    dB, linear in dB between them. (A constant gain would be undone by the remix's vocal-to-accompaniment
    ratio; the envelope changes the take's dynamics.)"""
    rng = np.random.default_rng(seed)
    knot = int(LEVEL_KNOT_S * sample_rate)
    n_knots = n_samples // knot + 2
    gains_db = rng.uniform(-depth_db, depth_db, size=n_knots)
    curve_db = np.interp(np.arange(n_samples), np.arange(n_knots) * knot, gains_db)
    return 10.0 ** (curve_db / 20.0)


def augment_vocal(
    vocal: np.ndarray, sample_rate: int, augmentation: VocalAugmentation, shared_data: str | Path = "."
) -> np.ndarray:
    """Apply ``augmentation`` to a mono take ``(n,)``; returns float64 ``(round(n / stretch),)`` about, at the
    same rate. Impulse responses are read from ``shared_data``."""
    import pedalboard
    import scipy.signal

    a = augmentation
    audio = np.asarray(vocal, dtype=np.float32)[None, :]
    if a.formant_semitones:  # pitch and formants up together, then pitch back with the formants kept
        audio = pedalboard.time_stretch(audio, sample_rate, 1.0, a.formant_semitones, preserve_formants=False)
    audio = pedalboard.time_stretch(
        audio, sample_rate, a.stretch, a.pitch_semitones - a.formant_semitones, preserve_formants=True
    )
    effects = [
        pedalboard.LowShelfFilter(200.0, a.low_shelf_db, 0.707),
        pedalboard.PeakFilter(a.peak_hz, a.peak_db, 1.0),
        pedalboard.HighShelfFilter(6000.0, a.high_shelf_db, 0.707),
    ]
    if a.reverb == "room":
        effects.append(pedalboard.Reverb(room_size=a.room_size, wet_level=a.wet, dry_level=1.0 - a.wet, width=0.0))
    out = pedalboard.Pedalboard(effects)(audio, sample_rate)[0].astype(np.float64)
    if a.reverb == "impulse_response":  # scipy, not pedalboard.Convolution, which rescales the response itself
        ir, ir_rate = load_audio(Path(shared_data) / a.impulse_response)
        ir = resample(ir.mean(axis=1), ir_rate, sample_rate).astype(np.float64)
        wet = scipy.signal.oaconvolve(out, ir / np.sqrt(np.sum(ir**2)))[: out.shape[0]]
        out = (1.0 - a.wet) * out + a.wet * wet
    return out * level_envelope(out.shape[0], sample_rate, a.level_depth_db, a.level_seed)


__all__ = ["VocalAugmentation", "draw_augmentation", "augment_vocal", "level_envelope"]
