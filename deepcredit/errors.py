"""The one error the deploy helpers raise: its message tells the operator what to do."""

__all__ = ["DeployError"]


class DeployError(RuntimeError):
    """Something outside our code is missing or in the way (Java, Maven, a port, the broker)."""
