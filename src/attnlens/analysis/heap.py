"""Keeping a long corpus pass's memory flat in the C allocator (glibc on Linux).

glibc's malloc serves a large block (>= 128 KiB at start) with its own mmap, given back to the
system when freed; but after the first such free it raises that threshold up to the freed block's
size (at most 32 MiB). From then on a batch's arrays (attention [B, L, H, T, T] float32 is up to
~38 MB per batch, and its temporaries, in shapes that change with every batch's length) come from
the heap, whose freed space is fragmented and kept: the atlas's peak RSS then grows with the
number of batches (measured on all-MiniLM-L6-v2: +339 MB over 1,500 pairs and still climbing,
against +211 MB, flat after the first read-ahead window, with the fixed threshold below).
Fixing the threshold at glibc's own starting value keeps large blocks on mmap; small objects
are unaffected. Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's default starting value, now kept fixed


@functools.lru_cache(maxsize=1)
def keep_large_blocks_on_mmap() -> bool:
    """Fix glibc's mmap threshold (once per process); True when it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only: musl's mallopt does nothing)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
