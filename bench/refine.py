"""Full-song refinement speed and memory: ``refine_vocals`` on the 133 s song in ``../shared/data/full_song``.

Writes ``bench/results/refine.json``. Workload and method:

- Input: the separated vocal of ``full_song/Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg`` (44.1 kHz stereo, 133 s; the
  song has no stems), separated once by the weight-free ``fallback`` separator in the parent process. The
  separator's time is recorded apart and is NOT part of any figure below: every case times the refinement
  alone (controls + model + song-rate application), given the separated vocal.
- Model: the ``base`` config (``configs/base.yaml``: mask composition, 22.05 kHz, hidden 256), randomly
  initialised, with its residual head given random weights (std ``HEAD_STD``, bias ``HEAD_BIAS``) so that the
  mask is not the identity and the windowed vs whole-song difference means something. Untrained weights are
  fine for timing: the work does not depend on the weight values.
- Cases, each in its own subprocess: ``windowed`` (the default 30 s windows, 1 s crossfade), ``whole_song``
  (one window over the whole song: what the windows replace), and the windowed refinement of the first
  minute (``minutes_1``) and of the song looped to 10 minutes (``minutes_10``).
- Time: one call, wall clock; ``real_time_factor = seconds / audio seconds`` (below 1 is faster than real time).
- Memory: ``peak_rss_mb`` is the subprocess's peak resident set (``VmHWM`` in ``/proc/self/status``, MiB)
  after the call; ``baseline_rss_mb`` its resident set (``VmRSS``) just before the call (torch, model and the
  input vocal loaded); ``output_mb`` the returned array; ``working_mb = peak - baseline - output``: what the
  refinement needed beyond the audio itself (the input is in the baseline, the output is subtracted).
  ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` over fork + exec (a child started from a
  process that once held 1.8 GB reports at least 1.8 GB), while ``VmHWM`` belongs to the new process alone.
- ``windowed_crepe_hop_20ms``: the windowed case for a model whose ``features.crepe_hop`` is 320 (the CREPE
  network every 20 ms, its activations interpolated onto the 10 ms grid before decoding; an opt-in setting: every
  shipped config, the demo's included, keeps 160);
  ``crepe_hop_20ms_vs_10ms``: its output against the windowed case's, in dB as below, and the time ratio.
- ``windowed_vs_whole_db``: ``10 log10(sum (windowed - whole)^2 / sum whole^2)`` over both channels; also the
  SI-SDR of the whole-song output against its input (how much the perturbed model changes the vocal).
- Threads: ``DDSP_BENCH_THREADS`` (default 1) torch threads in every case; the load average is recorded
  (the machine is shared).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "refine.json"
SHARED = Path(os.environ.get("DDSP_DEMUCS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SONG = SHARED / "full_song" / "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"
THREADS = int(os.environ.get("DDSP_BENCH_THREADS", "1"))
WINDOW_S, OVERLAP_S = 30.0, 1.0
HEAD_STD, HEAD_BIAS, SEED = 0.02, 0.3, 0
CASES = {  # name -> (seconds of input: None = the song as is, window_s, features.crepe_hop of the model)
    "windowed": (None, WINDOW_S, 160),
    "whole_song": (None, None, 160),
    "minutes_1": (60.0, WINDOW_S, 160),
    "minutes_10": (600.0, WINDOW_S, 160),
    "windowed_crepe_hop_20ms": (None, WINDOW_S, 320),
}


def base_model():
    """The base-config model, randomly initialised, residual head perturbed (see the module docstring)."""
    import torch

    from ddsp_demucs.core.utils import load_config
    from ddsp_demucs.model import model_from_config

    torch.manual_seed(SEED)
    config = load_config(ROOT / "configs" / "base.yaml")
    model = model_from_config(config.model, config.data).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.residual_head.weight, std=HEAD_STD)
        model.residual_head.bias.fill_(HEAD_BIAS)
    return model


def _proc_status_mb(key: str) -> float:
    """``VmRSS`` (resident set now) or ``VmHWM`` (its peak) of this process from ``/proc/self/status``, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {key} in /proc/self/status")


def _child(name: str, vocal_path: str, out_path: str, sample_rate: int) -> dict:
    """One case in this fresh process: the refinement's time and peak memory."""
    import torch

    from ddsp_demucs.inference.refine import refine_vocals

    torch.set_num_threads(THREADS)
    seconds, window_s, crepe_hop = CASES[name]
    vocal = np.load(vocal_path)
    if seconds is not None:
        n = int(seconds * sample_rate)
        vocal = np.ascontiguousarray(np.resize(vocal, (n, vocal.shape[1])) if n > vocal.shape[0] else vocal[:n])
    model = base_model()
    model.config = {"features": {"crepe_hop": crepe_hop}}  # as a checkpoint trained with that hop carries it
    baseline = _proc_status_mb("VmRSS")
    start = time.perf_counter()
    refined = refine_vocals(model, vocal, sample_rate, window_s=window_s, overlap_s=OVERLAP_S)
    wall = time.perf_counter() - start
    peak = _proc_status_mb("VmHWM")
    if out_path:
        np.save(out_path, refined)
    duration = vocal.shape[0] / sample_rate
    output_mb = refined.nbytes / 2**20
    return dict(
        audio_s=round(duration, 3),
        window_s=window_s,
        overlap_s=OVERLAP_S,
        crepe_hop=crepe_hop,
        wall_s=round(wall, 2),
        real_time_factor=round(wall / duration, 4),
        peak_rss_mb=round(peak, 1),
        baseline_rss_mb=round(baseline, 1),
        input_mb=round(vocal.nbytes / 2**20, 1),
        output_mb=round(output_mb, 1),
        working_mb=round(peak - baseline - output_mb, 1),
        torch_threads=torch.get_num_threads(),
    )


