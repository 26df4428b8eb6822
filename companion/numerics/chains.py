"""A convolution evaluated in one stated order: a chain of fused multiply-adds per output.

Built in chapter 6.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from companion.numerics.bounds import conv_operands
from companion.numerics.summation import fma_dot
from companion.numpy_conv import operands
from companion.numpy_conv.direct import windows


def fma_conv2d(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> np.ndarray:
    """``tf.nn.conv2d`` with every output one chain of fused multiply-adds, in the filter's order.

    Built in chapter 6.

    Each output is ``s ← fl(s + x·w)`` over its window's taps in the order
    ``(kh, kw, in_depth)`` of the filter's layout, starting from zero, each step
    rounded once (:func:`~companion.numerics.fma_dot`, emulated exactly). Chapter
    6 found this to be the order of TensorFlow's kernels on short sums on the
    machine that built the book; that is an observation about one machine, not a
    promise of TensorFlow's. The arguments and their semantics (padding, strides,
    dilations, groups, data formats) are those of
    :func:`companion.numpy_conv.conv2d`.

    Parameters
    ----------
    input, filters, strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`; ``input`` float16, bfloat16 or float32
        (the formats whose products float64 holds exactly), ``filters``
        converted to its dtype.

    Returns
    -------
    ndarray
        A new array in ``data_format`` order, of ``input``'s dtype.

    Raises
    ------
    ValueError
        Naming the argument: a float64 ``input``, or anything
        :func:`companion.numpy_conv.conv2d` rejects.

    Examples
    --------
    The chain rounds after each product is added, so 1 + 2⁻²⁴ + 2⁻²⁴ stays 1 in
    float32, whereas adding the two small terms first would not:

    >>> x = np.float32([1.0, 2.0**-24, 2.0**-24]).reshape(1, 1, 3, 1)
    >>> float(fma_conv2d(x, np.ones((1, 3, 1, 1), np.float32), 1, "VALID")[0, 0, 0, 0]) == 1.0
    True
    """
    data_format, x, w, geometry = conv_operands(
        input, filters, strides, padding, data_format, dilations
    )
    if x.dtype == np.float64:
        raise ValueError(
            "input: expected float16, bfloat16 or float32 (float64 products are not exact "
            f"in any wider NumPy format), got {x.dtype}"
        )
    if geometry.is_empty:
        out = np.zeros(geometry.output_shape, x.dtype)
    else:
        n, ho, wo, _ = geometry.output_shape
        groups, depth, per_group = geometry.groups, geometry.in_depth, geometry.per_group
        kh, kw = geometry.kernel_height, geometry.kernel_width
        view = windows(operands.to_nhwc(x, data_format), geometry)
        view = view.reshape(n, ho, wo, groups, depth, kh, kw)
        # (n, ho, wo, groups, 1, taps): each window's taps in the filter's (kh, kw, cin) order.
        terms = view.transpose(0, 1, 2, 3, 5, 6, 4).reshape(n, ho, wo, groups, 1, -1)
        weights = w.reshape(kh * kw * depth, groups, per_group).transpose(1, 2, 0)
        out = fma_dot(terms, weights, axis=-1).reshape(geometry.output_shape)
    if data_format == "NCHW":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out
