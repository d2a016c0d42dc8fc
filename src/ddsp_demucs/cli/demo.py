"""Run the whole pipeline on the embedded synthetic corpus and report whether refinement beats the separator.

Builds the synthetic songs, separates their vocals (--separator auto: htdemucs when its weights can be loaded
from --demucs-repo, the caches or a download; otherwise the weight-free fallback, said plainly here and in the
report), separates each training song once more by one of the config's corpus.training_separators in turn
(oracle separators of other qualities, made from the songs' stems), extracts F0/loudness and gates windows, builds
the datasets, trains the demo config on every separator's windows together, evaluates on the held-out songs
and writes OUT/report.html, OUT/summary.json and OUT/model.ckpt. Re-running reuses every finished stage, so an
interrupted demo resumes.

examples:
  ddsp-demucs demo                                  # configs/demo.yaml into runs/demo
  ddsp-demucs demo --demucs-repo ~/demucs-weights   # with local htdemucs weights
  ddsp-demucs demo --out runs/demo_long training.max_steps=3000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddsp_demucs.core.utils import get_logger

log = get_logger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config (default configs/demo.yaml)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default runs/demo)")
    p.add_argument(
        "--separator", default=None, help="auto | htdemucs | htdemucs_ft | ... | fallback (default: the config's, auto)"
    )
    p.add_argument("--demucs-repo", default=None, metavar="DIR", help="local folder of Demucs weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. training.max_steps=100")


def run(args: argparse.Namespace) -> int:
    from ddsp_demucs import InputError
    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.demo import run_demo

    if not args.config.is_file():
        raise InputError(f"{args.config}: config not found")
    config = load_config(args.config, args.overrides)
    result = run_demo(
        config, args.out, separator=args.separator, demucs_repo=args.demucs_repo, progress=not args.no_progress
    )
    si = result.summary["si_sdr"]
    lo, hi = si["improvement_ci95"]
    print(
        f"separator: {result.separator}"
        + ("  (weight-free fallback, not Demucs)" if result.separator == "fallback" else "")
    )
    print(
        f"held-out windows: {result.summary['n_examples']}; SI-SDR separated {si['baseline_median']:.2f} dB, "
        f"refined {si['refined_median']:.2f} dB (medians)"
    )
    verdict = "beat" if result.improved else "do NOT beat"
    print(
        f"the refined vocals {verdict} the separator's: median SI-SDR improvement {si['improvement_median']:+.2f} dB "
        f"(95% CI {lo:+.2f} to {hi:+.2f}), {si['n_improved']} windows improved, {si['n_worsened']} worsened"
    )
    print(f"report: {result.report}\nsummary: {result.out_dir / 'summary.json'}\ncheckpoint: {result.checkpoint}")
    return 0
