"""Give a burst's memory back to the system.

glibc raises its mmap threshold after large buffers are freed (up to 32 MiB), so later
upload-sized buffers come from the heap, where fragmentation keeps them resident: after
64 uploads of 24 MiB the server stayed at 2.0 GiB instead of its idle 0.5 GiB. A fixed
mmap threshold keeps every buffer over 2 MiB in its own mapping, returned when freed. Not
lower: at glibc's default of 128 KiB every buffer of an ordinary 5 s upload (its body,
samples, spectra) was a fresh mapping, faulted in page by page: 0.6-1.1 ms of a 4-5 ms
analysis (`python -m loadtests.benchmark`, request path). The heap's top is given back
once 8 MiB of it are free: at 2 MiB the main thread's heap shrank and grew again with
every request (decoding the 5 s clip 1.90 against 1.13 ms).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 2 * 1024 * 1024  # over a 5 s upload's buffers, far under a long one's
TRIM = 8 * 1024 * 1024  # free memory kept at the top of a heap


def return_freed_memory() -> bool:
    """Fix glibc's thresholds in this process; False where the C library isn't glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM))
    except (OSError, AttributeError, TypeError):
        return False
