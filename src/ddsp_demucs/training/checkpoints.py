"""Checkpoint files: atomic writes, weights-only reads, and :func:`load_model` (the model from a checkpoint alone,
its class a name in :data:`MODEL_CLASSES`)."""

from __future__ import annotations

import os

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import (
    atomic_path,
)
from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, load_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it and renames it into place; reads it weights-only."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location="cpu", weights_only=None) -> dict:
        """Resuming reads weights-only too (:func:`~ddsp_demucs.training.provenance.load_checkpoint`), whatever is
        asked."""
        return load_checkpoint(path, map_location)


# the model classes a checkpoint may name (its "model_class"); no other class is imported or built from a file
MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {"ddsp_demucs.model.ResidualDDSPDecoder": ResidualDDSPDecoder}


def model_class_name(model: torch.nn.Module) -> str:
    """The name a checkpoint stores for ``model``'s class: its key in :data:`MODEL_CLASSES`, fixed whichever module
    defines the class, so that checkpoints name the same class before and after a move."""
    names = [name for name, cls in MODEL_CLASSES.items() if type(model) is cls]
    return names[0] if names else f"{type(model).__module__}.{type(model).__qualname__}"


def load_model(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The model stored in a checkpoint written by :class:`DDSPTrainer`, in eval mode, from the file alone.

    ``checkpoint_path`` is a file or an ``hf://owner/repo/file.ckpt`` reference (:mod:`ddsp_demucs.training.hub`). The
    checkpoint holds the model class (a name in :data:`MODEL_CLASSES`), its init arguments, the resolved config
    and the weights; it is read weights-only (:func:`~ddsp_demucs.training.provenance.load_checkpoint`). Raises
    :class:`InputError` naming the file if it is missing or not such a checkpoint, or if its class is unknown, its
    arguments bad or its weights a misfit.
    """
    path = os.fspath(checkpoint_path)  # as given: Path() would turn hf://owner/... into hf:/owner/...
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt[CHECKPOINT_KEY]
    name = meta.get("model_class")
    cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InputError(f"{path}: unknown model class {name!r} (this version builds {', '.join(MODEL_CLASSES)})")
    try:
        model = cls(**meta.get("model_args"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: bad arguments for {name} ({str(exc).strip().splitlines()[0]})") from None
    weights = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else {}
    try:
        model.load_state_dict({k[len("model.") :]: v for k, v in weights.items() if k.startswith("model.")})
    except RuntimeError:
        raise InputError(f"{path}: its weights do not fit the {name} its arguments describe") from None
    model.config = meta.get("config")
    model.provenance = meta.get("provenance", {})  # see ddsp_demucs.training.provenance ({} for older checkpoints)
    return model.eval()


def start_from_checkpoint(model: torch.nn.Module, checkpoint_path: str | os.PathLike, trainable: list[str]) -> None:
    """Train ``model`` onward from the weights of another checkpoint (``training.init_checkpoint``), with only the
    parameters named with a prefix in ``trainable`` left to learn (``training.trainable``; every one if empty).

    Copies every weight the checkpoint holds into ``model``; the parameters it lacks (a head the stored model did
    not have) keep their initialisation and must be trainable. Raises :class:`InputError` naming the file where a
    stored weight has no place or another shape in ``model``, or where a missing parameter would stay frozen.
    """
    path = os.fspath(checkpoint_path)
    source = load_model(path).state_dict()
    own = model.state_dict()
    unexpected = [name for name, value in source.items() if name not in own or own[name].shape != value.shape]
    missing = [name for name in own if name not in source]
    if unexpected:
        raise InputError(f"{path}: its weights {', '.join(unexpected[:3])} have no place of that shape in this model")
    frozen_missing = [name for name in missing if trainable and not name.startswith(tuple(trainable))]
    if frozen_missing:
        raise InputError(f"{path}: lacks {', '.join(frozen_missing[:3])}, which training.trainable would freeze")
    model.load_state_dict(source, strict=False)
    freeze_all_but(model, trainable)


def freeze_all_but(model: torch.nn.Module, trainable: list[str]) -> None:
    """Leave only the parameters named with a prefix in ``trainable`` to learn (every one if it is empty); raises
    ValueError if a prefix names no parameter."""
    if not trainable:
        return
    names = [name for name, _ in model.named_parameters()]
    unused = [prefix for prefix in trainable if not any(name.startswith(prefix) for name in names)]
    if unused:
        raise ValueError(f"training.trainable: no parameter of the model is named with {', '.join(unused)}")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(tuple(trainable)))


__all__ = [
    "AtomicCheckpointIO",
    "MODEL_CLASSES",
    "model_class_name",
    "load_model",
    "start_from_checkpoint",
    "freeze_all_but",
]
