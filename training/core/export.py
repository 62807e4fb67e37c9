"""Torch model to the numpy weights the live scorer loads (no torch on the serving path), its
calibration (``DeepCredit.calibration``) included when it carries one, and with the aggregates
switch and their reference (``DeepCredit.reference``) when the heads are wide."""

from __future__ import annotations

from torch import nn

from scorer.model import ModelWeights
from training.core.model import DeepCredit, calibration_tensor
from training.core.tlstm import export_numpy

__all__ = ["export_scorer"]


def export_scorer(model: DeepCredit, version: str) -> ModelWeights:
    layers = [m for m in model.head.net if isinstance(m, nn.Linear)]
    head = tuple(
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in layers
    )
    cfg, cal = model.config, model.calibration
    return ModelWeights(
        version=version,
        activity=export_numpy(model.activity),
        repay=export_numpy(model.repay),
        state=export_numpy(model.state),
        head=head,
        complementary=cfg.complementary,
        use_activity=cfg.use_activity,
        use_repay=cfg.use_repay,
        calibration=None if cal is None else calibration_tensor(cal).numpy(),
        aggregates=cfg.use_aggregates,
        reference=model.reference.detach().numpy().copy() if cfg.use_aggregates else None,
    )
