"""TensorFlow's convolution arithmetic: argument forms, output sizes and padding.

This module is the single home of that arithmetic in the project: the NumPy
convolution (:mod:`companion.numpy_conv`) and the Keras layer
(:mod:`companion.layers`) call it instead of writing it again. Everything here
mirrors the *reference* CPU kernels of TensorFlow (``TF_ENABLE_ONEDNN_OPTS=0``),
including where oneDNN behaves differently.

Conventions
-----------
- ``data_format`` is ``"NHWC"`` or ``"NCHW"``, as in :func:`tf.nn.conv2d`.
- Four-element tuples are in the data format's order; two-element tuples are
  ``(height, width)``.
- A "pad" is a ``(before, after)`` pair: ``before`` rows (or columns) of zeros
  go at the top (left), ``after`` at the bottom (right).

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = [
    "DATA_FORMATS",
    "Padding",
    "Pads",
    "conv_output_shape",
    "effective_kernel_size",
    "normalize_data_format",
    "normalize_dilations",
    "normalize_padding",
    "normalize_strides",
    "output_size",
    "resolve_pads",
    "same_pads",
    "spatial",
]

#: The data formats :func:`tf.nn.conv2d` accepts: channels last, or channels first.
DATA_FORMATS = ("NHWC", "NCHW")

#: ``(before, after)`` zeros along one spatial dimension.
Pads = tuple[int, int]
#: A normalised ``padding``: ``"SAME"``, ``"VALID"``, or ``((top, bottom), (left, right))``.
Padding = Literal["SAME", "VALID"] | tuple[Pads, Pads]


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # NumPy integer scalars (np.int64(3)) count as ints; floats and arrays do not.
    return (
        getattr(value, "ndim", None) == 0
        and getattr(value, "dtype", None) is not None
        and (value.dtype.kind in "iu")
    )


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division that truncates toward zero, as C++ (and TensorFlow) does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def normalize_data_format(data_format: str) -> str:
    """Check ``data_format`` and return it.

    Parameters
    ----------
    data_format : str
        ``"NHWC"`` or ``"NCHW"``, exactly as :func:`tf.nn.conv2d` accepts them.

    Raises
    ------
    ValueError
        For anything else (TensorFlow accepts no lower case and no aliases).

    Examples
    --------
    >>> normalize_data_format("NCHW")
    'NCHW'
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format: expected 'NHWC' or 'NCHW', got {data_format!r}")
    return data_format


def spatial(values: Sequence[int], data_format: str = "NHWC") -> tuple[int, int]:
    """Return the ``(height, width)`` entries of a four-element shape or argument.

    Examples
    --------
    >>> spatial((8, 3, 32, 48), "NCHW")
    (32, 48)
    """
    normalize_data_format(data_format)
    if data_format == "NHWC":
        return values[1], values[2]
    return values[2], values[3]


def _four(height: int, width: int, fill: int, data_format: str) -> tuple[int, int, int, int]:
    if data_format == "NHWC":
        return (fill, height, width, fill)
    return (fill, fill, height, width)


def _normalize_window_argument(
    value: int | Sequence[int], name: str, data_format: str
) -> tuple[int, int, int, int]:
    normalize_data_format(data_format)
    if _is_int(value):
        items = [int(value)]
    else:
        try:
            items = list(value)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                f"{name}: expected an int or a list of 1, 2 or 4 ints, got {value!r}"
            ) from None
        if not all(_is_int(item) for item in items):
            raise ValueError(f"{name}: expected an int or a list of 1, 2 or 4 ints, got {value!r}")
        items = [int(item) for item in items]
    if len(items) == 1:
        four = _four(items[0], items[0], 1, data_format)
    elif len(items) == 2:
        four = _four(items[0], items[1], 1, data_format)
    elif len(items) == 4:
        four = tuple(items)  # type: ignore[assignment]
    else:
        raise ValueError(
            f"{name}: expected an int or a list of 1, 2 or 4 ints, got {value!r} "
            f"of length {len(items)}"
        )
    if min(four) <= 0:
        raise ValueError(f"{name}: every entry must be a positive integer, got {value!r}")
    batch, channel = (four[0], four[3]) if data_format == "NHWC" else (four[0], four[1])
    if (batch, channel) != (1, 1):
        raise ValueError(
            f"{name}: the batch and channel entries must be 1 (TensorFlow supports "
            f"{name} only along height and width), got {value!r} for {data_format}"
        )
    return four  # type: ignore[return-value]


