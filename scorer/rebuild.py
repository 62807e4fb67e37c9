"""Rebuild users' states under new weights by replaying their histories, many users at once.

After retraining, old hidden states mean nothing to the new weights; every user's state must
be replayed from their event history before the flow cuts over. ``advance`` does one event of
one user, and at batch 1 numpy's call overhead dominates. Here the histories run in lockstep:
step k advances the k-th event of every user who has one, with one ``tlstm_step`` per TLSTM
over all of them. The per-event bookkeeping (the ledger, the step plan) stays per user; the
math is batched. Same results as ``advance`` event by event (float32 rounding aside; tested):
the states, and each post's probabilities (a cut-over scores the posts the old flow left
unscored with them), calibrated when the weights carry a calibration (the states never are),
and its reason codes (``scorer.reasons``, from the same head inputs).

Repeats follow ``advance``'s rule: an event whose id is among the user's last ``RECENT_IDS``
advanced ids is skipped (no step, no probabilities), a resend or a conflicting duplicate
(other content under the id, ``scorer.user_state.Seen``; listed apart), and each rebuilt
state remembers its user's last ``RECENT_IDS`` ids and their content fingerprints, so the flow
seeded with it goes on telling resends and conflicting duplicates of events before the
cut-over. Like the live flow (and unlike training, which drops every later copy of an id), a
copy further back than that is replayed again. The ledger's handling of a user's disorder
(``scorer.ledger``) is per user and per event, so it is the live flow's too.

>>> # states = rebuild_states(weights, {"u1": events_of_u1, "u2": events_of_u2})
>>> # rebuilt = rebuild(weights, histories); rebuilt.posts["e17"] -> (0.08, 0.02)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from deepcredit.events import ClickEvent
from scorer.features import LoanStep
from scorer.model import ModelWeights, calibrate, gap_input, head_input, head_logits, sigmoid
from scorer.reasons import reasons
from scorer.steps import StepPlan, history_at, plan_step
from scorer.tlstm import tlstm_step
from scorer.user_state import Seen, UserState, event_fingerprint, event_key

__all__ = ["Rebuilt", "rebuild", "rebuild_states"]


@dataclass(frozen=True)
class Rebuilt:
    """What a replay under new weights gives: each user's state after their history, and the
    probabilities the weights give at each post on the way (by event id; a repeat within the
    state's memory of ids is skipped, so its post keeps the first copy's, while a copy beyond
    it is scored again and keeps its last, as the live flow would have scored it twice)."""

    states: dict[str, UserState]
    posts: dict[str, tuple[float, float]]  # event id -> (P(delinquent), P(default))
    repeats: int = 0  # events skipped (``scorer.model.is_repeat``), conflicting ones included
    conflicts: list[ClickEvent] = field(default_factory=list)  # of which with other content
    # event id -> (events before the post, days since the first: ``scorer.steps.history_at``)
    history: dict[str, tuple[int, float]] = field(default_factory=dict)
    # event id -> the post's reason codes (``scorer.reasons``), as the live flow gives them
    reasons: dict[str, list[str]] = field(default_factory=dict)


def rebuild_states(
    w: ModelWeights, histories: Mapping[str, Sequence[ClickEvent]]
) -> dict[str, UserState]:
    """Each user's state after their whole history (in the order given) under weights ``w``."""
    return rebuild(w, histories).states


def rebuild(
    w: ModelWeights,
    histories: Mapping[str, Sequence[ClickEvent]],
    on_step: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Replay every user's history (in the order given) under ``w``, all users in lockstep,
    skipping repeats as ``advance`` does (the conflicting ones in ``Rebuilt.conflicts``).
    ``on_step(n)`` after each lockstep step, with the n events it went through, repeats
    included (progress bars)."""
    users = sorted(histories, key=lambda u: len(histories[u]), reverse=True)  # longest first
    n, d = len(users), w.hidden_size
    states = [UserState.new(w.version, d) for _ in users]
    hc = np.zeros((n, 6, d), np.float32)  # rows: activity h, c; repay h, c; state h, c
    y_prev = np.zeros((n, 2), np.float32)
    lengths = np.array([len(histories[u]) for u in users])
    posts_p: dict[str, tuple[float, float]] = {}
    history: dict[str, tuple[int, float]] = {}
    post_codes: dict[str, list[str]] = {}
    repeats = 0
    conflicts: list[ClickEvent] = []
    for k in range(int(lengths.max(initial=0))):
        running = int((lengths > k).sum())  # users are sorted: the first `running` have event k
        plans: dict[int, StepPlan] = {}  # user index -> plan, for non-repeats only
        for i in range(running):
            event, s = histories[users[i]][k], states[i]
            key, fingerprint = event_key(event.event_id), event_fingerprint(event)
            seen = s.seen(key, fingerprint)
            if seen is Seen.NEW:
                s.remember(key, fingerprint)
                plans[i] = plan_step(s.memory, event)
            elif seen is Seen.CONFLICT:
                conflicts.append(event)
        act = [i for i, p in plans.items() if p.activity_x is not None]
        if act and w.use_activity:
            x = np.array([plans[i].activity_x for i in act], np.float32)
            gap = np.array([gap_input(plans[i].activity_gap_s) for i in act], np.float32)
            hc[act, 0], hc[act, 1] = tlstm_step(w.activity, hc[act, 0], hc[act, 1], x, gap)
        loan = [i for i, p in plans.items() if p.loan_step is not None]
        if loan and w.use_repay:
            x = np.array([plans[i].loan_x for i in loan], np.float32)
            if w.complementary:
                x = np.concatenate((x, y_prev[loan]), axis=1)
            gap = np.array([gap_input(plans[i].loan_gap_s) for i in loan], np.float32)
            hc[loan, 2], hc[loan, 3] = tlstm_step(w.repay, hc[loan, 2], hc[loan, 3], x, gap)
        posts = [i for i in loan if plans[i].loan_step is LoanStep.POST]
        if posts:
            h_act = hc[posts, 0] if w.use_activity else np.zeros((len(posts), d), np.float32)
            x = np.concatenate((hc[posts, 2], h_act), axis=1)
            gap = np.array([gap_input(plans[i].post_gap_s) for i in posts], np.float32)
            hc[posts, 4], hc[posts, 5] = tlstm_step(w.state, hc[posts, 4], hc[posts, 5], x, gap)
            hc[posts, 0] = 0.0
            hc[posts, 1] = 0.0
            agg = np.array([plans[i].aggregates for i in posts], np.float32) if w.aggregates \
                else None  # fmt: skip
            head_in = head_input(w, hc[posts, 4], agg)
            z = head_logits(w, head_in)  # (posts, 2)
            codes = reasons(w, head_in)
            y_prev[posts] = sigmoid(z).astype(np.float32)  # raw, as advance keeps it
            probs = calibrate(w, z)  # calibrated when w is, as advance returns them
            for i, (p_delinquent, p_default), why in zip(posts, probs.tolist(), codes,
                                                         strict=True):  # fmt: skip
                post = histories[users[i]][k]
                posts_p[post.event_id] = (p_delinquent, p_default)
                post_codes[post.event_id] = why
                history[post.event_id] = history_at(states[i].memory, post.ts)
        repeats += running - len(plans)
        if on_step is not None:
            on_step(running)
    for i, s in enumerate(states):
        s.hc = hc[i].copy()
        s.y_prev = y_prev[i].copy()
    return Rebuilt({u: states[i] for i, u in enumerate(users)}, posts_p, repeats, conflicts,
                   history, post_codes)  # fmt: skip
