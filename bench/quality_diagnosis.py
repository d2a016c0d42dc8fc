"""Why the recommended model makes some songs worse: ``make bench-quality-diagnosis``
(= ``python -m bench quality_diagnosis``; after ``make bench-quality``, whose corpus, separations, scores and
recommended checkpoint it reads; a few minutes).

1. **Voice character**: :func:`ddsp_demucs.metrics.interharmonic_share` of every vocal take's true vocal (its F0:
   :func:`reference_f0`, the pitch teacher's labels), median per singer, for the
   training, validation and test singers: how much of a voice's power lies between its harmonics (breath,
   roughness, room), and which test singers lie beyond the training singers' range.
2. **At every network level** (``network_small``, ``network_half``, ``network_other``, where trained: separators
   with a network's own errors), per test song: the recommended model's SI-SDR change (its stored score), the raw
   pitch accuracy and voicing false alarm of the F0 the model was given (tracked on the separated vocal) against
   :func:`reference_f0`, and where the refinement added or removed error: by kind of frame
   (:func:`error_change_by_frames`), and on or between the true vocal's harmonics
   (:func:`ddsp_demucs.metrics.error_change_by_harmonicity`).

Writes ``bench/results/quality_diagnosis.json``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bench.quality import OUT, RECOMMENDED, ROOT, SHARED, levels_here, log

DEFAULT = False  # needs make bench-quality's stages
RESULT = ROOT / "bench" / "results" / "quality_diagnosis.json"
COMMAND = "make bench-quality-diagnosis"
HARMONICITY = ("on_harmonics", "between_harmonics", "elsewhere")  # error_change_by_harmonicity's parts
FRAME_KINDS = ("voiced_tracked", "voiced_wrong_f0", "voiced_missed", "false_alarm", "unvoiced")


def frame_kinds(reference_f0: np.ndarray, tracked_f0: np.ndarray, cent_tolerance: float = 50.0) -> dict:
    """Boolean masks ``(n_frames,)`` of :data:`FRAME_KINDS`: the true vocal voiced (``reference_f0 > 0``) and the
    tracker right within ``cent_tolerance``, wrong, or unvoiced; the true vocal unvoiced and the tracker voiced
    (a false alarm) or not."""
    n = min(reference_f0.size, tracked_f0.size)
    ref, est = reference_f0[:n], tracked_f0[:n]
    both = (ref > 0) & (est > 0)
    cents = np.zeros(n)
    cents[both] = 1200.0 * np.log2(est[both] / ref[both])
    right = both & (np.abs(cents) <= cent_tolerance)
    return {
        "voiced_tracked": right,
        "voiced_wrong_f0": both & ~right,
        "voiced_missed": (ref > 0) & (est <= 0),
        "false_alarm": (ref <= 0) & (est > 0),
        "unvoiced": (ref <= 0) & (est <= 0),
    }


def error_change_by_frames(
    separated: np.ndarray, refined: np.ndarray, target: np.ndarray, kinds: dict, samples_per_frame: int
) -> dict[str, float]:
    """The error energy a refinement added (positive) or removed in each kind of frame, as a share of the
    separated vocal's whole error energy; the shares add up to the relative change of the whole error.

    Mono downmixes ``(n_samples,)``; errors as SI-SDR defines them (each signal minus its projection on the
    target, over the whole song); frame ``j`` is samples ``[j, j + 1) * samples_per_frame``."""
    t = target.astype(np.float64)

    def frame_error(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        e = x - (t @ x) / (t @ t) * t
        n = e.size // samples_per_frame
        return (e[: n * samples_per_frame].reshape(n, samples_per_frame) ** 2).sum(axis=1)

    e_in, e_out = frame_error(separated), frame_error(refined)
    total = float(e_in.sum())
    n = min(e_in.size, *(m.size for m in kinds.values()))
    return {k: float((e_out[:n][m[:n]] - e_in[:n][m[:n]]).sum() / total) for k, m in kinds.items()}


def reference_f0(track) -> np.ndarray:
    """The true vocal's F0 ``(n_frames,)`` in Hz (0 = unvoiced) at ``REGION_F0_RATE``: the labels of ``make
    bench-f0-separated``'s teacher (CREPE-full with Viterbi decoding, :func:`bench.f0_separated.teacher_labels`,
    cached and shared with it). Not CREPE-tiny, which the quality benchmark's regions use: on one test singer's
    clean vocal (gtsinger-DE-Tenor-1, ge05) it reports the third harmonic (about 670 Hz for a 230 Hz voice)."""
    from bench import f0_separated
    from ddsp_demucs.evaluation.songs import REGION_F0_RATE

    assert f0_separated.LABEL_RATE == REGION_F0_RATE
    return f0_separated.teacher_labels(track, f0_separated.OUT / "labels")["f0_hz"]


def singer_shares(tracks, manifest: dict) -> dict[str, float]:
    """Median :func:`interharmonic_share` of each singer's true vocals (one song per take)."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import REGION_F0_RATE
    from ddsp_demucs.metrics import interharmonic_share

    takes, shares = set(), {}
    for track in tracks:
        info = manifest["tracks"][track.name]
        if info["vocal"] in takes:
            continue
        takes.add(info["vocal"])
        target = track.vocals()
        f0 = reference_f0(track)
        shares.setdefault(info["singer"], []).append(interharmonic_share(target, SAMPLE_RATE, f0, REGION_F0_RATE))
    return {singer: float(np.nanmedian(values)) for singer, values in sorted(shares.items())}


