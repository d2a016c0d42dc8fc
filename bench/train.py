"""Training-step speed: forward + backward + AdamW step at batch 8 x 4 s, 22.05 kHz, torch threads 2.

Each configuration runs in its own subprocess (so ``peak_rss_mb`` is that process's peak resident memory):
the small and base configs (mask composition, as configured), and as a reference the same base sizes with
the original-style pure resynthesis (``composition=synth``: time-domain harmonic synth + filtered noise +
reverb), the small model before tuning (model grid hop 256, four loss FFT sizes) for comparison, and the small
config with the MR-STFT loss written as plain autograd operations (``|torch.stft|``, ``log``, ``abs``, ``mean``:
the form before its STFT and magnitude terms got closed-form gradients) as the loss's reference in the same run;
``small_speedup_over_autograd_mrstft`` is the ratio of the two steps. ``small_harmonic`` is the small config
with the ``harmonic`` composition (an ablation of ``bench/quality.py``) and ``recommended`` the recipe of the model
``make bench-quality`` recommends (``configs/mask_small.yaml``, the small model, with :data:`bench.quality.GATED_WIDE`:
the do-no-harm term, inputs blended toward the target, the ambiguity gate, which acts only when refining);
``small_harmonic_step_ratio`` and ``recommended_step_ratio`` are their step times over the small config's, in the
same run. Every step is a training step's work: the input blend where configured, the model, every loss term
(the do-no-harm term reads the input), backward and the update.
``step_s`` is the median over the timed steps after warm-up. Writes ``bench/results/train.json``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.quality import GATED_WIDE

REPO = Path(__file__).resolve().parents[1]
RUNS = {  # name -> (config file, overrides, MR-STFT loss by plain autograd)
    "small": ("ddsp_residual_small.yaml", [], False),
    "small_harmonic": ("ddsp_residual_small.yaml", ["model.composition=harmonic"], False),
    "recommended": ("mask_small.yaml", list(GATED_WIDE), False),
    "small_autograd_mrstft_reference": ("ddsp_residual_small.yaml", [], True),
    "base": ("base.yaml", [], False),
    "base_synth_reference": ("base.yaml", ["model.composition=synth"], False),
    "small_hop256_4fft": (
        "ddsp_residual_small.yaml",
        ["model.mask_hop=256", "loss.fft_sizes=[1024,512,256,128]"],
        False,
    ),
}
BATCH, SECONDS, SR, THREADS, WARMUP, STEPS = 8, 4.0, 22050, 2, 2, 7


def autograd_mrstft(estimate, target, fft_sizes, hops, mag_weight=1.0, logmag_weight=1.0, eps=1e-7):
    """The loss of ``MultiResolutionSTFTLoss`` as plain autograd operations on ``|torch.stft|``, ``log``, ``abs``
    and ``mean`` (the reference form, before its STFT and magnitude terms got closed-form gradients); also the
    reference of the closed-form gradient in tests/test_dsp_spectral.py."""
    import torch

    total = estimate.new_zeros(())
    for n_fft, hop in zip(fft_sizes, hops):
        window = torch.hann_window(n_fft, dtype=estimate.dtype)
        x, y = (
            torch.stft(s, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True).abs()
            for s in (estimate, target)
        )
        total = total + mag_weight * (x - y).abs().mean()
        total = total + logmag_weight * (torch.log(x + eps) - torch.log(y + eps)).abs().mean()
    return total


def autograd_mrstft_forward(self, estimate, target):
    """``MultiResolutionSTFTLoss.forward`` by :func:`autograd_mrstft`."""
    return autograd_mrstft(estimate, target, self.fft_sizes, self.hops, self.mag_weight, self.logmag_weight, self.eps)


def measure(config_file: str, overrides: list[str], autograd_loss: bool = False) -> dict:
    """One configuration, in this process: time training steps and report peak RSS (with ``autograd_loss``, the
    MR-STFT loss in its plain autograd form)."""
    import resource

    import torch

    from ddsp_demucs.dsp import MultiResolutionSTFTLoss

    if autograd_loss:
        MultiResolutionSTFTLoss.forward = autograd_mrstft_forward

    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.data.input_blend import blend_toward_target
    from ddsp_demucs.training.trainer import DDSPTrainer

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    config = load_config(REPO / "configs" / config_file, [f"data.train_sr={SR}", *overrides])
    module = DDSPTrainer(config=config)
    model = module.model.train()
    n = int(SECONDS * SR)
    n_frames = n * config.data.frame_rate // SR
    t = torch.arange(n) / SR
    f0 = 150 + 100 * torch.rand(BATCH, 1)
    target = 0.2 * torch.sin(2 * torch.pi * f0 * t)
    batch = {
        "input_audio": target + 0.05 * torch.randn(BATCH, n),
        "mixture_audio": target + 0.2 * torch.randn(BATCH, n),  # read by models with the ambiguity gate
        "target_audio": target,
        "f0_hz": f0.expand(BATCH, n_frames).contiguous(),
        "f0_confidence": torch.ones(BATCH, n_frames),
        "loudness_db": torch.full((BATCH, n_frames), -30.0),
    }
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    blend = config.training.input_blend_fraction
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(WARMUP + STEPS):
        start = time.perf_counter()
        step = batch
        if blend > 0:
            step = blend_toward_target(
                batch, fraction=blend, generator=generator, sample_rate=SR, frame_rate=config.data.frame_rate
            )
        out = model(step)
        loss = module.losses(out["audio"], step["target_audio"], step["input_audio"])["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "step_s": round(times[len(times) // 2], 4),
        "step_s_min": round(times[0], 4),
        "step_s_max": round(times[-1], 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "composition": config.model.composition,
        "loss_fft_sizes": list(config.loss.fft_sizes),
        "config": config_file,
        "overrides": overrides,
        "mrstft_loss": "plain autograd" if autograd_loss else "closed-form gradient",
    }


def main() -> dict:
    from ddsp_demucs.core.utils import write_json_atomic

    results: dict = {}
    for name, (config_file, overrides, autograd_loss) in RUNS.items():
        code = (
            "import json, sys; sys.path.insert(0, %r); from bench.train import measure; "
            "print(json.dumps(measure(%r, %r, %r)))" % (str(REPO), config_file, overrides, autograd_loss)
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"bench/train.py {name} failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]['step_s']:.3f} s/step, peak {results[name]['peak_rss_mb']:.0f} MB", flush=True)
    results["small_speedup_over_autograd_mrstft"] = round(
        results["small_autograd_mrstft_reference"]["step_s"] / results["small"]["step_s"], 3
    )
    for name in ("small_harmonic", "recommended"):
        results[f"{name}_step_ratio"] = round(results[name]["step_s"] / results["small"]["step_s"], 3)
    results["setup"] = {
        "batch": BATCH,
        "seconds": SECONDS,
        "sample_rate": SR,
        "torch_threads": THREADS,
        "warmup_steps": WARMUP,
        "timed_steps": STEPS,
        "statistic": "median",
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    write_json_atomic(REPO / "bench" / "results" / "train.json", results)
    return results


if __name__ == "__main__":
    main()
