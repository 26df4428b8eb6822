"""Rounding-error bounds for convolutions and dot products, and tests against them.

A convolution output is a sum of products, and floating-point addition is not
associative, so two correct implementations that add in different orders
(a Python loop, BLAS, TensorFlow's oneDNN or reference kernels) give results
that differ in the last bits. This module says how far apart they may be: the
classical worst-case bound on an inner product (Higham 2002, §2.2 and §3.1),
applied elementwise to a convolution. A test that compares two floating-point
implementations compares each with a float64 reference, within that bound,
using :func:`assert_conv_close`.

Notation, as in Higham (2002):

- ``u`` is the unit roundoff, ``2**-p`` for a format with ``p`` significand
  bits (round to nearest): :func:`unit_roundoff`;
- ``γ_n = n·u / (1 − n·u)``, defined while ``n·u < 1``: :func:`gamma`;
- an inner product of ``n`` terms, evaluated in *any* order, satisfies
  ``|fl(xᵀy) − xᵀy| ≤ γ_n · |x|ᵀ|y|`` (Higham 2002, eq. (3.5) and the remark
  after it that the bound holds for every order of summation).

Worst-case bounds are pessimistic: rounding errors typically grow like
``√n·u`` rather than ``n·u`` (Higham & Mary 2019). Chapter 6 adds:

- distances in units in the last place: :func:`ulp_distance` (exact, integer)
  and :func:`ulp` (the spacing of a format at a magnitude);
- rounding to a narrower format, TF32 included: :func:`round_to_format`;
- the probabilistic estimate ``γ̃_n(λ) ≈ λ·√n·u`` beside the worst case:
  :func:`probabilistic_gamma`, :func:`probabilistic_error_bound`,
  :func:`bound_probability`;
- summation in several orders, with their bounds: :func:`summation`
  (sequential, pairwise, Kahan, float64-accumulated, exactly rounded) and
  :func:`summation_error_bound`; :func:`fma_dot`, the chain of fused
  multiply-adds that BLAS and oneDNN kernels evaluate;
- an accurate convolution: :func:`accurate_conv2d` (float64 accumulation, a
  compensated dot product in working precision, or the exactly rounded
  result), with :func:`conv_magnitude` and :func:`compensated_error_bound`.

:func:`float_format` describes each format (float16, bfloat16, TF32, float32,
float64) once, for this module and its extensions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ACCURATE_MODES",
    "SUMMATION_METHODS",
    "FloatFormat",
    "accurate_conv2d",
    "assert_conv_close",
    "bound_probability",
    "compensated_error_bound",
    "conv_error_bound",
    "conv_magnitude",
    "dot_error_bound",
    "float_format",
    "fma_dot",
    "gamma",
    "probabilistic_error_bound",
    "probabilistic_gamma",
    "round_to_format",
    "summation",
    "summation_error_bound",
    "ulp",
    "ulp_distance",
    "unit_roundoff",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format, described by its parameters.

    Attributes
    ----------
    name : str
        ``"float16"``, ``"bfloat16"``, ``"tf32"``, ``"float32"`` or ``"float64"``.
    precision : int
        Significand bits ``p``, including the implicit leading bit.
    min_exponent : int
        The exponent of the smallest positive normal number, ``2**min_exponent``.
    max_exponent : int
        The exponent of the largest finite number's leading bit.
    """

    name: str
    precision: int
    min_exponent: int
    max_exponent: int

    @property
    def unit_roundoff(self) -> float:
        """``u = 2**-p``: the largest relative error of rounding to nearest."""
        return 2.0 ** (-self.precision)

    @property
    def min_normal(self) -> float:
        """The smallest positive normal number (Higham's ``λ``)."""
        return 2.0**self.min_exponent

    @property
    def min_subnormal(self) -> float:
        """The smallest positive subnormal number, the spacing of the subnormals."""
        return 2.0 ** (self.min_exponent - self.precision + 1)

    @property
    def max(self) -> float:
        """The largest finite number."""
        return (2.0 - 2.0 ** (1 - self.precision)) * 2.0**self.max_exponent


_FORMATS = {
    "float16": FloatFormat("float16", 11, -14, 15),
    "bfloat16": FloatFormat("bfloat16", 8, -126, 127),
    # NVIDIA's TensorFloat-32: float32's exponent range, float16's 10 stored mantissa bits.
    "tf32": FloatFormat("tf32", 11, -126, 127),
    "float32": FloatFormat("float32", 24, -126, 127),
    "float64": FloatFormat("float64", 53, -1022, 1023),
}


def float_format(dtype: object) -> FloatFormat:
    """Describe a floating-point format.

    Parameters
    ----------
    dtype : dtype-like, str or FloatFormat
        A NumPy floating dtype (``np.float32``, ``"float16"``, an array's
        ``.dtype``), ``ml_dtypes.bfloat16`` or ``"bfloat16"``, a TensorFlow
        ``tf.DType``, ``"tf32"``, or a :class:`FloatFormat` (returned as is).

    Returns
    -------
    FloatFormat

    Raises
    ------
    ValueError
        For a dtype that is not one of the five formats (integers, complex, …).

    Examples
    --------
    >>> f = float_format("float32")
    >>> f.precision, f.unit_roundoff == 2.0**-24, f.max == float(np.finfo(np.float32).max)
    (24, True, True)
    >>> float_format("tf32").unit_roundoff == float_format(np.float16).unit_roundoff
    True
    """
    if isinstance(dtype, FloatFormat):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _FORMATS:
        return _FORMATS[dtype.lower()]
    numpy_dtype = getattr(dtype, "as_numpy_dtype", dtype)  # a tf.DType
    try:
        name = None if dtype is None else np.dtype(numpy_dtype).name  # np.dtype(None): float64
    except TypeError:
        name = None
    if name not in _FORMATS or name == "tf32":
        raise ValueError(
            f"dtype: expected a floating-point format (float16, bfloat16, float32, float64 "
            f"or 'tf32'), got {dtype!r}"
        )
    return _FORMATS[name]


def unit_roundoff(dtype: object) -> float:
    """Return the unit roundoff ``u`` of a floating-point format.

    ``u = 2**-p`` for ``p`` significand bits: rounding to nearest changes a
    number in the normal range by a relative amount of at most ``u``
    (Higham 2002, Theorem 2.2). It is half the machine epsilon.

    Parameters
    ----------
    dtype : dtype-like or str
        float16, bfloat16 (via ``ml_dtypes``), float32, float64, or ``"tf32"``
        (TensorFloat-32: 10 stored mantissa bits, as float16).

    Returns
    -------
    float

    Examples
    --------
    >>> unit_roundoff(np.float32) == 2.0**-24
    True
    >>> [unit_roundoff(d) for d in ("float16", "bfloat16", "tf32")] == [2.0**-11, 2.0**-8, 2.0**-11]
    True
    """
    return float_format(dtype).unit_roundoff


