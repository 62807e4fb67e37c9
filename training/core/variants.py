"""Names of the models we compare, kept free of torch so the CLI can list them instantly."""

from __future__ import annotations

__all__ = ["BASELINES", "VARIANTS"]

#: The paper's Table 1 rows that are switches of our one streaming model (ModelConfig fields).
VARIANTS: dict[str, dict[str, bool]] = {
    "deepcredit": {},  # H-TLSTM + CL
    "h-tlstm": {"complementary": False},
    "h-lstm-cl": {"use_time": False},
    "tlstm-activity": {"use_repay": False, "complementary": False},
    "tlstm-repay": {"use_activity": False},
    "deep-only": {"use_aggregates": False},  # heads on h_state alone: no running aggregates
}

#: Models outside the streaming family: the paper-literal re-encode and the classic baselines.
BASELINES = ("reencode", "gbdt", "hmm", "lr")
