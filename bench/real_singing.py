"""Refinement of real singing on whole songs: ``make bench-real`` (= ``python -m bench real_singing``).

Writes ``bench/results/real_singing.json`` with one entry per system, scored on the singer-held-out test songs
of the real-singing corpus (``ddsp-demucs corpus --kind remix`` from ``../shared/data``), whole songs through
the path ``ddsp-demucs refine`` takes, with the separator ``auto`` picks (the weight-free fallback here):

- ``"demo"``: the checkpoint ``make demo`` trains on a fresh clone (synthetic voices only), trained here
  into ``runs/real_singing/demo/`` with ``configs/demo.yaml``;
- ``"real"``: the same config trained on the training singers' real vocals (the corpus' train split,
  validation on its validation singers) with the do-no-harm loss term (:data:`NO_HARM`: a hinge on every
  training window the model makes worse than its separated input), ``runs/real_singing/real/model.ckpt``;
- ``"real_without_no_harm"``: the ablation, the same without that term;
- ``"real_augmented"``: as ``"real"``, trained on a corpus that also holds every training take
  :data:`AUGMENTATIONS` times augmented (``corpus --augment``: pitch, tempo, formants, EQ, reverb, level),
  built in ``runs/real_singing/augmented/`` (the unaugmented songs' stems and features are reused, not redone),
  the same number of steps;
- ``"real_augmented_eq10"`` (:data:`AUGMENTED`): the same with the augmentation's equaliser gains drawn within
  +-10 dB instead of +-4 (``corpus --augment-eq-db 10``; every other draw identical), in
  ``runs/real_singing/augmented_eq10/``: a wider spread of voice colour (bright voices such as
  gtsinger-DE-Tenor-1's are the ones every model makes worse);
- ``"real_input_blend30"``, ``"real_input_blend60"`` (:data:`INPUT_BLENDS`): as ``"real"``, with 30 or 60 % of
  the training windows given an input moved toward the target (``training.input_blend_fraction``: a random part
  of the separator's error left), so that the model sees clean inputs too and can learn to leave them alone;
- ``"comb"``: the non-learned F0-guided harmonic comb post-filter (:mod:`ddsp_demucs.inference.comb`);
- ``"real_seed1"``, ``"real_without_no_harm_seed1"``, ... (:data:`SEEDED`, :data:`SEEDS`): ``real``,
  ``real_without_no_harm`` and the two augmented systems trained again from other seeds (``training.seed``);
  ``seed_spread`` lists each seed's median changes and songs worse, so a difference between systems can be set
  against the spread of one system over training runs.

Per system: ``si_sdr_change_median`` (SI-SDR of the mono downmix, refined minus separated, dB) and its
``si_sdr_change_ci95`` (percentile bootstrap of the median, 2000 resamples), ``sdr_change_median`` (SiSEC18),
``fraction_worse`` (songs whose SI-SDR fell), ``n_songs``, ``n_singers``, ``per_singer`` (songs, median change
and songs worse per test singer), ``error_reduction_median_db`` (per band and region, the median fall of the
error energy in dB: positive where the system removed error), the evaluation folder (summary.json, CSV tables,
report.html) and, except for the seed runs, ``clean_vocal``: the SI-SDR the system leaves of each test song's true
vocal given to it as the separated one (what it does to a perfect separation). ``targets`` says which of the
issue's targets each system meets. Every stage reuses finished work, so an interrupted run resumes;
``DDSP_REAL_STEPS`` overrides the training steps of the real-vocal models.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDSP_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "runs" / "real_singing"
RESULT = ROOT / "bench" / "results" / "real_singing.json"
DEFAULT = False  # not part of a plain `make bench`: it trains 16 models (about 3.5 hours on 2 cores)
COMMAND = "make bench-real"
CONFIG = "configs/mask_small.yaml"  # the base of every model trained here, relative to ROOT
DEMO_CONFIG = "configs/demo.yaml"  # what `make demo` trains
REAL_STEPS = 1000  # training steps of the real-vocal models (DDSP_REAL_STEPS overrides; the demo's own are fewer)
NO_HARM = ["loss.no_harm_weight=10.0"]
INPUT_BLENDS = {"real_input_blend30": 0.3, "real_input_blend60": 0.6}  # system -> training.input_blend_fraction
AUGMENTATIONS = 2  # augmented versions of each training take in the augmented corpora
AUGMENTED = {"real_augmented": 4.0, "real_augmented_eq10": 10.0}  # system -> its corpus' augmentation EQ range, dB
SEEDED = ("real", "real_without_no_harm", "real_augmented", "real_augmented_eq10")  # also trained from SEEDS
SEEDS = (1, 2)  # further training seeds of SEEDED (seed 0 is the systems themselves)


def log(message: str) -> None:
    print(f"[real_singing {time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_real_data(config, separator, root: Path, augmentations: int = 0, eq_db: float = 4.0) -> Path:
    """Corpus (``augmentations`` augmented versions of each training take, equaliser gains within ``+-eq_db``),
    separation, features and dataset of the real-singing corpus under ``root``; returns the dataset folder."""
    from ddsp_demucs.corpus.real_corpus import write_real_corpus

    corpus = root / "corpus"
    log(f"corpus from {SHARED} in {corpus.relative_to(ROOT)}, {augmentations} augmented versions per training take")
    write_real_corpus(corpus, SHARED, augmentations_per_vocal=augmentations, augmentation_eq_db=eq_db, progress=True)
    return separated_dataset(config, separator, corpus, root / "stems", root / "features", root / "dataset")


def separated_dataset(config, separator, corpus: Path, stems: Path, features: Path, dataset: Path) -> Path:
    """The training and validation songs of ``corpus`` separated by ``separator`` into ``stems``, their features in
    ``features`` and their windows in ``dataset`` (each stage reuses finished work); returns ``dataset``."""
    from ddsp_demucs.data import build_dataset_from_segments, musdb_tracks
    from ddsp_demucs.features import run_features
    from ddsp_demucs.separation.cache import separate_tracks

    log(f"separating the training and validation songs with {separator.name}")
    failures = separate_tracks(musdb_tracks(corpus, subsets=("train",)), separator, stems, progress=True)
    if failures:
        raise SystemExit(f"separation failed: {failures}")
    log(f"features of {separator.name}")
    report = run_features(stems, separator.name, features, config, progress=True)
    log(f"dataset of {separator.name}")
    dc = config.data
    build_dataset_from_segments(
        report.segments_csv,
        stems / separator.name,
        corpus,
        dataset,
        train_sr=dc.train_sr,
        win_s=dc.win_s,
        hop_s=dc.hop_s,
        config=config,
        progress=True,
    )
    return dataset


def link_finished_work(source: Path, target: Path, separator: str) -> None:
    """Hard-link the separated stems and feature files of ``source`` into ``target`` where missing: both caches
    check the checksum of their input before reuse, and every write replaces a file (never writes into it), so
    a linked file is reused only for the same song and is never changed under ``source``."""
    for sub, pattern in (("stems", "*/*"), ("features", "*.npz")):
        for path in sorted((source / sub / separator).glob(pattern)):
            link = target / sub / separator / path.relative_to(source / sub / separator)
            if path.is_file() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, link)


def augmented_root(name: str) -> Path:
    """Where the augmented corpus of system ``name`` (a key of :data:`AUGMENTED`) is built: ``augmented/`` for
    ``real_augmented``, ``augmented_<suffix>/`` for ``real_augmented_<suffix>``."""
    return OUT / name.removeprefix("real_")


def train_real(config, dataset: Path, name: str) -> Path:
    from ddsp_demucs.core.utils import atomic_path
    from ddsp_demucs.data import load_dataset
    from ddsp_demucs.training.trainer import train_from_config

    checkpoint = OUT / name / "model.ckpt"
    train_ds, val_ds = load_dataset(dataset, "train"), load_dataset(dataset, "validation")
    log(f"training {name}: {len(train_ds)} windows, {config.training.max_steps} steps")
    result = train_from_config(config, train_ds, val_ds, OUT / name / "train", resume=True)
    with atomic_path(checkpoint) as tmp:
        shutil.copyfile(result["best_checkpoint"], tmp)
    return checkpoint


def system_entry(summary: dict, results, system: str, command: str) -> dict:
    si, sd = summary["si_sdr_mono"], summary["sdr"]
    gains = results.improvements("si_sdr_mono")
    singers = np.array([r.get("singer", "") for r in results.rows])
    per_singer = {}
    for name in sorted(set(singers) - {""}):
        own = gains[singers == name]
        per_singer[str(name)] = {
            "n_songs": len(own),
            "si_sdr_change_median": float(np.nanmedian(own)),
            "n_worse": int(np.sum(own < 0)),
        }
    return {
        "system": system,
        "command": command,
        "si_sdr_change_median": si["improvement_median"],
        "si_sdr_change_ci95": si["improvement_ci95"],
        "sdr_change_median": sd["improvement_median"],
        "sdr_change_ci95": sd["improvement_ci95"],
        "fraction_worse": float(np.mean(gains[np.isfinite(gains)] < 0)),
        "n_worse": si["n_worsened"],
        "n_better": si["n_improved"],
        "n_songs": len(results.rows),
        "n_singers": len(per_singer),
        "per_singer": per_singer,
        "separated_si_sdr_median": si["baseline_median"],
        "refined_si_sdr_median": si["refined_median"],
        "error_reduction_median_db": {
            k: summary[k]["improvement_median"]
            for k in results.metric_keys
            if k.startswith(("band_err_", "region_err_")) and k in summary
        },
    }


def clean_vocal_scores(refiner, corpus: Path) -> dict:
    """What a system does to a perfect separation: each test song's true vocal refined as if it were the separated
    one, and scored against itself (SI-SDR of the mono downmix, dB; the identity scores without bound). The median
    over songs and per singer."""
    from ddsp_demucs.data import SAMPLE_RATE, load_track_audio, musdb_tracks
    from ddsp_demucs.metrics import si_sdr

    tracks = json.loads((corpus / "manifest.json").read_text())["tracks"]
    scores: dict[str, list[float]] = {}
    for track in musdb_tracks(corpus, subsets=("test",)):
        vocal = load_track_audio(track.stem_paths["vocals"]).astype(np.float64)
        refined = np.asarray(refiner(vocal.astype(np.float32), SAMPLE_RATE, vocal, track.mixture()), dtype=np.float64)
        scores.setdefault(tracks[track.name]["singer"], []).append(float(si_sdr(refined.mean(1), vocal.mean(1))))
    return {
        "si_sdr_median": float(np.median([v for singer in scores.values() for v in singer])),
        "per_singer_median": {singer: float(np.median(v)) for singer, v in sorted(scores.items())},
    }


def seed_run(name: str, seed: int) -> str:
    """The system name of ``name`` (one of :data:`SEEDED`) trained from ``seed`` (one of :data:`SEEDS`)."""
    return f"{name}_seed{seed}"


SEED_RUNS = {seed_run(name, seed) for name in SEEDED for seed in SEEDS}


def seed_spread(entries: dict) -> dict:
    """Per system trained from several seeds: each seed's median SI-SDR change and songs made worse."""
    spread = {}
    for name in SEEDED:
        runs = {0: entries[name]} | {seed: entries[seed_run(name, seed)] for seed in SEEDS}
        spread[name] = {
            "seeds": list(runs),
            "si_sdr_change_median": [round(e["si_sdr_change_median"], 3) for e in runs.values()],
            "sdr_change_median": [round(e["sdr_change_median"], 3) for e in runs.values()],
            "n_worse": [e["n_worse"] for e in runs.values()],
        }
    return spread


