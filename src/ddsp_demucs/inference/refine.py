"""Refine the separated vocal of a whole song with a trained :class:`~ddsp_demucs.model.ResidualDDSPDecoder`.

:func:`refine_vocals` takes a separated vocal at any sample rate and channel count and returns the refined
vocal at the same rate, channels and exact length:

1. the song is cut into overlapping windows of at most ``window_s`` seconds (``overlap_s`` shared by
   neighbours) that start on a grid common to the model's frames and the control frames (:func:`window_step`:
   5.12 s for configs base and large, 10.24 s for small and demo, whose hop is 512), so that a window's frames
   are the whole song's frames;
2. per window, an *analysis span* (the window plus :data:`CONTEXT_S` on each side, within the song) is
   downmixed to mono, resampled to ``model.sample_rate`` and its frame controls are computed there
   (:func:`ddsp_demucs.features.controls.frame_controls` at ``model.frame_rate``, F0 method, voicing threshold and
   CREPE hop from the checkpoint's ``features`` config, :func:`f0_tracker`): loudness as the dataset computes it,
   F0 at the model's rate where the dataset's was tracked at the stem's (see :mod:`ddsp_demucs.features.controls`);
   the window's own samples and frames are cut from it, so the controls inside a window equal those of the whole
   song up to the F0 tracker's Viterbi decoding near the span's edges;
3. the model runs on that window only (model rate, mono, on the model's device) and its composition
   (:mod:`ddsp_demucs.model.compositions`) applies the result to *each channel* of the song-rate vocal: ``mask`` moves
   its mask onto the song-rate STFT of each channel (frequencies above the model's Nyquist are kept) keeping
   that channel's phase; ``gate`` blends each channel with the synthesis resampled to the song rate; ``synth``
   makes the mono resynthesis every channel's output (pure resynthesis has no per-channel information). The
   synthesis of ``gate`` and ``synth`` continues the song's: the oscillators start each window with the phase
   the previous window reached there (:func:`~ddsp_demucs.dsp.harmonic_phase`), and the noise is cut from one
   song-long stream (:func:`noise_stream`), so two overlapping windows synthesise the same signal, not two
   uncorrelated ones whose crossfade would dip;
4. windows are summed with complementary raised-cosine crossfades over the overlaps (the weights sum to 1).

The model, STFTs and analysis never see more than one window (+ context), so peak memory beyond the input and
output arrays does not grow with the song's length. A ``gate`` or ``mask`` model at initialisation returns its
input (up to float rounding). :func:`refine_song` adds separation and files; ``ddsp-demucs refine`` is its CLI.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio, save_audio
from ddsp_demucs.core.config import FeaturesConfig
from ddsp_demucs.core.utils import get_logger, write_json_atomic
from ddsp_demucs.features.controls import frame_controls as controls_of
from ddsp_demucs.features.controls import mono_at
from ddsp_demucs.features.pitch import F0Tracker
from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.model.compositions import SongWindow
from ddsp_demucs.training.hub import is_hub_reference, resolve_checkpoint

if TYPE_CHECKING:
    from ddsp_demucs.features.pitch import F0Tracker

log = get_logger("refine")

CONTEXT_S = 0.5  # analysis context on each side of a window (s): resampling, F0, loudness
SEPARATED_NAME, REFINED_NAME, RECORD_NAME = "separated_vocals.wav", "refined_vocals.wav", "refine.json"
MIN_SONG_S = 0.5  # shortest song refine_song accepts (s)


# ---------------------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """One window of the song, in song-rate samples: ``[start, stop)`` is refined from the analysis span
    ``[context_start, context_stop)``; ``fade_in`` / ``fade_out`` are the crossfade lengths at each end."""

    start: int
    stop: int
    context_start: int
    context_stop: int
    fade_in: int
    fade_out: int


def time_quantum(sample_rate: int, model_sample_rate: int, frame_rate: int) -> int:
    """The smallest step in song samples that is also a whole number of model samples and of control frames:
    ``sample_rate / gcd(sample_rate, model_sample_rate, frame_rate)`` (882 samples = 20 ms at 44.1 kHz with a
    22.05 kHz / 250 Hz model). Analysis spans start on this grid, so their controls are the song's frames."""
    return sample_rate // math.gcd(math.gcd(int(sample_rate), int(model_sample_rate)), int(frame_rate))


