"""``--checkpoint hf://owner/repo/file.ckpt``: resolved through the Hugging Face cache, offline here (a cache built
in the hub's own layout around a real tiny checkpoint; nothing goes to the network), then loaded weights-only like
any checkpoint; an uncached reference offline and a malformed one are one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import make_example, refine_cli, song, write

from ddsp_demucs import InputError
from ddsp_demucs.cli import build_parser
from ddsp_demucs.cli import main as cli_main
from ddsp_demucs.training.checkpoints import load_model
from ddsp_demucs.training.hub import resolve_checkpoint
from ddsp_demucs.training.provenance import read_provenance

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REFERENCE = "hf://owner/repo/model.ckpt"


def hub_cache(cache: Path, file: Path, repo: str = "owner/repo", name: str = "model.ckpt") -> Path:
    """``file`` cached as ``hf_hub_download`` leaves it: blobs/<sha256>, snapshots/<commit>/<name> linking to it,
    refs/main naming the commit. Returns the snapshot path."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    data = file.read_bytes()
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = folder / "snapshots" / COMMIT / name
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    return snapshot


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cached(tmp_path, monkeypatch, checkpoint) -> Path:
    """The tiny checkpoint in an offline hub cache at HF_HUB_CACHE (the hub reads both variables when imported,
    so its constants are set too); the snapshot path."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return hub_cache(cache, checkpoint)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_a_reference_resolves_to_the_cached_file_and_loads_the_same_model(cached, checkpoint):
    assert resolve_checkpoint(REFERENCE) == cached
    assert resolve_checkpoint(f"hf://owner/repo@{COMMIT}/model.ckpt") == cached
    assert resolve_checkpoint("hf://owner/repo@main/model.ckpt") == cached
    assert resolve_checkpoint(checkpoint) == checkpoint and resolve_checkpoint(str(checkpoint)) == checkpoint
    from_hub, from_file = load_model(REFERENCE), load_model(checkpoint)
    assert from_hub.provenance == from_file.provenance == read_provenance(REFERENCE)
    assert from_hub.config == from_file.config
    batch = {k: v[None] for k, v in make_example(3, n_samples=4096).items() if torch.is_tensor(v)}
    with torch.no_grad():
        a = from_hub(batch, generator=torch.Generator().manual_seed(0))["audio"]
        b = from_file(batch, generator=torch.Generator().manual_seed(0))["audio"]
    assert torch.equal(a, b)


def test_refine_cli_runs_offline_from_the_cache_and_records_the_reference(tmp_path, cached, checkpoint):
    path = write(tmp_path / "a.wav", song(1.5), 44100)
    args = ["--separator", "fallback", "--out"]
    assert refine_cli(str(path), "--checkpoint", REFERENCE, *args, str(tmp_path / "hub")) == 0
    record = json.loads((tmp_path / "hub" / "a" / "refine.json").read_text())
    assert record["checkpoint"] == REFERENCE and record["checkpoint_file"] == str(cached)
    assert refine_cli(str(path), "--checkpoint", str(checkpoint), *args, str(tmp_path / "file")) == 0
    assert json.loads((tmp_path / "file" / "a" / "refine.json").read_text())["checkpoint_file"] is None
    refined = [sf.read(tmp_path / out / "a" / "refined_vocals.wav")[0] for out in ("hub", "file")]
    np.testing.assert_array_equal(*refined)
    stamp = (tmp_path / "hub" / "a" / "refined_vocals.wav").stat().st_mtime_ns
    assert refine_cli(str(path), "--checkpoint", REFERENCE, *args, str(tmp_path / "hub")) == 0  # up to date
    assert (tmp_path / "hub" / "a" / "refined_vocals.wav").stat().st_mtime_ns == stamp


def test_evaluate_and_analyze_take_a_reference(tmp_path, cached, fake_dataset_dir, examples, monkeypatch):
    out = tmp_path / "eval"
    args = ["--checkpoint", REFERENCE, "--data", str(fake_dataset_dir), "--out", str(out), "--no-f0", "--n-boot", "9"]
    assert cli_main(["evaluate", *args]) == 0
    report = (out / "report.html").read_text()
    assert "ddsp-demucs evaluation: model.ckpt on dataset" in report and f"--checkpoint {REFERENCE}" in report

    monkeypatch.setattr("ddsp_demucs.data.load_dataset", lambda data, split: examples, raising=False)
    out = tmp_path / "f0"
    args = ["--checkpoint", REFERENCE, "--data", str(fake_dataset_dir), "--out", str(out), "--n-examples", "2"]
    args += ["--jitter-cents", "0", "--octave-rates", "0", "--voicing-rates", "0", "--no-f0-accuracy"]
    assert cli_main(["analyze", "f0-noise", *args]) == 0
    request = json.loads((out / "f0_noise.json").read_text())["settings"]["request"]
    assert request["checkpoint"] == REFERENCE and request["checkpoint_mtime_ns"] == cached.stat().st_mtime_ns
    stamp = (out / "f0_noise.json").stat().st_mtime_ns
    assert cli_main(["analyze", "f0-noise", *args]) == 0  # the same request: nothing redone
    assert (out / "f0_noise.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("reference", ["hf://owner/repo/missing.ckpt", "hf://owner/other/model.ckpt"])
def test_an_uncached_reference_offline_is_one_error_line_with_advice(tmp_path, cached, capsys, reference):
    path = write(tmp_path / "a.wav", song(1.0), 44100)
    assert refine_cli(str(path), "--checkpoint", reference, "--out", str(tmp_path / "o")) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {reference}: not in the Hugging Face cache ({cached.parents[3]})")
    assert "cannot be reached (HF_HUB_OFFLINE is set)" in line and "download the file and pass its path" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "reference",
    [
        "hf://",
        "hf://owner",
        "hf://owner/repo",
        "hf://owner/repo/",
        "hf://owner/repo@v1",
        "hf://owner/repo@/model.ckpt",
        "hf://owner/repo/folder/",
        "hf://own--er/repo/model.ckpt",
    ],
)
def test_a_malformed_reference_is_one_error_line(tmp_path, cached, capsys, reference):
    with pytest.raises(InputError, match="not a Hugging Face checkpoint reference") as err:
        resolve_checkpoint(reference)
    assert str(err.value).startswith(f"{reference}: ") and "\n" not in str(err.value)
    path = write(tmp_path / "a.wav", song(1.0), 44100)
    assert refine_cli(str(path), "--checkpoint", reference, "--out", str(tmp_path / "o")) == 2
    assert one_error_line(capsys) == f"error: {err.value}"


@pytest.mark.parametrize(
    "argv",
    [
        ["refine", "a.wav", "--out", "o"],
        ["evaluate", "--songs", "s", "--out", "o"],
        ["analyze", "f0-noise", "--data", "d", "--out", "o"],
        ["analyze", "stability", "--config", "c", "--data", "d", "--out", "o"],
    ],
)
def test_every_checkpoint_option_keeps_the_reference_as_given(argv):
    """Not a Path, which would turn ``hf://owner`` into ``hf:/owner``."""
    assert build_parser().parse_args([*argv, "--checkpoint", REFERENCE]).checkpoint == REFERENCE


def test_a_real_process_uses_the_cache_under_hf_home_when_the_hub_is_unreachable(tmp_path, checkpoint):
    """The hub's own variables, read when it is imported: HF_HOME's hub folder. With no connection (a closed port
    as the endpoint, not offline mode) the cached file is used, and an uncached one is one line at once."""
    cached = hub_cache(tmp_path / "home" / "hub", checkpoint)
    hidden = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env.update(HF_HOME=str(tmp_path / "home"), HF_ENDPOINT="http://127.0.0.1:9")
    code = (
        "from ddsp_demucs import InputError\n"
        "from ddsp_demucs.training.hub import resolve_checkpoint\n"
        f"print(resolve_checkpoint({REFERENCE!r}))\n"
        "try:\n"
        "    resolve_checkpoint('hf://owner/repo/missing.ckpt')\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    assert proc.stdout.splitlines() == [
        str(cached),
        f"hf://owner/repo/missing.ckpt: not in the Hugging Face cache ({tmp_path / 'home' / 'hub'}) and the hub "
        "cannot be reached (no connection to http://127.0.0.1:9); connect once, or download the file and pass its "
        "path",
    ]
    assert time.monotonic() - start < 20  # not the hub's own retries
