"""Floating-point formats, units in the last place, and rounding to a narrower format.

Built in chapter 6 (:func:`unit_roundoff` in chapter 5). :func:`float_format`
describes each format (float16, bfloat16, TF32, float32, float64) once, for
the whole package; :func:`ulp_distance` counts how many floats lie between two
values (exact, integer), :func:`ulp` gives a format's spacing at a magnitude,
and :func:`round_to_format` rounds to a narrower format, TF32 included.

Array arguments are read through :func:`float_array` (or :func:`real_array`):
any byte order and memory layout is accepted and read by value, results come
back in native byte order, and a complex, object, string or boolean array
raises a ``ValueError`` whose message starts with the argument's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from companion import arguments
from companion.numpy_conv import operands


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format, described by its parameters.

    Built in chapter 6.

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

    Built in chapter 6.

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

    Built in chapter 6.

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


# Units in the last place

#: The unsigned integer type with each format's bit pattern.
_BITS = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order: itself if it already is, else a converted copy.

    Examples
    --------
    >>> big = np.array([1.5], ">f8")
    >>> native(big).dtype.isnative, bool(native(big)[0] == big[0])
    (True, True)
    """
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def float_array(value: object, name: str) -> np.ndarray:
    """``value`` as a float16, bfloat16, float32 or float64 array in native byte order.

    The array checks of :mod:`companion.numpy_conv.operands` first (an object
    array or something NumPy cannot read raises), then the dtype. A big-endian
    (or other non-native) array is converted by value, so its numbers are
    read, never its bytes in the wrong order. The result may be ``value``
    itself: callers never write to it.

    Raises
    ------
    ValueError
        ``"{name}: expected …"`` for anything but the four floating formats
        (integers, booleans, complex numbers, strings, objects).

    Examples
    --------
    >>> big = np.array([1.0, 2.0], ">f4")
    >>> float_array(big, "a").dtype.isnative, float_array(big, "a").tolist()
    (True, [1.0, 2.0])
    >>> float_array([1 + 2j], "a")
    Traceback (most recent call last):
    ...
    ValueError: a: expected a float16, bfloat16, float32 or float64 array, got dtype complex128
    """
    array = operands.as_array(value, name)
    if array.dtype.name not in _BITS:
        raise ValueError(
            f"{name}: expected a float16, bfloat16, float32 or float64 array, "
            f"got dtype {array.dtype}"
        )
    return native(array)


