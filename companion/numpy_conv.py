"""Convolution in NumPy: a drop-in twin of ``tf.nn.conv2d``, forward and backward.

:func:`conv2d` takes the arguments of :func:`tf.nn.conv2d` with the same
meaning (strides, dilations, ``SAME``/``VALID``/explicit padding, NHWC and
NCHW, grouped convolution) and returns the same shape and dtype; where
TensorFlow's oneDNN and reference CPU kernels disagree, it follows the
reference kernel (``TF_ENABLE_ONEDNN_OPTS=0``). All argument checking and
output-size arithmetic comes from :mod:`companion.padding`.

Its values agree with TensorFlow's within the rounding-error bound of
:func:`companion.numerics.conv_error_bound`, not bitwise: every method adds
the ``kh·kw·in_depth`` products of an output in its own order.

Methods (``method=``), all giving the same answer within that bound:

- ``"loops"``: a Python loop over every output position, the way the third
  seed question started;
- ``"windows"``: a strided view of all windows at once
  (:func:`numpy.lib.stride_tricks.sliding_window_view`) contracted with the
  filters by :func:`numpy.einsum`: the "stacked" form;
- ``"im2col"``: the windows copied into one matrix, then one matrix product
  (GEMM) per group (Chetlur et al. 2014);
- ``"auto"``: the fastest correct choice for the shape.

Methods are pluggable: :data:`STRATEGIES` maps a name to a function of the
unpadded NHWC input, the filters and a :class:`Geometry` (from
:func:`conv_geometry`); ``"auto"`` asks :func:`choose_method`.

The gradients :func:`conv2d_backprop_input` and
:func:`conv2d_backprop_filter` are convolutions too, and run through the same
strategies.

Dtypes, as in TensorFlow: float16, bfloat16, float32, float64 and int32
inputs; the first operand's dtype wins (``input`` for :func:`conv2d` and
:func:`conv2d_backprop_filter`, ``filters`` for :func:`conv2d_backprop_input`),
and the other operand is converted to it with ``astype``, as TensorFlow
converts a NumPy array. float16 and bfloat16 are summed in float32 and
rounded once at the end; int32 is exact modulo 2**32, as in TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from companion import padding as tfpad

__all__ = [
    "METHODS",
    "STRATEGIES",
    "Geometry",
    "choose_method",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "conv_geometry",
]

#: The dtypes ``tf.nn.conv2d`` and ``conv2d_backprop_input`` accept (their ops' type list).
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32")
#: ``Conv2DBackpropFilter`` has no int32 kernel.
_FILTER_GRADIENT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Geometry:
    """One convolution's sizes, resolved, in NHWC terms.

    Attributes
    ----------
    batch, in_height, in_width, in_channels : int
        The input's shape (NHWC).
    kernel_height, kernel_width, in_depth, out_channels : int
        The filter's shape; ``in_depth = in_channels / groups``.
    groups : int
        ``in_channels // in_depth`` (1 for an ordinary convolution).
    strides, dilations : (int, int)
        Along height and width.
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros, resolved from ``padding``.
    out_height, out_width : int
        The output's spatial size.
    """

    batch: int
    in_height: int
    in_width: int
    in_channels: int
    kernel_height: int
    kernel_width: int
    in_depth: int
    out_channels: int
    groups: int
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    out_height: int
    out_width: int

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(batch, out_height, out_width, out_channels)``."""
        return (self.batch, self.out_height, self.out_width, self.out_channels)

    @property
    def effective_kernel(self) -> tuple[int, int]:
        """The dilated kernel's extent ``(kh - 1)·dh + 1`` along height and width."""
        return (
            tfpad.effective_kernel_size(self.kernel_height, self.dilations[0]),
            tfpad.effective_kernel_size(self.kernel_width, self.dilations[1]),
        )

    @property
    def terms(self) -> int:
        """The number of products summed into each output, ``kh·kw·in_depth``."""
        return self.kernel_height * self.kernel_width * self.in_depth

    @property
    def is_empty(self) -> bool:
        """``True`` when the output has no elements or every sum is empty."""
        return 0 in self.output_shape or self.in_channels == 0


#: A strategy computes the NHWC output from the unpadded NHWC input and the
#: filters, both already in the computation dtype; it is called only for
#: non-empty outputs.
Strategy = Callable[[np.ndarray, np.ndarray, Geometry], np.ndarray]


# --------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------


