"""The deterministic synthetic multitrack corpus: songs with a singing-like lead voice over drums, bass and chords.

Every song is a pure function of its seed. The lead voice is a source-filter model:

* **F0**: melody notes on a scale (chord tones favoured on strong beats) in a male or female range, per-note
  intonation offsets, raised-cosine portamento (log-frequency) between legato notes, vibrato (5-6.5 Hz, depth
  varying per note, delayed onset) and jitter (low-passed random pitch perturbation, 6-16 cents).
* **Source**: a band-limited Rosenberg glottal pulse with lip radiation (the derivative of the glottal flow),
  read from single-period wavetables that hold only harmonics below ``0.45 * sample_rate`` for the song's highest
  F0 (so nothing aliases); a lax and a pressed pulse shape are blended by per-note vocal effort (spectral tilt).
  An extra tilt of ``k ** -t`` on harmonic ``k`` (``t`` from -0.3 to 0.2) keeps 1-3 kHz as strong as in real
  singing. Shimmer is a low-passed random amplitude modulation; aspiration noise (6-20 % of the source level) is
  added pitch-synchronously. Generator version 2 (``GENERATOR_VERSION``): version 1's duller, cleaner and steadier
  voice (tilt 0.3-0.9, 2-8 % aspiration, 3-8 cents of jitter) did not transfer to real singing
  (``experiments/exp003_real_singing.md``).
* **Filter**: a cascade of five Klatt resonators whose formant frequencies and bandwidths move between vowel
  targets (time-varying, coefficients updated every 128 samples), with F1 raised above F0 on high notes
  (formant tuning as sopranos do).
* **Unvoiced sounds**: fricatives and plosive bursts of band-pass filtered noise before some notes, breath
  noise (inhalations) before phrases, rests between phrases; a light stereo room reverb.

Accompaniment: drums (kick, snare, closed and open hats, synthesised), a bass following the chord roots and
chords (pads or keys, detuned per channel for stereo width) in the ``other`` stem. Tempo, key, mode, chord
progression, voice range, vowels, articulation and mix levels vary with the seed.

Stems are float32 ``(n_samples, 2)`` at 44.1 kHz; the mixture is exactly ``drums + bass + other + vocals``
computed in float32 in that order, and no sample of any stem or the mixture reaches 1.0 in magnitude.
The exact F0 of the voice is given on a frame grid of ``frame_rate`` Hz (default 250, the features' grid):
frame ``i`` is at ``i / frame_rate`` s, ``n_frames = n_samples * frame_rate // sample_rate``, and its value is
the voice's instantaneous F0 at sample ``round(i * sample_rate / frame_rate)`` where the voiced source is at
least 10 % (-20 dB) of its sustained level, else 0.

:func:`write_corpus` writes songs in the MUSDB18-HQ layout (``train/<name>/``, ``test/<name>/`` with
``mixture.wav, drums.wav, bass.wav, other.wav, vocals.wav``, plus ``f0.csv`` and ``track.json``) and a
``manifest.json``, so :func:`ddsp_demucs.data.musdb_tracks` reads it like MUSDB.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from ddsp_demucs.core.utils import atomic_folder, get_logger, write_json_atomic
from ddsp_demucs.corpus.sources import write_f0_csv, write_wav_float32

log = get_logger(__name__)

GENERATOR_VERSION = 2
STEM_NAMES = ("drums", "bass", "other", "vocals")  # the mixture is their float32 sum in this order
VOICED_THRESHOLD = 0.1  # voiced where the source gate is at least this fraction of its sustained level

# Vowel formant targets (Hz) F1..F5, after Peterson & Barney (1952) averages; F4/F5 typical values.
_VOWELS = {
    "male": {
        "a": (730, 1090, 2440, 3400, 4400),
        "e": (530, 1840, 2480, 3500, 4500),
        "i": (270, 2290, 3010, 3600, 4600),
        "o": (570, 840, 2410, 3300, 4300),
        "u": (300, 870, 2240, 3300, 4300),
        "ae": (660, 1720, 2410, 3400, 4400),
    },
    "female": {
        "a": (850, 1220, 2810, 4000, 4900),
        "e": (610, 2330, 2990, 4100, 5000),
        "i": (310, 2790, 3310, 4200, 5100),
        "o": (590, 920, 2710, 3900, 4800),
        "u": (370, 950, 2670, 3900, 4800),
        "ae": (860, 2050, 2850, 4000, 4900),
    },
}
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 220.0, 300.0])
_VOICE_RANGES = {"male": (45, 67), "female": (57, 79)}  # MIDI: A2-G4, A3-G5
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# progressions as scale degrees (0-based) of chord roots
_PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 4, 3), (3, 0, 4, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 3, 6, 2), (5, 6, 0, 0)),
}
_KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_BLOCK = 128  # formant filter coefficient update interval (samples, 2.9 ms at 44.1 kHz)


@dataclass(frozen=True)
class Note:
    """One sung note: times in seconds, ``midi`` the nominal pitch (before intonation offset and vibrato)."""

    onset_s: float
    offset_s: float
    midi: int
    vowel: str
    consonant: str | None  # "fricative", "plosive" or None (sounds just before the onset)
    vibrato_rate_hz: float
    vibrato_depth_cents: float
    legato_next: bool  # joined to the next note by portamento (no gap)


@dataclass
class SyntheticSong:
    """A generated song. ``stems`` maps ``drums, bass, other, vocals`` to float32 ``(n_samples, 2)``;
    ``mixture`` float32 ``(n_samples, 2)`` is their float32 sum in that order; ``f0_hz`` float64 ``(n_frames,)``
    is the voice's exact F0 at ``frame_rate`` (0 where unvoiced); ``notes`` the sung notes; ``info`` the song's
    parameters (tempo, key, voice, levels...)."""

    seed: int
    sample_rate: int
    frame_rate: int
    stems: dict[str, np.ndarray]
    mixture: np.ndarray
    f0_hz: np.ndarray
    notes: list[Note]
    info: dict = field(default_factory=dict)

    @property
    def f0_times(self) -> np.ndarray:
        """Frame times in seconds, ``(n_frames,)``: ``i / frame_rate``."""
        return np.arange(len(self.f0_hz)) / self.frame_rate


# ------------------------------------------------------------------------------------------------ helpers
def _rms(x: np.ndarray) -> float:
    """Root mean square summed in a fixed order (1024 column sums, row after row, then ``math.fsum``): numpy's
    pairwise SIMD sums can differ in the last bit with memory alignment, breaking byte-identical regeneration."""
    x = np.asarray(x, dtype=np.float64).ravel()
    squares = np.zeros(-(-len(x) // 1024) * 1024)
    squares[: len(x)] = x * x
    return math.sqrt(math.fsum(squares.reshape(-1, 1024).sum(axis=0)) / len(x))


def _midi_to_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of ``(n,)`` to ``(n, 2)``; ``pan`` in [-1 (left), 1 (right)]."""
    theta = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)], axis=1)


