"""companion.numpy_conv's fast strategies and their machinery: blocks, stride phases, the
scratch workspace, auto's choice, the settings, determinism across CPUs and threads, and
memory that follows the taps that land on the input (the unpadded route)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from companion import numpy_conv
from companion.arithmetic import conv_geometry
from companion.numpy_conv import conv2d, conv2d_backprop_filter, conv2d_backprop_input
from tests.conv_cases import (
    METHODS,
    configs,
    integer_case,
    nonempty,
)
from tests.helpers import SETTINGS

# --------------------------------------------------------------------------
# The fast strategies: blocks, stride phases, the scratch workspace, auto's choice
# --------------------------------------------------------------------------

FAST = ("im2col_blocked", "taps", "planar", "mec", "images", "auto")


@settings(max_examples=150, **SETTINGS)
@given(
    config=configs(dtypes=("float64",), batch=(1, 3)),
    block=st.sampled_from([1, 40, 300, 5000]),
    threads=st.sampled_from([1, 2, 3]),
)
def test_fast_strategies_are_exact_across_block_boundaries(config, block, threads):
    # The generated images are small; a tiny block size makes every strategy split its
    # work into many blocks (rows of an image, several images), as large layers do, and
    # every copy is shared among `threads` threads, as large copies are.
    assume(nonempty(config))
    x, w = integer_case(config)
    y = conv2d(x, w, **config.args, method="loops")
    dy = np.random.default_rng(config.seed + 1).integers(-4, 5, y.shape).astype(np.float64)
    dx = conv2d_backprop_input(x.shape, w, dy, **config.args, method="im2col")
    dw = conv2d_backprop_filter(x, w.shape, dy, **config.args, method="im2col")
    with numpy_conv.settings(block_bytes=block, threads=threads, parallel_copy_bytes=0):
        for method in FAST:
            np.testing.assert_array_equal(conv2d(x, w, **config.args, method=method), y)
        # auto's own gradient algorithms (phases, transposed column blocks)
        np.testing.assert_array_equal(conv2d_backprop_input(x.shape, w, dy, **config.args), dx)
        np.testing.assert_array_equal(conv2d_backprop_filter(x, w.shape, dy, **config.args), dw)
        # and each gradient algorithm auto may choose, on every geometry
        geometry = conv_geometry(x.shape, w.shape, **config.args)
        x_nhwc, dy_nhwc = config.to_nhwc(x), config.to_nhwc(dy)
        for name, strategy in numpy_conv.INPUT_GRADIENT_STRATEGIES.items():
            np.testing.assert_array_equal(
                strategy(dy_nhwc, w, geometry), config.to_nhwc(dx), err_msg=name
            )
        for name, strategy in numpy_conv.FILTER_GRADIENT_STRATEGIES.items():
            np.testing.assert_array_equal(strategy(x_nhwc, dy_nhwc, geometry), dw, err_msg=name)


class _PoisonedNumpy:
    """NumPy, except that ``empty`` arrays hold NaN instead of whatever memory held."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float):
        return np.full(shape, np.nan, dtype)


@settings(max_examples=100, **SETTINGS)
@given(config=configs(dtypes=("float64",), batch=(1, 2)))
def test_input_gradient_phases_crop_to_the_input_exactly(config):
    # The stride phases compute only the pixels of the input (not the padding), straight
    # into the result; the whole padded gradient, cropped, is the same sums. The result
    # is allocated without zeros when every phase has taps: allocated full of NaN, it
    # shows any pixel that no phase then writes.
    from companion.numpy_conv import gradients

    assume(nonempty(config))
    x, w = integer_case(config)
    geometry = conv_geometry(x.shape, w.shape, **config.args)
    dy = np.random.default_rng(config.seed + 1).integers(-4, 5, geometry.output_shape)
    dy = dy.astype(np.float64)
    (top, _), (left, _) = geometry.pads
    padded_h, padded_w = geometry.padded_size
    whole = gradients._phases_over(dy, w, geometry, ((0, padded_h), (0, padded_w)))
    expected = whole[:, top : top + geometry.in_height, left : left + geometry.in_width]
    np.testing.assert_array_equal(gradients._input_gradient_phases(dy, w, geometry), expected)
    original = gradients.np
    gradients.np = _PoisonedNumpy()
    try:
        poisoned = gradients._input_gradient_phases(dy, w, geometry)
    finally:
        gradients.np = original
    np.testing.assert_array_equal(poisoned, expected)


