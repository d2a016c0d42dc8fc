"""The ablations of ``make bench-quality``: ``make bench-quality-ablations`` (= ``python -m bench quality_ablations``).

Scores the baselines and the systems of :data:`bench.quality.ABLATIONS` (``mask_sep_2k``, the recommended recipe
without the unvoiced cap, the recommended recipe with another seed, and models each one change away from
``mask_wide_gated_2k``, the same on CREPE-tiny's F0, itself an ablation now: fewer or more steps, no gate, the band
family only, trained through the gate, the ``harmonic`` composition with and without the accompaniment estimate,
``real``: the ``mask`` model trained on the fallback's separations only, as ``make bench-real`` trains it, and
``mask_net_gated_2k``, which also learns from a second small HTDemucs' separations; ``mask_suppress_2k``, whose mask
can hardly exceed 1; ``mask_breath_2k``, trained with voices made breathier, :mod:`ddsp_demucs.data.breath_noise`,
``mask_breath_sep_2k``, the same on controls tracked by ``crepe-separated``, ``mask_breath_f0err_2k``, the same with
a tracker's F0 errors in training, :mod:`ddsp_demucs.data.f0_errors`; ``restore_sep_uvcap_2k``, the recommended
recipe that also gives back a learned share of the accompaniment estimate on the F0's harmonics) and the oracle bounds
:data:`bench.quality.BOUNDS` (what a mask on the separated vocal, or giving back part of the accompaniment estimate,
could gain at best) at every level of :data:`bench.quality.LEVELS`, reusing the default run's corpus, stems,
features, datasets, demo model and scores; writes ``bench/results/quality_ablations.json`` and
``quality_ablations.png`` (the bounds in the JSON only).
"""

from __future__ import annotations

from bench.quality import ABLATIONS, BOUNDS, ROOT, run

DEFAULT = False  # trains eighteen more models (6-22 minutes each on 2 cores) and a separator network (20 minutes)
RESULT = ROOT / "bench" / "results" / "quality_ablations.json"
PLOT = ROOT / "bench" / "results" / "quality_ablations.png"


def main() -> None:
    run(ABLATIONS, RESULT, PLOT, "make bench-quality-ablations", recommend=False, bounds=BOUNDS)


if __name__ == "__main__":
    main()
