"""Where a checkpoint comes from: the separator and corpus it was trained on, the composition and code version.

:class:`~ddsp_demucs.training.trainer.DDSPTrainer` stores :func:`training_provenance` under ``checkpoint["ddsp_demucs"]
["provenance"]``; :func:`read_provenance` reads it back without building the model, and
:func:`provenance_warnings` turns it into one-line warnings for the separator in use (``ddsp-demucs refine``).
Every checkpoint is read through :func:`load_checkpoint`, which unpickles tensors and plain values only.

The provenance dict::

    separator     the separator the training vocals were separated with (dataset manifest), None if unknown
    corpus        kind          "synthetic", "real", "remix", "musdb" or "unknown"
                  singers       singers the model heard (real corpus: train + validation splits; remix: vocal
                                names); [] when none are named
                  tracks        songs in the corpus (all splits), None if unknown
                  synthetic_only  True only for kind "synthetic"
    composition   the model's composition ("mask", "gate", "synth"), None for other models
    f0_tracker    the tracker of its features (:meth:`~ddsp_demucs.features.pitch.F0Tracker.settings`: method,
                  voicing threshold, CREPE hop, harmonic check, digest of the fine-tuned weights installed when
                  it trained); absent in checkpoints written before it was recorded
    code_version  package     ddsp_demucs.__version__
                  git_commit  commit of the source tree (None when not in a git checkout)
    created       UTC ISO time at which training (this run) started
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

import ddsp_demucs
from ddsp_demucs import InputError
from ddsp_demucs.core.config import FeaturesConfig
from ddsp_demucs.features.pitch import F0Tracker
from ddsp_demucs.training.hub import resolve_checkpoint

CHECKPOINT_KEY = "ddsp_demucs"  # where a checkpoint keeps its ddsp-demucs metadata (model, config, provenance)
UNKNOWN_CORPUS: dict[str, Any] = {"kind": "unknown", "singers": [], "tracks": None, "synthetic_only": False}


def _manifest_of(dataset: Any) -> dict | None:
    """The dataset's ``manifest`` dict (following ``.dataset`` of a ``torch.utils.data.Subset``), else None."""
    for _ in range(4):
        manifest = getattr(dataset, "manifest", None)
        if isinstance(manifest, dict):
            return manifest
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            return None
    return None


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, (list, dict)) else None


def corpus_provenance(musdb_root: str | os.PathLike | None) -> dict:
    """``{"kind", "singers", "tracks", "synthetic_only"}`` of the corpus at ``musdb_root`` (see the module doc),
    from its ``manifest.json``; a folder without one is ``"musdb"`` if it has ``train/`` or ``test/``."""
    if not musdb_root:
        return dict(UNKNOWN_CORPUS)
    root = Path(musdb_root)
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict):
        is_musdb = (root / "train").is_dir() or (root / "test").is_dir()
        tracks = sum(1 for s in ("train", "test") if (root / s).is_dir() for p in (root / s).iterdir() if p.is_dir())
        return {**UNKNOWN_CORPUS, "kind": "musdb", "tracks": tracks} if is_musdb else dict(UNKNOWN_CORPUS)
    kind = str(manifest.get("kind") or "unknown")
    singers = manifest.get("singers")
    if isinstance(singers, dict):  # real corpus: the splits the model heard
        heard = [s for split in ("train", "validation") for s in singers.get(split) or []]
    elif isinstance(singers, list):
        heard = list(singers)
    elif kind == "remix" and isinstance(manifest.get("vocals"), dict):
        heard = list(manifest["vocals"])
    else:
        heard = []
    tracks = _count(manifest.get("tracks"))
    if tracks is None:
        tracks = _count(manifest.get("vocals"))
    return {
        "kind": kind,
        "singers": sorted(set(map(str, heard))),
        "tracks": tracks,
        "synthetic_only": kind == "synthetic",
    }


def dataset_provenance(dataset: Any) -> dict:
    """``{"separator", "corpus"}`` of a training dataset, from its ``manifest`` (a
    :class:`~ddsp_demucs.data.ShardDataset`); datasets without one give ``separator: None`` and an unknown
    corpus. Never raises on missing or malformed pieces."""
    manifest = _manifest_of(dataset) or {}
    separator = manifest.get("separator")
    return {"separator": str(separator) if separator else None, "corpus": corpus_provenance(manifest.get("musdb_root"))}


