"""Convolutions whose padding dwarfs the input: each tap multiplies only the pixels it reaches.

A padded copy of the input costs ``(H + top + bottom)·(W + left + right)`` pixels
however few of them a kernel tap ever reads; with a large dilation under
``SAME`` (or a large explicit padding) that is gigabytes of zeros for a small
image. Here nothing is padded: for each tap, :func:`companion.arithmetic.tap_reach`
gives the run of outputs whose tap lands on the input, and one matrix product
per tap adds exactly those contributions. Time and memory then follow the taps
that land on the input, as in TensorFlow. :func:`forward` is the strategy
``"unpadded"``; ``"auto"`` takes this route, for the forward pass and both
gradients, when :func:`worthwhile` says so.

Every output adds its taps in the filter's ``(a, b)`` order, one product per
tap summed over the channels by the matrix product: the same order whatever
the number of threads. The padding's zeros still count where IEEE arithmetic
makes them count: a zero times an infinite or NaN weight (or output gradient)
is NaN, as in the padded computation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from companion.arithmetic import Geometry, tap_reach

#: ``auto`` avoids a padded copy of the input larger than this many times the input and
#: the output together (in elements): far more memory than the call needs anyway.
PADDING_DOMINATES = 2


def worthwhile(geometry: Geometry) -> bool:
    """Whether a padded copy of the input would outweigh the input and output together.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> worthwhile(conv_geometry((1, 5, 5, 1), (3, 3, 1, 1), 1, "SAME", dilations=20000))
    True
    >>> worthwhile(conv_geometry((8, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"))
    False
    """
    batch, height, width, channels = geometry.input_shape
    padded = batch * math.prod(geometry.padded_size) * channels
    used = batch * height * width * channels + math.prod(geometry.output_shape)
    return padded > PADDING_DOMINATES * used


def _taps(geometry: Geometry) -> Iterator[tuple[int, int, tuple, tuple, tuple, tuple]]:
    """``(a, b, out_rows, out_cols, in_rows, in_cols)`` for every tap that reaches the input."""
    (top, _), (left, _) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    for a in range(geometry.kernel_height):
        i0, i1, r0 = tap_reach(geometry.in_height, geometry.out_height, sh, dh, top, a)
        if i1 == i0:
            continue
        for b in range(geometry.kernel_width):
            j0, j1, c0 = tap_reach(geometry.in_width, geometry.out_width, sw, dw, left, b)
            if j1 == j0:
                continue
            in_rows = slice(r0, r0 + (i1 - i0 - 1) * sh + 1, sh)
            in_cols = slice(c0, c0 + (j1 - j0 - 1) * sw + 1, sw)
            yield a, b, slice(i0, i1), slice(j0, j1), in_rows, in_cols


def _padding_reads(geometry: Geometry) -> Iterator[tuple[int, int, tuple]]:
    """``(a, b, (rows, cols))`` for every tap, with index arrays of the outputs whose tap
    reads a zero of the padding (an open mesh, for ``out[:, rows, cols]``)."""
    (top, _), (left, _) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    for a in range(geometry.kernel_height):
        i0, i1, _ = tap_reach(geometry.in_height, geometry.out_height, sh, dh, top, a)
        row_out = np.ones(geometry.out_height, bool)
        row_out[i0:i1] = False
        for b in range(geometry.kernel_width):
            j0, j1, _ = tap_reach(geometry.in_width, geometry.out_width, sw, dw, left, b)
            col_out = np.ones(geometry.out_width, bool)
            col_out[j0:j1] = False
            # Outputs outside the rectangle of reach: a padded row or a padded column.
            rows, cols = np.nonzero(row_out[:, None] | col_out[None, :])
            if rows.size:
                yield a, b, (rows, cols)


def _by_group(matrix: np.ndarray, groups: int) -> np.ndarray:
    """``(rows, groups·n)`` as ``(groups, rows, n)``."""
    return matrix.reshape(matrix.shape[0], groups, -1).transpose(1, 0, 2)


def _from_groups(blocks: np.ndarray) -> np.ndarray:
    """``(groups, rows, n)`` as ``(rows, groups·n)``."""
    return blocks.transpose(1, 0, 2).reshape(blocks.shape[1], -1)


def _per_group(w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filters as ``(kh, kw, groups, depth, per group)``."""
    groups = geometry.groups
    return w.reshape(*w.shape[:3], groups, geometry.per_group).transpose(0, 1, 3, 2, 4)


def forward(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The NHWC output, one product per tap over the outputs it reaches; no padded copy.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(1.0, 26.0).reshape(1, 5, 5, 1)
    >>> g = conv_geometry(x.shape, (3, 3, 1, 1), 1, "SAME", dilations=20000)
    >>> bool(np.array_equal(forward(x, np.ones((3, 3, 1, 1)), g), x))   # only the centre tap
    True
    """
    out = np.zeros(geometry.output_shape, dtype=x.dtype)
    groups = geometry.groups
    filters = _per_group(w, geometry)
    for a, b, out_rows, out_cols, in_rows, in_cols in _taps(geometry):
        patch = x[:, in_rows, in_cols]
        shape = patch.shape[:3]
        columns = _by_group(patch.reshape(-1, geometry.in_channels), groups)
        product = _from_groups(np.matmul(columns, filters[a, b]))
        out[:, out_rows, out_cols] += product.reshape(*shape, geometry.out_channels)
    if not np.all(np.isfinite(w)):
        # 0 · inf and 0 · NaN are NaN: where a tap with such a weight reads a zero of
        # the padding, the output is NaN, as the padded sum gives.
        for a, b, reads_padding in _padding_reads(geometry):
            poisoned = ~np.all(np.isfinite(w[a, b]), axis=0)  # per output channel
            out[:, reads_padding[0], reads_padding[1]] += np.where(poisoned, np.nan, 0.0)
    return out


def input_gradient(dy: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The NHWC input gradient: each tap sends its outputs' gradient back to the pixels it read.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> g = conv_geometry((1, 5, 5, 1), (3, 3, 1, 1), 1, "SAME", dilations=20000)
    >>> dx = input_gradient(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1)), g)
    >>> dx.shape, float(dx.sum())
    ((1, 5, 5, 1), 25.0)
    """
    dx = np.zeros(geometry.input_shape, dtype=dy.dtype)
    groups = geometry.groups
    turned = _per_group(w, geometry).transpose(0, 1, 2, 4, 3)  # (kh, kw, groups, per, depth)
    for a, b, out_rows, out_cols, in_rows, in_cols in _taps(geometry):
        gradient = dy[:, out_rows, out_cols]
        shape = gradient.shape[:3]
        rows = _by_group(gradient.reshape(-1, geometry.out_channels), groups)
        product = _from_groups(np.matmul(rows, turned[a, b]))
        dx[:, in_rows, in_cols] += product.reshape(*shape, geometry.in_channels)
    return dx


def filter_gradient(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient, ``(kh, kw, depth, out_channels)``: per tap, the pixels it read
    times the gradient of the outputs it fed; taps that read only zeros get zero.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(1.0, 26.0).reshape(1, 5, 5, 1)
    >>> g = conv_geometry(x.shape, (3, 3, 1, 1), 1, "SAME", dilations=20000)
    >>> filter_gradient(x, np.ones((1, 5, 5, 1)), g)[:, :, 0, 0]
    array([[  0.,   0.,   0.],
           [  0., 325.,   0.],
           [  0.,   0.,   0.]])
    """
    groups, depth = geometry.groups, geometry.in_depth
    per_group = geometry.per_group
    result = np.zeros(
        (geometry.kernel_height, geometry.kernel_width, groups, depth, per_group), x.dtype
    )
    for a, b, out_rows, out_cols, in_rows, in_cols in _taps(geometry):
        columns = _by_group(x[:, in_rows, in_cols].reshape(-1, geometry.in_channels), groups)
        gradient = _by_group(dy[:, out_rows, out_cols].reshape(-1, geometry.out_channels), groups)
        np.matmul(columns.transpose(0, 2, 1), gradient, out=result[a, b])
    finite = np.isfinite(dy)
    if not np.all(finite):
        # The zeros of the padding times an infinite or NaN output gradient: NaN.
        result = result.transpose(0, 1, 3, 2, 4).reshape(*result.shape[:2], depth, -1)
        for a, b, (rows, cols) in _padding_reads(geometry):
            poisoned = ~np.all(finite[:, rows, cols], axis=(0, 1))  # per output channel
            result[a, b] += np.where(poisoned, np.nan, 0.0)
        return result
    return result.transpose(0, 1, 3, 2, 4).reshape(
        geometry.kernel_height, geometry.kernel_width, depth, geometry.out_channels
    )
