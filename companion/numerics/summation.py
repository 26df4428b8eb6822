"""Summation in several orders, the FMA chain of BLAS kernels, and their bounds.

Built in chapter 6.
"""

from __future__ import annotations

import math

import numpy as np

from companion import arguments
from companion.numerics.bounds import gamma
from companion.numerics.formats import cast_once, float_array, float_format, next_float

# Summation in several orders

#: The methods :func:`summation` knows, and :func:`summation_error_bound` bounds (but "kahan").
SUMMATION_METHODS = ("sequential", "pairwise", "kahan", "float64", "exact")


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s + e == a + b`` exactly, with ``s = fl(a + b)``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _pairwise(values: np.ndarray) -> np.ndarray:
    """Sum along axis 0 by halves, recursively: depth ⌈log2 n⌉."""
    if values.shape[0] == 1:
        return values[0]
    half = values.shape[0] // 2
    return _pairwise(values[:half]) + _pairwise(values[half:])


def exact_sums(terms: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each row's exact sum, rounded once (to nearest, ties to even) to ``dtype``.

    Built in chapter 6.

    ``terms`` is a 2-D float64 array whose rows hold numbers to add exactly.
    :func:`math.fsum` rounds each exact sum once to float64; a second
    rounding to a narrower format can go wrong only when that float64 value
    is exactly halfway between two neighbours of the narrow format, so those
    rows are settled by the sign of the exact remainder.
    """
    rows = terms.tolist()
    high = np.array([math.fsum(row) for row in rows], dtype=np.float64).reshape(len(rows))
    if dtype == np.float64:
        return high
    rounded = cast_once(high, dtype)
    back = rounded.astype(np.float64)
    candidates = np.flatnonzero((back != high) & np.isfinite(back))
    if candidates.size:
        side = np.where(high[candidates] > back[candidates], 1, -1)
        other = next_float(rounded[candidates], side)
        midpoint = (back[candidates] + other.astype(np.float64)) / 2  # exact in float64
        for index, at_middle, neighbour in zip(
            candidates, midpoint == high[candidates], other, strict=True
        ):
            if not at_middle:
                continue
            remainder = math.fsum([*rows[index], -high[index]])
            if remainder != 0:
                up = remainder > 0
                pair = (rounded[index], neighbour)
                rounded[index] = max(pair) if up else min(pair)
    return rounded


def summation(values: np.ndarray, method: str = "sequential", *, axis: int = -1) -> np.ndarray:
    """Sum floating-point numbers along an axis in a chosen order, in their own format.

    Built in chapter 6.

    Every addition is rounded to the values' dtype (float16, bfloat16,
    float32 or float64), as hardware in that format would round it, so the
    methods differ only in their order and tricks:

    - ``"sequential"``: left to right, ``((x₁ + x₂) + x₃) + …``; worst-case
      error ``γ_{n−1}·Σ|x_i|`` (Higham 2002, eq. (4.4));
    - ``"pairwise"``: halves summed recursively, a tree of depth
      ``⌈log₂ n⌉``; error at most ``γ_{⌈log₂ n⌉}·Σ|x_i|`` (Higham 2002,
      eq. (4.6));
    - ``"kahan"``: Kahan's compensated summation, which carries each
      addition's rounding error into the next; error ``(2u + O(n·u²))·Σ|x_i|``,
      independent of ``n`` to first order (Higham 2002, Algorithm 4.2 and
      eq. (4.8));
    - ``"float64"``: sequential in float64, rounded once to the values'
      dtype at the end (for float64 values: ``"sequential"``);
    - ``"exact"``: the exact sum rounded once, to nearest, with
      :func:`math.fsum` (Shewchuk's algorithm) and a correction for the rare
      double rounding to a narrower format.

    Parameters
    ----------
    values : array_like
        float16, bfloat16, float32 or float64.
    method : str, optional
        One of :data:`SUMMATION_METHODS`.
    axis : int, optional
        The axis to sum along.

    Returns
    -------
    ndarray or scalar
        Of the values' dtype, with ``axis`` removed; the sum of nothing is 0.

    Raises
    ------
    ValueError
        For an unknown method or an unsupported dtype.

    Examples
    --------
    The learner's example from the third seed question, in float64:

    >>> x = np.array([1.2, -1.0, -0.2])
    >>> float(summation(x, "sequential")), float(summation(x[[0, 2, 1]], "sequential"))
    (-5.551115123125783e-17, 0.0)
    >>> float(summation(x, "exact")) == float(summation(x[[0, 2, 1]], "exact"))
    True
    >>> tenths = np.full(10, 0.1, np.float32)
    >>> [float(summation(tenths, m)) for m in ("sequential", "kahan", "exact")]
    [1.0000001192092896, 1.0, 1.0]
    """
    method = arguments.choice(method, "method", SUMMATION_METHODS)
    array = float_array(values, "values")
    moved = np.moveaxis(array, axis, 0)
    dtype = array.dtype
    if moved.shape[0] == 0:
        return np.zeros(moved.shape[1:], dtype)[()]
    if method == "sequential" or (method == "float64" and dtype == np.float64):
        total = moved[0].copy()
        for term in moved[1:]:
            total = total + term
        return np.asarray(total, dtype)[()]
    if method == "float64":
        total = moved[0].astype(np.float64)
        for term in moved[1:]:
            total = total + term.astype(np.float64)
        return np.asarray(cast_once(total, dtype))[()]
    if method == "pairwise":
        return np.asarray(_pairwise(moved), dtype)[()]
    if method == "kahan":
        total = moved[0].copy()
        compensation = np.zeros_like(total)
        with np.errstate(invalid="ignore"):
            for term in moved[1:]:
                corrected = term - compensation
                new = total + corrected
                compensation = (new - total) - corrected
                total = new
        return np.asarray(total, dtype)[()]
    rows = np.moveaxis(moved, 0, -1).astype(np.float64).reshape(-1, moved.shape[0])
    return exact_sums(rows, dtype).reshape(moved.shape[1:])[()]


def _round_sum(high: np.ndarray, low: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round ``high + low`` (float64, ``|low|`` at most half an ULP of ``high``) once to ``dtype``.

    Rounding ``high`` alone is right unless ``high`` is exactly halfway between two
    neighbours of ``dtype``; then the sign of ``low`` decides.
    """
    rounded = cast_once(high, dtype)
    back = rounded.astype(np.float64)
    side = np.where(high > back, 1, -1)
    other = next_float(rounded, side).astype(np.float64)
    with np.errstate(invalid="ignore"):
        tie = (back != high) & np.isfinite(back) & ((back + other) / 2 == high) & (low != 0)
    if np.any(tie):
        toward = np.where(low > 0, 1, -1)
        moved = np.where(toward == side, next_float(rounded, side), rounded)
        rounded = np.where(tie, moved, rounded)
    return rounded


def fma_dot(x: np.ndarray, y: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """The dot product as a chain of fused multiply-adds, ``s ← fl(s + x_i·y_i)``, in order.

    Built in chapter 6.

    This is how BLAS matrix-product kernels and oneDNN's convolutions evaluate each
    output on current CPUs: one rounding per term (the product is not rounded on its
    own), left to right along the summed dimension, in the arrays' own format. A NumPy
    expression such as ``(x * y).sum()`` rounds each product first, then adds: a
    different result in the last bits. Every step is emulated exactly: the product of
    two float16, bfloat16 or float32 numbers is exact in float64, the sum is split
    into a float64 value and its exact error (TwoSum), and both decide the rounding.

    Parameters
    ----------
    x, y : array_like
        float16, bfloat16 or float32, of one dtype, broadcast against each other.
    axis : int, optional
        The axis to sum along.

    Returns
    -------
    ndarray or scalar
        Of the operands' dtype, with ``axis`` removed.

    Raises
    ------
    ValueError
        For float64 operands (their products are not exact in float64) or operands
        of different dtypes.

    Examples
    --------
    >>> x = np.float32([1.0, 1.0 + 2.0**-12])
    >>> y = np.float32([-1.0 - 2.0**-11, 1.0 + 2.0**-12])
    >>> float(fma_dot(x, y)) == 2.0**-24                     # the exact value
    True
    >>> float(summation(x * y))                              # products rounded first
    0.0
    """
    a, b = float_array(x, "x"), float_array(y, "y")
    if a.dtype != b.dtype:
        raise ValueError(f"y: expected the dtype of x ({a.dtype}), got {b.dtype}")
    if a.dtype == np.float64:
        raise ValueError("x: expected float16, bfloat16 or float32 (exact products in float64)")
    a, b = np.broadcast_arrays(a, b)
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    total = np.zeros(a.shape[1:], a.dtype)
    for left, right in zip(a, b, strict=True):
        product = left.astype(np.float64) * right.astype(np.float64)  # exact
        high, low = two_sum(total.astype(np.float64), product)
        total = _round_sum(high, low, a.dtype)
    return total[()]


def summation_error_bound(
    magnitude: np.ndarray | float, n: int, dtype: object, method: str = "sequential"
) -> np.ndarray | float:
    """Bound ``|computed − exact|`` for :func:`summation` of ``n`` values.

    Built in chapter 6.

    ``magnitude`` is ``Σ|x_i|``. The bounds, from Higham (2002, §4.2), for
    values stored in ``dtype`` with unit roundoff ``u``:

    - ``"sequential"``: ``γ_{n−1}·Σ|x_i|``;
    - ``"pairwise"``: ``γ_{⌈log₂ n⌉}·Σ|x_i|``;
    - ``"float64"``: the float64 sequential bound, plus one rounding to
      ``dtype``: ``u·(Σ|x_i| + that bound)`` (plus half the smallest
      subnormal, for a result that underflows);
    - ``"exact"``: one rounding, ``u·Σ|x_i|`` (plus half the smallest
      subnormal).

    Sums of numbers of one format that underflow are exact, so no other
    underflow term is needed. Kahan's method has a first-order bound only
    (``2u + O(n·u²)``, Higham 2002, eq. (4.8)) and is refused here.

    Parameters
    ----------
    magnitude : array_like
        ``Σ|x_i|`` for each sum.
    n : int
        The number of values in each sum.
    dtype : dtype-like or str
        The values' format.
    method : str, optional
        One of :data:`SUMMATION_METHODS` but ``"kahan"``.

    Returns
    -------
    float or ndarray of float64

    Examples
    --------
    >>> [round(summation_error_bound(1.0, 1024, "float32", m) / 2.0**-24, 4)
    ...  for m in ("exact", "pairwise")]
    [1.0, 10.0]
    >>> summation_error_bound(1.0, 1025, "float32") > 1023 * 2.0**-24
    True
    """
    method = arguments.choice(method, "method", SUMMATION_METHODS)
    if method == "kahan":
        raise ValueError(
            "method: Kahan's summation has only a first-order bound (2u + O(n·u²))·Σ|x_i| "
            "(Higham 2002, eq. (4.8)); no rigorous bound is implemented for 'kahan'"
        )
    fmt = float_format(dtype)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.size and not np.all(magnitude >= 0):
        raise ValueError("magnitude: expected non-negative sums of absolute values")
    n = arguments.integer(n, "n", expected="a non-negative integer number of values")
    u = fmt.unit_roundoff
    if method == "sequential":
        bound = gamma(max(n - 1, 0), fmt) * magnitude
    elif method == "pairwise":
        bound = gamma(math.ceil(math.log2(n)) if n > 1 else 0, fmt) * magnitude
    else:
        inner = 0.0 if method == "exact" else gamma(max(n - 1, 0), np.float64) * magnitude
        bound = inner + u * (magnitude + inner) + fmt.min_subnormal / 2
        if fmt.name == "float64":
            bound = inner if method == "float64" else u * magnitude
    bound = np.asarray(bound, dtype=np.float64)
    return float(bound) if bound.ndim == 0 else bound