def _smooth_noise(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """Unit-variance-ish random signal ``(n,)`` band-limited to about ``rate_hz / 2``: white noise at
    ``rate_hz`` linearly interpolated to the sample rate."""
    n_ctrl = int(np.ceil(n * rate_hz / sample_rate)) + 2
    ctrl = rng.standard_normal(n_ctrl)
    return np.interp(np.arange(n) * (rate_hz / sample_rate), np.arange(n_ctrl), ctrl)


def _wavetable(coeffs: np.ndarray, size: int = 8192) -> np.ndarray:
    """One period ``(size + 1,)`` (last sample = first) of ``sum_k Re(coeffs[k-1] e^{i 2 pi k p})``."""
    spec = np.zeros(size // 2 + 1, dtype=np.complex128)
    spec[1 : len(coeffs) + 1] = coeffs
    table = np.fft.irfft(spec, n=size) * size / 2.0
    return np.append(table, table[0])


def _read_table(table: np.ndarray, phase_cycles: np.ndarray) -> np.ndarray:
    size = len(table) - 1
    return np.interp(np.mod(phase_cycles, 1.0) * size, np.arange(size + 1), table)


def rosenberg_harmonics(open_rise: float, open_fall: float, n_harmonics: int, size: int = 8192) -> np.ndarray:
    """Complex Fourier coefficients ``(n_harmonics,)`` of the derivative of a Rosenberg glottal pulse.

    The pulse over one period (phase ``p`` in [0, 1)) rises as ``(1 - cos(pi p / open_rise)) / 2``, falls as
    ``cos(pi (p - open_rise) / (2 open_fall))`` and is closed (0) afterwards; its derivative (lip radiation)
    is the excitation. Harmonic ``k`` of the result is ``1j * k * G_k``; normalised so the largest magnitude is 1.
    """
    p = np.arange(size) / size
    g = np.zeros(size)
    rise = p < open_rise
    fall = (p >= open_rise) & (p < open_rise + open_fall)
    g[rise] = 0.5 * (1.0 - np.cos(np.pi * p[rise] / open_rise))
    g[fall] = np.cos(np.pi * (p[fall] - open_rise) / (2.0 * open_fall))
    spectrum = np.fft.rfft(g)[1 : n_harmonics + 1] / size
    coeffs = 1j * np.arange(1, n_harmonics + 1) * spectrum
    return coeffs / np.max(np.abs(coeffs))


def _klatt_cascade_sos(formants: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Second-order sections ``(..., n_formants, 6)`` of a cascade of unity-DC-gain Klatt resonators."""
    t = 1.0 / sample_rate
    c = -np.exp(-2.0 * np.pi * bandwidths * t)
    b = 2.0 * np.exp(-np.pi * bandwidths * t) * np.cos(2.0 * np.pi * formants * t)
    a = 1.0 - b - c
    sos = np.zeros(formants.shape + (6,))
    sos[..., 0] = a
    sos[..., 3] = 1.0
    sos[..., 4] = -b
    sos[..., 5] = -c
    return sos


def _formant_filter(x: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Filter ``x (n,)`` by a time-varying resonator cascade; ``formants``/``bandwidths`` ``(n_blocks, 5)`` in Hz
    hold one setting per block of ``_BLOCK`` samples (``n_blocks = ceil(n / _BLOCK)``)."""
    sos_all = _klatt_cascade_sos(formants, bandwidths, sample_rate)
    y = np.zeros_like(x)
    zi = np.zeros((formants.shape[1], 2))
    for i in range(formants.shape[0]):
        seg = x[i * _BLOCK : (i + 1) * _BLOCK]
        if not seg.any() and np.abs(zi).max() < 1e-9:
            zi[:] = 0.0
            continue
        y[i * _BLOCK : (i + 1) * _BLOCK], zi = signal.sosfilt(sos_all[i], seg, zi=zi)
    return y


def _bandpass_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sample_rate: int) -> np.ndarray:
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n + 512))[512:]
    return noise / (_rms(noise - math.fsum(noise) / len(noise)) + 1e-12)


