"""The roof: the ``deepcredit`` CLI (``cli``, ``commands``), the local single-node Apache Kafka
broker (KRaft), the fuzzing of every decoder of outside bytes (``fuzz``), and the scripts.
Imports every floor; nothing imports it.
"""

__all__: list[str] = []
