"""Paper 001's deep model: parallel 1-D CNN branches over groups of a client's monthly features,
each three residual convolutions with batch normalisation and max pooling, an LSTM over the
branches' outputs, attention over its time steps, the client's non-temporal features beside the
attention's output, fully connected layers with batch normalisation and dropout, one sigmoid
output: P(default next month). Trained on ``alpha * BCE + (1 - alpha) * focal loss``.

Xia, Zhu, Zheng, Lu & Xiong (2024), "A Deep Learning-based Model for P2P Microloan Default Risk
Prediction" (``../shared/papers/001``), III.C "Proposed Deep Learning Architecture": "multiple
parallel CNN branches, each processing different groups of features, followed by an LSTM layer
[...]. The outputs of these branches are concatenated and fed into fully connected layers";
"1D convolutions with varying filter sizes [...] three convolutional layers with 64, 128, and
256 filters, respectively, followed by max-pooling layers. The LSTM layer contains 128 units";
"An attention layer is implemented after the LSTM layer to focus on the most relevant time
steps"; "Skip connections are added between convolutional layers"; "Batch Normalization:
Applied after each convolutional and fully connected layer"; "Dropout: [...] fully connected
layers with a rate of 0.5"; the loss ``L = α·BCE + (1 − α)·FL``, α = 0.7; Adam at 0.001, the
rate cut tenfold after 5 epochs of a flat validation loss; batch 256, 100 epochs, early
stopping with patience 10.

What the text leaves open (its Figure 1 is an image we do not hold), and the choices here:

- the feature groups and "varying filter sizes": on UCI, two branches, the repayment status
  (kernel 3: a delay builds over months) and the two amounts, bill and paid (kernel 2: a month
  against the one before); each branch's three convolutions have 64, 128 and 256 filters;
- the convolutions and the pooling are causal (padded on the left only, max pooling over two
  steps with stride 1), so every time step's output depends on that month and the ones before
  it and the six months stay six steps for the LSTM (pooling with stride 2 would leave one);
- a skip connection around each convolution, through a 1×1 convolution where the channels
  change; batch normalisation after each convolution, before the ReLU;
- the LSTM reads the two branches' outputs side by side (512 channels per month); attention is
  additive (Bahdanau) with a score of each step's LSTM output alone, no query;
- the non-temporal features (credit limit, sex, education, marriage, age) go through one fully
  connected layer (32 units) and join the attention's output; then one fully connected layer
  of 128 units and the output;
- the focal loss: ``−(1 − p_t)^γ log p_t`` with γ = 2 (Lin et al. 2017; the paper gives no γ)
  and no class weight of its own (its α is the mixing weight above);
- early stopping and the learning-rate schedule watch the validation clients' loss (the same
  loss); the weights of the best epoch are kept.

**The streaming form.** Causal convolutions see a fixed window of the last
``receptive_field`` events; an LSTM advances one step per event; additive attention without a
query is a softmax-weighted mean, kept as a running maximum, sum of weights and weighted sum.
So a post costs one window of convolutions, one LSTM step and one attention update, whatever
the history (``CnnLstmStream``); the test checks it gives the full re-encode's score. The
paper's own form re-encodes the history (``training.experiments.challenger_cost`` times both).

>>> m = CnnLstmScore(static_features=8, filters=(4, 4, 4), lstm_units=4)
>>> m(torch.zeros(2, 6, 3), torch.zeros(2, 8)).shape
torch.Size([2])
>>> m.receptive_field
10
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.challengers.config import CnnLstmConfig
from training.challengers.early_stopping import EarlyStopping
from training.challengers.inference import batched

__all__ = [
    "UCI_BRANCHES",
    "CnnLstmConfig",
    "CnnLstmScore",
    "CnnLstmStream",
    "composite_loss",
    "fit_cnnlstm",
    "predict_cnnlstm",
]

#: The CNN branches on UCI's monthly features (status, bill, paid): name, the features' columns,
#: the kernel width (module docstring).
UCI_BRANCHES: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("status", (0,), 3),
    ("amounts", (1, 2), 2),
)
_POOL = 2  # causal max pooling over this many steps, stride 1
_STATIC_UNITS = 32
_FC_UNITS = 128


class _ResidualConv(nn.Module):
    """A causal convolution, batch norm, a skip connection, ReLU, causal max pooling:
    (B, C_in, T) → (B, C_out, T)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(c_in, c_out, kernel)
        self.bn = nn.BatchNorm1d(c_out)
        self.skip: nn.Module = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(F.pad(x, (self.kernel - 1, 0)))) + self.skip(x))
        # Repeating the first step on the left leaves each step's maximum over what exists.
        return F.max_pool1d(F.pad(h, (_POOL - 1, 0), mode="replicate"), _POOL, stride=1)


