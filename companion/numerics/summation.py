"""Summation in several orders, the FMA chain of BLAS kernels, and their bounds.

Built in chapter 6.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from companion import arguments
from companion.numerics.bounds import gamma, nonnegative
from companion.numerics.formats import FloatFormat, cast_once, float_array, float_format, ulp

# Summation in several orders

#: The methods :func:`summation` knows, and :func:`summation_error_bound` bounds (but "kahan").
SUMMATION_METHODS = ("sequential", "pairwise", "kahan", "float64", "exact")


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s + e == a + b`` exactly, with ``s = fl(a + b)``.

    Where ``s`` is not finite (an infinite or NaN operand, or an overflow),
    the error term is meaningless and is returned as 0, so that it never turns
    IEEE's ``±inf`` into a NaN downstream.
    """
    s = a + b
    with np.errstate(invalid="ignore", over="ignore"):
        bb = s - a
        e = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(s), e, 0).astype(e.dtype)


def _pairwise(values: np.ndarray) -> np.ndarray:
    """Sum along axis 0 by halves, recursively: depth ⌈log2 n⌉."""
    if values.shape[0] == 1:
        return values[0]
    half = values.shape[0] // 2
    return _pairwise(values[:half]) + _pairwise(values[half:])


def _sum_axis(ndim: int, axis: object, name: str) -> int:
    """``axis`` checked against an array of ``ndim`` dimensions (``name``: the array)."""
    if ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension to sum along, got a scalar")
    return arguments.integer(
        axis, "axis", minimum=-ndim, maximum=ndim - 1, expected=f"an axis of a {ndim}-d array"
    )


def round_fraction(value: Fraction, fmt: FloatFormat) -> float:
    """A rational number rounded once to nearest, ties to even, in the format ``fmt``.

    Returned as a float64 that ``fmt`` represents exactly, or ``±inf`` when
    the value rounds beyond the format's largest finite number.

    Examples
    --------
    >>> round_fraction(Fraction(1) + Fraction(1, 2**24), float_format("float32"))  # a tie
    1.0
    >>> round_fraction(Fraction(10**39), float_format("float32"))
    inf
    """
    if value == 0:
        return 0.0
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1  # now 2**exponent ≤ magnitude < 2**(exponent + 1)
    exponent = max(exponent, fmt.min_exponent)  # the subnormals share the smallest spacing
    quantum = Fraction(2) ** (exponent - fmt.precision + 1)
    rounded = round(magnitude / quantum) * quantum  # round() on a Fraction: ties to even
    result = math.inf if rounded > Fraction(fmt.max) else float(rounded)
    return result if value > 0 else -result


def _midpoints(high: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Where float64 values lie exactly halfway between two neighbours in ``fmt`` (the largest
    finite value and the first power of two beyond it included); a 1-d float64 array."""
    magnitude = np.abs(high)
    with np.errstate(invalid="ignore"):
        normal = (magnitude >= fmt.min_normal) & (magnitude < 2.0 ** (fmt.max_exponent + 1))
        subnormal = (magnitude > 0) & (magnitude < fmt.min_normal)
    # In the normal range a midpoint's float64 significand ends in 1 followed by zeros, just
    # below the format's last bit.
    dropped = 53 - fmt.precision
    tail = high.view(np.uint64) & np.uint64((1 << dropped) - 1)
    tie = normal & (tail == np.uint64(1 << (dropped - 1)))
    if np.any(subnormal):  # the subnormals: multiples of the smallest one
        scaled = magnitude[subnormal] / fmt.min_subnormal  # exact: a power of two
        tie[subnormal] = scaled - np.floor(scaled) == 0.5
    return tie


def round_pair(high: np.ndarray, low: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round ``high + low`` once to ``dtype``, where ``high`` is that sum rounded to float64.

    Only the sign of ``low`` matters. Rounding ``high`` alone is right unless
    ``high`` lies exactly halfway between two neighbours of ``dtype`` (the
    largest finite number and the first value beyond it included); then
    ``low`` decides. Non-finite ``high`` values are returned as they are.

    Examples
    --------
    >>> midpoint = np.array([1 + 2.0**-24])       # halfway between two float32 neighbours
    >>> round_pair(midpoint, np.array([-1e-30]), np.float32) == 1
    array([ True])
    >>> round_pair(midpoint, np.array([1e-30]), np.float32) == 1 + 2.0**-23
    array([ True])
    """
    fmt = float_format(dtype)
    shape = np.shape(high)
    high = np.ascontiguousarray(high, dtype=np.float64).reshape(-1)
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), shape).reshape(-1)
    rounded = np.asarray(cast_once(high, dtype)).reshape(-1)
    tie = _midpoints(high, fmt) & (low != 0)
    if np.any(tie):
        at = high[tie]
        quantum = np.asarray(ulp(np.minimum(np.abs(at), fmt.max), fmt))
        nudged = at + np.sign(low[tie]) * quantum / 2  # the neighbour on low's side: exact
        rounded[tie] = cast_once(nudged, dtype)
    return rounded.reshape(shape)


