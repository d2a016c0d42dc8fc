"""Training: improvement on synthetic data, self-contained checkpoints, exact resume after a kill, the
non-finite guard, schedule and sampler, 2-process DDP on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, ListDataset, NaNDataset, WindowDataset, make_example, tiny_config, window
from lightning.pytorch.callbacks import Callback

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import Config
from ddsp_demucs.training.batches import ResumableSampler
from ddsp_demucs.training.callbacks import create_callbacks
from ddsp_demucs.training.checkpoints import load_model
from ddsp_demucs.training.environment import TrainingDiverged, setup_training_environment
from ddsp_demucs.training.module import DDSPLightningModule
from ddsp_demucs.training.schedule import warmup_cosine
from ddsp_demucs.training.trainer import DDSPTrainer, train_from_config


@pytest.fixture(scope="module")
def datasets():
    train = ListDataset([make_example(s, n_samples=8192) for s in range(16)])
    val = ListDataset([make_example(1000 + s, n_samples=8192) for s in range(8)])
    return train, val


def evaluate(ddsp: DDSPTrainer, dataset) -> tuple[float, float, float]:
    from ddsp_demucs.metrics import si_sdr
    from ddsp_demucs.training.batches import collate

    batch = collate([dataset[i] for i in range(len(dataset))])
    module = ddsp.module
    module.eval()
    with torch.no_grad():
        out = module(batch, generator=torch.Generator().manual_seed(0))
        loss = module.losses(out["audio"], batch["target_audio"])["total"]
    module.train()
    return (
        float(loss),
        float(si_sdr(out["audio"], batch["target_audio"]).mean()),
        float(si_sdr(batch["input_audio"], batch["target_audio"]).mean()),
    )


@pytest.mark.parametrize("composition", ["mask"])
def test_short_run_improves_loss_and_si_sdr(tmp_path, datasets, composition):
    train, val = datasets
    config = tiny_config(
        f"model.composition={composition}",
        "training.max_steps=60",
        "training.learning_rate=0.003",
        "training.val_every_steps=30",
    )
    setup_training_environment(seed=0, threads=1)
    module = DDSPTrainer(config=config)
    loss0, sdr0, sdr_in = evaluate(module, val)
    assert sdr0 == pytest.approx(sdr_in, abs=1e-3)  # identity at init
    result = train_from_config(config, train, val, tmp_path / "run")
    model = load_model(result["best_checkpoint"])
    trained = DDSPTrainer(model, config=config)
    loss1, sdr1, _ = evaluate(trained, val)
    assert loss1 < loss0
    assert sdr1 > sdr_in + 0.5, (sdr1, sdr_in)
    metrics = result["metrics"]
    assert metrics["val/si_sdr"] > metrics["val/si_sdr_input"]
    assert (tmp_path / "run" / "logs" / "csv" / "metrics.csv").is_file()
    assert any((tmp_path / "run" / "logs" / "tensorboard").iterdir())


def test_every_loss_term_trains_and_is_logged_by_name(tmp_path, datasets):
    train, val = datasets
    config = tiny_config(
        "training.max_steps=2",
        "training.val_every_steps=2",
        "loss.si_sdr_weight=5",
        "loss.mel_weight=1",
        "loss.n_mels=16",
        "training.log_every_steps=1",
    )
    metrics = train_from_config(config, train, val, tmp_path)["metrics"]
    for split in ("train", "val"):
        for term in ("stft", "si_sdr", "mel"):
            assert math.isfinite(metrics[f"{split}/loss_{term}"]), (split, term)
    assert metrics["val/si_sdr"] == pytest.approx(-10 * metrics["val/loss_si_sdr"], abs=1e-3)


def test_load_model_from_checkpoint_alone_reproduces_outputs(tmp_path, datasets):
    train, _ = datasets
    config = tiny_config("model.composition=gate", "training.max_steps=3")
    setup_training_environment(seed=0, threads=1)
    module = DDSPTrainer(config=config)
    module.fit(train, callbacks=create_callbacks(tmp_path / "ckpt"))
    model = load_model(tmp_path / "ckpt" / "last.ckpt")
    assert type(model).__name__ == "ResidualDDSPDecoder" and not model.training
    assert model.config["model"]["composition"] == "gate"
    batch = {k: v[None] for k, v in make_example(99, n_samples=8192).items() if torch.is_tensor(v)}
    module.model.eval()
    with torch.no_grad():
        a = module.model(batch, generator=torch.Generator().manual_seed(1))["audio"]
        b = model(batch, generator=torch.Generator().manual_seed(1))["audio"]
    assert torch.equal(a, b)
    with pytest.raises(DDSPDemucsError, match="not found"):
        load_model(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DDSPDemucsError, match="junk.ckpt"):
        load_model(tmp_path / "junk.ckpt")


RUN_SCRIPT = """
import json, os, signal, sys, torch
from helpers import ListDataset, make_example, tiny_config
from lightning.pytorch.callbacks import Callback
from ddsp_demucs.training.trainer import train_from_config