def _ramp(n_up: int, n_total: int, n_down: int) -> np.ndarray:
    """Raised-cosine attack, flat, raised-cosine release envelope of length ``n_total``."""
    env = np.ones(n_total)
    n_up, n_down = min(n_up, n_total), min(n_down, n_total)
    if n_up:
        env[:n_up] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_up) + 0.5) / n_up)
    if n_down:
        env[n_total - n_down :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(n_down) + 0.5) / n_down)
    return env


# ----------------------------------------------------------------------------------------------- the score
def _compose(rng: np.random.Generator, duration_s: float) -> dict:
    mode = str(rng.choice(["major", "minor"], p=[0.6, 0.4]))
    tonic = int(rng.integers(12))
    tempo = float(np.round(rng.uniform(72.0, 140.0), 1))
    beat = 60.0 / tempo
    voice = str(rng.choice(["male", "female"]))
    lo, hi = _VOICE_RANGES[voice]
    centre = int(rng.integers(lo + 6, hi - 5))
    progression = _PROGRESSIONS[mode][int(rng.integers(len(_PROGRESSIONS[mode])))]
    beats_per_chord = 4 if tempo > 95 else int(rng.choice([2, 4]))
    n_beats = int(np.ceil(duration_s / beat)) + 4
    chords = []  # (start_beat, root pitch class, scale-degree root)
    for i, start in enumerate(range(0, n_beats, beats_per_chord)):
        chords.append((start, progression[i % len(progression)]))

    scale = _SCALES[mode]
    pitches = [tonic + 12 * octave + s for octave in range(-1, 11) for s in scale]
    pitches = [p for p in pitches if lo <= p <= hi]
    vowel_pool = list(rng.choice(list(_VOWELS["male"]), size=int(rng.integers(3, 6)), replace=False))

    def chord_at(b):
        idx = min(int(b // beats_per_chord), len(chords) - 1)
        return chords[idx][1]

    def chord_tones(degree):
        return {(tonic + scale[(degree + j) % 7]) % 12 for j in (0, 2, 4)}

    notes = []
    b = float(rng.choice([0.5, 1.0, 1.5]))  # a short intro: the song never starts voiced
    current = min(pitches, key=lambda p: abs(p - centre))
    phrase_len = int(rng.integers(4, 9))
    in_phrase = 0
    vib_rate = rng.uniform(5.2, 6.2)
    while b * beat < duration_s:
        dur = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 3.0], p=[0.25, 0.3, 0.15, 0.1, 0.15, 0.05]))
        step = int(
            rng.choice([-3, -2, -1, 0, 1, 2, 3, 4, -4], p=[0.05, 0.15, 0.25, 0.1, 0.25, 0.1, 0.05, 0.025, 0.025])
        )
        idx = int(np.clip(pitches.index(current) + step, 0, len(pitches) - 1))
        if abs(pitches[idx] - centre) > 8:  # drift back toward the centre of the range
            idx = int(np.clip(idx - np.sign(pitches[idx] - centre) * 2, 0, len(pitches) - 1))
        if b % 2 == 0:  # strong beat: prefer the nearest chord tone
            tones = chord_tones(chord_at(b))
            near = [p for p in pitches if p % 12 in tones and abs(p - pitches[idx]) <= 2]
            if near:
                idx = pitches.index(min(near, key=lambda p: abs(p - pitches[idx])))
        current = pitches[idx]
        in_phrase += 1
        end_phrase = in_phrase >= phrase_len
        rest = float(rng.choice([1.0, 1.5, 2.0])) if end_phrase else float(rng.choice([0.0, 0.5], p=[0.85, 0.15]))
        consonant = rng.choice(["fricative", "plosive", "none"], p=[0.3, 0.25, 0.45])
        depth = float(rng.uniform(15.0, 45.0)) * (1.0 if dur * beat > 0.35 else 0.3)
        notes.append(
            dict(
                onset_beat=b,
                dur_beats=dur,
                midi=current,
                rest_after=rest,
                vowel=str(rng.choice(vowel_pool)),
                consonant=None if consonant == "none" else str(consonant),
                vibrato_rate_hz=float(vib_rate + rng.uniform(-0.2, 0.2)),
                vibrato_depth_cents=depth,
                legato=float(rng.uniform(0.8, 0.95)),
            )
        )
        b += dur + rest
        if end_phrase:
            in_phrase, phrase_len = 0, int(rng.integers(4, 9))
    return dict(
        mode=mode,
        tonic=tonic,
        tempo=tempo,
        beat=beat,
        voice=voice,
        centre=centre,
        progression=progression,
        beats_per_chord=beats_per_chord,
        chords=chords,
        notes=notes,
        scale=scale,
        n_beats=n_beats,
    )


