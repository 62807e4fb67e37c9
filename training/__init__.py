"""Offline work, in four rooms over one core; nothing below imports it.

- ``core``: the torch model, its datasets, training, evaluation and the artifact it saves;
- ``benchmark``: the synthetic clickstream calibrated to the paper;
- ``baselines``: the other rows of Table 1 (GBDT, LR, HMM, the paper-literal re-encode);
- ``retraining``: the retraining controller, its champion/challenger gate and recalibration;
- ``experiments``: the scenarios and benchmarks that write ``results/`` (they may run the live
  flow, so they sit on top).
"""

__all__: list[str] = []
