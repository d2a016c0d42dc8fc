"""Whether a run may resume from its ``last.ckpt``: the settings that must not change between the runs."""

from __future__ import annotations

from pathlib import Path

from ddsp_demucs import DDSPDemucsError
from ddsp_demucs.core.config import Config
from ddsp_demucs.core.utils import (
    config_to_dict,
)
from ddsp_demucs.training.provenance import read_checkpoint_meta

# training settings a resumed run may change: how long it runs, how it logs and checkpoints, the hardware
RESUMABLE_TRAINING_KEYS = frozenset(
    {
        "max_steps",
        "epochs",
        "max_nonfinite_steps",
        "devices",
        "accelerator",
        "strategy",
        "threads",
        "num_workers",
        "log_every_steps",
        "n_audio_examples",
        "checkpoint_every_steps",
    }
)


def config_changes(recorded: dict, config: dict) -> list[str]:
    """``"section.key: old -> new"`` for every setting of ``recorded`` (a checkpoint's config dict) that ``config``
    (a config dict) sets differently, except the ``training`` keys of :data:`RESUMABLE_TRAINING_KEYS`. Keys absent
    from either side are not compared (configs written before a key existed)."""

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    changes = []
    for section, values in recorded.items():
        current = config.get(section)
        if not isinstance(values, dict) or not isinstance(current, dict):
            continue
        for key, old in values.items():
            if key not in current or (section == "training" and key in RESUMABLE_TRAINING_KEYS):
                continue
            if plain(old) != plain(current[key]):
                changes.append(f"{section}.{key}: {old!r} -> {current[key]!r}")
    return changes


def check_resumable(last_checkpoint: Path, config: Config) -> None:
    """Raise :class:`DDSPDemucsError` if ``last_checkpoint`` was written with settings that ``config`` changes
    (:func:`config_changes`): resuming would continue a different model and report it as this one; or if it is not a
    readable ddsp-demucs checkpoint (:func:`~ddsp_demucs.training.provenance.read_checkpoint_meta`)."""
    meta = read_checkpoint_meta(last_checkpoint)
    changes = config_changes(meta.get("config") or {}, config_to_dict(config))
    if changes:
        raise DDSPDemucsError(
            f"{last_checkpoint.parent.parent}: holds a run trained with other settings ({'; '.join(changes)}); "
            "train into another folder, or start afresh (ddsp-demucs train --no-resume)"
        )


__all__ = ["RESUMABLE_TRAINING_KEYS", "config_changes", "check_resumable"]
