"""GPU check (``make gpu-check``): what a CUDA machine must get right, in a few minutes.

1. Training steps of the small config in ``32``, ``bf16-mixed`` and ``16-mixed`` precision on the same examples
   (synthetic songs with their exact F0), from the same initial weights and batches: every loss finite, the mean
   loss of the last third of the steps of each mixed precision within :data:`LOSS_RTOL` of fp32's (the first
   step's loss cannot differ: a ``mask`` model is the identity at initialisation), the ``16-mixed`` scaler's final
   scale (it starts high and backs off over the first steps, which it skips), and the median step time
   (batch 8 x 4 s).
2. Two-GPU DDP (where two GPUs exist): a short run in a subprocess, both ranks, finite loss.
3. ``refine`` of a 30 s stereo song with a non-identity ``mask`` and ``gate`` model on the GPU against the CPU:
   at most :data:`REFINE_MAX_DB` apart (error energy relative to the CPU output), and the real-time factor of each.

Writes ``bench/results/gpu.json`` (``--out`` elsewhere). On a machine without CUDA it says so in one line and
exits 0; ``--device cpu`` runs the same checks on the CPU (``16-mixed`` through Lightning's plugin with a CPU
gradient scaler), which tests this script where no GPU is at hand.
"""

from __future__ import annotations

import argparse
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "bench" / "results" / "gpu.json"
CONFIG = REPO / "configs" / "ddsp_residual_small.yaml"
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
LOSS_RTOL = 0.10  # late-step mean loss of a mixed precision within 10 % of fp32's
REFINE_MAX_DB = -40.0  # GPU refine against CPU refine
BATCH, SECONDS, N_EXAMPLES = 8, 4.0, 32


def song_examples(n_examples: int, seconds: float, sample_rate: int, frame_rate: int) -> list[dict]:
    """Training examples cut from synthetic songs: the vocal (mono) as target, vocal plus accompaniment bleed as
    input, the song's exact F0 (confidence 1 where voiced), A-weighted loudness of the input."""
    import torch

    from ddsp_demucs.core.audio_io import resample
    from ddsp_demucs.corpus.synthetic import generate_song
    from ddsp_demucs.dsp import a_weighted_loudness

    n, n_frames = int(seconds * sample_rate), int(seconds * frame_rate)
    examples = []
    for seed in range(n_examples):
        song = generate_song(seed, duration_s=seconds + 0.5, frame_rate=frame_rate)
        vocal = resample(song.stems["vocals"].mean(axis=1), song.sample_rate, sample_rate)[:n]
        bleed = resample(
            (0.3 * song.stems["other"] + 0.2 * song.stems["drums"]).mean(axis=1), song.sample_rate, sample_rate
        )[:n]
        inp = torch.tensor(vocal + bleed, dtype=torch.float32)
        f0 = torch.tensor(song.f0_hz[:n_frames], dtype=torch.float32)
        loud = a_weighted_loudness(inp[None], sample_rate=sample_rate, frame_rate=frame_rate)[0]
        examples.append(
            {
                "input_audio": inp,
                "target_audio": torch.tensor(vocal, dtype=torch.float32),
                "f0_hz": f0,
                "f0_confidence": (f0 > 0).float(),
                "loudness_db": loud[:n_frames],
                "track": f"synth_{seed}",
                "start_s": 0.0,
            }
        )
    return examples


