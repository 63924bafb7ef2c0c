"""Row blocks of a matrix that stay in cache between two products: what a hand can fuse and autodiff does not.

A gradient of the form (A x - b) @ A, as written, reads A twice from memory: once for A x, once for
r @ A. Taken over row blocks A_k, r_k = A_k x - b_k and g += r_k A_k read each block twice too, but the
second read comes from the cache, so A crosses the memory bus once. A block is BLOCK_BYTES of rows
(at least one row): small enough for a core's share of the cache, large enough that a call's overhead
is small beside its bytes.
"""
from __future__ import annotations

BLOCK_BYTES = 2**19  # 512 KiB of float64 rows: within a core's L2 on both machine classes here (1 MiB and 2 MiB)


def row_blocks(a, itemsize: int = 8):
    """Slices of consecutive rows of `a`, each about BLOCK_BYTES (at least one row)."""
    rows = max(1, BLOCK_BYTES // (itemsize * a.shape[1]))
    return [slice(i, i + rows) for i in range(0, a.shape[0], rows)]