def test_input_gradient_phases_with_padding_wider_than_the_kernel():
    # A 1x1 kernel under 3 rows of padding: a phase would need negative padding, so the
    # whole padded gradient is computed and cropped; checked against the textbook route.
    from companion.numpy_conv.gradients import _input_gradient_phases, _phases_over

    rng = np.random.default_rng(3)
    w = rng.integers(-4, 5, (1, 2, 3, 4)).astype(np.float64)
    padding = [[0, 0], [3, 2], [1, 4], [0, 0]]
    geometry = conv_geometry((2, 5, 6, 3), w.shape, 2, padding)
    dy = rng.integers(-4, 5, geometry.output_shape).astype(np.float64)
    region = ((3, 5), (1, 6))  # the input inside the padding
    assert _phases_over(dy, w, geometry, region) is None
    expected = conv2d_backprop_input((2, 5, 6, 3), w, dy, 2, padding, method="im2col")
    np.testing.assert_array_equal(_input_gradient_phases(dy, w, geometry), expected)


@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [
        ((1, 5, 6, 4), (3, 3, 4, 130)),
        ((2, 4, 4, 2), (2, 3, 2, 200)),
        ((1, 3, 3, 16), (1, 1, 16, 520)),
    ],
)
def test_a_one_block_filter_gradient_cut_by_output_channels_is_exact(x_shape, w_shape):
    # A layer small enough for one block: its filter gradient is cut into pieces of output
    # channels (NHWC and planar columns, a 1x1 kernel), the same sums on any threads.
    from companion.numpy_conv.gradients import _filter_gradient_blocked
    from companion.numpy_conv.parallel import WIDE_PIECE

    rng = np.random.default_rng(7)
    x = rng.integers(-4, 5, x_shape).astype(np.float64)
    geometry = conv_geometry(x_shape, w_shape, 1, "SAME")
    dy = rng.integers(-4, 5, geometry.output_shape).astype(np.float64)
    assert w_shape[3] >= 2 * WIDE_PIECE
    expected = conv2d_backprop_filter(x, w_shape, dy, 1, "SAME", method="im2col")
    for threads in (1, 2, 3):
        for sign in (1, -1):  # so that a piece left unwritten cannot hold the last result
            with numpy_conv.settings(threads=threads):
                result = _filter_gradient_blocked(x, sign * dy, geometry)
            np.testing.assert_array_equal(result, sign * expected)


@pytest.mark.parametrize(("x_shape", "strides"), [((1, 6, 7, 16), 1), ((2, 9, 9, 8), 2)])
def test_a_one_by_one_product_with_few_positions_is_cut_by_output_channels(x_shape, strides):
    # A 1x1 kernel at batch 1 is one product with few rows: taps cuts its output channels
    # into pieces (at least WIDE_PIECE each), the same sums on any number of threads.
    from companion.numpy_conv import blocked, parallel

    rng = np.random.default_rng(12)
    x = rng.integers(-4, 5, x_shape).astype(np.float64)
    w = rng.integers(-4, 5, (1, 1, x_shape[3], 3 * parallel.WIDE_PIECE + 5)).astype(np.float64)
    geometry = conv_geometry(x.shape, w.shape, strides, "VALID")
    positions = geometry.batch * geometry.out_height * geometry.out_width
    assert positions < blocked.FEW_POSITIONS and len(parallel.channel_pieces(w.shape[3])) == 3
    expected = conv2d(x, w, strides, "VALID", method="loops")
    for threads in (1, 2, 3):
        for sign in (1, -1):  # so that a piece left unwritten cannot hold the last result
            with numpy_conv.settings(threads=threads):
                result = conv2d(x, sign * w, strides, "VALID", method="taps")
            np.testing.assert_array_equal(result, sign * expected)


