"""The fast strategies: cache-sized column blocks, one product per tap, and planar columns.

- :func:`im2col_blocked`: im2col a block of output rows at a time, so the
  column matrix never exists whole (no ``kh·kw``-fold copy of a large input);
- :func:`taps`: one matrix product per kernel tap, ``x[:, a::s, b::s] @
  w[a, b]``, accumulated on the stride-phase grid (:class:`Grid`): no column
  matrix at all, for a 1×1 kernel a single product that reads the input
  in place, and for a depthwise convolution elementwise products
  (:mod:`companion.numpy_conv.depthwise`);
- :func:`planar`: im2col built transposed from a channel-first copy of the
  input, whose copies run along whole rows of the grid: for few channels
  per group.

They work in blocks (:mod:`companion.numpy_conv.parallel`), so their memory
stays near the input plus twice the output.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from companion.arithmetic import Geometry
from companion.numpy_conv import depthwise, parallel, products
from companion.numpy_conv.direct import windows
from companion.numpy_conv.grid import Grid, phase_image, stride_phase_grid


def _grid_blocks(geometry: Geometry, grid: Grid, positions: int):
    """Split the grid into blocks of whole rows that hold valid outputs.

    Yields ``(start, count, pieces)``: the block's first flat position, how
    many positions it needs (up to its last valid output), and
    ``(n, i0, i1, k0)`` for each image it touches: output rows ``i0:i1`` of
    image ``n`` are the block's rows ``k0:k0 + i1 - i0``.
    """
    batch, out_h = geometry.batch, geometry.out_height
    height, width = grid.height, grid.width
    per_block = max(1, positions // width)
    row, last = 0, (batch - 1) * height + out_h  # global grid rows; the last valid one + 1
    while row < last:
        n, i = divmod(row, height)
        if i >= out_h:  # rows that only feed dropped positions
            row = (n + 1) * height
            continue
        end = min(row + per_block, last)
        pieces, r = [], row
        while r < end:
            n, i = divmod(r, height)
            stop = min(end, n * height + out_h)
            if stop > r:
                pieces.append((n, i, i + stop - r, r - row))
            r = (n + 1) * height
        n, i0, i1, k0 = pieces[-1]
        count = (k0 + i1 - i0 - 1) * width + geometry.out_width
        yield row * width, count, pieces
        row = end


def _scatter(out: np.ndarray, block: np.ndarray, pieces, width: int) -> None:
    """Copy a block's valid outputs (rows of ``width`` positions) into ``out``."""
    rows = block.shape[0] // width
    view = block[: rows * width].reshape(rows, width, block.shape[1])
    out_w = out.shape[2]
    for n, i0, i1, k0 in pieces:
        out[n, i0:i1] = view[k0 : k0 + i1 - i0, :out_w]


def _grouped_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, groups: int) -> None:
    """``out[:, g] = a[:, g] @ b[g]`` for each group, on channel-blocked views, into ``out``."""
    if groups == 1:
        products.matmul(a, b, out)
        return
    rows = a.shape[0]
    products.matmul(
        a.reshape(rows, groups, -1).transpose(1, 0, 2),
        b,
        out.reshape(rows, groups, -1).transpose(1, 0, 2),
    )


#: A 1×1 kernel read in place is one matrix product per block, written straight into
#: the output; it is cut into this many blocks (at least), for the threads to share.
DIRECT_BLOCKS = 8

#: ... unless it has fewer output positions than this: then its product is cut by
#: output channels (:func:`~companion.numpy_conv.parallel.channel_pieces`), since
#: products of fewer rows than :data:`~companion.numpy_conv.parallel.MIN_BLOCK_POSITIONS`
#: run slowly.
FEW_POSITIONS = DIRECT_BLOCKS * parallel.MIN_BLOCK_POSITIONS