def targets(entries: dict) -> dict[str, bool]:
    """The issue's targets on these songs, each met or not."""
    demo, real, comb = entries["demo"], entries["real"], entries["comb"]
    return {
        "demo: median SI-SDR change > 0 dB": demo["si_sdr_change_median"] > 0,
        "demo: at most 30 % of songs worse": demo["fraction_worse"] <= 0.30,
        "real: median SI-SDR change >= +1.5 dB": real["si_sdr_change_median"] >= 1.5,
        "real: median SDR change >= +0.5 dB": real["sdr_change_median"] >= 0.5,
        "real: at most 20 % of songs worse": real["fraction_worse"] <= 0.20,
        "demo and real above the comb filter": min(demo["si_sdr_change_median"], real["si_sdr_change_median"])
        > comb["si_sdr_change_median"],
    }


def main() -> None:
    from ddsp_demucs.core.utils import load_config, write_json_atomic
    from ddsp_demucs.demo import run_demo
    from ddsp_demucs.evaluation import write_evaluation
    from ddsp_demucs.evaluation.songs import comb_refiner, evaluate_songs, model_refiner
    from ddsp_demucs.separation.demucs import get_separator
    from ddsp_demucs.training.checkpoints import load_model
    from ddsp_demucs.training.environment import setup_training_environment
    from ddsp_demucs.training.provenance import read_provenance

    if not (SHARED / "index.csv").is_file():
        print(f"real_singing: {SHARED}/index.csv not found; this benchmark needs the real audio of ../shared/data")
        sys.exit(1)
    setup_training_environment(seed=0)
    OUT.mkdir(parents=True, exist_ok=True)
    demo_config = load_config(ROOT / DEMO_CONFIG)
    separator = get_separator(demo_config.data.separator)

    log("demo model (synthetic voices only), as `make demo` trains it")
    demo = run_demo(demo_config, OUT / "demo", separator=separator.name, progress=True)

    steps = [f"training.max_steps={os.environ.get('DDSP_REAL_STEPS', REAL_STEPS)}"]
    real_overrides = (
        {
            "real": steps + NO_HARM,
            "real_without_no_harm": steps,
        }
        | {name: steps + NO_HARM for name in AUGMENTED}
        | {name: steps + NO_HARM + [f"training.input_blend_fraction={f}"] for name, f in INPUT_BLENDS.items()}
    )
    for seed in SEEDS:  # the same systems trained from other seeds: how far one training run is from another
        for name in SEEDED:
            real_overrides[seed_run(name, seed)] = real_overrides[name] + [f"training.seed={seed}"]
    datasets = {"real": build_real_data(load_config(ROOT / CONFIG, steps), separator, OUT)}
    for name, eq_db in AUGMENTED.items():
        root = augmented_root(name)
        link_finished_work(OUT, root, separator.name)
        datasets[name] = build_real_data(load_config(ROOT / CONFIG, steps), separator, root, AUGMENTATIONS, eq_db)
    datasets |= {seed_run(name, seed): datasets[name] for name in SEEDED for seed in SEEDS if name in datasets}
    checkpoints = {"demo": demo.checkpoint} | {
        name: train_real(load_config(ROOT / CONFIG, overrides), datasets.get(name, datasets["real"]), name)
        for name, overrides in real_overrides.items()
    }

    corpus = OUT / "corpus"
    systems = {
        name: (model_refiner(load_model(ckpt)), f"model {ckpt.relative_to(ROOT)}", read_provenance(ckpt))
        for name, ckpt in checkpoints.items()
    }
    systems["comb"] = (comb_refiner(), "comb filter (no training)", {})
    entries = {}
    for name, (refiner, system, provenance) in systems.items():
        log(f"scoring {name} on the held-out real songs")
        results = evaluate_songs(
            refiner, corpus, separator, system=system, cache_dir=OUT / "song_cache", settings={"provenance": provenance}
        )
        written = write_evaluation(
            OUT / "eval" / name, results, title=f"real singing, whole songs: {name}", command=COMMAND
        )
        entries[name] = system_entry(written["summary"], results, system, COMMAND) | {
            "evaluation": str((OUT / "eval" / name).relative_to(ROOT))
        }
        if name not in SEED_RUNS:
            log(f"refining the test songs' true vocals with {name}")
            entries[name]["clean_vocal"] = clean_vocal_scores(refiner, corpus)
        e = entries[name]
        log(
            f"{name}: SI-SDR change median {e['si_sdr_change_median']:+.2f} dB (95 % CI "
            f"{e['si_sdr_change_ci95'][0]:+.2f} to {e['si_sdr_change_ci95'][1]:+.2f}), SDR "
            f"{e['sdr_change_median']:+.2f} dB, {e['n_worse']} of {e['n_songs']} songs worse"
        )
    manifest = json.loads((corpus / "manifest.json").read_text())
    write_json_atomic(
        RESULT,
        {
            **entries,
            "separator": separator.name,
            "separator_is_fallback": separator.name == "fallback",
            "test_singers": manifest["singers"]["test"],
            "training_singers": manifest["singers"]["train"],
            "validation_singers": manifest["singers"]["validation"],
            "protocol": "whole test songs of the real-singing corpus (ddsp-demucs corpus --kind remix), separated and "
            "refined at their own rate and channels; SI-SDR of the mono downmix, SiSEC18 SDR",
            "commands": {
                "all": COMMAND,
                "corpus": "ddsp-demucs corpus --kind remix --out runs/real_singing/corpus",
                "demo_config": DEMO_CONFIG,
            }
            | {
                f"{name}_corpus": f"ddsp-demucs corpus --kind remix --augment {AUGMENTATIONS} --augment-eq-db "
                f"{eq_db:g} --out {(augmented_root(name) / 'corpus').relative_to(ROOT)}"
                for name, eq_db in AUGMENTED.items()
            }
            | {f"{name}_config": " ".join([CONFIG, *overrides]) for name, overrides in real_overrides.items()},
            "targets": targets(entries),
            "seed_spread": seed_spread(entries),
        },
    )
    log(f"wrote {RESULT}")
