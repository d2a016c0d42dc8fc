"""Checkpoint files: atomic writes, weights-only reads, and :func:`load_model` (the model from a checkpoint alone,
its class a name in :data:`MODEL_CLASSES`).

A model also travels as two plain files (:func:`export_model`): its weights in safetensors (tensors only) and a
JSON card beside them with the same name (``model.safetensors`` and ``model.json``: model class and arguments,
resolved config, provenance, the weights' SHA-256, and what the exporter adds, such as figures and a licence).
Neither can run code when read. The package ships its default refiner in this form (:data:`DEFAULT_REFINER`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from ddsp_demucs import InputError
from ddsp_demucs.core.utils import atomic_path, write_json_atomic
from ddsp_demucs.model import ResidualDDSPDecoder
from ddsp_demucs.training.hub import is_hub_reference, resolve_checkpoint
from ddsp_demucs.training.provenance import CHECKPOINT_KEY, load_checkpoint

# the default refiner shipped in the package (``make model``; ``ddsp-demucs refine`` without --checkpoint)
DEFAULT_REFINER = Path(__file__).resolve().parent / "weights" / "default_refiner.safetensors"
EXPORTED_SUFFIX = ".safetensors"
CARD_KEYS = ("model_class", "model_args", "config", "provenance")  # what every card holds; the exporter adds more


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
    """The model stored in a checkpoint written by :class:`DDSPTrainer`, or exported by :func:`export_model`, in
    eval mode, from the file alone.

    ``checkpoint_path`` is a file or an ``hf://owner/repo/file.ckpt`` reference (:mod:`ddsp_demucs.training.hub`); a
    ``.safetensors`` file is read with its card (module doc). The checkpoint holds the model class (a name in
    :data:`MODEL_CLASSES`), its init arguments, the resolved config and the weights; it is read weights-only
    (:func:`~ddsp_demucs.training.provenance.load_checkpoint`). Raises :class:`InputError` naming the file if it is
    missing or not such a checkpoint, or if its class is unknown, its arguments bad or its weights a misfit.
    """
    path = os.fspath(checkpoint_path)  # as given: Path() would turn hf://owner/... into hf:/owner/...
    exported = path.endswith(EXPORTED_SUFFIX)
    meta, weights = read_exported(path, map_location) if exported else read_trained(path, map_location)
    model = build_model(path, meta, weights)
    model.card = meta if exported else {}  # an exported model's card (figures, licence)
    return model


def read_trained(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """The ddsp-demucs entry and the model's weights (``model.`` prefix removed) of a checkpoint the trainer wrote;
    raises as :func:`~ddsp_demucs.training.provenance.load_checkpoint`."""
    ckpt = load_checkpoint(checkpoint_path, map_location)
    stored = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else {}
    return ckpt[CHECKPOINT_KEY], {k[len("model.") :]: v for k, v in stored.items() if k.startswith("model.")}


def build_model(path: str, meta: dict, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model ``meta`` describes (its class a name in :data:`MODEL_CLASSES`, its ``model_args``, ``config``
    and ``provenance``) with ``weights``, in eval mode; raises :class:`InputError` naming ``path`` for an unknown
    class, bad arguments or weights that do not fit."""
    name = meta.get("model_class")
    cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InputError(f"{path}: unknown model class {name!r} (this version builds {', '.join(MODEL_CLASSES)})")
    try:
        model = cls(**meta.get("model_args"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: bad arguments for {name} ({str(exc).strip().splitlines()[0]})") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise InputError(f"{path}: its weights do not fit the {name} its arguments describe") from None
    model.config = meta.get("config")
    model.provenance = meta.get("provenance", {})  # see ddsp_demucs.training.provenance ({} for older checkpoints)
    return model.eval()


def card_path(weights_path: str | os.PathLike) -> str:
    """The card beside exported weights: the same name with ``.json`` (an ``hf://`` reference stays one)."""
    return os.fspath(weights_path)[: -len(EXPORTED_SUFFIX)] + ".json"


def read_exported(weights_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """The card and the weights of an exported model (module doc; files or ``hf://`` references), checked against
    each other by the SHA-256 the card holds; raises :class:`InputError` naming the file that is missing,
    unreadable or does not match."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    weights_file, card_file = resolve_checkpoint(os.fspath(weights_path)), resolve_checkpoint(card_path(weights_path))
    for file in (weights_file, card_file):
        if not file.is_file():
            raise InputError(f"{file}: not found (an exported model is {weights_file.name} and {card_file.name})")
    try:
        card = json.loads(card_file.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{card_file}: not a readable model card ({type(exc).__name__})") from None
    if not isinstance(card, dict) or any(key not in card for key in CARD_KEYS):
        raise InputError(f"{card_file}: not a ddsp-demucs model card (it needs {', '.join(CARD_KEYS)})")
    data = weights_file.read_bytes()
    if card.get("weights_sha256") != hashlib.sha256(data).hexdigest():
        raise InputError(f"{weights_file}: these weights are not the ones {card_file.name} describes (SHA-256)")
    try:
        weights = load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise InputError(f"{weights_file}: not readable safetensors ({str(exc).strip()[:80]})") from None
    return card, {name: value.to(map_location) for name, value in weights.items()}


def export_model(checkpoint_path: str | os.PathLike, weights_path: str | os.PathLike, extra: dict) -> Path:
    """Write the model of a checkpoint as exported weights at ``weights_path`` (``.safetensors``) and its card
    beside them (module doc), with the entries of ``extra`` added to the card; both written atomically, the card
    last. Returns the card's path."""
    from safetensors.torch import save

    if is_hub_reference(os.fspath(weights_path)) or not os.fspath(weights_path).endswith(EXPORTED_SUFFIX):
        raise ValueError(f"{os.fspath(weights_path)}: exported weights are a local {EXPORTED_SUFFIX} file")
    weights_path = Path(weights_path)
    meta, weights = read_trained(checkpoint_path)
    model = build_model(os.fspath(checkpoint_path), meta, weights)  # a model that loads, or a one-line error
    data = save({name: value.contiguous() for name, value in model.state_dict().items()})
    with atomic_path(weights_path) as tmp:
        tmp.write_bytes(data)
    card = {key: meta.get(key) for key in CARD_KEYS} | {"weights_sha256": hashlib.sha256(data).hexdigest()} | extra
    return write_json_atomic(card_path(weights_path), card)


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
    "DEFAULT_REFINER",
    "load_model",
    "read_trained",
    "build_model",
    "card_path",
    "read_exported",
    "export_model",
    "start_from_checkpoint",
    "freeze_all_but",
]