def window_step(sample_rate: int, model: ResidualDDSPDecoder) -> int:
    """The grid of window starts in song samples: the least common multiple of one song sample, one model frame
    (``mask_hop / model.sample_rate`` s) and one control frame (``1 / frame_rate`` s) — 5.12 s for a 22.05 kHz model
    with hop 256 and 250 Hz controls, 10.24 s with hop 512. On this grid a window's model frames and control frames
    are exactly the whole song's, so a window's result converges to the whole-song result once the model's recurrent
    state has forgotten its start (the crossfade covers that)."""
    steps = [
        Fraction(1, int(sample_rate)),
        Fraction(int(model.hop), int(model.sample_rate)),
        Fraction(1, int(model.frame_rate)),
    ]
    numerator = math.lcm(*(f.numerator for f in steps))
    denominator = math.gcd(*(f.denominator for f in steps))
    return int(Fraction(numerator, denominator) * int(sample_rate))


def plan_windows(
    n_samples: int, sample_rate: int, model: ResidualDDSPDecoder, window_s: float | None, overlap_s: float
) -> list[Window]:
    """Overlapping windows covering ``n_samples`` song samples at ``sample_rate`` Hz.

    Windows start every ``hop = window_s - overlap_s`` seconds rounded down to :func:`window_step` (at least
    one step), and each is ``hop + overlap`` long, so it is never longer than ``window_s`` unless that is
    shorter than one step plus the overlap; the overlap is cut to the hop if it exceeds it. The last window
    runs to the song's end and is longer than the overlap (a remainder too short for that joins the previous
    window). Analysis spans add :data:`CONTEXT_S` on each side, within the song. ``window_s=None`` (or a
    window at least as long as the song) gives one window over the whole song.
    """
    check_window_args(window_s, overlap_s)
    if window_s is None or math.isinf(window_s) or window_s * sample_rate >= n_samples:
        return [Window(0, n_samples, 0, n_samples, 0, 0)]
    q = time_quantum(sample_rate, model.sample_rate, int(model.frame_rate))
    context = math.ceil(CONTEXT_S * sample_rate / q) * q
    min_len = math.ceil(model.n_fft * sample_rate / model.sample_rate)
    step = window_step(sample_rate, model)
    hop = max(1, math.floor((window_s - overlap_s) * sample_rate / step)) * step
    overlap = min(round(overlap_s * sample_rate), hop)
    starts = [0]
    while starts[-1] + hop + overlap < n_samples:
        nxt = starts[-1] + hop
        if n_samples - nxt <= max(min_len, overlap):  # a tiny remainder joins the current window
            break
        starts.append(nxt)
    windows = []
    for i, start in enumerate(starts):
        last = i == len(starts) - 1
        stop = n_samples if last else start + hop + overlap
        windows.append(
            Window(
                start,
                stop,
                max(0, start - context),
                min(n_samples, stop + context),
                fade_in=overlap if i > 0 else 0,
                fade_out=0 if last else overlap,
            )
        )
    return windows


def check_window_args(window_s: float | None, overlap_s: float) -> None:
    """Raise :class:`InputError` unless ``window_s`` is None or > 0 and ``0 <= overlap_s <= window_s / 2``."""
    if window_s is not None and not (window_s > 0):
        raise InputError(f"window_s (--window-s) must be positive, got {window_s}")
    if not (overlap_s >= 0) or (window_s is not None and overlap_s > window_s / 2):
        raise InputError(
            f"overlap_s (--overlap-s) must be between 0 and half the window ({window_s} s), got {overlap_s}"
        )


