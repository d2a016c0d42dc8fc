"""Refinement strength on real singing: ``make bench-strength`` (``python -m bench strength``) after bench-real.

``refine --strength s`` outputs ``separated + s * (refined - separated)``. The models ``make bench-real`` trains
(:data:`MODELS`: ``real``, trained on real vocals, and ``demo``, synthetic voices only) refine the real-singing
corpus' validation songs (its validation singers, whom no model trained on) and its test songs (the held-out
singers) at every strength of :data:`STRENGTHS`, whole songs through the path ``refine`` takes (fallback separator
here). For each model the strength is chosen on the validation songs only, by a rule fixed before any was scored:
the largest median SI-SDR change (the higher strength on a tie); the test songs are then reported at every
strength, the chosen one named, so the choice never sees a test song.

Writes ``bench/results/strength.json``: per model, ``chosen_strength`` and per split (``validation``, ``test``)
and strength the median SI-SDR and SDR changes (refined minus separated, dB), the 95 % interval of the first, songs
worse and better, the worst song's change, and on the test songs ``clean_vocal`` (the SI-SDR left of each true
vocal refined as if it were the separated one). Each song is refined once per model; the strengths are mixed from
that refinement with :func:`ddsp_demucs.inference.refine.apply_strength`, the function ``refine`` uses.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from bench.real_singing import OUT, ROOT, SHARED, clean_vocal_scores, log, system_entry

RESULT = ROOT / "bench" / "results" / "strength.json"
DEFAULT = False  # needs the models of `make bench-real`
COMMAND = "make bench-strength"
MODELS = ("real", "demo")  # runs/real_singing/<name>/model.ckpt
STRENGTHS = (0.25, 0.5, 0.75, 1.0)
SPLITS = {"validation": ("train", "valid"), "test": ("test", None)}  # name -> (corpus folder, musdb split)


def cached_refiner(refiner):
    """``refiner`` memoised on its input, and a function of a strength giving the refiner at that strength."""
    from ddsp_demucs.inference.refine import apply_strength

    cache: dict[str, np.ndarray] = {}

    def full(separated: np.ndarray, sample_rate: int, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        key = hashlib.sha256(np.ascontiguousarray(separated).tobytes()).hexdigest() + str(sample_rate)
        if key not in cache:
            cache[key] = np.asarray(refiner(separated, sample_rate, reference, mixture), dtype=np.float32)
        return cache[key]

    def at(strength: float):
        def refine(separated, sample_rate, reference, mixture):
            return apply_strength(
                np.asarray(separated, dtype=np.float32), full(separated, sample_rate, reference, mixture), strength
            )

        return refine

    return at


def choose(entries: dict[float, dict]) -> float:
    """The strength with the largest median SI-SDR change, the higher strength on a tie."""
    return max(entries, key=lambda s: (entries[s]["si_sdr_change_median"], s))


def main() -> None:
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.evaluation import write_evaluation
    from ddsp_demucs.evaluation.songs import evaluate_songs, model_refiner
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.environment import setup_training_environment

    checkpoints = {name: OUT / name / "model.ckpt" for name in MODELS}
    missing = [str(p) for p in checkpoints.values() if not p.is_file()]
    if not (SHARED / "index.csv").is_file() or missing:
        print(f"strength: needs ../shared/data and the models of `make bench-real` (missing: {missing or SHARED})")
        sys.exit(1)
    setup_training_environment(seed=0)
    separator = get_separator("auto")
    corpus = OUT / "corpus"
    report: dict = {}
    for name, checkpoint in checkpoints.items():
        at = cached_refiner(model_refiner(load_model(checkpoint)))
        per_split: dict[str, dict] = {}
        for split, (folder, musdb_split) in SPLITS.items():
            per_split[split] = {}
            for strength in STRENGTHS:
                system = f"model {checkpoint.relative_to(ROOT)} at strength {strength:g}"
                log(f"scoring {name} at strength {strength:g} on the {split} songs")
                results = evaluate_songs(
                    at(strength),
                    corpus,
                    separator,
                    system=system,
                    cache_dir=OUT / "song_cache",
                    subset=folder,
                    split=musdb_split,
                    progress=True,
                )
                written = write_evaluation(
                    OUT / "eval_strength" / f"{name}_{split}_{strength:g}", results, title=system, command=COMMAND
                )
                entry = system_entry(written["summary"], results, system, COMMAND)
                entry = {
                    key: entry[key]
                    for key in (
                        "si_sdr_change_median",
                        "si_sdr_change_ci95",
                        "sdr_change_median",
                        "n_worse",
                        "n_better",
                        "n_songs",
                        "n_singers",
                        "per_singer",
                    )
                } | {"worst_song_change": float(np.nanmin(results.improvements("si_sdr_mono")))}
                if split == "test":
                    entry["clean_vocal"] = clean_vocal_scores(at(strength), corpus)
                per_split[split][strength] = entry
                log(
                    f"{name} {split} strength {strength:g}: SI-SDR change {entry['si_sdr_change_median']:+.2f} dB, "
                    f"SDR {entry['sdr_change_median']:+.2f} dB, {entry['n_worse']} of {entry['n_songs']} worse"
                )
        chosen = choose(per_split["validation"])
        log(f"{name}: strength {chosen:g} chosen on the validation songs")
        report[name] = {
            "checkpoint": str(checkpoint.relative_to(ROOT)),
            "chosen_strength": chosen,
            "rule": "largest median SI-SDR change on the validation songs (the higher strength on a tie)",
            **{split: {f"{s:g}": e for s, e in entries.items()} for split, entries in per_split.items()},
        }
    write_json_atomic(
        RESULT,
        {
            **report,
            "separator": separator.name,
            "strengths": list(STRENGTHS),
            "protocol": "whole songs of the real-singing corpus (validation: its validation singers' songs; test: its "
            "held-out singers'), refined as `refine --strength s` does; SI-SDR of the mono downmix, SiSEC18 SDR",
            "command": COMMAND,
        },
    )
    log(f"wrote {RESULT}")
