"""The trained DeepCredit model run one event at a time, in numpy: what the live flow executes.

``advance(weights, state, event)`` applies ``scorer.steps.plan_step`` and then exactly the
TLSTM steps the torch model (training.core.model.DeepCredit) takes for that event, so feeding a
user's events one by one gives the scores of the batch forward over the whole history
(tested to 1e-5). A post returns its (P(delinquent), P(default)).

A model version may carry a Platt calibration (``ModelWeights.calibration``): the post's
probabilities are then sigmoid(a * logit + b) per target (``calibrate``), while the state's
``y_prev``, the model's own input Y(i-1) at the next steps, stays the raw sigmoid(logit). So the
states, and the model's dynamics, are those of the same weights without calibration.

An event whose id the state remembers (``is_repeat``: one of the user's last ``RECENT_IDS``
event ids) is skipped by ``advance``, the state unchanged and no score, as training keeps only
an id's first copy (``training.core.dataset.first_copies``; the state's memory is bounded, see
``scorer.user_state.UserState``): with the same content a resend of at-least-once delivery,
with other content a conflicting duplicate (``scorer.user_state.Seen``), which the live flow
also dead-letters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from deepcredit.events import ClickEvent
from scorer import fast
from scorer.aggregates import AGGREGATE_FEATURES, GROUPS, aggregate_features
from scorer.features import LoanStep
from scorer.steps import history_at, plan_step
from scorer.timegap import normalise_gap
from scorer.tlstm import TLSTMWeights, tlstm_step
from scorer.user_state import Seen, UserState, event_fingerprint, event_key

__all__ = [
    "ModelWeights",
    "StateVersionError",
    "advance",
    "advance_reference",
    "advance_unseen",
    "calibrate",
    "gap_input",
    "head_input",
    "head_logits",
    "is_repeat",
    "post_head_input",
    "sigmoid",
    "warm_up",
]


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """Everything the streaming scorer needs: three cells, the head, and the model's switches."""

    version: str
    activity: TLSTMWeights
    repay: TLSTMWeights
    state: TLSTMWeights
    head: tuple[tuple[np.ndarray, np.ndarray], ...]  # (W (in, out), b (out,)) per layer
    complementary: bool
    use_activity: bool
    use_repay: bool
    # Platt calibration (2, 2) float32 or None: row 0 the slopes a, row 1 the intercepts b, one
    # column per target (P(delinquent), P(default)); see ``calibrate``.
    calibration: np.ndarray | None = None
    # Wide heads: they read [h_state; aggregates] (``scorer.aggregates``) rather than h_state.
    aggregates: bool = False
    # The training population's mean aggregates (AGGREGATE_FEATURES,) float32, the reference
    # reason codes are attributed against (``scorer.reasons``); None without aggregates.
    reference: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.calibration is not None:
            cal = np.array(self.calibration, dtype=np.float32)  # a copy: the weights are frozen
            if cal.shape != (2, 2) or not np.isfinite(cal).all():
                raise ValueError(
                    f"calibration must be a finite (2, 2) array [slopes; intercepts], got {cal!r}"
                )
            cal.flags.writeable = False
            object.__setattr__(self, "calibration", cal)
        width = self.head[0][0].shape[0] if self.head else 0
        expected = self.hidden_size + (AGGREGATE_FEATURES if self.aggregates else 0)
        if width != expected:
            raise ValueError(
                f"the head reads {width} inputs, the model gives it {expected} "
                f"(hidden size {self.hidden_size}, aggregates {self.aggregates})"
            )
        if self.aggregates:
            ref = np.zeros(AGGREGATE_FEATURES, np.float32) if self.reference is None \
                else np.array(self.reference, dtype=np.float32)  # fmt: skip
            if ref.shape != (AGGREGATE_FEATURES,) or not np.isfinite(ref).all():
                raise ValueError(f"reference must be finite ({AGGREGATE_FEATURES},), got {ref!r}")
            ref.flags.writeable = False
            object.__setattr__(self, "reference", ref)

    @property
    def hidden_size(self) -> int:
        return self.state.hidden_size

    @cached_property
    def packed(self) -> fast.Packed:
        """The weights laid out for the compiled step (``scorer.fast``), built on first use,
        with the reference and the groups of aggregates (``GROUPS``) the reason codes occlude,
        attributing the first head output (P(delinquent), ``scorer.reasons.TARGET``).
        (A frozen dataclass still has a ``__dict__``, where ``cached_property`` keeps it.)"""
        return fast.pack(
            tuple(tuple(getattr(c, f.name) for f in fields(c))
                  for c in (self.activity, self.repay, self.state)),
            self.head, hidden_size=self.hidden_size, complementary=self.complementary,
            use_activity=self.use_activity, use_repay=self.use_repay,
            calibration=self.calibration, aggregates=AGGREGATE_FEATURES if self.aggregates else 0,
            reference=self.reference if self.aggregates else None,
            groups=tuple((g.start, g.stop) for g in GROUPS) if self.aggregates else (),
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        """One uncompressed .npz (no pickle): cells as nested archives, head layers by index."""
        arrays: dict[str, np.ndarray] = {
            "version": np.array(self.version),
            "flags": np.array(
                [self.complementary, self.use_activity, self.use_repay, self.aggregates]
            ),
        }
        for name in ("activity", "repay", "state"):
            arrays[name] = np.frombuffer(getattr(self, name).to_bytes(), dtype=np.uint8)
        for i, (w, b) in enumerate(self.head):
            arrays[f"head_w{i}"], arrays[f"head_b{i}"] = w, b
        if self.calibration is not None:  # absent when None: such files are as before
            arrays["calibration"] = self.calibration
        if self.reference is not None:
            arrays["reference"] = self.reference
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelWeights:
        with np.load(io.BytesIO(data), allow_pickle=False) as a:
            cells = {n: TLSTMWeights.from_bytes(a[n].tobytes()) for n in ("activity", "repay",
                                                                         "state")}  # fmt: skip
            layers = sum(1 for k in a.files if k.startswith("head_w"))
            head = tuple((a[f"head_w{i}"].astype(np.float32), a[f"head_b{i}"].astype(np.float32))
                         for i in range(layers))  # fmt: skip
            # Files written before the aggregates switch hold three flags: no aggregates.
            complementary, use_activity, use_repay, aggregates = (
                *(bool(f) for f in a["flags"][:3]),
                len(a["flags"]) > 3 and bool(a["flags"][3]),
            )
            calibration = a["calibration"] if "calibration" in a.files else None
            reference = a["reference"] if "reference" in a.files else None
            return cls(str(a["version"]), head=head, complementary=complementary,
                       use_activity=use_activity, use_repay=use_repay, calibration=calibration,
                       aggregates=aggregates, reference=reference, **cells)  # fmt: skip


def gap_input(seconds: float) -> np.float32:
    """Normalised in float64 and rounded once, exactly as the dataset builder stores gaps."""
    return np.float32(normalise_gap(seconds))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def head_input(
    w: ModelWeights, h_state: np.ndarray, aggregates: np.ndarray | tuple[float, ...] | None
) -> np.ndarray:
    """What the heads read: ``h_state`` (..., D), with the aggregates (..., A) after it when
    the heads are wide (``ModelWeights.aggregates``), as float32."""
    if not w.aggregates:
        return h_state
    agg = np.asarray(aggregates, np.float32)
    return np.concatenate((h_state, np.broadcast_to(agg, (*h_state.shape[:-1], agg.shape[-1]))),
                          axis=-1)  # fmt: skip


def post_head_input(w: ModelWeights, s: UserState, post: ClickEvent) -> np.ndarray:
    """What the heads read at ``post`` (``head_input``), from the state ``s`` just advanced by
    it: its h_state, and the aggregates ``scorer.steps.plan_step`` gave the post, recomputed
    from the step memory (a pure function of it and the post)."""
    if not w.aggregates:
        return s.hc[4]
    m = s.memory
    agg = aggregate_features(m.ledger, m.rates, *history_at(m, post.ts), post)
    return head_input(w, s.hc[4], agg)


def head_logits(w: ModelWeights, h: np.ndarray) -> np.ndarray:
    """Logits (..., 2) of the heads for their input ``h`` (``head_input``)."""
    z = h
    last = len(w.head) - 1
    for i, (weight, bias) in enumerate(w.head):
        z = z @ weight + bias
        if i < last:
            z = np.maximum(z, 0.0)
    return z  # (2,) logits


def calibrate(w: ModelWeights, logits: np.ndarray) -> np.ndarray:
    """The probabilities the model reports for head logits (..., 2): sigmoid(a * z + b) per
    target with ``w.calibration``, sigmoid(z) without. As ``training.core.model.probabilities``."""
    if w.calibration is None:
        return sigmoid(logits)
    return sigmoid(logits * w.calibration[0] + w.calibration[1])


class StateVersionError(ValueError):
    """A state built by one model version was given to another: its hidden state is meaningless
    there, so scoring it would be silently wrong."""


def is_repeat(s: UserState, event: ClickEvent) -> bool:
    """Whether ``advance`` skips ``event``: its id is among the last ``RECENT_IDS`` ids ``s``
    advanced by (a resend, or a conflicting duplicate: ``UserState.seen``). Depends on the
    state and the event alone."""
    return s.seen(event_key(event.event_id), event_fingerprint(event)) is not Seen.NEW


def advance(w: ModelWeights, s: UserState, event: ClickEvent) -> tuple[float, float] | None:
    """Advance ``s`` in place by one event; for a post, return its two probabilities. A repeat
    (``is_repeat``) changes nothing and returns None. The probabilities are calibrated when
    ``w`` carries a calibration; the state's ``y_prev`` is always the raw one."""
    if s.model_version != w.version:
        raise StateVersionError(
            f"state of user {event.user_id} was built by model {s.model_version}, "
            f"not by {w.version}: rebuild it first"
        )
    key, fingerprint = event_key(event.event_id), event_fingerprint(event)
    if s.seen(key, fingerprint) is not Seen.NEW:
        return None
    return advance_unseen(w, s, event, key, fingerprint)


_NO_INPUT = np.zeros(0, np.float32)


def warm_up(w: ModelWeights) -> None:
    """Pack ``w`` and compile the step (or load it from numba's cache) now, not at the first
    event: a serving process calls it once at start-up."""
    fast.warm_up(w.packed, w.hidden_size)


def advance_unseen(
    w: ModelWeights,
    s: UserState,
    event: ClickEvent,
    key: bytes,
    fingerprint: bytes,
    contributions: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """``advance`` for a caller that has checked the state's model version and that the event
    (id key ``key``, content ``fingerprint``: ``event_key``, ``event_fingerprint``) is new to
    the state (``UserState.seen``): the live flow checks once per event, to count resends and
    dead-letter conflicting duplicates. The TLSTM steps and the heads run compiled
    (``scorer.fast.step``); ``advance_reference`` is the same step in numpy.

    ``contributions``: None, or a (len(GROUPS),) float64 array that a post of a model with
    aggregates fills with its reason codes' occlusion contributions, computed in the same
    compiled call from the head input just built (``scorer.fast``; the numpy reference is
    ``scorer.reasons.contributions`` of ``post_head_input``). Left as it was otherwise."""
    s.remember(key, fingerprint)
    plan = plan_step(s.memory, event)
    kind = 0
    xa = xl = _NO_INPUT
    if plan.activity_x is not None:
        kind = 1
        xa = np.array(plan.activity_x, np.float32)
    xg = _NO_INPUT
    if plan.loan_step is not None:
        kind |= 6 if plan.loan_step is LoanStep.POST else 2
        xl = np.array(plan.loan_x, np.float32)
        if w.aggregates and plan.aggregates is not None:
            xg = np.array(plan.aggregates, np.float32)
    posted, p_delinquent, p_default = fast.step(
        w.packed, s.hc, s.y_prev, xa, plan.activity_gap_s, xl, plan.loan_gap_s,
        plan.post_gap_s, kind, xg, contributions if w.aggregates else None,
    )  # fmt: skip
    return (p_delinquent, p_default) if posted else None


def advance_reference(
    w: ModelWeights, s: UserState, event: ClickEvent, key: bytes, fingerprint: bytes
) -> tuple[float, float] | None:
    """``advance_unseen`` in numpy (``scorer.tlstm.tlstm_step`` per cell): the reference the
    compiled step is tested against (tests/scorer/test_fast.py), not used by the flow."""
    s.remember(key, fingerprint)
    plan = plan_step(s.memory, event)
    hc = s.hc
    if plan.activity_x is not None and w.use_activity:
        x = np.asarray(plan.activity_x, np.float32)
        hc[0], hc[1] = tlstm_step(w.activity, hc[0], hc[1], x,
                                  gap_input(plan.activity_gap_s))  # fmt: skip
    if plan.loan_step is None:
        return None
    if w.use_repay:
        x = np.asarray(plan.loan_x, np.float32)
        if w.complementary:
            x = np.concatenate((x, s.y_prev))
        hc[2], hc[3] = tlstm_step(w.repay, hc[2], hc[3], x,
                                  gap_input(plan.loan_gap_s))  # fmt: skip
    if plan.loan_step is not LoanStep.POST:
        return None
    # The post reads the activity state of its subsequence, then the subsequence restarts.
    h_act = hc[0] if w.use_activity else np.zeros_like(hc[0])
    state_x = np.concatenate((hc[2], h_act))
    hc[4], hc[5] = tlstm_step(w.state, hc[4], hc[5], state_x,
                              gap_input(plan.post_gap_s))  # fmt: skip
    hc[0] = 0.0
    hc[1] = 0.0
    z = head_logits(w, head_input(w, hc[4], plan.aggregates))
    s.y_prev = sigmoid(z).astype(np.float32)  # raw: the model's own input at the next steps
    p = calibrate(w, z)
    return float(p[0]), float(p[1])
