"""The challengers' networks applied to many rows at once: in batches, without gradients.

>>> import torch
>>> double = lambda t, s: t.sum(dim=(1, 2)) + s.sum(dim=1)
>>> batched(double, np.ones((5, 2, 3)), np.ones((5, 4)), size=2).tolist()
[10.0, 10.0, 10.0, 10.0, 10.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["batched"]


def batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], temporal: np.ndarray,
            static: np.ndarray, size: int = 4096) -> np.ndarray:  # fmt: skip
    """``fn`` (a model in eval mode, or one of its methods) of temporal (N, T, F) and static
    (N, S) inputs as float32 tensors, ``size`` rows at a time in inference mode; the outputs
    (N, ...) concatenated as float64 (N = 0: an empty (0,) array)."""
    out = []
    with torch.inference_mode():
        for k in range(0, len(temporal), size):
            t = torch.from_numpy(np.ascontiguousarray(temporal[k : k + size], dtype=np.float32))
            s = torch.from_numpy(np.ascontiguousarray(static[k : k + size], dtype=np.float32))
            out.append(fn(t, s).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)
