"""The ``"mec"`` strategy: columns lowered along the width only (MEC, Cho & Brand 2017).

im2col copies every input value about ``kh·kw`` times. MEC, the
memory-efficient convolution of Cho and Brand (ICML 2017), copies each
``kw``-wide vertical strip of the padded input once,

``L[n, j, r, b, c] = xp[n, r, j·sw + b·dw, c]``

(output column ``j``, padded row ``r``, tap column ``b``, channel ``c``):
about ``kw`` copies of the input. In this layout the window of output
``(i, j)`` is one contiguous run, ``L[n, j, i·sh : i·sh + kh]``
(``kh·kw·C`` values), and the windows of one output row, over ``j``, are
runs a fixed distance apart: a matrix whose rows overlap nothing and whose
leading dimension is that distance, which BLAS reads in place. One product
per output row and image, batched by :func:`numpy.matmul`, writes the output
in place.

With a dilation along the height the rows of a window are no longer
adjacent in ``L``; there ``L`` holds them copied, ``(n, j, i, a, b, c)``,
which is im2col with the output column outermost.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from companion.arithmetic import Geometry
from companion.numpy_conv import parallel
from companion.numpy_conv.blocked import pad_scratch, row_spans

#: The least scratch per block that :data:`~companion.numpy_conv.parallel.MIN_BLOCKS`
#: may leave here. A block does little in Python (one copy, one batched product),
#: so blocks may be smaller than the other strategies'
#: :data:`~companion.numpy_conv.parallel.MIN_SPLIT_BYTES`: with that megabyte, the
#: strips of a first layer on MNIST digits fit one block, and two threads ran no
#: faster than one.
MIN_SPLIT_BYTES = 1 << 18


def strips(xp: np.ndarray, geometry: Geometry, rows: tuple[int, int]) -> np.ndarray:
    """The strips of output rows ``rows = (first, stop)``, a read-only view of ``xp``.

    ``xp`` is the zero-padded NHWC input (or some of its images). The result
    is ``L[n, g, j, r, b, c] = xp[n, first·sh + r, j·sw + b·dw, g·D + c]``,
    shaped ``(images, groups, out_width, padded rows, kw, D)``, the padded
    rows being those the output rows' windows span; with a dilation along
    the height, ``L[n, g, j, i, a, b, c]`` instead, each window's rows
    copied. A copy of it is what :func:`mec` multiplies.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(12.0).reshape(1, 3, 4, 1)
    >>> strips(x, conv_geometry(x.shape, (2, 2, 1, 1), 1, "VALID"), (0, 2))[0, 0, 1, :, :, 0]
    array([[ 1.,  2.],
           [ 5.,  6.],
           [ 9., 10.]])
    """
    first, stop = rows
    kh, kw = geometry.kernel_height, geometry.kernel_width
    groups, depth = geometry.groups, geometry.in_depth
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    s_n, s_h, s_w, s_c = xp.strides
    head = (xp.shape[0], groups, geometry.out_width)
    head_strides = (s_n, depth * s_c, sw * s_w)
    if dh == 1:
        shape = (*head, (stop - first - 1) * sh + kh, kw, depth)
        strides = (*head_strides, s_h, dw * s_w, s_c)
    else:
        shape = (*head, stop - first, kh, kw, depth)
        strides = (*head_strides, sh * s_h, dh * s_h, dw * s_w, s_c)
    return as_strided(xp[:, first * sh :], shape, strides, writeable=False)


def windows(copied: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The windows in a contiguous copy of :func:`strips`, a view:
    ``(images, output rows, groups, out_width, kh·kw·D)``.

    Row ``j`` of matrix ``[n, i, g]`` is the window of output ``(i, j)``, one
    contiguous run of the strip of column ``j``; consecutive rows are a strip
    apart, so BLAS reads each matrix in place.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(12.0).reshape(1, 3, 4, 1)
    >>> geometry = conv_geometry(x.shape, (2, 2, 1, 1), 1, "VALID")
    >>> windows(strips(x, geometry, (0, 2)).copy(), geometry)[0, 1, 0]
    array([[ 4.,  5.,  8.,  9.],
           [ 5.,  6.,  9., 10.],
           [ 6.,  7., 10., 11.]])
    """
    kh, kw = geometry.kernel_height, geometry.kernel_width
    (sh, _), (dh, _) = geometry.strides, geometry.dilations
    depth = geometry.in_depth
    images, groups, out_w = copied.shape[:3]
    rows = (copied.shape[3] - kh) // sh + 1 if dh == 1 else copied.shape[3]
    step = (sh * kw if dh == 1 else kh * kw) * depth * copied.itemsize
    s_image, s_group, s_column = copied.strides[:3]
    return as_strided(
        copied,
        (images, rows, groups, out_w, kh * kw * depth),
        (s_image, step, s_group, s_column, copied.itemsize),
        writeable=False,
    )


def mec(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One matrix product per output row, read in place from ``kw``-wide strips.

    Blocks of output rows (:func:`~companion.numpy_conv.blocked.row_spans`)
    copy their :func:`strips` into a scratch buffer of at most
    :func:`~companion.numpy_conv.parallel.block_budget` bytes, then one
    batched :func:`numpy.matmul` multiplies each output row's
    :func:`windows` by its group's filters, straight into the output.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> mec(x, np.ones((3, 3, 1, 1)), conv_geometry(x.shape, (3, 3, 1, 1), 1, "VALID"))[..., 0]
    array([[[45., 54.],
            [81., 90.]]])
    """
    groups, per_group, item = geometry.groups, geometry.per_group, x.itemsize
    xp = pad_scratch(x, geometry)
    # Bytes of strips per output row: a strip holds kw values per channel per row it spans.
    spanned = geometry.strides[0] if geometry.dilations[0] == 1 else geometry.kernel_height
    row_bytes = geometry.out_width * spanned * geometry.kernel_width * geometry.in_channels * item
    budget = parallel.block_budget(geometry, item, row_bytes // geometry.out_width, MIN_SPLIT_BYTES)
    spans = row_spans(geometry, row_bytes, budget)
    n0, n1, i0, i1 = spans[0]  # the largest block
    size = strips(xp[n0:n1], geometry, (i0, i1)).size
    filters = w.reshape(-1, groups, per_group).transpose(1, 0, 2)  # (groups, terms, per group)
    out = np.empty(geometry.output_shape, dtype=x.dtype)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        source = strips(xp[n0:n1], geometry, (i0, i1))
        copied = parallel.scratch("strips", (size,), x.dtype)[: source.size]
        copied = copied.reshape(source.shape)
        np.copyto(copied, source)
        target = out[n0:n1, i0:i1].reshape(n1 - n0, i1 - i0, -1, groups, per_group)
        np.matmul(windows(copied, geometry), filters, out=target.transpose(0, 1, 3, 2, 4))

    parallel.for_each_block(block, len(spans))
    return out
