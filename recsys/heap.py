"""Keep freed memory in the process while a model trains on the CPU (glibc's malloc; elsewhere nothing happens).

Each training step allocates and frees the same large buffers (the sampled softmax's (targets x negatives)
logits, the recurrent states, their gradients: ~16 MB each on Diginetica). glibc returns memory to the kernel
as soon as more than twice its largest recent mmap'd block lies free at the top of the heap, so every step the
kernel hands the same memory back page by page, zeroed: a Diginetica LSTM epoch spent ~23% of its CPU in the
kernel. While `retained_heap()` is active, blocks up to 32 MB come from the heap and up to 1 GB of free heap is
kept; when it ends the free memory is released (`malloc_trim`) and freed memory is returned as before.
PyTorch's CPU tuning guide suggests the same through MALLOC_* environment variables or another allocator; this
does it from inside, for the training only. docs/BENCHMARKS.md, "Full-softmax loss on the CPU", has the figures.
"""

import contextlib
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)
TRAINING = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}
AFTER = {M_TRIM_THRESHOLD: 128 << 10, M_TOP_PAD: 128 << 10}  # glibc's default trim threshold and a small pad


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it; musl's mallopt does nothing)
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def retained_heap(enabled: bool = True):
    """Within: freed heap memory stays in the process for the next step. After: it is released again."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    for param, value in TRAINING.items():
        libc.mallopt(param, value)
    try:
        yield True
    finally:
        for param, value in AFTER.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)