def real_array(value: object, name: str) -> np.ndarray:
    """``value`` as an array of real numbers (integers or floats) in native byte order.

    As :func:`float_array`, but integers are accepted too; booleans, complex
    numbers, strings and objects raise a ``ValueError`` naming ``name``.

    Examples
    --------
    >>> real_array(3, "n").dtype.kind
    'i'
    >>> real_array(np.array([1.5], ">f8"), "x").dtype.isnative
    True
    """
    array = operands.as_array(value, name)
    if array.dtype.kind not in "iuf" and array.dtype.name != "bfloat16":
        raise ValueError(f"{name}: expected real numbers, got dtype {array.dtype}")
    return native(array)


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

    Built in chapter 6.

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
        convert explicitly to compare them with float32 values. Any byte
        order or layout; ``±inf`` are the ends of the line.

    Returns
    -------
    ndarray or int
        Non-negative integers: int64 for float16, bfloat16 and float32; uint64
        for float64, whose largest distance (``-inf`` to ``inf``, about
        ``1.8·10^19``) exceeds int64. A Python ``int`` for scalar operands.

    Raises
    ------
    ValueError
        Naming the operand (``a`` or ``b``): if it holds a NaN (a NaN is at no
        distance from anything), the dtypes differ, the shapes do not
        broadcast, or a dtype is not one of the four formats (complex, integer,
        object and string arrays included).

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
    x, y = float_array(a, "a"), float_array(b, "b")
    if x.dtype != y.dtype:
        raise ValueError(
            f"b: expected the dtype of a ({x.dtype}), got {y.dtype}; convert one "
            "explicitly, knowing that the conversion rounds"
        )
    try:
        x, y = np.broadcast_arrays(x, y)
    except ValueError:
        raise ValueError(
            f"b: expected a shape that broadcasts with a's {x.shape}, got {y.shape}"
        ) from None
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

    Built in chapter 6.

    For ``2**e ≤ |x| < 2**(e+1)`` in a format with ``p`` significand bits, the
    floats of that *binade* are ``2**(e−p+1)`` apart (Higham 2002, §2.1); below
    the smallest normal number, the subnormals are the smallest subnormal
    apart. Rounding to nearest moves ``x`` by at most half of this, and the
    difference of two floats of one binade is a whole multiple of it.

    Parameters
    ----------
    x : array_like
        Any real values (a float64 reference, a float32 result, …), in any
        byte order.
    dtype : dtype-like or str, optional
        The format whose spacing is wanted (float16, bfloat16, ``"tf32"``,
        float32, float64); default ``x``'s own dtype.

    Returns
    -------
    float or ndarray of float64
        ``inf`` where ``|x|`` exceeds the format's largest finite number
        (``±inf`` included).

    Raises
    ------
    ValueError
        For NaN (``"x: …"``), an ``x`` that is not real numbers (complex,
        boolean, string, object), or a ``dtype`` that is not a floating-point
        format.

    Examples
    --------
    >>> ulp(np.float32(1.0)) == 2.0**-23, ulp(3.0, "float32") == 2.0**-22
    (True, True)
    >>> ulp(0.0, "float16") == 2.0**-24                     # the subnormal spacing
    True
    >>> float(ulp(4.97, "float32")) == 2.0**-21, float(ulp(4.97, "tf32")) == 2.0**-8
    (True, True)
    """
    array = real_array(x, "x")
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

    Built in chapter 6.

    This emulates hardware that reads float32 operands in a narrower format:
    NVIDIA's TF32 tensor cores keep float32's exponent and 10 of its 23
    stored mantissa bits; bfloat16 keeps 7; float16 keeps 10 with a smaller
    range. ``"nearest"`` rounds to nearest, ties to even, overflowing to
    ``±inf`` as IEEE 754 does; ``"truncate"`` drops the extra bits (rounds
    toward zero), as some hardware does when fed float32 data directly.

    Parameters
    ----------
    x : array_like
        float16, bfloat16, float32 or float64 values, in any byte order.
    dtype : dtype-like or str
        The target format: float16, bfloat16, ``"tf32"``, float32 or float64.
    rounding : {"nearest", "truncate"}, optional

    Returns
    -------
    ndarray
        A new array of ``x``'s dtype in native byte order, every finite value
        representable in the target format; infinities and NaN unchanged.

    Raises
    ------
    ValueError
        Naming ``x`` for anything but the four floating formats (complex,
        integer, object, string), ``dtype`` for an unknown format, or
        ``rounding``.

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
    rounding = arguments.choice(rounding, "rounding", ("nearest", "truncate"))
    array = float_array(x, "x")
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


def cast_once(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float64 values once, to nearest, into ``dtype``.

    Built in chapter 6.

    NumPy converts float64 to float32 and float16 directly, but ``ml_dtypes``
    converts float64 to bfloat16 through float32: two roundings, which can
    differ from one. Rounding in float64 first makes the conversion exact.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.dtype(dtype).name == "bfloat16":
        values = round_to_format(values, "bfloat16")
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def next_float(values: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The neighbour of each value in its format, up (+1) or down (−1).

    Built in chapter 6.

    Examples
    --------
    >>> float(next_float(np.float32(1.0), np.array(1))) == 1 + 2.0**-23
    True
    """
    values = float_array(values, "values")
    return _from_ordinal(_ordinal(values) + direction, values.dtype)
