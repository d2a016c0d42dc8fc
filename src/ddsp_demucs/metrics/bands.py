"""Where the error lies (per frequency band, per voiced / unvoiced / silent region) and the voice character
(the share of power between the harmonics)."""

from __future__ import annotations

import math

import numpy as np

from ddsp_demucs.metrics.arrays import ArrayLike, as_float64_numpy

BANDS_HZ = ((0.0, 300.0), (300.0, 1000.0), (1000.0, 3000.0), (3000.0, 8000.0), (8000.0, None))
BAND_NAMES = ("lt300", "300_1k", "1k_3k", "3k_8k", "gt8k")
REGION_NAMES = ("voiced", "unvoiced", "silent")
# how interharmonic_share and error_change_by_harmonicity class bins by default (the same for both)
HARMONIC_N_FFT = 4096
HARMONIC_BAND_HZ = (60.0, 5000.0)
HARMONIC_HALF_WIDTH_HZ = 25.0  # covers the Hann main lobe at 44.1 kHz and 4096 points


def _error_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(error, reference)`` as float64 ``(n_samples, n_channels)``; ``(n_samples,)`` inputs become one channel."""
    est, ref = as_float64_numpy(estimate, "estimate"), as_float64_numpy(reference, "reference")
    if est.shape != ref.shape or est.ndim not in (1, 2) or est.shape[0] == 0 or est.size == 0:
        raise ValueError(
            f"estimate and reference must share a non-empty (n_samples,) or (n_samples, n_channels) "
            f"shape, got {est.shape} and {ref.shape}"
        )
    ref = ref.reshape(ref.shape[0], -1)
    if not np.any(ref):
        raise ValueError("reference is all zeros: error relative to its energy is undefined")
    return est.reshape(ref.shape) - ref, ref


def _ratio_db(numerator: float, denominator: float) -> float:
    """``10 log10(numerator / denominator)``; ``-inf`` when the numerator is 0."""
    return 10.0 * math.log10(numerator / denominator) if numerator > 0 else -math.inf


def _power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Two-sided ``|STFT|²`` folded onto ``(n_channels, n_stft_frames, n_fft // 2 + 1)`` one-sided bins (bins other
    than DC and Nyquist count twice) of ``x (n_samples, n_channels)``: periodic Hann window, frames centred at
    ``m * hop`` samples, zero padding of ``n_fft // 2`` samples at both ends."""
    padded = np.pad(x.T, ((0, 0), (n_fft // 2, n_fft // 2)))
    n_stft = 1 + (padded.shape[1] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop][:, :n_stft]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[0] = 1.0
    weights[-1] = 1.0 if n_fft % 2 == 0 else 2.0
    return np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 * weights


def band_error_db(
    estimate: ArrayLike, reference: ArrayLike, sample_rate: int, *, n_fft: int = 2048, hop: int = 512
) -> dict[str, float]:
    """Error energy per frequency band, relative to the whole reference energy, in dB (lower is better).

    For band ``b`` of :data:`BANDS_HZ` (``[lo, hi)`` Hz, named by :data:`BAND_NAMES`)::

        band_error_db[b] = 10 log10(sum_{channels, frames, bins f in b} |E|² / sum_{channels, frames, all bins} |R|²)

    with ``E`` and ``R`` the STFTs (float64, periodic Hann of ``n_fft`` samples, hop ``hop``, centred frames with
    zero padding) of ``estimate - reference`` and ``reference``; bin ``k`` is at ``k * sample_rate / n_fft`` Hz and
    sums are over the two-sided spectrum (one-sided bins other than DC and Nyquist count twice). The bands
    partition the bins, so ``10 log10(sum_b 10 ** (band_error_db[b] / 10))`` is the whole-signal
    error-to-reference energy ratio in the STFT domain; with a hop of ``n_fft / 4`` (the squared Hann windows sum
    to a constant) it equals the waveform ratio ``sum (estimate - reference)² / sum reference²`` up to the first
    and last ``n_fft`` samples, where fewer frames overlap. A band with no error energy (or no bins, e.g. ``gt8k``
    below 16 kHz sampling) is ``-inf``.

    Args:
        estimate, reference: ``(n_samples,)`` or ``(n_samples, n_channels)``, same shape; numpy or torch.
        sample_rate: Hz. n_fft: STFT size in samples (>= 2). hop: STFT hop in samples (>= 1).

    Returns:
        ``{name: dB}`` for the names of :data:`BAND_NAMES`, in that order.

    Raises:
        ValueError: on mismatched or empty shapes, non-finite values, an all-zero reference or bad parameters.
    """
    if sample_rate <= 0 or n_fft < 2 or hop < 1:
        raise ValueError(f"need sample_rate > 0, n_fft >= 2, hop >= 1; got {sample_rate}, {n_fft}, {hop}")
    error, ref = _error_pair(estimate, reference)
    error_per_bin = _power_spectrogram(error, n_fft, hop).sum(axis=(0, 1))
    ref_total = float(_power_spectrogram(ref, n_fft, hop).sum())
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    out = {}
    for name, (lo, hi) in zip(BAND_NAMES, BANDS_HZ):
        in_band = (freqs >= lo) & (freqs < (math.inf if hi is None else hi))
        out[name] = _ratio_db(float(error_per_bin[in_band].sum()), ref_total)
    return out


def _sample_regions(
    reference: np.ndarray, sample_rate: int, f0_hz: np.ndarray, frame_rate: float, silence_db: float
) -> np.ndarray:
    """Region index per sample ``(n_samples,)``: 0 voiced, 1 unvoiced, 2 silent (see :func:`region_error_db`)."""
    n_samples = reference.shape[0]
    frame = np.minimum(np.floor(np.arange(n_samples) * frame_rate / sample_rate + 0.5).astype(int), f0_hz.size - 1)
    power = np.bincount(frame, weights=(reference**2).mean(axis=1), minlength=f0_hz.size)
    count = np.bincount(frame, minlength=f0_hz.size)
    mean_power = np.divide(power, count, out=np.zeros_like(power), where=count > 0)
    with np.errstate(divide="ignore"):
        level_db = 10.0 * np.log10(mean_power / mean_power.max())
    silent = level_db < silence_db
    regions = np.where(silent, 2, np.where(f0_hz > 0, 0, 1))
    return regions[frame]


def region_error_db(
    estimate: ArrayLike,
    reference: ArrayLike,
    sample_rate: int,
    reference_f0_hz: ArrayLike,
    frame_rate: float,
    *,
    silence_db: float = -50.0,
) -> dict[str, float]:
    """Error energy in the voiced, unvoiced and silent parts of the reference, relative to its whole energy, in dB.

    Each sample belongs to the F0 frame whose centre is nearest (frame ``j`` centred at ``j / frame_rate`` s, so it
    spans ``[(j - 0.5) / frame_rate, (j + 0.5) / frame_rate)``; samples past the last frame belong to the last).
    A frame is *silent* when the reference's RMS over its samples (channels averaged in power) is more than
    ``-silence_db`` dB below the loudest frame's; otherwise *voiced* where ``reference_f0_hz > 0`` and *unvoiced*
    elsewhere. For each region ``r``::

        region_error_db[r] = 10 log10( sum_{samples in r, channels} (estimate - reference)² / sum_{all} reference² )

    The regions partition the samples, so ``10 log10(sum_r 10 ** (region_error_db[r] / 10))`` is the whole-signal
    error-to-reference energy ratio. An empty or error-free region is ``-inf``.

    Args:
        estimate, reference: ``(n_samples,)`` or ``(n_samples, n_channels)``, same shape; numpy or torch.
        sample_rate: Hz.
        reference_f0_hz: ``(n_frames,)`` Hz, 0 where unvoiced, with ``n_frames`` within one of
            ``n_samples * frame_rate // sample_rate`` (the project's frame count).
        frame_rate: frames per second. silence_db: silence threshold in dB relative to the loudest frame (<= 0).

    Returns:
        ``{"voiced": dB, "unvoiced": dB, "silent": dB}``.

    Raises:
        ValueError: on mismatched shapes, an F0 track of the wrong length, an all-zero reference or bad parameters.
    """
    error, ref = _error_pair(estimate, reference)
    f0 = as_float64_numpy(reference_f0_hz, "reference_f0_hz")
    if sample_rate <= 0 or not frame_rate or frame_rate <= 0 or silence_db > 0:
        raise ValueError(
            f"need sample_rate > 0, frame_rate > 0, silence_db <= 0; got {sample_rate}, {frame_rate}, {silence_db}"
        )
    expected = int(ref.shape[0] * frame_rate // sample_rate)
    if f0.ndim != 1 or f0.size == 0 or abs(f0.size - expected) > 1 or np.any(f0 < 0):
        raise ValueError(
            f"reference_f0_hz must be (n_frames,) >= 0 with about {expected} frames "
            f"(n_samples * frame_rate // sample_rate), got shape {f0.shape}"
        )
    regions = _sample_regions(ref, sample_rate, f0, frame_rate, silence_db)
    error_per_sample = (error**2).sum(axis=1)
    ref_total = float((ref**2).sum())
    return {
        name: _ratio_db(float(error_per_sample[regions == i].sum()), ref_total) for i, name in enumerate(REGION_NAMES)
    }


# ------------------------------------------------------------------------------------------ voice character
def interharmonic_share(
    audio: ArrayLike,
    sample_rate: int,
    f0_hz: ArrayLike,
    frame_rate: float,
    *,
    n_fft: int = HARMONIC_N_FFT,
    band_hz: tuple[float, float] = HARMONIC_BAND_HZ,
    half_width_hz: float = HARMONIC_HALF_WIDTH_HZ,
) -> float:
    """Share of a voice's power, in its voiced frames, that lies away from the harmonics of its F0.

    ``audio (n_samples,)`` or ``(n_samples, n_channels)`` goes through a periodic-Hann STFT of ``n_fft`` samples,
    hop ``n_fft // 4``, frames centred at ``m * hop`` (as :func:`band_error_db`), power summed over channels. Each
    STFT frame takes the F0 of the F0 frame nearest its centre (F0 frame ``j`` at ``j / frame_rate`` s; 0 =
    unvoiced). In the voiced frames, a bin inside ``band_hz`` is *harmonic* when its centre frequency lies within
    ``half_width_hz`` of a multiple ``k * F0`` (``k >= 1``); the default covers the Hann main lobe (2 bins either
    side: 21.5 Hz at 44.1 kHz and 4096 points). Returns::

        sum_{voiced frames, band bins not harmonic} |X|^2 / sum_{voiced frames, band bins} |X|^2

    in ``[0, 1]``: about 0 for a perfectly periodic voice with the right F0 (Hann side lobes leak a few tenths of a
    percent), the share of non-harmonic bins for white noise; breath, roughness, reverberation and accompaniment
    raise it. NaN when no voiced frame holds power in the band.
    """
    x = as_float64_numpy(audio, "audio")
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"audio must be (n_samples,) or (n_samples, n_channels), got shape {x.shape}")
    f0 = _checked_harmonic_args(f0_hz, sample_rate, frame_rate, n_fft, band_hz, half_width_hz)
    power = _power_spectrogram(x, n_fft, n_fft // 4).sum(axis=0)  # (n_stft_frames, n_bins)
    harmonic, between = _harmonic_bins(power.shape, sample_rate, n_fft, f0, frame_rate, band_hz, half_width_hz)
    total = float(power[harmonic | between].sum())
    return float(power[between].sum() / total) if total > 0 else math.nan


def harmonic_levels_db(
    audio: ArrayLike,
    sample_rate: int,
    f0_hz: ArrayLike,
    frame_rate: float,
    *,
    n_harmonics: int = 8,
    n_fft: int = 8192,
    tolerance: float = 0.03,
) -> np.ndarray:
    """The level of each of the first ``n_harmonics`` harmonics of a voice, in its voiced frames, in dB re the
    frame's strongest of them -> ``(n_voiced_frames, n_harmonics)`` (0 at the strongest; NaN above Nyquist).

    The STFT is :func:`interharmonic_share`'s (periodic Hann of ``n_fft`` samples, hop ``n_fft // 4``, power summed
    over channels, each STFT frame with the F0 of the F0 frame nearest its centre); harmonic ``k``'s level is the
    largest power among the bins from ``floor((1 - tolerance) k F0)`` to ``ceil((1 + tolerance) k F0)`` (in bins).
    A voice whose fundamental lies well below its strongest harmonic (column 0 far below 0) is one a pitch tracker
    reads a harmonic of once anything covers the fundamental."""
    x = as_float64_numpy(audio, "audio")
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"audio must be (n_samples,) or (n_samples, n_channels), got shape {x.shape}")
    if n_harmonics < 1 or not 0 < tolerance < 0.5:
        raise ValueError(f"need n_harmonics >= 1 and tolerance in (0, 0.5), got {n_harmonics}, {tolerance}")
    f0 = _checked_harmonic_args(f0_hz, sample_rate, frame_rate, n_fft, (0.0, sample_rate / 2), 1.0)
    power = _power_spectrogram(x, n_fft, n_fft // 4).sum(axis=0)  # (n_stft_frames, n_bins)
    frame_f0 = _stft_frame_f0(power.shape[0], sample_rate, n_fft, f0, frame_rate)
    voiced = np.nonzero(frame_f0 > 0)[0]
    levels = np.full((voiced.size, n_harmonics), np.nan)
    bin_hz = sample_rate / n_fft
    for row, m in enumerate(voiced):
        for k in range(1, n_harmonics + 1):
            centre = k * frame_f0[m] / bin_hz
            if centre > power.shape[1] - 1:
                break
            low, high = int(np.floor(centre * (1 - tolerance))), int(np.ceil(centre * (1 + tolerance)))
            levels[row, k - 1] = power[m, low : high + 1].max()  # the range holds the nearest bin
    strongest = np.nanmax(levels, axis=1, keepdims=True) if voiced.size else levels
    return 10.0 * np.log10(np.maximum(levels, 1e-300) / np.maximum(strongest, 1e-300))


def _checked_harmonic_args(
    f0_hz: ArrayLike,
    sample_rate: int,
    frame_rate: float,
    n_fft: int,
    band_hz: tuple[float, float],
    half_width_hz: float,
) -> np.ndarray:
    """``f0_hz`` as float64 after checking it and the STFT and band settings of :func:`_harmonic_bins`; raises
    ``ValueError`` naming what is wrong."""
    f0 = as_float64_numpy(f0_hz, "f0_hz")
    if f0.ndim != 1 or f0.size == 0 or np.any(f0 < 0):
        raise ValueError(f"f0_hz must be a non-empty (n_frames,) array >= 0 (0 = unvoiced), got shape {f0.shape}")
    if sample_rate <= 0 or not frame_rate or frame_rate <= 0 or n_fft < 4 or half_width_hz <= 0:
        raise ValueError(
            f"need sample_rate > 0, frame_rate > 0, n_fft >= 4, half_width_hz > 0; got {sample_rate}, "
            f"{frame_rate}, {n_fft}, {half_width_hz}"
        )
    if not 0 <= band_hz[0] < band_hz[1]:
        raise ValueError(f"band_hz must be (low, high) with 0 <= low < high, got {band_hz}")
    return f0


def _stft_frame_f0(n_frames: int, sample_rate: int, n_fft: int, f0: np.ndarray, frame_rate: float) -> np.ndarray:
    """``(n_frames,)``: for each frame of an STFT with hop ``n_fft // 4`` (frame ``m`` centred at ``m * hop``), the F0
    of the F0 frame nearest its centre (F0 frame ``j`` at ``j / frame_rate`` s)."""
    centres_s = np.arange(n_frames) * (n_fft // 4) / sample_rate
    return f0[np.minimum(np.floor(centres_s * frame_rate + 0.5).astype(int), f0.size - 1)]


def _harmonic_bins(
    shape: tuple[int, int],
    sample_rate: int,
    n_fft: int,
    f0: np.ndarray,
    frame_rate: float,
    band_hz: tuple[float, float],
    half_width_hz: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n_stft_frames, n_bins)`` masks of :func:`interharmonic_share`'s STFT (hop ``n_fft // 4``): the
    bins inside ``band_hz`` of the voiced frames within ``half_width_hz`` of a harmonic of the frame's F0, and the
    other bins inside ``band_hz`` of the voiced frames."""
    frame_f0 = _stft_frame_f0(shape[0], sample_rate, n_fft, f0, frame_rate)[:, None]
    bin_hz = (np.arange(shape[1]) * sample_rate / n_fft)[None, :]
    in_voiced_band = (frame_f0 > 0) & (bin_hz >= band_hz[0]) & (bin_hz <= band_hz[1])
    nearest = np.maximum(np.round(bin_hz / np.maximum(frame_f0, 1e-9)), 1.0)  # the nearest harmonic, k >= 1
    on_harmonic = np.abs(bin_hz - nearest * frame_f0) <= half_width_hz
    return in_voiced_band & on_harmonic, in_voiced_band & ~on_harmonic


def error_change_by_harmonicity(
    separated: ArrayLike,
    refined: ArrayLike,
    target: ArrayLike,
    sample_rate: int,
    f0_hz: ArrayLike,
    frame_rate: float,
    *,
    n_fft: int = HARMONIC_N_FFT,
    band_hz: tuple[float, float] = HARMONIC_BAND_HZ,
    half_width_hz: float = HARMONIC_HALF_WIDTH_HZ,
) -> dict[str, float]:
    """Where a refinement added (positive) or removed (negative) error: on the harmonics of the true vocal's F0
    (``on_harmonics``), between them (``between_harmonics``; both in its voiced frames, inside ``band_hz``, bins as
    :func:`interharmonic_share` classes them) and everywhere else (``elsewhere``: unvoiced frames, other bins).

    Mono ``(n_samples,)`` signals; the error of each is the signal minus its projection on ``target`` over the
    whole signal (as SI-SDR defines it); ``f0_hz (n_frames,)`` of the true vocal at ``frame_rate`` (0 = unvoiced).
    Each value is the change of the error's STFT power there as a share of the separated vocal's whole error
    power, so the three add up to the relative change of the whole error (up to the STFT's edge frames); NaN
    where the separated vocal has no error."""
    t = as_float64_numpy(target, "target")
    f0 = _checked_harmonic_args(f0_hz, sample_rate, frame_rate, n_fft, band_hz, half_width_hz)

    def error_power(x: ArrayLike, what: str) -> np.ndarray:
        x = as_float64_numpy(x, what)
        if x.shape != t.shape or x.ndim != 1:
            raise ValueError(f"{what} and target must be equal (n_samples,) shapes, got {x.shape} and {t.shape}")
        error = x - (t @ x) / (t @ t) * t
        return _power_spectrogram(error[:, None], n_fft, n_fft // 4)[0]

    before, after = error_power(separated, "separated"), error_power(refined, "refined")
    harmonic, between = _harmonic_bins(before.shape, sample_rate, n_fft, f0, frame_rate, band_hz, half_width_hz)
    total = float(before.sum())
    if total <= 0:  # the separated vocal is the target: no error to share out
        return {part: math.nan for part in ("on_harmonics", "between_harmonics", "elsewhere")}
    change = after - before
    return {
        "on_harmonics": float(change[harmonic].sum() / total),
        "between_harmonics": float(change[between].sum() / total),
        "elsewhere": float(change[~(harmonic | between)].sum() / total),
    }
