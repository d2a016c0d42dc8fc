import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddsp_demucs import DDSPDemucsError, InputError
from ddsp_demucs.core.audio_io import load_audio, resample, save_audio
from ddsp_demucs.core.utils import ConfigError, atomic_folder, atomic_path, load_config, shard_of, write_json_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_and_dict_access():
    config = load_config()
    assert config.training.batch_size == config["training"]["batch_size"] == 8


def test_base_chain_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("training:\n  learning_rate: 0.01\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntraining:\n  batch_size: 2\n")
    config = load_config(tmp_path / "child.yaml", ["model.composition=gate", "training.learning_rate=1e-4"])
    assert config.training.batch_size == 2
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.model.composition == "gate"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("training:\n  lerning_rate: 0.1\n", "lerning_rate"),
        ("training:\n  batch_size: eight\n", "training.batch_size"),
        ("model:\n  composition: blend\n", "model.composition"),
        ("trainig:\n  batch_size: 1\n", "trainig"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.batch_size=0", "training.batch_size: must be >= 1, got 0"),
        ("training.learning_rate=-0.001", "training.learning_rate: must be > 0, got -0.001"),
        ("data.win_s=0", "data.win_s: must be > 0, got 0.0"),
        ("data.val_fraction=1", "data.val_fraction: must be >= 0 and < 1, got 1.0"),
        ("loss.fft_sizes=[512,1]", "loss.fft_sizes: must be >= 2, got 1"),
        ("loss.overlap=1.0", "loss.overlap: must be >= 0 and < 1, got 1.0"),
        ("gate.min_voiced_fraction=1.5", "gate.min_voiced_fraction: must be >= 0 and <= 1, got 1.5"),
        ("model.mask_min=0", "model.mask_min: must be > 0, got 0.0"),
        ("model.reverb_length=1", "model.reverb_length: must be >= 2, got 1"),
        ("corpus.n_test=-1", "corpus.n_test: must be >= 0, got -1"),
        ("training.threads=0", "training.threads: must be >= 1, got 0"),
    ],
)
def test_values_out_of_range_name_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, [override])
    assert str(raised.value) == message


def test_range_edges_and_unset_optionals_are_accepted():
    config = load_config(
        None,
        [
            "training.threads=null",
            "training.grad_clip=0",
            "training.min_lr_ratio=1",
            "gate.min_voiced_fraction=0",
            "data.val_fraction=0",
            "loss.overlap=0",
        ],
    )
    assert config.training.threads is None and config.training.grad_clip == 0 and config.loss.overlap == 0


def test_every_shipped_config_is_within_its_ranges():
    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        load_config(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "out.json", {"a": 1})
        save_audio(tmp_path / "a.wav", np.zeros((100, 1), np.float32), 8000)
        with atomic_folder(tmp_path / "song") as tmp:
            (tmp / "x.txt").write_text("x")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask
    assert ((tmp_path / "a.wav").stat().st_mode & 0o777) == 0o666 & ~umask
    assert ((tmp_path / "song").stat().st_mode & 0o777) == 0o777 & ~umask
    assert (tmp_path / "song" / "x.txt").read_text() == "x"


KILLED_WRITER = """
import os, signal, sys, time
from ddsp_demucs.core.utils import atomic_folder, atomic_path
target = sys.argv[1]
context = atomic_folder(target + "_folder") if sys.argv[2] == "folder" else atomic_path(target)
with context as tmp:
    if sys.argv[2] == "folder":
        (tmp / "part.txt").write_text("half")
    else:
        tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_killed_write_leaves_the_old_output_and_its_temporary_is_swept(tmp_path, kind):
    target = tmp_path / "out.json"
    final = target if kind == "file" else tmp_path / "out.json_folder"
    if kind == "file":
        write_json_atomic(target, {"old": True})
    else:
        with atomic_folder(final) as tmp:
            (tmp / "part.txt").write_text("old")
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), kind])
    assert run.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert stale  # the killed writer's temporary
    if kind == "file":
        assert target.read_text() == '{\n  "old": true\n}\n'  # the old output, whole
        write_json_atomic(target, {"new": True})
    else:
        assert (final / "part.txt").read_text() == "old"
        with atomic_folder(final) as tmp:
            (tmp / "part.txt").write_text("new")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # swept by the next write


def test_shard_of_partitions(monkeypatch):
    for var in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    items = list(range(10))
    parts = [shard_of(items, 3, i) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert shard_of(items) == items
    with pytest.raises(DDSPDemucsError, match="shard index 3 of 3"):
        shard_of(items, 3, 3)


def test_shard_of_reads_the_launcher_variables(monkeypatch):
    items = list(range(10))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    assert shard_of(items) == [1, 5, 9]
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")  # a SLURM array comes before torchrun's variables
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert shard_of(items) == [1, 3, 5, 7, 9]
    assert shard_of(items, 5, 0) == [0, 5]  # explicit shards win over the environment
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    with pytest.raises(DDSPDemucsError, match="shard index 2 of 2"):
        shard_of(items)


def test_audio_roundtrip_and_errors(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
    save_audio(tmp_path / "a.wav", audio, 8000)
    back, sr = load_audio(tmp_path / "a.wav")
    assert sr == 8000 and np.allclose(back, audio)
    save_audio(tmp_path / "silent.wav", np.zeros((100, 1)), 8000)
    with pytest.raises(InputError, match="silent"):
        load_audio(tmp_path / "silent.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(InputError, match="junk.wav: cannot decode"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(InputError, match="too short"):
        load_audio(tmp_path / "a.wav", min_duration_s=1.0)


def test_resample_length_and_tone():
    sr_in, sr_out = 44100, 22050
    t = np.arange(sr_in) / sr_in
    out = resample(np.sin(2 * np.pi * 440 * t)[:, None], sr_in, sr_out)
    assert out.shape == (sr_out, 1)
    ref = np.sin(2 * np.pi * 440 * np.arange(sr_out) / sr_out)
    assert np.max(np.abs(out[1000:-1000, 0] - ref[1000:-1000])) < 1e-3


def test_training_section_reads_the_model_rates_like_the_original_code():
    config = load_config(CONFIGS / "base.yaml", ["data.train_sr=16000", "data.frame_rate=200"])
    assert config["training"]["sample_rate"] == 16000
    assert config["training"]["frame_rate"] == 200
    with pytest.raises(KeyError):
        config["training"]["no_such_key"]


def test_a_truncated_wav_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.wav"
    save_audio(path, np.full((4410, 2), 0.1, np.float32), 44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.wav: file is truncated"):
        load_audio(path)
    path.write_bytes(data)  # the whole file reads
    assert load_audio(path)[0].shape == (4410, 2)


def test_lightning_messages_print_once_after_setup_logging():
    script = (
        "import logging\n"
        "from ddsp_demucs.core.utils import setup_logging\n"
        "setup_logging()\n"
        "import ddsp_demucs.analysis.stability, ddsp_demucs.training.trainer\n"
        "logging.getLogger('lightning.pytorch').info('a lightning message')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert (run.stdout + run.stderr).count("a lightning message") == 1
