"""The README's Python quick-start, run as written (in a subprocess) on a small synthetic MUSDB-layout folder with
a tiny Demucs model saved as local `htdemucs` weights; only the config line is swapped for a tiny config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers_demucs import make_tiny_demucs_repo

from ddsp_demucs.corpus.synthetic import write_corpus

REPO = Path(__file__).resolve().parents[1]
CONFIG_LINE = 'config = load_config("configs/ddsp_residual_small.yaml")'


def quickstart() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_quickstart_runs(tmp_path):
    code = quickstart()
    assert CONFIG_LINE in code
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        f"base: {REPO / 'configs' / 'ddsp_residual_small.yaml'}\n"
        "model: {n_harmonics: 16, n_noise_bands: 17}\n"
        # a random tiny Demucs separates nothing: accept every window
        "gate: {min_voiced_fraction: 0.0, min_mean_confidence: 0.0, min_loudness_db: -200.0}\n"
        "training: {max_steps: 3, batch_size: 2, val_every_steps: 3, limit_val_batches: 1, "
        "warmup_steps: 1, n_audio_examples: 0, threads: 2}\n"
    )
    script = tmp_path / "quickstart.py"
    script.write_text(code.replace(CONFIG_LINE, f"config = load_config({str(tiny)!r})"))
    write_corpus(tmp_path / "musdb", n_train=3, n_test=1, duration_s=6.0, seed=5, n_valid=1)
    make_tiny_demucs_repo(tmp_path / "weights", name="htdemucs")
    env = {**os.environ, "MUSDB_ROOT": str(tmp_path / "musdb"), "DEMUCS_REPO": str(tmp_path / "weights")}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "'improvement_median'" in proc.stdout
    work = tmp_path / "runs" / "quickstart"
    for path in (
        "stems/htdemucs",
        "features/htdemucs/accepted_segments.csv",
        "dataset/manifest.json",
        "ckpt/last.ckpt",
        "eval.png",
    ):
        assert (work / path).exists(), path
