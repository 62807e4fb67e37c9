"""Paper 003's feature extractor and classifier: a ResNet of 1-D convolutions over the static
features with spatial attention, a BiLSTM over the months with temporal attention, a fully
connected layer fusing the two, and XGBoost with a focal loss on the fused features.

Liu et al., ``../shared/papers/003``, 3.2.1 ("Tabular data can be divided into multiple 1D
vectors as the input of CNN"; residual shortcuts; "BiLSTM is used for modeling dynamic
features"), 3.2.2 (spatial attention as in CBAM, Woo et al. 2018: average and max pooling
across channels, concatenated, a 1-D convolution and a sigmoid, M_s(X) = σ(conv([AvgPool(X);
MaxPool(X)])); temporal attention: u_t = tanh(W h_t + b), α_t = softmax(u_t · u_w), s = Σ α_t
h_t), 3.2.3 (the two features fused linearly, XGBoost with the focal loss, formula 8), 4.2 and
its Table 2 as the text gives it (convolutions of 16, 32, 64, 128 filters, dropout 0.5, ReLU,
Adam, learning rate 1e-4).

What the text leaves open, chosen here: each of the four widths is one residual block (two
convolutions of width 3 with batch norm, a 1x1 convolution on the shortcut when the width
changes); the spatial attention's convolution has width 7 (CBAM's); after it the feature map
is averaged over positions; the BiLSTM has ``lstm_units`` per direction; the network is
trained end to end with a sigmoid head on the fused layer and binary cross-entropy (early
stopping on the validation clients' loss), then the fused layer's activations (in eval mode)
are XGBoost's inputs, its margins starting from the training rows' log-odds. The focal loss
(Lin et al. 2017): FL = −α y (1 − p)^γ log p − (1 − α)(1 − y) p^γ log(1 − p), p = σ(margin);
its gradient and Hessian with respect to the margin are derived in ``focal_grad_hess`` (the
Hessian, negative for some confident rows when γ > 0, is floored at 1e-6 so each Newton step of
the trees is a
descent step).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.challengers.config import ResNetLstmConfig
from training.challengers.early_stopping import EarlyStopping
from training.challengers.inference import batched

__all__ = [
    "ResNetLstm",
    "SpatialAttention",
    "TemporalAttention",
    "features",
    "fit_focal_xgboost",
    "fit_resnetlstm",
    "focal_grad_hess",
    "focal_loss",
    "predict_focal_xgboost",
    "predict_resnetlstm",
]

_HESSIAN_FLOOR = 1e-6


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, 3, padding=1), nn.BatchNorm1d(cout), nn.ReLU(),
            nn.Conv1d(cout, cout, 3, padding=1), nn.BatchNorm1d(cout))  # fmt: skip
        self.shortcut = nn.Identity() if cin == cout else nn.Conv1d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class SpatialAttention(nn.Module):
    """CBAM's spatial attention on a feature map (B, C, L): the map times
    σ(conv([mean over channels; max over channels])) (B, 1, L)."""

    def __init__(self, width: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 1, width, padding=width // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class TemporalAttention(nn.Module):
    """Attention over time steps of hidden states (B, T, H): u_t = tanh(W h_t + b), α =
    softmax_t(u_t · u_w), returns Σ_t α_t h_t (B, H)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(hidden, hidden)
        self.context = nn.Parameter(torch.randn(hidden) / hidden**0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(torch.tanh(self.project(h)) @ self.context, dim=1)
        return (alpha.unsqueeze(2) * h).sum(dim=1)


class ResNetLstm(nn.Module):
    """Temporal (B, T, n_temporal) and static (B, n_static) inputs → the default's logit (B,);
    ``fuse`` gives the fused features (B, cfg.fused) XGBoost sees."""

    def __init__(self, n_temporal: int, cfg: ResNetLstmConfig) -> None:
        super().__init__()
        widths = (1, *cfg.filters)
        self.resnet = nn.Sequential(*(_ResidualBlock(a, b) for a, b in itertools.pairwise(widths)))
        self.spatial = SpatialAttention()
        self.lstm = nn.LSTM(n_temporal, cfg.lstm_units, batch_first=True, bidirectional=True)
        self.temporal = TemporalAttention(2 * cfg.lstm_units)
        self.fusion = nn.Linear(cfg.filters[-1] + 2 * cfg.lstm_units, cfg.fused)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.fused, 1)

    def fuse(self, temporal: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        local = self.spatial(self.resnet(static.unsqueeze(1))).mean(dim=2)
        h, _ = self.lstm(temporal)
        return F.relu(self.fusion(torch.cat([local, self.temporal(h)], dim=1)))

    def forward(self, temporal: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.fuse(temporal, static))).squeeze(1)


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_resnetlstm(train: Arrays, val: Arrays, cfg: ResNetLstmConfig,
                   progress: Callable[[str], None] = lambda _: None
                   ) -> tuple[ResNetLstm, dict]:  # fmt: skip
    """Train on ``train`` = (temporal (N, T, F), static (N, S), y (N,)) with binary
    cross-entropy, Adam at ``cfg.lr``, stopping after ``cfg.patience`` epochs without a lower
    loss on ``val``; returns the weights of the best epoch (eval mode) and {epochs, best_epoch,
    val_loss, seconds}."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    t, s, y = (torch.as_tensor(a, dtype=torch.float32) for a in train)
    vt, vs, vy = (torch.as_tensor(a, dtype=torch.float32) for a in val)
    model = ResNetLstm(t.shape[2], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    stop = EarlyStopping(model, cfg.patience, cfg.max_minutes)
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for batch in torch.randperm(len(y), generator=gen).split(cfg.batch):
            if len(batch) < 2:  # batch norm needs two rows
                continue
            loss = F.binary_cross_entropy_with_logits(model(t[batch], s[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.binary_cross_entropy_with_logits(
                model(vt[v], vs[v]), vy[v], reduction="sum").item()
                for v in torch.arange(len(vy)).split(4096)) / max(1, len(vy))  # fmt: skip
        progress(f"ResNet-LSTM epoch {epoch}: validation loss {val_loss:.4f}")
        if stop.update(val_loss, epoch):
            break
    stop.restore()
    model.eval()
    return model, {"epochs": epoch, "best_epoch": stop.best_epoch,
                   "val_loss": round(stop.best_loss, 5), "out_of_time": stop.out_of_time,
                   "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def predict_resnetlstm(model: ResNetLstm, temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """The network's own P(default) (N,) from its sigmoid head."""
    return 1 / (1 + np.exp(-batched(model.eval(), temporal, static)))


