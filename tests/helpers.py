"""What the test modules share by name: the one tiny model and config, synthetic examples and datasets, small
readers and writers. Fixtures are in ``conftest.py``; no test module imports another."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
SR, FR = 22050, 250  # the model's rate and control frame rate (the config's data.train_sr and data.frame_rate)

#: The tiny model of every test: :class:`~ddsp_demucs.model.ResidualDDSPDecoder` keyword arguments.
TINY = dict(
    hidden_size=32,
    gru_units=32,
    n_fc_layers=1,
    n_mels=16,
    encoder_units=16,
    reverb_length=512,
    n_harmonics=24,
    n_noise_bands=17,
)

#: The same tiny model as config overrides, with a small loss and short-run training settings.
TINY_OVERRIDES = [f"model.{key}={value}" for key, value in TINY.items()] + [
    "loss.fft_sizes=[512,256,128]",
    "training.batch_size=4",
    "training.warmup_steps=5",
    "training.log_every_steps=1",
    "training.n_audio_examples=1",
    "training.threads=1",
]


def tiny_config(*extra: str):
    """``configs/base.yaml`` with :data:`TINY_OVERRIDES`, then ``extra`` overrides."""
    from ddsp_demucs.core.utils import load_config

    return load_config(REPO / "configs" / "base.yaml", TINY_OVERRIDES + list(extra))


def tiny_model(composition: str = "mask", perturb: float = 0.0, seed: int = 0, bias: float = 0.3):
    """A tiny randomly initialised model in eval mode (identity at init where its composition is); ``perturb > 0``
    gives its residual head random weights of that standard deviation and the bias ``bias`` (a non-identity
    model)."""
    from ddsp_demucs.model import ResidualDDSPDecoder

    torch.manual_seed(seed)
    model = ResidualDDSPDecoder(SR, FR, composition=composition, **TINY).eval()
    if perturb and model.residual_head is not None:
        with torch.no_grad():
            torch.nn.init.normal_(model.residual_head.weight, std=perturb)
            model.residual_head.bias.fill_(bias)
    return model


# ------------------------------------------------------------------------------------------ examples
def make_example(seed: int, n_samples: int = 11025, sample_rate: int = SR, frame_rate: int = FR) -> dict:
    """A synthetic training example: a harmonic 'voice' target with vibrato, an unvoiced gap and 1/k harmonics;
    the input adds bleed (two steady non-harmonic tones and white noise). Exact F0 (0 in the gap), confidence
    1/0, and A-weighted loudness of the input, on frames ``j / frame_rate`` s."""
    from ddsp_demucs.dsp import a_weighted_loudness

    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    f0_base = rng.uniform(140, 320)
    f0 = f0_base * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    gap = (t > 0.55 * t[-1]) & (t < 0.7 * t[-1])
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    env = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) ** 2)
    voice = sum(np.sin(k * phase) / k for k in range(1, 16) if k * f0_base < sample_rate / 2.5) * env * ~gap
    bleed = sum(0.08 * np.sin(2 * np.pi * rng.uniform(600, 3000) * t + rng.uniform(0, 6)) for _ in range(2))
    bleed = bleed + 0.02 * rng.standard_normal(n_samples)
    inp = voice + bleed
    n_frames = n_samples * frame_rate // sample_rate
    frame_t = np.arange(n_frames) / frame_rate
    voiced = ~((frame_t > 0.55 * t[-1]) & (frame_t < 0.7 * t[-1]))
    f0_frames = np.where(voiced, f0_base * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * frame_t)), 0.0)
    inp_t = torch.tensor(inp, dtype=torch.float32)
    loud = a_weighted_loudness(inp_t[None], sample_rate=sample_rate, frame_rate=frame_rate)[0]
    return {
        "input_audio": inp_t,
        "target_audio": torch.tensor(voice, dtype=torch.float32),
        "f0_hz": torch.tensor(f0_frames, dtype=torch.float32),
        "f0_confidence": torch.tensor(voiced, dtype=torch.float32),
        "loudness_db": loud.float(),
        "track": f"synthetic{seed}",
        "start_s": 0.0,
    }


def batch_of(examples: list[dict]) -> dict:
    """The tensors of ``examples`` stacked into a batch."""
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0] if torch.is_tensor(examples[0][k])}


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class RatedDataset(ListDataset):
    """A list dataset that names its rates (what the analyses read)."""

    sample_rate, frame_rate = SR, FR


class NaNDataset(ListDataset):
    """A list dataset whose items at the indices ``bad`` have a NaN input."""

    def __init__(self, items, bad):
        super().__init__(items)
        self.bad = bad

    def __getitem__(self, i):
        item = dict(self.items[i])
        if i in self.bad:
            item["input_audio"] = torch.full_like(item["input_audio"], float("nan"))
        return item


EVAL_N_SAMPLES = 11025  # 0.5 s evaluation windows keep the tests fast


class WindowDataset(torch.utils.data.Dataset):
    """The dataset contract in memory: items, rates, ``tracks`` and a ``manifest``."""

    sample_rate, frame_rate = SR, FR

    def __init__(self, items: list[dict], separator: str = "fallback", **manifest):
        self.items = items
        self.manifest = {"separator": separator, **manifest}
        self.tracks = sorted({item["track"] for item in items})

    @property
    def n_samples(self) -> int:
        return len(self.items[0]["input_audio"])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def window(seed: int, track: str, start_s: float, n_samples: int = EVAL_N_SAMPLES) -> dict:
    """A synthetic window: harmonic 'voice' target, separated = voice + tones + noise, a mixture above it."""
    item = make_example(seed, n_samples=n_samples)
    rng = np.random.default_rng(1000 + seed)
    accompaniment = torch.tensor(0.2 * rng.standard_normal(n_samples), dtype=torch.float32)
    item.update(track=track, start_s=start_s, mixture_audio=item["target_audio"] + accompaniment)
    return item


def windows(n: int = 6) -> list[dict]:
    """``n`` windows of two songs, two windows per song-second."""
    return [window(s, f"song_{'ab'[s % 2]}", float(s // 2)) for s in range(n)]


# ---------------------------------------------------------------------------------------------- songs
def song(duration_s: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A synthetic song's mixture, ``(n, channels)``."""
    from ddsp_demucs.corpus.synthetic import generate_song

    mix = generate_song(seed, duration_s=duration_s, sample_rate=sample_rate).mixture
    return mix if channels == 2 else mix.mean(axis=1, keepdims=True)


