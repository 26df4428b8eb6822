"""A convolution more accurate than any working-precision order: float64, compensated, exact.

Built in chapter 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from companion import arguments, numpy_conv
from companion.numerics.bounds import conv_operands, gamma, nonnegative
from companion.numerics.formats import cast_once, float_format, next_float
from companion.numerics.summation import exact_sums, round_fraction
from companion.numpy_conv import operands
from companion.numpy_conv.direct import windows

#: The modes of :func:`accurate_conv2d`.
ACCURATE_MODES = ("float64", "compensated", "exact")


def _veltkamp_split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split of each value into two halves of ``⌈p/2⌉`` bits (Dekker 1971).

    ``(2**s + 1)·a`` overflows for ``|a|`` near the format's largest value, so
    those values are split at a power-of-two scale (exact) and scaled back.
    Non-finite values split as ``(a, 0)``.
    """
    fmt = float_format(a.dtype)
    half = math.ceil(fmt.precision / 2)
    factor = a.dtype.type(2.0**half + 1)
    with np.errstate(invalid="ignore", over="ignore"):
        big = np.abs(a) > a.dtype.type(2.0 ** (fmt.max_exponent - half - 1))
        scale = np.where(big, a.dtype.type(2.0 ** -(half + 2)), a.dtype.type(1)).astype(a.dtype)
        scaled = a * scale  # exact: a power of two, and these values are far from underflow
        c = factor * scaled
        high = c - (c - scaled)
        low = scaled - high
        high, low = high / scale, low / scale  # exact again
    finite = np.isfinite(a)
    return np.where(finite, high, a), np.where(finite, low, 0).astype(a.dtype)


