"""Numba keys a cached function on its own file only: a cached function of another file that
calls into ``scorer.fast`` kept the kernel it was compiled with after ``scorer/fast.py``
changed (found: the rebuild's loop ran the kernel before an edit, and read the packed weights
of the new layout out of bounds). ``fast.recompile_on_change`` empties such a cache when the
kernel's source is not the one the cache was written against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scorer import fast

MODULE = '''
import numba
from scorer import fast

@numba.njit(cache=True)
def calls_the_kernel(x):
    return fast.tanh32(x)

fast.recompile_on_change(calls_the_kernel)
'''

RUN = '''
import json
import dependent
dependent.calls_the_kernel(0.5)
stats = dependent.calls_the_kernel.stats
print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
'''


def hits_and_misses(folder: Path) -> list[int]:
    """A fresh process that imports the dependent module and calls it once."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "cache"),
           "PYTHONPATH": os.pathsep.join([str(folder), str(Path(fast.__file__).parents[1])])}
    done = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_cache_compiled_against_another_kernel_is_compiled_again(tmp_path: Path) -> None:
    (tmp_path / "dependent.py").write_text(MODULE)
    assert hits_and_misses(tmp_path) == [0, 1]  # compiled and cached
    assert hits_and_misses(tmp_path) == [1, 0]  # loaded from the cache
    [stamp] = (tmp_path / "cache").rglob("dependent.calls_the_kernel.kernel")
    assert stamp.read_text() == fast._SOURCE_HASH
    stamp.write_text("0" * 16)  # as if scorer/fast.py had changed since the cache was written
    assert hits_and_misses(tmp_path) == [0, 1]  # not the stale code: compiled again
    assert stamp.read_text() == fast._SOURCE_HASH
    assert hits_and_misses(tmp_path) == [1, 0]
