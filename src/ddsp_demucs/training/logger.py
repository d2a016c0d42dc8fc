"""The CSV logger that continues ``csv/metrics.csv`` when a run resumes."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ddsp_demucs.core.utils import (
    atomic_path,
)


class ResumableCSVLogger(Logger):
    """Metrics as CSV in ``save_dir/name/version/metrics.csv``, continued when a run resumes.

    Written the way Lightning's ``CSVLogger`` writes it: one row per :meth:`log_metrics` call holding ``step`` and
    the values logged, columns sorted by name, an empty cell where a row lacks a column, and the file rewritten with
    the wider header when a new metric appears. Unlike ``CSVLogger``, which deletes ``metrics.csv`` (with a warning)
    when its folder is not empty, an existing file keeps its rows and new rows are appended under its header, so
    the log of a resumed run holds the whole run. A pure implementation of Lightning's public ``Logger`` interface;
    it writes on global rank 0 only, and buffers rows until :meth:`save` (which Lightning calls after each
    ``log_metrics``) or :meth:`finalize`. Hyper-parameters are not written here: they are in ``config.yaml`` and in
    every checkpoint.
    """

    NAME_METRICS_FILE = "metrics.csv"

    def __init__(self, save_dir: str | os.PathLike, name: str = "csv", version: str = ""):
        super().__init__()
        self._save_dir, self._name, self._version = os.fspath(save_dir), name, version
        self.metrics_file_path = os.path.join(self.log_dir, self.NAME_METRICS_FILE)
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] | None = None  # the file's header, read from it when it is first needed

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self._name)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.root_dir, self._version)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: the resolved config is ``config.yaml`` and part of every checkpoint."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        row["step"] = step if step is not None else len(self._rows)
        self._rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        """Write the buffered rows: appended, or the whole file rewritten (atomically) when the header widens."""
        if not self._rows:
            return
        path = Path(self.metrics_file_path)
        exists = path.is_file()
        if self._keys is None:
            self._keys = []
            if exists:
                with open(path, newline="") as fh:
                    self._keys = list(csv.DictReader(fh).fieldnames or [])
        new_keys = set().union(*self._rows) - set(self._keys)
        if new_keys:
            self._keys = sorted({*self._keys, *new_keys})
        if new_keys and exists:
            with open(path, newline="") as fh:
                old_rows = list(csv.DictReader(fh))
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self._keys)
                writer.writeheader()
                writer.writerows(old_rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if exists else "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._keys)
            if not exists:
                writer.writeheader()
            writer.writerows(self._rows)
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


__all__ = ["ResumableCSVLogger"]
