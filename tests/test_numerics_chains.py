"""numerics.fma_conv2d: one chain of fused multiply-adds per output, in the filter's order."""

from __future__ import annotations

import numpy as np
import pytest

from companion import arithmetic, numerics, numpy_conv

CASES = [  # input shape (NHWC), filter shape, arguments
    ((2, 7, 6, 3), (3, 3, 3, 4), {"strides": 1, "padding": "SAME"}),
    ((1, 9, 8, 4), (2, 3, 2, 6), {"strides": [2, 1], "padding": "VALID", "dilations": [1, 2]}),
    ((1, 6, 7, 2), (3, 2, 2, 3), {"strides": 2, "padding": [[0, 0], [2, 0], [1, 3], [0, 0]]}),
]


def chain_by_loops(x, w, strides, padding, dilations=None):
    """Each output's taps in (kh, kw, cin) order, added one fused multiply-add at a time."""
    geometry = arithmetic.conv_geometry(x.shape, w.shape, strides, padding, dilations=dilations)
    (top, bottom), (left, right) = geometry.pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    cin, per_group = geometry.in_depth, geometry.per_group
    out = np.zeros(geometry.output_shape, x.dtype)
    for n, i, j, k in np.ndindex(*geometry.output_shape):
        g = k // per_group
        taps = padded[n, i * sh :: dh, j * sw :: dw, g * cin : (g + 1) * cin][
            : w.shape[0], : w.shape[1]
        ]
        out[n, i, j, k] = numerics.fma_dot(taps.ravel(), w[:, :, :, k].ravel())
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize(("x_shape", "w_shape", "args"), CASES)
def test_every_output_is_the_chain_in_the_filters_order(x_shape, w_shape, args, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    expected = chain_by_loops(x, w, **args)
    assert np.array_equal(numerics.fma_conv2d(x, w, **args), expected)
    nchw = {**args, "data_format": "NCHW"}
    if "strides" in args and not isinstance(args["strides"], int):
        nchw["strides"] = [1, 1, *args["strides"]]
    if "dilations" in args:
        nchw["dilations"] = [1, 1, *args["dilations"]]
    if not isinstance(args["padding"], str):
        p = args["padding"]
        nchw["padding"] = [p[0], p[3], p[1], p[2]]
    by_nchw = numerics.fma_conv2d(x.transpose(0, 3, 1, 2), w, **nchw)
    assert np.array_equal(by_nchw, expected.transpose(0, 3, 1, 2))


def test_it_is_a_correct_float32_result_and_differs_from_rounding_products_first():
    rng = np.random.default_rng(8)
    x = rng.random((1, 16, 16, 8), dtype=np.float32)
    w = rng.standard_normal((3, 3, 8, 4)).astype(np.float32)
    chain = numerics.fma_conv2d(x, w, 1, "SAME")
    reference = numpy_conv.conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME")
    bound = numerics.conv_error_bound(x, w, 1, "SAME") + numerics.conv_error_bound(
        x.astype(np.float64), w.astype(np.float64), 1, "SAME"
    )
    assert numerics.assert_conv_close(chain, reference, bound) <= 1
    assert not np.array_equal(chain, numpy_conv.conv2d(x, w, 1, "SAME", method="loops"))


def test_grouped_filters_read_their_own_channels():
    x = np.zeros((1, 3, 3, 4), np.float32)
    x[..., 2:] = 1  # only the second group's channels are non-zero
    w = np.ones((1, 1, 2, 4), np.float32)  # two groups of two channels, two filters each
    out = numerics.fma_conv2d(x, w, 1, "VALID")
    assert out[..., :2].max() == 0 and np.all(out[..., 2:] == 2)


def test_empty_output_and_bad_input():
    empty = numerics.fma_conv2d(
        np.ones((1, 2, 2, 1), np.float32), np.ones((3, 3, 1, 1)), 1, "VALID"
    )
    assert empty.shape == (1, 0, 0, 1) and empty.dtype == np.float32
    with pytest.raises(ValueError, match=r"^input: expected float16, bfloat16 or float32"):
        numerics.fma_conv2d(np.ones((1, 3, 3, 1)), np.ones((3, 3, 1, 1)), 1, "SAME")
    with pytest.raises(ValueError, match=r"^padding"):
        numerics.fma_conv2d(np.ones((1, 3, 3, 1), np.float32), np.ones((3, 3, 1, 1)), 1, "same")
