"""The ablations of ``make bench-quality``: ``make bench-quality-ablations`` (= ``python -m bench quality_ablations``).

Scores the baselines and the systems of :data:`bench.quality.ABLATIONS` (each described in :mod:`bench.quality`'s
docstring: the recipes recommended before, seed repeats of the recommended one, and models each one change away
from them) and the oracle bounds :data:`bench.quality.BOUNDS` (what a mask on the separated vocal, or giving back
part of the accompaniment estimate, could gain at best) at every level of :data:`bench.quality.LEVELS`, reusing the
default run's corpus, stems, features, datasets, demo model and scores; writes
``bench/results/quality_ablations.json`` and ``quality_ablations.png`` (the bounds in the JSON only).
"""

from __future__ import annotations

from bench.quality import ABLATIONS, BOUNDS, ROOT, run

DEFAULT = False  # trains thirty more models (5-22 minutes each on 2 cores) and a separator network (20 minutes)
RESULT = ROOT / "bench" / "results" / "quality_ablations.json"
PLOT = ROOT / "bench" / "results" / "quality_ablations.png"


def main() -> None:
    run(ABLATIONS, RESULT, PLOT, "make bench-quality-ablations", recommend=False, bounds=BOUNDS)


if __name__ == "__main__":
    main()
