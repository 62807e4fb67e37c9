"""Prometheus metrics of the live flow, under conventional names (``_total`` counters, seconds).

They live in prometheus-client's default registry, which also holds Bytewax's own
``bytewax_kafka_consumer_lag`` gauge (per clicks partition) and the ground floor's metrics
(``deepcredit.metrics``: control records skipped), so one endpoint serves them all
(``dataflow.endpoint``, on /metrics).
The drift metrics come from the one worker that holds the drift monitors (in a cluster, one
process's endpoint has them).
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram, Info

from deepcredit.records import DeadLetterReason, Decision

__all__ = [
    "CLICKS_NEXT_OFFSET",
    "CLICKS_PARTITIONS",
    "DEAD_LETTERS",
    "DECISIONS",
    "DRIFT_ALERTS",
    "DRIFT_SAMPLE_SHARE",
    "DRIFT_USERS_WATCHED",
    "DUPLICATES",
    "EVENTS",
    "EVENT_TO_SCORE",
    "HELD_GIVEN_UP",
    "MODEL",
    "NOT_SCORED",
    "OUT_OF_ORDER",
    "PROCESSING",
    "READY",
    "ROLLING_AUC",
    "SCORES",
    "THRESHOLDS_APPLY_LATENCY",
    "THRESHOLDS_VERSION",
    "USERS",
    "observe_many",
]

# Latency buckets from 100 µs to 30 s: a step is sub-millisecond, a score waits for an epoch.
_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0, 30.0)  # fmt: skip

EVENTS = Counter("deepcredit_events_consumed", "Click events accepted, by activity", ["activity"])
DEAD_LETTERS = Counter("deepcredit_dead_letters", "Messages sent to the dead-letter topic",
                       ["reason"])  # fmt: skip
SCORES = Counter("deepcredit_scores", "Loan posts scored")
NOT_SCORED = Counter("deepcredit_not_scored",
                     "Loan posts that got a not_scored record on the risk topic instead of a "
                     "score (dead-lettered or refused), by dead-letter reason", ["reason"])
DUPLICATES = Counter("deepcredit_duplicate_events",
                     "Click events skipped as resends (event id among the user's last ones; "
                     "at-least-once delivery): no state change, no score, by activity",
                     ["activity"])  # fmt: skip
OUT_OF_ORDER = Counter("deepcredit_out_of_order_events",
                       "Click events earlier than an event of the same user already read (a "
                       "user's events on two partitions): time gaps taken as 0, loan events "
                       "held for their loan, by activity", ["activity"])  # fmt: skip
HELD_GIVEN_UP = Counter("deepcredit_held_loan_events_given_up",
                        "Borrows, repays and missed payments held for a loan that did not "
                        "arrive within the bound (scorer.ledger.HOLD_BOUND), then dropped")
DECISIONS = Counter("deepcredit_decisions", "Decisions on scored posts", ["decision"])
PROCESSING = Histogram("deepcredit_processing_seconds",
                       "Time to advance a user's state by one event (model step included)",
                       buckets=_BUCKETS)  # fmt: skip
EVENT_TO_SCORE = Histogram("deepcredit_event_to_score_seconds",
                           "From a post's arrival on the clicks topic (Kafka timestamp) to its "
                           "score being handed to the producer", buckets=_BUCKETS)  # fmt: skip
USERS = Gauge("deepcredit_users_in_state", "Users with a scoring state in this process")
CLICKS_PARTITIONS = Gauge("deepcredit_clicks_partitions",
                          "Clicks partitions this process reads now")  # fmt: skip
CLICKS_NEXT_OFFSET = Gauge("deepcredit_clicks_next_offset",
                           "The next offset this process reads from each clicks partition (as of "
                           "its last batch)", ["partition"])  # fmt: skip
READY = Gauge("deepcredit_ready",
              "1 while /readyz answers ready (model loaded, a clicks partition read, thresholds "
              "caught up), else 0")  # fmt: skip
MODEL = Info("deepcredit_model", "The model this process scores with")
THRESHOLDS_VERSION = Gauge("deepcredit_thresholds_version", "Version of the thresholds in use")
THRESHOLDS_APPLY_LATENCY = Gauge("deepcredit_thresholds_apply_latency_seconds",
                                 "From the last threshold change being written to this process "
                                 "applying it")  # fmt: skip

DRIFT_ALERTS = Counter("deepcredit_drift_alerts", "Drift alerts written, by monitor and signal",
                       ["monitor", "signal"])  # fmt: skip
ROLLING_AUC = Gauge("deepcredit_drift_rolling_auc",
                    "AUC of the scores against realised labels over the last labelled loans "
                    "(the performance monitor's window), by target", ["target"])  # fmt: skip
DRIFT_SAMPLE_SHARE = Gauge("deepcredit_drift_sample_share",
                           "Share of users the drift monitors watch (1: all; halves each time "
                           "they reach --drift-max-users)")  # fmt: skip
DRIFT_USERS_WATCHED = Gauge("deepcredit_drift_users_watched",
                            "Users the drift monitors keep state for")  # fmt: skip

# Every decision and dead-letter reason is exported from the start, at 0: a series that only
# appears at its first increment is invisible to rate() and to a share against yesterday's, so
# the first declines or dead letters of a kind would pass the alerting rules unseen.
for _decision in Decision:
    DECISIONS.labels(_decision.value)
for _reason in DeadLetterReason:
    DEAD_LETTERS.labels(_reason.value)


def observe_many(histogram: Histogram, seconds: float, n: int) -> None:
    """``histogram.observe(seconds)`` ``n`` times (n >= 1) in one update: the same count, sum
    and buckets. Why: the flow counts per batch, and ``observe`` scans its buckets in Python.
    Relies on prometheus-client's Histogram fields (``_upper_bounds``, ``_buckets``, ``_sum``),
    pinned below 1; tests/dataflow/test_steps.py checks it against ``observe``."""
    histogram._raise_if_not_observable()
    histogram._sum.inc(seconds * n)
    histogram._buckets[bisect_left(histogram._upper_bounds, seconds)].inc(n)
