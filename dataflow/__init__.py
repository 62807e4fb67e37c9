"""The Bytewax dataflow and its runtime: Kafka in, per-user scoring state, Kafka out, metrics,
live thresholds, recovery. Bytewax imports stay here. Imports ``state``, ``scorer`` and
``deepcredit``.
"""

__all__: list[str] = []
