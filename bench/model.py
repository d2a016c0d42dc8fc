"""The default refiner shipped in the package: ``make model`` (= ``python -m bench model``).

Rebuilds it from ``../shared/data`` with :mod:`bench.quality`'s stages (its corpus, the datasets of the separators
it learns from and :data:`bench.quality.RECOMMENDED`'s recipe, all under ``runs/quality``, so that this command and
``make bench-quality`` reuse each other's finished work), then scores the rebuilt model and the weights shipped in
the package (:data:`ddsp_demucs.training.checkpoints.DEFAULT_REFINER`) on the singer-held-out test songs at
:data:`COMPARED` (the fallback, the small HTDemucs where it has been trained, a trained-family level, the held-out
level nearest 9 dB and the true vocal), prints both side by side with whether their weights are the same bit for
bit, and writes ``bench/results/model.json``.

``python -m bench.model --install`` scores the rebuilt model at every level of :func:`bench.quality.levels_here`
instead and exports it into the package (safetensors and a JSON card: provenance, the singers and separators it
learned from, this run's figures per level, the licence of its data), replacing the shipped one; it refuses a model
that misses the do-no-harm target (median change < 0 or more than 10 % of songs worse at any level).
"""

from __future__ import annotations

import argparse
import sys

import torch

from bench.quality import (
    ABLATIONS,
    CONFIG,
    CORPUS,
    OUT,
    RECOMMENDED,
    ROOT,
    TRUE_LEVEL,
    WIDE_SEPARATORS,
    does_no_harm,
    held_out_songs,
    levels_here,
    log,
    nearest_9_db,
    real_corpus,
    recipe,
    refiner_key,
    score_levels,
    train_systems,
)

DEFAULT = False  # trains a model: run by name
RESULT = ROOT / "bench" / "results" / "model.json"
COMMAND = "make model"
# the levels the rebuilt and the shipped model are compared at (network_small where bench-network-separator has run)
COMPARED = ("fallback", "network_small", "bands16", "smooth_low", TRUE_LEVEL)
SHIPPED = "packaged"  # the shipped weights' name among the scored systems (scores cached in runs/quality/scores/)
LICENCE = (
    "weights learned from recordings licensed CC BY-NC-SA 4.0 (and CC BY 4.0, CC BY 3.0, CC BY-NC 3.0, public "
    "domain) listed in ../shared/data/SOURCES.md: the weights carry CC BY-NC-SA 4.0 (non-commercial, share alike; "
    "LICENSE-weights.md beside them); the code is MIT"
)


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    """Whether two models hold the same parameters and buffers, bit for bit."""
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def harmful_levels(figures: dict) -> list[str]:
    """The graded levels of ``figures`` (``{level: summarise(...)}``) where the do-no-harm target
    (:func:`bench.quality.does_no_harm`, at most :data:`bench.quality.NO_HARM_MAX_WORSE` of the songs worse) is
    missed, each as ``"level: n of N songs worse, median change"``."""
    return [
        f"{name}: {f['n_worse']} of {f['n_songs']} songs worse, median {f['si_sdr_change_median']:+.2f} dB"
        for name, f in figures.items()
        if "si_sdr_change_median" in f and not does_no_harm(f)
    ]