def normalize_strides(
    strides: int | Sequence[int], data_format: str = "NHWC"
) -> tuple[int, int, int, int]:
    """Return ``strides`` in its four-element form, as :func:`tf.nn.conv2d` reads it.

    Parameters
    ----------
    strides : int or sequence of 1, 2 or 4 ints
        An int (or one-element list) applies to height and width; two elements
        are ``(height, width)``; four are in the data format's order, with 1 on
        the batch and channel dimensions.
    data_format : {"NHWC", "NCHW"}

    Returns
    -------
    tuple of 4 ints
        In the data format's order.

    Raises
    ------
    ValueError
        A wrong length, a non-positive entry, or a batch/channel entry other than 1.

    Examples
    --------
    >>> normalize_strides(2)
    (1, 2, 2, 1)
    >>> normalize_strides([2, 3], "NCHW")
    (1, 1, 2, 3)
    """
    return _normalize_window_argument(strides, "strides", data_format)


def normalize_dilations(
    dilations: int | Sequence[int] | None, data_format: str = "NHWC"
) -> tuple[int, int, int, int]:
    """Return ``dilations`` in its four-element form; ``None`` means no dilation.

    Takes the same forms as :func:`normalize_strides`.

    Examples
    --------
    >>> normalize_dilations(None)
    (1, 1, 1, 1)
    >>> normalize_dilations([1, 1, 2, 2], "NCHW")
    (1, 1, 2, 2)
    """
    value = 1 if dilations is None else dilations
    return _normalize_window_argument(value, "dilations", data_format)