def _as_array(value: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected an array, got {type(value).__name__}") from error
    if array.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got dtype object")
    return array


def _check_dtype(
    array: np.ndarray, name: str, allowed: tuple[str, ...] = SUPPORTED_DTYPES, op: str = "conv2d"
) -> None:
    if array.dtype.name not in allowed:
        raise ValueError(
            f"{name}: expected one of the dtypes TensorFlow's {op} accepts "
            f"({', '.join(allowed)}), got {array.dtype}"
        )


def _convert(array: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """Convert the second operand to the first one's dtype, as TensorFlow does."""
    if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(dtype, copy=False)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.name in ("float16", "bfloat16"):
        return np.dtype(np.float32)
    if dtype.name == "int32":
        return np.dtype(np.int64)  # exact modulo 2**32 after the final cast
    return dtype


def _check_rank(array: np.ndarray, name: str, layout: str) -> None:
    if array.ndim != 4:
        raise ValueError(f"{name}: expected a rank-4 array {layout}, got shape {array.shape}")


def _geometry(
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str,
    dilations: int | Sequence[int] | None,
) -> Geometry:
    """Check every argument with :mod:`companion.padding` and resolve the sizes."""
    try:
        out_shape = tfpad.conv_output_shape(
            input_shape, filter_shape, strides, padding, data_format, dilations
        )
    except ValueError as error:
        if not str(error).startswith("kernel_size:"):
            raise
        raise ValueError(
            f"filters: shape {tuple(filter_shape)} is too large for input shape "
            f"{tuple(input_shape)} with padding {padding!r} ({error})"
        ) from None
    sh, sw = tfpad.spatial(tfpad.normalize_strides(strides, data_format), data_format)
    dh, dw = tfpad.spatial(tfpad.normalize_dilations(dilations, data_format), data_format)
    pad = tfpad.normalize_padding(padding, data_format)
    height, width = tfpad.spatial(input_shape, data_format)
    channels = input_shape[3] if data_format == "NHWC" else input_shape[1]
    kh, kw, in_depth, out_channels = (int(d) for d in filter_shape)
    pads = (
        tfpad.resolve_pads(height, kh, sh, dh, pad if isinstance(pad, str) else pad[0]),
        tfpad.resolve_pads(width, kw, sw, dw, pad if isinstance(pad, str) else pad[1]),
    )
    out_height, out_width = tfpad.spatial(out_shape, data_format)
    return Geometry(
        batch=int(input_shape[0]),
        in_height=int(height),
        in_width=int(width),
        in_channels=int(channels),
        kernel_height=kh,
        kernel_width=kw,
        in_depth=in_depth,
        out_channels=out_channels,
        groups=max(int(channels) // in_depth, 1),
        strides=(sh, sw),
        dilations=(dh, dw),
        pads=pads,
        out_height=int(out_height),
        out_width=int(out_width),
    )


def conv_geometry(
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> Geometry:
    """Check the arguments of a ``tf.nn.conv2d`` call and resolve its sizes.

    Parameters
    ----------
    input_shape, filter_shape : sequence of 4 ints
        The shapes of ``input`` (in ``data_format`` order) and ``filters``.
    strides, padding, data_format, dilations
        As for :func:`conv2d`.

    Returns
    -------
    Geometry
        In NHWC terms, whatever ``data_format``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` rejects.

    Examples
    --------
    >>> g = conv_geometry((8, 3, 32, 32), (3, 3, 3, 16), 2, "SAME", "NCHW")
    >>> g.output_shape, g.pads, g.terms
    ((8, 16, 16, 16), ((0, 1), (0, 1)), 27)
    """
    data_format = tfpad.normalize_data_format(data_format)
    return _geometry(
        tuple(input_shape), tuple(filter_shape), strides, padding, data_format, dilations
    )


def _check_method(method: str) -> str:
    if method not in STRATEGIES and method != "auto":
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def _to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)


def _from_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return array if data_format == "NHWC" else np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def _shape_argument(value: object, name: str, what: str) -> tuple[int, int, int, int]:
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        items = []
    if len(items) != 4 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in items
    ):
        raise ValueError(f"{name}: expected 4 non-negative ints ({what}), got {value!r}")
    return tuple(int(v) for v in items)  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------


def _pad(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _windows(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """All windows as a view: ``(batch, out_h, out_w, channels, kh, kw)``."""
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    view = sliding_window_view(_pad(x, geometry), (eh, ew), axis=(1, 2))
    view = view[:, ::sh, ::sw, :, ::dh, ::dw]
    return view[:, : geometry.out_height, : geometry.out_width]


def _loops(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One output position at a time, as the seed's triple loop."""
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    cin, cout = geometry.in_depth, geometry.out_channels // geometry.groups
    padded = _pad(x, geometry)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    for n in range(geometry.batch):
        for i in range(geometry.out_height):
            for j in range(geometry.out_width):
                window = padded[n, i * sh : i * sh + eh : dh, j * sw : j * sw + ew : dw, :]
                for g in range(geometry.groups):
                    patch = window[:, :, g * cin : (g + 1) * cin, np.newaxis]
                    product = patch * w[:, :, :, g * cout : (g + 1) * cout]
                    out[n, i, j, g * cout : (g + 1) * cout] = product.sum(axis=(0, 1, 2))
    return out


def _windows_einsum(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The stacked form: contract the view of all windows with the filters."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = _windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    filters = w.reshape(kh, kw, cin, g, geometry.out_channels // g)
    out = np.einsum("nhwgcij,ijcgk->nhwgk", view, filters, optimize=True)
    return out.reshape(geometry.output_shape)


def _im2col(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Copy the windows into a matrix, one row per output position; one GEMM per group."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = _windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    # (groups, positions, kh·kw·cin), in the filter's (kh, kw, cin) order.
    columns = view.transpose(3, 0, 1, 2, 5, 6, 4).reshape(g, n * ho * wo, kh * kw * cin)
    matrix = w.reshape(kh * kw * cin, g, geometry.out_channels // g).transpose(1, 0, 2)
    out = np.matmul(columns, matrix)  # (groups, positions, out per group)
    return out.transpose(1, 0, 2).reshape(geometry.output_shape)


#: The implementations by name; each takes ``(x_nhwc, filters, geometry)``.
STRATEGIES: dict[str, Strategy] = {
    "loops": _loops,
    "windows": _windows_einsum,
    "im2col": _im2col,
}

#: The values ``method`` accepts.
METHODS = ("auto", *STRATEGIES)


def choose_method(geometry: Geometry) -> str:
    """Return the strategy ``method="auto"`` uses for this geometry.

    Examples
    --------
    >>> choose_method(conv_geometry((1, 8, 8, 3), (3, 3, 3, 4), 1, "SAME"))
    'im2col'
    """
    return "im2col"


def _forward(x: np.ndarray, w: np.ndarray, geometry: Geometry, method: str) -> np.ndarray:
    """NHWC forward in the computation dtype; handles empty outputs."""
    if geometry.is_empty:
        return np.zeros(geometry.output_shape, dtype=x.dtype)
    name = choose_method(geometry) if method == "auto" else method
    return STRATEGIES[name](x, w, geometry)


def _finish(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.name == "int32":
        return result.astype(np.int32)  # wraps modulo 2**32, as int32 arithmetic does
    return result.astype(dtype, copy=False)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def conv2d(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Compute a 2-D convolution exactly as :func:`tf.nn.conv2d` defines it.

    Like TensorFlow, this is a cross-correlation (the filter is not flipped):
    ``out[n, i, j, k] = Σ_{a, b, c} xp[n, i·sh + a·dh, j·sw + b·dw, g·D + c] ·
    filters[a, b, c, k]`` with ``xp`` the zero-padded input, ``D`` the
    filter's in-depth and ``g = k // (out_channels / groups)`` the group of
    output channel ``k``.

    Parameters
    ----------
    input : array_like
        Rank 4, in ``data_format`` order; float16, bfloat16, float32, float64
        or int32.
    filters : array_like
        ``(kernel_height, kernel_width, in_depth, out_channels)``, converted to
        ``input``'s dtype. The input's channels must be a multiple of
        ``in_depth`` (``channels / in_depth`` groups) and ``out_channels`` a
        multiple of the groups.
    strides : int or sequence of 1, 2 or 4 ints
        As for :func:`tf.nn.conv2d`; four entries are in ``data_format`` order
        with 1 on the batch and channel dimensions.
    padding : "SAME", "VALID", or a list of 4 ``[before, after]`` pairs
        Explicit pairs are in ``data_format`` order, ``[0, 0]`` on batch and
        channels. ``SAME`` puts the odd zero at the bottom/right.
    data_format : {"NHWC", "NCHW"}
    dilations : int, sequence of 1, 2 or 4 ints, or None
        Same forms as ``strides``; ``None`` means 1.
    method : {"auto", "loops", "windows", "im2col"}, keyword-only
        The implementation (see the module's docstring).

    Returns
    -------
    ndarray
        In ``data_format`` order, of ``input``'s dtype. Empty batches and
        kernels larger than the input under ``VALID`` give empty results, as
        in TensorFlow's reference kernel.

    Raises
    ------
    ValueError
        Naming the argument, the value and what was expected, wherever
        TensorFlow's reference kernel rejects the call.

    Examples
    --------
    A 2×2 sum over ``1..9`` with ``SAME`` padding: TensorFlow pads the odd
    row and column at the bottom and right.

    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> conv2d(x, np.ones((2, 2, 1, 1)), 1, "SAME")[0, :, :, 0]
    array([[12., 16.,  9.],
           [24., 28., 15.],
           [15., 17.,  9.]])
    >>> conv2d(x.astype(np.float32), np.ones((3, 3, 1, 4)), 2, "VALID").shape
    (1, 1, 1, 4)
    """
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    x = _as_array(input, "input")
    _check_rank(x, "input", f"in {data_format} order")
    _check_dtype(x, "input")
    w = _as_array(filters, "filters")
    _check_rank(w, "filters", "(kernel_height, kernel_width, in_depth, out_channels)")
    w = _convert(w, x.dtype, "filters")
    geometry = _geometry(x.shape, w.shape, strides, padding, data_format, dilations)
    compute = _compute_dtype(x.dtype)
    out = _forward(
        _to_nhwc(x, data_format).astype(compute, copy=False),
        w.astype(compute, copy=False),
        geometry,
        method,
    )
    return _from_nhwc(_finish(out, x.dtype), data_format)


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

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_input`
    (and the input gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts.
    It is itself a convolution: ``out_backprop``, spread out by the strides
    (zeros between its rows and columns) and padded by ``(k − 1)·d`` zeros
    on each side, is convolved with the filters turned by 180° and with
    their in/out channels swapped, at stride 1 and the same dilations; the
    forward padding is then cut off.

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
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    sizes = _shape_argument(input_sizes, "input_sizes", f"the input's shape in {data_format} order")
    w = _as_array(filters, "filters")
    _check_rank(w, "filters", "(kernel_height, kernel_width, in_depth, out_channels)")
    _check_dtype(w, "filters")
    dy = _as_array(out_backprop, "out_backprop")
    _check_rank(dy, "out_backprop", f"in {data_format} order")
    dy = _convert(dy, w.dtype, "out_backprop")
    geometry = _geometry(sizes, w.shape, strides, padding, data_format, dilations)
    expected = tfpad.conv_output_shape(sizes, w.shape, strides, padding, data_format, dilations)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input_sizes "
            f"{sizes}), got {dy.shape}"
        )
    compute = _compute_dtype(w.dtype)
    nhwc = (geometry.batch, geometry.in_height, geometry.in_width, geometry.in_channels)
    if geometry.is_empty or 0 in nhwc:
        return np.zeros(sizes, dtype=w.dtype)
    dy = _to_nhwc(dy, data_format).astype(compute, copy=False)
    g = geometry.groups
    kh, kw, cin, cout = (
        geometry.kernel_height,
        geometry.kernel_width,
        geometry.in_depth,
        (geometry.out_channels // g),
    )
    (top, bottom), (left, right) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded_h = geometry.in_height + top + bottom
    padded_w = geometry.in_width + left + right
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
    full = _forward(spread, turned, inner, method)
    dx = full[:, top : top + geometry.in_height, left : left + geometry.in_width]
    return _from_nhwc(np.ascontiguousarray(_finish(dx, w.dtype)), data_format)


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

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_filter`
    (and the filter gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts. It is
    a convolution of the padded input with ``out_backprop`` as the kernel,
    batch and channels exchanged: the forward *dilations* become its strides
    and the forward *strides* its dilations; every weight sums
    ``batch·out_height·out_width`` products.

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

    Examples
    --------
    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> dw = conv2d_backprop_filter(x, (2, 2, 1, 1), np.ones((1, 3, 3, 1)), 1, "SAME")
    >>> dw[:, :, 0, 0]            # sums of x over the shifted windows
    array([[45., 33.],
           [39., 28.]])
    """
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    x = _as_array(input, "input")
    _check_rank(x, "input", f"in {data_format} order")
    _check_dtype(x, "input", _FILTER_GRADIENT_DTYPES, "conv2d_backprop_filter")
    sizes = _shape_argument(
        filter_sizes, "filter_sizes", "(kernel_height, kernel_width, in_depth, out_channels)"
    )
    dy = _as_array(out_backprop, "out_backprop")
    _check_rank(dy, "out_backprop", f"in {data_format} order")
    dy = _convert(dy, x.dtype, "out_backprop")
    geometry = _geometry(x.shape, sizes, strides, padding, data_format, dilations)
    expected = tfpad.conv_output_shape(x.shape, sizes, strides, padding, data_format, dilations)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input shape "
            f"{x.shape}), got {dy.shape}"
        )
    if geometry.is_empty:
        return np.zeros(sizes, dtype=x.dtype)
    compute = _compute_dtype(x.dtype)
    g = geometry.groups
    kh, kw, cin, cout = sizes[0], sizes[1], sizes[2], geometry.out_channels // g
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    ho, wo = geometry.out_height, geometry.out_width
    # Only the rows and columns some window reaches.
    rows = (ho - 1) * sh + (kh - 1) * dh + 1
    cols = (wo - 1) * sw + (kw - 1) * dw + 1
    padded = _pad(_to_nhwc(x, data_format).astype(compute, copy=False), geometry)
    padded = padded[:, :rows, :cols]
    dy = _to_nhwc(dy, data_format).astype(compute, copy=False)
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
        blocks.append(_forward(images, kernel, inner, method).transpose(1, 2, 0, 3))
    return _finish(np.concatenate(blocks, axis=3), x.dtype)