def main() -> None:
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.data import musdb_tracks
    from ddsp_demucs.training.checkpoints import load_model

    checkpoint = OUT / "recommended" / "model.ckpt"
    levels = [lv for lv in levels_here() if lv.family == "network"]
    scores = {lv.name: OUT / "scores" / RECOMMENDED / f"{lv.name}.json" for lv in levels}
    if not (SHARED / "index.csv").is_file() or not checkpoint.is_file() or not levels:
        print(f"quality_diagnosis: needs ../shared/data, make bench-quality's {checkpoint} and a network level")
        sys.exit(1)
    missing = [str(path) for path in scores.values() if not path.is_file()]
    if missing:
        print(f"quality_diagnosis: needs make bench-quality's scores {', '.join(missing)}")
        sys.exit(1)
    manifest = json.loads((OUT / "corpus" / "manifest.json").read_text())
    train, test = (musdb_tracks(OUT / "corpus", subsets=(s,)) for s in ("train", "test"))
    log("voice character of the training and test singers' true vocals")
    shares = singer_shares([*train, *test], manifest)  # the corpus' train folder holds validation songs
    character = {
        split: {singer: shares[singer] for singer in manifest["singers"][split]}
        for split in ("train", "validation", "test")
    }
    train_range = [min(character["train"].values()), max(character["train"].values())]
    model = load_model(checkpoint)
    by_level = {
        lv.name: diagnose_level(lv, scores[lv.name], test, manifest, model, character["test"], train_range[1])
        for lv in levels
    }
    write_json_atomic(
        RESULT,
        {
            "command": COMMAND,
            "recommended": RECOMMENDED,
            "interharmonic_share": character | {"train_range": train_range},
            "levels": by_level,
            "protocol": "interharmonic share: ddsp_demucs.metrics.interharmonic_share of the true vocal, F0 by "
            "CREPE-full with Viterbi on the true vocal (bench.f0_separated.teacher_labels, 100 frames/s), median "
            "over a singer's takes; F0 accuracy: the tracker of the checkpoint on the separated vocal against that "
            "reference (50 cents); error change: share of the separated vocal's SI-SDR error energy added (+) or "
            "removed (-) in each kind of frame, and on or between the true vocal's harmonics in its voiced frames "
            "(ddsp_demucs.metrics.error_change_by_harmonicity, 60-5000 Hz, 25 Hz either side of a harmonic)",
        },
    )
    log(f"wrote {RESULT}")


