"""Thresholds of the harmonic check, chosen on the training singers: ``make bench-harmonic-check``
(= ``python -m bench.harmonic_check``).

The check (:mod:`ddsp_demucs.features.harmonic_check`) moves a tracked F0 to the octave, fifth or fourth below
where the spectrum holds the lower pitch's own harmonics. Its thresholds are chosen here, never on the test singers:

1. the songs the separated-vocal tracker learned from (:mod:`bench.f0_separated`: every
   :data:`~bench.f0_separated.TRAIN_EVERY`-th training song, with the teacher's labels, cached there) as each
   separator of :data:`CHOICE_SEPARATORS` left them (``runs/quality/stems``; ``make bench-quality`` and
   ``python -m bench.f0_separated --network`` make them);
2. per song, the recommended refiner's tracker (``crepe-separated``) on the separated vocal downmixed and
   resampled to the refiner's rate (:data:`MODEL_RATE`, as refine tracks it) on the labels' 10 ms grid, and the
   check's measurements (:func:`~ddsp_demucs.features.harmonic_check.frame_evidence`) with the song's mixture for
   the separator's uncertainty, cached in ``runs/harmonic_check/<separator>/<song>.npz``;
3. every setting of :data:`GRID`: frames the check moves from wrong to right and from right to wrong (50 cents
   against the teacher, frames voiced in both), per separator;
4. the chosen setting: the most frames corrected, net, over all separators, among the settings that leave no
   separator with a net loss.

Writes ``bench/results/harmonic_check.json`` (the grid, the choice, the share of frames pitched right before and
after per separator). :class:`~ddsp_demucs.features.harmonic_check.HarmonicCheck`'s defaults are the choice.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np

from bench.f0_separated import LABEL_RATE, QUALITY, TRAIN_EVERY, all_labels
from bench.quality import TRAINING_NETWORK

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "harmonic_check"
RESULT = ROOT / "bench" / "results" / "harmonic_check.json"
DEFAULT = False  # not part of a plain `make bench`: it needs `make bench-quality`'s corpus and stems
COMMAND = "make bench-harmonic-check"
CHOICE_SEPARATORS = ("fallback", TRAINING_NETWORK, "oracle-bands4", "oracle-bands16", "oracle-bands8-floor0.15")
MODEL_RATE = 22050  # the recommended refiner's sample rate: refine tracks F0 and runs the check at this rate
TRACKER = "crepe-separated"
CENTS_RIGHT = 50.0
GRID = {
    "min_contrast_db": (3.0, 4.0, 6.0, 8.0, 10.0),
    "max_drop_db": (3.0, 6.0, 10.0, 100.0),
    "max_uncertainty": (0.2, 0.3, 0.4, 0.5, 1.0),
}


def log(message: str) -> None:
    print(f"[harmonic_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def song_evidence(track, separator: str, key: str) -> dict[str, np.ndarray]:
    """The tracked F0 ``f0_hz`` (on the labels' grid) of ``track`` as ``separator`` left it and the check's
    measurements of its voiced frames (``frames``, ``contrast``, ``strength``, ``uncertainty``), cached under
    ``key`` (the tracker's weights and the check's measuring settings)."""
    from ddsp_demucs.core.audio_io import load_audio
    from ddsp_demucs.core.utils import atomic_path
    from ddsp_demucs.features.controls import mono_at
    from ddsp_demucs.features.harmonic_check import frame_evidence
    from ddsp_demucs.features.pitch import F0Tracker

    path = OUT / separator / f"{track.name}.npz"
    if path.is_file():
        with np.load(path) as data:
            if str(data["key"]) == key:
                return {k: data[k] for k in data.files if k != "key"}
    vocal, sr = load_audio(QUALITY / "stems" / separator / track.name / "vocals.wav")
    mono, mixture = mono_at(vocal, sr, MODEL_RATE), mono_at(track.mixture(), sr, MODEL_RATE)
    n = min(mono.shape[0], mixture.shape[0])
    f0, _ = F0Tracker(TRACKER).track(mono[:n], MODEL_RATE, LABEL_RATE)
    ev = frame_evidence(f0, mono[:n], MODEL_RATE, LABEL_RATE, mixture=mixture[:n])
    out = {"f0_hz": f0, "frames": ev.frames, "contrast": ev.contrast, "strength": ev.strength}
    out["uncertainty"] = ev.uncertainty
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **out)
    return out


def right_frames(f0_hz: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether each frame's ``f0_hz`` is within :data:`CENTS_RIGHT` of ``reference`` (both > 0), ``(n,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cents = 1200.0 * np.abs(np.log2(f0_hz / reference))
    return (f0_hz > 0) & (reference > 0) & (cents < CENTS_RIGHT)


def sweep(evidence: list[dict], references: list[np.ndarray]) -> list[dict]:
    """For every setting of :data:`GRID`: frames the check moves wrong -> right (``fixed``) and right -> wrong
    (``broken``) over songs ``evidence`` with teacher F0 ``references``, and the frames voiced in both (``voiced``)
    and pitched right before (``right_before``)."""
    from ddsp_demucs.features.harmonic_check import FrameEvidence, HarmonicCheck, chosen_f0

    songs = []
    for ev, ref in zip(evidence, references):
        frames = ev["frames"][ev["frames"] < ref.shape[0]]
        n = frames.size
        fe = FrameEvidence(
            frames,
            ev["f0_hz"][frames].astype(np.float64),
            ev["contrast"][:n],
            ev["strength"][:n],
            ev["uncertainty"][:n],
        )
        songs.append((fe, ref[frames], right_frames(fe.f0_hz, ref[frames])))
    voiced = int(sum(int((r > 0).sum()) for _, r, _ in songs))
    before = int(sum(int(b.sum()) for _, _, b in songs))
    rows = []
    for values in itertools.product(*GRID.values()):
        check = HarmonicCheck(**dict(zip(GRID, values)))
        fixed = broken = 0
        for fe, ref, was_right in songs:
            now_right = right_frames(chosen_f0(fe, check), ref)
            fixed += int((now_right & ~was_right).sum())
            broken += int((was_right & ~now_right).sum())
        rows.append(
            dict(zip(GRID, values)) | {"fixed": fixed, "broken": broken, "voiced": voiced, "right_before": before}
        )
    return rows


def choose(by_separator: dict[str, list[dict]]) -> dict:
    """The setting with the most frames corrected net over every separator, among those with no net loss on any."""
    names = list(by_separator)
    best = None
    for i, row in enumerate(by_separator[names[0]]):
        nets = [by_separator[s][i]["fixed"] - by_separator[s][i]["broken"] for s in names]
        if min(nets) >= 0 and (best is None or sum(nets) > best[0]):
            best = (sum(nets), {k: row[k] for k in GRID})
    if best is None:
        raise SystemExit("harmonic_check: every setting loses frames on some separator")
    return best[1]


def main(argv: list[str] | None = None) -> None:
    from bench.quality import real_corpus
    from ddsp_demucs.core.utils import write_json_atomic
    from ddsp_demucs.data import musdb_tracks
    from ddsp_demucs.features.crepe import SEPARATED_WEIGHTS
    from ddsp_demucs.features.harmonic_check import HarmonicCheck
    from ddsp_demucs.features.pipeline import file_sha256

    corpus, manifest = real_corpus()
    songs = list(musdb_tracks(corpus, subsets=("train",), split="train"))[::TRAIN_EVERY]
    labels = all_labels(songs)
    references = [labels[t.name]["f0_hz"] for t in songs]
    measuring = HarmonicCheck()
    key = f"{file_sha256(SEPARATED_WEIGHTS)[:16]}/{measuring.max_hz}/{measuring.peak_width}/{MODEL_RATE}"
    from tqdm.auto import tqdm

    by_separator = {}
    for separator in CHOICE_SEPARATORS:
        if not (QUALITY / "stems" / separator).is_dir():
            raise SystemExit(f"harmonic_check: no stems of {separator} in {QUALITY / 'stems'}; see this module")
        evidence = [song_evidence(t, separator, key) for t in tqdm(songs, desc=separator, unit="song")]
        by_separator[separator] = sweep(evidence, references)
    choice = choose(by_separator)
    figures = {}
    for separator, rows in by_separator.items():
        row = next(r for r in rows if all(r[k] == choice[k] for k in GRID))
        figures[separator] = {
            "right_before": round(row["right_before"] / row["voiced"], 4),
            "right_after": round((row["right_before"] + row["fixed"] - row["broken"]) / row["voiced"], 4),
            "fixed": row["fixed"],
            "broken": row["broken"],
            "voiced_frames": row["voiced"],
        }
        f = figures[separator]
        log(
            f"{separator:>24}: right {f['right_before']:.3f} -> {f['right_after']:.3f} "
            f"({f['fixed']} fixed, {f['broken']} broken)"
        )
    log(f"chosen: {choice}")
    write_json_atomic(
        RESULT,
        {
            "chosen": choice,
            "figures": figures,
            "grid": by_separator,
            "songs": len(songs),
            "training_singers": manifest["singers"]["train"],
            "tracker": TRACKER,
            "command": COMMAND,
            "protocol": f"training songs every {TRAIN_EVERY}th (the tracker's), F0 at {MODEL_RATE} Hz on the "
            f"labels' {LABEL_RATE} frames/s, right = within {CENTS_RIGHT:.0f} cents of the teacher (CREPE-full on "
            "the true vocal), frames voiced in both",
        },
    )
    log(f"wrote {RESULT}")


if __name__ == "__main__":
    main(sys.argv[1:])