def features(model: ResNetLstm, temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """The fused features (N, cfg.fused) XGBoost sees."""
    return batched(model.eval().fuse, temporal, static)


def focal_loss(margin: np.ndarray, y: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    """The focal loss of each row (N,) at ``margin`` (N,) (p = σ(margin)) for labels ``y``
    (N,) 0/1: −α y (1−p)^γ log p − (1−α)(1−y) p^γ log(1−p). γ = 0, α = 0.5: half the
    cross-entropy.

    >>> round(float(focal_loss(np.array([0.0]), np.array([1]), 0.5, 0.0)[0] / np.log(2)), 6)
    0.5
    """
    p = 1 / (1 + np.exp(-margin))
    log_p, log_q = -np.logaddexp(0, -margin), -np.logaddexp(0, margin)
    return -alpha * y * (1 - p) ** gamma * log_p - (1 - alpha) * (1 - y) * p**gamma * log_q


def focal_grad_hess(margin: np.ndarray, y: np.ndarray, alpha: float, gamma: float
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The focal loss's first and second derivatives with respect to the margin (N,) each.
    With p = σ(z), q = 1 − p, dp/dz = pq: for y = 1, dL/dz = α q^γ (γ p log p − q) and
    d²L/dz² = α q^γ p (q (γ (log p + 1) + 1) − γ (γ p log p − q)); for y = 0 the same with
    (α, p, q) → (1 − α, q, p) and the gradient's sign flipped. The Hessian is floored at 1e-6."""
    z = np.asarray(margin, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def positive(a: float, p: np.ndarray, q: np.ndarray, log_p: np.ndarray):
        b = gamma * p * log_p - q
        grad = a * q**gamma * b
        hess = a * q**gamma * p * (q * (gamma * (log_p + 1) + 1) - gamma * b)
        return grad, hess

    p, q = 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))
    log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    g1, h1 = positive(alpha, p, q, log_p)
    g0, h0 = positive(1 - alpha, q, p, log_q)
    grad = y * g1 - (1 - y) * g0
    hess = y * h1 + (1 - y) * h0
    return grad, np.maximum(hess, _HESSIAN_FLOOR)


def fit_focal_xgboost(
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    alpha: float,
    gamma: float,
    seed: int,
    rounds: int = 2000,
    patience: int | None = 100,
):
    """XGBoost trained on (``x`` (N, F), ``y`` (N,)) with the focal loss as its objective
    (every margin starting from the training rows' log-odds of a default, as XGBoost's own
    logistic objective starts from its intercept; kept in the booster's attribute
    ``base_margin``), learning rate 0.05, depth 4, 80% row and column subsampling, up to
    ``rounds`` rounds stopped after ``patience`` without a better AUC on (``xv``, ``yv``) (None:
    never stopped); one thread. The booster keeps its best round (``best_iteration``)."""
    import xgboost

    def objective(margin: np.ndarray, dtrain: xgboost.DMatrix):
        return focal_grad_hess(margin, dtrain.get_label(), alpha, gamma)

    prior = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
    base = float(np.log(prior / (1 - prior)))
    dtrain = xgboost.DMatrix(x, label=y, base_margin=np.full(len(y), base))
    dval = xgboost.DMatrix(xv, label=yv, base_margin=np.full(len(yv), base))
    params = {"eta": 0.05, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8,
              "tree_method": "hist", "nthread": 1, "seed": seed, "eval_metric": "auc",
              "disable_default_eval_metric": 0}  # fmt: skip
    booster = xgboost.train(params, dtrain, rounds, evals=[(dval, "val")], obj=objective,
                            early_stopping_rounds=patience, verbose_eval=False)  # fmt: skip
    booster.set_attr(base_margin=repr(base))
    return booster


def predict_focal_xgboost(booster, x: np.ndarray) -> np.ndarray:
    """P(default) (N,): the sigmoid of the booster's margin at its best round, from the base
    margin it was trained from."""
    import xgboost

    d = xgboost.DMatrix(x, base_margin=np.full(len(x), float(booster.attr("base_margin"))))
    margin = booster.predict(d, output_margin=True,
                             iteration_range=(0, booster.best_iteration + 1))  # fmt: skip
    return 1 / (1 + np.exp(-margin))
