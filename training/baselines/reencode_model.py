"""DeepCredit as the paper writes it, over one re-encode window
(``training.baselines.reencode_data``): the baseline the streaming
``training.core.model.DeepCredit`` is measured against.

Per window of T loans, from zero states each time:

1. the activity TLSTM over each subsequence A_i (eq. 3), all subsequences of the batch side by
   side (a subsequence shared by several windows is encoded once);
2. the repayment TLSTM over [p_i; Y(i−1)] (eqs. 2 and 5), Y(i−1) being the heads' prediction at
   the previous slot of the same window (zero before the first);
3. the state-level TLSTM over [h_p_i; h_a_i] (eq. 4) and the FCN heads (256-128-64) giving
   Y_i = (P(delinquent), P(default)) at every slot; Y_T scores the window's post.

Y(i−1) enters detached, as in the streaming model: it is a given input (a stand-in for an
outcome not known yet), supervised by eq. 6's past-loan term, not a hidden channel that the
last-step loss may bend away from a probability; and the two models then differ only in
re-encoding versus streaming. Loss (eq. 6, λ‖θ‖² left to the optimiser's weight decay):
L(Y_T, o_T) + α · mean_{i<T} L(Y_i, o_i) per target, summed over the two targets, where o_i is
loan i's final label and the mean runs over the real, labelled past slots of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorer.features import ACTIVITY_FEATURES
from training.baselines.reencode_data import REPAY_FEATURES
from training.core.model import TARGETS, Head, ModelConfig, hierarchy_pass
from training.core.tlstm import TLSTMCell, final_states

__all__ = ["ReencodeDeepCredit", "window_loss"]


class ReencodeDeepCredit(nn.Module):
    """The hierarchical TLSTM with complementary layer over re-encode windows. Honours
    ``ModelConfig``'s hidden_size, head_sizes and the ablation switches."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, t = config.hidden_size, config.use_time
        extra = len(TARGETS) if config.complementary else 0
        self.activity = TLSTMCell(ACTIVITY_FEATURES, d, t)
        self.repay = TLSTMCell(REPAY_FEATURES + extra, d, t)
        self.state = TLSTMCell(2 * d, d, t)
        self.head = Head(d, config.head_sizes)

    def forward(
        self, b: dict[str, Tensor], *, alpha: float = 0.5, targets: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, 2) at every slot (the last scores the window's post) and eq. 6's loss
        (None without targets or when nothing in the batch is labelled)."""
        h_act = self._activity_pass(b)  # (B, T, D)
        logits = self._window_pass(b, h_act)  # (B, T, 2)
        loss = window_loss(logits, b["labels"], alpha) if targets else None
        return logits, loss

    def _activity_pass(self, b: dict[str, Tensor]) -> Tensor:
        """h_a of every slot (B, T, D): the last state of the slot's subsequence, zero for an
        empty one."""
        x, gap, length = b["sub_x"], b["sub_gap"], b["sub_len"]  # (S, L, I), (S, L), (S,)
        slot_sub = b["slot_sub"]  # (B, T)
        d = self.config.hidden_size
        if self.config.use_activity:
            h, _ = final_states(self.activity, x, gap, length)  # (S, D)
        else:
            h = torch.zeros(x.shape[0], d, dtype=x.dtype)
        h_sub = torch.cat((h, torch.zeros(1, d, dtype=h.dtype)))  # (S + 1, D): row S is "none"
        return h_sub[torch.where(slot_sub >= 0, slot_sub, x.shape[0])]  # (B, T, D)

    def _window_pass(self, b: dict[str, Tensor], h_act: Tensor) -> Tensor:
        mask = b["mask"]  # (B, T): real slots; both TLSTMs step on each loan of the window
        return hierarchy_pass(self, b["repay_x"], b["repay_gap"], b["repay_gap"], h_act,
                              repay_mask=mask, state_mask=mask)  # fmt: skip


def window_loss(logits: Tensor, labels: Tensor, alpha: float) -> Tensor | None:
    """Eq. 6 for logits and labels (B, T, 2), NaN where unlabelled or padded: per target, the
    mean log loss of the last slot plus α times that of the earlier slots; summed over targets."""
    terms = []
    for k in range(len(TARGETS)):
        for part, weight in ((slice(-1, None), 1.0), (slice(None, -1), alpha)):
            y, z = labels[:, part, k], logits[:, part, k]  # (B, T') each
            known = ~torch.isnan(y)
            if weight > 0 and known.any():
                terms.append(weight * F.binary_cross_entropy_with_logits(z[known], y[known]))
    return torch.stack(terms).sum() if terms else None
