"""Why the recommended model makes some songs worse: ``make bench-quality-diagnosis``
(= ``python -m bench quality_diagnosis``; after ``make bench-quality``, whose corpus, separations, scores and
recommended checkpoint it reads; a few minutes).

1. **Voice character**: :func:`ddsp_demucs.metrics.interharmonic_share` of every vocal take's true vocal (its F0:
   :func:`reference_f0`, the pitch teacher's labels), median per singer, for the
   training, validation and test singers: how much of a voice's power lies between its harmonics (breath,
   roughness, room), and which test singers lie beyond the training singers' range.
2. **At the network level** (``network_small``, the separator with a network's own errors), per test song: the
   recommended model's SI-SDR change (its stored score), the raw pitch accuracy and voicing false alarm of the F0
   the model was given (tracked on the separated vocal) against :func:`reference_f0`, and where the refinement added
   or removed error (:func:`error_change_by_frames`).

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
LEVEL = "network_small"
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
    from ddsp_demucs.data import SAMPLE_RATE, musdb_tracks
    from ddsp_demucs.evaluation.songs import REGION_F0_RATE, SongCache, model_refiner
    from ddsp_demucs.inference.refine import f0_tracker
    from ddsp_demucs.metrics import raw_pitch_accuracy, voicing_false_alarm
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.checkpoints import load_model

    checkpoint = OUT / "recommended" / "model.ckpt"
    scores = OUT / "scores" / RECOMMENDED / f"{LEVEL}.json"
    levels = {lv.name: lv for lv in levels_here()}
    if not (SHARED / "index.csv").is_file() or not checkpoint.is_file() or not scores.is_file() or LEVEL not in levels:
        print(f"quality_diagnosis: needs ../shared/data and make bench-quality's {checkpoint} and {scores}")
        sys.exit(1)
    manifest = json.loads((OUT / "corpus" / "manifest.json").read_text())
    level = levels[LEVEL]
    separator = get_separator(level.separator, repo=level.repo)
    cache = SongCache(OUT / "song_cache", separator, None, 0.5)
    train, test = (musdb_tracks(OUT / "corpus", subsets=(s,)) for s in ("train", "test"))
    log("voice character of the training and test singers' true vocals")
    shares = singer_shares([*train, *test], manifest)  # the corpus' train folder holds validation songs
    character = {
        split: {singer: shares[singer] for singer in manifest["singers"][split]}
        for split in ("train", "validation", "test")
    }
    train_range = [min(character["train"].values()), max(character["train"].values())]

    model = load_model(checkpoint)
    refine = model_refiner(model)
    tracker = f0_tracker(model, None, None)  # the checkpoint's own, as refine runs it
    stored = {row["song"]: row for row in json.loads(scores.read_text())["rows"]}
    songs = []
    log(f"{LEVEL}: tracked F0 and the refinement's error by kind of frame, {len(test)} songs")
    for track in test:
        mixture, target = track.mixture(), track.vocals()
        separated = cache.separated(track.name, mixture, SAMPLE_RATE, target)
        reference = reference_f0(track)
        tracked = tracker.track(separated, SAMPLE_RATE, REGION_F0_RATE)[0]
        n = min(reference.size, tracked.size)
        refined = refine(separated, SAMPLE_RATE, target, mixture)
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
                "error_change": error_change_by_frames(
                    separated.mean(axis=1),
                    refined.mean(axis=1),
                    target.mean(axis=1),
                    kinds,
                    SAMPLE_RATE // REGION_F0_RATE,
                ),
            }
        )
    worse = [s for s in songs if s["si_sdr_change"] < 0]
    outside = [s for s in worse if character["test"][s["singer"]] > train_range[1]]
    summary = {
        "songs": len(songs),
        "songs_worse": len(worse),
        "songs_worse_of_singers_beyond_the_training_range": len(outside),
        "test_singers_beyond_the_training_range": sorted(s for s, v in character["test"].items() if v > train_range[1]),
        "raw_pitch_accuracy_median": {
            "worse": float(np.median([s["raw_pitch_accuracy"] for s in worse])) if worse else None,
            "better": float(np.median([s["raw_pitch_accuracy"] for s in songs if s["si_sdr_change"] >= 0])),
        },
    }
    for key, value in summary.items():
        log(f"{key}: {value}")
    write_json_atomic(
        RESULT,
        {
            "command": COMMAND,
            "recommended": RECOMMENDED,
            "level": LEVEL,
            "interharmonic_share": character | {"train_range": train_range},
            "summary": summary,
            LEVEL: songs,
            "protocol": "interharmonic share: ddsp_demucs.metrics.interharmonic_share of the true vocal, F0 by "
            "CREPE-full with Viterbi on the true vocal (bench.f0_separated.teacher_labels, 100 frames/s), median "
            "over a singer's takes; F0 accuracy: the tracker of the checkpoint on the separated vocal against that "
            "reference (50 cents); error change: "
            "share of the separated vocal's SI-SDR error energy added (+) or removed (-) in each kind of frame",
        },
    )
    log(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
