"""The ground floor: what every other floor agrees on, and nothing above it.

The event contract (``events``, ``codec``), the records we emit (``records``) and how the
control topics' records are read (``control``), a loan's life (``loans``), settings, the
thresholds topic, the click archive's format, the file, Kafka and waiting helpers
(``atomic``, ``jsonlines``, ``kafka_io``, ``topics``, ``waiting``) and their metrics
(``metrics``). Imports nothing of ours.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
