"""Running the pieces: a local single-node Apache Kafka broker (KRaft) and its topics."""

__all__: list[str] = []