# ---------------------------------------------------------------------------------------------- the voice
def _voice(rng: np.random.Generator, score: dict, n: int, sr: int):
    """Return (vocal mono (n,), f0 per sample (n,), voiced gate (n,), notes)."""
    beat = score["beat"]
    raw = score["notes"]
    notes: list[Note] = []
    for i, nd in enumerate(raw):
        onset = nd["onset_beat"] * beat
        full_end = (nd["onset_beat"] + nd["dur_beats"]) * beat
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        legato = nxt is not None and nd["rest_after"] == 0.0 and nxt["consonant"] is None and rng.random() < 0.7
        if legato:
            offset = full_end
        else:
            offset = onset + nd["dur_beats"] * beat * nd["legato"]
            if nxt is not None and nxt["consonant"] is not None and nd["rest_after"] == 0.0:
                offset = min(offset, full_end - 0.12)  # room for the next consonant
        offset = min(max(offset, onset + 0.08), n / sr)
        notes.append(
            Note(
                onset_s=round(onset, 6),
                offset_s=round(offset, 6),
                midi=nd["midi"],
                vowel=nd["vowel"],
                consonant=nd["consonant"],
                vibrato_rate_hz=nd["vibrato_rate_hz"],
                vibrato_depth_cents=nd["vibrato_depth_cents"],
                legato_next=bool(legato),
            )
        )
    notes = [nt for nt in notes if nt.onset_s * sr < n - int(0.1 * sr)]

    # --- F0: step pitch (each gap takes the next note's pitch), intonation offsets, portamento
    midi = np.full(n, float(notes[0].midi) if notes else 60.0)
    bounds = [int(round(nt.onset_s * sr)) for nt in notes] + [n]
    for i, nt in enumerate(notes):
        start = 0 if i == 0 else int(round(notes[i - 1].offset_s * sr)) if not notes[i - 1].legato_next else bounds[i]
        midi[start : bounds[i + 1]] = nt.midi + rng.normal(0.0, 0.08)
    for i, nt in enumerate(notes[:-1]):
        if nt.legato_next:
            b0 = bounds[i + 1]
            half = int(rng.uniform(0.03, 0.07) * sr)
            lo_i, hi_i = max(b0 - half, 0), min(b0 + half, n - 1)
            a, z = midi[lo_i], midi[hi_i]
            x = (np.arange(lo_i, hi_i) - lo_i) / max(hi_i - lo_i, 1)
            midi[lo_i:hi_i] = a + (z - a) * (0.5 - 0.5 * np.cos(np.pi * x))
    # vibrato: rate and depth per note, delayed onset with a ramp, continuous phase
    rate = np.full(n, notes[0].vibrato_rate_hz if notes else 5.5)
    depth = np.zeros(n)
    for i, nt in enumerate(notes):
        s, e = bounds[i], min(int(round(nt.offset_s * sr)), n)
        rate[s:] = nt.vibrato_rate_hz
        delay = int(rng.uniform(0.12, 0.3) * sr)
        ramp = int(0.2 * sr)
        if e - s > delay:
            k = np.arange(e - s - delay)
            depth[s + delay : e] = nt.vibrato_depth_cents * np.minimum(k / ramp, 1.0)
    depth = signal.lfilter([0.002], [1.0, -0.998], depth)  # smooth the depth changes (~11 ms)
    vib_phase = 2.0 * np.pi * np.cumsum(rate) / sr + rng.uniform(0, 2 * np.pi)
    jitter_cents = rng.uniform(6.0, 16.0) * _smooth_noise(rng, n, sr, 60.0)
    cents = 100.0 * midi + depth * np.sin(vib_phase) + jitter_cents
    f0 = 440.0 * 2.0 ** ((cents / 100.0 - 69.0) / 12.0)

    # --- voiced gate: attack/release at span edges, legato notes joined
    gate = np.zeros(n)
    level = np.zeros(n)
    effort = np.zeros(n)
    attack = int(rng.uniform(0.02, 0.05) * sr)
    release = int(rng.uniform(0.04, 0.09) * sr)
    span_start = None
    for i, nt in enumerate(notes):
        s, e = bounds[i], min(int(round(nt.offset_s * sr)), n)
        lvl = rng.uniform(-4.0, 0.0)
        level[s:e] = 10 ** (lvl / 20)
        effort[s:e] = np.clip(0.5 + lvl / 8 + rng.uniform(-0.2, 0.2) + (nt.midi - score["centre"]) / 20, 0, 1)
        if span_start is None:
            span_start = s
        if not nt.legato_next or i == len(notes) - 1:
            gate[span_start:e] = _ramp(attack, e - span_start, release)
            span_start = None
    level = signal.lfilter([0.005], [1.0, -0.995], level)  # ~4.5 ms smoothing of note-level changes
    effort = signal.lfilter([0.001], [1.0, -0.999], effort)
    shimmer = 1.0 + rng.uniform(0.02, 0.06) * _smooth_noise(rng, n, sr, 80.0)

    # --- source: band-limited Rosenberg pulse derivative, lax/pressed blend, extra spectral tilt
    voiced = gate > 0
    f0_max = float(f0[voiced].max()) if voiced.any() else 1000.0
    n_harm = max(1, int(0.45 * sr / f0_max))
    tilt = rng.uniform(-0.3, 0.2)
    k = np.arange(1, n_harm + 1)
    lax = _wavetable(rosenberg_harmonics(0.45, 0.25, n_harm) * k**-tilt)
    pressed = _wavetable(rosenberg_harmonics(0.38, 0.12, n_harm) * k**-tilt)
    phase = np.cumsum(f0) / sr
    src = (1.0 - effort) * _read_table(lax, phase) + effort * _read_table(pressed, phase)
    amp = gate * level * shimmer
    src *= amp / (_rms(src[voiced]) + 1e-12 if voiced.any() else 1.0)
    breathiness = rng.uniform(0.06, 0.2)
    aspiration = breathiness * rng.standard_normal(n) * amp * (0.6 + 0.4 * np.cos(2 * np.pi * phase))
    excitation = src + aspiration

    # --- formants: vowel targets per note, transitions at onsets, diphthongs on long notes, F1 tuning
    table = _VOWELS[score["voice"]]
    key_t, key_f = [0.0], [np.array(table[notes[0].vowel] if notes else table["a"], dtype=float)]
    for nt in notes:
        target = np.array(table[nt.vowel], dtype=float) * rng.uniform(0.95, 1.05)
        trans = rng.uniform(0.04, 0.1)
        key_t += [nt.onset_s - trans, nt.onset_s + 0.01]
        key_f += [key_f[-1], target]
        if nt.offset_s - nt.onset_s > 0.6 and rng.random() < 0.3:  # diphthong glide into a second vowel
            second = np.array(table[str(rng.choice(list(table)))], dtype=float)
            key_t += [nt.offset_s - 0.25, nt.offset_s - 0.1]
            key_f += [target, second]
    order = np.argsort(np.array(key_t), kind="stable")
    key_t_arr = np.maximum.accumulate(np.array(key_t)[order])
    key_f_arr = np.log(np.array(key_f)[order])
    n_blocks = int(np.ceil(n / _BLOCK))
    block_t = (np.arange(n_blocks) * _BLOCK + _BLOCK / 2) / sr
    formants = np.exp(np.stack([np.interp(block_t, key_t_arr, key_f_arr[:, j]) for j in range(5)], axis=1))
    block_f0 = f0[np.minimum(np.arange(n_blocks) * _BLOCK + _BLOCK // 2, n - 1)]
    formants[:, 0] = np.maximum(formants[:, 0], 1.1 * block_f0)
    formants[:, 1] = np.maximum(formants[:, 1], formants[:, 0] + 250.0)
    formants = np.minimum(formants, 0.45 * sr)
    vocal = _formant_filter(excitation, formants, np.broadcast_to(_BANDWIDTHS, formants.shape), sr)
    rms_voiced = _rms(vocal[gate > 0.5]) if (gate > 0.5).any() else 1.0
    vocal /= rms_voiced + 1e-12

    # --- consonants before notes, inhalations before phrases
    for i, nt in enumerate(notes):
        s = bounds[i]
        prev_end = int(round(notes[i - 1].offset_s * sr)) if i else 0
        if nt.consonant == "fricative":
            length = min(int(rng.uniform(0.06, 0.13) * sr), s - prev_end)
            if length > int(0.02 * sr):
                lo_hz, hi_hz = [(3500, 9000), (2000, 6000), (1200, 8000)][int(rng.integers(3))]
                burst = _bandpass_noise(rng, length, lo_hz, hi_hz, sr) * _ramp(length // 3, length, length // 4)
                vocal[s - length : s] += burst * 10 ** (rng.uniform(-16.0, -8.0) / 20)
        elif nt.consonant == "plosive":
            length = int(rng.uniform(0.008, 0.02) * sr)
            start = s - length - int(0.005 * sr)
            if start > prev_end + int(0.02 * sr):
                lo_hz, hi_hz = [(300, 3000), (1500, 8000), (2500, 10000)][int(rng.integers(3))]
                burst = _bandpass_noise(rng, length, lo_hz, hi_hz, sr) * np.exp(-np.arange(length) / (0.25 * length))
                vocal[start : start + length] += burst * 10 ** (rng.uniform(-8.0, -2.0) / 20)
        if i == 0 or notes[i - 1].offset_s < nt.onset_s - 0.45:  # phrase start: an inhalation in the rest
            length = int(rng.uniform(0.15, 0.3) * sr)
            start = s - length - int(0.15 * sr)
            if start > prev_end:
                breath = _bandpass_noise(rng, length, 600, 6000, sr) * np.hanning(length)
                vocal[start : start + length] += breath * 10 ** (rng.uniform(-34.0, -26.0) / 20)
    return vocal, f0, gate, notes


# ------------------------------------------------------------------------------------------- accompaniment
def _drums(rng: np.random.Generator, score: dict, n: int, sr: int) -> np.ndarray:
    beat = score["beat"]
    tk = np.arange(int(0.4 * sr)) / sr
    kick_f = rng.uniform(42, 55) + rng.uniform(80, 140) * np.exp(-tk / rng.uniform(0.02, 0.04))
    kick = np.sin(2 * np.pi * np.cumsum(kick_f) / sr) * np.exp(-tk / rng.uniform(0.15, 0.3))
    kick[: int(0.002 * sr)] += 0.3 * rng.standard_normal(int(0.002 * sr))
    ts = np.arange(int(0.3 * sr)) / sr
    snare = 0.5 * np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.06) + 0.6 * _bandpass_noise(
        rng, len(ts), 1200, 9000, sr
    ) * np.exp(-ts / rng.uniform(0.08, 0.15))
    th = np.arange(int(0.35 * sr)) / sr
    hat_noise = _bandpass_noise(rng, len(th), 7000, 16000, sr)
    hat_closed = 0.35 * hat_noise * np.exp(-th / rng.uniform(0.02, 0.04))
    hat_open = 0.3 * hat_noise * np.exp(-th / rng.uniform(0.12, 0.2))
    kick_pattern = [(0.0,), (0.0, 2.0), (0.0, 1.5, 2.0), (0.0, 2.5), (0.0, 0.75, 2.0, 2.5)][int(rng.integers(5))]
    sixteenths = rng.random() < 0.3
    hat_pan = float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.5))
    parts = {"kick": np.zeros(n), "snare": np.zeros(n), "hat": np.zeros(n)}

    def hit(part, sample, time_s, vel):
        s = int(round((time_s + rng.normal(0, 0.003)) * sr))
        if 0 <= s < n:
            m = min(len(sample), n - s)
            parts[part][s : s + m] += vel * sample[:m]

    for bar_start in np.arange(0, score["n_beats"], 4):
        for off in kick_pattern:
            hit("kick", kick, (bar_start + off) * beat, rng.uniform(0.85, 1.0))
        for off in (1.0, 3.0):
            hit("snare", snare, (bar_start + off) * beat, rng.uniform(0.8, 1.0))
        step = 0.25 if sixteenths else 0.5
        for off in np.arange(0, 4, step):
            is_open = off == 3.5 and rng.random() < 0.3
            vel = rng.uniform(0.7, 1.0) if off % 1 == 0 else rng.uniform(0.35, 0.65)
            hit("hat", hat_open if is_open else hat_closed, (bar_start + off) * beat, vel)
    return _pan(parts["kick"], 0.0) + _pan(parts["snare"], rng.uniform(-0.08, 0.08)) + _pan(parts["hat"], hat_pan)