def gamma(n: int | np.ndarray, dtype: object) -> float | np.ndarray:
    """Return Higham's constant ``γ_n = n·u / (1 − n·u)``.

    ``γ_n`` bounds the accumulated relative error of ``n`` roundings:
    ``|∏(1 + δ_i)^±1 − 1| ≤ γ_n`` when every ``|δ_i| ≤ u`` and ``n·u < 1``
    (Higham 2002, Lemma 3.1). When ``n·u ≥ 1`` no such bound exists and the
    result is ``inf``: no guarantee.

    Parameters
    ----------
    n : int or array of ints
        Number of roundings (for a sum of products: the number of products),
        ``n ≥ 0``.
    dtype : dtype-like or str
        As for :func:`unit_roundoff`.

    Returns
    -------
    float or ndarray of float64

    Raises
    ------
    ValueError
        If ``n`` is not a non-negative integer.

    Examples
    --------
    >>> gamma(0, np.float32), gamma(1, np.float64) > 2.0**-53
    (0.0, True)
    >>> round(gamma(147, np.float32) / 2.0**-24, 3)   # a 7×7×3 sum in float32: just over 147 u
    147.001
    >>> gamma(2048, np.float16)          # 2048·2**-11 = 1: no guarantee
    inf
    """
    values = np.asarray(n)
    if values.dtype.kind not in "iu" or (values.size and values.min() < 0):
        raise ValueError(f"n: expected a non-negative integer (a count of roundings), got {n!r}")
    nu = values.astype(np.float64) * unit_roundoff(dtype)
    with np.errstate(divide="ignore"):
        result = np.where(nu < 1, nu / np.where(nu < 1, 1 - nu, 1.0), np.inf)
    return float(result) if result.ndim == 0 else result


def dot_error_bound(
    magnitude: np.ndarray | float,
    n: int,
    dtype: object,
    *,
    accumulate_dtype: object | None = None,
    exact: np.ndarray | float | None = None,
) -> np.ndarray | float:
    """Bound ``|computed − exact|`` for sums of ``n`` products, evaluated in any order.

    For ``s = Σ x_i·y_i`` with operands stored in ``dtype``, products and
    sums rounded in ``accumulate_dtype`` and the result rounded to ``dtype``:

    - accumulation (Higham 2002, eq. (3.5)): ``γ_n(acc) · Σ|x_i·y_i|``, for
      every order of summation, blocked, pairwise, with or without fused
      multiply-adds;
    - underflow (Higham 2002, eq. (2.8)): each product may also lose up to
      ``λ·u`` of the accumulation format (half its subnormal spacing);
      additions that underflow are exact. This term is nil in practice for
      float32 and float64 and matters for float16;
    - when ``accumulate_dtype`` is wider than ``dtype`` (float16 data summed in
      float32), the final rounding to ``dtype`` adds ``u(dtype)·|computed|``;
    - when it is narrower (TF32 or bfloat16 units fed float32 data), each
      operand is first rounded to it: two more roundings per product, so
      ``γ_{n+2}(acc)``.

    Parameters
    ----------
    magnitude : array_like
        ``Σ|x_i·y_i|`` for each sum (for a convolution, ``conv(|x|, |w|)``).
    n : int
        The number of products in each sum.
    dtype : dtype-like or str
        The format the operands and the result are stored in.
    accumulate_dtype : dtype-like or str, optional
        The format of the products and partial sums; default ``dtype``.
    exact : array_like, optional
        An upper bound on ``|s|`` for the output-rounding term; default
        ``magnitude`` (always valid, since ``|s| ≤ Σ|x_i·y_i|``).

    Returns
    -------
    float or ndarray of float64
        The bound, elementwise; ``inf`` where ``γ`` gives no guarantee.

    Examples
    --------
    A float32 filter gradient of a 28×28 output on a batch of 32 sums
    ``32·28·28`` products per weight:

    >>> bound = dot_error_bound(1.0, 32 * 28 * 28, np.float32)
    >>> bool(1.4e-3 < bound < 1.6e-3)
    True
    >>> dot_error_bound(1.0, 9, "float16", accumulate_dtype="float32") < 2.0**-10
    True
    """
    storage = float_format(dtype)
    acc = float_format(dtype if accumulate_dtype is None else accumulate_dtype)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.size and not np.all(magnitude >= 0):
        raise ValueError("magnitude: expected non-negative sums of absolute products")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative integer number of products, got {n!r}")
    n = int(n)
    roundings = n + 2 if acc.unit_roundoff > storage.unit_roundoff else n
    g = gamma(roundings, acc)
    underflow = n * acc.min_normal * acc.unit_roundoff
    bound = g * magnitude + underflow * (1 + g)
    if acc.unit_roundoff < storage.unit_roundoff:
        top = magnitude if exact is None else np.asarray(exact, dtype=np.float64)
        bound = (
            bound
            + storage.unit_roundoff * (top + bound)
            + storage.min_normal * (storage.unit_roundoff)
        )
    return float(bound) if bound.ndim == 0 else bound


