"""Thresholds of the harmonic check, chosen on singers no model learned: ``make bench-harmonic-check``
(= ``python -m bench.harmonic_check``).

The check (:mod:`ddsp_demucs.features.harmonic_check`) moves a tracked F0 to the octave, fifth or fourth below
where the spectrum holds the lower pitch's own harmonics. Its thresholds are never chosen on the test singers:

1. two sets of songs with the teacher's labels (:mod:`bench.f0_separated`, cached there): the **validation**
   songs (singers neither the separated-vocal tracker nor any refiner learned from: the choice is made on them)
   and the **training** songs the tracker learned from (every :data:`~bench.f0_separated.TRAIN_EVERY`-th: what
   the check does where the tracker already knows the voices), each as every separator of
   :data:`CHOICE_SEPARATORS` left it (training separators only: the test levels' networks and the held-out family
   stay unseen); stems from ``runs/quality/stems`` where ``make bench-quality`` made them, else separated here
   into ``runs/harmonic_check/stems``;
2. per song, the recommended refiner's tracker (``crepe-separated``) on the separated vocal downmixed and
   resampled to the refiner's rate (:data:`MODEL_RATE`, as refine tracks it) on the labels' 10 ms grid, and the
   check's measurements (:func:`~ddsp_demucs.features.harmonic_check.frame_evidence`) with the song's mixture for
   the separator's uncertainty, cached in ``runs/harmonic_check/<set>/<separator>/<song>.npz``;
3. every setting of :data:`GRID`: frames the check moves from wrong to right and from right to wrong (50 cents
   against the teacher, frames voiced in both), per set and separator;
4. the choice: the most frames corrected, net, over the validation songs' separators, among the settings that
   leave none of them (and none of the training songs' separators) with a net loss; none if no setting qualifies;
5. reported beside it, never chosen on: the test singers' songs at :data:`TEST_LEVELS` (their cached separations,
   :func:`bench.f0_separated.level_vocals`), and every set at :data:`PROBE`, the check's default thresholds (the
   setting a scratch probe once chose on the test singers), with the recommended refiner's SI-SDR change on the
   test songs at each test level without and with the check at those thresholds (``refinement``).

Writes ``bench/results/harmonic_check.json`` (the grid, the choice, the share of frames pitched right before and
after per set and separator, at the choice and at the probe's setting).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np

from bench.f0_separated import LABEL_RATE, QUALITY, TRAIN_EVERY, all_labels
from bench.quality import TRAINING_NETWORK, refiner_key
from ddsp_demucs.features.harmonic_check import HarmonicCheck

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "harmonic_check"
RESULT = ROOT / "bench" / "results" / "harmonic_check.json"
DEFAULT = False  # not part of a plain `make bench`: it needs `make bench-quality`'s corpus and stems
COMMAND = "make bench-harmonic-check"
CHOICE_SEPARATORS = ("fallback", TRAINING_NETWORK, "oracle-bands4", "oracle-bands16", "oracle-bands8-floor0.15")
MODEL_RATE = 22050  # the recommended refiner's sample rate: refine tracks F0 and runs the check at this rate
TRACKER = "crepe-separated"
CENTS_RIGHT = 50.0
# the test singers' levels, reported and never chosen on
TEST_LEVELS = ("fallback", "network_small", "network_half", "network_other", "bands4", "smooth_low")
GRID = {
    "min_contrast_db": (3.0, 4.0, 6.0, 8.0, 10.0),
    "max_drop_db": (3.0, 6.0, 10.0, 100.0),
    "max_uncertainty": (0.2, 0.3, 0.4, 0.5, 1.0),
}
# the check's default thresholds: the setting a scratch probe once chose on the test singers (exp005, fifth run's
# Next); what that choice looks like on the other sets
PROBE = {key: getattr(HarmonicCheck(), key) for key in GRID}


def log(message: str) -> None:
    print(f"[harmonic_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def stems_folder(tracks, separator: str) -> Path:
    """The stems folder holding every track of ``tracks`` as ``separator`` left it: ``make bench-quality``'s where
    it has them all, else ``runs/harmonic_check/stems`` (separated there where missing)."""
    from bench.quality import training_separator
    from ddsp_demucs.separation.cache import separate_tracks

    if all((QUALITY / "stems" / separator / t.name / "vocals.wav").is_file() for t in tracks):
        return QUALITY / "stems"
    failures = separate_tracks(tracks, training_separator(separator), OUT / "stems", progress=True)
    if failures:
        raise SystemExit(f"harmonic_check: separation failed: {failures}")
    return OUT / "stems"


def song_evidence(track, separated, path: Path, key: str) -> dict[str, np.ndarray]:
    """The tracked F0 ``f0_hz`` (on the labels' grid) of ``track`` as a separator left it (``separated()``: the
    vocal ``(n, channels)`` at the corpus' rate) and the check's measurements of its voiced frames (``frames``,
    ``contrast``, ``strength``, ``uncertainty``), cached in ``path`` under ``key`` (the tracker's weights and the
    check's measuring settings)."""
    from ddsp_demucs.core.utils import atomic_path
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.features.controls import mono_at
    from ddsp_demucs.features.harmonic_check import frame_evidence
    from ddsp_demucs.features.pitch import F0Tracker

    if path.is_file():
        with np.load(path) as data:
            if str(data["key"]) == key:
                return {k: data[k] for k in data.files if k != "key"}
    mono, mixture = mono_at(separated(), SAMPLE_RATE, MODEL_RATE), mono_at(track.mixture(), SAMPLE_RATE, MODEL_RATE)
    n = min(mono.shape[0], mixture.shape[0])
    f0, _ = F0Tracker(TRACKER).track(mono[:n], MODEL_RATE, LABEL_RATE)
    ev = frame_evidence(f0, mono[:n], MODEL_RATE, LABEL_RATE, mixture=mixture[:n])
    out = {
        "f0_hz": f0,
        "frames": ev.frames,
        "contrast": ev.contrast,
        "strength": ev.strength,
        "uncertainty": ev.uncertainty,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **out)
    return out


def stem_vocal(stems: Path, separator: str, track):
    """A loader of ``track``'s separated vocal in ``stems`` (at the corpus' rate)."""
    from ddsp_demucs.core.audio_io import load_audio

    return lambda: load_audio(stems / separator / track.name / "vocals.wav")[0]


def right_frames(f0_hz: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether each frame's ``f0_hz`` is within :data:`CENTS_RIGHT` of ``reference`` (both > 0), ``(n,)``:
    :func:`ddsp_demucs.metrics.pitch_correct_frames`, the per-frame test of raw pitch accuracy."""
    from ddsp_demucs.metrics import pitch_correct_frames

    return pitch_correct_frames(reference, f0_hz, cent_tolerance=CENTS_RIGHT)


def sweep(evidence: list[dict], references: list[np.ndarray]) -> list[dict]:
    """For every setting of :data:`GRID`: frames the check moves wrong -> right (``fixed``) and right -> wrong
    (``broken``) over songs ``evidence`` with teacher F0 ``references``, and the frames voiced in both (``voiced``)
    and pitched right before (``right_before``)."""
    from ddsp_demucs.features.harmonic_check import FrameEvidence, chosen_f0

    songs = []
    for ev, ref in zip(evidence, references):
        frames = ev["frames"][ev["frames"] < ref.shape[0]]
        n = frames.size
        fe = FrameEvidence(
            frames,
            ev["f0_hz"][frames].astype(np.float64),
            ev["contrast"][:n],
            ev["strength"][:n],
            ev["uncertainty"][:n],
        )
        songs.append((fe, ref[frames], right_frames(fe.f0_hz, ref[frames])))
    voiced = int(sum(int((r > 0).sum()) for _, r, _ in songs))
    before = int(sum(int(b.sum()) for _, _, b in songs))
    rows = []
    for values in itertools.product(*GRID.values()):
        check = HarmonicCheck(**dict(zip(GRID, values)))
        fixed = broken = 0
        for fe, ref, was_right in songs:
            now_right = right_frames(chosen_f0(fe, check), ref)
            fixed += int((now_right & ~was_right).sum())
            broken += int((was_right & ~now_right).sum())
        rows.append(
            dict(zip(GRID, values)) | {"fixed": fixed, "broken": broken, "voiced": voiced, "right_before": before}
        )
    return rows


def net_gains(by_separator: dict[str, list[dict]], i: int) -> list[int]:
    """Frames corrected net (fixed - broken) by grid setting ``i`` on each separator."""
    return [rows[i]["fixed"] - rows[i]["broken"] for rows in by_separator.values()]


def choose(choice: dict[str, list[dict]], guard: dict[str, list[dict]]) -> dict | None:
    """The setting with the most frames corrected net over ``choice``'s separators, among those with no net loss
    on any separator of ``choice`` or ``guard``; None where none corrects anything without such a loss."""
    best = None
    for i, row in enumerate(next(iter(choice.values()))):
        gains = net_gains(choice, i)
        if min(gains + net_gains(guard, i)) >= 0 and sum(gains) > 0 and (best is None or sum(gains) > best[0]):
            best = (sum(gains), {k: row[k] for k in GRID})
    return None if best is None else best[1]


def setting_figures(by_separator: dict[str, list[dict]], setting: dict) -> dict:
    """Share of frames pitched right before and after, frames fixed and broken, per separator, at ``setting``."""
    out = {}
    for separator, rows in by_separator.items():
        row = next(r for r in rows if all(r[k] == setting[k] for k in GRID))
        out[separator] = {
            "right_before": round(row["right_before"] / row["voiced"], 4),
            "right_after": round((row["right_before"] + row["fixed"] - row["broken"]) / row["voiced"], 4),
            "fixed": row["fixed"],
            "broken": row["broken"],
            "voiced_frames": row["voiced"],
        }
    return out


def refinement(songs: list, singers: list[str], vocals: list, separation_key: str) -> dict:
    """The quality benchmark's recommended model on whole test songs ``songs`` (of ``singers``) as one level left
    them (``vocals``), without and with the harmonic check at its default setting (:data:`PROBE`): median SI-SDR
    change (dB), songs worse and their singers; kept in ``runs/harmonic_check/refinement`` keyed by the separation
    and the checkpoint."""
    from bench.f0_separated import stored
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import model_refiner
    from ddsp_demucs.metrics import si_sdr
    from ddsp_demucs.training.checkpoints import load_model

    checkpoint = QUALITY / "recommended" / "model.ckpt"
    model = load_model(checkpoint)

    def score(check: bool) -> dict:
        refine = model_refiner(model, harmonic_check=check)
        changes = []
        for track, separated in zip(songs, vocals):
            target = track.vocals().mean(axis=1)
            refined = refine(separated, SAMPLE_RATE, track.vocals(), track.mixture())
            changes.append(si_sdr(refined.mean(axis=1), target) - si_sdr(separated.mean(axis=1), target))
        changes = np.array(changes)
        return {
            "si_sdr_change_median": round(float(np.median(changes)), 3),
            "n_worse": int((changes < 0).sum()),
            "n_songs": len(changes),
            "worse": sorted(f"{singers[i]}: {changes[i]:+.2f}" for i in np.flatnonzero(changes < 0)),
        }

    key = f"{separation_key}/{refiner_key(checkpoint, model)}/{HarmonicCheck()}"
    return {
        name: stored(
            OUT / "refinement" / f"{separation_key.replace('/', '_')}_{name}.json", key, lambda c=check: score(c)
        )
        for name, check in (("without", False), ("with_check", True))
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    from tqdm.auto import tqdm

    from bench.f0_separated import level_vocals
    from bench.quality import held_out_songs, levels_here, real_corpus
    from ddsp_demucs.core.utils import file_sha256, write_json_atomic
    from ddsp_demucs.data import musdb_tracks
    from ddsp_demucs.features.crepe import weights_digest

    argparse.ArgumentParser(prog="python -m bench.harmonic_check", description=__doc__.split("\n")[0]).parse_args(
        [] if argv is None else argv
    )
    corpus, manifest = real_corpus()
    sets = {
        "validation": list(musdb_tracks(corpus, subsets=("train",), split="valid")),
        "training": list(musdb_tracks(corpus, subsets=("train",), split="train"))[::TRAIN_EVERY],
    }
    measuring = HarmonicCheck()
    key = f"{weights_digest('separated')}/{measuring.max_hz}/{measuring.peak_width}/{MODEL_RATE}"
    grids: dict[str, dict[str, list[dict]]] = {}
    for name, songs in sets.items():
        labels = all_labels(songs)
        references = [labels[t.name]["f0_hz"] for t in songs]
        grids[name] = {}
        for separator in CHOICE_SEPARATORS:
            stems = stems_folder(songs, separator)
            evidence = [
                song_evidence(
                    t,
                    stem_vocal(stems, separator, t),
                    OUT / name / separator / f"{t.name}.npz",
                    f"{key}/{file_sha256(stems / separator / t.name / 'vocals.wav')[:16]}",  # a new separation: anew
                )
                for t in tqdm(songs, desc=f"{name} {separator}", unit="song")
            ]
            grids[name][separator] = sweep(evidence, references)
    test, singers = zip(*held_out_songs(corpus, manifest))
    refined: dict[str, dict] = {}
    labels = all_labels(test)
    references = [labels[t.name]["f0_hz"] for t in test]
    levels = {level.name: level for level in levels_here()}
    grids["test"] = {}
    for level in TEST_LEVELS:
        if level not in levels:
            log(f"no {level} level here (bench/quality.py)")
            continue
        vocals = level_vocals(levels[level], test)
        evidence = [
            song_evidence(t, lambda v=v: v, OUT / "test" / level / f"{t.name}.npz", f"{key}/{levels[level].score_key}")
            for t, v in zip(test, tqdm(vocals, desc=f"test {level}", unit="song"))
        ]
        grids["test"][level] = sweep(evidence, references)
        refined[level] = refinement(test, singers, vocals, levels[level].score_key)
        for name, r in refined[level].items():
            log(f"{level:>13} recommended {name:>10}: {r['si_sdr_change_median']:+.2f} dB, {r['n_worse']} worse")
    chosen = choose(grids["validation"], grids["training"])
    if chosen is None:
        log("no setting corrects frames on the validation songs without a net loss on some separator")
    figures = {}
    for label, setting in (("chosen", chosen), ("default", PROBE)):
        if setting is None:
            continue
        figures[label] = {name: setting_figures(grid, setting) for name, grid in grids.items()}
        log(f"{label} setting {setting}:")
        for name, by_separator in figures[label].items():
            for separator, f in by_separator.items():
                log(
                    f"{name:>10} {separator:>24}: right {f['right_before']:.3f} -> {f['right_after']:.3f} "
                    f"({f['fixed']} fixed, {f['broken']} broken)"
                )
    write_json_atomic(
        RESULT,
        {
            "chosen": chosen,
            "figures_at_chosen": figures.get("chosen", {}),
            "probe_setting": PROBE,
            "figures_at_probe": figures["default"],
            "refinement_at_probe": refined,
            "grid": grids,
            "songs": {name: len(songs) for name, songs in sets.items()},
            "validation_singers": manifest["singers"]["validation"],
            "training_singers": manifest["singers"]["train"],
            "tracker": TRACKER,
            "command": COMMAND,
            "protocol": f"validation songs (the choice) and the tracker's training songs (every {TRAIN_EVERY}th, a "
            "guard) at the training separators; the test songs at the test levels reported, never chosen on; F0 "
            f"at {MODEL_RATE} Hz on the labels' {LABEL_RATE} frames/s, right = within {CENTS_RIGHT:.0f} cents of the "
            "teacher (CREPE-full on the true vocal), frames voiced in both",
        },
    )
    log(f"wrote {RESULT}")


if __name__ == "__main__":
    main(sys.argv[1:])
