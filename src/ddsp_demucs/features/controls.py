"""The frame controls the model reads, computed in one place for every path that needs them.

The controls of a mono signal are float32 ``(n_frames,)`` arrays on the ``frame_rate`` grid (frame ``j`` centred at
``j / frame_rate`` s, ``n_frames = n_samples * frame_rate // sample_rate``):

- ``f0_hz``: F0 in Hz, 0 where unvoiced, and ``f0_confidence`` in [0, 1], from an
  :class:`~ddsp_demucs.features.pitch.F0Tracker` (:func:`track_f0`);
- ``loudness_db``: :func:`~ddsp_demucs.dsp.a_weighted_loudness` (:func:`loudness_db`).

:func:`frame_controls` computes all three of a signal at the rate it is given at. The three paths use it so:

1. **features** (:func:`ddsp_demucs.features.compute_features`): on the separated vocal at the stem's rate (44.1 kHz)
   over the whole song; the file stores them under :data:`FEATURE_FILE_KEYS` (``f0_confidence`` is ``confidence``
   there, a file format that stays) and the gate reads them.
2. **dataset** (:func:`ddsp_demucs.data.build_dataset_from_segments`, read by training): :func:`dataset_controls`:
   F0 and confidence *from the feature file* (tracked at the stem's rate), loudness of the separated vocal
   downmixed and resampled to the model's rate (:func:`mono_at`).
3. **refine** (:func:`~ddsp_demucs.inference.refine.refine_window`): :func:`frame_controls` of the analysis span
   downmixed and resampled to the model's rate (:func:`mono_at`), so F0 *and* loudness at the model's rate.

Loudness is the same function of the same model-rate signal in 2 and 3: identical for the whole song (a window's
analysis span adds context; see :mod:`~ddsp_demucs.inference.refine`). F0 is not: the dataset's is tracked on the
stem-rate signal, refine's on the model-rate one (CREPE resamples either to 16 kHz itself, so the two see the vocal
through different resampling filters; pYIN resamples to 22.05 kHz itself, so its F0 is the same at either rate). Both
keep their numbers (shards and checkpoints in use stay valid). The difference is negligible: with CREPE on 44.1 kHz
vocals and a 22.05 kHz model, at most 0.11 cent on a voiced frame (mean about 0.001 cent), confidence within 0.06
(mean 3e-5), no voicing decision flipped on seven real and synthetic vocals. Where the stem rate equals the model
rate the two paths give identical controls (``tests/test_controls.py`` checks both cases). The F0 settings must also
agree: the dataset's are the features stage's config, refine's the checkpoint's ``features`` section
(:func:`ddsp_demucs.inference.refine.f0_tracker`), i.e. the training config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ddsp_demucs.core.audio_io import resample
from ddsp_demucs.dsp import a_weighted_loudness

if TYPE_CHECKING:
    from ddsp_demucs.features.pitch import F0Tracker

#: The controls, in the order the model and the dataset list them.
CONTROL_KEYS = ("f0_hz", "f0_confidence", "loudness_db")
#: The name of each control in a feature file (``features/<separator>/<track>.npz``): the one place where
#: ``f0_confidence`` is called ``confidence``.
FEATURE_FILE_KEYS = {"f0_hz": "f0_hz", "f0_confidence": "confidence", "loudness_db": "loudness_db"}


def mono_at(audio: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """``audio`` ``(n,)`` or ``(n, channels)`` downmixed (channel mean in float32) and resampled from ``sample_rate``
    to ``rate`` (:func:`ddsp_demucs.core.audio_io.resample`): contiguous float32 ``(ceil(n * rate / sample_rate),)``.
    The model-rate signal of the dataset's audio and of refine's analysis spans."""

    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    return np.ascontiguousarray(resample(mono, sample_rate, rate), dtype=np.float32)


def track_f0(
    audio: np.ndarray, sample_rate: int, frame_rate: int, tracker: F0Tracker, *, mixture: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``f0_hz`` and ``f0_confidence`` of ``audio`` (mono or ``(n, channels)``, channels averaged) at
    ``sample_rate`` Hz by ``tracker`` (:meth:`~ddsp_demucs.features.pitch.F0Tracker.track`; ``mixture``: the song
    it was separated from, read by the harmonic check)."""
    f0_hz, confidence = tracker.track(audio, sample_rate, int(frame_rate), mixture=mixture)
    return {"f0_hz": f0_hz, "f0_confidence": confidence}


def loudness_db(mono: np.ndarray, sample_rate: int, frame_rate: int) -> np.ndarray:
    """A-weighted loudness ``loudness_db`` of ``mono`` ``(n,)`` at ``sample_rate`` Hz: float32 ``(n_frames,)``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))[None]
    with torch.inference_mode():
        loud = a_weighted_loudness(x, sample_rate=sample_rate, frame_rate=frame_rate)[0].numpy()
    return loud.astype(np.float32)


def frame_controls(
    mono: np.ndarray,
    sample_rate: int,
    frame_rate: int,
    *,
    tracker: F0Tracker,
    f0_audio: np.ndarray | None = None,
    mixture: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The frame controls (:data:`CONTROL_KEYS`) of a mono signal ``(n,)`` at ``sample_rate`` Hz.

    The rate is the caller's choice and changes F0 (see the module docstring): the features stage passes the
    stem's rate, refine the model's. ``f0_audio`` (same shape and rate): track F0 and confidence on it instead of
    ``mono`` (the oracle-F0 diagnosis); loudness is always ``mono``'s. ``mixture`` (same shape and rate): the song
    ``mono`` was separated from, which the tracker reads where it reads the song (``crepe-mixture``, the harmonic
    check; refine has it; the features stage gives it to ``crepe-mixture`` only, so there the harmonic check of
    another tracker acts on every voiced frame)."""
    controls = track_f0(mono if f0_audio is None else f0_audio, sample_rate, frame_rate, tracker, mixture=mixture)
    controls["loudness_db"] = loudness_db(mono, sample_rate, frame_rate)
    return controls


def to_feature_file(controls: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``controls`` under their feature-file names (:data:`FEATURE_FILE_KEYS`)."""
    return {FEATURE_FILE_KEYS[key]: value for key, value in controls.items()}


def f0_from_feature_file(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``f0_hz`` and ``f0_confidence`` of a feature file (:func:`ddsp_demucs.features.load_features`)."""
    return {key: features[FEATURE_FILE_KEYS[key]] for key in ("f0_hz", "f0_confidence")}


def dataset_controls(
    features: Mapping[str, np.ndarray], model_mono: np.ndarray, model_sample_rate: int, frame_rate: int
) -> dict[str, np.ndarray]:
    """The controls a dataset shard holds for a whole song: F0 and confidence from its feature file (tracked at the
    stem's rate), loudness of ``model_mono``, the separated vocal at the model's rate (:func:`mono_at`)."""
    return {**f0_from_feature_file(features), "loudness_db": loudness_db(model_mono, model_sample_rate, frame_rate)}


__all__ = [
    "CONTROL_KEYS",
    "FEATURE_FILE_KEYS",
    "dataset_controls",
    "f0_from_feature_file",
    "frame_controls",
    "loudness_db",
    "mono_at",
    "to_feature_file",
    "track_f0",
]
