"""How the synthetic voice differs from real singing: statistics of clean vocals, synthetic against real.

    .venv/bin/python scripts/voice_statistics.py synthetic=runs/real_singing/demo/corpus real=../shared/data \
        --out experiments/exp003_voice_statistics.json

Each group is NAME=FOLDER: a synthetic corpus (MUSDB layout, its ``vocals.wav`` files) or a shared real-audio
folder (its ``index.csv``: every vocal).

Per vocal (mono, 44.1 kHz; F0 by the default tracker at 100 frames/s, voicing threshold 0.5):

- ``band_<b>_db``: long-term energy share of each band (< 0.3, 0.3-1, 1-3, 3-8, > 8 kHz), dB of the total;
- ``harmonic_share``: in voiced frames, the energy within a quarter of f0 of a harmonic ``k f0`` (below 8 kHz)
  over all energy below 8 kHz (1 = purely harmonic); ``noise_share_db`` its complement in dB;
- ``vibrato_cents``: the standard deviation of F0 in cents about its 0.3 s moving median, over voiced runs of
  at least 0.5 s (pitch wobble: vibrato and jitter);
- ``level_std_db``: the standard deviation of the frame level (dB, 25 ms frames) over frames within 40 dB of the
  loudest; ``voiced_fraction``: voiced frames over frames within 40 dB of the loudest.

Prints a markdown table of medians (and quartiles) per group and writes every figure to ``--out``; with
``--per-singer``, also a table of each real singer's medians (``per_singer`` in the JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from tqdm.auto import tqdm

from ddsp_demucs.core.audio_io import load_audio, resample
from ddsp_demucs.core.utils import write_json_atomic
from ddsp_demucs.corpus.real_corpus import read_index
from ddsp_demucs.features import extract_f0
from ddsp_demucs.metrics import BAND_NAMES, BANDS_HZ

SR, FRAME_RATE, N_FFT = 44100, 100, 4096


def vocal_statistics(mono: np.ndarray) -> dict[str, float]:
    """The statistics of the module docstring for a mono vocal ``(n,)`` at 44.1 kHz."""
    hop = SR // FRAME_RATE
    f0, _ = extract_f0(mono.astype(np.float32), SR, frame_rate=FRAME_RATE, voicing_threshold=0.5)
    n_frames = min(len(f0), (len(mono) - N_FFT) // hop)
    frames = np.stack([mono[j * hop : j * hop + N_FFT] for j in range(n_frames)]) * np.hanning(N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)
    freqs = np.fft.rfftfreq(N_FFT, 1 / SR)
    level = 10 * np.log10(power.sum(axis=1) + 1e-20)
    active = level > level.max() - 40
    f0 = f0[:n_frames]
    total = power[active].sum()
    out = {
        f"band_{name}_db": float(
            10 * np.log10(power[active][:, (freqs >= lo) & (freqs < (hi or np.inf))].sum() / total + 1e-20)
        )
        for name, (lo, hi) in zip(BAND_NAMES, BANDS_HZ)
    }
    voiced = active & (f0 > 0)
    below = freqs < 8000
    near, allv = 0.0, 0.0
    for j in np.flatnonzero(voiced):
        k = np.round(freqs[below] / f0[j])
        harmonic = (k >= 1) & (np.abs(freqs[below] - k * f0[j]) < 0.25 * f0[j])
        near += power[j, below][harmonic].sum()
        allv += power[j, below].sum()
    out["harmonic_share"] = float(near / allv) if allv else float("nan")
    out["noise_share_db"] = float(10 * np.log10(1 - near / allv)) if allv else float("nan")
    wobble = []
    for run in np.split(np.arange(n_frames), np.flatnonzero(np.diff(voiced.astype(int))) + 1):
        if voiced[run[0]] and len(run) >= FRAME_RATE // 2:
            cents = 1200 * np.log2(f0[run])
            wobble.append(cents - median_filter(cents, size=int(0.3 * FRAME_RATE), mode="nearest"))
    out["vibrato_cents"] = float(np.std(np.concatenate(wobble))) if wobble else float("nan")
    out["level_std_db"] = float(np.std(level[active]))
    out["voiced_fraction"] = float(voiced.sum() / active.sum())
    return out


def synthetic_vocals(corpus: Path) -> list[tuple[str, np.ndarray]]:
    paths = sorted(corpus.glob("*/*/vocals.wav"))
    return [(p.parent.name, load_audio(p)[0].mean(axis=1)) for p in paths]


def real_vocals(shared: Path) -> list[tuple[str, np.ndarray]]:
    out = []
    for entry in (e for e in read_index(shared) if e.kind == "vocal"):
        audio, sr = load_audio(shared / entry.path)
        out.append((f"{entry.singer}/{Path(entry.path).stem}", resample(audio.mean(axis=1), sr, SR)))
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "groups",
        nargs="+",
        metavar="NAME=FOLDER",
        help="a synthetic corpus (MUSDB layout) or a real-audio folder with index.csv",
    )
    p.add_argument("--out", type=Path, required=True, help="JSON with every vocal's figures")
    p.add_argument("--per-singer", action="store_true", help="also each real singer's medians")
    args = p.parse_args(argv)
    figures = {}
    for group in args.groups:
        name, _, folder = group.partition("=")
        folder = Path(folder)
        vocals = real_vocals(folder) if (folder / "index.csv").is_file() else synthetic_vocals(folder)
        figures[name] = {label: vocal_statistics(x) for label, x in tqdm(vocals, desc=name, unit="vocal")}
    keys = list(next(iter(figures[name].values())))
    print("| statistic | " + " | ".join(f"{g} median [q1, q3]" for g in figures) + " |")
    print("|---" * (len(figures) + 1) + "|")
    summary = {}
    for key in keys:
        cells = []
        for group in figures:
            values = np.array([v[key] for v in figures[group].values()])
            values = values[np.isfinite(values)]
            q1, med, q3 = np.percentile(values, [25, 50, 75])
            summary.setdefault(key, {})[group] = {"median": med, "q1": q1, "q3": q3, "n": int(values.size)}
            cells.append(f"{med:.2f} [{q1:.2f}, {q3:.2f}]")
        print(f"| {key} | " + " | ".join(cells) + " |")
    result = {"command": "scripts/voice_statistics.py " + " ".join(argv), "summary": summary, "vocals": figures}
    if args.per_singer:
        result["per_singer"] = per_singer_medians(figures, keys)
    write_json_atomic(args.out, result)
    return 0


def per_singer_medians(figures: dict, keys: list[str]) -> dict:
    """Each real singer's median of every statistic (real vocals are labelled ``singer/song``); printed as a
    markdown table."""
    vocals_by_singer: dict[str, list[dict]] = {}
    for group in figures.values():
        for label, values in group.items():
            if "/" in label:
                vocals_by_singer.setdefault(label.split("/")[0], []).append(values)
    print("\n| singer | vocals | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    medians = {}
    for singer, vocals in sorted(vocals_by_singer.items()):
        medians[singer] = {k: float(np.nanmedian([v[k] for v in vocals])) for k in keys} | {"n": len(vocals)}
        print(f"| {singer} | {len(vocals)} | " + " | ".join(f"{medians[singer][k]:.2f}" for k in keys) + " |")
    return medians


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
