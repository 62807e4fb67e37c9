"""Retraining driven by drift alerts: the controller, the champion/challenger gate, the
recalibration of a champion, and a drift report a person reads for each alert."""

__all__: list[str] = []
