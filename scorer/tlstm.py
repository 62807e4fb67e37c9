"""One TLSTM step in numpy, for one user per event in the live stream or for many users at once.

The equations are DESIGN.md's reading of the paper's eq. 1; ``training.core.tlstm.TLSTMCell`` is the
same cell in torch and ``training.core.tlstm.export_numpy`` gives its weights in this layout.

Layout: one matmul for the four gates over ``[x; h]`` and one for the short/long split over
``c``; everything else is elementwise. One matmul over ``[x; h; c; Δt]`` with a block matrix
saves a few numpy calls per step but more than doubles the weight bytes read, which costs more
from D = 64 up (the paper's D is 256); the timings are in the README, "The model in the
streaming form".
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["TLSTMWeights", "tlstm_step"]


@dataclass(frozen=True, eq=False)
class TLSTMWeights:
    """A TLSTM cell's weights as read-only float32 arrays; time fields are None for a plain LSTM.

    I is the input size, D the hidden size. ``w_gates`` and ``w_split`` are stored input-major
    (``x @ w``), i.e. the transposes of the torch ``Linear`` weights.
    """

    w_gates: np.ndarray  # (I + D, 4D) rows [x; h], columns i, f, g, o (torch.nn.LSTMCell order)
    b_gates: np.ndarray  # (4D,)
    w_split: np.ndarray | None = None  # (D, 2D) columns [W_short | W_long] applied to c(t−1)
    w_time: np.ndarray | None = None  # (3D,) [w_short_t; w_long_t; w_shrink], times Δt
    b_time: np.ndarray | None = None  # (3D,) [b_short; b_long; b_shrink]
    w_new: np.ndarray | None = None  # (2D,) [w_new_short; w_new_long]
    b_merge: np.ndarray | None = None  # (D,)

    def __post_init__(self) -> None:
        """Copy the arrays to read-only float32 and check their shapes agree, before any step."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                array = np.array(value, dtype=np.float32, order="C")
                array.flags.writeable = False
                object.__setattr__(self, f.name, array)
        d = self.hidden_size
        if self.w_gates.ndim != 2 or self.w_gates.shape[0] <= d:
            raise ValueError(
                f"w_gates has shape {self.w_gates.shape}, expected (I + D, 4D), D = {d}"
            )
        expected = {"w_gates": (self.w_gates.shape[0], 4 * d), "b_gates": (4 * d,)}
        time_fields = ("w_split", "w_time", "b_time", "w_new", "b_merge")
        given = [getattr(self, name) is not None for name in time_fields]
        if any(given) and not all(given):
            raise ValueError(f"the time weights {time_fields} must be all given or all None")
        if all(given):
            expected |= {
                "w_split": (d, 2 * d),
                "w_time": (3 * d,),
                "b_time": (3 * d,),
                "w_new": (2 * d,),
                "b_merge": (d,),
            }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")

    @property
    def hidden_size(self) -> int:
        """D, from the gate biases."""
        return self.b_gates.size // 4

    @property
    def input_size(self) -> int:
        """I, the rows of the gate matrix that are not h."""
        return self.w_gates.shape[0] - self.hidden_size

    @property
    def use_time(self) -> bool:
        """False for the plain-LSTM ablation (H-LSTM), where c(t−1) enters the gates unadjusted."""
        return self.w_split is not None

    def to_bytes(self) -> bytes:
        """The weights as an uncompressed ``.npz`` archive (no pickle), for the model registry."""
        buffer = io.BytesIO()
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        np.savez(buffer, **{name: a for name, a in arrays.items() if a is not None})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TLSTMWeights:
        """Inverse of ``to_bytes``; refuses pickled objects."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return cls(**{name: archive[name] for name in archive.files})


def tlstm_step(
    w: TLSTMWeights, h: np.ndarray, c: np.ndarray, x: np.ndarray, dt: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Advance (h, c) by one event with input x after normalised gap dt; inputs are not modified.

    One user: h, c (D,), x (I,), dt a scalar. A batch: h, c (B, D), x (B, I), dt (B,) or (B, 1).
    Returns new arrays (h, c) of h's shape, float32 for a float32 state.
    """
    d = h.shape[-1]
    z = np.concatenate((x, h), axis=-1, dtype=np.float32) @ w.w_gates  # (..., 4D) i, f, g, o
    z += w.b_gates
    s = np.tanh(z * 0.5)  # (..., 4D) σ(z) = (1 + tanh(z/2)) / 2 for every block (g unused):
    s *= 0.5  # as few calls as 1 / (1 + exp(−z)), and no overflow warning where z ≪ 0
    s += 0.5
    c_adj = c if w.w_split is None else _adjust_memory(w, c, dt, d)  # (..., D)
    c_new = s[..., d : 2 * d] * c_adj + s[..., :d] * np.tanh(z[..., 2 * d : 3 * d])
    return s[..., 3 * d :] * np.tanh(c_new), c_new


def _adjust_memory(w: TLSTMWeights, c: np.ndarray, dt: ArrayLike, d: int) -> np.ndarray:
    """c_adj: split c(t−1) into short and long parts, shrink the short part by Δt, merge."""
    if c.ndim > 1:
        dt = np.reshape(dt, (*c.shape[:-1], 1))  # (..., 1)
    v = np.multiply(dt, w.w_time, dtype=np.float32)  # (..., 3D)
    v += w.b_time
    v[..., : 2 * d] += c @ w.w_split
    np.tanh(v, out=v)  # (..., 3D) c_short, c_long, shrink factor
    m = v[..., : 2 * d] * w.w_new  # (..., 2D) w_new_short ⊙ c_short, w_new_long ⊙ c_long
    m[..., :d] *= v[..., 2 * d :]  # the short part, shrunk: w_new_short ⊙ c_short'
    return np.tanh(m[..., :d] + m[..., d:] + w.b_merge)