def check_strength(strength: float) -> None:
    """Raise :class:`InputError` unless ``0 <= strength <= 1``."""
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"strength (--strength) must be between 0 and 1, got {strength}")


def apply_strength(vocals: np.ndarray, refined: np.ndarray, strength: float) -> np.ndarray:
    """``vocals + strength * (refined - vocals)`` in float32 (``refined`` itself at strength 1) for a strength in
    [0, 1] (:func:`check_strength`): part of a refinement, as :func:`refine_vocals` applies it."""
    if strength == 1.0:
        return refined
    return vocals + np.float32(strength) * (refined - vocals)


def crossfade_weights(window: Window) -> np.ndarray:
    """Per-sample weights ``(stop - start,)`` of a window: raised-cosine fade-in / fade-out over the overlaps,
    1 elsewhere. A fade-out and the next window's fade-in sum to exactly 1 (one is computed as 1 - the other)."""
    w = np.ones(window.stop - window.start, dtype=np.float64)
    if window.fade_in:
        w[: window.fade_in] = _fade(window.fade_in)
    if window.fade_out:
        w[-window.fade_out :] *= 1.0 - _fade(window.fade_out)
    return w.astype(np.float32)


def _fade(n: int) -> np.ndarray:
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


# --------------------------------------------------------------------------------------------- controls
def f0_tracker(
    model: ResidualDDSPDecoder,
    f0_method: str | None,
    voicing_threshold: float | None,
    harmonic_check: bool | None = None,
) -> F0Tracker:
    """The model's F0 tracker: method, voicing threshold and harmonic check from the arguments, else (with the CREPE
    hop) from the checkpoint's ``features`` config, else the defaults (checkpoints from before the check: off)."""

    feats = dict((getattr(model, "config", None) or {}).get("features") or {})

    def setting(given, key: str):
        return given if given is not None else feats.get(key, getattr(FeaturesConfig, key))

    return F0Tracker(
        setting(f0_method, "f0_method"),
        float(setting(voicing_threshold, "voicing_threshold")),
        int(feats.get("crepe_hop", FeaturesConfig.crepe_hop)),
        bool(setting(harmonic_check, "harmonic_check")),
    )


