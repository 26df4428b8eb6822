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
partial sums of each weight, in a fixed order. The input gradient
(:func:`input_gradient`) sums runs of the output gradient, each value repeated
once per column stride phase, along whole rows of the result.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from companion.arithmetic import Geometry
from companion.numpy_conv import parallel
from companion.numpy_conv.grid import Grid, phase_image, stride_phase_grid

#: The product of one tap with one output row, summed over the taps of a phase.
_FORWARD = "abnil,abl->nil"
#: The input runs of one tap times the output gradient's rows, summed over the rows: one
#: call per tap, as a call for all the taps of a phase ran half as fast (3.7 against 6.1
#: G taps/s on one thread of the machine that built the book).
_FILTER_GRADIENT = "nil,nil->l"


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
    return (
        grid,
        images,
        parallel.row_spans(geometry.batch, geometry.out_height, row_bytes, budget),
        length,
    )


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


def _column_shifts(geometry: Geometry) -> tuple[list[tuple[int, int]], int, int]:
    """``(slots, step, count)``: per filter column ``b``, ``(slot, p)`` with
    ``b·dw = slot·step·sw + p``, ``p`` a column phase; the slots are ``0 .. count − 1``."""
    sw, dw = geometry.strides[1], geometry.dilations[1]
    shifts = [divmod(b * dw, sw) for b in range(geometry.kernel_width)]
    step = math.gcd(*(q for q, _ in shifts)) or 1
    slots = [(q // step, p) for q, p in shifts]
    return slots, step, max(slot for slot, _ in slots) + 1


def has_zero_weights(geometry: Geometry) -> bool:
    """Whether :func:`input_gradient` multiplies some values by weights of zero (shifts and
    phases that no filter column has): then an infinite or NaN gradient would give NaN.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> has_zero_weights(conv_geometry((1, 8, 8, 4), (3, 3, 1, 4), 1, "SAME"))
    False
    >>> has_zero_weights(conv_geometry((1, 8, 8, 4), (3, 3, 1, 4), 2, "SAME"))
    True
    """
    _, _, count = _column_shifts(geometry)
    return count * geometry.strides[1] > geometry.kernel_width


def input_gradient(dy: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The input gradient of a depthwise convolution, NHWC, one einsum per row phase and
    block of rows, written in place.

    Padded input pixel ``(r, u)`` receives ``dy[i, j] · w[a, b]`` wherever
    ``r = i·sh + a·dh`` and ``u = j·sw + b·dw``.

    - **Rows.** The taps that reach row ``r`` are those with
      ``a·dh ≡ r (mod sh)``, each reading gradient row ``(r − a·dh) / sh``: the
      rows of one phase, every ``sh``-th row of the result (a view), sum the same
      taps.
    - **Columns.** Cut the padded row into groups of ``sw`` columns,
      ``u = U·sw + p``. Tap column ``b``, with ``b·dw = q·sw + p``, sends gradient
      column ``j = U − q`` to column phase ``p`` of group ``U``. So a row of the
      result, ``(U, p, c)``, is a sum over the shifts ``q`` of the gradient's
      row, each value repeated ``sw`` times (one per ``p``) and read from column
      ``U − q`` on, times the weight of the tap with that ``(q, p)`` (zero if
      none has it). Those reads are contiguous runs of a repeated copy of the
      gradient, and one einsum sums a phase's taps and shifts in one pass each.

    No stride phase of the result is computed apart and copied into it, as
    :func:`~companion.numpy_conv.gradients.conv2d_backprop_input`'s phases do
    for other layers. Each sum adds the taps in a fixed order, and blocks are
    fixed by the shape and the settings. With :func:`has_zero_weights`, an
    infinite or NaN gradient must take another route.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> geometry = conv_geometry((1, 4, 4, 1), (3, 3, 1, 1), 2, "SAME")
    >>> input_gradient(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)), geometry)[0, :, :, 0]
    array([[1., 1., 2., 1.],
           [1., 1., 2., 1.],
           [2., 2., 4., 2.],
           [1., 1., 2., 1.]])
    """
    (sh, sw), dh = geometry.strides, geometry.dilations[0]
    (top, _), (left, _) = geometry.pads
    batch, out_h, out_w, channels = dy.shape
    in_h, in_w, kh = geometry.in_height, geometry.in_width, geometry.kernel_height
    slots, step, count = _column_shifts(geometry)
    # The result's padded columns left .. left + in_w - 1 lie in groups u0 .. u1 - 1.
    u0, u1 = left // sw, -(-(left + in_w) // sw)
    length = (u1 - u0) * sw * channels
    # Weights per (tap row, slot, p, c), the slots reversed: a larger shift reads further left.
    per_slot = np.zeros((kh, count, sw, channels), dtype=dy.dtype)
    for b, (slot, p) in enumerate(slots):
        per_slot[:, count - 1 - slot, p] = w[:, b, 0]
    # The row phases: (first row of the result, rows, their first grid row, taps by
    # decreasing shift, so that their reads step forward).
    phases = []
    for phase in range(sh):
        y0 = (phase - top) % sh
        if y0 < in_h:
            taps = [a for a in reversed(range(kh)) if (a * dh) % sh == phase]
            phases.append((y0, -(-(in_h - y0) // sh), (y0 + top) // sh, taps))
    # The repeated gradient: grid rows first_row .., columns first_col .., zeros off dy.
    first_row = min(r0 for *_, r0, _ in phases) - (kh - 1) * dh // sh
    height = max(r0 + rows for _, rows, r0, _ in phases) - first_row
    first_col = u0 - (count - 1) * step
    width = u1 - first_col
    repeated = parallel.scratch("repeated", (batch, height, width, sw, channels), dy.dtype)
    i0, j0 = max(0, first_row), max(0, first_col)
    i1, j1 = max(i0, min(out_h, first_row + height)), max(j0, min(out_w, first_col + width))
    rows_in, cols_in = slice(i0 - first_row, i1 - first_row), slice(j0 - first_col, j1 - first_col)
    for zeros in (
        np.s_[:, : rows_in.start],
        np.s_[:, rows_in.stop :],
        np.s_[:, rows_in, : cols_in.start],
        np.s_[:, rows_in, cols_in.stop :],
    ):
        repeated[zeros] = 0
    inside = repeated[:, rows_in, cols_in]
    parallel.copyto(inside, np.broadcast_to(dy[:, i0:i1, j0:j1, None, :], inside.shape))

    dx = np.empty(geometry.input_shape, dtype=dy.dtype)
    result_rows = dx.reshape(batch, in_h, in_w * channels)
    aligned = (u0 * sw, (u1 - u0) * sw) == (left, in_w)
    budget = parallel.block_budget(geometry, dy.itemsize, sh * sw * channels * dy.itemsize)
    work = []
    for phase in phases:
        _, rows, _, taps = phase
        weights = np.tile(per_slot[taps][:, :, None], (1, 1, u1 - u0, 1, 1))
        weights = weights.reshape(len(taps), count, length)
        for span in parallel.row_spans(batch, rows, length * dy.itemsize, budget):
            work.append((phase, weights, span))
    s_v = dy.itemsize
    s_row = width * sw * channels * s_v
    flat = repeated.reshape(-1)

    def block(index: int) -> None:
        (y0, _, r0, taps), weights, (n0, n1, k0, k1) = work[index]
        target = result_rows[n0:n1, y0 + k0 * sh : y0 + (k1 - 1) * sh + 1 : sh]
        if not taps:
            target[...] = 0  # no tap reaches these rows
            return
        shift = (taps[0] * dh) // sh  # the largest: the first tap reads the highest row
        step_a = shift - (taps[1] * dh) // sh if len(taps) > 1 else 0
        start = ((n0 * height + r0 + k0 - shift - first_row) * width) * sw * channels
        runs = as_strided(
            flat[start:],
            (len(taps), count, n1 - n0, k1 - k0, length),
            (step_a * s_row, step * sw * channels * s_v, height * s_row, s_row, s_v),
            writeable=False,
        )
        if aligned:
            np.einsum(_FORWARD, runs, weights, out=target)
            return
        product = parallel.scratch("product", (n1 - n0, k1 - k0, length), dy.dtype)
        np.einsum(_FORWARD, runs, weights, out=product)
        offset = (left - u0 * sw) * channels
        target[...] = product[..., offset : offset + in_w * channels]

    parallel.for_each_block(block, len(work))
    return dx


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
            for down in runs:
                for tap in down:
                    np.einsum(_FILTER_GRADIENT, tap, gradient, out=total[row])
                    row += 1

    total = parallel.sum_blocks(contribute, len(spans), (taps, length), x.dtype)
    result = np.empty((taps, channels), dtype=x.dtype)
    result[order] = total.reshape(taps, out_w, channels).sum(axis=1)
    return result.reshape(geometry.kernel_height, geometry.kernel_width, 1, channels)
