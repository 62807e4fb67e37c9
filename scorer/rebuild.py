"""Rebuild users' states under new weights by replaying their histories.

After retraining, old hidden states mean nothing to the new weights; every user's state must
be replayed from their event history before the flow cuts over. ``advance`` does one event of
one user, with the bookkeeping (``scorer.steps.plan_step``: the ledger, the aggregates, the
features) in Python, most of its cost. ``rebuild`` reads each history once into columns and
replays it in one compiled loop (``scorer.replay``): the bookkeeping written out over arrays
and the live step's compiled model step, user after user. ``rebuild_lockstep`` is the
reference it is tested against: the bookkeeping in Python, the math batched across users in
lockstep (step k advances the k-th event of every user who has one, one ``tlstm_step`` per
TLSTM over all of them). Both give what ``advance`` gives event by event (the step memory
exactly, the floats to float32 rounding; tested): the states, and each post's probabilities
(a cut-over scores the posts the old flow left unscored with them), calibrated when the
weights carry a calibration (the states never are), and its reason codes
(``scorer.reasons``, from the same head inputs).

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

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from deepcredit.events import Activity, ClickEvent
from scorer import fast
from scorer import replay as compiled
from scorer.aggregates import AGGREGATE_FEATURES, Rates
from scorer.features import LoanStep
from scorer.ledger import Held, Ledger, OpenLoan
from scorer.model import ModelWeights, calibrate, gap_input, head_input, head_logits, sigmoid
from scorer.reasons import reasons, reasons_of
from scorer.steps import StepMemory, StepPlan, history_at, plan_step
from scorer.tlstm import tlstm_step
from scorer.user_state import RECENT_IDS, Seen, UserState, event_fingerprint, event_key

__all__ = ["Rebuilt", "rebuild", "rebuild_lockstep", "rebuild_states"]


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
    """Each user's state after their whole history (in the order given) under weights ``w``
    (``rebuild`` without the posts' reason codes, which the states do not need)."""
    return rebuild(w, histories, with_reasons=False).states


#: Users are replayed in chunks of about this many events: the columns and outputs of one
#: chunk are in memory at a time, and ``on_step`` is called after each.
CHUNK_EVENTS = 65_536
_ACTIVITY_INDEX = {a: i for i, a in enumerate(Activity)}
_ACTIVITIES = tuple(Activity)
_ACTIVITY, _EVENT_ID, _LOAN_ID, _TS, _AMOUNT = (operator.attrgetter(f) for f in (
    "activity", "event_id", "loan_id", "ts", "amount"))  # fmt: skip


def rebuild(
    w: ModelWeights,
    histories: Mapping[str, Sequence[ClickEvent]],
    on_step: Callable[[int], None] | None = None,
    *,
    with_reasons: bool = True,
) -> Rebuilt:
    """Replay every user's history (in the order given) under ``w``, skipping repeats as
    ``advance`` does (the conflicting ones in ``Rebuilt.conflicts``, in each user's order).
    The bookkeeping and the model step run compiled over columns (``scorer.replay``), a chunk
    of users (``CHUNK_EVENTS``) at a time; ``on_step(n)`` after each chunk, with the n events
    it went through, repeats included (progress bars). ``with_reasons=False``: no reason codes
    (``Rebuilt.reasons`` empty), which cost more than the rest at a post (the occlusion runs the
    heads once per group). ``rebuild_lockstep`` is the same in Python and numpy."""
    out = Rebuilt({}, {})
    repeats = 0
    chunk: list[str] = []
    size = 0
    for user, events in histories.items():
        chunk.append(user)
        size += len(events)
        if size >= CHUNK_EVENTS:
            repeats += _rebuild_chunk(w, histories, chunk, out, with_reasons)
            if on_step is not None:
                on_step(size)
            chunk, size = [], 0
    if chunk:
        repeats += _rebuild_chunk(w, histories, chunk, out, with_reasons)
        if on_step is not None:
            on_step(size)
    return Rebuilt(out.states, out.posts, repeats, out.conflicts, out.history, out.reasons)


def _rebuild_chunk(
    w: ModelWeights, histories: Mapping[str, Sequence[ClickEvent]], users: list[str],
    out: Rebuilt, with_reasons: bool,
) -> int:  # fmt: skip
    """Replay ``users`` (``scorer.replay.replay``) and add what it gives to ``out``'s states,
    posts, history, reasons and conflicts. Returns the repeats skipped."""
    events = [e for u in users for e in histories[u]]
    n_users, d = len(users), w.hidden_size
    off = np.zeros(n_users + 1, np.int64)
    np.cumsum([len(histories[u]) for u in users], out=off[1:])
    # One pass per field, each a loop in C (map, fromiter), and no tuple per event, so
    # nothing for the cyclic GC to scan. Ids become their place among the distinct ids.
    n_events = len(events)
    act_a = np.fromiter(map(_ACTIVITY_INDEX.__getitem__, map(_ACTIVITY, events)), np.int64,
                        n_events)  # fmt: skip
    eid_a = _places(list(map(_EVENT_ID, events)), n_events)[1]
    loan_names, loan_a = _places([None, *map(_LOAN_ID, events)], n_events + 1)
    loan_a = loan_a[1:] - 1  # no loan: -1
    loan_names = loan_names[1:]
    ts_a = np.fromiter(map(_TS, events), np.float64, n_events)
    amount_a = np.fromiter(map(_AMOUNT, events), np.float64, n_events)
    # Rate and term matter at posts only (``scorer.features.loan_features``).
    rate_a = np.zeros(n_events)
    term_a = np.full(n_events, -1, np.int64)
    for i in np.flatnonzero(act_a == _ACTIVITY_INDEX[Activity.POST]).tolist():
        e = events[i]
        rate_a[i] = e.rate or 0.0
        term_a[i] = -1 if e.term_days is None else e.term_days
    # A user's open loans need at most a slot per post: only a post opens one.
    posts_before = np.concatenate(([0], np.cumsum(act_a == 0)))
    loan_off = np.concatenate(([0], np.cumsum(posts_before[off[1:]] - posts_before[off[:-1]])))
    n_slots, n_posts = int(loan_off[-1]), int(posts_before[-1])
    hc = np.zeros((n_users, 6, d), np.float32)
    y_prev = np.zeros((n_users, 2), np.float32)
    mf = np.full((n_users, compiled.MEMORY_FLOATS), np.nan)
    mf[:, 5] = 0.0  # the quick withdrawals' count
    lf = np.full((n_users, compiled.LEDGER_FLOATS), np.nan)
    lf[:, 1] = 0.0  # the delays' sum
    li = np.zeros((n_users, compiled.LEDGER_INTS), np.int64)
    counts = np.zeros((n_users, 2, len(Activity)))
    recent = np.zeros((n_users, RECENT_IDS), np.int64)
    loans = (np.zeros(n_slots, np.int64), np.zeros(n_slots), np.zeros(n_slots), np.zeros(n_slots),
             np.zeros(n_slots, np.bool_), np.zeros(n_slots, np.bool_))  # fmt: skip
    held = (np.zeros((n_users, compiled.HELD_SLOTS)),
            np.zeros((n_users, compiled.HELD_SLOTS), np.int64),
            np.zeros((n_users, compiled.HELD_SLOTS), np.int64))  # fmt: skip
    repeat_of = np.full(len(events), -1, np.int64)
    post_of = np.full(len(events), -1, np.int64)
    probs = np.zeros((n_posts, 2))
    history_n = np.zeros(n_posts, np.int64)
    history_days = np.zeros(n_posts)
    head_in = np.zeros((n_posts, d + (AGGREGATE_FEATURES if w.aggregates else 0)), np.float32)
    packed = w.packed
    scored = compiled.replay(
        packed.flat, packed.table, d, w.aggregates, off, ts_a, act_a, amount_a, rate_a, term_a,
        eid_a, loan_a, loan_off, hc, y_prev, mf, lf, li, counts, recent, loans, held, repeat_of,
        post_of, probs, history_n, history_days, head_in,
    )  # fmt: skip
    repeated = np.flatnonzero(repeat_of >= 0).tolist()
    for i in repeated:
        e = events[i]
        if event_fingerprint(e) != event_fingerprint(events[repeat_of[i]]):
            out.conflicts.append(e)
    codes = _reasons(w, head_in[:scored]) if with_reasons and scored else None
    p, hn, hd = probs.tolist(), history_n.tolist(), history_days.tolist()
    for i in np.flatnonzero(post_of >= 0).tolist():
        k, event_id = int(post_of[i]), events[i].event_id
        out.posts[event_id] = (p[k][0], p[k][1])
        out.history[event_id] = (hn[k], hd[k])
        if codes is not None:
            out.reasons[event_id] = codes[k]
    l_id, l_amount, l_due, l_post, l_funded, l_late = (a.tolist() for a in loans)
    h_ts, h_act, h_loan = (a.tolist() for a in held)
    mfl, lfl, lil, cl = mf.tolist(), lf.tolist(), li.tolist(), counts.tolist()
    for u, user in enumerate(users):
        m, lg, n = mfl[u], lfl[u], lil[u]
        first = int(loan_off[u])
        ledger = Ledger(
            {loan_names[l_id[j]]: OpenLoan(l_amount[j], l_due[j], l_post[j], l_funded[j],
                                           l_late[j]) for j in range(first, first + n[7])},
            n[1], n[2], _none(lg[0]),
            [Held(h_ts[u][j], _ACTIVITIES[h_act[u][j]], loan_names[h_loan[u][j]])
             for j in range(n[8])],
            n[3], n[4], n[5], n[6], lg[1], _none(lg[2]),
        )  # fmt: skip
        memory = StepMemory(ledger, _none(m[0]), _none(m[1]), _none(m[2]), n[0], _none(m[3]),
                            Rates(_none(m[4]), cl[u][0], cl[u][1], m[5], _none(m[6])))  # fmt: skip
        remembered = [events[r] for r in recent[u, : n[9]].tolist()]
        out.states[user] = UserState(
            w.version, memory, hc[u].copy(), y_prev[u].copy(),
            b"".join(event_key(e.event_id) for e in remembered),
            b"".join(event_fingerprint(e) for e in remembered),
        )  # fmt: skip
    return len(repeated)


def _reasons(w: ModelWeights, head_in: np.ndarray) -> list[list[str]]:
    """``scorer.reasons.reasons`` with the contributions computed compiled, as the live flow's
    step computes them (``scorer.fast.contributions``: equal to the numpy ones to float32
    rounding, far below ``MIN_CONTRIBUTION``; tests/scorer/test_fast.py). In the same runs
    of ``deepcredit bench rebuild`` the posts' reasons cost about 1.1 s this way against
    1.6 s by the numpy reference in one batch."""
    if not w.aggregates:
        return [[] for _ in range(head_in.shape[0])]
    return [reasons_of(c) for c in fast.contributions(w.packed, head_in)]


def _places(values: list, n: int) -> tuple[list, np.ndarray]:
    """The distinct values in order of appearance, and each value's place among them (n,)."""
    distinct = list(dict.fromkeys(values))
    place = dict(zip(distinct, range(len(distinct)), strict=True))
    return distinct, np.fromiter(map(place.__getitem__, values), np.int64, n)


def _none(x: float) -> float | None:
    return None if x != x else x  # NaN stands for None in the compiled arrays


def rebuild_lockstep(
    w: ModelWeights,
    histories: Mapping[str, Sequence[ClickEvent]],
    on_step: Callable[[int], None] | None = None,
) -> Rebuilt:
    """``rebuild`` with the bookkeeping in Python and the math batched across users in
    lockstep: the reference ``rebuild`` is tested against (tests/scorer/test_rebuild.py).
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
