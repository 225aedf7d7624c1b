"""Give the memory of a decoded image back to the system when it is freed.

A decoded upload is tens of MiB in a few big blocks (Pillow's image blocks, libwebp's
canvases, numpy arrays). glibc's malloc serves blocks over its mmap threshold with
their own mapping, returned on free, but it raises that threshold to the size of each
such block freed (up to 32 MiB): after the first big image, the next ones come from the
heaps of the decoding threads' arenas, which keep them. A worker then stayed 60–130 MiB
above its baseline after a few 16-megapixel images (and 655 MiB after a 40-megapixel
WebP). A fixed threshold turns that adjustment off: measured with
tests/service/imaging/test_memory_server.py, memory returns to within 2 MiB of the
baseline, and small allocations (everything a 28×28 upload needs) are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# Blocks from this size up get their own mapping: above any per-request small object,
# below a stripe of a big image (service/imaging/gray.py) and every decoded image.
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # from glibc's <malloc.h>


def return_big_blocks_to_the_system() -> bool:
    """Set glibc's mmap threshold to `MMAP_THRESHOLD_BYTES` for this process; False (and
    nothing changed) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS...: their allocators behave otherwise
        logger.debug("no glibc mallopt: the allocator keeps its own settings")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