def _two_product(
    a: np.ndarray, a_split: tuple, b: np.ndarray, b_split: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's TwoProduct: ``p + e == a·b`` exactly (barring underflow and overflow),
    ``p = fl(a·b)``; callers check for both."""
    (ah, al), (bh, bl) = a_split, b_split
    p = a * b
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _smallest_nonzero(values: np.ndarray) -> float:
    """The smallest non-zero magnitude among finite ``values`` (``inf`` if there is none)."""
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    return float(magnitudes.min()) if magnitudes.size else math.inf


def _exact_dots(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each row's ``Σ a_i·b_i`` (float64 rows), exactly, rounded once to ``dtype``.

    Products of float16, bfloat16 and float32 numbers are exact in float64. For
    float64 operands each product is split exactly (TwoProduct), except in rows
    where a product overflows or underflows, which are summed in rational
    arithmetic. Rows with a non-finite operand get IEEE 754's value, from their
    non-finite products (the finite ones cannot change an infinity or a NaN).
    """
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        finite = np.isfinite(a) & np.isfinite(b)
        special = ~np.all(finite, axis=1)
        if np.dtype(dtype) != np.float64:
            products = a * b  # exact; inf or NaN only from non-finite operands
            if np.any(special):
                products = np.where(finite & special[:, None], 0.0, products)
            return exact_sums(products, dtype)
        a0, b0 = np.where(finite, a, 0.0), np.where(finite, b, 0.0)
        p, e = _two_product(a0, _veltkamp_split(a0), b0, _veltkamp_split(b0))
        size = np.abs(p)
        fragile = ~np.isfinite(p) | ~np.isfinite(e) | (size > 2.0**1000)
        nonzero = (a0 != 0) & (b0 != 0)
        # Near the underflow range the split and the error term are not exact.
        fragile |= nonzero & ((size < 2.0**-960) | (np.abs(a0) < 2.0**-960))
        fragile |= nonzero & (np.abs(b0) < 2.0**-960)
        rational = np.any(fragile, axis=1) & ~special
        terms = np.where(rational[:, None], 0.0, np.concatenate([p, e], axis=1))
        if np.any(special):
            specials = np.where(finite, 0.0, a * b)[special]
            terms[special] = np.concatenate([specials, np.zeros_like(specials)], axis=1)
    out = exact_sums(terms, dtype)
    fmt = float_format(dtype)
    for index in np.flatnonzero(rational).tolist():
        pairs = zip(a[index].tolist(), b[index].tolist(), strict=True)
        value = sum((Fraction(x) * Fraction(y) for x, y in pairs), Fraction(0))
        out[index] = round_fraction(value, fmt)
    return out


def _nhwc_arguments(geometry) -> dict:
    """:func:`companion.numpy_conv.conv2d`'s arguments for ``geometry``, in NHWC."""
    (top, bottom), (left, right) = geometry.pads
    return {
        "strides": list(geometry.strides),
        "padding": [[0, 0], [top, bottom], [left, right], [0, 0]],
        "dilations": list(geometry.dilations),
    }


def conv_magnitude(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> np.ndarray:
    """``conv(|x|, |w|)``: each output's ``Σ|x_i·w_i|``, rigorously from above.

    Built in chapter 6.

    The scale of every rounding-error bound and estimate of a convolution
    (:func:`dot_error_bound`, :func:`probabilistic_error_bound`,
    :func:`compensated_error_bound`). ``filters`` is converted to
    ``input.dtype`` first, as in :func:`conv_error_bound`; the float64
    evaluation is enlarged by its own worst-case error.

    Returns
    -------
    ndarray of float64
        In the output's shape and ``data_format`` order; ``inf`` where an
        infinite operand meets a non-zero one or the sum exceeds float64's
        range, NaN where a NaN operand or ``0·inf`` occurs.

    Raises
    ------
    ValueError
        Naming the argument, as :func:`accurate_conv2d`.

    Examples
    --------
    >>> m = conv_magnitude(np.ones((1, 3, 3, 1), np.float32), -np.ones((2, 2, 1, 1)), 1, "VALID")
    >>> m.shape, bool(np.all((m >= 4) & (m < 4 + 1e-14)))
    ((1, 2, 2, 1), True)
    """
    data_format, x, w, geometry = conv_operands(
        input, filters, strides, padding, data_format, dilations
    )
    with np.errstate(invalid="ignore", over="ignore"):
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

    Built in chapter 6.

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
        ``inf`` where ``magnitude`` or ``exact`` is, or where ``γ_n`` gives no
        guarantee.

    Raises
    ------
    ValueError
        Naming ``magnitude`` or ``exact`` for NaN, negative, complex or
        non-numeric values, ``n`` for anything but a non-negative integer.

    Examples
    --------
    >>> from companion.numerics import unit_roundoff
    >>> bound = compensated_error_bound(1.0, 9, np.float32, exact=0.01)
    >>> round(bound / unit_roundoff(np.float32), 4)       # one rounding of |s|, nearly
    0.01
    """
    fmt = float_format(dtype)
    magnitude = nonnegative(magnitude, "magnitude", "sums of absolute products")
    n = arguments.integer(n, "n", expected="a non-negative integer number of products")
    top = magnitude if exact is None else nonnegative(exact, "exact", "bounds on |s|")
    with np.errstate(invalid="ignore"):  # γ = inf (no guarantee) times 0 is no NaN
        spread = np.where(magnitude == 0, 0.0, gamma(n, fmt) ** 2 * magnitude)
    bound = fmt.unit_roundoff * top + spread
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

    Built in chapter 6.

    The arguments and the semantics (padding, strides, dilations, groups,
    data formats) are those of :func:`companion.numpy_conv.conv2d`, whose
    :func:`~companion.arithmetic.conv_geometry` resolves them; the result has
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

    Non-finite values and the format's range. ``"compensated"`` and
    ``"exact"`` are at least as robust as ``"float64"``: where a non-finite
    operand decides an output (``±inf`` times a non-zero number, ``0·inf``,
    a NaN, a padded zero times an infinite weight, as in
    :func:`companion.numpy_conv.conv2d`), the result is IEEE 754's: NaN for a
    NaN product or infinite products of both signs, else the infinity. Any
    other output is finite unless its exact value rounds beyond the format's
    largest number: ``"exact"`` is then ``±inf`` exactly when the exact value
    rounds there, even where float64 partial sums would overflow (float64
    data near ``1e308``), and ``"compensated"`` recomputes exactly every
    output whose working-precision products or partial sums left the finite
    range (float32 data near ``1e35`` overflows Veltkamp's split, which is
    therefore scaled by a power of two). Operands of any byte order and
    layout are read by value.

    Parameters
    ----------
    input, filters, strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`; ``input`` float16, bfloat16, float32 or
        float64, ``filters`` checked as :func:`companion.numpy_conv.conv2d`
        checks it and converted to its dtype.
    mode : {"float64", "compensated", "exact"}, keyword-only

    Returns
    -------
    ndarray
        A new array in ``data_format`` order, of ``input``'s dtype, in native
        byte order.

    Raises
    ------
    ValueError
        Naming the argument: an unknown ``mode``; an ``input`` that is not
        one of the four floating formats (integer, complex, object, string);
        complex, object or string ``filters``; or any argument
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

    Partial sums beyond float32's range, and an infinity:

    >>> big = np.float32([3e38, 3e38, -3e38, np.inf]).reshape(1, 1, 4, 1)
    >>> ones = np.ones((1, 3, 1, 1), np.float32)
    >>> accurate_conv2d(big, ones, 1, "VALID", mode="compensated").ravel()
    array([3.e+38,    inf], dtype=float32)
    """
    mode = arguments.choice(mode, "mode", ACCURATE_MODES)
    data_format, x, w, geometry = conv_operands(
        input, filters, strides, padding, data_format, dilations
    )
    if mode == "float64":
        with np.errstate(invalid="ignore", over="ignore"):
            wide = numpy_conv.conv2d(
                x.astype(np.float64), w.astype(np.float64), strides, padding, data_format, dilations
            )
        return cast_once(wide, x.dtype)
    nhwc = operands.to_nhwc(x, data_format)
    if geometry.is_empty:
        out = np.zeros(geometry.output_shape, x.dtype)
    elif mode == "compensated":
        out = _compensated(nhwc, w, geometry)
    else:
        out = _exact(nhwc, w, geometry)
    if data_format == "NCHW":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out


def _compensated(x: np.ndarray, w: np.ndarray, geometry) -> np.ndarray:
    """Dot2 over the taps, vectorised over the outputs; NHWC, in the working precision.

    Outputs where anything left the working precision's finite range (an
    overflowing product or partial sum, a non-finite operand) are recomputed
    exactly: the exactly rounded value is finite whenever it can be, IEEE's
    ``±inf`` or NaN otherwise, and always within the compensated bound.
    """
    work = np.float64 if x.dtype == np.float64 else np.float32
    xw, ww = x.astype(work), w.astype(work)
    x_split = tuple(windows(part, geometry) for part in _veltkamp_split(xw))
    view = windows(xw, geometry)
    w_split = _veltkamp_split(ww)
    groups, depth = geometry.groups, geometry.in_depth
    per_group = geometry.per_group
    shape = (*geometry.output_shape[:3], per_group)
    # TwoProduct's error term is exact only above the underflow range (Dekker 1971): with
    # operands that small anywhere, products are watched, and those outputs redone exactly.
    fmt = float_format(work)
    small = 2.0 ** (fmt.min_exponent + 2 * fmt.precision)
    watch = _smallest_nonzero(xw) < small or _smallest_nonzero(ww) < small
    watch = watch or _smallest_nonzero(xw) * _smallest_nonzero(ww) < small
    blocks, trouble = [], []
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        for g in range(groups):
            columns = slice(g * per_group, (g + 1) * per_group)
            total = np.zeros(shape, work)
            carry = np.zeros(shape, work)
            tiny = np.zeros(shape, bool)
            for a in range(geometry.kernel_height):
                for b in range(geometry.kernel_width):
                    for c in range(depth):
                        channel = g * depth + c
                        tap = view[:, :, :, channel, a, b, np.newaxis]
                        tap_split = tuple(
                            part[:, :, :, channel, a, b, np.newaxis] for part in x_split
                        )
                        weight = ww[a, b, c, columns]
                        weight_split = tuple(part[a, b, c, columns] for part in w_split)
                        product, product_error = _two_product(tap, tap_split, weight, weight_split)
                        if watch:
                            tiny |= (np.abs(product) < small) & (tap != 0) & (weight != 0)
                            tiny |= (np.abs(tap) < small) & (tap != 0) & (weight != 0)
                            tiny |= (np.abs(weight) < small) & (weight != 0) & (tap != 0)
                        # TwoSum, inline: a NaN or inf error marks the output for recomputing.
                        new = total + product
                        back = new - total
                        sum_error = (total - (new - back)) + (product - back)
                        total = new
                        carry = carry + (sum_error + product_error)
            blocks.append(total + carry)
            trouble.append(~np.isfinite(total) | ~np.isfinite(carry) | tiny)
        out = np.concatenate(blocks, axis=3).astype(x.dtype)
    redo = np.argwhere(np.concatenate(trouble, axis=3) | ~np.isfinite(out))
    if len(redo):
        out[tuple(redo.T)] = _exact_outputs(x, w, geometry, redo)
    return out


def _exact(x: np.ndarray, w: np.ndarray, geometry) -> np.ndarray:
    """The exactly rounded convolution, NHWC.

    For float16, bfloat16 and float32 data the products are exact in float64, and a float64
    convolution (in any order) is within ``γ_n(float64)·conv(|x|, |w|)`` of the exact sum:
    where that interval lies inside one rounding interval of the target format, rounding
    the float64 result gives the exactly rounded one. The few other outputs (those near or
    beyond the format's range, those a non-finite operand touches, and every float64
    output) are summed exactly.
    """
    if x.dtype == np.float64:
        return _exact_by_fsum(x, w, geometry)
    args = _nhwc_arguments(geometry)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        value = numpy_conv.conv2d(x64, w64, **args)
        magnitude = numpy_conv.conv2d(np.abs(x64), np.abs(w64), **args)
        g = gamma(geometry.terms, np.float64)
        # The float64 error, from above, allowing for the rounding of these very formulas.
        slack = g / (1 - g) * magnitude * (1 + 2.0**-40) + 2.0**-1000
        rounded = cast_once(value, x.dtype)
        finite = np.isfinite(rounded) & np.isfinite(slack)
        centre_value = np.where(finite, rounded, np.zeros((), x.dtype)).astype(x.dtype)
        below = next_float(centre_value, np.full(rounded.shape, -1)).astype(np.float64)
        above = next_float(centre_value, np.full(rounded.shape, 1)).astype(np.float64)
        centre = centre_value.astype(np.float64)
        safe = (
            finite
            & np.isfinite(above)
            & np.isfinite(below)
            & (value - (centre + below) / 2 > slack * (1 + 2.0**-40))
            & ((centre + above) / 2 - value > slack * (1 + 2.0**-40))
        )
    unsafe = np.argwhere(~safe)
    if len(unsafe):
        rounded[tuple(unsafe.T)] = _exact_outputs(x, w, geometry, unsafe)
    return rounded


def _exact_outputs(x: np.ndarray, w: np.ndarray, geometry, where: np.ndarray) -> np.ndarray:
    """The exactly rounded outputs at the given NHWC indices."""
    view = windows(x, geometry)  # (n, h, w, channels, kh, kw)
    depth, per_group = geometry.in_depth, geometry.per_group
    b, i, j, k = where.T
    channels = (k // per_group)[:, np.newaxis] * depth + np.arange(depth)
    selected = view[b[:, np.newaxis], i[:, np.newaxis], j[:, np.newaxis], channels]
    terms = selected.transpose(0, 2, 3, 1).reshape(len(where), -1).astype(np.float64)
    weights = w[..., k].transpose(3, 0, 1, 2).reshape(len(where), -1).astype(np.float64)
    return _exact_dots(terms, weights, x.dtype)


def _exact_by_fsum(x: np.ndarray, w: np.ndarray, geometry, chunk_terms: int = 2_000_000):
    """The exactly rounded convolution, NHWC, summing every output exactly."""
    n_out, height, width, _ = geometry.output_shape
    groups, depth = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    per_group = geometry.per_group
    view = windows(x, geometry)  # (n, h, w, channels, kh, kw)
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
            a, b = np.broadcast_arrays(cols[:, np.newaxis, :], weights.T[np.newaxis])
            sums = _exact_dots(
                a.reshape(-1, a.shape[2]).astype(np.float64),
                b.reshape(-1, b.shape[2]).astype(np.float64),
                x.dtype,
            )
            out[start : start + step, g * per_group : (g + 1) * per_group] = sums.reshape(
                len(cols), per_group
            )
    return out.reshape(geometry.output_shape)
