"""Batches: the resumable, rank-sharded training order (:class:`ResumableSampler`) and the collate function."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from ddsp_demucs import DDSPDemucsError

AUDIO_KEYS = ("input_audio", "target_audio", "f0_hz", "f0_confidence", "loudness_db")


class ResumableSampler(Sampler[int]):
    """Training order that a resumed run continues exactly.

    The stream is pass after pass over the dataset, each a permutation seeded by ``(seed, pass)``; rank
    ``r`` of ``world_size`` takes every ``world_size``-th item, and each pass is cut to a whole number of
    batches. ``__iter__`` starts at ``position()`` items into the stream (the batches the module has
    consumed x ``batch_size``) and runs to the end of that pass; ``__len__`` is a full pass.
    """

    def __init__(
        self, n_items: int, batch_size: int, seed: int, position: Callable[[], int], rank: int = 0, world_size: int = 1
    ):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.position, self.rank, self.world_size = position, rank, world_size
        self.per_pass = (n_items // world_size) // batch_size * batch_size
        if self.per_pass == 0:
            raise DDSPDemucsError(
                f"training dataset has {n_items} examples: too few for batch size {batch_size} "
                f"on {world_size} device(s)"
            )

    def order(self, pass_index: int) -> list[int]:
        """This rank's items of pass ``pass_index``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_index)
        perm = torch.randperm(self.n_items, generator=g).tolist()
        return perm[self.rank :: self.world_size][: self.per_pass]

    def __iter__(self) -> Iterator[int]:
        pass_index, offset = divmod(self.position(), self.per_pass)
        return iter(self.order(pass_index)[offset:])

    def __len__(self) -> int:
        return self.per_pass


def collate(items: list[dict]) -> dict:
    """Stack the tensor fields of dataset items; ``track`` and ``start_s`` become lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in AUDIO_KEYS or isinstance(values[0], (torch.Tensor, np.ndarray)):
            out[key] = torch.stack(
                [
                    torch.as_tensor(np.asarray(v) if isinstance(v, np.ndarray) else v, dtype=torch.float32)
                    for v in values
                ]
            )
        else:
            out[key] = values
    return out


__all__ = ["AUDIO_KEYS", "ResumableSampler", "collate"]