def write(path: Path, audio: np.ndarray, sr: int) -> Path:
    """``audio`` written to ``path`` (float WAV, 24-bit otherwise), its folder created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return path


def musdb_with_stems(root: Path, n_songs: int = 2, duration_s: float = 3.0) -> dict:
    """A tiny MUSDB-layout corpus and a separator folder whose vocals are the true vocals plus noise."""
    from ddsp_demucs.corpus.synthetic import write_corpus

    corpus = root / "corpus"
    write_corpus(corpus, 0, n_songs, duration_s=duration_s)
    stems = root / "stems" / "fake"
    for k, folder in enumerate(sorted((corpus / "test").iterdir())):
        vocals, sr = sf.read(folder / "vocals.wav", dtype="float32", always_2d=True)
        noise = 0.03 * np.random.default_rng(k).standard_normal(vocals.shape).astype(np.float32)
        (stems / folder.name).mkdir(parents=True)
        sf.write(stems / folder.name / "vocals.wav", vocals + noise, sr, subtype="FLOAT")
    return {"separator": "fake", "stems_dir": str(stems), "musdb_root": str(corpus)}


# -------------------------------------------------------------------------------------- checkpoints
def train_checkpoint(out: Path, dataset, *extra: str) -> Path:
    """A tiny model saved by the trainer after one step on ``dataset`` (the real checkpoint format), in ``out``;
    ``extra``: more config overrides."""
    from ddsp_demucs.training.trainer import train_from_config

    config = tiny_config("training.max_steps=1", "training.batch_size=2", "training.n_audio_examples=0", *extra)
    return Path(train_from_config(config, dataset, None, out)["last_checkpoint"])


# ------------------------------------------------------------------------------------------------- CLI
CLI = [str(Path(sys.executable).with_name("ddsp-demucs"))]  # the console script `make install` puts in .venv/bin


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``ddsp-demucs`` console script in a real process."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def refine_cli(*args: str) -> int:
    """``ddsp-demucs refine`` in this process."""
    from ddsp_demucs.cli import main as cli_main

    return cli_main(["refine", *args])


# --------------------------------------------------------------------------------------------- readers
def strict_json(path: Path):
    """The JSON file, refusing NaN and Infinity (not standard JSON)."""

    def reject(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=reject)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def import_museval():
    """museval raises RuntimeError at import without ffmpeg/ffprobe on PATH: fail in CI, skip elsewhere."""
    try:
        import museval
    except RuntimeError as exc:
        message = f"museval cannot be imported ({exc}); `make sysdeps` installs ffmpeg"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return museval


# ------------------------------------------------------------------------------------ real-singing corpus
#: A small index: five singers (two of them recorded with their own accompaniment), one accompaniment.
SMALL = (
    "medleydb/AClassicEducation_NightOwl_STEM_08.flac",
    "sms_tools/vignesh.flac",
    "sms_tools/singing-female.flac",
    "real_stems/saraga_carnatic__bhuvini_dasudane/vocals.flac",
    "real_stems/saraga_carnatic__bhuvini_dasudane/accompaniment.flac",
    "musdb18_sample/music_delta_80s_rock/vocals.flac",
    "musdb18_sample/music_delta_80s_rock/drums.flac",
    "musdb18_sample/music_delta_80s_rock/bass.flac",
    "musdb18_sample/music_delta_80s_rock/other.flac",
    "real_accompaniment/admiralbob77_-_Choice_-_Drum-bass.hq.ogg",
)
SMALL_SPLIT = dict(min_test_singers=2, min_test_vocals=2, n_valid_singers=1)


def small_shared(shared_data: Path, folder: Path) -> Path:
    """A shared-data folder of symbolic links to :data:`SMALL` with their index rows (no audio is copied)."""
    with open(shared_data / "index.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["path"] in SMALL]
        fields = reader.fieldnames
    for rel in [r["path"] for r in rows] + [r["f0_annotation"] for r in rows if r["f0_annotation"]]:
        link = folder / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared_data / rel)
    with open(folder / "index.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return folder