def normalize_padding(padding: str | Sequence[Sequence[int]], data_format: str = "NHWC") -> Padding:
    """Check ``padding`` and return ``"SAME"``, ``"VALID"`` or explicit spatial pads.

    Parameters
    ----------
    padding : str or sequence of 4 pairs
        ``"SAME"`` or ``"VALID"`` (upper case, as TensorFlow requires), or an
        explicit list of four ``[before, after]`` pairs in the data format's
        order, for example ``[[0, 0], [1, 2], [3, 4], [0, 0]]`` in NHWC.
    data_format : {"NHWC", "NCHW"}

    Returns
    -------
    str or tuple of two pairs
        ``"SAME"``, ``"VALID"``, or ``((top, bottom), (left, right))``.

    Raises
    ------
    ValueError
        An unknown string, a list not of four pairs, a negative pad, or a
        non-zero pad on the batch or channel dimension (which TensorFlow's
        reference kernel rejects; oneDNN silently accepts it).

    Examples
    --------
    >>> normalize_padding("VALID")
    'VALID'
    >>> normalize_padding([[0, 0], [1, 2], [3, 4], [0, 0]])
    ((1, 2), (3, 4))
    """
    normalize_data_format(data_format)
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding  # type: ignore[return-value]
        hint = " (TensorFlow requires upper case)" if padding.upper() in ("SAME", "VALID") else ""
        raise ValueError(
            f"padding: expected 'SAME', 'VALID' or a list of 4 [before, after] pairs, "
            f"got {padding!r}{hint}"
        )
    expected = "a list of 4 [before, after] pairs of non-negative ints"
    try:
        pairs = [list(pair) for pair in padding]
    except TypeError:
        raise ValueError(
            f"padding: expected 'SAME', 'VALID' or {expected}, got {padding!r}"
        ) from None
    if len(pairs) != 4 or any(len(p) != 2 or not all(_is_int(v) for v in p) for p in pairs):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    pairs = [[int(v) for v in pair] for pair in pairs]
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding: every pad must be non-negative, got {padding!r}")
    if data_format == "NHWC":
        batch, height, width, channel = pairs
    else:
        batch, channel, height, width = pairs
    if batch != [0, 0] or channel != [0, 0]:
        raise ValueError(
            f"padding: the batch and channel pairs must be [0, 0] (TensorFlow pads only "
            f"height and width), got {padding!r} for {data_format}"
        )
    return (tuple(height), tuple(width))  # type: ignore[return-value]


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Return the extent of a dilated kernel: ``(kernel_size - 1) * dilation + 1``.

    Examples
    --------
    >>> effective_kernel_size(3, dilation=2)
    5
    """
    return (kernel_size - 1) * dilation + 1


def same_pads(in_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> Pads:
    """Return TensorFlow's ``SAME`` padding of one spatial dimension as ``(before, after)``.

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
    _check_positive(in_size=in_size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    out = -(-in_size // stride)
    total = max((out - 1) * stride + effective_kernel_size(kernel_size, dilation) - in_size, 0)
    return (total // 2, total - total // 2)


def _check_pads(padding: object) -> Pads:
    """Return an explicit ``(before, after)`` pair, or raise a ValueError naming ``padding``."""
    expected = "'SAME', 'VALID' or a (before, after) pair of non-negative ints"
    if isinstance(padding, str):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    try:
        pair = tuple(padding)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"padding: expected {expected}, got {padding!r}") from None
    if len(pair) != 2 or not all(_is_int(v) and v >= 0 for v in pair):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    return (int(pair[0]), int(pair[1]))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not _is_int(value) or value < 0 or (value == 0 and name != "in_size"):
            allowed = "a non-negative int" if name == "in_size" else "a positive int"
            raise ValueError(f"{name}: expected {allowed}, got {value!r}")


def output_size(
    in_size: int | None,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    padding: str | Pads = "VALID",
) -> int | None:
    """Return the output extent of a convolution along one spatial dimension.

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
        When that quotient is negative: TensorFlow's reference kernel then
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
    if in_size is None:
        _check_positive(kernel_size=kernel_size, stride=stride, dilation=dilation)
        return None
    _check_positive(in_size=in_size, kernel_size=kernel_size, stride=stride, dilation=dilation)
    if padding == "SAME":
        return -(-in_size // stride)
    before, after = (0, 0) if padding == "VALID" else _check_pads(padding)
    effective = effective_kernel_size(kernel_size, dilation)
    size = _trunc_div(in_size + before + after - effective + stride, stride)
    if size < 0:
        raise ValueError(
            f"kernel_size: the effective kernel extent {effective} (kernel {kernel_size}, "
            f"dilation {dilation}) exceeds the padded input extent {in_size + before + after} "
            f"so far that the computed output size would be negative ({size})"
        )
    return size


def resolve_pads(
    in_size: int, kernel_size: int, stride: int, dilation: int, padding: str | Pads
) -> Pads:
    """Return the ``(before, after)`` zeros that ``padding`` means along one dimension.

    Examples
    --------
    >>> resolve_pads(6, 3, 2, 1, "SAME"), resolve_pads(6, 3, 2, 1, "VALID")
    ((0, 1), (0, 0))
    """
    if padding == "SAME":
        return same_pads(in_size, kernel_size, stride, dilation)
    if padding == "VALID":
        return (0, 0)
    return _check_pads(padding)


def conv_output_shape(
    input_shape: Sequence[int | None],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> tuple[int | None, int | None, int | None, int | None]:
    """Return the shape :func:`tf.nn.conv2d` gives, checking every argument.

    Parameters
    ----------
    input_shape : sequence of 4 ints or None
        In ``data_format`` order; any entry may be ``None`` (unknown).
    filter_shape : sequence of 4 ints
        ``(kernel_height, kernel_width, in_depth, out_channels)``. The input's
        channels must be a multiple of ``in_depth`` (grouped convolution with
        ``channels // in_depth`` groups), and ``out_channels`` a multiple of the
        number of groups.
    strides, padding, data_format, dilations
        As for :func:`tf.nn.conv2d`.

    Returns
    -------
    tuple of 4
        The output shape in ``data_format`` order.

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
    data_format = normalize_data_format(data_format)
    if len(input_shape) != 4:
        raise ValueError(
            f"input: expected a rank-4 shape in {data_format} order, got shape {tuple(input_shape)}"
        )
    if len(filter_shape) != 4 or any(dim is None for dim in filter_shape):
        raise ValueError(
            "filters: expected a rank-4 shape (kernel_height, kernel_width, in_depth, "
            f"out_channels), got shape {tuple(filter_shape)}"
        )
    strides4 = normalize_strides(strides, data_format)
    dilations4 = normalize_dilations(dilations, data_format)
    pad = normalize_padding(padding, data_format)
    kh, kw, in_depth, out_channels = (int(d) for d in filter_shape)
    if min(kh, kw, in_depth) <= 0 or out_channels < 0:
        raise ValueError(
            f"filters: expected positive kernel sizes and depth, got shape {tuple(filter_shape)}"
        )
    batch = input_shape[0]
    channels = input_shape[3] if data_format == "NHWC" else input_shape[1]
    # An input without channels: the reference kernel returns zeros (empty sums).
    if channels:
        if channels % in_depth:
            raise ValueError(
                f"filters: the input's {channels} channels must be a multiple of the "
                f"filter's in_depth, got in_depth {in_depth}"
            )
        groups = channels // in_depth
        if out_channels % groups:
            raise ValueError(
                f"filters: out_channels must be a multiple of the number of groups "
                f"({channels} input channels / in_depth {in_depth} = {groups}), "
                f"got {out_channels}"
            )
    heights = spatial(input_shape, data_format)
    sizes = []
    for axis, (in_size, k) in enumerate(zip(heights, (kh, kw), strict=True)):
        stride = spatial(strides4, data_format)[axis]
        dilation = spatial(dilations4, data_format)[axis]
        axis_pad = pad if isinstance(pad, str) else pad[axis]
        sizes.append(output_size(in_size, k, stride, dilation, axis_pad))
    if data_format == "NHWC":
        return (batch, sizes[0], sizes[1], out_channels)
    return (batch, out_channels, sizes[0], sizes[1])