def _bass(rng: np.random.Generator, score: dict, n: int, sr: int) -> np.ndarray:
    beat, scale, tonic = score["beat"], score["scale"], score["tonic"]
    n_h = 10
    k = np.arange(1, n_h + 1)
    table = _wavetable((k ** -rng.uniform(1.2, 2.0)) * np.exp(-1j * np.pi / 2 * (k % 2)))
    out = np.zeros(n)
    pattern = (
        [(0.0, 1.0, 0), (1.0, 1.0, 0), (2.0, 1.0, 0), (3.0, 1.0, 0)]
        if rng.random() < 0.5
        else [(0.0, 1.5, 0), (1.5, 0.5, 0), (2.0, 1.5, 7), (3.5, 0.5, 12)]
    )
    tau = rng.uniform(0.3, 0.7)
    for start_beat, degree in score["chords"]:
        root = 28 + (tonic + scale[degree]) % 12  # E1 .. D#2
        for bar_off in range(0, score["beats_per_chord"], 4) if score["beats_per_chord"] >= 4 else (0,):
            for off, dur, interval in pattern:
                if off + bar_off >= score["beats_per_chord"]:
                    continue
                s = int(round((start_beat + bar_off + off) * beat * sr))
                length = int(dur * beat * sr * 0.95)
                if s >= n:
                    continue
                length = min(length, n - s)
                f = _midi_to_hz(root + interval)
                tt = np.arange(length) / sr
                env = np.exp(-tt / tau) * _ramp(int(0.004 * sr), length, int(0.02 * sr))
                out[s : s + length] += env * _read_table(table, f * tt) * rng.uniform(0.85, 1.0)
    out /= np.max(np.abs(out)) + 1e-12
    return _pan(out, 0.0)


