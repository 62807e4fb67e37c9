"""The Bytewax dataflow: Kafka in, per-user scoring state, Kafka out. Bytewax imports stay here."""

__all__: list[str] = []
