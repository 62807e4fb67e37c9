"""One fuzzing process: ``python -m deploy.fuzz TARGET [libFuzzer flags] [corpus folders]``.

libFuzzer owns the process: it runs the target until its time or run count is spent, and on a
crash writes the input (``-artifact_prefix``), prints the traceback and exits. So each target
runs in a process of its own (``deploy.fuzz.runner`` starts them and reads what they print).
"""

from __future__ import annotations

import logging
import sys

from deploy.fuzz.targets import INSTRUMENTED, TARGETS


def main(argv: list[str]) -> None:
    import atheris

    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m deploy.fuzz {{{','.join(TARGETS)}}} [libFuzzer flags]")
    # A rejected control record logs a warning: at thousands of inputs a second, noise.
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        check = TARGETS[argv[1]].build()
    # The check's own branches count too: an accepted value is a new kind of input.
    atheris.Setup([argv[0], *argv[2:]], atheris.instrument_func(check))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
