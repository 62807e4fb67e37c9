"""Streaming math: advance a user's TLSTM state by one event and score a loan post (numpy).

No torch here: the live scorer runs on numpy alone.
"""

from scorer.timegap import normalise_gap
from scorer.tlstm import TLSTMWeights, tlstm_step

__all__ = ["TLSTMWeights", "normalise_gap", "tlstm_step"]
