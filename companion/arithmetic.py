"""TensorFlow's convolution arithmetic: output sizes, padding, and the resolved geometry.

This module is the single home of that arithmetic in the project: the NumPy
convolution (:mod:`companion.numpy_conv`), the accurate convolution
(:mod:`companion.numerics`) and the Keras layer (:mod:`companion.layers`) call
it instead of writing it again. :func:`conv_geometry` checks the arguments of
one ``tf.nn.conv2d`` call (through :mod:`companion.arguments`) and resolves
its sizes once, into a :class:`Geometry` that the callers hand down. It
mirrors the CPU kernels of TensorFlow that run with ``TF_ENABLE_ONEDNN_OPTS=0``,
including where oneDNN behaves differently.

The rule for ``SAME`` padding, from TensorFlow's ``GetWindowedOutputSize``::

    out       = ceil(in / stride)
    effective = (kernel - 1) * dilation + 1
    pad_total = max((out - 1) * stride + effective - in, 0)
    before    = pad_total // 2          # the odd pixel goes after: bottom/right

PyTorch's ``padding="same"`` (stride 1 only) splits the zeros the same way.
The symmetric integer padding of Caffe and of PyTorch's ``padding=p`` differs:
``p`` zeros on each side, with the output size rounded down, so when
TensorFlow's total is odd (say ``(0, 1)`` for a 3-tap kernel with stride 2 on
an even input) ``p = 1`` reads the top zero instead and every window sits one
pixel up (left) of TensorFlow's.

Built in chapter 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from companion import arguments
from companion.arguments import Pads

__all__ = [
    "Geometry",
    "conv_geometry",
    "conv_output_shape",
    "effective_kernel_size",
    "output_size",
    "resolve_pads",
    "same_pads",
    "tap_reach",
]


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division that truncates toward zero, as C++ (and TensorFlow) does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Return the extent of a dilated kernel: ``(kernel_size - 1) * dilation + 1``.

    Built in chapter 2.

    Examples
    --------
    >>> effective_kernel_size(3, dilation=2)
    5
    """
    _check_sizes(None, kernel_size=kernel_size, dilation=dilation)
    return (kernel_size - 1) * dilation + 1


