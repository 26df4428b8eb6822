"""The input gradient for few input channels: every tap's products at once, then scattered.

The input gradient sends each output's gradient back through every tap to the pixel
the tap read: ``dx[n, i·sh + a·dh, j·sw + b·dw] += w[a, b] · dy[n, i, j]`` (per
group). With a handful of input channels the textbook route, a convolution with
``kh·kw·out_channels`` terms and a few output channels, is a long, thin matrix
product whose column copies cost far more than its arithmetic. Here one matrix
product per block of images computes all ``kh·kw·channels`` products of every
output position (``z = W · dy``), and each tap then adds its slice of ``z`` to
the pixels it reaches: a shifted, strided add over whole image planes, kept
channel-first so that the adds run along image rows.

No zeros are multiplied (the output gradient is not spread out nor padded), so
an infinite or NaN weight meets only real gradient values, as in TensorFlow.
Each input pixel's sum runs over the taps in the filter's order, from zero; the
blocks are whole images, sized from the settings and not the thread count, so
the result does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np

from companion.arithmetic import Geometry
from companion.numpy_conv import parallel

#: ``auto``'s input gradient scatters the products when the forward input has at most
#: this many channels (and no groups): the first layer on grey or colour images, and
#: other narrow inputs.
MAX_CHANNELS = 8


def worthwhile(geometry: Geometry) -> bool:
    """Whether ``auto`` computes this geometry's input gradient by scattering products.

    Without groups, for a kernel larger than 1×1, when the forward input has
    at most :data:`MAX_CHANNELS` channels. Scattering writes and reads
    ``kh·kw·in_channels`` products per output position where the stride
    phases (:func:`~companion.numpy_conv.gradients.choose_input_gradient`)
    run a convolution whose matrix products have only ``in_channels``
    columns: the fewer input channels, the better scattering does. On the
    machine that built the book it was 2 to 4 times faster for 1 to 4
    channels, about as fast at 8, and slower from 16 on. A 1×1 kernel's gradient
    is one matrix product that reads the output gradient in place, and
    scattering would only add copies.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> worthwhile(conv_geometry((8, 28, 28, 1), (5, 5, 1, 6), 1, "VALID"))
    True
    >>> worthwhile(conv_geometry((8, 28, 28, 32), (5, 5, 32, 64), 1, "SAME"))
    False
    >>> worthwhile(conv_geometry((8, 28, 28, 16), (1, 1, 16, 64), 1, "SAME"))
    False
    """
    few = geometry.in_channels <= MAX_CHANNELS
    return geometry.groups == 1 and geometry.kernel_height * geometry.kernel_width > 1 and few


def input_gradient(dy: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The NHWC input gradient from the NHWC output gradient, by scattering each tap's products.

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> g = conv_geometry((1, 3, 3, 1), (2, 2, 1, 1), 1, "SAME")
    >>> dx = input_gradient(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)), g)
    >>> dx[0, :, :, 0]
    array([[1., 2., 2.],
           [2., 4., 4.],
           [2., 4., 4.]])
    """
    (top, _), (left, _) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    kh, kw = geometry.kernel_height, geometry.kernel_width
    groups, depth, per_group = geometry.groups, geometry.in_depth, geometry.per_group
    channels = geometry.in_channels
    batch, out_h, out_w, _ = geometry.output_shape
    padded_h, padded_w = geometry.padded_size
    taps = kh * kw
    # Row t·depth + c of group g's matrix: the weights tap t gives channel c.
    matrix = w.reshape(taps, depth, groups, per_group).transpose(2, 0, 1, 3)
    matrix = np.ascontiguousarray(matrix.reshape(groups, taps * depth, per_group))
    planes = np.zeros((channels, batch, padded_h, padded_w), dtype=dy.dtype)
    per_image = taps * channels * out_h * out_w * dy.itemsize
    images = max(1, min(batch, parallel.get_settings().block_bytes // max(per_image, 1)))
    spans = [(n, min(batch, n + images)) for n in range(0, batch, images)]

    def block(index: int) -> None:
        n0, n1 = spans[index]
        rows = (n1 - n0) * out_h * out_w
        gradient = dy[n0:n1].reshape(rows, groups, per_group).transpose(1, 2, 0)
        products = np.matmul(matrix, gradient).reshape(groups, taps, depth, n1 - n0, out_h, out_w)
        for t in range(taps):
            a, b = divmod(t, kw)
            rows_hit = slice(a * dh, a * dh + (out_h - 1) * sh + 1, sh)
            cols_hit = slice(b * dw, b * dw + (out_w - 1) * sw + 1, sw)
            target = planes[:, n0:n1, rows_hit, cols_hit]
            target += products[:, t].reshape(channels, n1 - n0, out_h, out_w)

    parallel.for_each_block(block, len(spans))
    inside = planes[:, :, top : top + geometry.in_height, left : left + geometry.in_width]
    return np.ascontiguousarray(inside.transpose(1, 2, 3, 0))
