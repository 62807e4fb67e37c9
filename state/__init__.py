"""State at rest: the flow's recovery store, the cut-over seed, and the cut-over that rebuilds
every user's state under a new model and writes that seed. Imports ``scorer`` and ``deepcredit``.
"""

__all__: list[str] = []
