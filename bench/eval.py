"""Speed and agreement of ``ddsp_demucs.metrics.sdr`` against museval v4 on one 30 s stereo 44.1 kHz track.

The track is built from the real MUSDB sample in ``../shared/data`` (6.8 s stems looped to 30 s). The reference
is the vocals; the estimate is ``vocals + 0.3 * accompaniment`` (accompaniment = drums + bass + other), a
plausible imperfect separation. Two museval calls are measured, both ``museval.evaluate(..., win=hop=44100,
mode="v4")`` followed by ``np.nanmedian`` over the 1 s windows (how museval's TrackStore aggregates):

- ``single_source``: the vocals alone, ``references`` of shape ``(1, n_samples, 2)``;
- ``vocals_accompaniment``: the SiSEC18 vocals scenario of ``museval.eval_mus_track``, vocals and accompaniment
  evaluated together (``(2, n_samples, 2)``; accompaniment estimate = ``mixture - vocal estimate``), compared
  with ``sdr(..., joint_sources=True)``.

Writes ``bench/results/eval.json``: median times (ours over several repeats, museval over two), the speed-up,
the SDR of each and their absolute difference in dB. Targets: >= 5x faster, <= 0.01 dB apart.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ddsp_demucs import metrics
from ddsp_demucs.core.utils import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DDSP_DEMUCS_SHARED_DATA", REPO.parent / "shared" / "data"))
TRACK = "musdb18_sample/music_delta_80s_rock"
RESULT = REPO / "bench" / "results" / "eval.json"
DURATION_S = 30.0
OUR_REPEATS = 7
MUSEVAL_REPEATS = 2
TARGET_SPEEDUP = 5.0
TARGET_MAX_DIFF_DB = 0.01


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _load_track(folder: Path, n_samples: int) -> tuple[dict[str, np.ndarray], int]:
    stems, rates = {}, set()
    for name in ("vocals", "drums", "bass", "other", "mixture"):
        audio, sr = sf.read(folder / f"{name}.flac", dtype="float64", always_2d=True)
        rates.add(sr)
        stems[name] = np.resize(audio.T, (audio.shape[1], n_samples)).T  # loop the stem to n_samples
    if len(rates) != 1:
        raise RuntimeError(f"{folder}: stems have different sample rates {sorted(rates)}")
    return stems, rates.pop()


def _compare(name: str, estimates: np.ndarray, references: np.ndarray, sample_rate: int, museval) -> dict:
    """Time ours and museval on ``(n_sources, n_samples, n_channels)`` inputs; report source 0 (the vocals)."""
    joint = estimates.shape[0] > 1
    ours_s, ours_sdr = _timed(lambda: metrics.sdr(estimates, references, sample_rate, joint_sources=joint), OUR_REPEATS)
    museval_s, museval_frames = _timed(
        lambda: museval.evaluate(references, estimates, win=sample_rate, hop=sample_rate, mode="v4")[0],
        MUSEVAL_REPEATS,
    )
    ours_frames = metrics.sdr_frames(estimates, references, sample_rate, joint_sources=joint)
    ours_value, museval_value = float(ours_sdr[0]), float(np.nanmedian(museval_frames[0]))
    row = {
        "ours_s": round(ours_s, 5),
        "museval_s": round(museval_s, 3),
        "speedup": round(museval_s / ours_s, 1),
        "ours_sdr_db": round(ours_value, 6),
        "museval_sdr_db": round(museval_value, 6),
        "abs_diff_db": float(f"{abs(ours_value - museval_value):.3g}"),
        "max_window_abs_diff_db": float(f"{np.nanmax(np.abs(ours_frames - museval_frames)):.3g}"),
        "n_windows": int(museval_frames.shape[-1]),
    }
    print(
        f"{name}: ours {ours_s * 1e3:.1f} ms, museval {museval_s:.2f} s ({row['speedup']}x); "
        f"vocals SDR {ours_value:.4f} vs {museval_value:.4f} dB (|diff| {row['abs_diff_db']} dB, "
        f"worst window {row['max_window_abs_diff_db']} dB)",
        flush=True,
    )
    return row


def main() -> None:
    folder = SHARED_DATA / TRACK
    if not (folder / "vocals.flac").exists():
        print(f"bench/eval.py: skipped, real test audio not found in {folder}")
        return
    import museval  # imported here: it needs ffmpeg on PATH even to import

    probe_sr = sf.info(folder / "vocals.flac").samplerate
    stems, sr = _load_track(folder, int(DURATION_S * probe_sr))
    vocals = stems["vocals"]
    accompaniment = stems["drums"] + stems["bass"] + stems["other"]
    estimate = vocals + 0.3 * accompaniment

    single = _compare("single source", estimate[None], vocals[None], sr, museval)
    references = np.stack([vocals, accompaniment])
    estimates = np.stack([estimate, stems["mixture"] - estimate])
    joint = _compare("vocals/accompaniment", estimates, references, sr, museval)
    rows = {"single_source": single, "vocals_accompaniment": joint}
    result = {
        "track": f"{TRACK} (stems looped to {DURATION_S:.0f} s)",
        "sample_rate": sr,
        "channels": int(vocals.shape[1]),
        "duration_s": vocals.shape[0] / sr,
        "reference": "vocals",
        "estimate": "vocals + 0.3 * (drums + bass + other)",
        "protocol": "museval.evaluate(win=hop=sample_rate, mode='v4'), nanmedian over windows",
        "repeats": {"ours": OUR_REPEATS, "museval": MUSEVAL_REPEATS, "statistic": "median wall time"},
        **rows,
        "targets": {"min_speedup": TARGET_SPEEDUP, "max_abs_diff_db": TARGET_MAX_DIFF_DB},
        "meets_targets": all(
            r["speedup"] >= TARGET_SPEEDUP and r["abs_diff_db"] <= TARGET_MAX_DIFF_DB for r in rows.values()
        ),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "museval": importlib.metadata.version("museval"),
        },
    }
    write_json_atomic(RESULT, result)
    print(f"wrote {RESULT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
