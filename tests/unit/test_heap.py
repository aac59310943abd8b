"""analysis.heap: a corpus pass's resident memory stays under its ceiling even when batches of varying size
leave small long-lived objects between their freed blocks (the atlas's batches: its peak memory stays flat),
while the heap keeps its free pages below the ceiling (no trim, so no page is faulted in twice)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

HEAP = Path(__file__).resolve().parents[2] / "src" / "attnlens" / "analysis" / "heap.py"
SCRIPT = """
import importlib.util, json
import numpy as np
spec = importlib.util.spec_from_file_location("heap", {heap!r})  # alone: no torch to import
heap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heap)

def rss_mb():
    return heap.resident_bytes() / 2**20

ceiling = heap.HeapCeiling(settle=3, slack=8 * 2**20)
rng = np.random.default_rng(0)
survivors, start, after = [], rss_mb(), []
for _ in range(40):  # batches of varying size, each leaving small results behind (as scores do)
    arrays = [np.empty(int(rng.integers(1, 30)) * 2**20 // 8) for _ in range(4)]
    for a in arrays:
        a[::512] = 1.0  # touch every page
    survivors.extend(a[:1000].copy() for a in arrays)
    del arrays
    if {bounded}:
        ceiling.after_batch()
    after.append(rss_mb() - start)
print(json.dumps({{"retained": after[-1], "trims": ceiling.trims, "settled": max(after[:3])}}))
"""


def run(bounded: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(heap=str(HEAP), bounded=bounded)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="not glibc: malloc_trim is not there (or not needed)")
def test_the_ceiling_gives_back_what_fragmented_batches_leave_in_the_heap():
    without = run(bounded=False)
    if without["retained"] < 40:
        pytest.skip(f"this allocator keeps only {without['retained']:.0f} MB here anyway")
    bounded = run(bounded=True)
    assert bounded["trims"] >= 1
    # the resident memory ends within the slack (8 MB) of what the first batches needed, plus survivors
    assert bounded["retained"] < bounded["settled"] + 8 + 4, (bounded, without)
    assert bounded["retained"] < without["retained"] / 2, (bounded, without)


def test_no_trim_below_the_ceiling():
    sys.path.insert(0, str(HEAP.parent))
    try:
        import heap  # noqa: PLC0415  (the module alone)
    finally:
        sys.path.remove(str(HEAP.parent))
    ceiling = heap.HeapCeiling(settle=2, slack=2**40)  # a ceiling no test process reaches
    assert not any(ceiling.after_batch() for _ in range(10))
    assert ceiling.trims == 0
