"""``evaluate_model`` on the demo's held-out windows: today's code against the code before the speed work.

Needs a finished demo run (``make demo`` writes ``runs/demo``; ``DDSP_BENCH_DEMO`` names another run directory):
its test split (29 windows of the embedded corpus) and ``model.ckpt``. Without one it says so and writes nothing.

Reference in the same run: the package as it was at ``REFERENCE_COMMIT`` (the last commit before issue 12's
speed work), checked out with ``git worktree`` into a temporary folder. Each side runs ``evaluate_model(model,
test split)`` with F0 metrics, as the demo does, in its own subprocess with ``torch.set_num_threads(THREADS)``;
the wall time of that call is recorded (model and dataset loading are not timed).

Today's code runs twice: with the checkpoint's F0 tracker (the demo's: CREPE every 10 ms, the reference's too, so
every figure must agree) and with ``features.crepe_hop`` set to 320 (the CREPE network every 20 ms, an opt-in
setting the reference does not have: the F0 metrics move, the waveform figures must not). Per run: the speed-up
over the reference and the largest absolute difference of any per-window figure, apart for the waveform figures
(SI-SDR, SDR, spectral) and the F0 metrics.

Writes ``bench/results/evaluate_windows.json``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "evaluate_windows.json"
DEMO = Path(os.environ.get("DDSP_BENCH_DEMO", ROOT / "runs" / "demo"))
REFERENCE_COMMIT = "f4581ee"  # main before the speed work of issue 12
THREADS = 2


def _child(run_dir: str, crepe_hop: str) -> dict:
    """In this process (whichever ``ddsp_demucs`` is on the path): time ``evaluate_model`` on the test split,
    with the checkpoint's CREPE hop (``crepe_hop="model"``) or that number of samples."""
    import torch

    import ddsp_demucs
    from ddsp_demucs.data import load_dataset
    from ddsp_demucs.evaluation import evaluate_model
    from ddsp_demucs.training.checkpoints import load_model

    torch.set_num_threads(THREADS)
    model = load_model(Path(run_dir) / "model.ckpt")
    if crepe_hop != "model":
        model.config["features"]["crepe_hop"] = int(crepe_hop)
    dataset = load_dataset(Path(run_dir) / "dataset", "test")
    start = time.perf_counter()
    results = evaluate_model(model, dataset, progress=False)
    wall = time.perf_counter() - start
    return {
        "package": ddsp_demucs.__file__,
        "wall_s": round(wall, 2),
        "n_windows": len(results.rows),
        "rows": results.rows,
    }


def _run(src: Path, run_dir: Path, crepe_hop: str = "model") -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    code = "import json, sys; from bench.evaluate_windows import _child; print(json.dumps(_child(*sys.argv[1:])))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run_dir), crepe_hop], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench evaluate_windows ({src}) failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(out["package"]).is_relative_to(src):
        raise RuntimeError(f"bench evaluate_windows: imported {out['package']}, not the package in {src}")
    return out


def largest_difference(rows_a: list[dict], rows_b: list[dict], keys: set[str]) -> float:
    """Largest absolute difference of the figures ``keys`` between two lists of per-window rows (NaN = NaN)."""
    worst = 0.0
    for a, b in zip(rows_a, rows_b, strict=True):
        for key, value in a.items():
            if key in keys and isinstance(value, float) and key in b:
                if math.isnan(value) and math.isnan(b[key]):
                    continue
                worst = max(worst, abs(value - b[key]))
    return worst


def main() -> dict | None:
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.evaluation.core import METRICS, SIDES

    if not (DEMO / "model.ckpt").is_file() or not (DEMO / "dataset").is_dir():
        print(f"bench evaluate_windows: skipped: no finished demo run in {DEMO} (run `make demo` first)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "reference"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(worktree), REFERENCE_COMMIT], check=True
        )
        try:
            reference = _run(worktree / "src", DEMO)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)
    results = {
        "run": str(DEMO.relative_to(ROOT)) if DEMO.is_relative_to(ROOT) else str(DEMO),
        "n_windows": reference["n_windows"],
        "torch_threads": THREADS,
        "reference_commit": REFERENCE_COMMIT,
        "reference_wall_s": reference["wall_s"],
    }
    f0_keys = {f"{m.key}_{side}" for m in METRICS if m.f0 for side in SIDES}
    waveform_keys = {f"{m.key}_{side}" for m in METRICS if not m.f0 for side in SIDES}
    for name, crepe_hop in (("checkpoint_tracker", "model"), ("crepe_hop_20ms", "320")):
        today = _run(ROOT / "src", DEMO, crepe_hop)
        results[name] = {
            "wall_s": today["wall_s"],
            "speedup": round(reference["wall_s"] / today["wall_s"], 2),
            "largest_waveform_figure_difference": largest_difference(reference["rows"], today["rows"], waveform_keys),
            "largest_f0_figure_difference": largest_difference(reference["rows"], today["rows"], f0_keys),
        }
        print(
            f"evaluate on {results['n_windows']} demo windows ({name}): {today['wall_s']} s, reference "
            f"({REFERENCE_COMMIT}) {reference['wall_s']} s: {results[name]['speedup']}x; largest difference of a "
            f"waveform figure {results[name]['largest_waveform_figure_difference']:.2e}, of an F0 figure "
            f"{results[name]['largest_f0_figure_difference']:.2e}",
            flush=True,
        )
    write_json_atomic(RESULTS, results)
    return results


if __name__ == "__main__":
    main()