def test_auto_follows_its_documented_rule():
    shapes = {
        # a 1x1 kernel, or depthwise (one input and one output channel per group)
        "taps": [
            ((2, 9, 9, 16), (1, 1, 16, 8), 2),
            ((1, 5, 5, 64), (1, 1, 16, 8), 1),
            ((2, 9, 9, 12), (3, 3, 1, 12), 2),
        ],
        # one input channel, no groups, at most IMAGES_MAX_TERMS terms per window
        "images": [((2, 9, 9, 1), (5, 5, 1, 8), 1), ((2, 9, 9, 1), (4, 8, 1, 64), 2, (2, 1))],
        # ungrouped, a tap's filter matrix of at most MEC_MAX_TAP values
        "mec": [
            ((2, 9, 9, 1), (5, 7, 1, 8), 1),
            ((2, 9, 9, 2), (3, 3, 2, 8), 1),
            ((2, 9, 9, 32), (3, 3, 32, 64), 2),
        ],
        # few channels per group (a depthwise multiplier of 2), or a dilation along the height
        "planar": [
            ((2, 9, 9, 64), (3, 3, 8, 64), 2),
            ((2, 9, 9, 3), (3, 3, 3, 8), 1, (2, 1)),
            ((2, 9, 9, 12), (3, 3, 1, 24), 1),
        ],
        "im2col_blocked": [((2, 9, 9, 32), (3, 3, 32, 65), 1), ((1, 9, 9, 64), (3, 1, 32, 8), 1)],
    }
    for expected, cases in shapes.items():
        for x_shape, w_shape, stride, *dilations in cases:
            geometry = conv_geometry(
                x_shape, w_shape, stride, "SAME", dilations=dilations[0] if dilations else 1
            )
            assert numpy_conv.choose_method(geometry) == expected, (x_shape, w_shape)
    assert numpy_conv.MEC_MAX_TAP == 32 * 64 and numpy_conv.IMAGES_MAX_TERMS == 32
    assert {"im2col_blocked", "taps", "planar", "mec", "images"} <= set(numpy_conv.STRATEGIES)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_mec_blocks_of_columns_are_exact(padding):
    # An image wider than MIN_COLUMNS output columns, with blocks too small for one image:
    # MEC cuts each image's strips into blocks of columns, forward and filter gradient.
    from companion.numpy_conv import mec

    rng = np.random.default_rng(8)
    x = rng.integers(-4, 5, (2, 6, 3 * mec.MIN_COLUMNS + 5, 3)).astype(np.float64)
    w = rng.integers(-4, 5, (3, 3, 3, 5)).astype(np.float64)
    geometry = conv_geometry(x.shape, w.shape, (2, 1), padding)
    dy = rng.integers(-4, 5, geometry.output_shape).astype(np.float64)
    y = conv2d(x, w, (2, 1), padding, method="loops")
    dw = conv2d_backprop_filter(x, w.shape, dy, (2, 1), padding, method="im2col")
    for threads in (1, 2, 3):
        with numpy_conv.settings(block_bytes=1, threads=threads):
            spans, _ = mec._blocks(x, geometry)
            # 101 columns hold 3 blocks of MIN_COLUMNS, rounded up to an even 4
            assert (
                len(spans) == 2 * 4
                and min(j1 - j0 for *_, j0, j1 in spans) >= 3 * mec.MIN_COLUMNS // 4
            )
            np.testing.assert_array_equal(mec.mec(x, w, geometry), y)
            np.testing.assert_array_equal(mec.filter_gradient(x, dy, geometry), dw)


@pytest.mark.parametrize("kernel", [(3, 3), (1, 1)])
def test_depthwise_sums_of_negative_zeros_are_positive_zeros(kernel):
    # taps multiplies a depthwise layer elementwise and sums the products from +0, as the
    # loops and BLAS's products do, so zero inputs times negative weights give +0, not -0.
    x = np.zeros((1, 4, 5, 3), np.float32)
    x[0, 0, 0] = 2.0
    w = -np.ones((*kernel, 1, 3), np.float32)
    expected = conv2d(x, w, 1, "SAME", method="loops")
    assert (expected == 0).any() and not np.signbit(expected[expected == 0]).any()
    for method in FAST:
        assert conv2d(x, w, 1, "SAME", method=method).tobytes() == expected.tobytes(), method


