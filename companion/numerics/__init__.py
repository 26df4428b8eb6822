"""Floating-point numerics of convolution: bounds, formats, orders, and accurate sums.

A convolution output is a sum of products, and floating-point addition is not
associative, so two correct implementations that add in different orders
(a Python loop, BLAS, TensorFlow's two CPU paths) give results that differ in
the last bits. This package says how far apart they may be, and why:

- :mod:`~companion.numerics.bounds` (chapter 5): unit roundoff, ``γ_n`` and the
  worst-case bounds on a dot product and a convolution, and
  :func:`assert_conv_close`, the comparison every test of the book uses;
- :mod:`~companion.numerics.formats` (chapter 6): float16, bfloat16, TF32,
  float32 and float64 described once (:func:`float_format`), distances in
  units in the last place (:func:`ulp_distance`, :func:`ulp`) and rounding to
  a narrower format (:func:`round_to_format`);
- :mod:`~companion.numerics.probabilistic` (chapter 6): Higham and Mary's
  ``γ̃_n(λ) ≈ λ·√n·u`` beside the worst case;
- :mod:`~companion.numerics.summation` (chapter 6): sums in several orders
  with their bounds, and :func:`fma_dot`, the chain of fused multiply-adds
  that BLAS and oneDNN kernels evaluate;
- :mod:`~companion.numerics.chains` (chapter 6): :func:`fma_conv2d`, a convolution
  evaluated as one chain of fused multiply-adds per output, in the filter's order;
- :mod:`~companion.numerics.accurate` (chapter 6): :func:`accurate_conv2d`
  (float64 accumulation, a compensated dot product, or the exactly rounded
  result).

Every function reads its array arguments by value, in any byte order and
memory layout, never writes to them and returns new arrays in native byte
order; it refuses complex, object, string and boolean arrays (and anything else
it cannot use) with a ``ValueError`` whose message starts with the argument's
name. Infinities and NaN follow IEEE 754 (see each function's docstring);
rounding-error bounds hold for finite values, and :func:`assert_conv_close`
requires non-finite values to match exactly and refuses an infinite bound.
"""

from companion.numerics import accurate as _accurate
from companion.numerics import summation as _summation
from companion.numerics.accurate import (
    accurate_conv2d,
    compensated_error_bound,
    conv_magnitude,
)
from companion.numerics.bounds import (
    assert_conv_close,
    conv_error_bound,
    dot_error_bound,
    gamma,
)
from companion.numerics.chains import fma_conv2d
from companion.numerics.formats import (
    FloatFormat,
    float_format,
    round_to_format,
    ulp,
    ulp_distance,
    unit_roundoff,
)
from companion.numerics.probabilistic import (
    bound_probability,
    probabilistic_error_bound,
    probabilistic_gamma,
)
from companion.numerics.summation import (
    fma_dot,
    summation,
    summation_error_bound,
)

#: The modes of :func:`accurate_conv2d`.
ACCURATE_MODES = _accurate.ACCURATE_MODES
#: The methods :func:`summation` knows.
SUMMATION_METHODS = _summation.SUMMATION_METHODS

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
    "fma_conv2d",
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
