"""The two gradients of :func:`~companion.numpy_conv.conv2d`, as convolutions.

:func:`conv2d_backprop_input` and :func:`conv2d_backprop_filter` compute what
TensorFlow's ``Conv2DBackpropInput`` and ``Conv2DBackpropFilter`` compute. A
named ``method`` runs the textbook construction (the input gradient as a
convolution of the spread-out output gradient with the turned kernel; the
filter gradient as a correlation of input and output gradient) through that
strategy; ``"auto"`` takes faster routes to the same sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from companion import arguments
from companion.arithmetic import Geometry, conv_geometry
from companion.numpy_conv import (
    blocked,
    depthwise,
    direct,
    mec,
    operands,
    parallel,
    products,
    scatter,
    unpadded,
)
from companion.numpy_conv.forward import (
    IMAGES_MAX_TERMS,
    METHODS,
    PLANAR_MAX_DEPTH,
    choose_method,
    forward,
)
from companion.numpy_conv.grid import stride_phase_grid


def _input_gradient_phases(dy: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The input gradient as one stride-1 convolution per stride phase: no zeros inserted.

    Padded input row ``r`` receives ``dy[i] · w[a]`` wherever ``i·sh + a·dh = r``,
    so only the taps with ``a·dh ≡ r (mod sh)`` reach the rows of one phase, each
    shifted by ``(a·dh) // sh``: per phase, a convolution of ``dy`` (zero-padded)
    with those taps turned by 180°, their channels swapped, at stride 1 and a
    smaller dilation, computed by ``auto``. Only the phase's rows and columns
    that are input pixels are computed, straight into the result; where the
    padding is wider than the kernel reaches (a phase would need negative
    padding), the whole padded gradient is computed and cropped. A depthwise
    layer's phases are summed in place along whole rows of the result
    (:func:`~companion.numpy_conv.depthwise.input_gradient`), unless a weight
    of zero there would meet an infinite or NaN gradient. Returns the NHWC
    gradient.
    """
    if depthwise.is_depthwise(geometry) and (
        not depthwise.has_zero_weights(geometry) or np.all(np.isfinite(dy))
    ):
        return depthwise.input_gradient(dy, w, geometry)
    (top, _), (left, _) = geometry.pads
    dx = _phases_over(dy, w, geometry, ((top, geometry.in_height), (left, geometry.in_width)))
    if dx is None:
        padded_h, padded_w = geometry.padded_size
        dx = _phases_over(dy, w, geometry, ((0, padded_h), (0, padded_w)))
        dx = dx[:, top : top + geometry.in_height, left : left + geometry.in_width]
    return dx