def _chords(rng: np.random.Generator, score: dict, n: int, sr: int) -> np.ndarray:
    beat, scale, tonic = score["beat"], score["scale"], score["tonic"]
    pad = rng.random() < 0.5
    out = np.zeros((n, 2))
    seventh = rng.random() < 0.4
    chord_len = score["beats_per_chord"] * beat
    for start_beat, degree in score["chords"]:
        s = int(round(start_beat * beat * sr))
        if s >= n:
            continue
        length = min(int(chord_len * sr), n - s)
        tt = np.arange(length) / sr
        env = (
            _ramp(int(rng.uniform(0.1, 0.35) * sr), length, int(0.15 * sr))
            if pad
            else np.exp(-tt / rng.uniform(0.6, 1.2)) * _ramp(int(0.005 * sr), length, int(0.05 * sr))
        )
        degrees = (0, 2, 4, 6) if seventh else (0, 2, 4)
        for j, d in enumerate(degrees):
            pc = (tonic + scale[(degree + d) % 7]) % 12
            midi = 55 + (pc - 55) % 12  # voiced in G3..F#4
            f = float(_midi_to_hz(midi))
            n_h = min(12 if pad else 16, int(0.45 * sr / (f * 1.01)))
            kk = np.arange(1, n_h + 1)
            table = _wavetable(kk ** -(1.6 if pad else 1.2) * (1.0 if pad else np.exp(-kk / 6.0)))
            for ch, det in enumerate((-1.0, 1.0)):
                fd = f * 2 ** (det * rng.uniform(2.0, 6.0) / 1200)
                out[s : s + length, ch] += env * _read_table(table, fd * tt + rng.random()) / len(degrees)
    return out


