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
from companion.numpy_conv import parallel, products
from companion.numpy_conv.blocked import pad_scratch

#: The least scratch per block that :data:`~companion.numpy_conv.parallel.MIN_BLOCKS`
#: may leave here. A block does little in Python (one copy, one batched product),
#: so blocks may be smaller than the other strategies'
#: :data:`~companion.numpy_conv.parallel.MIN_SPLIT_BYTES`: with that megabyte, the
#: strips of a first layer on MNIST digits fit one block, and two threads ran no
#: faster than one.
MIN_SPLIT_BYTES = 1 << 18

#: A block of one image's columns keeps at least this many (or all), which become the
#: rows of its products: cut into blocks of 8 columns, a 7×7 kernel on one 64 × 64
#: image took 1.5 ms on one thread, against 1.2 ms in blocks of 32. Rounding an odd
#: count of blocks up to even (:func:`~companion.numpy_conv.parallel.even_count`) may
#: leave three quarters of it: the ResNet stem's 112 columns go in 4 blocks of 28, not
#: 3 of 37, and its forward pass ran 1.96-1.98 -> 1.47-1.69 ms at two threads.
MIN_COLUMNS = 32


def strips(xp: np.ndarray, geometry: Geometry) -> np.ndarray:
    """MEC's strips, a read-only view of the zero-padded NHWC input ``xp``.

    ``L[g, n, j, r, b, c] = xp[n, r, j·sw + b·dw, g·D + c]``, shaped
    ``(groups, images, out_width, padded rows, kw, D)``: for each output
    column ``j``, the ``kw`` columns its windows read, over the padded rows
    they span; with a dilation along the height, ``L[g, n, j, i, a, b, c]``
    instead, each window's rows copied. A contiguous copy of some of its
    images and columns is what :func:`mec` multiplies.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(12.0).reshape(1, 3, 4, 1)
    >>> strips(x, conv_geometry(x.shape, (2, 2, 1, 1), 1, "VALID"))[0, 0, 1, :, :, 0]
    array([[ 1.,  2.],
           [ 5.,  6.],
           [ 9., 10.]])
    """
    kh, kw = geometry.kernel_height, geometry.kernel_width
    groups, depth, out_h = geometry.groups, geometry.in_depth, geometry.out_height
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    s_n, s_h, s_w, s_c = xp.strides
    head = (groups, xp.shape[0], geometry.out_width)
    head_strides = (depth * s_c, s_n, sw * s_w)
    if dh == 1:
        shape = (*head, (out_h - 1) * sh + kh, kw, depth)
        strides = (*head_strides, s_h, dw * s_w, s_c)
    else:
        shape = (*head, out_h, kh, kw, depth)
        strides = (*head_strides, sh * s_h, dh * s_h, dw * s_w, s_c)
    return as_strided(xp, shape, strides, writeable=False)


