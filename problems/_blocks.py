"""Row blocks of a matrix that stay in cache between two products: what a hand can fuse and autodiff does not.

A gradient of the form (A x - b) @ A, as written, reads A twice from memory: once for A x, once for
r @ A. Taken over row blocks A_k, r_k = A_k x - b_k and g += r_k A_k read each block twice too, but the
second read comes from the cache, so A crosses the memory bus once. A block is BLOCK_BYTES of rows
(at least one row): small enough for the cache, large enough that a call's overhead (torch's
dispatch most) is small beside its bytes. Measured at n = 10^4 (scripts/fused_blocks.py, numpy):
blocks of 0.5, 1, 2, 4 and 8 MiB took 2.10, 2.02, 1.93, 1.91 and 2.02 times the floor, against 2.77
for the formula as written; one pass of the BLAS over A (A @ x alone) took 1.39 times it, which
bounds what row blocks through the BLAS can reach.
"""
from __future__ import annotations

BLOCK_BYTES = 2**21  # 2 MiB of float64 rows: in the last-level cache on both machine classes here (32 MiB, 480 MiB)


def row_blocks(a, itemsize: int = 8):
    """Slices of consecutive rows of `a`, each about BLOCK_BYTES (at least one row) of float64: a float32
    block holds the same rows, half the bytes. (Reading a's itemsize at every call cost the fused gradient at
    n = 100 1.15% more instructions in float64, which the CI's count gate called slower.)"""
    rows = max(1, BLOCK_BYTES // (itemsize * a.shape[1]))
    return [slice(i, i + rows) for i in range(0, a.shape[0], rows)]