@pytest.mark.parametrize(
    ("x_shape", "kernel", "strides", "padding", "dilations"),
    [
        ((2, 7, 9, 5), (3, 3), 1, "SAME", 1),
        ((3, 9, 8, 4), (3, 3), 2, "SAME", 1),
        ((2, 11, 10, 3), (3, 2), (2, 1), "VALID", (1, 2)),
        ((1, 8, 9, 6), (2, 3), 3, [[0, 0], [2, 1], [0, 3], [0, 0]], 1),
        ((2, 6, 7, 4), (1, 1), 2, "SAME", 1),
        # columns not in whole groups of the stride, a row phase no tap reaches, and
        # column shifts (0, 1, 3) with a gap
        ((2, 9, 11, 3), (3, 3), 2, [[0, 0], [1, 2], [1, 0], [0, 0]], (2, 3)),
    ],
)
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_depthwise_layers_are_exact_in_any_blocks_on_any_threads(
    x_shape, kernel, strides, padding, dilations, data_format
):
    # One input and one output channel per group: each stride phase's taps are summed by
    # one einsum along whole output rows, the input gradient's row phases along whole rows
    # of the result, and the filter gradient sums the same rows tap by tap; in blocks of
    # one row up to whole images.
    from companion.numpy_conv import depthwise

    rng = np.random.default_rng(11)
    channels = x_shape[3]
    x = rng.integers(-4, 5, x_shape).astype(np.float64)
    w = rng.integers(-4, 5, (*kernel, 1, channels)).astype(np.float64)
    if data_format == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        padding = padding if isinstance(padding, str) else [padding[i] for i in (0, 3, 1, 2)]
    args = (strides, padding, data_format, dilations)
    geometry = conv_geometry(x.shape, w.shape, *args)
    assert depthwise.is_depthwise(geometry)
    y = conv2d(x, w, *args, method="loops")
    dy = rng.integers(-4, 5, y.shape).astype(np.float64)
    dx = conv2d_backprop_input(x.shape, w, dy, *args, method="loops")
    dw = conv2d_backprop_filter(x, w.shape, dy, *args, method="loops")
    for block, threads in ((1, 1), (1, 3), (200, 2), (10**6, 2)):
        with numpy_conv.settings(block_bytes=block, threads=threads, parallel_copy_bytes=0):
            np.testing.assert_array_equal(conv2d(x, w, *args, method="taps"), y)
            np.testing.assert_array_equal(conv2d(x, w, *args), y)
            np.testing.assert_array_equal(conv2d_backprop_input(x.shape, w, dy, *args), dx)
            np.testing.assert_array_equal(conv2d_backprop_filter(x, w.shape, dy, *args), dw)


def test_a_depthwise_input_gradient_keeps_infinities_where_a_weight_is_zero_nowhere():
    # At stride 2 a 3-wide depthwise filter leaves one (shift, column phase) of the
    # input gradient's row sums without a tap: a weight of zero there, which would make
    # an infinite output gradient NaN. Such a gradient takes the per-phase route.
    from companion.numpy_conv import depthwise

    rng = np.random.default_rng(12)
    x_shape, w = (1, 8, 8, 2), rng.integers(1, 4, (3, 3, 1, 2)).astype(np.float32)
    assert depthwise.has_zero_weights(conv_geometry(x_shape, w.shape, 2, "SAME"))
    dy = rng.integers(-3, 4, (1, 4, 4, 2)).astype(np.float32)
    dy[0, 1, 2, 0], dy[0, 3, 0, 1] = np.inf, -np.inf
    expected = conv2d_backprop_input(x_shape, w, dy, 2, "SAME", method="loops")
    assert np.isinf(expected).any() and not np.isnan(expected).any()
    np.testing.assert_array_equal(conv2d_backprop_input(x_shape, w, dy, 2, "SAME"), expected)