def code_version() -> dict:
    """``{"package": ddsp_demucs.__version__, "git_commit": str | None}``; the commit only when the package's
    source file is tracked in a git checkout (never raises)."""
    here = Path(ddsp_demucs.__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "__init__.py")  # an installed copy inside another repo: no commit
        commit = git("rev-parse", "HEAD") or None
    except (OSError, subprocess.SubprocessError, ValueError):
        commit = None
    return {"package": ddsp_demucs.__version__, "git_commit": commit}


def training_provenance(dataset: Any, model: torch.nn.Module, features: FeaturesConfig) -> dict:
    """The full provenance dict (module doc) for training ``model`` on ``dataset``, whose features were made as
    ``features`` says, stamped now (UTC)."""
    return {
        **dataset_provenance(dataset),
        "composition": getattr(model, "composition", None),
        "f0_tracker": F0Tracker.from_config(features).settings(),
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_provenance(checkpoint_path: str | os.PathLike) -> dict:
    """The provenance stored in a ddsp-demucs checkpoint, without building the model; ``{}`` for checkpoints
    written before provenance existed. Raises as :func:`read_checkpoint_meta`."""
    return dict(read_checkpoint_meta(checkpoint_path).get("provenance") or {})


def read_checkpoint_meta(checkpoint_path: str | os.PathLike) -> dict:
    """The ddsp-demucs entry of a checkpoint (model class and arguments, resolved config, provenance, training
    counters), without building the model. Raises as :func:`load_checkpoint`."""
    return load_checkpoint(checkpoint_path)[CHECKPOINT_KEY]


def load_checkpoint(checkpoint_path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A ddsp-demucs checkpoint's contents, read with ``torch.load(weights_only=True)``: tensors and plain values
    (dicts, lists, strings, numbers) only, so that a crafted file cannot run code while it is read.
    ``checkpoint_path`` is a file or an ``hf://owner/repo/file.ckpt`` reference (:mod:`~ddsp_demucs.training.hub`).
    Raises
    :class:`InputError` naming the file if it is missing, unreadable, holds any other object, or has no
    ddsp-demucs entry, and as :func:`~ddsp_demucs.training.hub.resolve_checkpoint` for a reference."""
    path = resolve_checkpoint(checkpoint_path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # the weights-only unpickler met something else than plain data
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise InputError(
                f"{path}: refused: it holds a Python object ({found.group(1)}), not only tensors and plain values "
                "as ddsp-demucs checkpoints do, and loading that could run code"
            ) from None
        raise InputError(f"{path}: not a readable checkpoint (not a torch file of tensors and plain values)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason})") from None
    meta = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not meta:
        raise InputError(f"{path}: not a ddsp-demucs checkpoint (no {CHECKPOINT_KEY!r} entry)")
    return ckpt


def provenance_warnings(provenance: dict, separator_name: str) -> list[str]:
    """One-line warnings about using a model with ``provenance`` on vocals separated by ``separator_name``:
    a different separator than in training, a model that has only heard synthetic voices, fine-tuned tracker
    weights other than those its features were made with, or a checkpoint that does not say what it was trained
    on. Empty when nothing is amiss."""
    provenance = provenance or {}
    trained_on = provenance.get("separator")
    corpus = provenance.get("corpus") or {}
    kind = corpus.get("kind", "unknown")
    if trained_on is None and kind == "unknown":
        return ["checkpoint does not say what it was trained on"]
    warnings = []
    if trained_on is not None and separator_name not in str(trained_on).split("+"):  # "a+b": trained on both
        warnings.append(
            f"model trained on vocals separated by {trained_on}, refining vocals separated by "
            f"{separator_name}: expect a different result"
        )
    if kind == "synthetic" or corpus.get("synthetic_only"):
        warnings.append(
            "this model has only heard synthetic voices: on real singing such a model made more songs "
            "worse than one trained on real vocals (README 'Real singing', make bench-real)"
        )
    tracker = provenance.get("f0_tracker") or {}
    if tracker.get("f0_weights") is not None:
        installed = F0Tracker(tracker["f0_method"]).settings()["f0_weights"]
        if installed != tracker["f0_weights"]:
            warnings.append(
                f"model trained on F0 from {tracker['f0_method']} weights {tracker['f0_weights']}, the installed "
                f"ones are {installed or 'missing'}: expect a different result"
            )
    return warnings


__all__ = [
    "dataset_provenance",
    "corpus_provenance",
    "code_version",
    "training_provenance",
    "read_provenance",
    "read_checkpoint_meta",
    "load_checkpoint",
    "provenance_warnings",
]