class ExampleList:
    """A map-style dataset over a list of example dicts."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def train_steps(examples: list[dict], device: str, precision: str, steps: int) -> dict:
    """``steps`` training steps from the same initial weights; losses, gradient norms and step times."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.training.environment import setup_training_environment
    from ddsp_demucs.training.trainer import DDSPTrainer

    class Record(Callback):
        def __init__(self):
            self.losses, self.norms, self.times, self._start = [], [], [], 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if device == "cuda":
                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._start)
            self.losses.append(float(trainer.callback_metrics["train/loss"]))
            self.norms.append(float(trainer.callback_metrics["train/grad_norm"]))

    setup_training_environment(seed=0)
    config = load_config(
        CONFIG, [f"training.batch_size={BATCH}", "training.n_audio_examples=0", "training.log_every_steps=1"]
    )
    module, record = DDSPTrainer(config=config), Record()
    kwargs: dict = {"accelerator": device, "devices": 1, "precision": precision}
    scaler = None
    if precision == "16-mixed" and device == "cpu":  # Lightning refuses 16-mixed on CPU unless given the plugin
        from lightning.pytorch.plugins import MixedPrecision

        scaler = torch.amp.GradScaler("cpu")
        kwargs = {
            "accelerator": "cpu",
            "devices": 1,
            "precision": None,
            "plugins": [MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        }
    trainer = module.fit(
        ExampleList(examples), callbacks=[record], max_steps=steps, enable_progress_bar=False, **kwargs
    )
    if scaler is None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
    timed = sorted(record.times[2:]) or sorted(record.times)
    return {
        "losses": record.losses,
        "grad_norms": record.norms,
        "step_s": timed[len(timed) // 2],
        "finite": all(map(math.isfinite, record.losses)),
        "nonfinite_steps": module.nonfinite_steps,
        "final_scale": float(scaler.get_scale()) if scaler is not None else None,
    }


def refine_check(device: str) -> dict:
    """Refine one song on the CPU and on ``device`` with a non-identity mask and gate model."""
    import numpy as np
    import torch

    from ddsp_demucs.corpus.synthetic import generate_song
    from ddsp_demucs.inference.refine import refine_vocals
    from ddsp_demucs.model import ResidualDDSPDecoder

    song = generate_song(7, duration_s=30.0)
    x = song.stems["vocals"] + 0.3 * song.stems["other"] + 0.2 * song.stems["drums"]
    out = {}
    for composition, bias in (("mask", 0.3), ("gate", 0.5)):
        torch.manual_seed(0)
        model = ResidualDDSPDecoder(composition=composition, mask_hop=512).eval()
        with torch.no_grad():
            torch.nn.init.normal_(model.residual_head.weight, std=0.05)
            model.residual_head.bias.fill_(bias)
        timings, results = {}, {}
        for where in ("cpu", device):
            model.to(where)
            start = time.perf_counter()
            results[where] = refine_vocals(model, x, 44100)
            timings[where] = (time.perf_counter() - start) / (x.shape[0] / 44100)
        cpu, other = results["cpu"].astype(np.float64), results[device].astype(np.float64)
        diff_db = float(10 * np.log10(np.sum((other - cpu) ** 2) / np.sum(cpu**2) + 1e-30))
        out[composition] = {
            "difference_db": diff_db,
            "ok": diff_db <= REFINE_MAX_DB,
            "real_time_factor_cpu": timings["cpu"],
            f"real_time_factor_{device}": timings[device],
        }
    return out


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {scripts!r})
from gpu_check import ExampleList, song_examples
from ddsp_demucs.training.environment import setup_training_environment
from ddsp_demucs.training.trainer import DDSPTrainer
from ddsp_demucs.core.utils import load_config
setup_training_environment(seed=0)
config = load_config({config!r}, ["training.batch_size=4", "training.n_audio_examples=0", "training.devices=2",
                                  "training.strategy=ddp", "training.accelerator=cuda"])
module = DDSPTrainer(config=config)
trainer = module.fit(ExampleList(song_examples(16, 4.0, 22050, 250)), max_steps=5, enable_progress_bar=False)
if trainer.global_rank == 0:
    print("DDP", trainer.world_size, trainer.global_step, float(trainer.callback_metrics["train/loss"]))
"""


def ddp_check(tmp: Path) -> dict:
    """Five steps on two GPUs (Lightning's DDP re-launches a script file, so the run is one)."""
    script = tmp / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(scripts=str(REPO / "scripts"), config=str(CONFIG)))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    line = next((out for out in run.stdout.splitlines() if out.startswith("DDP ")), "")
    if run.returncode != 0 or not line:
        return {"ok": False, "returncode": run.returncode, "stderr_tail": run.stderr[-2000:]}
    _, world, steps, loss = line.split()
    return {
        "ok": int(world) == 2 and int(steps) == 5 and math.isfinite(float(loss)),
        "world_size": int(world),
        "global_step": int(steps),
        "last_loss": float(loss),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to check (default cuda)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per precision (default 12)")
    parser.add_argument("--out", type=Path, default=RESULT, help=f"JSON output (default {RESULT.relative_to(REPO)})")
    args = parser.parse_args(argv)

    import tempfile

    import torch

    from ddsp_demucs.core.utils import write_json_atomic

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device on this machine (torch {torch.__version__}); nothing checked")
        return 0
    started = time.perf_counter()
    examples = song_examples(N_EXAMPLES, SECONDS, 22050, 250)
    training = {p: train_steps(examples, args.device, p, args.steps) for p in PRECISIONS}
    tail = max(1, args.steps // 3)
    for run in training.values():
        run["late_loss"] = sum(run["losses"][-tail:]) / tail
    reference = training["32"]["late_loss"]
    for run in training.values():
        run["late_loss_relative_to_fp32"] = abs(run["late_loss"] - reference) / abs(reference)
        run["ok"] = run["finite"] and run["late_loss_relative_to_fp32"] <= LOSS_RTOL
    with tempfile.TemporaryDirectory() as tmp:
        ddp = ddp_check(Path(tmp)) if args.device == "cuda" and torch.cuda.device_count() >= 2 else None
    refine = refine_check(args.device)
    checks = [r["ok"] for r in training.values()] + [r["ok"] for r in refine.values()] + ([ddp["ok"]] if ddp else [])
    result = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "n_gpus": torch.cuda.device_count() if args.device == "cuda" else 0,
        "training": training,
        "loss_rtol": LOSS_RTOL,
        "ddp": ddp,
        "refine": refine,
        "refine_max_db": REFINE_MAX_DB,
        "all_ok": all(checks),
        "seconds": time.perf_counter() - started,
        "command": "make gpu-check" if args.device == "cuda" else "python scripts/gpu_check.py --device cpu",
    }
    write_json_atomic(args.out, result)
    for name, run in training.items():
        print(
            f"{name:>10}: late loss {run['late_loss']:.4f} ({run['late_loss_relative_to_fp32']:.1e} from fp32), "
            f"finite {run['finite']}, step {run['step_s']:.3f} s"
            + (f", scale {run['final_scale']:g}" if run["final_scale"] else "")
        )
    for name, r in refine.items():
        print(f"refine {name}: {r['difference_db']:.1f} dB from the CPU (limit {REFINE_MAX_DB:g})")
    if ddp:
        print(f"DDP on 2 GPUs: {'ok' if ddp['ok'] else 'FAILED'}")
    print(f"{'all checks passed' if result['all_ok'] else 'SOME CHECKS FAILED'}; wrote {args.out}")
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