def same_pads(in_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> Pads:
    """Return TensorFlow's ``SAME`` padding of one spatial dimension as ``(before, after)``.

    Built in chapter 2.

    Parameters
    ----------
    in_size, kernel_size, stride, dilation : int
        The input's extent, the kernel's extent (undilated), the stride and
        the dilation along that dimension.

    Returns
    -------
    (int, int)
        Zeros before (top/left) and after (bottom/right). When the total is
        odd, the extra zero goes *after*.

    Examples
    --------
    >>> same_pads(5, 4)          # total 3: one on top, two at the bottom
    (1, 2)
    >>> same_pads(224, 3, stride=2)
    (0, 1)
    """
    _check_sizes(in_size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    in_size = arguments.integer(in_size, "in_size")  # SAME needs the size: None is no size
    out = -(-in_size // stride)
    total = max((out - 1) * stride + effective_kernel_size(kernel_size, dilation) - in_size, 0)
    return (total // 2, total - total // 2)


def tap_reach(
    in_size: int, out_size: int, stride: int, dilation: int, before: int, tap: int
) -> tuple[int, int, int]:
    """Which outputs one kernel tap reads the input for, along one axis, and from where.

    Output ``i``'s tap ``tap`` reads padded position ``i·stride + tap·dilation``,
    that is input position ``i·stride + tap·dilation − before``: an arithmetic
    sequence in ``i``, inside the input for one run of outputs.

    Returns
    -------
    (int, int, int)
        ``(first, stop, position)``: outputs ``first`` to ``stop − 1`` read the
        input (``first == stop`` when none does), the first of them at input
        position ``position``, the next ones ``stride`` apart.

    Examples
    --------
    >>> tap_reach(5, 5, 1, 20000, 20000, 1)     # the middle tap of SAME, dilation 20000
    (0, 5, 0)
    >>> first, stop, _ = tap_reach(5, 5, 1, 20000, 20000, 0)   # the first tap: only zeros
    >>> first == stop
    True
    """
    arguments.integer(in_size, "in_size")
    arguments.integer(out_size, "out_size")
    _check_sizes(None, stride=stride, dilation=dilation)
    arguments.integer(before, "before")
    arguments.integer(tap, "tap")
    offset = tap * dilation - before
    first = min(out_size, max(0, -(offset // stride)))
    stop = max(first, min(out_size, -((offset - in_size) // stride)))
    return first, stop, first * stride + offset


def _check_sizes(in_size: int | None, **positive: int) -> None:
    """Check one dimension's sizes, each error naming its argument."""
    if in_size is not None:
        arguments.integer(in_size, "in_size")
    for name, value in positive.items():
        arguments.integer(value, name, minimum=1)


def output_size(
    in_size: int | None,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    padding: str | Pads = "VALID",
) -> int | None:
    """Return the output extent of a convolution along one spatial dimension.

    Built in chapter 2.

    Parameters
    ----------
    in_size : int or None
        The input's extent; ``None`` (unknown, as in a Keras symbolic shape)
        gives ``None``.
    kernel_size, stride, dilation : int
        The kernel's extent (undilated), the stride and the dilation.
    padding : "SAME", "VALID", or (before, after)

    Returns
    -------
    int or None
        ``SAME``: ``ceil(in / stride)``. ``VALID`` and explicit pads:
        ``(in + before + after - effective + stride) / stride`` with C's
        truncating division, where ``effective = (kernel - 1) * dilation + 1``.
        A kernel larger than the input can therefore give 0 (an empty output).

    Raises
    ------
    ValueError
        When that quotient is negative: TensorFlow's Eigen kernel then
        fails with "Computed output size would be negative".

    Examples
    --------
    >>> output_size(224, 3)                  # VALID: 222
    222
    >>> output_size(7, 3, stride=2, padding="SAME")
    4
    >>> output_size(2, 3)                    # kernel larger than input: empty
    0
    """
    return _output_size(in_size, kernel_size, stride, dilation, padding, "kernel_size")


def _output_size(in_size, kernel_size, stride, dilation, padding, kernel_name: str) -> int | None:
    """:func:`output_size`, its error naming the argument that carries the kernel."""
    _check_sizes(in_size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    if in_size is None:
        return None
    if padding == "SAME":
        return -(-in_size // stride)
    before, after = (0, 0) if padding == "VALID" else arguments.pair_of_pads(padding)
    effective = effective_kernel_size(kernel_size, dilation)
    size = _trunc_div(in_size + before + after - effective + stride, stride)
    if size < 0:
        raise ValueError(
            f"{kernel_name}: the effective kernel extent {effective} (kernel {kernel_size}, "
            f"dilation {dilation}) exceeds the padded input extent {in_size + before + after} "
            f"so far that the computed output size would be negative ({size})"
        )
    return size


def resolve_pads(
    in_size: int, kernel_size: int, stride: int, dilation: int, padding: str | Pads
) -> Pads:
    """Return the ``(before, after)`` zeros that ``padding`` means along one dimension.

    Built in chapter 2.

    Examples
    --------
    >>> resolve_pads(6, 3, 2, 1, "SAME"), resolve_pads(6, 3, 2, 1, "VALID")
    ((0, 1), (0, 0))
    """
    _check_sizes(in_size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    if padding == "SAME":
        return same_pads(in_size, kernel_size, stride, dilation)
    if padding == "VALID":
        return (0, 0)
    return arguments.pair_of_pads(padding)


@dataclass(frozen=True)
class Geometry:
    """One convolution's sizes, resolved once, in NHWC terms.

    Built in chapter 2.

    Built by :func:`conv_geometry` from the arguments of a ``tf.nn.conv2d`` call
    and handed down to whatever computes or draws that convolution. A size is
    ``None`` only where the input's shape was unknown (a Keras symbolic shape).

    Attributes
    ----------
    batch, in_height, in_width, in_channels : int or None
        The input's shape (NHWC).
    kernel_height, kernel_width, in_depth, out_channels : int
        The filter's shape; ``in_depth = in_channels / groups``.
    groups : int or None
        ``in_channels // in_depth`` (1 for an ordinary convolution, and for
        an input without channels).
    strides, dilations : (int, int)
        Along height and width.
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros, resolved from ``padding``
        (``None`` along an axis of unknown size under ``SAME``).
    out_height, out_width : int or None
        The output's spatial size.
    """

    batch: int | None
    in_height: int | None
    in_width: int | None
    in_channels: int | None
    kernel_height: int
    kernel_width: int
    in_depth: int
    out_channels: int
    groups: int | None
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[Pads | None, Pads | None]
    out_height: int | None
    out_width: int | None

    @property
    def input_shape(self) -> tuple[int | None, int | None, int | None, int | None]:
        """``(batch, in_height, in_width, in_channels)``."""
        return (self.batch, self.in_height, self.in_width, self.in_channels)

    @property
    def output_shape(self) -> tuple[int | None, int | None, int | None, int]:
        """``(batch, out_height, out_width, out_channels)``."""
        return (self.batch, self.out_height, self.out_width, self.out_channels)

    @property
    def per_group(self) -> int:
        """Output channels per group, ``out_channels // groups``."""
        return self.out_channels // self.groups

    @property
    def padded_size(self) -> tuple[int, int]:
        """The zero-padded input's height and width."""
        (top, bottom), (left, right) = self.pads
        return (self.in_height + top + bottom, self.in_width + left + right)

    @property
    def effective_kernel(self) -> tuple[int, int]:
        """The dilated kernel's extent ``(kh - 1)·dh + 1`` along height and width."""
        return (
            effective_kernel_size(self.kernel_height, self.dilations[0]),
            effective_kernel_size(self.kernel_width, self.dilations[1]),
        )

    @property
    def terms(self) -> int:
        """The number of products summed into each output, ``kh·kw·in_depth``."""
        return self.kernel_height * self.kernel_width * self.in_depth

    @property
    def flops(self) -> int:
        """Floating-point operations of the direct sum: ``2·N·Ho·Wo·K·kh·kw·Cin/groups``.

        One multiplication and one addition per product; the count every
        strategy is measured against (GFLOP/s), whatever it really executes.
        """
        return 2 * math.prod(self.output_shape) * self.terms  # type: ignore[arg-type]

    @property
    def is_empty(self) -> bool:
        """``True`` when the output has no elements or every sum is empty."""
        return 0 in self.output_shape or self.in_channels == 0

    def in_format(self, shape: Sequence[int | None], data_format: str) -> tuple:
        """An NHWC ``shape`` in ``data_format`` order.

        Examples
        --------
        >>> g = conv_geometry((8, 3, 32, 32), (3, 3, 3, 16), 1, "SAME", "NCHW")
        >>> g.in_format(g.output_shape, "NCHW")
        (8, 16, 32, 32)
        """
        batch, height, width, channels = shape
        if arguments.normalize_data_format(data_format) == "NHWC":
            return (batch, height, width, channels)
        return (batch, channels, height, width)


def _shape(value: Sequence[int | None], name: str, what: str, unknown: bool) -> tuple:
    expected = f"a rank-4 shape {what}"
    try:
        dims = tuple(value)
    except TypeError:
        raise ValueError(f"{name}: expected {expected}, got {value!r}") from None
    if len(dims) != 4 or (not unknown and None in dims):
        raise ValueError(f"{name}: expected {expected}, got shape {dims}")
    return tuple(
        None
        if dim is None
        else arguments.integer(dim, name, expected=f"{expected} of non-negative ints")
        for dim in dims
    )


def conv_geometry(
    input_shape: Sequence[int | None],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    input_name: str = "input",
    filter_name: str = "filters",
) -> Geometry:
    """Check the arguments of a ``tf.nn.conv2d`` call and resolve its sizes, once.

    Built in chapter 2; every computation of chapters 5 and 6 starts here.

    Parameters
    ----------
    input_shape : sequence of 4 ints or None
        The shape of ``input``, in ``data_format`` order; any entry may be
        ``None`` (unknown, as in a Keras symbolic shape).
    filter_shape : sequence of 4 ints
        ``(kernel_height, kernel_width, in_depth, out_channels)``. The input's
        channels must be a multiple of ``in_depth`` (grouped convolution with
        ``channels // in_depth`` groups), and ``out_channels`` a multiple of the
        number of groups.
    strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`.
    input_name, filter_name : str, keyword-only
        The names of the arguments that carry the two shapes, for error
        messages (the gradients take ``input_sizes`` or ``filter_sizes``).

    Returns
    -------
    Geometry
        In NHWC terms, whatever ``data_format``.

    Raises
    ------
    ValueError
        Naming the argument, the value and what was expected, for any
        argument TensorFlow's CPU kernels reject.

    Examples
    --------
    >>> g = conv_geometry((8, 3, 32, 32), (3, 3, 3, 16), 2, "SAME", "NCHW")
    >>> g.output_shape, g.pads, g.terms, g.flops
    ((8, 16, 16, 16), ((0, 1), (0, 1)), 27, 1769472)
    """
    names = (input_name, filter_name, filter_name)
    return _resolve(input_shape, filter_shape, strides, padding, data_format, dilations, names)


def _resolve(input_shape, filter_shape, strides, padding, data_format, dilations, names):
    """:func:`conv_geometry`, its errors naming ``names``: the input's, the filter's, and the
    argument held responsible for a kernel too large for the input."""
    input_name, filter_name, kernel_name = names
    data_format = arguments.normalize_data_format(data_format)
    in_shape = _shape(input_shape, input_name, f"in {data_format} order", unknown=True)
    kernel = "(kernel_height, kernel_width, in_depth, out_channels)"
    kh, kw, in_depth, out_channels = _shape(filter_shape, filter_name, kernel, unknown=False)
    strides4 = arguments.normalize_strides(strides, data_format)
    dilations4 = arguments.normalize_dilations(dilations, data_format)
    pad = arguments.normalize_padding(padding, data_format)
    if min(kh, kw, in_depth) <= 0:
        raise ValueError(
            f"{filter_name}: expected positive kernel sizes and depth, "
            f"got shape {tuple(filter_shape)}"
        )
    batch, height, width, channels = (
        in_shape if data_format == "NHWC" else (in_shape[0], *in_shape[2:], in_shape[1])
    )
    groups = None if channels is None else max(channels // in_depth, 1)
    # An input without channels: the Eigen kernel returns zeros (empty sums).
    if channels:
        if channels % in_depth:
            raise ValueError(
                f"{filter_name}: the input's {channels} channels must be a multiple of the "
                f"filter's in_depth, got in_depth {in_depth}"
            )
        if out_channels % groups:
            raise ValueError(
                f"{filter_name}: out_channels must be a multiple of the number of groups "
                f"({channels} input channels / in_depth {in_depth} = {groups}), "
                f"got {out_channels}"
            )
    strides2 = arguments.spatial(strides4, data_format)
    dilations2 = arguments.spatial(dilations4, data_format)
    pads, sizes = [], []
    for axis, (in_size, k) in enumerate(((height, kh), (width, kw))):
        stride, dilation = strides2[axis], dilations2[axis]
        axis_pad = pad if isinstance(pad, str) else pad[axis]
        sizes.append(_output_size(in_size, k, stride, dilation, axis_pad, kernel_name))
        known = in_size is not None or axis_pad != "SAME"
        pads.append(resolve_pads(in_size, k, stride, dilation, axis_pad) if known else None)
    return Geometry(
        batch=batch,
        in_height=height,
        in_width=width,
        in_channels=channels,
        kernel_height=kh,
        kernel_width=kw,
        in_depth=in_depth,
        out_channels=out_channels,
        groups=groups,
        strides=strides2,
        dilations=dilations2,
        pads=(pads[0], pads[1]),
        out_height=sizes[0],
        out_width=sizes[1],
    )


def conv_output_shape(
    input_shape: Sequence[int | None],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> tuple[int | None, int | None, int | None, int | None]:
    """Return the shape :func:`tf.nn.conv2d` gives, checking every argument.

    Built in chapter 2. The output shape of :func:`conv_geometry`, in
    ``data_format`` order; a kernel too large for the input is reported as
    ``kernel_size``'s error, as Keras layers name it.

    Parameters
    ----------
    input_shape, filter_shape, strides, padding, data_format, dilations
        As for :func:`conv_geometry`.

    Returns
    -------
    tuple of 4
        The output shape in ``data_format`` order; ``None`` where it depends
        on an unknown input size.

    Raises
    ------
    ValueError
        Naming the argument, the value and what was expected.

    Examples
    --------
    >>> conv_output_shape((1, 224, 224, 3), (1, 3, 3, 10), 1, "VALID")
    (1, 224, 222, 10)
    >>> conv_output_shape((8, 6, 32, 32), (3, 3, 3, 12), 2, "SAME", "NCHW")
    (8, 12, 16, 16)
    """
    names = ("input", "filters", "kernel_size")
    geometry = _resolve(input_shape, filter_shape, strides, padding, data_format, dilations, names)
    return geometry.in_format(geometry.output_shape, data_format)