def test_mec_writes_into_a_strided_view_of_the_output():
    # The input gradient's stride phases hand MEC every other pixel of the gradient.
    from companion.numpy_conv import mec

    rng = np.random.default_rng(9)
    x = rng.integers(-4, 5, (2, 7, 9, 3)).astype(np.float64)
    w = rng.integers(-4, 5, (3, 2, 3, 4)).astype(np.float64)
    geometry = conv_geometry(x.shape, w.shape, 1, "SAME")
    whole = np.full((2, 14, 18, 4), np.nan)
    for threads in (1, 2):
        with numpy_conv.settings(block_bytes=1, threads=threads):
            result = mec.mec(x, w, geometry, out=whole[:, 1::2, ::2])
        assert np.shares_memory(result, whole)
        np.testing.assert_array_equal(whole[:, 1::2, ::2], conv2d(x, w, 1, "SAME", method="loops"))
        assert np.isnan(whole[:, ::2]).all() and np.isnan(whole[:, :, 1::2]).all()
    with pytest.raises(ValueError, match="out: expected a view of shape"):
        mec.mec(x, w, geometry, out=np.empty((2, 7, 9, 8))[..., ::2])


def test_the_filter_gradient_follows_its_documented_rule():
    from companion.numpy_conv.gradients import IMAGES_MAX_TERMS, MEC_GRADIENT_MAX_CHANNELS

    limit = MEC_GRADIENT_MAX_CHANNELS
    terms = IMAGES_MAX_TERMS
    cases = {
        # no groups and at most IMAGES_MAX_TERMS terms per window, whatever the outputs
        "images": [
            ((2, 9, 9, 1), (5, 5, 1, limit)),
            ((2, 9, 9, terms // 16), (4, 4, terms // 16, 64)),
        ],
        # MEC's strips forward and at most MEC_GRADIENT_MAX_CHANNELS outputs
        "mec": [((2, 9, 9, 2), (5, 5, 2, limit)), ((2, 9, 9, 16), (3, 3, 16, 16))],
        # MEC forward but more outputs; im2col, planar or depthwise forward
        "blocked": [
            ((2, 9, 9, 4), (3, 3, 4, limit + 1)),
            ((2, 9, 9, 64), (3, 3, 64, 64)),
            ((2, 9, 9, 12), (3, 3, 1, 12)),
        ],
        # a padding that dominates
        "unpadded": [((1, 3, 3, 1), (3, 3, 1, 1))],
    }
    for expected, shapes in cases.items():
        for x_shape, w_shape in shapes:
            dilations = 50 if expected == "unpadded" else 1
            geometry = conv_geometry(x_shape, w_shape, 1, "SAME", dilations=dilations)
            assert numpy_conv.choose_filter_gradient(geometry) == expected, (x_shape, w_shape)


def test_block_sums_are_added_in_an_order_fixed_by_the_block_count():
    from companion.numpy_conv import parallel

    # Terms of very different sizes: a different order of the additions changes the bits.
    terms = np.random.default_rng(4).standard_normal(37) * 10.0 ** np.arange(-18, 19)
    lanes = [terms[lane :: parallel.MIN_BLOCKS].sum() for lane in range(parallel.MIN_BLOCKS)]
    expected = np.cumsum(lanes)[-1]  # lane by lane, each lane in block order
    for threads in (1, 2, 3, 8):
        with numpy_conv.settings(threads=threads):
            total = parallel.sum_blocks(
                lambda b, out: out.fill(terms[b]), len(terms), (1,), np.float64
            )
        assert total[0] == expected, threads


@pytest.mark.parametrize("method", METHODS)
def test_results_never_share_the_scratch_buffers(method):
    # Strategies reuse scratch buffers from call to call: a result must never be one.
    rng = np.random.default_rng(11)
    x1, w1 = rng.standard_normal((2, 9, 7, 4)), rng.standard_normal((3, 3, 2, 6))
    x2, w2 = rng.standard_normal((3, 11, 12, 4)), rng.standard_normal((2, 4, 4, 5))
    y1 = conv2d(x1, w1, 2, "SAME", method=method)
    dy1 = rng.standard_normal(y1.shape)
    dx1 = conv2d_backprop_input(x1.shape, w1, dy1, 2, "SAME", method=method)
    dw1 = conv2d_backprop_filter(x1, w1.shape, dy1, 2, "SAME", method=method)
    kept = [a.copy() for a in (y1, dx1, dw1)]
    y2 = conv2d(x2, w2, 1, "VALID", method=method)
    conv2d_backprop_input(x2.shape, w2, np.ones_like(y2), 1, "VALID", method=method)
    conv2d_backprop_filter(x2, w2.shape, np.ones_like(y2), 1, "VALID", method=method)
    for before, after in zip(kept, (y1, dx1, dw1), strict=True):
        np.testing.assert_array_equal(before, after)


def blas_threads() -> list[int]:
    """The thread counts of NumPy's BLAS libraries, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_threads_keep_their_own_scratch():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    jobs = [
        (rng.integers(-3, 4, (2, 16, 16, c)).astype(np.float64), rng.integers(-3, 4, (k, k, c, 8)))
        for c, k in [(1, 5), (3, 3), (16, 3), (4, 1), (2, 7), (32, 3)] * 3
    ]
    expected = [conv2d(x, w.astype(np.float64), 1, "SAME", method="im2col") for x, w in jobs]
    blas = blas_threads()
    with numpy_conv.settings(parallel_copy_bytes=0, block_bytes=2000):  # many blocks and copies
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda job: conv2d(job[0], job[1], 1, "SAME"), jobs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # BLAS is held to one thread while blocks run in parallel, then restored.
    assert blas_threads() == blas


def test_requests_beyond_the_workspace_get_fresh_arrays():
    rng = np.random.default_rng(13)
    x, w = rng.integers(-3, 4, (2, 12, 12, 3)).astype(np.float64), rng.integers(-3, 4, (3, 3, 3, 4))
    expected = conv2d(x, w, 2, "SAME", method="loops")
    with numpy_conv.settings(workspace_bytes=0):
        for method in FAST:
            np.testing.assert_array_equal(conv2d(x, w, 2, "SAME", method=method), expected)


# --------------------------------------------------------------------------
# Determinism: the same bits whatever the number of CPUs, threads or BLAS threads
# --------------------------------------------------------------------------

# One shape for each route auto takes (planar, im2col_blocked, taps, unpadded), strided,
# grouped and dilated ones among them, large enough to be cut into many blocks, and a
# small one whose filter gradient is cut by output channels instead.
DETERMINISM_CASES = [
    ((4, 57, 57, 3), (7, 7, 3, 16), 2, "SAME", None),
    ((3, 30, 30, 32), (3, 3, 32, 48), 1, "SAME", None),
    ((2, 32, 32, 32), (3, 3, 8, 64), 2, "SAME", 2),
    ((2, 30, 30, 64), (1, 1, 64, 32), 2, "VALID", None),
    ((1, 6, 6, 2), (3, 3, 2, 4), 1, "SAME", 500),
    ((1, 7, 7, 32), (3, 3, 32, 160), 1, "SAME", None),  # one block, cut by output channels
    ((4, 64, 64, 32), (3, 3, 1, 32), 1, "SAME", None),  # depthwise, in blocks of rows
    ((2, 48, 48, 16), (5, 5, 1, 16), 2, "SAME", None),  # depthwise, four stride phases
]

DIGEST = """
import hashlib
import numpy as np
from companion import numpy_conv


def digest(cases, methods):
    h = hashlib.sha256()
    for n, (x_shape, w_shape, stride, padding, dilations) in enumerate(cases):
        rng = np.random.default_rng(n)
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        args = (stride, padding, "NHWC", dilations)
        for method in methods:
            y = numpy_conv.conv2d(x, w, *args, method=method)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            dx = numpy_conv.conv2d_backprop_input(x.shape, w, dy, *args, method=method)
            dw = numpy_conv.conv2d_backprop_filter(x, w.shape, dy, *args, method=method)
            for array in (y, dx, dw):
                h.update(array.tobytes())
    return h.hexdigest()
"""


def digest(methods=("auto",)) -> str:
    namespace: dict = {}
    exec(DIGEST, namespace)
    return namespace["digest"](DETERMINISM_CASES, methods)


def test_results_do_not_depend_on_threads_or_blas_threads():
    from threadpoolctl import threadpool_limits

    fast = ("auto", "im2col_blocked", "taps", "planar", "mec")
    with numpy_conv.settings(threads=1):
        expected = digest(fast)
    for threads in (2, 3, 8, None):
        with numpy_conv.settings(threads=threads):
            assert digest(fast) == expected, f"threads={threads}"
    with threadpool_limits(1, user_api="blas"):
        assert digest(fast) == expected, "BLAS on one thread"


def test_results_do_not_depend_on_the_number_of_cpus():
    import json

    from companion.runtime import run_python

    # A child process that may use one CPU only (set before NumPy loads its BLAS).
    code = (
        "import os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        + DIGEST
        + f"\nimport json\nprint(json.dumps(digest({DETERMINISM_CASES!r}, ('auto',))))\n"
    )
    if not hasattr(__import__("os"), "sched_setaffinity"):
        pytest.skip("this platform cannot restrict a process to one CPU")
    child = run_python(code)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == digest()


# --------------------------------------------------------------------------
# Memory follows the taps that land on the input, not the padding around it
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "strides", "padding", "dilations"),
    [
        ((1, 5, 5, 1), (3, 3, 1, 2), 1, "SAME", 20_000),
        ((2, 5, 4, 3), (3, 2, 3, 4), 2, [[0, 0], [100_000, 100_000], [3, 3], [0, 0]], 1),
        ((1, 6, 6, 2), (2, 2, 2, 2), (1, 3), [[0, 0], [7, 50_000], [0, 0], [0, 0]], (9000, 1)),
    ],
)
def test_huge_padding_costs_what_the_output_costs(x_shape, w_shape, strides, padding, dilations):
    from companion.timing import peak_memory

    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, x_shape).astype(np.float64)
    w = rng.integers(-3, 4, w_shape).astype(np.float64)
    args = (strides, padding, "NHWC", dilations)
    y = conv2d(x, w, *args)
    dy = rng.integers(-3, 4, y.shape).astype(np.float64)
    budget = 8 * (x.size + 2 * y.size + 2 * w.size) + (1 << 20)  # + 1 MiB of small temporaries
    for name, call in {
        "forward": lambda: conv2d(x, w, *args),
        "input gradient": lambda: conv2d_backprop_input(x.shape, w, dy, *args),
        "filter gradient": lambda: conv2d_backprop_filter(x, w.shape, dy, *args),
    }.items():
        assert peak_memory(call) < budget, name
    # Small integers: every sum is exact. The forward pass against a gather that masks
    # the taps falling outside the input (no padding), the gradients by the adjoint identity
    # <conv(x, w), dy> = <x, dx> = <w, dw>.
    geometry = conv_geometry(x.shape, w.shape, *args)
    (top, _), (left, _) = geometry.pads
    (sh, sw), (dh, dw_) = geometry.strides, geometry.dilations
    expected = np.zeros(y.shape)
    rows, cols = np.arange(geometry.out_height), np.arange(geometry.out_width)
    for a in range(w.shape[0]):
        r = rows * sh + a * dh - top
        r_ok = (r >= 0) & (r < x.shape[1])
        for b in range(w.shape[1]):
            c = cols * sw + b * dw_ - left
            c_ok = (c >= 0) & (c < x.shape[2])
            patch = x[:, r[r_ok]][:, :, c[c_ok]]
            expected[:, np.flatnonzero(r_ok)[:, None], np.flatnonzero(c_ok)] += patch @ w[a, b]
    np.testing.assert_array_equal(y, expected)
    dx = conv2d_backprop_input(x.shape, w, dy, *args)
    dw = conv2d_backprop_filter(x, w.shape, dy, *args)
    assert np.sum(y * dy) == np.sum(x * dx) == np.sum(w * dw)


def test_settings_blocks_may_overlap_across_threads():
    import threading

    entered, release = threading.Barrier(2), threading.Event()

    def hold(**changes):
        with numpy_conv.settings(**changes):
            entered.wait()
            release.wait()

    first = threading.Thread(target=hold, kwargs={"threads": 1})
    first.start()
    with numpy_conv.settings(block_bytes=4096):
        entered.wait()
        # Both blocks in force, the later winning where they overlap.
        assert numpy_conv.get_settings() == numpy_conv.Settings(threads=1, block_bytes=4096)
    assert numpy_conv.get_settings() == numpy_conv.Settings(threads=1)  # the other's stays
    release.set()
    first.join()
    assert numpy_conv.get_settings() == numpy_conv.Settings()
