"""Matrix products cut into slices for OpenBLAS's small-matrix kernels
(:mod:`companion.numpy_conv.products`): every row and every position is multiplied, on
any BLAS, and the slices follow the documented size."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from companion.numpy_conv import products


@pytest.fixture(params=[True, False], ids=["small kernels", "none"])
def small_kernels(request, monkeypatch):
    # The slices are cut only where the BLAS has small-matrix kernels: test both ways,
    # whatever this machine's BLAS is.
    monkeypatch.setattr(products, "has_small_kernels", lambda: request.param)
    return request.param


def integers(rng, shape):
    # Small integers: every product and sum is exact in float32, so any slicing gives the
    # same bits as one product, and a row or position left out shows.
    return rng.integers(-3, 4, shape).astype(np.float32)


def test_slices_are_the_most_rows_a_multiple_of_four_within_the_limit(small_kernels):
    for depth, columns in [(576, 64), (1152, 128), (64, 256), (144, 16), (27, 32)]:
        rows = products.rows_per_slice(depth, columns, np.float32)
        if not small_kernels:
            assert rows == 0
            continue
        assert rows % 4 == 0 and rows * depth * columns <= products.SMALL_PRODUCT
        assert (rows + 4) * depth * columns > products.SMALL_PRODUCT
    # no slice for double precision, nor where not even 4 rows fit
    assert products.rows_per_slice(576, 64, np.float64) == 0
    assert products.rows_per_slice(2304, 256, np.float32) == 0


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((1000, 576), (576, 64)),  # 41 slices of 24 rows and 16 rows left
        ((7, 3, 130, 144), (144, 16)),  # batched, as MEC's products per output row
        ((2, 96, 1152), (2, 1152, 128)),  # one filter matrix per group
        ((5, 3), (3, 2)),  # too small to cut
    ],
)
def test_matmul_multiplies_every_row_once(small_kernels, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = integers(rng, a_shape), integers(rng, b_shape)
    expected = np.matmul(a, b)
    out = np.full(expected.shape, np.nan, np.float32)
    assert products.matmul(a, b, out) is out
    np.testing.assert_array_equal(out, expected)


def test_matmul_writes_into_strided_views():
    # The strategies hand it views: a group's channels of the NHWC output (rows a
    # whole pixel apart), MEC's windows (rows a strip apart), a transposed operand.
    rng = np.random.default_rng(1)
    groups, rows, depth, width = 2, 301, 288, 32
    a = integers(rng, (rows, groups * depth))
    b = integers(rng, (groups, depth, width))
    whole = np.full((rows, groups * width), np.nan, np.float32)
    target = whole.reshape(rows, groups, width).transpose(1, 0, 2)
    grouped = a.reshape(rows, groups, depth).transpose(1, 0, 2)
    products.matmul(grouped, b, target)
    np.testing.assert_array_equal(target, np.matmul(grouped, b))
    strips = integers(rng, (rows + 2) * 16)
    windows = as_strided(strips, (rows, 48), (16 * 4, 4), writeable=False)
    filters = integers(rng, (48, 16))
    np.testing.assert_array_equal(
        products.matmul(windows, filters, np.empty((rows, 16), np.float32)), windows @ filters
    )
    transposed = integers(rng, (64, 256)).T
    np.testing.assert_array_equal(
        products.matmul(a[:, :256], transposed, np.empty((rows, 64), np.float32)),
        a[:, :256] @ transposed,
    )


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((9, 43_264), (43_264, 32)),  # MNIST's first layer: 12 slices and a rest
        ((4, 2, 25, 3_001), (4, 2, 3_001, 6)),  # images and groups of a block
        ((3, 50), (50, 4)),  # too short to cut
    ],
)
def test_summed_matmul_adds_every_position_once(small_kernels, a_shape, b_shape):
    rng = np.random.default_rng(2)
    a, b = integers(rng, a_shape), integers(rng, b_shape)
    expected = np.matmul(a, b)
    out = np.full(expected.shape, np.nan, np.float32)
    assert products.summed_matmul(a, b, out) is out
    np.testing.assert_array_equal(out, expected)