def diagnose_level(level, scores, test, manifest: dict, model, test_character: dict, train_max: float) -> dict:
    """Per test song at ``level`` (stored ``scores`` of the recommended ``model``): its change, the tracked F0's
    accuracy and where the refinement added or removed error (module doc); and a summary, logged."""
    from ddsp_demucs.data import SAMPLE_RATE
    from ddsp_demucs.evaluation.songs import REGION_F0_RATE, SongCache, model_refiner
    from ddsp_demucs.inference.refine import f0_tracker
    from ddsp_demucs.metrics import error_change_by_harmonicity, raw_pitch_accuracy, voicing_false_alarm
    from ddsp_demucs.separation.demucs import get_separator

    cache = SongCache(OUT / "song_cache", get_separator(level.separator, repo=level.repo), None, 0.5)
    refine = model_refiner(model)
    tracker = f0_tracker(model, None, None)  # the checkpoint's own, as refine runs it
    stored = {row["song"]: row for row in json.loads(scores.read_text())["rows"]}
    songs = []
    log(f"{level.name}: tracked F0 and the refinement's error by kind of frame and bin, {len(test)} songs")
    for track in test:
        mixture, target = track.mixture(), track.vocals()
        separated = cache.separated(track.name, mixture, SAMPLE_RATE, target)
        reference = reference_f0(track)
        tracked = tracker.track(separated, SAMPLE_RATE, REGION_F0_RATE)[0]
        n = min(reference.size, tracked.size)
        refined = refine(separated, SAMPLE_RATE, target, mixture)
        mono = [x.mean(axis=1) for x in (separated, refined, target)]
        kinds = frame_kinds(reference, tracked)
        row = stored[track.name]
        songs.append(
            {
                "song": track.name,
                "singer": manifest["tracks"][track.name]["singer"],
                "input_si_sdr": row["baseline"]["si_sdr"],
                "si_sdr_change": row["refined"]["si_sdr"] - row["baseline"]["si_sdr"],
                "raw_pitch_accuracy": float(raw_pitch_accuracy(reference[:n], tracked[:n])),
                "voicing_false_alarm": float(voicing_false_alarm(reference[:n], tracked[:n])),
                "frame_share": {k: float(m.mean()) for k, m in kinds.items()},
                "error_change": error_change_by_frames(*mono, kinds, SAMPLE_RATE // REGION_F0_RATE),
                "error_change_by_harmonicity": error_change_by_harmonicity(
                    *mono, SAMPLE_RATE, reference, REGION_F0_RATE
                ),
            }
        )
    worse = [s for s in songs if s["si_sdr_change"] < 0]
    better = [s for s in songs if s["si_sdr_change"] >= 0]

    def median(rows: list[dict], key) -> float | None:
        return float(np.median([key(r) for r in rows])) if rows else None

    summary = {
        "songs": len(songs),
        "songs_worse": len(worse),
        "songs_worse_of_singers_beyond_the_training_range": sum(test_character[s["singer"]] > train_max for s in worse),
        "test_singers_beyond_the_training_range": sorted(s for s, v in test_character.items() if v > train_max),
        "raw_pitch_accuracy_median": {
            "worse": median(worse, lambda r: r["raw_pitch_accuracy"]),
            "better": median(better, lambda r: r["raw_pitch_accuracy"]),
        },
        "error_change_by_harmonicity_median": {
            group: {part: median(rows, lambda r, p=part: r["error_change_by_harmonicity"][p]) for part in HARMONICITY}
            for group, rows in (("worse", worse), ("better", better))
        },
    }
    for key, value in summary.items():
        log(f"{level.name} {key}: {value}")
    return {"summary": summary, "songs": songs}


if __name__ == "__main__":
    main()
