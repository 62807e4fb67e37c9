"""The ground floor: what every other floor agrees on, and nothing above it.

The event contract (``events``, ``codec``), the records we emit (``records``), a loan's life
(``loans``), settings, the thresholds topic, the click archive's format, and the file and Kafka
helpers (``atomic``, ``jsonlines``, ``kafka_io``, ``topics``). Imports nothing of ours.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
