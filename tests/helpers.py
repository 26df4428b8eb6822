"""Shared by the test modules: tf.nn.conv2d's argument forms, and float formats bit by bit."""

from __future__ import annotations

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
    for _ in range(2):
        candidates.append(np.nextafter(candidates[-1], np.array(np.inf, dtype)))
    below = [guess]
    for _ in range(2):
        below.append(np.nextafter(below[-1], np.array(-np.inf, dtype)))
    candidates += below[1:]

    def key(value):
        distance = abs(Fraction(float(value)) - exact)
        odd = int(np.array(value).view(UINT[dtype.name])) & 1
        return (distance, odd)

    return min(candidates, key=key)
