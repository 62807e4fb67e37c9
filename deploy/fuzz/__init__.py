"""Coverage-guided fuzzing (atheris, libFuzzer) of every decoder of bytes from outside the
process: clicks, control records, user-state snapshots, cut-over seeds, the click archive.

``targets``: each decoder with the contract it is held to and its seed inputs; ``runner``: runs
a target in a process of its own and reads its report; ``python -m deploy.fuzz TARGET``: that
process. ``deepcredit fuzz`` runs them (``deploy.commands.fuzz``). atheris is imported only in
the fuzzing process.
"""

__all__: list[str] = []