def _room(rng: np.random.Generator, x: np.ndarray, sr: int, wet_db: float) -> np.ndarray:
    """A light stereo room: ``x (n, 2)`` plus decaying-noise impulse responses (different per channel)."""
    rt60 = rng.uniform(0.4, 0.9)
    t = np.arange(int(rt60 * sr)) / sr
    pre = int(0.012 * sr)
    out = x.copy()
    for ch in range(2):
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir = np.concatenate([np.zeros(pre), ir / (_rms(ir) * np.sqrt(len(ir)))])
        out[:, ch] += 10 ** (wet_db / 20) * signal.oaconvolve(x.mean(axis=1), ir)[: len(x)]
    return out


# ------------------------------------------------------------------------------------------------- public
def generate_song(
    seed: int, duration_s: float = 20.0, sample_rate: int = 44100, frame_rate: int = 250
) -> SyntheticSong:
    """Generate one song, a pure function of ``seed`` (and the other arguments).

    ``duration_s`` > 0 seconds; ``frame_rate`` (Hz) of the F0 grid must divide ``sample_rate`` evenly in time
    (any positive integer works; frame times are ``i / frame_rate``). Returns a :class:`SyntheticSong` with
    float32 ``(n_samples, 2)`` stems and mixture, ``n_samples = round(duration_s * sample_rate)``.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if sample_rate < 8000 or frame_rate <= 0:
        raise ValueError(f"sample_rate must be >= 8000 and frame_rate > 0, got {sample_rate} and {frame_rate}")
    seed = int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, GENERATOR_VERSION]))
    n = int(round(duration_s * sample_rate))
    score = _compose(rng, duration_s)
    vocal, f0, gate, notes = _voice(rng, score, n, sample_rate)
    vocal_st = _room(rng, _pan(vocal, rng.uniform(-0.1, 0.1)), sample_rate, rng.uniform(-20.0, -12.0))
    stems64 = {
        "drums": _drums(rng, score, n, sample_rate),
        "bass": _bass(rng, score, n, sample_rate),
        "other": _chords(rng, score, n, sample_rate),
        "vocals": vocal_st,
    }
    levels_db = {
        "drums": rng.uniform(-11.0, -5.0),
        "bass": rng.uniform(-11.0, -6.0),
        "other": rng.uniform(-13.0, -7.0),
        "vocals": rng.uniform(-9.0, -3.0),
    }
    for name, x in stems64.items():
        rms = _rms(x)
        stems64[name] = x * (10 ** (levels_db[name] / 20) / rms if rms > 0 else 0.0)
    peak_target = rng.uniform(0.5, 0.9)
    peak = max(float(np.max(np.abs(sum(stems64.values())))), *(float(np.max(np.abs(x))) for x in stems64.values()))
    stems = {name: (stems64[name] * (peak_target / peak)).astype(np.float32) for name in STEM_NAMES}
    mixture = stems["drums"] + stems["bass"] + stems["other"] + stems["vocals"]  # peak <= 0.9 (+ float32 rounding)

    n_frames = n * frame_rate // sample_rate
    idx = np.minimum(np.round(np.arange(n_frames) * sample_rate / frame_rate).astype(np.int64), n - 1)
    f0_frames = np.where(gate[idx] >= VOICED_THRESHOLD, f0[idx], 0.0)
    info = dict(
        seed=seed,
        duration_s=float(duration_s),
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        tempo_bpm=score["tempo"],
        key=f"{_KEY_NAMES[score['tonic']]} {score['mode']}",
        voice=score["voice"],
        progression=[int(d) for d in score["progression"]],
        vowels=sorted({nt.vowel for nt in notes}),
        levels_db={k: round(float(v), 2) for k, v in levels_db.items()},
        n_notes=len(notes),
        voiced_fraction=float(np.mean(f0_frames > 0)) if n_frames else 0.0,
        generator_version=GENERATOR_VERSION,
    )
    return SyntheticSong(
        seed=seed,
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        stems=stems,
        mixture=mixture,
        f0_hz=f0_frames,
        notes=notes,
        info=info,
    )


def write_song(song: SyntheticSong, track_dir: str | os.PathLike) -> Path:
    """Write a song as a MUSDB18-HQ track folder, atomically: everything goes to a temporary sibling folder that
    is renamed onto ``track_dir`` at the end (an existing ``track_dir`` is replaced)."""
    track_dir = Path(track_dir)
    with atomic_folder(track_dir) as tmp:
        for name in STEM_NAMES:
            write_wav_float32(tmp / f"{name}.wav", song.stems[name], song.sample_rate)
        write_wav_float32(tmp / "mixture.wav", song.mixture, song.sample_rate)
        write_f0_csv(tmp / "f0.csv", song.f0_times, song.f0_hz)
        write_json_atomic(tmp / "track.json", {**song.info, "notes": [asdict(nt) for nt in song.notes]})
    return track_dir


def track_seed(seed: int, index: int) -> int:
    """The song seed of track ``index`` of a corpus made with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0])


