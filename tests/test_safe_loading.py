"""Checkpoints are read weights-only: a crafted ``.ckpt`` whose unpickling would run code is refused in one line
before anything runs (library, resume, the real ``ddsp-demucs refine`` process), the model class comes from a fixed
registry, and the checkpoints the trainer writes load as before."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch
from helpers import ListDataset, make_example, run_cli, song, tiny_config, write

from ddsp_demucs import InputError
from ddsp_demucs.training.checkpoints import AtomicCheckpointIO, load_model
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, load_checkpoint, read_checkpoint_meta, read_provenance
from ddsp_demucs.training.trainer import train_from_config


class Payload:
    """Unpickles as ``marker.touch()``: what a crafted checkpoint could run instead (any shell command)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def evil_checkpoint(path: Path, marker: Path, where: str = "meta") -> Path:
    """A ddsp-demucs-looking checkpoint carrying the payload in its entry (``meta``) or among its weights."""
    ckpt = {
        CHECKPOINT_KEY: {"model_class": "ddsp_demucs.model.ResidualDDSPDecoder", "model_args": {}},
        "state_dict": {"model.weight": torch.zeros(2)},
    }
    if where == "meta":
        ckpt[CHECKPOINT_KEY]["provenance"] = Payload(marker)
    else:
        ckpt["state_dict"]["model.bias"] = Payload(marker)
    torch.save(ckpt, path)
    return path


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    """The crafted file is a real attack: the old ``weights_only=False`` load creates the marker."""
    marker = tmp_path / "MARKER"
    torch.load(evil_checkpoint(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("where", ["meta", "weights"])
def test_library_readers_refuse_a_crafted_checkpoint_in_one_line(tmp_path, where):
    marker = tmp_path / "MARKER"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker, where)
    for read in (
        load_model,
        read_provenance,
        read_checkpoint_meta,
        load_checkpoint,
        AtomicCheckpointIO().load_checkpoint,
    ):
        with pytest.raises(InputError, match="evil.ckpt: refused: it holds a Python object") as err:
            read(evil)
        assert "\n" not in str(err.value) and "could run code" in str(err.value)
    assert not marker.exists()


def test_resuming_from_a_crafted_last_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    evil_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", marker)
    config = tiny_config("training.max_steps=1")
    with pytest.raises(InputError, match="last.ckpt: refused"):
        train_from_config(config, ListDataset([make_example(0, n_samples=4096)]), None, tmp_path / "run")
    assert not marker.exists()


def test_refine_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path):
    marker = tmp_path / "MARKER"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    path = write(tmp_path / "a.wav", song(1.0), 44100)
    proc = run_cli("refine", path, "--checkpoint", evil, "--separator", "fallback", "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {evil}: refused"), proc.stderr
    assert "Traceback" not in proc.stderr and not marker.exists() and not (tmp_path / "out").exists()


def test_model_class_comes_from_the_registry_only(tmp_path, checkpoint):
    ckpt = load_checkpoint(checkpoint)
    for name in ("torch.nn.Linear", "os.system", None):
        ckpt[CHECKPOINT_KEY]["model_class"] = name
        torch.save(ckpt, tmp_path / "other.ckpt")
        with pytest.raises(InputError, match=f"other.ckpt: unknown model class {name!r}") as err:
            load_model(tmp_path / "other.ckpt")
        assert "\n" not in str(err.value) and "ddsp_demucs.model.ResidualDDSPDecoder" in str(err.value)
    ckpt[CHECKPOINT_KEY]["model_class"] = "ddsp_demucs.model.ResidualDDSPDecoder"
    ckpt[CHECKPOINT_KEY]["model_args"]["hidden_size"] = 64  # weights no longer fit: one line, not torch's list
    torch.save(ckpt, tmp_path / "misfit.ckpt")
    with pytest.raises(InputError, match="misfit.ckpt: its weights do not fit") as err:
        load_model(tmp_path / "misfit.ckpt")
    assert "\n" not in str(err.value)


def test_trainer_checkpoints_load_weights_only_as_before(checkpoint):
    """Everything the trainer writes is plain: the safe read equals the unpickling one, and the model is the same."""
    from ddsp_demucs.model import ResidualDDSPDecoder

    safe, unsafe = load_checkpoint(checkpoint), torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert safe.keys() == unsafe.keys() and safe[CHECKPOINT_KEY] == unsafe[CHECKPOINT_KEY]
    assert all(torch.equal(safe["state_dict"][k], v) for k, v in unsafe["state_dict"].items())
    before = ResidualDDSPDecoder(**unsafe[CHECKPOINT_KEY]["model_args"])  # what load_model built before
    before.load_state_dict({k[len("model.") :]: v for k, v in unsafe["state_dict"].items()})
    model = load_model(checkpoint)
    assert type(model) is ResidualDDSPDecoder and model.provenance == unsafe[CHECKPOINT_KEY]["provenance"]
    batch = {k: v[None] for k, v in make_example(7, n_samples=4096).items() if torch.is_tensor(v)}
    with torch.no_grad():
        a = before.eval()(batch, generator=torch.Generator().manual_seed(0))["audio"]
        b = model(batch, generator=torch.Generator().manual_seed(0))["audio"]
    assert torch.equal(a, b)
