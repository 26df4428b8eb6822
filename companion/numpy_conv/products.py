"""Matrix products cut to the size OpenBLAS multiplies fastest.

OpenBLAS computes a product with its *small-matrix* kernels when it has at most
:data:`SMALL_PRODUCT` multiply-adds (``M·K·N``, rows × depth × columns): they read
the operands where they lie, where larger products are first copied into packed
panels. On the AVX-512 processors for which OpenBLAS has those kernels (its
``SkylakeX``, ``Cooperlake`` and ``SapphireRapids`` targets), single-precision
products of convolution shapes ran faster in slices of rows small enough for
them than whole, on the machine that built the book (one thread, the operands in
cache):

============================  ========  ==================================
rows × depth @ depth × columns  whole     in slices (rows per slice)
============================  ========  ==================================
2688 × 576 @ 576 × 64          98 GF/s   114 GF/s (24)
1000 × 864 @ 864 × 96          99 GF/s   114 GF/s (12)
3136 × 64 @ 64 × 256          100 GF/s   113 GF/s (60)
784 × 256 @ 256 × 512         105 GF/s   110 GF/s (4)
2048 × 144 @ 144 × 16          80 GF/s   111 GF/s (432)
============================  ========  ==================================

A slice's rows are a multiple of 4 (a slice of 27 rows of the first shape ran at
109, of 6 rows of a depth of 1152 at 87 against 102 for 4). :func:`matmul` cuts a
product this way where the BLAS has those kernels; elsewhere (the ``Haswell``
and ``Zen`` targets, for AVX2 processors, have none) a slice would be packed
like a whole product, and a thin one runs slowly, so products stay whole. The
slices are fixed by the shapes and the BLAS, never by the threads: each output
row is the same sum either way, in the order the kernel that computes it takes.
"""

from __future__ import annotations

import functools

import numpy as np

from companion.numpy_conv import parallel

#: The most multiply-adds (``M·K·N``) a single-precision product may have for
#: OpenBLAS's small-matrix kernels to compute it.
SMALL_PRODUCT = 1_000_000

#: OpenBLAS's targets (as it names them) that have small-matrix kernels.
SMALL_KERNEL_TARGETS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.cache
def has_small_kernels() -> bool:
    """Whether NumPy's BLAS is OpenBLAS on a target with small-matrix kernels.

    Examples
    --------
    >>> isinstance(has_small_kernels(), bool)
    True
    """
    libraries = [
        library for library in parallel.blas_libraries() if library.internal_api == "openblas"
    ]
    return bool(libraries) and all(
        str(getattr(library, "architecture", "")).lower() in SMALL_KERNEL_TARGETS
        for library in libraries
    )


def rows_per_slice(depth: int, columns: int, dtype) -> int:
    """The rows of the slices :func:`matmul` cuts a product into, or 0 for none.

    The most rows, a multiple of 4, that keep a slice within :data:`SMALL_PRODUCT`
    multiply-adds; 0 for a product other than single precision, a BLAS without
    small-matrix kernels, or where not even 4 rows fit.

    Examples
    --------
    >>> rows_per_slice(576, 64, np.float32) in (0, 24)
    True
    >>> rows_per_slice(576, 64, np.float64)
    0
    """
    if np.dtype(dtype) != np.float32 or not has_small_kernels():
        return 0
    rows = SMALL_PRODUCT // max(1, depth * columns)
    return rows - rows % 4 if rows >= 4 else 0


def _slice(a: np.ndarray, b: np.ndarray, out: np.ndarray, length: int, other: int) -> int:
    """How many of the ``length`` entries of the axis cut go in one slice, the product's
    other two dimensions being ``other`` and ``out``'s columns; 0 to keep it whole."""
    step = rows_per_slice(other, out.shape[-1], out.dtype)
    transposed = a.strides[-1] != a.itemsize or b.strides[-1] != b.itemsize
    return 0 if step == 0 or length <= step or transposed else step


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, its rows cut into slices for the small-matrix kernels.

    ``a`` is ``(..., M, K)``, ``b`` ``(..., K, N)`` and ``out`` ``(..., M, N)``, any
    views NumPy hands to BLAS in place. Where :func:`rows_per_slice` gives ``m``
    rows and ``M > m``, the first ``M - M % m`` rows are multiplied as a batch of
    ``m``-row products (one call, views only), the rest as one more product.
    A transposed operand (rows of unit stride) is multiplied whole: the
    small-matrix kernels for transposed operands ran slower than the packed
    path (a 3136 × 256 product by a transposed 256 × 64 view: 71 against 98
    GFLOP/s).

    Examples
    --------
    >>> a, b = np.ones((100, 3), np.float32), np.ones((3, 2), np.float32)
    >>> out = np.empty((100, 2), np.float32)
    >>> float(matmul(a, b, out).sum())
    600.0
    """
    rows, depth = a.shape[-2:]
    step = _slice(a, b, out, rows, depth)
    if step == 0:
        return np.matmul(a, b, out=out)
    whole = rows - rows % step
    slices = (*a.shape[:-2], whole // step, step)
    np.matmul(
        a[..., :whole, :].reshape(*slices, depth),
        b[..., None, :, :],
        out=out[..., :whole, :].reshape(*slices, out.shape[-1]),
    )
    if whole < rows:
        np.matmul(a[..., whole:, :], b, out=out[..., whole:, :])
    return out


def summed_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``a @ b`` into ``out`` for a long inner dimension, cut into slices for the
    small-matrix kernels and their products summed.

    ``a`` is ``(..., M, K)``, ``b`` ``(..., K, N)``, ``out`` ``(..., M, N)``. A filter
    gradient's product is short and narrow (``M`` terms, ``N`` channels) and long
    (``K`` positions): cut along ``K`` into slices of ``k`` positions, ``M·k·N`` at
    most :data:`SMALL_PRODUCT`, each slice is a small product; the slices' products
    are then added in order, a sum fixed by the shapes.

    Examples
    --------
    >>> a, b = np.ones((3, 100_000), np.float32), np.ones((100_000, 4), np.float32)
    >>> float(summed_matmul(a, b, np.empty((3, 4), np.float32))[0, 0])
    100000.0
    """
    terms, depth = a.shape[-2:]
    step = _slice(a, b, out, depth, terms)
    if step == 0:
        return np.matmul(a, b, out=out)
    whole = depth - depth % step
    count = whole // step
    partial = parallel.scratch("summed products", (count + (whole < depth), *out.shape), out.dtype)
    # (slices, ..., M, step) and (slices, ..., step, N): views
    a_slices = np.moveaxis(a[..., :whole].reshape(*a.shape[:-1], count, step), -2, 0)
    b_slices = np.moveaxis(b[..., :whole, :].reshape(*b.shape[:-2], count, step, -1), -3, 0)
    np.matmul(a_slices, b_slices, out=partial[:count])
    if whole < depth:
        np.matmul(a[..., whole:], b[..., whole:, :], out=partial[count])
    return np.sum(partial, axis=0, out=out)
