"""Print a markdown table of every ``summary.json`` under a run folder: scripts/experiment_table.py runs/NAME.

One row per (model, evaluation set): the separator, the number of windows (or whole songs), and per metric the separated
(baseline) and refined medians, the median improvement with its bootstrap 95 % interval, and improved/worsened.
"""

import json
import sys
from pathlib import Path

METRICS = ("si_sdr", "si_sdr_mono", "sdr", "mrstft", "log_spectral_distance", "raw_pitch_accuracy")


def rows(root: Path):
    for path in sorted(root.glob("*/eval_*/summary.json")):
        summary = json.loads(path.read_text())
        yield path.parent.parent.name, path.parent.name[len("eval_") :], summary


def main(root: str) -> None:
    found = list(rows(Path(root)))
    if not found:
        sys.exit(f"{root}: no */eval_*/summary.json")
    print(
        "| model | test set | separator | windows or songs | metric | separated | refined | improvement (95 % CI) "
        "| improved / worsened |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model, test_set, s in found:
        for metric in METRICS:
            if metric not in s:
                continue
            m = s[metric]
            lo, hi = m["improvement_ci95"]
            print(
                f"| {model} | {test_set} | {s['separator']} | {s['n_examples']} | {metric} "
                f"| {m['baseline_median']:.3f} | {m['refined_median']:.3f} "
                f"| {m['improvement_median']:+.3f} ({lo:+.3f}, {hi:+.3f}) | {m['n_improved']} / {m['n_worsened']} |"
            )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    main(sys.argv[1])