out, max_steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class Record(Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_rank == 0:
            with open(os.path.join(out, "order.jsonl"), "a") as f:
                f.write(json.dumps([trainer.global_step, batch["track"]]) + "\\n")
        if trainer.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

extra = sys.argv[4:]
config = tiny_config("training.max_steps=%d" % max_steps, "training.checkpoint_every_steps=2",
                     "model.composition=gate", *extra)
train = ListDataset([make_example(s, n_samples=4096) for s in range(10)])
os.makedirs(out, exist_ok=True)
result = train_from_config(config, train, None, out, extra_callbacks=[Record()])
print(json.dumps({{"global_step": result["global_step"]}}))
"""


def _tests_env() -> dict:
    """This environment with tests/ on PYTHONPATH: a script run in another process imports ``helpers``."""
    return {**os.environ, "PYTHONPATH": str(REPO / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(script: Path, out: Path, max_steps: int, kill_at: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), str(out), str(max_steps), str(kill_at), *extra],
        capture_output=True,
        text=True,
        env=_tests_env(),
        timeout=300,
    )


def _order(path: Path) -> dict[int, list]:
    return {step: tracks for step, tracks in map(json.loads, path.read_text().splitlines())}


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT.format())
    full, killed = tmp_path / "full", tmp_path / "killed"
    r = _run(script, full, 7, -1)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run(script, killed, 7, 5)  # killed after step 5; last.ckpt is from step 4
    assert r.returncode == -9, r.stderr[-3000:]
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    r = _run(script, killed, 7, -1)  # resume
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["global_step"] == 7
    full_order, killed_order = _order(full / "order.jsonl"), _order(killed / "order.jsonl")
    assert killed_order == full_order  # same batch at every step (step 5 redone from ckpt 4)
    a, b = _weights(full / "checkpoints" / "last.ckpt"), _weights(killed / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_resumed_run_keeps_its_csv_log_without_warnings(tmp_path, datasets):
    """Lightning's CSV logger deletes metrics.csv when a run resumes (and warns that it will); ours continues it.
    Training again into the same folder resumes quietly: no warning about the existing log or checkpoint folder
    (nor any other Lightning warning that does not apply to this trainer)."""
    import csv
    import warnings

    train, val = datasets
    settings = ("training.log_every_steps=1", "training.val_every_steps=2", "training.checkpoint_every_steps=2")
    first = train_from_config(tiny_config("training.max_steps=3", *settings), train, val, tmp_path)
    assert first["global_step"] == 3
    log_file = tmp_path / "logs" / "csv" / "metrics.csv"
    header = log_file.read_text().splitlines()[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train_from_config(tiny_config("training.max_steps=6", *settings), train, val, tmp_path)
    assert resumed["global_step"] == 6
    noise = ("exists and is not empty", "will be deleted", "pre-optimization state", "not resumable")
    assert not [str(w.message) for w in caught if any(n in str(w.message) for n in noise)]
    assert log_file.read_text().splitlines()[0] == header  # one header, the same columns
    with open(log_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = sorted({int(r["step"]) for r in rows if r.get("train/loss")})
    assert steps == list(range(6)), steps  # the first run's rows are kept
    assert sorted(int(r["step"]) for r in rows if r.get("val/loss")) == [1, 3, 5]
    assert sorted(os.listdir(log_file.parent)) == ["metrics.csv"]


def test_csv_logger_appends_to_an_existing_log_and_widens_its_header(tmp_path):
    """The CSV logger's file format: Lightning's (``step`` plus the metrics, columns sorted, empty cells), kept
    across logger instances (a resumed run), the whole file rewritten when a new metric appears."""
    import csv

    from ddsp_demucs.training.logger import ResumableCSVLogger

    first = ResumableCSVLogger(tmp_path, name="csv", version="")
    assert first.log_dir == os.path.join(tmp_path, "csv", "")
    first.log_metrics({"train/loss": torch.tensor(2.0)}, step=0)
    first.save()
    first.log_metrics({"lr": 0.5}, step=0)
    first.finalize("success")
    second = ResumableCSVLogger(tmp_path, name="csv", version="")
    second.log_metrics({"train/loss": 1.5}, step=1)
    second.save()
    second.log_metrics({"val/loss": 3.0, "train/loss": 1.0}, step=2)
    second.finalize("success")
    path = tmp_path / "csv" / "metrics.csv"
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["lr", "step", "train/loss", "val/loss"]
    assert [tuple(r.values()) for r in rows] == [
        ("", "0", "2.0", ""),
        ("0.5", "0", "", ""),
        ("", "1", "1.5", ""),
        ("", "2", "1.0", "3.0"),
    ]
    assert sorted(os.listdir(path.parent)) == ["metrics.csv"]  # no temporary left by the rewrite


def test_lightning_is_used_through_its_public_api_only():
    """Lightning is imported from its public packages (``lightning.pytorch.callbacks``, ``.loggers``, ...: no
    implementation module, no underscore name), and no class here overrides a private member of a Lightning base
    class: such code breaks when Lightning is upgraded."""
    import ast
    import importlib
    import inspect
    import pkgutil

    import ddsp_demucs.analysis.stability
    import ddsp_demucs.training

    bad = []
    for folder in ("src", "scripts", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lightning":
                    parts, names = node.module.split("."), [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    parts, names = None, [a.name for a in node.names if a.name.split(".")[0] == "lightning"]
                else:
                    continue
                for name in names:
                    full = parts or name.split(".")
                    if len(full) > 3 or any(p.startswith("_") for p in full) or (parts and name.startswith("_")):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} {'.'.join(full)} {name}")
    assert not bad, bad
    training = [
        importlib.import_module(m.name)
        for m in pkgutil.iter_modules(ddsp_demucs.training.__path__, "ddsp_demucs.training.")
    ]
    for module in (*training, ddsp_demucs.analysis.stability):
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            bases = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] == "lightning"]
            for name in vars(cls):
                private = name.startswith("_") and not name.startswith("__") and name != "_abc_impl"
                if private and any(name in vars(base) for base in bases):
                    bad.append(f"{cls.__name__}.{name}")
    assert not bad, bad


def test_training_onward_from_a_checkpoint_learns_only_the_named_parameters(tmp_path, datasets):
    """``training.init_checkpoint`` + ``training.trainable``: a restore share learned beside a mask model's frozen
    weights; mismatched or frozen-but-missing weights are refused, naming the file."""
    train, _ = datasets
    base_run = train_from_config(
        tiny_config("model.composition=mask", "training.max_steps=2"), train, None, tmp_path / "mask"
    )
    base_ckpt = base_run["last_checkpoint"]
    base = load_model(base_ckpt)
    with_mixture = ListDataset(
        [dict(ex, mixture_audio=ex["input_audio"] + 0.5 * ex["target_audio"]) for ex in train.items]
    )
    onward = (
        "model.composition=restore",
        "model.restore_reads_quality=true",
        f"training.init_checkpoint={base_ckpt}",
        "training.trainable=[restore_head]",
    )
    result = train_from_config(tiny_config("training.max_steps=3", *onward), with_mixture, None, tmp_path / "onward")
    model = load_model(result["last_checkpoint"])
    weights = model.state_dict()
    for name, value in base.state_dict().items():
        assert torch.equal(weights[name], value), name  # the mask model's weights as they were
    assert model.restore_head.weight.abs().max() > 0  # the zero-initialised share learned
    with pytest.raises(DDSPDemucsError, match="have no place") as err:  # a restore checkpoint into a mask model
        DDSPLightningModule(
            config=tiny_config("model.composition=mask", f"training.init_checkpoint={result['last_checkpoint']}")
        )
    assert str(result["last_checkpoint"]) in str(err.value)
    with pytest.raises(DDSPDemucsError, match="would freeze"):  # the share would stay at zero
        DDSPLightningModule(config=tiny_config(*onward[:-1], "training.trainable=[decoder]"))
    with pytest.raises(ValueError, match="no parameter of the model is named with head_of_nothing"):
        DDSPLightningModule(config=tiny_config("training.trainable=[head_of_nothing]"))


def test_a_confidence_learned_beside_a_frozen_mask_changes_only_its_head(tmp_path, datasets):
    """``model.learned_confidence`` with ``training.trainable=[confidence_head]`` (bench.quality's
    ``confidence_beside``): the mask model's weights stay as they were and only the confidence's head learns."""
    train, _ = datasets
    base_run = train_from_config(
        tiny_config("model.composition=mask", "training.max_steps=2"), train, None, tmp_path / "mask"
    )
    base = load_model(base_run["last_checkpoint"])
    with_mixture = ListDataset(
        [dict(ex, mixture_audio=ex["input_audio"] + 0.5 * ex["target_audio"]) for ex in train.items]
    )
    onward = (
        "model.learned_confidence=true",
        f"training.init_checkpoint={base_run['last_checkpoint']}",
        "training.trainable=[confidence_head]",
        "training.max_steps=3",
    )
    result = train_from_config(tiny_config(*onward), with_mixture, None, tmp_path / "onward")
    model = load_model(result["last_checkpoint"])
    weights = model.state_dict()
    for name, value in base.state_dict().items():
        assert torch.equal(weights[name], value), name
    assert model.confidence_head[-1].weight.abs().max() > 0  # the zero-initialised output learned


def test_resume_refuses_a_run_trained_with_other_settings(tmp_path, datasets):
    """A changed setting (here the loss, or the F0 features the dataset was built with) is not resumed silently:
    the old run would be reported as the new one. Running longer (max_steps) still resumes."""
    train, _ = datasets
    train_from_config(tiny_config("training.max_steps=2"), train, None, tmp_path)
    recorded = (tmp_path / "config.yaml").read_text()
    for change, named in (
        ("loss.si_sdr_weight=3.0", "loss.si_sdr_weight: "),
        ("features.crepe_hop=480", "features.crepe_hop: "),
    ):
        with pytest.raises(DDSPDemucsError, match="other settings") as err:
            train_from_config(tiny_config("training.max_steps=4", change), train, None, tmp_path)
        assert named in str(err.value) and str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "config.yaml").read_text() == recorded  # the refused run wrote nothing
    fresh = train_from_config(
        tiny_config("training.max_steps=2", "loss.si_sdr_weight=3.0"), train, None, tmp_path, resume=False
    )
    assert fresh["global_step"] == 2
    longer = train_from_config(tiny_config("training.max_steps=3", "loss.si_sdr_weight=3.0"), train, None, tmp_path)
    assert longer["global_step"] == 3


def test_config_changes_compares_settings_not_run_length():
    from ddsp_demucs.training.resume import RESUMABLE_TRAINING_KEYS, config_changes

    recorded = {"loss": {"fft_sizes": (512, 256), "si_sdr_weight": 0.0}, "training": {"max_steps": 5, "seed": 0}}
    same = {
        "loss": {"fft_sizes": [512, 256], "si_sdr_weight": 0, "new_key": 1},
        "training": {"max_steps": 9, "seed": 0},
    }
    assert config_changes(recorded, same) == []  # tuple == list, 0.0 == 0, keys on one side only, max_steps
    other = {"loss": {"fft_sizes": [512, 128], "si_sdr_weight": 0.0}, "training": {"max_steps": 5, "seed": 1}}
    assert config_changes(recorded, other) == ["loss.fft_sizes: (512, 256) -> [512, 128]", "training.seed: 0 -> 1"]
    assert "max_steps" in RESUMABLE_TRAINING_KEYS and "learning_rate" not in RESUMABLE_TRAINING_KEYS


def test_nonfinite_steps_are_skipped_then_stop(tmp_path):
    items = [make_example(s, n_samples=4096) for s in range(8)]
    config = tiny_config(
        "training.max_steps=4", "training.batch_size=2", "training.max_nonfinite_steps=1", "model.composition=mask"
    )
    setup_training_environment(seed=0, threads=1)
    module = DDSPTrainer(config=config)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="max_nonfinite_steps=1"):
        module.fit(NaNDataset(items, bad=set(range(8))))
    assert module.nonfinite_steps == 2
    for k, v in module.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # skipped steps change nothing (not even AdamW decay)
    module = DDSPTrainer(
        config=tiny_config("training.max_steps=4", "training.batch_size=2", "training.max_nonfinite_steps=5")
    )
    trainer = module.fit(NaNDataset(items, bad={0}))  # one bad batch per pass: skipped, training goes on
    assert module.nonfinite_steps >= 1 and trainer.global_step == 4
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_compile_accepts_optimizer_factory_and_overrides(datasets):
    train, _ = datasets
    module = DDSPTrainer(config=tiny_config("training.max_steps=2"))
    module.compile(optimizer=lambda params: torch.optim.SGD(params, lr=0.01), weight_decay=0.0)
    trainer = module.fit(train)
    assert isinstance(trainer.optimizers[0], torch.optim.SGD) and trainer.global_step == 2
    with pytest.raises(DDSPDemucsError, match="training.learning_rate"):
        module.compile(learning_rate="fast")


def test_trainer_is_a_facade_and_torch_compile_is_not_shadowed():
    """``DDSPTrainer.compile`` chooses the optimiser; the LightningModule behind it keeps ``nn.Module.compile``."""
    ddsp = DDSPTrainer(config=tiny_config())
    assert not isinstance(ddsp, torch.nn.Module) and isinstance(ddsp.module, DDSPLightningModule)
    assert type(ddsp.module).compile is torch.nn.Module.compile
    assert ddsp.model is ddsp.module.model and ddsp.config is ddsp.module.config
    ddsp.compile(learning_rate=3e-4)
    assert ddsp.module.config.training.learning_rate == 3e-4 and ddsp.compile() is ddsp


def test_warmup_cosine_schedule():
    f = lambda s: warmup_cosine(s, warmup_steps=10, max_steps=110, min_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_resumable_sampler_resumes_and_shards():
    pos = [0]
    s = ResumableSampler(10, 3, seed=1, position=lambda: pos[0])
    first = list(s)
    assert len(first) == len(s) == 9 and len(set(first)) == 9
    pos[0] = 6
    assert list(s) == first[6:]
    pos[0] = 9  # the next pass: a different permutation
    assert sorted(list(s)) != list(s) or list(s) != first
    ranks = [ResumableSampler(10, 2, seed=1, position=lambda: 0, rank=r, world_size=2) for r in (0, 1)]
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 4 and not set(a) & set(b)
    with pytest.raises(DDSPDemucsError, match="too few"):
        ResumableSampler(3, 4, seed=0, position=lambda: 0)


def test_cli_train_rejects_missing_data(tmp_path):
    from ddsp_demucs.cli import main

    assert (
        main(
            [
                "train",
                "--config",
                str(REPO / "configs" / "base.yaml"),
                "--data",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )


def test_cli_train_draws_the_windows_of_every_data_folder(tmp_path, monkeypatch):
    """``--data`` given twice: one training set drawing both folders' windows, validation likewise, and a
    folder without a validation split only warned about."""
    import ddsp_demucs.data as data_module
    import ddsp_demucs.training.trainer as trainer_module
    from ddsp_demucs.cli import main

    folders = {name: tmp_path / name for name in ("fallback", "oracle-bands16", "no-validation")}
    for folder in folders.values():
        folder.mkdir()
    songs = [window(s, f"song_{s}", 0.0) for s in range(10)]
    splits = {
        (folders["fallback"], "train"): WindowDataset(songs[:3], "fallback"),
        (folders["fallback"], "validation"): WindowDataset(songs[9:], "fallback"),
        (folders["oracle-bands16"], "train"): WindowDataset(songs[:2], "oracle"),
        (folders["oracle-bands16"], "validation"): WindowDataset(songs[8:9], "oracle"),
        (folders["no-validation"], "train"): WindowDataset(songs[7:8], "fallback"),
    }

    def load_dataset(folder, split):
        if (Path(folder), split) not in splits:
            raise FileNotFoundError(f"{folder}: no {split} split")
        return splits[Path(folder), split]

    seen = {}

    def train_from_config(config, train, val, out, resume=True):
        seen.update(train=train, val=val)
        return {"best_checkpoint": "best.ckpt", "last_checkpoint": "last.ckpt", "global_step": 0, "metrics": {}}

    monkeypatch.setattr(data_module, "load_dataset", load_dataset)
    monkeypatch.setattr(trainer_module, "train_from_config", train_from_config)
    config = str(REPO / "configs" / "base.yaml")
    args = ["train", "--config", config, "--out", str(tmp_path / "out")]
    assert main([*args, "--data", str(folders["fallback"]), "--data", str(folders["oracle-bands16"])]) == 0
    assert len(seen["train"]) == 5 and len(seen["val"]) == 2
    assert seen["train"].manifest["separators"] == ["fallback", "oracle"]
    assert main([*args, "--data", str(folders["no-validation"]), "--data", str(folders["fallback"])]) == 0
    assert len(seen["train"]) == 4 and len(seen["val"]) == 1
    assert main([*args, "--data", str(folders["fallback"]), "--data", str(tmp_path / "missing")]) == 2


DDP_SCRIPT = """
import json, sys, torch
from helpers import ListDataset, make_example, tiny_config
from lightning.pytorch.callbacks import Callback
from ddsp_demucs.training.callbacks import create_callbacks
from ddsp_demucs.training.environment import setup_training_environment
from ddsp_demucs.training.trainer import DDSPTrainer

out = sys.argv[1]

class Record(Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        with open(f"{{out}}/rank{{trainer.global_rank}}.jsonl", "a") as f:
            f.write(json.dumps(batch["track"]) + "\\n")
setup_training_environment(seed=0, threads=1)
config = tiny_config("training.max_steps=3", "training.devices=2", "training.strategy=ddp",
                     "training.accelerator=cpu", "training.batch_size=2", "training.val_every_steps=3")
train = ListDataset([make_example(s, n_samples=4096) for s in range(8)])
val = ListDataset([make_example(100 + s, n_samples=4096) for s in range(4)])
module = DDSPTrainer(config=config)
trainer = module.fit(train, validation_data=val, callbacks=create_callbacks(out + "/ckpt") + [Record()])
if trainer.global_rank == 0:
    print(json.dumps({{"global_step": trainer.global_step, "world_size": trainer.world_size,
                      "si_sdr_input": float(trainer.callback_metrics["val/si_sdr_input"])}}))
"""


def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format())
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_tests_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["global_step"] == 3 and result["world_size"] == 2
    seen = [
        [t for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines() for t in json.loads(line)] for r in (0, 1)
    ]
    assert len(seen[0]) == len(seen[1]) == 6
    assert sorted(seen[0][:4] + seen[1][:4]) == sorted(f"synthetic{s}" for s in range(8))  # pass 1: disjoint shards
    model = load_model(tmp_path / "ckpt" / "last.ckpt")
    assert type(model).__name__ == "ResidualDDSPDecoder"


def test_no_harm_term_is_the_mean_si_sdr_shortfall_below_the_separated_input():
    from ddsp_demucs.core.config import LossConfig
    from ddsp_demucs.metrics import si_sdr
    from ddsp_demucs.training.losses import LossTerms

    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 4000, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 4000, generator=g, dtype=torch.float64)
    separated = target + 0.3 * noise  # about +10.5 dB
    # example 0: better than the input, 1: equal, 2: worse (more noise)
    estimate = torch.stack([target[0] + 0.1 * noise[0], separated[1], target[2] + 0.6 * noise[2]]).requires_grad_()
    losses = LossTerms(LossConfig(no_harm_weight=2.0), sample_rate=16000)
    terms = losses(estimate, target, separated)
    shortfall = (si_sdr(separated, target) - si_sdr(estimate.detach(), target)).clamp(min=0)
    assert float(shortfall[2]) == pytest.approx(20 * math.log10(2.0), abs=0.3)  # twice the noise: about 6 dB
    assert float(terms["no_harm"]) == pytest.approx(float(shortfall.mean()) / 10.0, rel=1e-5)
    assert float(terms["total"]) == pytest.approx(float(terms["stft"] + 2.0 * terms["no_harm"]), rel=1e-5)
    terms["no_harm"].backward()
    assert estimate.grad[0].abs().max() == 0 and estimate.grad[2].abs().max() > 0  # only the worsened example
    with pytest.raises(ValueError, match="separated input"):
        losses(estimate.detach(), target)
    assert "no_harm" not in LossTerms(LossConfig(), sample_rate=16000)(estimate.detach(), target)


class GradNorms(Callback):
    """Records the gradient norm logged at every step."""

    def __init__(self):
        self.norms = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.norms.append(float(trainer.callback_metrics["train/grad_norm"]))


def _fit_16_mixed(config: Config, items, scaler: torch.amp.GradScaler | None):
    """Fit on CPU in fp32 (``scaler`` None) or under fp16 autocast with ``scaler``: Lightning's own
    ``16-mixed`` plugin, which on a GPU is what ``training.precision=16-mixed`` builds."""
    from lightning.pytorch.plugins import MixedPrecision

    setup_training_environment(seed=0, threads=1)
    module, record = DDSPTrainer(config=config), GradNorms()
    before = torch.nn.utils.parameters_to_vector(module.model.parameters()).detach().clone()
    kwargs = (
        {} if scaler is None else {"precision": None, "plugins": [MixedPrecision("16-mixed", "cpu", scaler=scaler)]}
    )
    module.fit(ListDataset(items), callbacks=[record], **kwargs)
    moved = torch.nn.utils.parameters_to_vector(module.model.parameters()).detach() - before
    return module, record.norms, moved


def test_16_mixed_clips_and_logs_unscaled_gradients_like_fp32():
    items = [make_example(s, n_samples=4096) for s in range(8)]
    config = tiny_config(
        "training.max_steps=3", "training.batch_size=2", "training.grad_clip=0.5", "model.composition=mask"
    )
    _, norms32, moved32 = _fit_16_mixed(config, items, None)
    module, norms16, moved16 = _fit_16_mixed(config, items, torch.amp.GradScaler("cpu", init_scale=2.0**10))
    assert module.nonfinite_steps == 0
    assert norms16 == pytest.approx(norms32, rel=0.05)  # unscaled: not 65536 times fp32's
    assert float(moved16.norm()) == pytest.approx(float(moved32.norm()), rel=0.1)


def test_16_mixed_overflow_lowers_the_scale_and_training_goes_on():
    items = [make_example(s, n_samples=4096) for s in range(8)]
    config = tiny_config(
        "training.max_steps=6", "training.batch_size=2", "training.max_nonfinite_steps=0", "model.composition=mask"
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)  # overflows fp16 here up to 2**12
    module, norms, moved = _fit_16_mixed(config, items, scaler)
    assert not math.isfinite(norms[0]) and math.isfinite(norms[-1])  # overflow, then real steps
    assert scaler.get_scale() <= 2.0**11 and module.nonfinite_steps == 0
    assert float(moved.norm()) > 0 and torch.isfinite(moved).all()
