"""A check of a tracked F0 against the spectrum, for a tracker that reads the octave, fifth or fourth above.

After a separator, a tracker sometimes reports 2, 3/2 or 4/3 times the sung pitch (exp005): every harmonic of
the reported pitch is a harmonic of the true one, so its spectrum fits, but the true pitch also has harmonics
the reported one lacks. For each voiced frame and each lower candidate ``c = r * f0`` with ``r`` in
:data:`CANDIDATE_RATIOS` (1/2, 2/3, 3/4), the check measures, on the frame's log power spectrum:

- ``extra``: the mean peak level (dB) at the candidate's harmonics ``k c`` that are not harmonics of ``f0``;
- ``between``: the mean peak level at the midpoints ``(k + 1/2) c`` between the candidate's harmonics;
- ``own``: the mean peak level at the harmonics of ``f0`` itself,

over harmonics up to :attr:`HarmonicCheck.max_hz`, a peak being the maximum within ``+-peak_width`` of the
frequency (relative). The candidate holds where ``extra - between > min_contrast_db`` (its extra harmonics stand
out of the floor between its harmonics) and ``extra - own > -max_drop_db`` (they are not far weaker than the
tracked pitch's own); the candidate with the largest contrast replaces ``f0``.

A separator that is unsure leaves the accompaniment's partials in the vocal, which can pass the test by chance
(on the fallback separator's vocals the ungated check moved right frames too). Given the song the vocal was
separated from, the check acts only in frames where the separator was sure: the frame's energy-weighted
``4 m (1 - m)`` of the separator's own mask ``m = min(1, |vocal| / |mixture|)`` (0 where every bin went wholly to
one side, 1 where every bin was split in half) at most :attr:`HarmonicCheck.max_uncertainty`.

Frames: frame ``j`` is centred at sample ``j * sample_rate / frame_rate`` (the grid of
:mod:`ddsp_demucs.features.pitch`), analysed with a Hann window of :func:`window_length` samples (about 128 ms
or more: 2048 at 16 kHz, 4096 at 22.05-32 kHz), the signal zero-padded by half a window at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Lower candidates as fractions ``(p, q)`` of the tracked F0: the octave, fifth and fourth below.
CANDIDATE_RATIOS = ((1, 2), (2, 3), (3, 4))
CHUNK_FRAMES = 512  # frames analysed at once (memory: CHUNK_FRAMES x window_length floats)
POWER_FLOOR = 1e-12  # added to every power so silence has a finite level


@dataclass(frozen=True)
class HarmonicCheck:
    """The thresholds of the check (see the module docstring). The defaults are the setting a scratch probe chose on
    the test singers' songs (exp005); ``make bench-harmonic-check`` looks for one on singers no model learned
    (``bench/results/harmonic_check.json``), and the check is off unless asked for (``features.harmonic_check``,
    ``refine --harmonic-check``)."""

    min_contrast_db: float = 6.0  # extra harmonics above the between-harmonic floor by more than this
    max_drop_db: float = 6.0  # and no more than this below the tracked F0's own harmonics
    max_uncertainty: float = 0.4  # with the song: only frames whose separator uncertainty is at most this
    max_hz: float = 4000.0  # harmonics up to this frequency
    peak_width: float = 0.02  # a peak is the maximum within +- this fraction of its frequency
    min_f0_hz: float = 40.0  # no candidate below this

    def __post_init__(self) -> None:
        if not (self.max_hz > 0 and 0 < self.peak_width < 0.5 and self.min_f0_hz > 0):
            raise ValueError(f"invalid harmonic check {self}")


def window_length(sample_rate: int) -> int:
    """Samples of the analysis window at ``sample_rate``: the smallest power of two of at least 125 ms."""
    return 1 << int(np.ceil(np.log2(0.125 * sample_rate)))


def frame_power(mono: np.ndarray, sample_rate: int, frame_rate: int, frames: np.ndarray) -> np.ndarray:
    """Power spectra of the frames ``frames`` (indices on the ``frame_rate`` grid) of ``mono`` ``(n,)``:
    float64 ``(len(frames), window_length // 2 + 1)``, Hann-windowed, plus :data:`POWER_FLOOR`."""
    n_fft = window_length(sample_rate)
    padded = np.pad(np.asarray(mono, dtype=np.float64), (n_fft // 2, n_fft // 2))
    starts = (np.asarray(frames) * sample_rate // frame_rate).astype(np.int64)
    segments = padded[starts[:, None] + np.arange(n_fft)[None, :]]
    return np.abs(np.fft.rfft(segments * np.hanning(n_fft), axis=1)) ** 2 + POWER_FLOOR


def separator_uncertainty(vocal_power: np.ndarray, mixture_power: np.ndarray) -> np.ndarray:
    """Energy-weighted ``4 m (1 - m)`` per frame, ``m = min(1, sqrt(vocal / mixture))`` per bin: ``(n_frames,)``
    in [0, 1] from power spectra ``(n_frames, n_bins)``."""
    mask = np.minimum(1.0, np.sqrt(vocal_power / mixture_power))
    return (4.0 * mask * (1.0 - mask) * vocal_power).sum(axis=1) / vocal_power.sum(axis=1)


def local_peaks(level: np.ndarray, width: float) -> np.ndarray:
    """``level`` ``(n_frames, n_bins)`` with each bin ``b`` replaced by the maximum over bins ``b - w .. b + w``,
    ``w = max(1, round(width * b))`` (clipped to the spectrum), by a sparse table of running maxima."""
    n_bins = level.shape[1]
    bins = np.arange(n_bins)
    half = np.maximum(1, np.rint(width * bins).astype(np.int64))
    lo, hi = np.maximum(bins - half, 0), np.minimum(bins + half, n_bins - 1)
    order = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
    table = [level]  # table[j][:, i] = max(level[:, i : i + 2 ** j])
    for j in range(1, int(order.max()) + 1):
        step = 1 << (j - 1)
        table.append(np.maximum(table[-1][:, :-step], table[-1][:, step:]))
    out = np.empty_like(level)
    for j in np.unique(order):
        cols = order == j
        out[:, cols] = np.maximum(table[j][:, lo[cols]], table[j][:, hi[cols] - (1 << j) + 1])
    return out


def mean_level(peaks: np.ndarray, freqs: np.ndarray, valid: np.ndarray, bin_hz: float) -> np.ndarray:
    """Mean of ``peaks`` ``(n_frames, n_bins)`` at ``freqs`` ``(n_frames, n_k)`` Hz (nearest bin) over the entries
    where ``valid``: ``(n_frames,)``, NaN where none is valid."""
    index = np.clip(np.rint(freqs / bin_hz).astype(np.int64), 0, peaks.shape[1] - 1)
    values = np.take_along_axis(peaks, index, axis=1)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (values * valid).sum(axis=1) / count, np.nan)


@dataclass(frozen=True)
class FrameEvidence:
    """What the check measured in voiced frames: ``frames`` ``(n,)`` (indices on the frame grid), their tracked
    ``f0_hz`` ``(n,)``, per candidate of :data:`CANDIDATE_RATIOS` the ``contrast`` ``(n, 3)`` (dB, ``extra -
    between``) and ``strength`` ``(n, 3)`` (dB, ``extra - own``; NaN where a candidate has no such harmonic below
    ``max_hz``), and the separator's ``uncertainty`` ``(n,)`` (NaN without the song)."""

    frames: np.ndarray
    f0_hz: np.ndarray
    contrast: np.ndarray
    strength: np.ndarray
    uncertainty: np.ndarray

    def candidates(self) -> np.ndarray:
        """The lower candidates' F0, Hz ``(n, 3)``."""
        return self.f0_hz[:, None] * np.array([p / q for p, q in CANDIDATE_RATIOS])[None, :]


def candidate_levels(
    f0_hz: np.ndarray, peaks: np.ndarray, bin_hz: float, check: HarmonicCheck
) -> tuple[np.ndarray, np.ndarray]:
    """``(contrast, strength)``, each ``(n, 3)`` dB, of the lower candidates of voiced frames ``f0_hz`` ``(n,)``
    (> 0) with peak levels ``peaks`` ``(n, n_bins)`` (dB, :func:`local_peaks`) on bins ``bin_hz`` apart."""
    f0 = np.asarray(f0_hz, dtype=np.float64)
    n_own = np.floor(check.max_hz / f0)
    k_own = np.arange(1, int(n_own.max()) + 1)
    own = mean_level(peaks, f0[:, None] * k_own, k_own <= n_own[:, None], bin_hz)
    contrast, strength = [], []
    for p, q in CANDIDATE_RATIOS:
        cand = f0 * p / q
        n_harm = np.floor(check.max_hz / cand)
        k = np.arange(1, int(n_harm.max()) + 1)
        extra = mean_level(peaks, cand[:, None] * k, (k <= n_harm[:, None]) & (k % q != 0), bin_hz)
        between = mean_level(peaks, cand[:, None] * (k + 0.5), k < n_harm[:, None], bin_hz)
        contrast.append(extra - between)
        strength.append(extra - own)
    return np.stack(contrast, axis=1), np.stack(strength, axis=1)


def frame_evidence(
    f0_hz: np.ndarray,
    mono: np.ndarray,
    sample_rate: int,
    frame_rate: int,
    *,
    mixture: np.ndarray | None = None,
    check: HarmonicCheck = HarmonicCheck(),
) -> FrameEvidence:
    """The check's measurements (:class:`FrameEvidence`) in the voiced frames of ``f0_hz`` ``(n_frames,)`` (Hz, 0
    unvoiced, on the ``frame_rate`` grid of ``mono`` ``(n,)`` at ``sample_rate``); ``mixture`` (same shape as
    ``mono``): the song the vocal was separated from, for the separator's uncertainty."""
    f0 = np.asarray(f0_hz, dtype=np.float32)
    mono = np.asarray(mono, dtype=np.float64)
    if mixture is not None and np.shape(mixture) != mono.shape:
        raise ValueError(f"mixture must have the vocal's shape {mono.shape}, got {np.shape(mixture)}")
    bin_hz = sample_rate / window_length(sample_rate)
    voiced = np.flatnonzero(f0 > 0)
    contrast, strength = np.zeros((voiced.size, 3)), np.zeros((voiced.size, 3))
    uncertainty = np.full(voiced.size, np.nan)
    for start in range(0, voiced.size, CHUNK_FRAMES):
        chunk = slice(start, start + CHUNK_FRAMES)
        power = frame_power(mono, sample_rate, frame_rate, voiced[chunk])
        if mixture is not None:
            uncertainty[chunk] = separator_uncertainty(
                power, frame_power(mixture, sample_rate, frame_rate, voiced[chunk])
            )
        peaks = local_peaks(10.0 * np.log10(power), check.peak_width)
        contrast[chunk], strength[chunk] = candidate_levels(f0[voiced[chunk]], peaks, bin_hz, check)
    return FrameEvidence(voiced, f0[voiced].astype(np.float64), contrast, strength, uncertainty)


def chosen_f0(evidence: FrameEvidence, check: HarmonicCheck = HarmonicCheck()) -> np.ndarray:
    """The F0 the check keeps in each of ``evidence``'s frames, Hz ``(n,)``: the candidate with the largest contrast
    among those that hold (contrast above ``min_contrast_db``, strength above ``-max_drop_db``, at least
    ``min_f0_hz``), in frames the separator was sure of (uncertainty at most ``max_uncertainty``, or no song); else
    the tracked F0."""
    candidates = evidence.candidates()
    with np.errstate(invalid="ignore"):
        holds = (
            (evidence.contrast > check.min_contrast_db)
            & (evidence.strength > -check.max_drop_db)
            & (candidates >= check.min_f0_hz)
        )
        sure = np.isnan(evidence.uncertainty) | (evidence.uncertainty <= check.max_uncertainty)
    best = np.where(holds, evidence.contrast, -np.inf).argmax(axis=1)
    moved = holds.any(axis=1) & sure
    return np.where(moved, candidates[np.arange(best.size), best], evidence.f0_hz)


def check_lower_pitch(
    f0_hz: np.ndarray,
    mono: np.ndarray,
    sample_rate: int,
    frame_rate: int,
    *,
    mixture: np.ndarray | None = None,
    check: HarmonicCheck = HarmonicCheck(),
) -> np.ndarray:
    """``f0_hz`` ``(n_frames,)`` (Hz, 0 unvoiced, on the ``frame_rate`` grid of ``mono`` ``(n,)`` at
    ``sample_rate``) with every voiced frame the check moves set to its lower candidate: float32 ``(n_frames,)``.
    ``mixture`` (same shape as ``mono``): the song the vocal was separated from; only frames the separator was
    sure of are checked (:attr:`HarmonicCheck.max_uncertainty`)."""
    evidence = frame_evidence(f0_hz, mono, sample_rate, frame_rate, mixture=mixture, check=check)
    out = np.array(f0_hz, dtype=np.float32)
    out[evidence.frames] = chosen_f0(evidence, check)
    return out


__all__ = [
    "CANDIDATE_RATIOS",
    "HarmonicCheck",
    "FrameEvidence",
    "candidate_levels",
    "check_lower_pitch",
    "chosen_f0",
    "frame_evidence",
    "frame_power",
    "local_peaks",
    "separator_uncertainty",
    "window_length",
]
