"""The teaching strategies of chapter 5: Python loops, the stacked window view, im2col.

Each computes the NHWC output from the unpadded NHWC input and the filters,
both already in the computation dtype, given a
:class:`~companion.arithmetic.Geometry`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from companion.arithmetic import Geometry


def pad(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``x`` with the geometry's zeros around it (``x`` itself when there are none)."""
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def windows(x: np.ndarray, geometry: Geometry, padded: np.ndarray | None = None) -> np.ndarray:
    """All windows as a view: ``(batch, out_h, out_w, channels, kh, kw)``.

    ``padded``, if given, is ``x`` already padded
    (see :func:`companion.numpy_conv.blocked.pad_scratch`).
    """
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded = pad(x, geometry) if padded is None else padded
    view = sliding_window_view(padded, (eh, ew), axis=(1, 2))
    view = view[:, ::sh, ::sw, :, ::dh, ::dw]
    return view[:, : geometry.out_height, : geometry.out_width]


def loops(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One output position at a time, as the seed's triple loop."""
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    cin, cout = geometry.in_depth, geometry.per_group
    padded = pad(x, geometry)
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


def windows_einsum(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The stacked form: contract the view of all windows with the filters."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    filters = w.reshape(kh, kw, cin, g, geometry.per_group)
    out = np.einsum("nhwgcij,ijcgk->nhwgk", view, filters, optimize=True)
    return out.reshape(geometry.output_shape)


def im2col(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Copy the windows into a matrix, one row per output position; one GEMM per group."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    # (groups, positions, kh·kw·cin), in the filter's (kh, kw, cin) order.
    columns = view.transpose(3, 0, 1, 2, 5, 6, 4).reshape(g, n * ho * wo, kh * kw * cin)
    matrix = w.reshape(kh * kw * cin, g, geometry.per_group).transpose(1, 0, 2)
    out = np.matmul(columns, matrix)  # (groups, positions, out per group)
    return out.transpose(1, 0, 2).reshape(geometry.output_shape)