def conv_error_bound(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    accumulate_dtype: object | None = None,
) -> np.ndarray:
    """Bound, elementwise, the rounding error of any ``tf.nn.conv2d`` evaluation.

    The arguments are those of :func:`tf.nn.conv2d`. The operands are taken
    as stored: ``filters`` is converted to ``input.dtype`` first, as
    ``tf.nn.conv2d`` and :func:`companion.numpy_conv.conv2d` do, and the bound
    is on ``|computed − exact|``, where *exact* is the convolution of those
    stored values in exact arithmetic. Each output is a sum of
    ``n = kh·kw·in_depth`` products (``in_depth = cin / groups``), so
    :func:`dot_error_bound` applies with ``magnitude = conv(|x|, |w|)``
    (Higham 2002, §3.1): in the notation of the book,
    ``γ_n(acc)·conv(|x|, |w|)``, plus ``u(out)·|exact|`` when the accumulation
    is wider than storage (plus the tiny terms listed there).

    ``conv(|x|, |w|)`` and the estimate of ``|exact|`` are computed in float64
    with :func:`companion.numpy_conv.conv2d` and enlarged by their own
    worst-case float64 error, so the bound is rigorous.

    Parameters
    ----------
    input, filters, strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`; ``input`` must be float16, bfloat16,
        float32 or float64.
    accumulate_dtype : dtype-like or str, optional
        The format the products are summed in; default ``input.dtype``.

    Returns
    -------
    ndarray of float64
        One bound per output element, in the output's shape.

    Raises
    ------
    ValueError
        For a non-floating input, or any argument :func:`tf.nn.conv2d` rejects.

    Examples
    --------
    >>> x = np.ones((1, 3, 3, 1), np.float32)
    >>> w = np.full((2, 2, 1, 1), 0.1, np.float32)
    >>> bound = conv_error_bound(x, w, 1, "VALID")
    >>> # rtol: the bound's float64 arithmetic, far below the 1e-6 asked here.
    >>> bound.shape, bool(np.allclose(bound, gamma(4, np.float32) * 0.4, rtol=1e-6))
    ((1, 2, 2, 1), True)
    """
    from companion import numpy_conv

    x = np.asarray(input)
    if x.dtype.kind != "f" and x.dtype.name != "bfloat16":
        raise ValueError(
            f"input: expected a float16, bfloat16, float32 or float64 array, got dtype {x.dtype}"
        )
    storage = float_format(x.dtype)
    w = np.asarray(filters).astype(x.dtype, copy=False)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    kwargs = {"data_format": data_format, "dilations": dilations}
    magnitude = numpy_conv.conv2d(np.abs(x64), np.abs(w64), strides, padding, **kwargs)
    estimate = numpy_conv.conv2d(x64, w64, strides, padding, **kwargs)
    n = int(np.prod(w.shape[:3]))
    # The float64 evaluations are themselves sums of n products: undo their error.
    g64 = gamma(n, np.float64)
    magnitude = magnitude / (1 - g64)
    exact = np.abs(estimate) + g64 * magnitude
    acc = storage.name if accumulate_dtype is None else accumulate_dtype
    return np.asarray(
        dot_error_bound(magnitude, n, storage.name, accumulate_dtype=acc, exact=exact)
    )


def assert_conv_close(actual: np.ndarray, desired: np.ndarray, bound: np.ndarray | float) -> float:
    """Assert ``|actual − desired| ≤ bound`` elementwise, with a useful report.

    ``desired`` is a float64 reference treated as exact: to compare two
    float32 implementations, compare each one with the float64 reference
    (computed from the same stored operands), within the bound of its own
    evaluation, rather than with each other. If the reference's own error is
    not negligible (a float64 result checked against a float64 reference),
    add the reference's bound to ``bound``.

    Parameters
    ----------
    actual : array_like
        The computed result, in any floating dtype.
    desired : ndarray of float64
        The reference, in the same shape.
    bound : array_like of float
        Non-negative, broadcastable to the shape: typically
        :func:`conv_error_bound` or :func:`dot_error_bound`.

    Returns
    -------
    float
        The largest ratio ``|actual − desired| / bound`` (0 for empty arrays);
        at most 1 when the assertion holds.

    Raises
    ------
    AssertionError
        When the shapes differ or some element is outside its bound; the
        message gives how many, the largest error, its ratio to the bound and
        where it occurred. Equal infinities and NaNs in the same places agree.
    ValueError
        When ``desired`` is not float64, or ``bound`` is negative, NaN or not
        broadcastable.

    Examples
    --------
    >>> desired = np.array([1.0, 2.0])
    >>> assert_conv_close(np.float32([1.0, 2.0000002]), desired, 2.0**-21)  # one float32 step
    0.5
    >>> assert_conv_close(np.float32([1.0, 2.000001]), desired, 2.0**-21)   # four steps
    Traceback (most recent call last):
    ...
    AssertionError: not within the rounding-error bound: 1 of 2 elements exceed it
      largest error 9.537e-07 at index (1,), 2 × its bound 4.768e-07:
        actual 2.0000009536743164, desired 2.0
    """
    desired = np.asarray(desired)
    if desired.dtype != np.float64:
        raise ValueError(
            f"desired: expected a float64 reference (treated as exact), got dtype {desired.dtype}"
        )
    actual = np.asarray(actual)
    if actual.shape != desired.shape:
        raise AssertionError(f"shapes differ: actual {actual.shape}, desired {desired.shape}")
    try:
        bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), desired.shape)
    except ValueError:
        raise ValueError(
            f"bound: expected a scalar or an array broadcastable to {desired.shape}, "
            f"got shape {np.shape(bound)}"
        ) from None
    if bound.size and not np.all(bound >= 0):
        raise ValueError("bound: expected non-negative values (no NaN)")
    if actual.size == 0:
        return 0.0
    values = actual.astype(np.float64)
    same = (values == desired) | (np.isnan(values) & np.isnan(desired))
    with np.errstate(invalid="ignore"):
        error = np.where(same, 0.0, np.abs(values - desired))
    error = np.where(np.isnan(error), np.inf, error)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    failed = error > bound
    if np.any(failed):
        raise AssertionError(_report(values, desired, bound, error, ratio, failed))
    return float(ratio.max())


