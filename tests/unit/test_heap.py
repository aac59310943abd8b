"""analysis.heap: with glibc's mmap threshold fixed, large freed arrays go back to the system even when
small long-lived objects sit between them (the atlas's batches: its peak memory stays flat)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

HEAP = Path(__file__).resolve().parents[2] / "src" / "attnlens" / "analysis" / "heap.py"
SCRIPT = """
import importlib.util
import numpy as np
spec = importlib.util.spec_from_file_location("heap", {heap!r})  # alone: no torch to import
heap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heap)

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

if {fix}:
    assert heap.keep_large_blocks_on_mmap()
big = np.ones(32 * 2**20 // 8)
del big  # one large free: glibc would now raise its mmap threshold to 32 MiB
rng = np.random.default_rng(0)
survivors, start = [], rss_mb()
for _ in range(30):  # batches of varying size, each leaving small results behind (as scores do)
    arrays = [np.empty(int(rng.integers(1, 30)) * 2**20 // 8) for _ in range(4)]
    for a in arrays:
        a[::512] = 1.0  # touch every page
    survivors.extend(a[:1000].copy() for a in arrays)
    del arrays
print(rss_mb() - start)
"""


def retained_mb(fix: bool) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(heap=str(HEAP), fix=fix)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="not glibc: the threshold cannot be (or need not be) set")
def test_freed_batches_are_given_back_with_the_fixed_threshold():
    without = retained_mb(fix=False)
    if without < 20:
        pytest.skip(f"this allocator keeps only {without:.0f} MB here anyway")
    assert retained_mb(fix=True) < 10  # ~3 MB of survivors, against ~36 MB kept by the heap without the fix
