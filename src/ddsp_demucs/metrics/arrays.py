"""Array conversions shared by the metrics: numpy or torch in, the same kind out."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_float64_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 numpy array; raises ``ValueError`` naming ``name`` if it holds NaN or infinite values."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_tensor_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both inputs as tensors (numpy -> float64), and whether the caller gave torch tensors."""
    is_torch = isinstance(estimate, torch.Tensor) or isinstance(reference, torch.Tensor)
    est = estimate if isinstance(estimate, torch.Tensor) else torch.from_numpy(np.asarray(estimate, dtype=np.float64))
    ref = (
        reference if isinstance(reference, torch.Tensor) else torch.from_numpy(np.asarray(reference, dtype=np.float64))
    )
    if is_torch:
        dtype = torch.promote_types(est.dtype, ref.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        est, ref = est.to(dtype), ref.to(device=est.device, dtype=dtype)
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference shapes differ: {tuple(est.shape)} vs {tuple(ref.shape)}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise ValueError(f"estimate and reference need a non-empty last (sample) axis, got shape {tuple(est.shape)}")
    if not (torch.isfinite(est).all() and torch.isfinite(ref).all()):
        raise ValueError("estimate or reference contains NaN or infinite values")
    return est, ref, is_torch


def to_output(x: torch.Tensor, is_torch: bool) -> ArrayLike:
    """``x`` as is for a torch caller, else as float64 numpy (a scalar for 0-d)."""
    return x if is_torch else x.detach().cpu().double().numpy()[()]
