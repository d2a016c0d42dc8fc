"""scripts/gpu_check.py (``make gpu-check``): its one-line answer without CUDA, and (slow tier) every check run on
the CPU, which exercises the same code a GPU machine runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_in_one_line(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "gpu.json")]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "no CUDA device" in printed[0]
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_every_check_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--steps", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["training"]) == {"32", "bf16-mixed", "16-mixed"} and result["all_ok"]
    assert all(run["finite"] and len(run["losses"]) == 3 for run in result["training"].values())
    assert result["training"]["16-mixed"]["final_scale"] > 0
    assert set(result["refine"]) == {"mask", "gate"} and result["ddp"] is None