def _separate(vocal_path: str) -> dict:
    """Separate the song with the fallback separator (in its own process) and save the vocal as ``.npy``."""
    from ddsp_demucs.core.audio_io import load_audio
    from ddsp_demucs.separation.demucs import FallbackSeparator

    mixture, sr = load_audio(SONG)
    start = time.perf_counter()
    vocal = FallbackSeparator().separate(mixture, sr)["vocals"]
    np.save(vocal_path, vocal)
    return dict(
        separated_by="fallback (the song has no stems)",
        sample_rate=sr,
        channels=int(vocal.shape[1]),
        seconds=round(vocal.shape[0] / sr, 3),
        separator_s_not_counted=round(time.perf_counter() - start, 2),
    )


def _subprocess(*args: str) -> dict:
    """Run ``python -m bench.refine ARGS`` in a fresh process and return the JSON it prints."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS=str(THREADS),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.refine", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench/refine.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> dict:
    if not SONG.is_file():
        print(f"skipped: {SONG} not found (../shared/data beside the repository)", flush=True)
        return {}
    result: dict = dict(
        song=str(SONG.relative_to(SHARED)),
        model="base config (configs/base.yaml), randomly initialised, residual "
        f"head weights ~ N(0, {HEAD_STD}^2), bias {HEAD_BIAS} (non-identity mask); timing does not depend on weights",
        method=dict(
            time="one call per case, wall clock, in its own subprocess; the separator is not timed",
            memory="peak_rss_mb: VmHWM (peak resident set of the case's process) after the call; "
            "baseline_rss_mb: VmRSS before it (input loaded); working_mb = peak - baseline - "
            "output_mb (beyond the audio itself), MiB",
            difference="10 log10(||windowed - whole||^2 / ||whole||^2) over both channels",
        ),
        torch_threads=THREADS,
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
        python=platform.python_version(),
        load_average_at_start=list(os.getloadavg()),
        cases={},
    )
    with tempfile.TemporaryDirectory() as tmp:
        vocal_path = Path(tmp) / "vocal.npy"
        result["input"] = _subprocess("--separate", str(vocal_path))
        sr = result["input"]["sample_rate"]
        outputs = {name: Path(tmp) / f"{name}.npy" for name in ("windowed", "whole_song", "windowed_crepe_hop_20ms")}
        for name in CASES:
            case = _subprocess("--child", name, str(vocal_path), str(outputs.get(name, "")), str(sr))
            result["cases"][name] = case
            print(
                f"{name}: {case['audio_s']:.0f} s audio in {case['wall_s']:.1f} s (RTF "
                f"{case['real_time_factor']:.3f}), peak {case['peak_rss_mb']:.0f} MiB, working "
                f"{case['working_mb']:.0f} MiB",
                flush=True,
            )
        windowed, whole = np.load(outputs["windowed"]), np.load(outputs["whole_song"])
        coarse = np.load(outputs["windowed_crepe_hop_20ms"])
        vocal = np.load(vocal_path)
    import torch

    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.metrics import si_sdr

    result["torch_version"] = torch.__version__
    c = result["cases"]
    whole64 = whole.astype(np.float64)
    diff = float(10 * np.log10(np.sum((windowed - whole64) ** 2) / np.sum(whole64**2)))
    change = si_sdr(torch.from_numpy(whole.T.copy()), torch.from_numpy(vocal.T.copy())).tolist()
    result["windowed_vs_whole"] = dict(
        difference_db=round(diff, 2),
        whole_output_si_sdr_vs_input_db=[round(v, 2) for v in change],
        time_ratio_whole_over_windowed=round(c["whole_song"]["wall_s"] / c["windowed"]["wall_s"], 3),
        peak_rss_ratio_whole_over_windowed=round(c["whole_song"]["peak_rss_mb"] / c["windowed"]["peak_rss_mb"], 3),
        working_mb_ratio_whole_over_windowed=round(c["whole_song"]["working_mb"] / c["windowed"]["working_mb"], 3),
    )
    coarse_diff = float(10 * np.log10(np.sum((coarse - windowed) ** 2) / np.sum(windowed.astype(np.float64) ** 2)))
    result["crepe_hop_20ms_vs_10ms"] = dict(
        difference_db=round(coarse_diff, 2),
        time_ratio_10ms_over_20ms=round(c["windowed"]["wall_s"] / c["windowed_crepe_hop_20ms"]["wall_s"], 3),
    )
    result["constant_memory"] = dict(
        working_mb_10_min=c["minutes_10"]["working_mb"],
        working_mb_1_min=c["minutes_1"]["working_mb"],
        peak_rss_mb_10_min=c["minutes_10"]["peak_rss_mb"],
        peak_rss_mb_1_min=c["minutes_1"]["peak_rss_mb"],
        audio_in_plus_out_mb_10_min=round(c["minutes_10"]["input_mb"] + c["minutes_10"]["output_mb"], 1),
        audio_in_plus_out_mb_1_min=round(c["minutes_1"]["input_mb"] + c["minutes_1"]["output_mb"], 1),
    )
    result["load_average_at_end"] = list(os.getloadavg())
    print(
        f"windowed vs whole song: {diff:.1f} dB; time ratio whole/windowed "
        f"{result['windowed_vs_whole']['time_ratio_whole_over_windowed']:.2f}, peak memory ratio "
        f"{result['windowed_vs_whole']['peak_rss_ratio_whole_over_windowed']:.2f}",
        flush=True,
    )
    write_json_atomic(RESULTS, result)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--separate":
        print(json.dumps(_separate(sys.argv[2])))
    else:
        main()