def frame_controls(
    mono: np.ndarray,
    model: ResidualDDSPDecoder,
    *,
    tracker: F0Tracker,
    f0_mono: np.ndarray | None = None,
    mixture_mono: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The frame controls of a model-rate mono signal ``(n,)``: float32 ``f0_hz``, ``f0_confidence``,
    ``loudness_db``, each ``(n * frame_rate // sample_rate,)``, frame ``j`` at ``j / frame_rate`` s:
    :func:`ddsp_demucs.features.controls.frame_controls` at the model's rates. ``f0_mono`` (same shape): track F0
    and confidence on it instead (the oracle-F0 diagnosis); ``mixture_mono`` (same shape): the song, for a tracker
    that reads it (``F0Tracker.reads_mixture``). Loudness is the dataset's; the dataset's F0 is tracked at the
    stem's rate, this one at the model's (see :mod:`ddsp_demucs.features.controls`)."""

    return controls_of(
        mono, model.sample_rate, int(model.frame_rate), tracker=tracker, f0_audio=f0_mono, mixture=mixture_mono
    )


# --------------------------------------------------------------------------------------------- synthesis
NOISE_BLOCK = 4096  # model samples per independently seeded block of the noise stream


def noise_stream(seed: int, start: int, n_samples: int) -> torch.Tensor:
    """Samples ``[start, start + n_samples)`` of one song-long stream of uniform white noise in [-1, 1),
    float32 ``(n_samples,)``: block ``b`` (samples ``b * NOISE_BLOCK`` onwards) is drawn from a generator seeded
    with ``(seed, b)``, so any window of the stream is the same whichever window asks for it."""
    first, last = start // NOISE_BLOCK, (start + n_samples - 1) // NOISE_BLOCK
    blocks = [
        torch.rand(NOISE_BLOCK, generator=torch.Generator().manual_seed(seed * 1_000_003 + b))
        for b in range(first, last + 1)
    ]
    offset = start - first * NOISE_BLOCK
    return (torch.cat(blocks)[offset : offset + n_samples] * 2.0 - 1.0).contiguous()


# --------------------------------------------------------------------------------------------- refining
def _check_vocals(vocals: np.ndarray, sample_rate: int, model) -> np.ndarray:
    if not isinstance(model, ResidualDDSPDecoder):
        raise DDSPDemucsError(f"refine needs a ResidualDDSPDecoder, got {type(model).__name__}")
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    audio = np.asarray(vocals, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise InputError(f"vocals must be (n_samples, n_channels), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise InputError("vocals contain NaN or infinite samples")
    shortest = math.ceil(model.n_fft * sample_rate / model.sample_rate)
    if audio.shape[0] < shortest:
        raise InputError(
            f"vocals too short ({audio.shape[0] / sample_rate:.3f} s; the model needs at least "
            f"{shortest / sample_rate:.3f} s)"
        )
    return audio


def refine_vocals(
    model: ResidualDDSPDecoder,
    vocals: np.ndarray,
    sample_rate: int,
    *,
    window_s: float | None = 30.0,
    overlap_s: float = 1.0,
    f0_method: str | None = None,
    voicing_threshold: float | None = None,
    progress: bool = False,
    seed: int = 0,
    f0_reference: np.ndarray | None = None,
    strength: float = 1.0,
    mixture: np.ndarray | None = None,
    harmonic_check: bool | None = None,
) -> np.ndarray:
    """Refine a separated vocal with ``model`` (see the module docstring for the method).

    Args:
        model: a :class:`ResidualDDSPDecoder` (e.g. from :func:`~ddsp_demucs.training.checkpoints.load_model`), in
            eval mode.
        vocals: ``(n_samples, n_channels)`` float at ``sample_rate`` Hz, any rate, one or more channels.
        window_s, overlap_s: window length and crossfade overlap in seconds (``window_s=None``: one window
            over the whole song, memory growing with its length).
        f0_method, voicing_threshold: override the checkpoint's ``features`` settings.
        progress: show a progress bar over windows.
        seed: seeds the noise stream of ``synth`` / ``gate`` models (:func:`noise_stream`).
        f0_reference: ``(n_samples, any channels)`` at ``sample_rate``: track F0 on this signal instead of on
            ``vocals`` (the oracle-F0 diagnosis passes the true vocal; users leave it None).
        strength: how much of the refinement is applied, in [0, 1]: the output is ``vocals + strength *
            (refined - vocals)`` (1: the model's output, 0: the input). For a ``mask`` model this is the mask moved
            toward 1: ``1 + strength * (mask - 1)``.
        mixture: the song ``(n_samples, any channels)`` at ``sample_rate`` the vocal was separated from; needed by
            models that read it (``use_accompaniment_encoder``, ``ambiguity_gate``: ``model.reads_mixture``);
            the harmonic check reads it where given (it then checks only frames the separator was sure of), and
            so does the ``crepe-mixture`` tracker (without it, the vocal in its place).
        harmonic_check: override the checkpoint's ``features.harmonic_check``: move F0 read an octave, fifth or
            fourth too high (:mod:`ddsp_demucs.features.harmonic_check`).

    Returns:
        float32 ``(n_samples, n_channels)`` at ``sample_rate``: same length and channels as ``vocals``.
    """
    check_strength(strength)
    audio = _check_vocals(vocals, sample_rate, model)
    if f0_reference is not None:
        f0_reference = np.asarray(f0_reference, dtype=np.float32)
        if f0_reference.ndim != 2 or f0_reference.shape[0] != audio.shape[0]:
            raise InputError(
                f"f0_reference must be (n_samples, n_channels) with {audio.shape[0]} samples, "
                f"got shape {f0_reference.shape}"
            )
    tracker = f0_tracker(model, f0_method, voicing_threshold, harmonic_check)
    if not (model.reads_mixture or tracker.reads_mixture):
        mixture = None
    elif mixture is None and model.reads_mixture:
        raise InputError(f"this model reads the mixture: need the song ({audio.shape[0]} samples, channels), got none")
    elif mixture is not None and (np.ndim(mixture) != 2 or np.shape(mixture)[0] != audio.shape[0]):
        raise InputError(f"mixture: need the song ({audio.shape[0]} samples, channels), got shape {np.shape(mixture)}")
    windows = plan_windows(audio.shape[0], sample_rate, model, window_s, overlap_s)
    from tqdm.auto import tqdm

    out = np.zeros_like(audio)
    phase = 0.0
    for i, win in enumerate(
        tqdm(windows, desc="windows", unit="win", leave=False, disable=not progress or len(windows) == 1)
    ):
        next_start = windows[i + 1].start if i + 1 < len(windows) else None
        y, phase = refine_window(
            model,
            audio,
            sample_rate,
            win,
            tracker=tracker,
            seed=seed,
            initial_phase=phase,
            next_start=next_start,
            f0_reference=f0_reference,
            mixture=mixture,
        )
        out[win.start : win.stop] += crossfade_weights(win)[:, None] * y
    return apply_strength(audio, out, strength)


def refine_window(
    model: ResidualDDSPDecoder,
    audio: np.ndarray,
    sample_rate: int,
    window: Window,
    *,
    tracker: F0Tracker,
    seed: int = 0,
    initial_phase: float = 0.0,
    next_start: int | None = None,
    f0_reference: np.ndarray | None = None,
    mixture: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Refine ``audio[window.start:window.stop]`` (``(n, n_channels)`` at ``sample_rate``) -> the same shape,
    float32, with controls from the window's analysis span and the model run on the window alone
    (F0 from the same span of ``f0_reference`` where given; the same span of ``mixture``, downmixed and resampled,
    as the batch's ``mixture_audio`` where given and the model reads it, and for the tracker's harmonic check).

    ``gate`` / ``synth`` models start their oscillators at ``initial_phase`` (radians) and cut their noise from
    :func:`noise_stream` ``(seed)`` at the window's position. Returns the refined window and the oscillator phase
    with which the window starting at song sample ``next_start`` continues this one (0 for ``mask`` models or
    when ``next_start`` is None)."""
    msr, fr = model.sample_rate, int(model.frame_rate)
    span = slice(window.context_start, window.context_stop)
    mono = mono_at(audio[span], sample_rate, msr)
    f0_mono = None if f0_reference is None else mono_at(f0_reference[span], sample_rate, msr)
    mix = None if mixture is None else mono_at(mixture[span], sample_rate, msr)
    controls = frame_controls(mono, model, tracker=tracker, f0_mono=f0_mono, mixture_mono=mix)
    # window boundaries are on the time quantum, so these offsets are exact integers
    m0 = (window.start - window.context_start) * msr // sample_rate
    n_model = math.ceil((window.stop - window.start) * msr / sample_rate)
    f_off, n_frames = m0 * fr // msr, n_model * fr // msr
    device = next(model.parameters()).device
    batch = {"input_audio": torch.from_numpy(np.ascontiguousarray(mono[m0 : m0 + n_model]))[None]}
    if mix is not None and model.reads_mixture:
        batch["mixture_audio"] = torch.from_numpy(np.ascontiguousarray(mix[m0 : m0 + n_model]))[None]
    batch.update({k: torch.from_numpy(v[f_off : f_off + n_frames].copy())[None] for k, v in controls.items()})
    batch = {k: v.to(device) for k, v in batch.items()}
    song_window = SongWindow(
        audio=torch.from_numpy(np.ascontiguousarray(audio[window.start : window.stop].T)).to(device),  # (ch, n)
        sample_rate=sample_rate,
        n_model=n_model,
        white_noise=noise_stream(seed, window.start * msr // sample_rate, n_model)[None].to(device),
        initial_phase=initial_phase,
        next_offset=None if next_start is None else (next_start - window.start) * msr // sample_rate,  # exact
        mixture=window_channels(mixture[window.start : window.stop], audio.shape[1], device)
        if mixture is not None and model.reads_mixture and model.composer.reads_song_mixture
        else None,
    )
    with torch.inference_mode():
        y, phase = model.composer.refine_window(model, batch, song_window)
    return np.ascontiguousarray(y.T.cpu().numpy(), dtype=np.float32), phase


def window_channels(mixture: np.ndarray, n_channels: int, device: torch.device) -> torch.Tensor:
    """``mixture (n, any channels)`` as ``(n_channels, n)`` float32 on ``device``: its own channels where they
    match, else its mono downmix on every channel."""
    if mixture.shape[1] != n_channels:
        mixture = np.repeat(mixture.mean(axis=1, keepdims=True), n_channels, axis=1)
    return torch.from_numpy(np.ascontiguousarray(mixture.T, dtype=np.float32)).to(device)


# ------------------------------------------------------------------------------------------------- songs
def song_output_dir(song_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """``out_dir/<song file stem>``: where :func:`refine_song` writes a song's files."""
    return Path(out_dir) / Path(song_path).stem


def _settings(
    model: ResidualDDSPDecoder,
    separator,
    checkpoint,
    checkpoint_file,
    window_s,
    overlap_s,
    strength,
    f0_method,
    harmonic_check,
) -> dict:
    hub = bool(checkpoint) and is_hub_reference(checkpoint)
    return {
        "checkpoint": (checkpoint if hub else str(Path(checkpoint).resolve())) if checkpoint else None,
        "checkpoint_file": str(checkpoint_file) if hub else None,  # the cached file: its snapshot folder is the commit
        "separator": separator.name,
        "separator_signature": getattr(separator, "signature", None),
        "composition": model.composition,
        "window_s": window_s,
        "overlap_s": overlap_s,
        "strength": strength,
        "f0_method": f0_method,
        "harmonic_check": harmonic_check,
    }


def _is_up_to_date(song_path: Path, song_dir: Path, settings: dict, checkpoint_file: Path | None) -> bool:
    outputs = [song_dir / SEPARATED_NAME, song_dir / REFINED_NAME, song_dir / RECORD_NAME]
    if not all(p.is_file() for p in outputs):
        return False
    try:
        record = json.loads(outputs[-1].read_text())
    except (OSError, ValueError):
        return False
    if any(record.get(k) != v for k, v in settings.items()):
        return False
    inputs = [song_path] + ([checkpoint_file] if checkpoint_file else [])
    newest_input = max(p.stat().st_mtime for p in inputs)
    return min(p.stat().st_mtime for p in outputs) >= newest_input


def refine_song(
    song_path: str | os.PathLike,
    model: ResidualDDSPDecoder,
    separator,
    out_dir: str | os.PathLike,
    *,
    window_s: float | None = 30.0,
    overlap_s: float = 1.0,
    force: bool = False,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    strength: float = 1.0,
    f0_method: str | None = None,
    harmonic_check: bool | None = None,
) -> dict:
    """Separate and refine one song file (``strength``, ``f0_method``, ``harmonic_check``: as in
    :func:`refine_vocals`).

    Writes ``out_dir/<song stem>/separated_vocals.wav`` and ``refined_vocals.wav`` (float WAV at the song's
    rate, channels and exact length) and ``refine.json`` (settings, checkpoint, separator, timings), each
    atomically, the record last. Skips the song when all three exist, the record's settings match and the
    outputs are newer than the song (and ``checkpoint``, the model's file if given), unless ``force``.
    ``checkpoint`` may be an ``hf://`` reference (:mod:`ddsp_demucs.training.hub`): the record keeps it as given and the
    cached file it resolved to (``checkpoint_file``, whose snapshot folder names the commit).
    ``separator`` is any object with ``name`` and ``separate(mixture, sample_rate) -> {"vocals": ...}`` (see
    :func:`ddsp_demucs.separation.demucs.get_separator`).

    Returns the record (with ``"skipped": True`` when nothing was redone). Raises :class:`InputError` naming
    the file for a missing, unreadable, empty, silent, non-finite or too short song, or one the separator
    cannot take (e.g. more than two channels).
    """
    song_path = Path(song_path)
    song_dir = song_output_dir(song_path, out_dir)
    checkpoint_file = resolve_checkpoint(checkpoint) if checkpoint else None
    settings = _settings(
        model, separator, checkpoint, checkpoint_file, window_s, overlap_s, strength, f0_method, harmonic_check
    )
    if not force and song_path.is_file() and _is_up_to_date(song_path, song_dir, settings, checkpoint_file):
        log.info("%s: up to date in %s, skipped", song_path.name, song_dir)
        return {**json.loads((song_dir / RECORD_NAME).read_text()), "skipped": True}
    t0 = time.perf_counter()
    mixture, sr = load_audio(song_path, min_duration_s=MIN_SONG_S)
    t1 = time.perf_counter()
    log.info(
        "%s: %.1f s, %d Hz, %d ch; separating with %s",
        song_path.name,
        mixture.shape[0] / sr,
        sr,
        mixture.shape[1],
        separator.name,
    )
    try:
        vocals = separator.separate(mixture, sr)["vocals"]
    except InputError as exc:
        raise InputError(f"{song_path}: {exc}") from None
    t2 = time.perf_counter()
    log.info("%s: refining (%s model)", song_path.name, model.composition)
    try:
        refined = refine_vocals(
            model,
            vocals,
            sr,
            window_s=window_s,
            overlap_s=overlap_s,
            progress=progress,
            strength=strength,
            mixture=mixture,
            f0_method=f0_method,
            harmonic_check=harmonic_check,
        )
    except InputError as exc:
        raise InputError(f"{song_path}: {exc}") from None
    t3 = time.perf_counter()
    save_audio(song_dir / SEPARATED_NAME, vocals, sr)
    save_audio(song_dir / REFINED_NAME, refined, sr)
    duration = mixture.shape[0] / sr
    record = {
        "song": str(song_path),
        **settings,
        "sample_rate": sr,
        "channels": int(mixture.shape[1]),
        "n_samples": int(mixture.shape[0]),
        "duration_s": duration,
        "timings_s": {"load": t1 - t0, "separate": t2 - t1, "refine": t3 - t2, "write": time.perf_counter() - t3},
        "refine_real_time_factor": (t3 - t2) / duration,
        "provenance": getattr(model, "provenance", None),
    }  # what the checkpoint was trained on
    write_json_atomic(song_dir / RECORD_NAME, record)
    log.info("%s: wrote %s (refinement %.2fx real time)", song_path.name, song_dir, record["refine_real_time_factor"])
    return {**record, "skipped": False}


__all__ = [
    "refine_vocals",
    "refine_song",
    "refine_window",
    "plan_windows",
    "crossfade_weights",
    "time_quantum",
    "window_step",
    "frame_controls",
    "check_window_args",
    "check_strength",
    "apply_strength",
    "song_output_dir",
    "Window",
    "CONTEXT_S",
    "SEPARATED_NAME",
    "REFINED_NAME",
    "RECORD_NAME",
    "noise_stream",
    "NOISE_BLOCK",
    "f0_tracker",
]
