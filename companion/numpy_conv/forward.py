"""The forward pass: :func:`conv2d`, the strategy registry, and ``auto``'s choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from companion import arguments
from companion.arithmetic import Geometry, conv_geometry
from companion.numpy_conv import blocked, depthwise, direct, mec, operands, parallel, unpadded

#: A strategy computes the NHWC output from the unpadded NHWC input and the
#: filters, both already in the computation dtype; it is called only for
#: non-empty outputs.
Strategy = Callable[[np.ndarray, np.ndarray, Geometry], np.ndarray]

#: The implementations by name; each takes ``(x_nhwc, filters, geometry)``.
STRATEGIES: dict[str, Strategy] = {
    "loops": direct.loops,
    "windows": direct.windows_einsum,
    "im2col": direct.im2col,
    "im2col_blocked": blocked.im2col_blocked,
    "taps": blocked.taps,
    "planar": blocked.planar,
    "images": blocked.images,
    "mec": mec.mec,
    "unpadded": unpadded.forward,
}

#: The values ``method`` accepts.
METHODS = ("auto", *STRATEGIES)


#: ``auto`` sends layers with one input channel, no groups and at most this many terms
#: per window (``kh·kw·depth``: kernels up to 5 × 5) to ``"images"``, and computes the
#: filter gradient of any layer without groups and with this many terms at most image
#: by image too. Measured on one thread against MEC's strips: the forward pass of
#: MNIST's 3 × 3 first layer 0.58 -> 0.39 ms, LeNet's 5 × 5 0.79 -> 0.59 ms; their
#: filter gradients 0.79 -> 0.41 and 0.75 -> 0.57 ms, CIFAR's 3 × 3 on three channels
#: 1.08 -> 0.92 ms. A 7 × 7 kernel on one channel (49 terms) lost both ways, 2.89
#: against 4.59 ms forward: its columns copy each pixel 49 times, MEC's strips 7. The
#: forward pass on three channels (27 terms) tied or lost (CIFAR's first layer 0.85
#: against 0.90 ms): its copies read every third value.
IMAGES_MAX_TERMS = 32

#: ``auto`` sends convolutions with at most this many input channels per group
#: to ``"planar"``.
PLANAR_MAX_DEPTH = 8

#: ``auto`` sends ungrouped convolutions whose filter matrix per tap
#: (``in_depth × out_channels``) holds at most this many values to ``"mec"``.
MEC_MAX_TAP = 2048


def choose_method(geometry: Geometry) -> str:
    """Return the strategy ``method="auto"`` uses for this geometry.

    Built in chapter 5.

    The rule comes from timing every strategy on the layer shapes of
    ``benchmarks/conv_speed.py`` on the machine that built the book (2 cores,
    OpenBLAS): on the shapes of each kind, the strategy named was the fastest
    or within noise of it, and the others lost clearly somewhere.

    - a padded input more than :data:`~companion.numpy_conv.unpadded.PADDING_DOMINATES`
      times the input and the output together (a large dilation under
      ``SAME``, a large explicit padding):
      ``"unpadded"``, which pads nothing, so that time and memory follow the
      taps that land on the input (:func:`~companion.numpy_conv.unpadded.worthwhile`);
    - a 1×1 kernel: ``"taps"``, which is then a single matrix product per
      group, read in place when there is no stride;
    - a depthwise convolution (one input and one output channel per group,
      :func:`~companion.numpy_conv.depthwise.is_depthwise`): ``"taps"`` too,
      whose products per tap are then elementwise and summed in one pass per
      tap (:mod:`companion.numpy_conv.depthwise`), where the other strategies
      make one matrix-vector product per channel;
    - one input channel, no groups and at most :data:`IMAGES_MAX_TERMS` terms per
      window (a first layer on grey images): ``"images"``, the transposed columns
      of a block of output rows copied along whole output rows and multiplied
      straight into the output, a product per image;
    - no groups, no dilation along the height, and a filter matrix per tap
      (``in_depth × out_channels``) of at most :data:`MEC_MAX_TAP` values:
      ``"mec"``, which copies about ``kw`` times the input instead of
      im2col's ``kh·kw`` and multiplies it in place, one product per output
      row; with more values per tap each of those many small products
      spends longer repacking the filters than the smaller copy saves;
    - at most :data:`PLANAR_MAX_DEPTH` input channels per group (a grouped
      convolution with narrow groups, a dilated first layer): ``"planar"``,
      whose column copies run along image rows instead of along the few
      channels;
    - anything else: ``"im2col_blocked"``, one large matrix product per block
      of output rows (a cache-sized column buffer, no larger than the output
      unless that would leave too few rows for an efficient product).

    Examples
    --------
    >>> choose_method(conv_geometry((8, 56, 56, 64), (1, 1, 64, 256), 1, "VALID"))
    'taps'
    >>> choose_method(conv_geometry((64, 28, 28, 1), (5, 5, 1, 32), 1, "SAME"))
    'images'
    >>> choose_method(conv_geometry((64, 32, 32, 16), (3, 3, 16, 16), 1, "SAME"))
    'mec'
    >>> choose_method(conv_geometry((8, 28, 28, 128), (3, 3, 4, 128), 1, "SAME"))
    'planar'
    >>> choose_method(conv_geometry((8, 56, 56, 32), (3, 3, 1, 32), 1, "SAME"))
    'taps'
    >>> choose_method(conv_geometry((8, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"))
    'im2col_blocked'
    >>> choose_method(conv_geometry((1, 5, 5, 1), (3, 3, 1, 1), 1, "SAME", dilations=100))
    'unpadded'
    """
    if unpadded.worthwhile(geometry):
        return "unpadded"
    if geometry.kernel_height * geometry.kernel_width == 1 or depthwise.is_depthwise(geometry):
        return "taps"
    if geometry.groups == 1 and geometry.in_depth == 1 and geometry.terms <= IMAGES_MAX_TERMS:
        return "images"
    if (
        geometry.groups == 1
        and geometry.dilations[0] == 1
        and geometry.in_depth * geometry.out_channels <= MEC_MAX_TAP
    ):
        return "mec"
    if geometry.in_depth <= PLANAR_MAX_DEPTH:
        return "planar"
    return "im2col_blocked"


def forward(x: np.ndarray, w: np.ndarray, geometry: Geometry, method: str) -> np.ndarray:
    """NHWC forward in the computation dtype, by ``method`` (or ``auto``'s choice); handles
    empty outputs."""
    if geometry.is_empty:
        return np.zeros(geometry.output_shape, dtype=x.dtype)
    name = choose_method(geometry) if method == "auto" else method
    return STRATEGIES[name](x, w, geometry)


@parallel.single_threaded_blas()
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

    Built in chapter 5.

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
    method : str, keyword-only
        One of :data:`METHODS`: ``"auto"`` (the default) or a strategy of
        :data:`STRATEGIES` (see :mod:`companion.numpy_conv`).

    Returns
    -------
    ndarray
        In ``data_format`` order, of ``input``'s dtype. Empty batches and
        kernels larger than the input under ``VALID`` give empty results, as
        in TensorFlow's Eigen kernel.

    Raises
    ------
    ValueError
        Naming the argument, the value and what was expected, wherever
        TensorFlow's Eigen kernel rejects the call.

    Notes
    -----
    Deliberate differences from :func:`tf.nn.conv2d`, where TensorFlow
    accepts what the twin refuses with a ``ValueError``:

    - an input of rank 5 or more (TensorFlow reads the leading axes as extra
      batch axes): reshape to rank 4 first;
    - float ``strides`` or ``dilations`` such as ``2.0``: integers only, as
      Keras' layers require.

    Like TensorFlow's tensors, results are in native byte order whatever the
    byte order of the operands; ``data_format=None`` means ``"NHWC"``.
    Infinities and NaNs propagate as IEEE arithmetic does in the sum above,
    the padding's zeros included (zero times an infinite weight is NaN), for
    every method.

    Results are bitwise the same whatever the number of CPUs, of the
    package's threads (:func:`~companion.numpy_conv.settings`) and of BLAS's
    threads: every block is computed the same way, blocks are added in a
    fixed order, and BLAS runs on one thread during the call (with
    threadpoolctl, which the package requires). TensorFlow promises no such
    thing on its CPU paths (chapter 6).

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
    data_format = arguments.normalize_data_format(data_format)
    method = arguments.choice(method, "method", METHODS)
    x = operands.array_argument(input, "input", f"in {data_format} order")
    operands.check_dtype(x, "input")
    w = operands.array_argument(filters, "filters", operands.FILTER_LAYOUT)
    w = operands.convert(w, x.dtype, "filters")
    geometry = conv_geometry(x.shape, w.shape, strides, padding, data_format, dilations)
    compute = operands.compute_dtype(x.dtype)
    out = forward(
        operands.to_nhwc(x, data_format).astype(compute, copy=False),
        w.astype(compute, copy=False),
        geometry,
        method,
    )
    return operands.from_nhwc(operands.finish(out, x.dtype), data_format)
