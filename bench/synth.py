"""Benchmark ``harmonic_synth`` against a straightforward oscillator bank, and ``MultiResolutionSTFTLoss``.

Writes ``bench/results/synth.json``. Workload: batch 8, 4 s at 22.05 kHz, controls at 250 frames/s (1000 frames),
f0 a smooth random contour in 100-400 Hz, random amplitudes and harmonic distributions, 64 and 100 harmonics.

- ``reference_bank``: the magenta-ddsp algorithm written here: upsample f0 and every harmonic's amplitude to the
  sample rate (the same linear interpolation as ``harmonic_synth``), per-harmonic frequencies, Nyquist mask,
  per-harmonic float32 cumulative phase (``torch.cumsum`` over time), ``sin``, weight, sum over harmonics.
- Threads: ``DDSP_BENCH_THREADS`` (default 1) torch threads in every case, recorded with the load average.
- Time: forward + backward (``loss = sum(y * g)``, ``g`` fixed random) per call; ``repeats`` calls after one warm-up,
  the median reported (all values kept). Each case runs in its own subprocess.
- Peak memory: ``ru_maxrss`` of that subprocess (peak resident set, MiB) minus its resident set just before the
  first call (inputs built, torch imported): the extra memory the computation needed at its peak.
- Error: ``10 log10(sum (y - y64)^2 / sum y64^2)`` dB against a float64 numpy reference that upsamples with
  ``np.interp`` (same frame positions) and accumulates phase in float64 (no wrapping).
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "synth.json"
BATCH, SECONDS, SAMPLE_RATE, FRAME_RATE = 8, 4.0, 22050, 250
HARMONICS = (64, 100)
REPEATS = {"harmonic_synth": 5, "reference_bank": 3, "mrstft_loss": 5}
# torch threads per case (DDSP_BENCH_THREADS, default 1): on a shared 2-core machine one thread gives the steadiest
# timings for both contenders.
THREADS = int(os.environ.get("DDSP_BENCH_THREADS", "1"))


def make_controls(n_harmonics: int, seed: int = 0) -> dict:
    """Random but smooth controls, float32 numpy: f0 (B, F) Hz, amplitudes (B, F), distribution (B, F, K)."""
    rng = np.random.default_rng(seed)
    n_samples = int(SECONDS * SAMPLE_RATE)
    n_frames = n_samples * FRAME_RATE // SAMPLE_RATE
    t = np.arange(n_frames) / FRAME_RATE
    rate = rng.uniform(0.5, 3.0, (BATCH, 1))
    f0 = 250.0 + 150.0 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi, (BATCH, 1)))
    amps = 0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * rate * t)
    dist = rng.uniform(0.0, 1.0, (BATCH, n_frames, n_harmonics)) / np.arange(1, n_harmonics + 1)
    return dict(
        f0=f0.astype(np.float32), amps=amps.astype(np.float32), dist=dist.astype(np.float32), n_samples=n_samples
    )


def reference_bank(f0, amps, dist, *, sample_rate, n_samples):
    """magenta-ddsp's oscillator bank: per-sample, per-harmonic controls, float32 cumulative phase."""
    from ddsp_demucs.dsp import upsample

    k = torch.arange(1, dist.shape[-1] + 1, dtype=f0.dtype)
    freqs = upsample(f0, n_samples)[..., None] * k  # (B, n, K)
    harm_amps = upsample(amps[..., None] * dist, n_samples, dim=-2)  # (B, n, K)
    harm_amps = harm_amps * (freqs < sample_rate / 2).to(harm_amps.dtype)
    phases = torch.cumsum(2 * math.pi * freqs / sample_rate, dim=-2)
    return (harm_amps * torch.sin(phases)).sum(-1)


def float64_reference(c: dict) -> np.ndarray:
    n = c["n_samples"]
    n_frames = c["f0"].shape[-1]
    hop = n / n_frames
    frames_x = np.arange(n_frames) * hop
    x = np.arange(n, dtype=np.float64)
    out = np.zeros((BATCH, n))
    for b in range(BATCH):
        f0 = np.interp(x, frames_x, c["f0"][b].astype(np.float64))
        phase = np.cumsum(2 * np.pi * f0 / SAMPLE_RATE)
        h = c["amps"][b].astype(np.float64)[:, None] * c["dist"][b].astype(np.float64)
        for k in range(1, h.shape[-1] + 1):
            a = np.interp(x, frames_x, h[:, k - 1]) * (k * f0 < SAMPLE_RATE / 2)
            out[b] += a * np.sin(k * phase)
    return out


