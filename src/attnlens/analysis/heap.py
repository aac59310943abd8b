"""Keeping a long corpus pass's memory flat in the C allocator (glibc on Linux).

A corpus pass frees, after every batch, blocks of a few MB in shapes that change with each batch's
length (the forward's activations, the recorded q/k), while smaller objects that live longer land
between them. glibc keeps that fragmented heap: the atlas of all-MiniLM-L6-v2 peaked at 978 MB over
1,000 pairs and 1,347 MB over 10,000, still growing. What was measured on that atlas (2 CPUs):

- glibc's defaults: 82-95 pairs/s, memory growing with the corpus;
- a fixed mmap threshold (each block over 128 KiB its own mapping, unmapped when freed; attnlens's
  earlier fix): flat (667 / 675 MB), but every large block of every forward then faults its pages in
  afresh: 57-60 pairs/s;
- `malloc_trim(0)` after every batch: flat, but the next batch faults the trimmed pages back: 63-77;
- `HeapCeiling` (trim only when the resident memory passes the highest of the first read-ahead window
  plus 64 MB): peak 846 / 875 / 883 MB over 1,000 / 4,000 / 10,000 pairs, trimming after 58 of the
  10,000-pair run's 383 batches, at glibc's default speed within this machine's noise.

The batch-sized arrays of the pass itself come from reused buffers (capturing.scratch), which are
never freed between batches. Elsewhere (macOS, musl, Windows) the ceiling does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

SLACK = 64 * 2**20  # resident bytes a pass may grow past the settled peak before free pages are handed back


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc, or None on another C library (musl has malloc_trim's name but not its effect)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapCeiling:
    """Keeps a corpus pass's resident memory under a ceiling: its highest over the first `settle` batches (one
    read-ahead window: every length the batcher sorts together), plus `slack`.

    Call `after_batch()` once each batch's arrays are freed. Below the ceiling the heap keeps its free pages,
    so the next batch's forward reuses them without faulting; above it, glibc's malloc_trim hands the free
    pages back (the fragments that pile up over a long corpus). Does nothing off glibc.
    """

    def __init__(self, settle: int, slack: int = SLACK):
        self.settle, self.slack = settle, slack
        self.batches = self.highest = self.trims = 0

    def after_batch(self) -> bool:
        """Trim the heap if the resident memory is over the ceiling; True when it did."""
        libc, resident = _glibc(), resident_bytes()
        if libc is None or resident is None:
            return False
        self.batches += 1
        if self.batches <= self.settle:
            self.highest = max(self.highest, resident)
            return False
        if resident <= self.highest + self.slack:
            return False
        libc.malloc_trim(0)
        self.trims += 1
        return True
