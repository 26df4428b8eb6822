"""Depthwise layers: one elementwise product per tap, summed along whole output rows.

A depthwise convolution (one input and one output channel per group, as in
MobileNet's blocks) has no matrix product to make: output channel ``c`` reads
input channel ``c`` alone,

``out[n, i, j, c] = Σ_{a, b} xp[n, i·sh + a·dh, j·sw + b·dw, c] · w[a, b, 0, c]``.

A matrix-product strategy makes one product of a single term per channel, and
an elementwise product per tap followed by an add passes over the data twice
per tap, the multiplication broadcasting the weights over every position.
Here, once the padded input is split into its column stride phases
(:class:`~companion.numpy_conv.grid.Grid`), the input values that one tap
multiplies for one output row are one contiguous run of ``out_width · C``
values, and the runs of consecutive rows are a fixed distance apart.
:func:`numpy.einsum` multiplies each tap's runs by the tap's weights repeated
along the row (a contiguous operand, so its loop runs over the whole row)
and adds the products into the result in the same pass: one pass per tap,
no product array.

Each sum starts from +0 and adds the taps of a column phase in the filter's
order, the phases one after the other; rows are cut into blocks
(:func:`~companion.numpy_conv.parallel.row_spans`) by the shape and the
settings alone, so results do not depend on the threads. The filter gradient
sums the same runs times the output gradient's rows, then the ``out_width``
partial sums of each weight, in a fixed order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import as_strided

from companion.arithmetic import Geometry
from companion.numpy_conv import parallel
from companion.numpy_conv.grid import Grid, phase_image, stride_phase_grid

#: The product of one tap with one output row, summed over the taps of a phase.
_FORWARD = "abnil,abl->nil"
#: The input runs of one tap times the output gradient's rows, summed over the rows.
_FILTER_GRADIENT = "abnil,nil->abl"


def is_depthwise(geometry: Geometry) -> bool:
    """Whether each group of the convolution has one input and one output channel.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> is_depthwise(conv_geometry((8, 56, 56, 64), (3, 3, 1, 64), 1, "SAME"))
    True
    >>> is_depthwise(conv_geometry((8, 56, 56, 64), (3, 3, 1, 128), 1, "SAME"))
    False
    """
    return geometry.groups > 1 and geometry.in_depth == geometry.per_group == 1


def _column_phases(x: np.ndarray, geometry: Geometry) -> tuple[Grid, list[np.ndarray]]:
    """The grid and flat NHWC images of the padded input's *column* stride phases.

    A tap's reads for one output row must be contiguous, which asks for
    column phases only: the rows of one run are ``sh`` grid rows apart, and a
    view can step over them. So the input is split along its columns alone
    (the grid of the same layer at stride ``(1, sw)``): fewer phases, and fewer
    einsum calls, than splitting the rows too. The images are contiguous, as
    :func:`_runs` reads them (an unpadded input at stride 1 is read in place
    when it is contiguous, as NCHW's transposed view is not).
    """
    columns_only = dataclasses.replace(geometry, strides=(1, geometry.strides[1]))
    grid = stride_phase_grid(columns_only)
    images = [
        np.ascontiguousarray(phase_image(x, columns_only, grid, phase, planar=False))
        for phase in grid.phases
    ]
    return grid, images


def _runs(image: np.ndarray, grid: Grid, lattice, span, length: int, sh: int) -> np.ndarray:
    """The reads of a phase's taps for the output rows of ``span``, a view of the flat
    NHWC phase ``image`` (column phases, output rows ``sh`` grid rows apart):
    ``(taps down, taps across, images, rows, length)``."""
    offset, n_a, step_a, n_b, step_b, _ = lattice
    n0, n1, i0, i1 = span
    s_p, s_v = image.strides
    first = (n0 * grid.height + i0 * sh) * grid.width + offset
    return as_strided(
        image[first:],
        (n_a, n_b, n1 - n0, i1 - i0, length),
        (step_a * s_p, step_b * s_p, grid.positions * s_p, sh * grid.width * s_p, s_v),
        writeable=False,
    )


def _layout(x: np.ndarray, geometry: Geometry):
    """``(grid, images, spans, length)``: the column phases (:func:`_column_phases`), the
    blocks of whole output rows, sized from the shape and the settings alone, and the
    length of one output row's run, ``out_width · C``."""
    grid, images = _column_phases(x, geometry)
    length = geometry.out_width * geometry.out_channels
    row_bytes = length * x.itemsize
    budget = parallel.block_budget(geometry, x.itemsize, row_bytes // geometry.out_width)
    return grid, images, parallel.row_spans(geometry, row_bytes, budget), length


def forward(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A depthwise convolution, one einsum per column phase and block of output rows.

    ``x`` is NHWC, ``w`` is ``(kh, kw, 1, C)`` and ``geometry`` depthwise
    (:func:`is_depthwise`). Each block of output rows is written in place:
    the first phase's sum straight into the output, each further phase's
    (layers strided along the width) into a scratch row block that is then added.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(18.0).reshape(1, 3, 3, 2)
    >>> w = np.ones((2, 2, 1, 2))
    >>> forward(x, w, conv_geometry(x.shape, w.shape, 1, "VALID"))[0, :, :, 1]
    array([[20., 28.],
           [44., 52.]])
    """
    grid, images, spans, length = _layout(x, geometry)
    sh, channels, out_w = geometry.strides[0], geometry.out_channels, geometry.out_width
    per_tap = w.reshape(-1, channels)
    # Each phase's taps, their weights repeated along a row: (taps down, taps across, length)
    weights = [
        np.tile(per_tap[list(taps)], (1, out_w)).reshape(n_a, n_b, length)
        for _, n_a, _, n_b, _, taps in grid.lattices
    ]
    out = np.empty(geometry.output_shape, dtype=x.dtype)

    def block(index: int) -> None:
        span = spans[index]
        n0, n1, i0, i1 = span
        target = out[n0:n1, i0:i1].reshape(n1 - n0, i1 - i0, length)
        for k, (image, lattice) in enumerate(zip(images, grid.lattices, strict=True)):
            runs = _runs(image, grid, lattice, span, length, sh)
            if k == 0:
                np.einsum(_FORWARD, runs, weights[k], out=target)
            else:
                product = parallel.scratch("product", target.shape, x.dtype)
                np.einsum(_FORWARD, runs, weights[k], out=product)
                target += product

    parallel.for_each_block(block, len(spans))
    return out


def filter_gradient(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient of a depthwise convolution, ``(kh, kw, 1, C)``.

    Per block of output rows and per tap, one einsum sums the tap's input
    runs times the output gradient's rows into ``out_width · C`` partial sums
    (one per output column and channel); the blocks are added in
    :func:`~companion.numpy_conv.parallel.sum_blocks`'s fixed order, then
    each weight's ``out_width`` partial sums in column order. Only the
    output's own positions are read (none of the grid's columns past the
    output's width), so every product is one of the sum's.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> x = np.arange(18.0).reshape(1, 3, 3, 2)
    >>> geometry = conv_geometry(x.shape, (2, 2, 1, 2), 1, "VALID")
    >>> filter_gradient(x, np.ones((1, 2, 2, 2)), geometry)[:, :, 0, 1]
    array([[20., 28.],
           [44., 52.]])
    """
    grid, images, spans, length = _layout(x, geometry)
    sh, channels, out_w = geometry.strides[0], geometry.out_channels, geometry.out_width
    taps = geometry.kernel_height * geometry.kernel_width
    order = [t for *_, indices in grid.lattices for t in indices]  # rows of the partial sums

    def contribute(number: int, total: np.ndarray) -> None:
        span = spans[number]
        n0, n1, i0, i1 = span
        gradient = dy[n0:n1, i0:i1].reshape(n1 - n0, i1 - i0, length)
        row = 0
        for image, lattice in zip(images, grid.lattices, strict=True):
            runs = _runs(image, grid, lattice, span, length, sh)
            n_a, n_b = runs.shape[:2]
            target = total[row : row + n_a * n_b].reshape(n_a, n_b, length)
            np.einsum(_FILTER_GRADIENT, runs, gradient, out=target)
            row += n_a * n_b

    total = parallel.sum_blocks(contribute, len(spans), (taps, length), x.dtype)
    result = np.empty((taps, channels), dtype=x.dtype)
    result[order] = total.reshape(taps, out_w, channels).sum(axis=1)
    return result.reshape(geometry.kernel_height, geometry.kernel_width, 1, channels)