def _child(name: str, n_harmonics: int) -> dict:
    """One case in this (fresh) process: times, peak memory, error."""
    from ddsp_demucs.dsp import MultiResolutionSTFTLoss, harmonic_synth

    torch.set_num_threads(THREADS)
    c = make_controls(n_harmonics)
    n = c["n_samples"]
    f0 = torch.from_numpy(c["f0"]).requires_grad_()
    amps = torch.from_numpy(c["amps"]).requires_grad_()
    dist = torch.from_numpy(c["dist"]).requires_grad_()
    g = torch.randn(BATCH, n, generator=torch.Generator().manual_seed(1))
    if name == "harmonic_synth":

        def run():
            return harmonic_synth(f0, amps, dist, sample_rate=SAMPLE_RATE, n_samples=n)
    elif name == "reference_bank":

        def run():
            return reference_bank(f0, amps, dist, sample_rate=SAMPLE_RATE, n_samples=n)
    elif name == "mrstft_loss":
        loss_fn = MultiResolutionSTFTLoss()
        est = (0.1 * torch.randn(BATCH, n, generator=torch.Generator().manual_seed(2))).requires_grad_()
        tgt = 0.1 * torch.randn(BATCH, n, generator=torch.Generator().manual_seed(3))

        def run():
            return loss_fn(est, tgt)
    else:
        raise ValueError(f"unknown case {name!r}")

    def step():
        for t in (f0, amps, dist):
            t.grad = None
        y = run()
        (y * g).sum().backward() if y.dim() else y.backward()
        return y

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y = step()  # warm-up
    times = []
    for _ in range(REPEATS[name]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = dict(
        median_s=statistics.median(times),
        times_s=times,
        repeats=REPEATS[name],
        peak_extra_rss_mb=(peak - rss_before) / 1024.0,
        peak_rss_mb=peak / 1024.0,
        torch_threads=torch.get_num_threads(),
    )
    if name != "mrstft_loss":
        ref = float64_reference(c)
        err = y.detach().double().numpy() - ref
        out["error_db"] = float(10 * np.log10(np.sum(err**2) / np.sum(ref**2)))
        out["grads_finite"] = bool(all(torch.isfinite(t.grad).all() for t in (f0, amps, dist)))
    return out


def _run_case(name: str, n_harmonics: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.synth", "--child", name, str(n_harmonics)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench case {name} K={n_harmonics} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> dict:
    from ddsp_demucs.core.utils import write_json_atomic

    result = dict(
        workload=dict(
            batch=BATCH,
            seconds=SECONDS,
            sample_rate=SAMPLE_RATE,
            frame_rate=FRAME_RATE,
            harmonics=list(HARMONICS),
            passes="forward+backward",
        ),
        method=dict(
            time="median of repeats after one warm-up, one subprocess per case",
            memory="ru_maxrss of the case's subprocess minus its value before the first call (MiB)",
            error="10 log10(||y - y64||^2 / ||y64||^2) vs a float64 numpy oscillator bank",
        ),
        torch_version=torch.__version__,
        torch_threads=THREADS,
        cpu_count=os.cpu_count(),
        load_average_at_start=list(os.getloadavg()),
        cases={},
    )
    for k in HARMONICS:
        ours = _run_case("harmonic_synth", k)
        ref = _run_case("reference_bank", k)
        result["cases"][f"harmonics_{k}"] = dict(
            harmonic_synth=ours,
            reference_bank=ref,
            speedup=ref["median_s"] / ours["median_s"],
            memory_ratio=ours["peak_extra_rss_mb"] / max(ref["peak_extra_rss_mb"], 1e-9),
        )
        print(
            f"K={k}: harmonic_synth {ours['median_s']:.3f} s ({ours['peak_extra_rss_mb']:.0f} MiB, "
            f"{ours['error_db']:.1f} dB), reference {ref['median_s']:.3f} s ({ref['peak_extra_rss_mb']:.0f} MiB, "
            f"{ref['error_db']:.1f} dB), speedup {ref['median_s'] / ours['median_s']:.1f}x",
            flush=True,
        )
    loss = _run_case("mrstft_loss", 0)
    result["mrstft_loss"] = dict(loss, fft_sizes=[2048, 1024, 512, 256, 128, 64], overlap=0.75)
    print(f"MultiResolutionSTFTLoss forward+backward: {loss['median_s']:.3f} s", flush=True)
    write_json_atomic(RESULTS, result)
    print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