def _report(values, desired, bound, error, ratio, failed) -> str:
    def at(flat: int) -> tuple[tuple[int, ...], str]:
        where = np.unravel_index(flat, desired.shape)
        index = tuple(int(i) for i in where)
        return index, (
            f"{error[where]:.4g} at index {index}, {ratio[where]:.3g} × its bound "
            f"{bound[where]:.4g}:\n    actual {float(values[where])!r}, "
            f"desired {float(desired[where])!r}"
        )

    largest, text = at(int(np.argmax(np.where(failed, error, -1.0))))
    lines = [
        f"not within the rounding-error bound: {int(failed.sum())} of {desired.size} "
        "elements exceed it",
        f"  largest error {text}",
    ]
    worst, text = at(int(np.argmax(np.where(failed, ratio, -1.0))))
    if worst != largest:
        lines.append(f"  largest ratio {text}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Units in the last place
# --------------------------------------------------------------------------

#: The unsigned integer type with each format's bit pattern.
_BITS = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


def _float_array(value: object, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.name not in _BITS:
        raise ValueError(
            f"{name}: expected a float16, bfloat16, float32 or float64 array, "
            f"got dtype {array.dtype}"
        )
    return array


def _sign_and_magnitude(array: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sign bits and the bit patterns without sign; NaN raises."""
    bits = array.view(_BITS[array.dtype.name])  # same item size: any layout
    top = np.array(1, bits.dtype) << np.array(8 * bits.itemsize - 1, bits.dtype)
    magnitude = bits & ~top
    infinity = np.array(np.inf, array.dtype).reshape(1).view(bits.dtype)[0]
    if np.any(magnitude > infinity):
        where = tuple(int(i) for i in np.argwhere(magnitude > infinity)[0])
        raise ValueError(f"{name}: expected no NaN (NaN is at no distance), got NaN at {where}")
    return (bits & top) != 0, magnitude


def _ordinal(array: np.ndarray) -> np.ndarray:
    """Each value's position among the floats of its format, as int64 (not for float64)."""
    negative, magnitude = _sign_and_magnitude(array, "values")
    magnitude = magnitude.astype(np.int64)
    return np.where(negative, -magnitude, magnitude)


def _from_ordinal(ordinal: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`_ordinal` (zero comes back as +0)."""
    bits_type = _BITS[dtype.name]
    magnitude = np.abs(ordinal).astype(bits_type)
    top = np.array(1, bits_type) << np.array(8 * np.dtype(bits_type).itemsize - 1, bits_type)
    bits = np.where(ordinal < 0, magnitude | top, magnitude).astype(bits_type)
    return bits.view(dtype)


def ulp_distance(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray | int:
    """Count the representable floats from ``a`` to ``b``, elementwise and exactly.

    The floats of a format, ordered from ``-inf`` to ``inf``, are numbered
    consecutively; the distance is the difference of the two numbers. So
    adjacent floats are 1 apart, whatever their size; ``+0`` and ``-0`` are
    the same number (0 apart); the smallest positive and negative subnormals
    are 2 apart (zero lies between them); an infinity is the number after
    the largest finite one. A distance of ``k`` means ``k`` roundings' worth
    of difference at the operands' magnitude: the natural unit for comparing
    floating-point results (Goldberg 1991, §1.2; Higham 2002, §2.1).

    Parameters
    ----------
    a, b : array_like
        Of the same dtype, float16, bfloat16 (``ml_dtypes``), float32 or
        float64; broadcast against each other. Python floats are float64:
        convert explicitly to compare them with float32 values.

    Returns
    -------
    ndarray or int
        Non-negative integers: int64 for float16, bfloat16 and float32; uint64
        for float64, whose largest distance (``-inf`` to ``inf``, about
        ``1.8·10^19``) exceeds int64. A Python ``int`` for scalar operands.

    Raises
    ------
    ValueError
        If either operand holds a NaN, the dtypes differ, or a dtype is not one
        of the four formats.

    Examples
    --------
    >>> one = np.float32(1.0)
    >>> ulp_distance(one, np.nextafter(one, np.float32(2)))
    1
    >>> ulp_distance(np.float32(-0.0), np.float32(0.0))
    0
    >>> tiny = np.float32(2.0**-149)                       # the smallest subnormal
    >>> ulp_distance(-tiny, tiny)
    2
    >>> ulp_distance(np.float32([1.0, 2.0]), np.float32([1.0 + 2**-21, 2.0 + 2**-21]))
    array([4, 2])
    >>> ulp_distance(np.finfo(np.float16).max, np.float16(np.inf))
    1
    """
    x, y = _float_array(a, "a"), _float_array(b, "b")
    if x.dtype != y.dtype:
        raise ValueError(
            f"b: expected the dtype of a ({x.dtype}), got {y.dtype}; convert one "
            "explicitly, knowing that the conversion rounds"
        )
    x, y = np.broadcast_arrays(x, y)
    x_negative, x_magnitude = _sign_and_magnitude(x, "a")
    y_negative, y_magnitude = _sign_and_magnitude(y, "b")
    if x.dtype.name == "float64":
        # uint64 throughout: each magnitude is below 2**63, so their sum fits.
        larger = np.maximum(x_magnitude, y_magnitude)
        smaller = np.minimum(x_magnitude, y_magnitude)
        same_side = (x_negative == y_negative) | (x_magnitude == 0) | (y_magnitude == 0)
        distance = np.where(same_side, larger - smaller, x_magnitude + y_magnitude)
    else:
        x_ordinal = np.where(x_negative, -x_magnitude.astype(np.int64), x_magnitude)
        y_ordinal = np.where(y_negative, -y_magnitude.astype(np.int64), y_magnitude)
        distance = np.abs(x_ordinal.astype(np.int64) - y_ordinal.astype(np.int64))
    return int(distance) if distance.ndim == 0 else distance


def ulp(x: np.ndarray | float, dtype: object | None = None) -> np.ndarray | float:
    """The spacing of a format's floats at the magnitude of ``x``: one unit in the last place.

    For ``2**e ≤ |x| < 2**(e+1)`` in a format with ``p`` significand bits, the
    floats of that *binade* are ``2**(e−p+1)`` apart (Higham 2002, §2.1); below
    the smallest normal number, the subnormals are the smallest subnormal
    apart. Rounding to nearest moves ``x`` by at most half of this, and the
    difference of two floats of one binade is a whole multiple of it.

    Parameters
    ----------
    x : array_like
        Any real values (a float64 reference, a float32 result, …).
    dtype : dtype-like or str, optional
        The format whose spacing is wanted (float16, bfloat16, ``"tf32"``,
        float32, float64); default ``x``'s own dtype.

    Returns
    -------
    float or ndarray of float64
        ``inf`` where ``|x|`` exceeds the format's largest finite number.

    Raises
    ------
    ValueError
        For NaN, or a dtype that is not a floating-point format.

    Examples
    --------
    >>> ulp(np.float32(1.0)) == 2.0**-23, ulp(3.0, "float32") == 2.0**-22
    (True, True)
    >>> ulp(0.0, "float16") == 2.0**-24                     # the subnormal spacing
    True
    >>> float(ulp(4.97, "float32")) == 2.0**-21, float(ulp(4.97, "tf32")) == 2.0**-8
    (True, True)
    """
    array = np.asarray(x)
    if array.dtype.kind not in "fiu" and array.dtype.name != "bfloat16":
        raise ValueError(f"x: expected real numbers, got dtype {array.dtype}")
    fmt = float_format(array.dtype if dtype is None else dtype)
    values = np.abs(array.astype(np.float64))
    if np.any(np.isnan(values)):
        raise ValueError("x: expected no NaN (a NaN has no magnitude)")
    _, exponent = np.frexp(values)  # values = m·2**exponent with 0.5 ≤ m < 1
    binade = np.where(values < fmt.min_normal, fmt.min_exponent, exponent.astype(np.int64) - 1)
    result = np.ldexp(1.0, binade - fmt.precision + 1)
    result = np.where(values > fmt.max, np.inf, result)
    return float(result) if result.ndim == 0 else result


def round_to_format(
    x: np.ndarray | float, dtype: object, *, rounding: str = "nearest"
) -> np.ndarray:
    """Round values to a narrower format, keeping their own array dtype.

    This emulates hardware that reads float32 operands in a narrower format:
    NVIDIA's TF32 tensor cores keep float32's exponent and 10 of its 23
    stored mantissa bits; bfloat16 keeps 7; float16 keeps 10 with a smaller
    range. ``"nearest"`` rounds to nearest, ties to even, overflowing to
    ``±inf`` as IEEE 754 does; ``"truncate"`` drops the extra bits (rounds
    toward zero), as some hardware does when fed float32 data directly.

    Parameters
    ----------
    x : array_like
        float16, bfloat16, float32 or float64 values.
    dtype : dtype-like or str
        The target format: float16, bfloat16, ``"tf32"``, float32 or float64.
    rounding : {"nearest", "truncate"}, optional

    Returns
    -------
    ndarray
        Of ``x``'s dtype, every finite value representable in the target
        format; infinities and NaN unchanged.

    Raises
    ------
    ValueError
        For an unknown format or ``rounding``.

    Examples
    --------
    >>> x = np.float32([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-12])
    >>> (round_to_format(x, "tf32") - 1) / 2.0**-10      # ties to even, then nearest
    array([0., 2., 0.], dtype=float32)
    >>> (round_to_format(x, "tf32", rounding="truncate") - 1) / 2.0**-10
    array([0., 1., 0.], dtype=float32)
    >>> round_to_format(np.float32(70000.0), "float16")    # beyond float16's range
    array(inf, dtype=float32)
    """
    if rounding not in ("nearest", "truncate"):
        raise ValueError(f"rounding: expected 'nearest' or 'truncate', got {rounding!r}")
    array = _float_array(x, "x")
    fmt = float_format(dtype)
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    safe = np.where(finite, values, 0.0)
    quantum = np.asarray(ulp(safe, fmt))  # a power of two: the division is exact
    quantum = np.where(np.isinf(quantum), ulp(fmt.max, fmt), quantum)
    scaled = safe / quantum
    whole = np.round(scaled) if rounding == "nearest" else np.trunc(scaled)
    rounded = whole * quantum
    # Beyond the largest finite number: nearest overflows, truncation stops at the maximum.
    overflow = np.inf if rounding == "nearest" else fmt.max
    rounded = np.where(np.abs(rounded) > fmt.max, np.copysign(overflow, safe), rounded)
    result = np.where(finite, rounded, values)
    with np.errstate(over="ignore"):
        return np.asarray(result.astype(array.dtype))


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float64 values once, to nearest, into ``dtype``.

    NumPy converts float64 to float32 and float16 directly, but ``ml_dtypes``
    converts float64 to bfloat16 through float32: two roundings, which can
    differ from one. Rounding in float64 first makes the conversion exact.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.dtype(dtype).name == "bfloat16":
        values = round_to_format(values, "bfloat16")
    with np.errstate(over="ignore"):
        return values.astype(dtype)


# --------------------------------------------------------------------------
# The probabilistic estimate
# --------------------------------------------------------------------------


def probabilistic_gamma(n: int | np.ndarray, dtype: object, lam: float = 1.0) -> float | np.ndarray:
    """Higham and Mary's probabilistic constant ``γ̃_n(λ)``, the typical counterpart of ``γ_n``.

    If the rounding errors are independent random variables of mean zero (a
    model, not a theorem about every input), a product of ``n`` factors
    ``(1 + δ_i)^±1`` equals ``1 + θ_n`` with
    ``|θ_n| ≤ γ̃_n(λ) = exp(λ·√n·u + n·u²/(1 − u)) − 1 ≈ λ·√n·u``, except with
    probability at most ``2·exp(−λ²(1 − u)²/2)``; an inner product of ``n``
    terms then satisfies ``|ŝ − s| ≤ γ̃_n(λ)·Σ|x_i·y_i|`` except with
    probability at most ``n`` times that (Higham & Mary 2019, §3–4). With
    ``λ`` about 1 it is an estimate of the typical error; a larger ``λ``
    gives a bound that fails rarely: see :func:`bound_probability`.

    Parameters
    ----------
    n : int or array of ints
        Number of roundings (products in an inner product), ``n ≥ 0``.
    dtype : dtype-like or str
        As for :func:`unit_roundoff`.
    lam : float, optional
        ``λ > 0``.

    Returns
    -------
    float or ndarray of float64

    Raises
    ------
    ValueError
        For a negative or non-integer ``n`` or ``λ ≤ 0``.

    Examples
    --------
    >>> u = unit_roundoff(np.float32)
    >>> round(probabilistic_gamma(2304, np.float32) / u, 3)     # √2304 = 48
    48.0
    >>> probabilistic_gamma(2304, np.float32, lam=5) < gamma(2304, np.float32) / 9
    True
    """
    values = np.asarray(n)
    if values.dtype.kind not in "iu" or (values.size and values.min() < 0):
        raise ValueError(f"n: expected a non-negative integer (a count of roundings), got {n!r}")
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam: expected a positive number λ, got {lam!r}")
    u = unit_roundoff(dtype)
    counts = values.astype(np.float64)
    result = np.expm1(lam * np.sqrt(counts) * u + counts * u * u / (1 - u))
    return float(result) if result.ndim == 0 else result


def bound_probability(n: int, dtype: object, lam: float) -> float:
    """A lower bound on the probability that the λ-bound of an ``n``-term inner product holds.

    ``Q(λ, n) = 1 − 2n·exp(−λ²(1 − u)²/2)`` under Higham and Mary's model of
    independent, mean-zero rounding errors (Higham & Mary 2019); 0 when that
    is negative (the bound is then only an estimate).

    Examples
    --------
    >>> bound_probability(9, np.float32, lam=1.0)               # λ = 1: no guarantee
    0.0
    >>> bound_probability(9, np.float32, lam=6.0) > 1 - 1e-6
    True
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative integer number of products, got {n!r}")
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam: expected a positive number λ, got {lam!r}")
    u = unit_roundoff(dtype)
    return max(0.0, 1.0 - 2.0 * int(n) * math.exp(-(lam**2) * (1 - u) ** 2 / 2))


def probabilistic_error_bound(
    magnitude: np.ndarray | float, n: int, dtype: object, *, lam: float = 1.0
) -> np.ndarray | float:
    """The probabilistic counterpart of :func:`dot_error_bound`: ``γ̃_n(λ)·Σ|x_i·y_i|``.

    With the default ``λ = 1`` this is the *typical* size of the rounding
    error of a sum of ``n`` products, about ``√n·u·Σ|x_i·y_i|`` (Higham & Mary
    2019), where the worst case is ``n·u·Σ|x_i·y_i|``. It holds with
    probability at least :func:`bound_probability` under their model; it is
    not a guarantee (sums of like-signed terms added sequentially can have
    correlated errors).

    Parameters
    ----------
    magnitude : array_like
        ``Σ|x_i·y_i|`` for each sum, as for :func:`dot_error_bound`.
    n : int
        The number of products in each sum.
    dtype : dtype-like or str
        The format of the products and partial sums.
    lam : float, optional
        ``λ > 0``.

    Returns
    -------
    float or ndarray of float64

    Examples
    --------
    >>> worst = dot_error_bound(1.0, 2304, np.float32)
    >>> typical = probabilistic_error_bound(1.0, 2304, np.float32)
    >>> round(worst / typical)                                   # √2304
    48
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.size and not np.all(magnitude >= 0):
        raise ValueError("magnitude: expected non-negative sums of absolute products")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative integer number of products, got {n!r}")
    bound = probabilistic_gamma(int(n), dtype, lam) * magnitude
    return float(bound) if bound.ndim == 0 else bound


# --------------------------------------------------------------------------
# Summation in several orders
# --------------------------------------------------------------------------

#: The methods :func:`summation` knows, and :func:`summation_error_bound` bounds (but "kahan").
SUMMATION_METHODS = ("sequential", "pairwise", "kahan", "float64", "exact")


def _check_method(method: str, allowed: tuple[str, ...], name: str = "method") -> str:
    if method not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {method!r}")
    return method


def _pairwise(values: np.ndarray) -> np.ndarray:
    """Sum along axis 0 by halves, recursively: depth ⌈log2 n⌉."""
    if values.shape[0] == 1:
        return values[0]
    half = values.shape[0] // 2
    return _pairwise(values[:half]) + _pairwise(values[half:])


def _next_float(values: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The neighbour of each value in its format, up (+1) or down (−1)."""
    return _from_ordinal(_ordinal(values) + direction, values.dtype)


def _exact_sums(terms: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each row's exact sum, rounded once (to nearest, ties to even) to ``dtype``.

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
    rounded = _cast(high, dtype)
    back = rounded.astype(np.float64)
    candidates = np.flatnonzero((back != high) & np.isfinite(back))
    if candidates.size:
        side = np.where(high[candidates] > back[candidates], 1, -1)
        other = _next_float(rounded[candidates], side)
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
    method = _check_method(method, SUMMATION_METHODS)
    array = _float_array(values, "values")
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
        return np.asarray(_cast(total, dtype))[()]
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
    return _exact_sums(rows, dtype).reshape(moved.shape[1:])[()]


def _round_sum(high: np.ndarray, low: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round ``high + low`` (float64, ``|low|`` at most half an ULP of ``high``) once to ``dtype``.

    Rounding ``high`` alone is right unless ``high`` is exactly halfway between two
    neighbours of ``dtype``; then the sign of ``low`` decides.
    """
    rounded = _cast(high, dtype)
    back = rounded.astype(np.float64)
    side = np.where(high > back, 1, -1)
    other = _next_float(rounded, side).astype(np.float64)
    with np.errstate(invalid="ignore"):
        tie = (back != high) & np.isfinite(back) & ((back + other) / 2 == high) & (low != 0)
    if np.any(tie):
        toward = np.where(low > 0, 1, -1)
        moved = np.where(toward == side, _next_float(rounded, side), rounded)
        rounded = np.where(tie, moved, rounded)
    return rounded


def fma_dot(x: np.ndarray, y: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """The dot product as a chain of fused multiply-adds, ``s ← fl(s + x_i·y_i)``, in order.

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
    a, b = _float_array(x, "x"), _float_array(y, "y")
    if a.dtype != b.dtype:
        raise ValueError(f"y: expected the dtype of x ({a.dtype}), got {b.dtype}")
    if a.dtype == np.float64:
        raise ValueError("x: expected float16, bfloat16 or float32 (exact products in float64)")
    a, b = np.broadcast_arrays(a, b)
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    total = np.zeros(a.shape[1:], a.dtype)
    for left, right in zip(a, b, strict=True):
        product = left.astype(np.float64) * right.astype(np.float64)  # exact
        high, low = _two_sum(total.astype(np.float64), product)
        total = _round_sum(high, low, a.dtype)
    return total[()]


def summation_error_bound(
    magnitude: np.ndarray | float, n: int, dtype: object, method: str = "sequential"
) -> np.ndarray | float:
    """Bound ``|computed − exact|`` for :func:`summation` of ``n`` values.

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
    method = _check_method(method, SUMMATION_METHODS)
    if method == "kahan":
        raise ValueError(
            "method: Kahan's summation has only a first-order bound (2u + O(n·u²))·Σ|x_i| "
            "(Higham 2002, eq. (4.8)); no rigorous bound is implemented for 'kahan'"
        )
    fmt = float_format(dtype)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.size and not np.all(magnitude >= 0):
        raise ValueError("magnitude: expected non-negative sums of absolute values")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative integer number of values, got {n!r}")
    n = int(n)
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


# --------------------------------------------------------------------------
# An accurate convolution
# --------------------------------------------------------------------------

#: The modes of :func:`accurate_conv2d`.
ACCURATE_MODES = ("float64", "compensated", "exact")


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s + e == a + b`` exactly, with ``s = fl(a + b)``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split of each value into two halves of ``⌈p/2⌉`` bits (Dekker 1971)."""
    factor = a.dtype.type(2.0 ** math.ceil(float_format(a.dtype).precision / 2) + 1)
    c = factor * a
    high = c - (c - a)
    return high, a - high


def _two_product(
    a: np.ndarray, a_split: tuple, b: np.ndarray, b_split: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: ``p + e == a·b`` exactly (barring underflow), ``p = fl(a·b)``."""
    (ah, al), (bh, bl) = a_split, b_split
    p = a * b
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _windows(x: np.ndarray, geometry) -> np.ndarray:
    """All windows, ``(batch, out_h, out_w, channels, kh, kw)``, as a view of the padded input."""
    (top, bottom), (left, right) = geometry.pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    view = sliding_window_view(padded, geometry.effective_kernel, axis=(1, 2))
    view = view[:, ::sh, ::sw, :, ::dh, ::dw]
    return view[:, : geometry.out_height, : geometry.out_width]


def _conv_arguments(input, filters, strides, padding, data_format, dilations):
    from companion import numpy_conv
    from companion import padding as tfpad

    data_format = tfpad.normalize_data_format(data_format)
    x = _float_array(input, "input")
    if x.ndim != 4:
        raise ValueError(f"input: expected a rank-4 array in {data_format} order, got {x.shape}")
    w = np.asarray(filters)
    if w.ndim != 4:
        raise ValueError(
            "filters: expected a rank-4 array (kernel_height, kernel_width, in_depth, "
            f"out_channels), got shape {w.shape}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        w = w.astype(x.dtype, copy=False)  # as tf.nn.conv2d converts a NumPy filter
    geometry = numpy_conv.conv_geometry(x.shape, w.shape, strides, padding, data_format, dilations)
    nhwc = x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)
    return data_format, x, w, nhwc, geometry


def conv_magnitude(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> np.ndarray:
    """``conv(|x|, |w|)``: each output's ``Σ|x_i·w_i|``, rigorously from above.

    The scale of every rounding-error bound and estimate of a convolution
    (:func:`dot_error_bound`, :func:`probabilistic_error_bound`,
    :func:`compensated_error_bound`). ``filters`` is converted to
    ``input.dtype`` first, as in :func:`conv_error_bound`; the float64
    evaluation is enlarged by its own worst-case error.

    Returns
    -------
    ndarray of float64
        In the output's shape and ``data_format`` order.

    Examples
    --------
    >>> m = conv_magnitude(np.ones((1, 3, 3, 1), np.float32), -np.ones((2, 2, 1, 1)), 1, "VALID")
    >>> m.shape, bool(np.all((m >= 4) & (m < 4 + 1e-14)))
    ((1, 2, 2, 1), True)
    """
    from companion import numpy_conv

    data_format, x, w, _, geometry = _conv_arguments(
        input, filters, strides, padding, data_format, dilations
    )
    magnitude = numpy_conv.conv2d(
        np.abs(x.astype(np.float64)),
        np.abs(w.astype(np.float64)),
        strides,
        padding,
        data_format,
        dilations,
    )
    return magnitude / (1 - gamma(geometry.terms, np.float64))


def compensated_error_bound(
    magnitude: np.ndarray | float,
    n: int,
    dtype: object,
    *,
    exact: np.ndarray | float | None = None,
) -> np.ndarray | float:
    """Bound the error of a compensated dot product (``accurate_conv2d(mode="compensated")``).

    Ogita, Rump and Oishi's Dot2 (2005, Proposition 5.5 and Theorem 5.3)
    computes each product exactly as a sum of two floats (TwoProduct) and
    carries every addition's error along (TwoSum), so the result is as
    accurate as if computed in twice the working precision and rounded:
    ``|ŝ − s| ≤ u·|s| + γ_n²·Σ|x_i·y_i|``, without underflow.

    Parameters
    ----------
    magnitude : array_like
        ``Σ|x_i·y_i|``.
    n : int
        The number of products.
    dtype : dtype-like or str
        The working precision.
    exact : array_like, optional
        An upper bound on ``|s|``; default ``magnitude``.

    Returns
    -------
    float or ndarray of float64

    Examples
    --------
    >>> bound = compensated_error_bound(1.0, 9, np.float32, exact=0.01)
    >>> round(bound / unit_roundoff(np.float32), 4)       # one rounding of |s|, nearly
    0.01
    """
    fmt = float_format(dtype)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.size and not np.all(magnitude >= 0):
        raise ValueError("magnitude: expected non-negative sums of absolute products")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative integer number of products, got {n!r}")
    top = magnitude if exact is None else np.asarray(exact, dtype=np.float64)
    bound = fmt.unit_roundoff * top + gamma(int(n), fmt) ** 2 * magnitude
    return float(bound) if bound.ndim == 0 else bound


def accurate_conv2d(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    mode: str = "compensated",
) -> np.ndarray:
    """``tf.nn.conv2d``, computed more accurately than any single-precision order allows.

    The arguments and the semantics (padding, strides, dilations, groups,
    data formats) are those of :func:`companion.numpy_conv.conv2d`, whose
    :func:`~companion.numpy_conv.conv_geometry` resolves them; the result has
    ``input``'s dtype. The modes:

    - ``"float64"``: products and sums in float64, rounded once at the end
      (for float16/bfloat16/float32 data, whose products are exact in
      float64). Error: :func:`conv_error_bound` with
      ``accumulate_dtype="float64"``, about one rounding of the output.
      For float64 data it is the ordinary float64 convolution;
    - ``"compensated"``: Ogita, Rump and Oishi's Dot2 in the working
      precision (float32 for float16, bfloat16 and float32 data): exact
      products (TwoProduct) and error-free additions (TwoSum), as accurate as
      twice the working precision (:func:`compensated_error_bound`), without
      a wider type: the method for hardware that has none;
    - ``"exact"``: the exact sum of the stored operands' products, rounded
      once to nearest (:func:`math.fsum`, with a correction for double
      rounding): the reference against which errors are counted in ULPs.
      Slow (a Python loop over the outputs).

    Parameters
    ----------
    input, filters, strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`; ``input`` float16, bfloat16, float32 or
        float64, ``filters`` converted to its dtype.
    mode : {"float64", "compensated", "exact"}, keyword-only

    Returns
    -------
    ndarray
        In ``data_format`` order, of ``input``'s dtype.

    Raises
    ------
    ValueError
        For an unknown mode, a non-floating input, or any argument
        :func:`companion.numpy_conv.conv2d` rejects.

    Examples
    --------
    Nine products of float32 numbers whose float32 sum loses its last term:

    >>> x = np.float32([1.0, 2.0**-24, 2.0**-24] + [0.0] * 6).reshape(1, 3, 3, 1)
    >>> w = np.ones((3, 3, 1, 1), np.float32)
    >>> float(accurate_conv2d(x, w, 1, "VALID", mode="exact")[0, 0, 0, 0]) == 1 + 2.0**-23
    True
    >>> float(accurate_conv2d(x, w, 1, "VALID")[0, 0, 0, 0]) == 1 + 2.0**-23
    True
    """
    from companion import numpy_conv

    mode = _check_method(mode, ACCURATE_MODES, "mode")
    data_format, x, w, nhwc, geometry = _conv_arguments(
        input, filters, strides, padding, data_format, dilations
    )
    if mode == "float64":
        wide = numpy_conv.conv2d(
            x.astype(np.float64), w.astype(np.float64), strides, padding, data_format, dilations
        )
        return _cast(wide, x.dtype)
    if geometry.is_empty:
        out = np.zeros(geometry.output_shape, x.dtype)
    elif mode == "compensated":
        out = _compensated(nhwc, w, geometry).astype(x.dtype)
    else:
        out = _exact(nhwc, w, geometry)
    if data_format == "NCHW":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out


def _compensated(x: np.ndarray, w: np.ndarray, geometry) -> np.ndarray:
    """Dot2 over the taps, vectorised over the outputs; NHWC, in the working precision."""
    work = np.float64 if x.dtype == np.float64 else np.float32
    x, w = x.astype(work), w.astype(work)
    x_split = tuple(_windows(part, geometry) for part in _split(x))
    view = _windows(x, geometry)
    w_split = _split(w)
    groups, depth = geometry.groups, geometry.in_depth
    per_group = geometry.out_channels // groups
    shape = (*geometry.output_shape[:3], per_group)
    blocks = []
    for g in range(groups):
        columns = slice(g * per_group, (g + 1) * per_group)
        total = np.zeros(shape, work)
        carry = np.zeros(shape, work)
        for a in range(geometry.kernel_height):
            for b in range(geometry.kernel_width):
                for c in range(depth):
                    channel = g * depth + c
                    tap = view[:, :, :, channel, a, b, np.newaxis]
                    tap_split = tuple(part[:, :, :, channel, a, b, np.newaxis] for part in x_split)
                    weight = w[a, b, c, columns]
                    weight_split = tuple(part[a, b, c, columns] for part in w_split)
                    product, product_error = _two_product(tap, tap_split, weight, weight_split)
                    total, sum_error = _two_sum(total, product)
                    carry = carry + (sum_error + product_error)
        blocks.append(total + carry)
    return np.concatenate(blocks, axis=3)


def _exact(x: np.ndarray, w: np.ndarray, geometry) -> np.ndarray:
    """The exactly rounded convolution, NHWC.

    For float16, bfloat16 and float32 data the products are exact in float64, and a float64
    convolution (in any order) is within ``γ_n(float64)·conv(|x|, |w|)`` of the exact sum:
    where that interval lies inside one rounding interval of the target format, rounding
    the float64 result gives the exactly rounded one. The few other outputs (and every
    float64 output) are summed exactly with :func:`math.fsum`.
    """
    if x.dtype == np.float64:
        return _exact_by_fsum(x, w, geometry)
    from companion import numpy_conv

    (top, bottom), (left, right) = geometry.pads
    args = {
        "strides": list(geometry.strides),
        "padding": [[0, 0], [top, bottom], [left, right], [0, 0]],
        "dilations": list(geometry.dilations),
    }
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    value = numpy_conv.conv2d(x64, w64, **args)
    magnitude = numpy_conv.conv2d(np.abs(x64), np.abs(w64), **args)
    g = gamma(geometry.terms, np.float64)
    # The float64 error, from above, allowing for the rounding of these very formulas.
    slack = g / (1 - g) * magnitude * (1 + 2.0**-40) + 2.0**-1000
    rounded = _cast(value, x.dtype)
    below = _next_float(rounded, np.full(rounded.shape, -1)).astype(np.float64)
    above = _next_float(rounded, np.full(rounded.shape, 1)).astype(np.float64)
    centre = rounded.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        safe = (
            np.isfinite(above)
            & np.isfinite(below)
            & (value - (centre + below) / 2 > slack * (1 + 2.0**-40))
            & ((centre + above) / 2 - value > slack * (1 + 2.0**-40))
        )
    unsafe = np.argwhere(~safe)
    if len(unsafe):
        rounded[tuple(unsafe.T)] = _exact_outputs(x, w, geometry, unsafe)
    return rounded


def _exact_outputs(x: np.ndarray, w: np.ndarray, geometry, where: np.ndarray) -> np.ndarray:
    """The exactly rounded outputs at the given NHWC indices, by :func:`math.fsum`."""
    view = _windows(x, geometry)  # (n, h, w, channels, kh, kw)
    depth, per_group = geometry.in_depth, geometry.out_channels // geometry.groups
    b, i, j, k = where.T
    channels = (k // per_group)[:, np.newaxis] * depth + np.arange(depth)
    windows = view[b[:, np.newaxis], i[:, np.newaxis], j[:, np.newaxis], channels]
    terms = windows.transpose(0, 2, 3, 1).reshape(len(where), -1).astype(np.float64)
    weights = w[..., k].transpose(3, 0, 1, 2).reshape(len(where), -1).astype(np.float64)
    return _exact_sums(terms * weights, x.dtype)


def _exact_by_fsum(x: np.ndarray, w: np.ndarray, geometry, chunk_terms: int = 2_000_000):
    """The exactly rounded convolution, NHWC, by :func:`math.fsum` for every output."""
    n_out, height, width, _ = geometry.output_shape
    groups, depth = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    per_group = geometry.out_channels // groups
    view = _windows(x, geometry)  # (n, h, w, channels, kh, kw)
    positions = n_out * height * width
    out = np.empty((positions, geometry.out_channels), x.dtype)
    wide = x.dtype == np.float64  # float64 products are not exact: split them (TwoProduct)
    step = max(1, chunk_terms // max(1, geometry.terms * per_group * (2 if wide else 1)))
    for g in range(groups):
        block = view[:, :, :, g * depth : (g + 1) * depth]
        # (positions, kh·kw·depth) in the filter's (kh, kw, depth) order
        columns = block.transpose(0, 1, 2, 4, 5, 3).reshape(positions, kh * kw * depth)
        weights = w[:, :, :, g * per_group : (g + 1) * per_group].reshape(-1, per_group)
        for start in range(0, positions, step):
            cols = columns[start : start + step]
            a = cols[:, np.newaxis, :]  # (p, 1, n)
            b = weights.T[np.newaxis]  # (1, k, n)
            if wide:
                p, e = _two_product(a, _split(a), b, _split(b))
                terms = np.concatenate(np.broadcast_arrays(p, e), axis=2)
            else:
                terms = a.astype(np.float64) * b.astype(np.float64)  # exact
            sums = _exact_sums(terms.reshape(-1, terms.shape[2]), x.dtype)
            out[start : start + step, g * per_group : (g + 1) * per_group] = sums.reshape(
                len(cols), per_group
            )
    return out.reshape(geometry.output_shape)
