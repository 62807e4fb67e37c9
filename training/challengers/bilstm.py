"""Paper 004's behavioural score: a bidirectional LSTM over the months of a client's history,
attention over its outputs queried by the client's non-temporal data, that attention's output
beside the non-temporal data, one sigmoid neuron: P(missed payment next month).

Ala'raj, Abbod & Majdalawieh (2021), "Modelling customers credit card behaviour using
bidirectional LSTM neural networks", Journal of Big Data 8:69 (``../shared/papers/004``),
"Proposed model" and its Fig. 4: "the first two layers are bidirectional LSTM, next layer is
Attention. The two last layers are the concatenation of output of Attention layer and the
non-temporal client data. The last layer consists of only one neuron."

What the text leaves open, and the choices here (its Table 1 of hyperparameters is not in the
text we hold):

- sizes: ``hidden`` units per direction in both BiLSTM layers (default 32);
- the attention: dot-product attention (the Keras ``Attention`` layer the paper's "optional
  query input" describes), the query the non-temporal features through one linear layer to the
  BiLSTM's width (the two must match for a dot product), the keys and values the second
  BiLSTM layer's outputs at every month;
- training: binary cross-entropy, Adam, early stopping on a validation slice of the training
  clients.

It has no incremental form: the backward direction reads the history from its newest event, so
one new event changes every backward state; a score re-encodes the whole history
(``training.experiments.challenger_cost`` measures what that costs).

>>> import torch
>>> m = BiLstmScore(temporal_features=3, static_features=8, hidden=4)
>>> m(torch.zeros(2, 6, 3), torch.zeros(2, 8)).shape
torch.Size([2])
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from training.challengers.config import BiLstmConfig
from training.challengers.early_stopping import EarlyStopping
from training.challengers.inference import batched

__all__ = ["BiLstmConfig", "BiLstmScore", "fit_bilstm", "predict_bilstm"]


class BiLstmScore(nn.Module):
    """Inputs: temporal (B, T, F) float32, months oldest first; static (B, S) float32. Output:
    logits (B,) of a missed payment next month."""

    def __init__(self, temporal_features: int, static_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(temporal_features, hidden, num_layers=2, batch_first=True,
                            bidirectional=True)  # fmt: skip
        self.query = nn.Linear(static_features, 2 * hidden)
        self.out = nn.Linear(2 * hidden + static_features, 1)

    def encode(self, temporal: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        """The attention's output beside the static features, (B, 2 * hidden + S)."""
        values, _ = self.lstm(temporal)  # (B, T, 2H): forward and backward at each month
        q = self.query(static)  # (B, 2H)
        weights = torch.softmax(torch.einsum("bth,bh->bt", values, q), dim=1)
        context = torch.einsum("bt,bth->bh", weights, values)
        return torch.cat([context, static], dim=1)

    def forward(self, temporal: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return self.out(self.encode(temporal, static)).squeeze(1)


def fit_bilstm(
    temporal: np.ndarray,
    static: np.ndarray,
    y: np.ndarray,
    cfg: BiLstmConfig,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[BiLstmScore, dict]:
    """Train on clients' temporal (N, T, F) and static (N, S) float32 inputs and labels (N,)
    0/1, early-stopped on ``validation`` (the same three arrays of other clients) or, without
    it, on a ``validation_share`` slice of the clients held out (the weights of the lowest
    validation loss are kept). Returns the model (eval mode) and what training did: epochs
    run, the best epoch, its validation loss, whether the time budget ended it, seconds.
    Raises ValueError on fewer than two clients in either part."""
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if validation is None:
        order = rng.permutation(len(y))
        n_val = max(1, round(cfg.validation_share * len(y)))
        val, train = order[:n_val], order[n_val:]
    else:
        n = len(y)
        temporal = np.concatenate([temporal, validation[0]])
        static = np.concatenate([static, validation[1]])
        y = np.concatenate([y, validation[2]])
        train, val = np.arange(n), np.arange(n, len(y))
    if len(train) < 2 or len(val) < 1:
        raise ValueError(f"too few clients to train on: {len(train)}, to validate on: "
                         f"{len(val)}")  # fmt: skip
    t_all = torch.from_numpy(np.ascontiguousarray(temporal, dtype=np.float32))
    s_all = torch.from_numpy(np.ascontiguousarray(static, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(y, dtype=np.float32))
    model = BiLstmScore(temporal.shape[2], static.shape[1], cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    stop = EarlyStopping(model, cfg.patience, cfg.max_minutes)
    started, epochs_run = time.perf_counter(), 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        shuffled = torch.from_numpy(rng.permutation(train))
        for k in range(0, len(train), cfg.batch):
            idx = shuffled[k : k + cfg.batch]
            opt.zero_grad()
            loss_fn(model(t_all[idx], s_all[idx]), y_all[idx]).backward()
            opt.step()
        epochs_run = epoch
        model.eval()
        with torch.inference_mode():
            val_loss = sum(float(loss_fn(model(t_all[v], s_all[v]), y_all[v])) * len(v)
                           for v in torch.from_numpy(val).split(8192)) / len(val)  # fmt: skip
        if stop.update(val_loss, epoch):
            break
    stop.restore()
    model.eval()
    return model, {"epochs_run": epochs_run, "best_epoch": stop.best_epoch,
                   "validation_loss": round(stop.best_loss, 5),
                   "out_of_time": stop.out_of_time,
                   "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip


def predict_bilstm(model: BiLstmScore, temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """P(missed payment next month) (N,) float64 of clients' inputs (N, T, F), (N, S), in
    batches."""
    return batched(lambda t, s: torch.sigmoid(model(t, s)), temporal, static)
