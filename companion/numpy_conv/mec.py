"""The ``"mec"`` strategy: columns lowered along the width only (MEC, Cho & Brand 2017).

im2col copies every input value about ``kh·kw`` times. MEC, the
memory-efficient convolution of :cite:t:`cho2017mec`, copies each
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


def mec(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One matrix product per output row, read in place from ``kw``-wide strips.

    Blocks of output rows (:func:`~companion.numpy_conv.blocked.row_spans`)
    copy their strips into a scratch buffer of at most
    :func:`~companion.numpy_conv.parallel.block_budget` bytes, channels of
    one group together, then one batched :func:`numpy.matmul` multiplies
    each output row's windows (a strided view of the strips) by the group's
    filters, straight into the output.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> mec(x, np.ones((3, 3, 1, 1)), conv_geometry(x.shape, (3, 3, 1, 1), 1, "VALID"))[..., 0]
    array([[[45., 54.],
            [81., 90.]]])
    """
    out_w = geometry.out_width
    groups, depth, per_group = geometry.groups, geometry.in_depth, geometry.per_group
    kh, kw = geometry.kernel_height, geometry.kernel_width
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    terms, item = kh * kw * depth, x.itemsize
    # Values of L, per channel of a group, from one output row's windows to the next's.
    step = sh * kw if dh == 1 else kh * kw
    xp = pad_scratch(x, geometry)
    s_n, s_h, s_w, s_c = xp.strides

    def strip_shape(images: int, rows: int) -> tuple[int, ...]:
        if dh == 1:  # L[n, g, j, r, b, c]: the padded rows r the block's windows span
            return (images, groups, out_w, (rows - 1) * sh + kh, kw, depth)
        return (images, groups, out_w, rows, kh, kw, depth)  # L[n, g, j, i, a, b, c]

    row_bytes = groups * out_w * step * depth * item
    budget = parallel.block_budget(geometry, item, row_bytes // out_w, MIN_SPLIT_BYTES)
    spans = row_spans(geometry, row_bytes, budget)
    n0, n1, i0, i1 = spans[0]  # the largest block
    size = int(np.prod(strip_shape(n1 - n0, i1 - i0)))
    filters = w.reshape(terms, groups, per_group).transpose(1, 0, 2)  # (groups, terms, per group)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        images, rows = n1 - n0, i1 - i0
        shape = strip_shape(images, rows)
        if dh == 1:
            strides = (s_n, depth * s_c, sw * s_w, s_h, dw * s_w, s_c)
        else:
            strides = (s_n, depth * s_c, sw * s_w, sh * s_h, dh * s_h, dw * s_w, s_c)
        source = as_strided(xp[n0:, i0 * sh :], shape, strides, writeable=False)
        strips = parallel.scratch("strips", (size,), x.dtype)[: source.size].reshape(shape)
        np.copyto(strips, source)
        s_image, s_group, s_column = strips.strides[:3]
        windows = as_strided(
            strips,
            (images, rows, groups, out_w, terms),
            (s_image, step * depth * item, s_group, s_column, item),
            writeable=False,
        )
        target = out[n0:n1, i0:i1].reshape(images, rows, out_w, groups, per_group)
        np.matmul(windows, filters, out=target.transpose(0, 1, 3, 2, 4))

    out = np.empty(geometry.output_shape, dtype=x.dtype)
    parallel.for_each_block(block, len(spans))
    return out