class CnnLstmScore(nn.Module):
    """Inputs: temporal (B, T, F) float32, months oldest first (F = 3 on UCI: status, bill,
    paid); static (B, S) float32. Output: logits (B,) of a default next month."""

    def __init__(
        self,
        static_features: int,
        filters: tuple[int, ...] = (64, 128, 256),
        lstm_units: int = 128,
        dropout: float = 0.5,
        branches: tuple[tuple[str, tuple[int, ...], int], ...] = UCI_BRANCHES,
    ) -> None:
        super().__init__()
        self.columns = [list(cols) for _, cols, _ in branches]
        self.branches = nn.ModuleList()
        for _, cols, kernel in branches:
            widths = [len(cols), *filters]
            self.branches.append(
                nn.Sequential(*(_ResidualConv(a, b, kernel) for a, b in itertools.pairwise(widths)))
            )
        #: Events the last step's convolutions see: the rest of the history reaches the score
        #: only through the LSTM's state and the attention's sums.
        self.receptive_field = 1 + max(len(filters) * (k - 1 + _POOL - 1) for _, _, k in branches)
        self.lstm = nn.LSTM(filters[-1] * len(branches), lstm_units, batch_first=True)
        self.att_proj = nn.Linear(lstm_units, lstm_units)
        self.att_score = nn.Linear(lstm_units, 1, bias=False)
        self.static = nn.Sequential(
            nn.Linear(static_features, _STATIC_UNITS),
            nn.BatchNorm1d(_STATIC_UNITS),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.head = nn.Sequential(
            nn.Linear(lstm_units + _STATIC_UNITS, _FC_UNITS),
            nn.BatchNorm1d(_FC_UNITS),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(_FC_UNITS, 1),
        )

    def convolved(self, temporal: torch.Tensor) -> torch.Tensor:
        """The branches' outputs side by side, (B, T, filters[-1] * branches)."""
        x = temporal.transpose(1, 2)  # (B, F, T)
        return torch.cat(
            [b(x[:, cols]) for b, cols in zip(self.branches, self.columns, strict=True)], dim=1
        ).transpose(1, 2)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """The attention's score of each LSTM output (..., units) → (...)."""
        return self.att_score(torch.tanh(self.att_proj(h))).squeeze(-1)

    def combine(self, context: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        """Logits (B,) of the attention's output (B, units) and the static features (B, S)."""
        return self.head(torch.cat([context, self.static(static)], dim=1)).squeeze(1)

    def forward(self, temporal: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.convolved(temporal))  # (B, T, units)
        weights = torch.softmax(self.scores(h), dim=1)  # (B, T)
        return self.combine(torch.einsum("bt,btu->bu", weights, h), static)


class CnnLstmStream:
    """The model's incremental form for one client: ``step`` takes one event (F,) and returns
    P(default) after it, from a state of the last ``receptive_field`` events, the LSTM's (h, c)
    and the attention's running maximum score, sum of weights and weighted sum of outputs.
    Equal to ``model`` re-encoding the whole history, to float rounding (the model in eval
    mode)."""

    def __init__(self, model: CnnLstmScore, static: np.ndarray) -> None:
        self.model = model.eval()
        self.static = torch.as_tensor(np.asarray(static, dtype=np.float32))[None, :]
        self.window = torch.zeros(1, 0, sum(len(c) for c in model.columns))
        self.hc: tuple[torch.Tensor, torch.Tensor] | None = None
        self.top = -math.inf
        self.total = torch.zeros(1)
        self.weighted = torch.zeros(1, model.lstm.hidden_size)

    def step(self, event: np.ndarray) -> float:
        m = self.model
        with torch.inference_mode():
            e = torch.as_tensor(np.asarray(event, dtype=np.float32))[None, None, :]
            self.window = torch.cat([self.window, e], dim=1)[:, -m.receptive_field :]
            column = m.convolved(self.window)[:, -1:]  # (1, 1, channels): exact for the last step
            h, self.hc = m.lstm(column, self.hc)
            h = h[:, 0]
            s = float(m.scores(h))
            top = max(self.top, s)
            shrink = math.exp(self.top - top) if math.isfinite(self.top) else 0.0
            grow = math.exp(s - top)
            self.total = self.total * shrink + grow
            self.weighted = self.weighted * shrink + grow * h
            self.top = top
            return float(torch.sigmoid(m.combine(self.weighted / self.total, self.static)))


def composite_loss(
    logits: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Paper 001's loss, the mean over the batch of ``alpha * BCE + (1 - alpha) * FL`` with
    ``FL = -(1 - p_t)^gamma * log(p_t)``, ``p_t`` the probability given to the true class;
    logits (B,), labels (B,) 0/1 float.

    >>> z, y = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
    >>> bce = F.binary_cross_entropy_with_logits(z, y)
    >>> bool(torch.isclose(composite_loss(z, y, 1.0, 2.0), bce))
    True
    >>> bool(composite_loss(z, y, 0.0, 2.0) < bce)  # focal: easy rows count less
    True
    """
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    focal = (1 - torch.exp(-bce)) ** gamma * bce
    return (alpha * bce + (1 - alpha) * focal).mean()


def fit_cnnlstm(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: CnnLstmConfig,
    branches: tuple[tuple[str, tuple[int, ...], int], ...] = UCI_BRANCHES,
) -> tuple[CnnLstmScore, dict]:
    """Train on ``train`` = (temporal (N, T, F), static (N, S) float32, labels (N,) 0/1),
    the learning-rate schedule and early stopping on the validation clients ``val`` (same
    form); the weights of the lowest validation loss are kept. ``branches``: the CNN branches
    over the temporal features (``UCI_BRANCHES``' form). Returns the model (eval mode) and
    what training did: epochs run, the best epoch, its validation loss, the last learning
    rate, whether the time budget ended it, seconds. Raises ValueError on fewer than two
    training clients."""
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    t, s, y = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in train)
    tv, sv, yv = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in val)
    if len(y) < 2:
        raise ValueError(f"too few clients to train on: {len(y)}")
    model = CnnLstmScore(s.shape[1], cfg.filters, cfg.lstm_units, cfg.dropout, branches)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=cfg.plateau)
    stop = EarlyStopping(model, cfg.patience, cfg.max_minutes)
    started, epochs_run = time.perf_counter(), 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        for k in range(0, len(y), cfg.batch):
            idx = order[k : k + cfg.batch]
            if len(idx) < 2:  # batch norm needs two rows
                continue
            opt.zero_grad()
            composite_loss(
                model(t[idx], s[idx]), y[idx], cfg.loss_alpha, cfg.focal_gamma
            ).backward()
            opt.step()
        epochs_run = epoch
        model.eval()
        with torch.inference_mode():
            val_loss = sum(
                float(composite_loss(model(tv[v], sv[v]), yv[v], cfg.loss_alpha, cfg.focal_gamma))
                * len(v) for v in torch.arange(len(yv)).split(4096)) / max(1, len(yv))  # fmt: skip
        plateau.step(val_loss)
        if stop.update(val_loss, epoch):
            break
    stop.restore()
    model.eval()
    return model, {
        "epochs_run": epochs_run,
        "best_epoch": stop.best_epoch,
        "validation_loss": round(stop.best_loss, 5),
        "last_lr": opt.param_groups[0]["lr"],
        "out_of_time": stop.out_of_time,
        "seconds": round(time.perf_counter() - started, 2),
    }


def predict_cnnlstm(model: CnnLstmScore, temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """P(default next month) (N,) float64 of clients' inputs (N, T, F), (N, S), in batches."""
    return batched(lambda t, s: torch.sigmoid(model(t, s)), temporal, static)
