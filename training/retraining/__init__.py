"""Retraining driven by drift alerts: the controller, the champion/challenger gate and the
recalibration of a champion."""

__all__: list[str] = []