def _phases_over(dy: np.ndarray, w: np.ndarray, geometry: Geometry, region) -> np.ndarray | None:
    """The gradient over ``region``, ``((first row, rows), (first column, columns))`` of
    the padded input, phase by phase; None if a phase would need negative padding."""
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    kh, kw = geometry.kernel_height, geometry.kernel_width
    groups, depth, per_group = geometry.groups, geometry.in_depth, geometry.per_group
    batch, out_h, out_w, out_channels = geometry.output_shape

    def phase(stride, dilation, kernel_size, out_size, first, size, p):
        """Phase p along one axis: its taps, their spacing, the inner padding, and
        where its first index lies in the region and how many indices it has there."""
        taps = [a for a in range(kernel_size) if (a * dilation) % stride == p]
        shifts = [(a * dilation) // stride for a in taps]
        u0 = max(0, -((p - first) // stride))  # the phase's first index in the region
        u1 = -((p - first - size) // stride)  # and one past its last
        pads = (shifts[-1] - u0, u1 - shifts[0] - out_size) if taps else (0, 0)
        step = shifts[1] - shifts[0] if len(shifts) > 1 else 1
        return taps, step, pads, p + u0 * stride - first, u1 - u0

    (first_row, rows), (first_col, cols) = region
    rows_of = [phase(sh, dh, kh, out_h, first_row, rows, p) for p in range(sh)]
    cols_of = [phase(sw, dw, kw, out_w, first_col, cols, p) for p in range(sw)]
    parts = [(r, c) for r in rows_of for c in cols_of if r[4] > 0 and c[4] > 0]
    if any(min(*r[2], *c[2]) < 0 for r, c in parts):
        return None
    # Each tap's matrix with its channels swapped within each group, a view:
    # (kh, kw, per group, groups, depth); _phase_kernel copies the taps of a phase.
    swapped = w.reshape(kh, kw, depth, groups, per_group).transpose(0, 1, 4, 3, 2)
    shape = (batch, rows, cols, geometry.in_channels)
    if (sh, sw) != (1, 1):
        # Zeros only where some phase has no tap: elsewhere every pixel is written below.
        covered = len(parts) == sh * sw and all(r[0] and c[0] for r, c in parts)
        dx = (np.empty if covered else np.zeros)(shape, dtype=dy.dtype)
    for (taps_a, step_a, pads_a, r0, height), (taps_b, step_b, pads_b, c0, width) in parts:
        if not taps_a or not taps_b:
            continue  # no tap reads these pixels: their gradient is zero
        inner = Geometry(
            batch=batch,
            in_height=out_h,
            in_width=out_w,
            in_channels=out_channels,
            kernel_height=len(taps_a),
            kernel_width=len(taps_b),
            in_depth=per_group,
            out_channels=geometry.in_channels,
            groups=groups,
            strides=(1, 1),
            dilations=(step_a, step_b),
            pads=(pads_a, pads_b),
            out_height=height,
            out_width=width,
        )
        kernel = _phase_kernel(swapped, taps_a, taps_b)
        if (sh, sw) == (1, 1):
            return forward(dy, kernel, inner, "auto")  # the one phase is the whole gradient
        if not inner.is_empty and choose_method(inner) == "mec":  # straight into its pixels
            mec.mec(dy, kernel, inner, out=dx[:, r0::sh, c0::sw])
        else:
            dx[:, r0::sh, c0::sw] = forward(dy, kernel, inner, "auto")
    return dx if (sh, sw) != (1, 1) else np.zeros(shape, dy.dtype)


def _phase_kernel(swapped: np.ndarray, rows: list[int], cols: list[int]) -> np.ndarray:
    """The taps ``rows × cols`` of ``swapped`` (a view), turned by 180°, as filters:
    ``(rows, cols, per group, C)``, in one copy (the taps are evenly spaced), or none."""
    step_a = rows[1] - rows[0] if len(rows) > 1 else 1
    step_b = cols[1] - cols[0] if len(cols) > 1 else 1
    taps = swapped[rows[0] : rows[-1] + 1 : step_a, cols[0] : cols[-1] + 1 : step_b][::-1, ::-1]
    kh, kw, per_group, groups, depth = taps.shape
    if kh * kw == 1 and groups == 1:
        # One transposed matrix, left as a view: the matrix product reads it in place
        # (a copy of a large transposed matrix took as long as the product itself).
        return taps.reshape(1, 1, per_group, depth)
    return np.ascontiguousarray(taps).reshape(kh, kw, per_group, groups * depth)


def _filter_gradient_blocked(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient as ``columnsᵀ @ dy``, on the column blocks ``auto``'s strategy builds.

    Each weight's gradient sums one product per output position, so it is the
    product of the transposed im2col matrix with the output gradient; it is
    accumulated block by block over the same column blocks as the forward
    pass (channel-first ones for at most :data:`PLANAR_MAX_DEPTH` channels per group), into
    a fixed number of partial sums added in a fixed order, so that the sum
    does not depend on the threads. A depthwise layer's product would have a
    single row per channel: its sums are elementwise
    (:func:`~companion.numpy_conv.depthwise.filter_gradient`). Returns
    ``(kh, kw, depth, out_channels)``.
    """
    if depthwise.is_depthwise(geometry):
        return depthwise.filter_gradient(x, dy, geometry)
    groups, per_group, terms = geometry.groups, geometry.per_group, geometry.terms
    planar = geometry.in_depth <= PLANAR_MAX_DEPTH and choose_method(geometry) in ("planar", "mec")
    if planar:
        grid = stride_phase_grid(geometry)
        spans, fill = blocked.planar_columns(x, geometry, grid)
    else:
        spans, fill = blocked.nhwc_columns(x, geometry)
    pieces = parallel.channel_pieces(per_group)
    if len(spans) == 1 and groups == 1 and len(pieces) > 1:
        # One block (a small layer, often at batch 1): its product is cut by output
        # channels instead, into pieces fixed by the shape, for the threads to share.
        columns = fill(spans[0])
        rows = columns[0] if planar else columns[0].T  # (terms, positions)
        gradient = dy.reshape(-1, per_group)
        total = np.empty((1, terms, per_group), dtype=x.dtype)

        def piece(index: int) -> None:
            c0, c1 = pieces[index]
            np.matmul(rows, gradient[:, c0:c1], out=total[0, :, c0:c1])

        parallel.for_each_block(piece, len(pieces))
        return _filter_gradient_result(total, geometry, grid if planar else None)

    def contribute(number: int, product: np.ndarray) -> None:  # one block's columnsᵀ @ dy
        n0, n1, i0, i1 = spans[number]
        gradient = dy[n0:n1, i0:i1].reshape(-1, groups, per_group).transpose(1, 0, 2)
        columns = fill(spans[number])
        rows = columns if planar else columns.transpose(0, 2, 1)  # (groups, terms, positions)
        if groups == 1:  # np.matmul would hold the interpreter's lock for a small result
            if planar:
                products.summed_matmul(rows[0], gradient[0], product[0])
            else:
                np.dot(rows[0], gradient[0], out=product[0])
        else:
            np.matmul(rows, gradient, out=product)

    total = parallel.sum_blocks(contribute, len(spans), (groups, terms, per_group), x.dtype)
    return _filter_gradient_result(total, geometry, grid if planar else None)


def _filter_gradient_images(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient image by image: ``Σ_n columns_n @ dy_n``, for few terms.

    Each image's transposed im2col matrix (:func:`~companion.numpy_conv.blocked.image_columns`,
    ``kh·kw·depth`` rows per group) times that image's output gradient, read in
    place: a short, narrow product whose positions are cut into slices for the
    BLAS (:func:`~companion.numpy_conv.products.summed_matmul`). The images of
    a block are added in order, the blocks in
    :func:`~companion.numpy_conv.parallel.sum_blocks`'s fixed order. Returns
    ``(kh, kw, depth, out_channels)``.
    """
    groups, per_group, terms = geometry.groups, geometry.per_group, geometry.terms
    spans, fill = blocked.image_columns(x, geometry)

    def contribute(number: int, total: np.ndarray) -> None:
        n0, n1, i0, i1 = spans[number]
        # (images, groups, positions, per group), a view of the NHWC gradient
        gradient = dy[n0:n1, i0:i1].reshape(n1 - n0, -1, groups, per_group).transpose(0, 2, 1, 3)
        per_image = parallel.scratch("image products", (n1 - n0, groups, terms, per_group), x.dtype)
        products.summed_matmul(fill(spans[number]), gradient, per_image)
        np.sum(per_image, axis=0, out=total)

    total = parallel.sum_blocks(contribute, len(spans), (groups, terms, per_group), x.dtype)
    return _filter_gradient_result(total, geometry, None)


def _filter_gradient_result(total: np.ndarray, geometry: Geometry, grid) -> np.ndarray:
    """``(groups, terms, per group)`` sums as ``(kh, kw, depth, out_channels)``; rows in
    planar order when ``grid`` (the planar columns' stride-phase grid) is given."""
    if grid is not None:
        ordered = np.empty_like(total)
        ordered[:, blocked.planar_order(geometry, grid)] = total
        total = ordered
    return total.transpose(1, 0, 2).reshape(
        geometry.kernel_height, geometry.kernel_width, geometry.in_depth, geometry.out_channels
    )


#: ``auto``'s filter-gradient algorithms, each ``(x_nhwc, dy_nhwc, geometry) -> dw``.
FILTER_GRADIENT_STRATEGIES = {
    "blocked": _filter_gradient_blocked,
    "images": _filter_gradient_images,
    "mec": mec.filter_gradient,
    "unpadded": unpadded.filter_gradient,
}


#: ``auto`` computes the filter gradient from MEC's strips where the forward pass uses
#: them and the layer has at most this many output channels: measured, the strips won
#: with 6 to 32 (LeNet's and MNIST's first layers, CIFAR's ResNet block, a 7×7 kernel at
#: batch 1) and tied or lost with 64 (MNIST's second layers, the ResNet stem).
MEC_GRADIENT_MAX_CHANNELS = 32


def choose_filter_gradient(geometry: Geometry) -> str:
    """The filter-gradient algorithm ``auto`` uses: ``"unpadded"`` where the padding
    dominates (as for the forward pass); ``"images"`` without groups and with at
    most :data:`~companion.numpy_conv.forward.IMAGES_MAX_TERMS` terms per window;
    ``"mec"`` where the forward pass uses MEC's strips and there are at most
    :data:`MEC_GRADIENT_MAX_CHANNELS` output channels; else ``"blocked"``.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> choose_filter_gradient(conv_geometry((8, 32, 32, 1), (5, 5, 1, 6), 1, "VALID"))
    'images'
    >>> choose_filter_gradient(conv_geometry((8, 32, 32, 16), (3, 3, 16, 16), 1, "SAME"))
    'mec'
    >>> choose_filter_gradient(conv_geometry((8, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"))
    'blocked'
    """
    method = choose_method(geometry)
    if method == "unpadded":
        return "unpadded"
    if geometry.groups == 1 and geometry.terms <= IMAGES_MAX_TERMS:
        return "images"
    if method == "mec" and geometry.out_channels <= MEC_GRADIENT_MAX_CHANNELS:
        return "mec"
    return "blocked"


#: ``auto``'s input-gradient algorithms, each ``(dy_nhwc, filters, geometry) -> dx_nhwc``.
INPUT_GRADIENT_STRATEGIES = {
    "phases": _input_gradient_phases,
    "scatter": scatter.input_gradient,
    "unpadded": unpadded.input_gradient,
}


def choose_input_gradient(geometry: Geometry, finite_filters: bool = True) -> str:
    """The input-gradient algorithm ``auto`` uses.

    ``"unpadded"`` where the padding dominates (as for the forward pass);
    ``"scatter"`` where :func:`~companion.numpy_conv.scatter.worthwhile` (few
    input channels, without groups); otherwise
    ``"phases"``, unless a filter is infinite or NaN: the phases multiply it by
    padding zeros, so ``"unpadded"``.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> choose_input_gradient(conv_geometry((8, 32, 32, 1), (5, 5, 1, 6), 1, "VALID"))
    'scatter'
    >>> choose_input_gradient(conv_geometry((8, 32, 32, 16), (3, 3, 16, 6), 2, "SAME"))
    'phases'
    """
    if choose_method(geometry) == "unpadded":
        return "unpadded"
    if scatter.worthwhile(geometry):
        return "scatter"
    return "phases" if finite_filters else "unpadded"


@parallel.single_threaded_blas()
def conv2d_backprop_input(
    input_sizes: Sequence[int],
    filters: np.ndarray,
    out_backprop: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its input, given the output's gradient.

    Built in chapter 5.

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_input`
    (and the input gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts.
    It is itself a convolution: ``out_backprop``, spread out by the strides
    (zeros between its rows and columns) and padded by ``(k − 1)·d`` zeros
    on each side, is convolved with the filters turned by 180° and with
    their in/out channels swapped, at stride 1 and the same dilations; the
    forward padding is then cut off. That is what a named ``method`` computes;
    ``"auto"`` multiplies no inserted zero: it splits the result into its
    stride phases, each a stride-1 convolution of ``out_backprop`` with the
    taps that reach it, or, for few input channels, scatters every tap's
    products to the pixels they reached (:func:`choose_input_gradient`).

    Parameters
    ----------
    input_sizes : sequence of 4 ints
        The forward input's full shape, in ``data_format`` order.
    filters : array_like
        As for :func:`conv2d`; its dtype is the result's.
    out_backprop : array_like
        The gradient of the forward output, of the shape :func:`conv2d` gives
        for ``input_sizes``; converted to ``filters``' dtype.
    strides, padding, data_format, dilations, method
        As for :func:`conv2d`.

    Returns
    -------
    ndarray
        Of shape ``input_sizes``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` would reject, malformed
        ``input_sizes``, or an ``out_backprop`` of the wrong shape.

    Notes
    -----
    Results are bitwise the same whatever the number of CPUs and threads, as
    for :func:`conv2d`. Infinities and NaNs propagate as IEEE arithmetic does
    in the sum over the (output, tap) pairs that read each input pixel; the
    named methods, which build the textbook construction from
    ``out_backprop`` spread out with zeros, also turn a zero times an
    infinite or NaN weight into NaN, so with such filters they give NaN in
    more places than ``"auto"``.

    Examples
    --------
    With an all-ones gradient, each input pixel collects one term per
    window that covers it; under ``SAME``, the bottom/right padding means
    the first row and column are covered only once:

    >>> dx = conv2d_backprop_input((1, 3, 3, 1), np.ones((2, 2, 1, 1)),
    ...                            np.ones((1, 3, 3, 1)), 1, "SAME")
    >>> dx[0, :, :, 0]
    array([[1., 2., 2.],
           [2., 4., 4.],
           [2., 4., 4.]])
    """
    data_format = arguments.normalize_data_format(data_format)
    method = arguments.choice(method, "method", METHODS)
    sizes = operands.shape_argument(
        input_sizes, "input_sizes", f"the input's shape in {data_format} order"
    )
    w = operands.array_argument(filters, "filters", operands.FILTER_LAYOUT)
    operands.check_dtype(w, "filters")
    dy = operands.array_argument(out_backprop, "out_backprop", f"in {data_format} order")
    dy = operands.convert(dy, w.dtype, "out_backprop")
    geometry = conv_geometry(
        sizes, w.shape, strides, padding, data_format, dilations, input_name="input_sizes"
    )
    expected = geometry.in_format(geometry.output_shape, data_format)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input_sizes "
            f"{sizes}), got {dy.shape}"
        )
    compute = operands.compute_dtype(w.dtype)
    nhwc = (geometry.batch, geometry.in_height, geometry.in_width, geometry.in_channels)
    if geometry.is_empty or 0 in nhwc:
        return np.zeros(sizes, dtype=w.dtype)
    dy = operands.to_nhwc(dy, data_format).astype(compute, copy=False)
    if method == "auto":
        w_compute = w.astype(compute, copy=False)
        strategy = choose_input_gradient(geometry, bool(np.all(np.isfinite(w_compute))))
        dx = INPUT_GRADIENT_STRATEGIES[strategy](dy, w_compute, geometry)
        return operands.from_nhwc(np.ascontiguousarray(operands.finish(dx, w.dtype)), data_format)
    g = geometry.groups
    kh, kw, cin, cout = (
        geometry.kernel_height,
        geometry.kernel_width,
        geometry.in_depth,
        geometry.per_group,
    )
    (top, _), (left, _) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded_h, padded_w = geometry.padded_size
    # out_backprop spread out by the strides, with (k - 1)·d zeros before each axis.
    spread = np.zeros(
        (geometry.batch, padded_h + (kh - 1) * dh, padded_w + (kw - 1) * dw, geometry.out_channels),
        dtype=compute,
    )
    first_h, first_w = (kh - 1) * dh, (kw - 1) * dw
    spread[
        :,
        first_h : first_h + (geometry.out_height - 1) * sh + 1 : sh,
        first_w : first_w + (geometry.out_width - 1) * sw + 1 : sw,
    ] = dy
    # Filters turned by 180°, in/out swapped within each group.
    turned = w.astype(compute, copy=False)[::-1, ::-1].reshape(kh, kw, cin, g, cout)
    turned = turned.transpose(0, 1, 4, 3, 2).reshape(kh, kw, cout, g * cin)
    inner = Geometry(
        batch=geometry.batch,
        in_height=spread.shape[1],
        in_width=spread.shape[2],
        in_channels=geometry.out_channels,
        kernel_height=kh,
        kernel_width=kw,
        in_depth=cout,
        out_channels=geometry.in_channels,
        groups=g,
        strides=(1, 1),
        dilations=(dh, dw),
        pads=((0, 0), (0, 0)),
        out_height=padded_h,
        out_width=padded_w,
    )
    full = forward(spread, turned, inner, method)
    dx = full[:, top : top + geometry.in_height, left : left + geometry.in_width]
    return operands.from_nhwc(np.ascontiguousarray(operands.finish(dx, w.dtype)), data_format)


@parallel.single_threaded_blas()
def conv2d_backprop_filter(
    input: np.ndarray,
    filter_sizes: Sequence[int],
    out_backprop: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its filters, given the output's gradient.

    Built in chapter 5.

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_filter`
    (and the filter gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts. It is
    a convolution of the padded input with ``out_backprop`` as the kernel,
    batch and channels exchanged: the forward *dilations* become its strides
    and the forward *strides* its dilations; every weight sums
    ``batch·out_height·out_width`` products. A named ``method`` computes that
    convolution with that strategy; ``"auto"`` computes the same sums as the
    transposed column matrix times ``out_backprop``, accumulated over the
    column blocks of the strategy :func:`choose_method` picks for the forward
    pass (that convolution's huge kernel and tiny output suit no strategy).

    Parameters
    ----------
    input : array_like
        The forward input, as for :func:`conv2d` but not int32 (TensorFlow has no
        integer filter gradient); its dtype is the result's.
    filter_sizes : sequence of 4 ints
        The filters' full shape ``(kernel_height, kernel_width, in_depth,
        out_channels)``.
    out_backprop : array_like
        The gradient of the forward output, of the shape :func:`conv2d` gives;
        converted to ``input``'s dtype.
    strides, padding, data_format, dilations, method
        As for :func:`conv2d`.

    Returns
    -------
    ndarray
        Of shape ``filter_sizes``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` would reject, malformed
        ``filter_sizes``, or an ``out_backprop`` of the wrong shape.

    Notes
    -----
    Besides :func:`conv2d`'s, one deliberate difference: ``filter_sizes``
    with a zero entry (an empty filter), which TensorFlow accepts, is refused.
    Results are bitwise the same whatever the number of CPUs and threads, as
    for :func:`conv2d`.

    Examples
    --------
    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> dw = conv2d_backprop_filter(x, (2, 2, 1, 1), np.ones((1, 3, 3, 1)), 1, "SAME")
    >>> dw[:, :, 0, 0]            # sums of x over the shifted windows
    array([[45., 33.],
           [39., 28.]])
    """
    data_format = arguments.normalize_data_format(data_format)
    method = arguments.choice(method, "method", METHODS)
    x = operands.array_argument(input, "input", f"in {data_format} order")
    operands.check_dtype(x, "input", operands.FILTER_GRADIENT_DTYPES, "conv2d_backprop_filter")
    sizes = operands.shape_argument(filter_sizes, "filter_sizes", operands.FILTER_LAYOUT)
    dy = operands.array_argument(out_backprop, "out_backprop", f"in {data_format} order")
    dy = operands.convert(dy, x.dtype, "out_backprop")
    geometry = conv_geometry(
        x.shape, sizes, strides, padding, data_format, dilations, filter_name="filter_sizes"
    )
    expected = geometry.in_format(geometry.output_shape, data_format)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input shape "
            f"{x.shape}), got {dy.shape}"
        )
    if geometry.is_empty:
        return np.zeros(sizes, dtype=x.dtype)
    compute = operands.compute_dtype(x.dtype)
    if method == "auto":
        x_nhwc = operands.to_nhwc(x, data_format).astype(compute, copy=False)
        dy_nhwc = operands.to_nhwc(dy, data_format).astype(compute, copy=False)
        strategy = FILTER_GRADIENT_STRATEGIES[choose_filter_gradient(geometry)]
        gradient = strategy(x_nhwc, dy_nhwc, geometry)
        return operands.finish(gradient, x.dtype)
    g = geometry.groups
    kh, kw, cin, cout = sizes[0], sizes[1], sizes[2], geometry.per_group
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    ho, wo = geometry.out_height, geometry.out_width
    # Only the rows and columns some window reaches.
    rows = (ho - 1) * sh + (kh - 1) * dh + 1
    cols = (wo - 1) * sw + (kw - 1) * dw + 1
    padded = direct.pad(operands.to_nhwc(x, data_format).astype(compute, copy=False), geometry)
    padded = padded[:, :rows, :cols]
    dy = operands.to_nhwc(dy, data_format).astype(compute, copy=False)
    inner = Geometry(
        batch=cin,
        in_height=rows,
        in_width=cols,
        in_channels=geometry.batch,
        kernel_height=ho,
        kernel_width=wo,
        in_depth=geometry.batch,
        out_channels=cout,
        groups=1,
        strides=(dh, dw),
        dilations=(sh, sw),
        pads=((0, 0), (0, 0)),
        out_height=kh,
        out_width=kw,
    )
    blocks = []
    for group in range(g):
        # Batch and channels exchanged: the group's channels become the batch.
        images = padded[..., group * cin : (group + 1) * cin].transpose(3, 1, 2, 0)
        kernel = dy[..., group * cout : (group + 1) * cout].transpose(1, 2, 0, 3)
        blocks.append(forward(images, kernel, inner, method).transpose(1, 2, 0, 3))
    return operands.finish(np.concatenate(blocks, axis=3), x.dtype)
