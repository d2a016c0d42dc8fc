"""The ablations of ``make bench-quality``: ``make bench-quality-ablations`` (= ``python -m bench quality_ablations``).

Scores the baselines and the systems of :data:`bench.quality.ABLATIONS` (each one change away from the
recommended model: fewer or more steps, no gate, the band family only, trained through the gate, the ``harmonic``
composition with and without the accompaniment estimate, and ``real``: the ``mask`` model trained on the
fallback's separations only, as ``make bench-real`` trains it) at every level of :data:`bench.quality.LEVELS`,
reusing the default run's corpus, stems, features, datasets, demo model and scores; writes
``bench/results/quality_ablations.json`` and ``quality_ablations.png``.
"""

from __future__ import annotations

from bench.quality import ABLATIONS, ROOT, run

DEFAULT = False  # trains eight more models (6-22 minutes each on 2 cores)
RESULT = ROOT / "bench" / "results" / "quality_ablations.json"
PLOT = ROOT / "bench" / "results" / "quality_ablations.png"


def main() -> None:
    run(ABLATIONS, RESULT, PLOT, "make bench-quality-ablations", recommend=False)


if __name__ == "__main__":
    main()