def exact_sums(terms: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each row's exact sum, rounded once (to nearest, ties to even) to ``dtype``.

    Built in chapter 6.

    ``terms`` is a 2-D float64 array whose rows hold numbers to add exactly.
    :func:`math.fsum` rounds each exact sum once to float64; a second
    rounding to a narrower format can go wrong only when that float64 value
    is exactly halfway between two neighbours of the narrow format, so those
    rows are settled by the sign of the exact remainder. Rows whose partial
    sums overflow float64 (``[1e308, 1e308, -1e308]``) are summed in rational
    arithmetic instead. Rows with non-finite terms get IEEE 754's value: NaN
    if a term is NaN or both infinities occur, else the infinity present.
    """
    terms = np.asarray(terms, dtype=np.float64).reshape(len(terms), -1)
    fmt = float_format(dtype)
    high = np.zeros(len(terms))
    special = ~np.all(np.isfinite(terms), axis=1)
    if np.any(special):
        rows = terms[special]
        positive, negative = np.any(rows == np.inf, axis=1), np.any(rows == -np.inf, axis=1)
        nan = np.any(np.isnan(rows), axis=1) | (positive & negative)
        high[special] = np.where(nan, np.nan, np.where(positive, np.inf, -np.inf))
    rows = terms.tolist()
    rational: dict[int, Fraction] = {}  # rows beyond float64 on the way
    for index in np.flatnonzero(~special).tolist():
        try:
            high[index] = math.fsum(rows[index])
        except OverflowError:
            high[index] = np.nan
        if not math.isfinite(high[index]):
            rational[index] = sum(map(Fraction, rows[index]), Fraction(0))
            high[index] = round_fraction(rational[index], fmt)
    if fmt.name == "float64":
        return high
    low = np.zeros_like(high)  # the sign of the exact remainder, where it may matter
    for index in np.flatnonzero(_midpoints(high, fmt)).tolist():
        if index in rational:
            continue  # already rounded once, from the rational value
        try:
            low[index] = math.fsum([*rows[index], -high[index]])
        except OverflowError:
            exact = sum(map(Fraction, rows[index]), Fraction(0))
            low[index] = float(np.sign(exact - Fraction(high[index])))
    rounded = round_pair(high, low, dtype)
    for index, value in rational.items():
        rounded[index] = cast_once(np.float64(round_fraction(value, fmt)), dtype)
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

    Non-finite values follow IEEE 754 in every method: a NaN term, or both
    ``+inf`` and ``-inf``, give NaN; infinities of one sign give that
    infinity (Kahan's compensation is dropped past an infinity, where it
    would be ``inf − inf``). ``"exact"`` is correctly rounded even when
    float64 partial sums would overflow (``[1e308, 1e308, -1e308]`` gives
    ``1e308``), and gives ``±inf`` only when the exact sum rounds beyond the
    format's largest finite number.

    Parameters
    ----------
    values : array_like
        float16, bfloat16, float32 or float64, in any byte order and layout,
        with at least one dimension.
    method : str, optional
        One of :data:`SUMMATION_METHODS`.
    axis : int, optional
        The axis to sum along.

    Returns
    -------
    ndarray or scalar
        A new array (never a view of ``values``) of the values' dtype in
        native byte order, with ``axis`` removed; the sum of nothing is 0.

    Raises
    ------
    ValueError
        Naming the argument: ``method`` unknown; ``values`` not one of the
        four formats (complex, integer, object, string) or a scalar; ``axis``
        not an axis of ``values``.

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
    >>> float(summation(np.array([1e308, 1e308, -1e308]), "exact"))  # no overflow on the way
    1e+308
    >>> float(summation(np.array([np.inf, -np.inf]), "exact"))
    nan
    """
    method = arguments.choice(method, "method", SUMMATION_METHODS)
    array = float_array(values, "values")
    moved = np.moveaxis(array, _sum_axis(array.ndim, axis, "values"), 0)
    dtype = array.dtype
    if moved.shape[0] == 0:
        return np.zeros(moved.shape[1:], dtype)[()]
    with np.errstate(invalid="ignore", over="ignore"):  # IEEE's inf and NaN are the answer
        return _summation(moved, method, dtype)


def _summation(moved: np.ndarray, method: str, dtype: np.dtype) -> np.ndarray:
    """:func:`summation` along axis 0 of a non-empty native array."""
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
        return np.array(_pairwise(moved), dtype, copy=True)[()]  # never a view of values
    if method == "kahan":
        total = moved[0].copy()
        compensation = np.zeros_like(total)
        for term in moved[1:]:
            corrected = term - compensation
            new = total + corrected
            compensation = (new - total) - corrected
            # Past an infinity the compensation is inf − inf: IEEE's sum is the infinity.
            compensation = np.where(np.isfinite(new), compensation, np.zeros((), dtype))
            total = new
        return np.asarray(total, dtype)[()]
    rows = np.moveaxis(moved, 0, -1).astype(np.float64).reshape(-1, moved.shape[0])
    return exact_sums(rows, dtype).reshape(moved.shape[1:])[()]


def fma_dot(x: np.ndarray, y: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """The dot product as a chain of fused multiply-adds, ``s ← fl(s + x_i·y_i)``, in order.

    Built in chapter 6.

    This is how oneDNN's convolutions evaluated every output in chapter 6's
    measurements, and BLAS and the Eigen kernels short sums (long ones they split into
    blocks): one rounding per term (the product is not rounded on its own), left to
    right along the summed dimension, in the arrays' own format. A NumPy
    expression such as ``(x * y).sum()`` rounds each product first, then adds: a
    different result in the last bits. Every step is emulated exactly: the product of
    two float16, bfloat16 or float32 numbers is exact in float64, the sum is split
    into a float64 value and its exact error (TwoSum), and both decide the rounding.

    Non-finite values follow IEEE 754's fused multiply-add: ``0·inf`` and NaN
    give NaN, as does adding infinities of opposite signs; a sum that
    overflows becomes ``±inf`` and stays there.

    Parameters
    ----------
    x, y : array_like
        float16, bfloat16 or float32, of one dtype, broadcast against each other;
        any byte order and layout.
    axis : int, optional
        The axis to sum along.

    Returns
    -------
    ndarray or scalar
        A new array of the operands' dtype in native byte order, with ``axis``
        removed.

    Raises
    ------
    ValueError
        Naming the argument: float64 operands (their products are not exact in
        float64), operands of different dtypes or shapes that do not broadcast,
        complex, integer, object or string operands, or an ``axis`` they lack.

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
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(
            f"y: expected a shape that broadcasts with x's {a.shape}, got {b.shape}"
        ) from None
    axis = _sum_axis(a.ndim, axis, "x")
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    total = np.zeros(a.shape[1:], a.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for left, right in zip(a, b, strict=True):
            product = left.astype(np.float64) * right.astype(np.float64)  # exact
            high, low = two_sum(total.astype(np.float64), product)
            total = round_pair(high, low, a.dtype)
    return np.asarray(total, a.dtype)[()]


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
        ``inf`` where ``magnitude`` is infinite or ``γ`` gives no guarantee.

    Raises
    ------
    ValueError
        Naming the argument: ``magnitude`` NaN, negative, complex or not
        numbers; ``n`` not a non-negative integer; ``method`` unknown or
        ``"kahan"``.

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
    magnitude = nonnegative(magnitude, "magnitude", "sums of absolute values")
    n = arguments.integer(n, "n", expected="a non-negative integer number of values")
    u = fmt.unit_roundoff
    if method in ("sequential", "pairwise"):
        steps = max(n - 1, 0) if method == "sequential" else math.ceil(math.log2(max(n, 1)))
        with np.errstate(invalid="ignore"):  # γ = inf (no guarantee) times 0 is no NaN
            bound = np.where(magnitude == 0, 0.0, gamma(steps, fmt) * magnitude)
    else:
        inner = 0.0 if method == "exact" else gamma(max(n - 1, 0), np.float64) * magnitude
        bound = inner + u * (magnitude + inner) + fmt.min_subnormal / 2
        if fmt.name == "float64":
            bound = inner if method == "float64" else u * magnitude
    bound = np.asarray(bound, dtype=np.float64)
    return float(bound) if bound.ndim == 0 else bound
