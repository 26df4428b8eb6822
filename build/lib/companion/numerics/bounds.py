"""Rounding-error bounds for dot products and convolutions, and tests against them.

Built in chapter 5. A convolution output is a sum of products, and
floating-point addition is not associative, so two correct implementations
that add in different orders give results that differ in the last bits. The
classical worst-case bound on an inner product (Higham 2002, §2.2 and §3.1),
applied elementwise to a convolution, says how far apart they may be; a test
compares each implementation with a float64 reference within that bound,
using :func:`assert_conv_close`.

Notation, as in Higham (2002): ``u`` is the unit roundoff (``2**-p`` for ``p``
significand bits); ``γ_n = n·u / (1 − n·u)``, defined while ``n·u < 1``; an
inner product of ``n`` terms, evaluated in *any* order, satisfies
``|fl(xᵀy) − xᵀy| ≤ γ_n · |x|ᵀ|y|`` (Higham 2002, eq. (3.5) and the remark
after it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from companion import arguments, numpy_conv
from companion.arithmetic import Geometry, conv_geometry
from companion.numerics.formats import float_array, float_format, real_array, unit_roundoff
from companion.numpy_conv import operands

# Argument checks shared by the numerics package


def nonnegative(value: object, name: str, what: str) -> np.ndarray:
    """``value`` as float64 values ``≥ 0`` (``inf`` allowed), or a ``ValueError`` naming ``name``.

    Complex, boolean, string and object arrays, NaN and negative values raise.

    Examples
    --------
    >>> nonnegative([0, 2.5, np.inf], "magnitude", "sums").tolist()
    [0.0, 2.5, inf]
    >>> nonnegative(np.nan, "magnitude", "sums")
    Traceback (most recent call last):
    ...
    ValueError: magnitude: expected non-negative sums, got NaN
    """
    array = real_array(value, name).astype(np.float64)
    if array.size and not np.all(array >= 0):
        found = "NaN" if np.any(np.isnan(array)) else "a negative value"
        raise ValueError(f"{name}: expected non-negative {what}, got {found}")
    return array


def conv_operands(
    input: object,
    filters: object,
    strides: object,
    padding: object,
    data_format: object,
    dilations: object,
) -> tuple[str, np.ndarray, np.ndarray, Geometry]:
    """The operands of a floating-point convolution, checked as
    :func:`companion.numpy_conv.conv2d` checks them, and the resolved geometry.

    ``input`` must be one of the four floating formats and is returned in native
    byte order; ``filters`` goes through the same array checks as in
    :mod:`companion.numpy_conv` (no object, complex or string arrays) and is converted
    to ``input``'s dtype, as ``tf.nn.conv2d`` converts a NumPy filter.

    Examples
    --------
    >>> x = np.ones((1, 4, 4, 2), ">f4")
    >>> _, x, w, geometry = conv_operands(x, np.ones((3, 3, 2, 1)), 1, "SAME", "NHWC", None)
    >>> x.dtype.isnative, w.dtype, geometry.terms
    (True, dtype('float32'), 18)
    """
    data_format = arguments.normalize_data_format(data_format)  # type: ignore[arg-type]
    x = operands.array_argument(float_array(input, "input"), "input", f"in {data_format} order")
    w = operands.array_argument(filters, "filters", operands.FILTER_LAYOUT)
    w = operands.convert(w, x.dtype, "filters")  # native byte order: x's dtype is native
    geometry = conv_geometry(x.shape, w.shape, strides, padding, data_format, dilations)
    return data_format, x, w, geometry


def special_outputs(x64: np.ndarray, w64: np.ndarray, arguments_: dict) -> np.ndarray | None:
    """Where non-finite operands decide a convolution's outputs, IEEE 754's value there.

    ``x64`` and ``w64`` are float64 operands, ``arguments_`` the keyword
    arguments of :func:`companion.numpy_conv.conv2d`. Each finite non-zero
    value is replaced by its sign and zeros stay zeros, so no finite partial
    sum can overflow; infinities and NaN stay. The convolution of these signs
    is then non-finite exactly where some product is (``±inf`` times a non-zero
    number, ``0·inf``, NaN, a padded zero times an infinite weight, as in
    :func:`companion.numpy_conv.conv2d`), and its value there is IEEE's: NaN if
    some product is NaN or the infinite products have both signs, else the
    infinity of their sign. Returns ``None`` when every operand is finite,
    else a float64 array, finite (with no meaning) where the finite products alone decide.

    Examples
    --------
    >>> x = np.array([1.0, np.inf, 2.0, 3.0]).reshape(1, 4, 1, 1)
    >>> w = np.array([1.0, -1.0]).reshape(2, 1, 1, 1)
    >>> special_outputs(x, w, {"strides": 1, "padding": "VALID"}).ravel().tolist()
    [-inf, inf, 0.0]
    """
    if np.all(np.isfinite(x64)) and np.all(np.isfinite(w64)):
        return None

    def signs(values: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(values), np.sign(values), values)

    with np.errstate(invalid="ignore", over="ignore"):
        return numpy_conv.conv2d(signs(x64), signs(w64), **arguments_)


def gamma(n: int | np.ndarray, dtype: object) -> float | np.ndarray:
    """Return Higham's constant ``γ_n = n·u / (1 − n·u)``.

    Built in chapter 5.

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
        ``"n: …"`` if ``n`` is not a non-negative integer (floats, complex
        numbers, strings and objects included).

    Examples
    --------
    >>> gamma(0, np.float32), gamma(1, np.float64) > 2.0**-53
    (0.0, True)
    >>> round(gamma(147, np.float32) / 2.0**-24, 3)   # a 7×7×3 sum in float32: just over 147 u
    147.001
    >>> gamma(2048, np.float16)          # 2048·2**-11 = 1: no guarantee
    inf
    """
    values = operands.as_array(n, "n")
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

    Built in chapter 5.

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
        The bound, elementwise; ``inf`` where ``γ`` gives no guarantee or
        ``magnitude`` is infinite (the bound then says nothing, and
        :func:`assert_conv_close` refuses it).

    Raises
    ------
    ValueError
        Naming ``magnitude`` or ``exact`` for NaN, negative, complex or
        non-numeric values, ``n`` for anything but a non-negative integer, and
        ``dtype`` for an unknown format.

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
    try:
        acc = float_format(dtype if accumulate_dtype is None else accumulate_dtype)
    except ValueError as error:  # named as the caller spelled it
        raise ValueError(str(error).replace("dtype", "accumulate_dtype", 1)) from None
    magnitude = nonnegative(magnitude, "magnitude", "sums of absolute products")
    n = arguments.integer(n, "n", expected="a non-negative integer number of products")
    top = magnitude if exact is None else nonnegative(exact, "exact", "bounds on |s|")
    roundings = n + 2 if acc.unit_roundoff > storage.unit_roundoff else n
    g = gamma(roundings, acc)
    underflow = n * acc.min_normal * acc.unit_roundoff
    with np.errstate(invalid="ignore", over="ignore"):
        # γ = inf (no guarantee) times a zero magnitude is no NaN: the bound is inf.
        bound = np.where(magnitude == 0, 0.0, g * magnitude) + underflow * (1 + g)
    if acc.unit_roundoff < storage.unit_roundoff:
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

    Built in chapter 5.

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

    The bound is meaningful for finite values. Where a non-finite operand
    decides an output (an infinity times a non-zero number, ``0·inf``, a NaN;
    see :func:`companion.numpy_conv.conv2d` for padded zeros), every IEEE 754
    evaluation gives the same ``±inf`` or NaN, and the bound there is ``0``:
    the result must match exactly. Where the finite data's magnitude exceeds
    float64's range, or ``γ_n`` gives no guarantee, the bound is ``inf``.

    Parameters
    ----------
    input, filters, strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`; ``input`` must be float16, bfloat16,
        float32 or float64, in any byte order and layout; ``filters`` is
        checked as :func:`companion.numpy_conv.conv2d` checks it.
    accumulate_dtype : dtype-like or str, optional
        The format the products are summed in; default ``input.dtype``.

    Returns
    -------
    ndarray of float64
        One bound per output element, in the output's shape (native byte
        order); ``0`` at the outputs that non-finite operands decide.

    Raises
    ------
    ValueError
        Naming the argument: a non-floating ``input``; complex, object or
        string ``filters``; or any argument :func:`tf.nn.conv2d` rejects.

    Examples
    --------
    >>> x = np.ones((1, 3, 3, 1), np.float32)
    >>> w = np.full((2, 2, 1, 1), 0.1, np.float32)
    >>> bound = conv_error_bound(x, w, 1, "VALID")
    >>> # rtol: the bound's float64 arithmetic, far below the 1e-6 asked here.
    >>> bound.shape, bool(np.allclose(bound, gamma(4, np.float32) * 0.4, rtol=1e-6))
    ((1, 2, 2, 1), True)
    """
    data_format, x, w, geometry = conv_operands(
        input, filters, strides, padding, data_format, dilations
    )
    storage = float_format(x.dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    kwargs = {"strides": strides, "padding": padding}
    kwargs |= {"data_format": data_format, "dilations": dilations}
    special = special_outputs(x64, w64, kwargs)
    if special is not None:  # the finite operands only; the others are settled below
        x64 = np.where(np.isfinite(x64), x64, 0.0)
        w64 = np.where(np.isfinite(w64), w64, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        magnitude = numpy_conv.conv2d(np.abs(x64), np.abs(w64), **kwargs)
        estimate = numpy_conv.conv2d(x64, w64, **kwargs)
        n = geometry.terms
        # The float64 evaluations are themselves sums of n products: undo their error.
        g64 = gamma(n, np.float64)
        magnitude = magnitude / (1 - g64)
        exact = np.abs(estimate) + g64 * magnitude
        exact = np.where(np.isnan(exact), np.inf, exact)  # inf − inf: beyond float64
    acc = storage.name if accumulate_dtype is None else accumulate_dtype
    bound = np.asarray(
        dot_error_bound(magnitude, n, storage.name, accumulate_dtype=acc, exact=exact)
    )
    if special is not None:
        bound = np.where(np.isfinite(special), bound, 0.0)  # IEEE's value, exactly
    return bound


def assert_conv_close(actual: np.ndarray, desired: np.ndarray, bound: np.ndarray | float) -> float:
    """Assert ``|actual − desired| ≤ bound`` elementwise, with a useful report.

    Built in chapter 5.

    ``desired`` is a float64 reference treated as exact: to compare two
    float32 implementations, compare each one with the float64 reference
    (computed from the same stored operands), within the bound of its own
    evaluation, rather than with each other. If the reference's own error is
    not negligible (a float64 result checked against a float64 reference),
    add the reference's bound to ``bound``.

    The bound is meaningful for finite values only: where ``actual`` or
    ``desired`` is ``±inf`` or NaN, the two must match exactly (the same
    infinity, or both NaN), whatever the bound; a NaN where the reference is
    a number, or a number where it is NaN, always fails. An infinite bound
    guarantees nothing and is refused rather than allowed to pass anything.

    Parameters
    ----------
    actual : array_like
        The computed result: real numbers (any floating or integer dtype,
        any byte order).
    desired : ndarray of float64
        The reference, in the same shape (any byte order).
    bound : array_like of float
        Finite and non-negative, broadcastable to the shape: typically
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
        Naming the argument: ``desired`` not float64; ``actual`` not real
        numbers (complex, boolean, string, object); ``bound`` negative, NaN,
        infinite, complex or not broadcastable.

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
    desired = float_array(desired, "desired")
    if desired.dtype != np.float64:
        raise ValueError(
            f"desired: expected a float64 reference (treated as exact), got dtype {desired.dtype}"
        )
    actual = real_array(actual, "actual")
    if actual.shape != desired.shape:
        raise AssertionError(f"shapes differ: actual {actual.shape}, desired {desired.shape}")
    bound = real_array(bound, "bound").astype(np.float64)
    try:
        bound = np.broadcast_to(bound, desired.shape)
    except ValueError:
        raise ValueError(
            f"bound: expected a scalar or an array broadcastable to {desired.shape}, "
            f"got shape {np.shape(bound)}"
        ) from None
    if bound.size and not np.all(bound >= 0):
        raise ValueError("bound: expected non-negative values (no NaN)")
    if not np.all(np.isfinite(bound)):
        raise ValueError(
            "bound: expected finite values; an infinite bound (γ_n with n·u ≥ 1, or "
            "magnitudes beyond float64) guarantees nothing, so nothing can be checked"
        )
    if actual.size == 0:
        return 0.0
    values = actual.astype(np.float64)
    finite = np.isfinite(values) & np.isfinite(desired)
    # Non-finite values must match exactly: the same infinity, or NaN for NaN.
    same = (values == desired) | (np.isnan(values) & np.isnan(desired))
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(values - desired)  # inf if it overflows: then outside any bound
    error = np.where(finite, difference, np.where(same, 0.0, np.inf))
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