def write_corpus(
    out_dir: str | os.PathLike,
    n_train: int,
    n_test: int,
    duration_s: float = 20.0,
    seed: int = 0,
    *,
    n_valid: int = 0,
    sample_rate: int = 44100,
    frame_rate: int = 250,
    progress: bool = False,
) -> dict:
    """Write ``n_train + n_test`` songs in the MUSDB18-HQ layout under ``out_dir`` and ``out_dir/manifest.json``.

    Tracks are named ``synth_0000``, ``synth_0001``... (train first, then test). The last ``n_valid`` training
    tracks are listed as ``validation_tracks`` in the manifest (``musdb_tracks(..., split="valid")`` uses them in
    place of MUSDB's list). A track whose folder already holds a ``track.json`` with the same song parameters is
    skipped, so re-running resumes; each track is written to a temporary folder and renamed. Returns the manifest.
    """
    if n_train < 0 or n_test < 0 or not 0 <= n_valid <= n_train:
        raise ValueError(f"need n_train, n_test >= 0 and 0 <= n_valid <= n_train, got {n_train}, {n_test}, {n_valid}")
    out = Path(out_dir)
    plan = [("train", i) for i in range(n_train)] + [("test", n_train + i) for i in range(n_test)]
    tracks = []
    iterator = plan
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plan, desc="synthetic corpus", unit="song")
    for subset, index in iterator:
        name = f"synth_{index:04d}"
        song_seed = track_seed(seed, index)
        folder = out / subset / name
        wanted = dict(
            seed=song_seed,
            duration_s=float(duration_s),
            sample_rate=sample_rate,
            frame_rate=frame_rate,
            generator_version=GENERATOR_VERSION,
        )
        info = _read_track_info(folder)
        if info is None or any(info.get(k) != v for k, v in wanted.items()):
            song = generate_song(song_seed, duration_s, sample_rate, frame_rate)
            write_song(song, folder)
            info = song.info
        else:
            log.debug("%s: already generated, skipped", folder)
        tracks.append({"name": name, "subset": subset, **{k: info[k] for k in ("seed", "tempo_bpm", "key", "voice")}})
    train_names = [t["name"] for t in tracks if t["subset"] == "train"]
    manifest = dict(
        kind="synthetic",
        seed=int(seed),
        n_train=n_train,
        n_test=n_test,
        duration_s=float(duration_s),
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        generator_version=GENERATOR_VERSION,
        validation_tracks=train_names[len(train_names) - n_valid :] if n_valid else [],
        stems=list(STEM_NAMES),
        mixture="drums + bass + other + vocals (float32, in this order)",
        f0="f0.csv: time_s,f0_hz at frame_rate, 0 = unvoiced",
        tracks=tracks,
    )
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _read_track_info(folder: Path) -> dict | None:
    try:
        info = json.loads((folder / "track.json").read_text())
    except (OSError, ValueError):
        return None
    needed = [folder / f"{name}.wav" for name in (*STEM_NAMES, "mixture")] + [folder / "f0.csv"]
    return info if all(p.is_file() for p in needed) else None