def taps(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One matrix product per kernel tap, accumulated: no column matrix at all.

    ``out += x_shifted @ w[a, b]`` for each tap, on the stride-phase grid
    (:class:`Grid`), block by block so that the accumulator stays in cache.
    For a 1×1 kernel this is a single product, written straight into the
    output; without padding or strides it reads the input in place. A
    depthwise convolution's products have one term each: its taps are
    multiplied elementwise and summed by :func:`~companion.numpy_conv.depthwise.forward`.
    """
    if depthwise.is_depthwise(geometry):
        return depthwise.forward(x, w, geometry)
    grid = stride_phase_grid(geometry)
    images = [phase_image(x, geometry, grid, phase, planar=False) for phase in grid.phases]
    groups, depth = geometry.groups, geometry.in_depth
    out_channels = geometry.out_channels
    per_group = geometry.per_group
    kh, kw = geometry.kernel_height, geometry.kernel_width
    if groups == 1:
        matrices = w.reshape(kh * kw, depth, out_channels)
    else:  # (taps, groups, depth, per group)
        matrices = w.reshape(kh * kw, depth, groups, per_group).transpose(0, 2, 1, 3)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    direct = (grid.height, grid.width) == (geometry.out_height, geometry.out_width)
    flat_out = out.reshape(-1, out_channels)
    positions, pieces = flat_out.shape[0], parallel.channel_pieces(out_channels)
    if (
        direct
        and len(grid.taps) == 1
        and groups == 1
        and len(pieces) > 1
        and positions < FEW_POSITIONS
    ):
        # One product with few rows (a layer at batch 1): cut by output channels, not rows.
        source = images[0][:positions]

        def piece(index: int) -> None:
            c0, c1 = pieces[index]
            products.matmul(source, matrices[0][:, c0:c1], flat_out[:, c0:c1])

        parallel.for_each_block(piece, len(pieces))
        return out
    per_position = 2 * out_channels * x.itemsize  # an accumulator and a product
    per_block = parallel.block_budget(geometry, x.itemsize, per_position) // per_position
    per_block = max(grid.width, per_block)
    if direct and len(grid.taps) == 1:  # written straight into the output: large blocks
        per_block = max(per_block, -(-flat_out.shape[0] // DIRECT_BLOCKS))
    size = (per_block + grid.width, out_channels)
    blocks = list(_grid_blocks(geometry, grid, per_block))

    def block(index: int) -> None:
        start, count, pieces = blocks[index]
        accumulator = None if direct else parallel.scratch("accumulator", size, x.dtype)
        product = parallel.scratch("product", size, x.dtype) if len(grid.taps) > 1 else None
        total = flat_out[start : start + count] if direct else accumulator[:count]
        for t, (phase, offset) in enumerate(grid.taps):
            rows = images[phase][start + offset : start + offset + count]
            if t == 0:
                _grouped_matmul(rows, matrices[t], total, groups)
            else:
                _grouped_matmul(rows, matrices[t], product[:count], groups)
                total += product[:count]
        if not direct:
            _scatter(out, accumulator, pieces, grid.width)

    parallel.for_each_block(block, len(blocks))
    return out


def pad_scratch(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``x`` zero-padded into a scratch buffer (``x`` itself when there is no padding)."""
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return x
    batch, height, width, channels = x.shape
    padded = parallel.scratch(
        "padded", (batch, height + top + bottom, width + left + right, channels), x.dtype
    )
    padded[:, :top] = 0
    padded[:, top + height :] = 0
    padded[:, top : top + height, :left] = 0
    padded[:, top : top + height, left + width :] = 0
    parallel.copyto(padded[:, top : top + height, left : left + width], x)
    return padded


def nhwc_columns(x: np.ndarray, geometry: Geometry):
    """im2col in blocks: ``(spans, fill)``, ``fill(span)`` giving ``(groups, positions, terms)``.

    ``spans`` are blocks of output rows
    (:func:`~companion.numpy_conv.parallel.row_spans`); the terms of a row are
    in the filter's ``(kh, kw, depth)`` order. ``fill`` copies a block
    from the window view into the calling thread's scratch buffer of
    :func:`~companion.numpy_conv.parallel.block_budget` (at least one output row).
    """
    batch, out_h, out_w, _ = geometry.output_shape
    groups, depth = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    terms = kh * kw * depth
    view = windows(x, geometry, pad_scratch(x, geometry))
    view = view.reshape(batch, out_h, out_w, groups, depth, kh, kw)
    view = view.transpose(3, 0, 1, 2, 5, 6, 4)  # (groups, n, i, j, kh, kw, depth)
    row_bytes = groups * out_w * terms * x.itemsize
    per_position = row_bytes // out_w
    spans = parallel.row_spans(
        geometry.batch,
        geometry.out_height,
        row_bytes,
        parallel.block_budget(geometry, x.itemsize, per_position),
    )
    positions = max((n1 - n0) * (i1 - i0) for n0, n1, i0, i1 in spans) * out_w
    size = (groups, positions * terms)

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, i0, i1 = span
        source = view[:, n0:n1, i0:i1]
        columns = parallel.scratch("columns", size, x.dtype)[:, : source[0].size].reshape(
            source.shape
        )
        np.copyto(columns, source)
        return columns.reshape(groups, -1, terms)

    return spans, fill


def _channel_first_padded(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``x`` zero-padded and channel-first, ``(C, N, padded height, padded width)``, in a
    scratch buffer."""
    batch, height, width, channels = x.shape
    (top, bottom), (left, right) = geometry.pads
    padded = parallel.scratch(
        "channel-first", (channels, batch, height + top + bottom, width + left + right), x.dtype
    )
    padded[:, :, :top] = 0
    padded[:, :, top + height :] = 0
    padded[:, :, top : top + height, :left] = 0
    padded[:, :, top : top + height, left + width :] = 0
    parallel.copyto(padded[:, :, top : top + height, left : left + width], x.transpose(3, 0, 1, 2))
    return padded


def image_columns(x: np.ndarray, geometry: Geometry):
    """im2col built transposed, an image at a time: ``(spans, fill)``, ``fill(span)``
    giving ``(images, groups, terms, positions)`` for the output rows of ``span``.

    Row ``t`` of an image's matrix for a group is term ``t`` of the filter's
    ``(kh, kw, depth)`` order over the image's output positions, copied from a
    view of the zero-padded NHWC input whose innermost axis runs along an
    output row (contiguous for one input channel). ``spans`` are blocks of
    output rows (:func:`~companion.numpy_conv.parallel.row_spans`): whole images,
    or rows of one image, within
    :func:`~companion.numpy_conv.parallel.block_budget`.
    """
    batch, out_h, out_w, _ = geometry.output_shape
    kh, kw, depth = geometry.kernel_height, geometry.kernel_width, geometry.in_depth
    groups, terms = geometry.groups, geometry.terms
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    if x.shape[3] == 1:
        xp = pad_scratch(x, geometry)
        s_n, s_h, s_w, s_c = xp.strides
    else:  # channel-first, so that the copies run along whole rows
        xp = _channel_first_padded(x, geometry)
        s_c, s_n, s_h, s_w = xp.strides
    view = as_strided(
        xp,
        (batch, groups, kh, kw, depth, out_h, out_w),
        (s_n, depth * s_c, dh * s_h, dw * s_w, s_c, sh * s_h, sw * s_w),
        writeable=False,
    )
    per_position = groups * terms * x.itemsize
    budget = parallel.block_budget(geometry, x.itemsize, per_position)
    spans = parallel.row_spans(batch, out_h, out_w * per_position, budget)
    positions = max((n1 - n0) * (i1 - i0) for n0, n1, i0, i1 in spans) * out_w
    size = (groups * terms * positions,)

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, i0, i1 = span
        source = view[n0:n1, ..., i0:i1, :]
        columns = parallel.scratch("columns", size, x.dtype)[: source.size]
        np.copyto(columns.reshape(source.shape), source)
        return columns.reshape(n1 - n0, groups, terms, -1)

    return spans, fill


def images(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """im2col an image at a time, built transposed straight from the input, for one
    input channel and small windows.

    :func:`image_columns` copies, for each term of the window, the input values
    it multiplies over a block of output rows: for one input channel, runs
    along whole output rows. The block's columns, transposed, times the
    filters is written straight into the output. Where MEC's strips copy runs
    of ``kw`` values and multiply one output row at a time, tiny products whose
    calls cost more than their arithmetic, here each product covers an image.
    """
    groups, per_group = geometry.groups, geometry.per_group
    matrix = w.reshape(-1, groups, per_group).transpose(1, 0, 2)  # (groups, terms, per group)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    spans, fill = image_columns(x, geometry)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        target = out[n0:n1, i0:i1].reshape(n1 - n0, -1, groups, per_group).transpose(0, 2, 1, 3)
        products.matmul(fill(spans[index]).transpose(0, 1, 3, 2), matrix, target)

    parallel.for_each_block(block, len(spans))
    return out


def im2col_blocked(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """im2col a block of output rows at a time, into a buffer no larger than the output.

    The same windows and the same product as ``"im2col"``, but the column
    matrix is never whole: blocks of output rows (or of whole images) are
    copied into one reused buffer, small enough to stay in cache (at most
    ``Settings.block_bytes``, and no more than the output), and multiplied straight
    into their place in the output.
    """
    groups, per_group = geometry.groups, geometry.per_group
    matrix = w.reshape(-1, groups, per_group).transpose(1, 0, 2)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    spans, fill = nhwc_columns(x, geometry)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        target = out[n0:n1, i0:i1].reshape(-1, groups, per_group).transpose(1, 0, 2)
        products.matmul(fill(spans[index]), matrix, target)

    parallel.for_each_block(block, len(spans))
    return out


def planar_order(geometry: Geometry, grid: Grid) -> np.ndarray:
    """Term ``order[r]`` (``tap·depth + channel``) is row ``r`` of a planar column block."""
    depth = geometry.in_depth
    return np.array(
        [t * depth + c for *_, taps in grid.lattices for c in range(depth) for t in taps],
        dtype=np.intp,
    )


def _lattice_views(planes, geometry: Geometry, grid: Grid, first: int, tail, tail_strides):
    """Per phase, the view of the channel-first ``planes`` (:class:`Grid`) that fills its
    rows of a planar column block: ``(groups, depth, taps down, taps across, *tail)``,
    positions counted from flat position ``first``, ``tail_strides`` in positions."""
    groups, depth = geometry.groups, geometry.in_depth
    for plane, (offset, n_a, step_a, n_b, step_b, _) in zip(planes, grid.lattices, strict=True):
        s_c, s_p = plane.strides
        yield as_strided(
            plane[:, first + offset :],
            (groups, depth, n_a, n_b, *tail),
            (depth * s_c, s_c, step_a * s_p, step_b * s_p, *(s * s_p for s in tail_strides)),
            writeable=False,
        )


def planar_columns(x: np.ndarray, geometry: Geometry, grid: Grid):
    """Transposed im2col in blocks of output rows: ``(spans, fill)``, ``fill(span)``
    giving ``(groups, terms, positions)``, the block's outputs only.

    Row ``r`` of a block holds term ``planar_order(...)[r]``. The input is
    first copied into channel-first stride phases (``(C, N, height, width)``,
    :class:`Grid`); there the values of one ``(channel, tap)`` pair for a
    block of outputs form a view whose innermost axis, along an output row,
    is contiguous. The filter gradient builds its blocks here; the forward
    :func:`planar` copies whole rows of the grid instead.
    """
    planes = [phase_image(x, geometry, grid, phase, planar=True) for phase in grid.phases]
    out_w, groups = geometry.out_width, geometry.groups
    terms = geometry.terms
    row_bytes = groups * terms * out_w * x.itemsize
    per_position = row_bytes // out_w
    spans = parallel.row_spans(
        geometry.batch,
        geometry.out_height,
        row_bytes,
        parallel.block_budget(geometry, x.itemsize, per_position),
    )
    positions = max((n1 - n0) * (i1 - i0) for n0, n1, i0, i1 in spans) * out_w
    size = (groups, terms, positions)

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, i0, i1 = span
        block = parallel.scratch("columns", size, x.dtype)[:, :, : (n1 - n0) * (i1 - i0) * out_w]
        first = (n0 * grid.height + i0) * grid.width
        tail = (n1 - n0, i1 - i0, out_w)
        row = 0
        for view in _lattice_views(
            planes, geometry, grid, first, tail, (grid.positions, grid.width, 1)
        ):
            rows = view.shape[1] * view.shape[2] * view.shape[3]
            np.copyto(block[:, row : row + rows].reshape(view.shape), view)
            row += rows
        return block

    return spans, fill


def _plane_rows(x: np.ndarray, geometry: Geometry, grid: Grid, first: int, out: np.ndarray):
    """Grid rows ``first ..`` of a stride-1 layer's padded input, channel-first, into
    ``out``, ``(C, rows, grid width)``: the rows of consecutive images follow one another,
    as on :class:`Grid` laid flat."""
    height, width = x.shape[1:3]
    (top, _), (left, _) = geometry.pads
    out[:, :, :left] = 0
    out[:, :, left + width :] = 0
    row, last = first, first + out.shape[1]
    while row < last:
        n, padded_row = divmod(row, grid.height)
        count = min(last, (n + 1) * grid.height) - row
        a = padded_row - top  # the input row of grid row `row`
        above = min(max(-a, 0), count)  # rows of the top padding
        below = max(above, min(height - a, count))  # up to the input's last row
        k = row - first
        out[:, k : k + above] = 0
        source = x[n, a + above : a + below].transpose(2, 0, 1)
        out[:, k + above : k + below, left : left + width] = source
        out[:, k + below : k + count] = 0
        row += count


def planar(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """im2col from a channel-first copy of the input, for few channels per group.

    Where an NHWC im2col copies runs of only ``kw·depth`` values, the column
    blocks here are built *transposed*, one row per ``(channel, tap)``, from
    channel-first stride phases (:class:`Grid`): on the grid laid flat, each
    row is one contiguous run over whole grid rows, the columns past the
    output's width included (computed, then dropped, as in :func:`taps`:
    copies of short runs cost more than the extra columns). The product, the
    block transposed times the filters, lands in an accumulator whose valid
    rows are copied into the output. Without strides, each block copies just
    the rows of the padded input it reads into a channel-first buffer of its
    own (:func:`_plane_rows`), which stays in cache for the column copies
    that read it nine times (for a 3 × 3 kernel); strided layers copy their
    phases whole first.
    """
    grid = stride_phase_grid(geometry)
    groups, per_group, terms = geometry.groups, geometry.per_group, geometry.terms
    matrix = w.reshape(-1, groups, per_group)[planar_order(geometry, grid)].transpose(1, 0, 2)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    local = geometry.strides == (1, 1)  # one phase: the padded input itself
    if not local:
        planes = [phase_image(x, geometry, grid, phase, planar=True) for phase in grid.phases]
    per_position = groups * terms * x.itemsize
    per_block = parallel.block_budget(geometry, x.itemsize, per_position) // per_position
    per_block = max(grid.width, per_block)
    blocks = list(_grid_blocks(geometry, grid, per_block))
    size = per_block + grid.width
    reach = max(offset for _, offset in grid.taps)  # the farthest a tap reads
    channels = x.shape[3]

    def block(index: int) -> None:
        start, count, pieces = blocks[index]
        if local:
            first = start // grid.width
            rows = (start + count - 1 + reach) // grid.width + 1 - first
            block_planes = parallel.scratch("plane rows", (channels, rows, grid.width), x.dtype)
            _plane_rows(x, geometry, grid, first, block_planes)
            views = _lattice_views(
                [block_planes.reshape(channels, -1)],
                geometry,
                grid,
                start - first * grid.width,
                (count,),
                (1,),
            )
        else:
            views = _lattice_views(planes, geometry, grid, start, (count,), (1,))
        columns = parallel.scratch("columns", (groups, terms, size), x.dtype)[:, :, :count]
        row = 0
        for view in views:
            rows = view.shape[1] * view.shape[2] * view.shape[3]
            np.copyto(columns[:, row : row + rows].reshape(view.shape), view)
            row += rows
        accumulator = parallel.scratch("accumulator", (size, geometry.out_channels), x.dtype)
        product = accumulator[:count].reshape(count, groups, per_group).transpose(1, 0, 2)
        products.matmul(columns.transpose(0, 2, 1), matrix, product)
        _scatter(out, accumulator, pieces, grid.width)

    parallel.for_each_block(block, len(blocks))
    return out