def card(figures: dict, manifest: dict, provenance: dict) -> dict:
    """What the exported card adds to the checkpoint's own entries (module doc)."""
    near_9 = nearest_9_db(figures)
    at = {name: f"{figures[name]['si_sdr_change_median']:+.2f} dB" for name in ("fallback", near_9)}
    singers = manifest["singers"]
    return {
        "summary": f"{RECOMMENDED}, a mask model trained on {len(singers['train'])} real singers' songs separated "
        f"at {len(WIDE_SEPARATORS)} qualities; median SI-SDR change on held-out singers {at['fallback']} at the "
        f"fallback, {at[near_9]} at {figures[near_9]['input_si_sdr_median']:.1f} dB input; weights CC BY-NC-SA 4.0",
        "name": RECOMMENDED,
        "recipe": " ".join([CONFIG, *recipe(ABLATIONS[RECOMMENDED], OUT.relative_to(ROOT))]),
        "command": "python -m bench.model --install",
        "separators_learned_from": list(WIDE_SEPARATORS),
        "corpus": {"source": "../shared/data (ddsp-demucs corpus --kind remix)", **CORPUS},
        "training_singers": singers["train"],
        "validation_singers": singers["validation"],
        "test_singers": singers["test"],
        "figures": figures,
        "figures_protocol": "whole test songs (singers never heard in training) separated at each level and refined "
        "as ddsp-demucs refine does; SI-SDR of the mono downmix; make bench-quality for every level and system",
        "code_version": provenance.get("code_version"),
        "licence": LICENCE,
    }


def main(argv: list[str] | None = None) -> None:
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.evaluation.songs import model_refiner
    from ddsp_demucs.training.checkpoints import DEFAULT_REFINER, export_model, load_model

    parser = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="export the rebuilt model into the package")
    args = parser.parse_args([] if argv is None else argv)

    corpus, manifest = real_corpus()
    checkpoint = train_systems({RECOMMENDED: ABLATIONS[RECOMMENDED]}, corpus)[RECOMMENDED]
    rebuilt = load_model(checkpoint)
    refiners, keys = {RECOMMENDED: model_refiner(rebuilt)}, {RECOMMENDED: refiner_key(checkpoint, rebuilt)}
    shipped = load_model(DEFAULT_REFINER) if DEFAULT_REFINER.is_file() else None
    if shipped is not None and not args.install:
        refiners[SHIPPED], keys[SHIPPED] = model_refiner(shipped), f"packaged-{refiner_key(DEFAULT_REFINER, shipped)}"
    levels = tuple(lv for lv in levels_here() if args.install or lv.name in COMPARED)
    entries = score_levels(levels, held_out_songs(corpus, manifest), refiners, keys)

    harmful = harmful_levels(entries[RECOMMENDED])
    if args.install:
        if harmful:
            raise SystemExit(f"model: not installed: {checkpoint} misses the do-no-harm target ({'; '.join(harmful)})")
        extra = card(entries[RECOMMENDED], manifest, rebuilt.provenance)
        log(f"installed {export_model(checkpoint, DEFAULT_REFINER, extra).relative_to(ROOT)} and its weights")
        return
    identical = same_weights(rebuilt, shipped) if shipped is not None else None
    shown = [s for s in (SHIPPED, RECOMMENDED) if s in entries]
    print(f"\n{'level':>13} {'input':>7}  " + "  ".join(f"{s:>16}" for s in shown), "(median change, songs worse)")
    for level in levels:
        row = [entries[s][level.name] for s in shown]
        if level.separator is None:
            given, cells = "     -  ", [f"{e['refined_si_sdr_median']:9.2f} dB out" for e in row]
        else:
            given = f"{row[0]['input_si_sdr_median']:5.1f} dB"
            cells = [f"{e['si_sdr_change_median']:+7.2f} dB ({e['n_worse']:>2})" for e in row]
        print(f"{level.name:>13} {given}  " + "  ".join(f"{c:>16}" for c in cells))
    if shipped is None:
        print(f"no refiner is shipped; levels where the rebuilt one does harm: {'; '.join(harmful) or 'none'}")
    else:
        print(f"weights of the rebuilt and the shipped model the same bit for bit: {identical}")
    write_json_atomic(
        RESULT,
        {
            "command": COMMAND,
            "rebuilt_checkpoint": str(checkpoint.relative_to(ROOT)),
            "shipped": str(DEFAULT_REFINER.relative_to(ROOT)) if shipped is not None else None,
            "same_weights": identical,
            "rebuilt_does_harm_at": harmful,
            "figures": entries,
        },
    )
    log(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
