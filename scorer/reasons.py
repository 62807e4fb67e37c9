"""Reason codes: the principal reasons behind a score (adverse-action reasons), derived from the
model itself by occlusion of the running aggregates (``scorer.aggregates``) the wide heads read.

**The catalogue** (``CATALOGUE``): one stable code per group of aggregates (``GROUPS``), with a
plain-language statement. Codes never change meaning; a new group gets a new code.

**The method: occlusion against a reference.** For a post with head input [h_state; a], the
contribution of group g is z(h_state, a) - z(h_state, a with group g set to the reference),
where z is the delinquency logit of the heads and the reference is the training population's
mean aggregates (``ModelWeights.reference``, also in the model card). A positive contribution
says: this evidence, as it stands for this user rather than as it stands for a typical
borrower, raises the risk. The reasons are the groups with a contribution above
``MIN_CONTRIBUTION``, largest first, at most ``MAX_REASONS``; ties keep catalogue order.

Why occlusion rather than integrated gradients or SHAP: the groups are few (seven), so exact
occlusion costs one batched pass of the heads over eight rows, with no gradient and no
sampling; it answers the question an adverse-action notice asks ("what, had it been typical,
would have changed the score most") for the group as a whole, nonlinear interactions within
the group included; and it is deterministic, so the live flow, a rebuild and an offline
replay of the same history give the same codes. Integrated gradients in numpy would need the
heads' backward pass and tens of steps per post for a path approximation of the same
quantity. What occlusion does not do: split credit for interactions between groups (each is
measured with the others as they are), and explain the deep part (h_state) itself.

**Where they are computed.** The live flow asks the compiled step for them
(``advance_with_reasons``): the step occludes the head input it has just built, each group's
first-layer pre-activation a low-rank update of the scored row's (``scorer.fast``, "Reason
codes at a post"). ``contributions`` and ``post_reasons`` (numpy, every row through every
layer, the aggregates recomputed from the state) are the reference it is tested against
(equal to float32 rounding, far below ``MIN_CONTRIBUTION``), and what a rebuild and an
offline replay use.

**Which target.** The delinquency logit (P(delinquent), the first head): delinquency is the
better-measured outcome (far more positives than default, which presupposes it), and the
decision's thresholds act on it as on the default probability; the heads share their input,
so the evidence is largely shared.

>>> [c.code for c in CATALOGUE][:3]
['R01', 'R02', 'R03']
>>> STATEMENTS["R04"]
'Little history on the platform'
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepcredit.events import ClickEvent
from scorer.aggregates import GROUPS
from scorer.model import ModelWeights, advance_unseen, head_logits, post_head_input
from scorer.user_state import UserState

__all__ = [
    "CATALOGUE",
    "MAX_REASONS",
    "MIN_CONTRIBUTION",
    "STATEMENTS",
    "TARGET",
    "ReasonCode",
    "advance_with_reasons",
    "contributions",
    "post_reasons",
    "reasons",
    "reasons_of",
]


class ReasonCode(NamedTuple):
    """A stable code and its plain-language statement (the adverse-action reason)."""

    code: str
    statement: str


#: The catalogue, in ``scorer.aggregates.GROUPS`` order (one code per group of aggregates).
CATALOGUE: tuple[ReasonCode, ...] = (
    ReasonCode("R01", "Recent late or missed repayments"),
    ReasonCode("R02", "High unpaid or overdue debt relative to past borrowing"),
    ReasonCode("R03", "Withdrawals soon after posting or receiving a loan"),
    ReasonCode("R04", "Little history on the platform"),
    ReasonCode("R05", "Pattern of account activity in recent weeks"),
    ReasonCode("R06", "Pattern of account activity in recent months"),
    ReasonCode("R07", "Requested amount large compared with past loans"),
)
STATEMENTS: dict[str, str] = dict(CATALOGUE)
assert [c.code for c in CATALOGUE] == [g.code for g in GROUPS], "one code per group, in order"

#: At most this many reasons per score.
MAX_REASONS = 4
#: A group's contribution (delinquency logit) must exceed this to be a reason: well above the
#: float32 rounding by which the compiled and the numpy steps' h_state may differ, so the live
#: flow and a replay agree.
MIN_CONTRIBUTION = 1e-3
#: The head whose logit is attributed: 0, P(delinquent).
TARGET = 0
assert TARGET == 0, "scorer.model packs the compiled occlusion of head output 0"


def contributions(w: ModelWeights, head_in: np.ndarray) -> np.ndarray:
    """(N, G) float64: per post (rows of ``head_in`` (N, D + A), ``scorer.model.head_input``)
    and group (``GROUPS`` order), the delinquency logit minus that logit with the group's
    aggregates set to ``w.reference``. Raises ValueError for weights without aggregates."""
    if not w.aggregates or w.reference is None:
        raise ValueError(f"model {w.version} has no aggregates to attribute")
    head_in = np.atleast_2d(np.asarray(head_in, np.float32))
    n, d = head_in.shape[0], w.hidden_size
    rows = np.repeat(head_in[:, None, :], len(GROUPS) + 1, axis=1)  # (N, G + 1, D + A)
    for k, g in enumerate(GROUPS):
        rows[:, k + 1, d + g.start : d + g.stop] = w.reference[g.start : g.stop]
    z = head_logits(w, rows.reshape(n * (len(GROUPS) + 1), -1))[:, TARGET]
    z = z.reshape(n, len(GROUPS) + 1).astype(np.float64)
    return z[:, :1] - z[:, 1:]


def reasons_of(contribution: np.ndarray) -> list[str]:
    """The codes of one post's contributions (G,): above ``MIN_CONTRIBUTION``, largest first
    (ties in catalogue order), at most ``MAX_REASONS``."""
    order = np.argsort(-contribution, kind="stable")
    return [CATALOGUE[i].code for i in order[:MAX_REASONS]
            if contribution[i] > MIN_CONTRIBUTION]  # fmt: skip


def reasons(w: ModelWeights, head_in: np.ndarray) -> list[list[str]]:
    """The reason codes of each post whose head input is a row of ``head_in`` (N, D + A); an
    empty list each for weights without aggregates (nothing to attribute)."""
    head_in = np.atleast_2d(head_in)
    if not w.aggregates:
        return [[] for _ in range(head_in.shape[0])]
    return [reasons_of(c) for c in contributions(w, head_in)]


def post_reasons(w: ModelWeights, s: UserState, post: ClickEvent) -> list[str]:
    """The reason codes of ``post``, from the state ``s`` just advanced by it
    (``scorer.model.advance``): its head input (``scorer.model.post_head_input``)."""
    if not w.aggregates:
        return []
    return reasons(w, post_head_input(w, s, post))[0]


def advance_with_reasons(
    w: ModelWeights, s: UserState, event: ClickEvent, key: bytes, fingerprint: bytes
) -> tuple[tuple[float, float] | None, list[str]]:
    """``scorer.model.advance_unseen`` (same arguments, same preconditions) and, for a post, its
    reason codes: (probabilities or None, codes; [] for any other event and for weights without
    aggregates). The contributions come from the compiled step, from the head input it scored
    the post on; they equal ``contributions`` of that input to float32 rounding, so the codes
    are ``post_reasons``'s (tests/scorer/test_fast.py). What the live flow's score step runs."""
    if not w.aggregates:
        return advance_unseen(w, s, event, key, fingerprint), []
    contribution = np.empty(len(GROUPS), np.float64)
    p = advance_unseen(w, s, event, key, fingerprint, contribution)
    return p, ([] if p is None else reasons_of(contribution))