def windows(copied: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The windows in a contiguous copy of (some columns of) :func:`strips`, a view:
    ``(groups, images, output rows, columns, kh·kw·D)``.

    Row ``j`` of matrix ``[g, n, i]`` is the window of output ``(i, j)``, one
    contiguous run of the strip of column ``j``; consecutive rows are a strip
    apart, so BLAS reads each matrix in place.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(12.0).reshape(1, 3, 4, 1)
    >>> geometry = conv_geometry(x.shape, (2, 2, 1, 1), 1, "VALID")
    >>> windows(strips(x, geometry).copy(), geometry)[0, 0, 1]
    array([[ 4.,  5.,  8.,  9.],
           [ 5.,  6.,  9., 10.],
           [ 6.,  7., 10., 11.]])
    """
    kh, kw = geometry.kernel_height, geometry.kernel_width
    (sh, _), (dh, _) = geometry.strides, geometry.dilations
    depth = geometry.in_depth
    groups, images, out_w = copied.shape[:3]
    rows = (copied.shape[3] - kh) // sh + 1 if dh == 1 else copied.shape[3]
    step = (sh * kw if dh == 1 else kh * kw) * depth * copied.itemsize
    s_group, s_image, s_column = copied.strides[:3]
    return as_strided(
        copied,
        (groups, images, rows, out_w, kh * kw * depth),
        (s_group, s_image, step, s_column, copied.itemsize),
        writeable=False,
    )


def _blocks(x: np.ndarray, geometry: Geometry):
    """``(spans, fill)``: blocks ``(n0, n1, j0, j1)`` of images and output columns whose
    strips fit the block budget, and ``fill(span)``, their strips copied into the
    calling thread's scratch buffer.

    A block holds whole strips (every output row): whole images when one fits,
    else the columns of one image cut evenly. Strips overlap nothing, so no
    value is copied twice, however the work is cut.
    """
    xp = pad_scratch(x, geometry)
    view = strips(xp, geometry)
    batch, out_w = geometry.batch, geometry.out_width
    column_bytes = view[:, 0, 0].nbytes  # one output column's strip, all groups
    budget = parallel.block_budget(
        geometry, x.itemsize, column_bytes // geometry.out_height, MIN_SPLIT_BYTES
    )
    columns = max(min(out_w, MIN_COLUMNS), budget // column_bytes)
    if columns >= out_w:
        images = min(batch, columns // out_w)
        cuts = parallel.split_evenly(batch, -(-batch // images))  # each at most `images`
        spans = [(n0, n1, 0, out_w) for n0, n1 in cuts]
    else:
        # Pieces of at least `columns`, in an even count: an odd count above 1 rounds up,
        # and its pieces keep at least three quarters of `columns` (3 -> 4 pieces).
        cuts = parallel.split_evenly(out_w, parallel.even_count(out_w // columns))
        spans = [(n, n + 1, j0, j1) for n in range(batch) for j0, j1 in cuts]
    size = max((n1 - n0) * (j1 - j0) for n0, n1, j0, j1 in spans) * view[:, 0, 0].size

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, j0, j1 = span
        source = view[:, n0:n1, j0:j1]
        copied = parallel.scratch("strips", (size,), x.dtype)[: source.size]
        copied = copied.reshape(source.shape)
        np.copyto(copied, source)
        return copied

    return spans, fill


def mec(
    x: np.ndarray, w: np.ndarray, geometry: Geometry, out: np.ndarray | None = None
) -> np.ndarray:
    """One matrix product per output row, read in place from ``kw``-wide strips.

    Blocks of whole images, or of output columns of one image (at least
    :data:`MIN_COLUMNS`), copy their :func:`strips` into a scratch buffer of
    about :func:`~companion.numpy_conv.parallel.block_budget` bytes, then one
    batched :func:`numpy.matmul` multiplies each output row's
    :func:`windows` by its group's filters, straight into the output: a new
    array, or ``out``, any view of the output's shape whose channels are
    contiguous (the input gradient's stride phases write theirs into every
    ``s``-th pixel of the gradient this way).

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> mec(x, np.ones((3, 3, 1, 1)), conv_geometry(x.shape, (3, 3, 1, 1), 1, "VALID"))[..., 0]
    array([[[45., 54.],
            [81., 90.]]])
    """
    groups, per_group, out_h = geometry.groups, geometry.per_group, geometry.out_height
    spans, fill = _blocks(x, geometry)
    # (groups, 1, 1, terms, per group): broadcast over the images and rows of a block
    filters = w.reshape(-1, groups, per_group).transpose(1, 0, 2)[:, None, None]
    if out is None:
        out = np.empty(geometry.output_shape, dtype=x.dtype)
    elif out.shape != geometry.output_shape or out.strides[3] != out.itemsize:
        raise ValueError(
            f"out: expected a view of shape {geometry.output_shape} with contiguous channels, "
            f"got shape {out.shape} and strides {out.strides}"
        )

    def block(index: int) -> None:
        n0, n1, j0, j1 = spans[index]
        # Splitting the contiguous channels is a view, whatever the other strides.
        target = out[n0:n1, :, j0:j1].reshape(n1 - n0, out_h, j1 - j0, groups, per_group)
        target = target.transpose(3, 0, 1, 2, 4)  # (groups, images, rows, columns, per group)
        products.matmul(windows(fill(spans[index]), geometry), filters, target)

    parallel.for_each_block(block, len(spans))
    return out


def filter_gradient(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient from the strips: ``Σ_i windows_iᵀ @ dy_i`` over output rows ``i``.

    Within a block (whole images, or output columns of one image), the
    windows of output row ``i`` of all its images form one matrix (the copied
    strips of consecutive images follow one another), multiplied by that row
    of the output gradient, copied output-row-major; each block's rows are summed in order
    and the blocks in :func:`~companion.numpy_conv.parallel.sum_blocks`'s
    fixed order. Returns ``(kh, kw, depth, out_channels)``.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> geometry = conv_geometry(x.shape, (3, 3, 1, 1), 1, "VALID")
    >>> filter_gradient(x, np.ones((1, 2, 2, 1)), geometry)[..., 0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    """
    groups, per_group, terms = geometry.groups, geometry.per_group, geometry.terms
    out_h = geometry.out_height
    spans, fill = _blocks(x, geometry)

    def contribute(number: int, total: np.ndarray) -> None:
        n0, n1, j0, j1 = spans[number]
        images, columns = n1 - n0, j1 - j0
        view = windows(fill(spans[number]), geometry)  # (groups, images, rows, columns, terms)
        s_group, _, s_row, s_column, s_term = view.strides
        # The copy is contiguous, so image n + 1's strips follow image n's: one matrix per row.
        by_row = as_strided(
            view, (groups, out_h, images * columns, terms), (s_group, s_row, s_column, s_term)
        )
        shape = (groups, out_h, images, columns, per_group)
        gradient = parallel.scratch("gradient rows", shape, x.dtype)
        block = dy[n0:n1, :, j0:j1].reshape(images, out_h, columns, groups, per_group)
        np.copyto(gradient, block.transpose(3, 1, 0, 2, 4))
        row_products = parallel.scratch("row products", (groups, out_h, terms, per_group), x.dtype)
        np.matmul(
            by_row.transpose(0, 1, 3, 2),
            gradient.reshape(groups, out_h, images * columns, per_group),
            out=row_products,
        )
        np.sum(row_products, axis=1, out=total)

    total = parallel.sum_blocks(contribute, len(spans), (groups, terms, per_group), x.dtype)
    return total.transpose(1, 0, 2).reshape(
        geometry.kernel_height, geometry.kernel_width, geometry.in_depth, geometry.out_channels
    )
