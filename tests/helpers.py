"""Shared by the test modules: tf.nn.conv2d's argument forms, and float formats bit by bit."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
from hypothesis import HealthCheck
from hypothesis import strategies as st

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
#: np.finfo of each format (ml_dtypes' for bfloat16).
FINFO = {
    "float16": np.finfo(np.float16),
    "float32": np.finfo(np.float32),
    "float64": np.finfo(np.float64),
    "bfloat16": ml_dtypes.finfo(ml_dtypes.bfloat16),
}
#: Hypothesis settings for the slow properties (TensorFlow calls, large arrays).
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


@st.composite
def window_form(draw, top: int, allow_none: bool = False):
    """A strides or dilations argument as ``(form, height, width)``; see :func:`spelled`."""
    forms = ["int", "one", "two", "four"] + (["none"] if allow_none else [])
    form = draw(st.sampled_from(forms))
    height = draw(st.integers(1, top))
    width = height if form in ("int", "one", "none") else draw(st.integers(1, top))
    if form == "none":
        height = width = 1
    return form, height, width


def spelled(form: str, height: int, width: int, data_format: str):
    """Write (height, width) in the requested argument form for ``data_format``."""
    if form == "none":
        return None
    if form == "int":
        return height
    if form == "one":
        return [height]
    if form == "two":
        return [height, width]
    return [1, height, width, 1] if data_format == "NHWC" else [1, 1, height, width]


def window_argument(data_format: str, top: int, allow_none: bool = False):
    """strides/dilations in every form tf.nn.conv2d accepts, spelled for ``data_format``."""
    return window_form(top, allow_none).map(lambda form: spelled(*form, data_format))


def every_value(name: str) -> np.ndarray:
    """Every non-NaN value of a 16-bit format, from its 65536 bit patterns."""
    values = np.arange(2**16, dtype=np.uint16).view(DTYPES[name])
    return values[~np.isnan(values.astype(np.float32))]


def from_bits(name: str, bits: int) -> np.ndarray:
    return np.array(bits, UINT[name]).view(DTYPES[name])


@st.composite
def finite_floats(draw, name: str):
    """Any finite value of the format (subnormals and both zeros included), from its bits."""
    width = 8 * DTYPES[name].itemsize
    while True:
        value = from_bits(name, draw(st.integers(0, 2**width - 1)))
        if np.isfinite(value.astype(np.float64)):
            return value


def correctly_rounded(exact: Fraction, dtype: np.dtype):
    """The nearest value of ``dtype`` to a rational, ties to even: an independent oracle."""
    guess = np.array(float(exact)).astype(dtype)  # within a step or two of the answer
    candidates = [guess]
    with np.errstate(over="ignore"):  # past the largest value: inf, never chosen (see key)
        for _ in range(2):
            candidates.append(np.nextafter(candidates[-1], np.array(np.inf, dtype)))
        below = [guess]
        for _ in range(2):
            below.append(np.nextafter(below[-1], np.array(-np.inf, dtype)))
    candidates += below[1:]

    def key(value):
        if not math.isfinite(float(value)):  # beyond the largest value: never the nearest
            return (math.inf, 1)
        distance = abs(Fraction(float(value)) - exact)
        odd = int(np.array(value).view(UINT[dtype.name])) & 1
        return (distance, odd)

    return min(candidates, key=key)


def swapped(array) -> np.ndarray:
    """The same values stored in the other byte order (float16, float32, float64 only)."""
    array = np.asarray(array)
    return array.astype(array.dtype.newbyteorder("S"))


def finfo(dtype):
    dtype = np.dtype(dtype)
    return ml_dtypes.finfo(dtype) if dtype == BFLOAT16 else np.finfo(dtype)


def rounded_or_inf(exact: Fraction, dtype: np.dtype):
    """``exact`` rounded to nearest (ties to even) in ``dtype``, overflowing to ±inf as IEEE
    754 does: at and beyond the largest finite value plus half its spacing."""
    dtype = np.dtype(dtype)
    info = finfo(dtype)
    largest = Fraction(float(info.max))
    half_step = Fraction(float(info.eps)) * Fraction(2) ** (info.maxexp - 1) / 2
    if abs(exact) >= largest + half_step:
        return np.array(math.inf if exact > 0 else -math.inf, dtype)
    if abs(exact) > largest:
        return np.array(float(info.max) if exact > 0 else -float(info.max), dtype)
    return np.asarray(correctly_rounded(exact, dtype))


def ieee_dot(xs, ws, dtype):
    """Σ x_i·w_i of stored values as IEEE 754 defines its exactly rounded value: from the
    non-finite products if there are any (0·inf and NaN give NaN, opposite infinities NaN),
    else the exact rational sum rounded once, overflow included."""
    pairs = [(float(a), float(b)) for a, b in zip(np.ravel(xs), np.ravel(ws), strict=True)]
    if all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
        exact = sum((Fraction(a) * Fraction(b) for a, b in pairs), Fraction(0))
        return rounded_or_inf(exact, dtype)
    total = 0.0
    for a, b in pairs:
        if not (math.isfinite(a) and math.isfinite(b)):
            total += a * b
    return np.array(total).astype(dtype)


def ieee_conv(x, w, dtype):
    """A VALID, stride-1 NHWC convolution, each output by :func:`ieee_dot` (pad ``x`` first
    for other paddings: the padded zeros are operands, as in numpy_conv)."""
    n, h, wd, _ = x.shape
    kh, kw, _, k = w.shape
    out = np.empty((n, h - kh + 1, wd - kw + 1, k), np.dtype(dtype))
    for b in range(n):
        for i in range(h - kh + 1):
            for j in range(wd - kw + 1):
                for o in range(k):
                    window = x[b, i : i + kh, j : j + kw, :]
                    out[b, i, j, o] = ieee_dot(window, w[..., o], dtype)
    return out


def same_values(a, b) -> bool:
    """Equal shapes and dtypes, and equal values (NaN equal to NaN, zeros by sign too)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return bool(
        np.array_equal(a64, b64, equal_nan=True)
        and np.array_equal(np.signbit(a64) & (a64 == 0), np.signbit(b64) & (b64 == 0))
    )
