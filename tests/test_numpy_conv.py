"""companion.numpy_conv's forward pass against TensorFlow: the Eigen kernels, the
default path for NCHW, exact integer cases, dtypes and the errors.

TensorFlow runs in two long-lived child processes (tests/tf_worker.py, fixtures in
tests/conftest.py). Every floating-point comparison goes through ``companion.numerics``:
each result is compared with a float64 reference within its rounding-error bound, plus the
reference's own bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, event, given, settings

from companion import numpy_conv
from companion.arithmetic import conv_geometry
from companion.numerics import assert_conv_close, conv_error_bound
from companion.numpy_conv import conv2d, conv2d_backprop_filter, conv2d_backprop_input
from tests.conv_cases import (
    METHODS,
    accumulation,
    configs,
    dtype_of,
    nonempty,
)
from tests.helpers import SETTINGS

# --------------------------------------------------------------------------
# Forward: tf.nn.conv2d on the Eigen kernels
# --------------------------------------------------------------------------


@settings(max_examples=200, **SETTINGS)
@given(config=configs())
def test_conv2d_matches_the_eigen_kernel(eigen, config):
    x, w = config.arrays(config.input_shape, config.filter_shape)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    # The Eigen kernels have no NCHW forward on the CPU: they get the NHWC equivalent.
    tf_out, tf_64 = eigen.call(
        [
            ("conv2d", {"input": config.to_nhwc(x), "filters": w, **config.nhwc_args}),
            ("conv2d", {"input": config.to_nhwc(x64), "filters": w64, **config.nhwc_args}),
        ]
    )
    assert tf_out[0] == tf_64[0]
    event(f"{config.dtype}, TensorFlow {'rejects' if tf_out[0] == 'error' else 'accepts'}")
    if tf_out[0] == "error":
        for method in METHODS:
            with pytest.raises(ValueError):
                conv2d(x, w, **config.args, method=method)
        return
    expected, desired = config.from_nhwc(tf_out[1]), config.from_nhwc(tf_64[1])
    ours = {method: conv2d(x, w, **config.args, method=method) for method in METHODS}
    for out in ours.values():
        assert (out.shape, out.dtype) == (expected.shape, expected.dtype)
    if config.data_format == "NCHW":  # the same computation on transposed data: bitwise equal
        nhwc = conv2d(config.to_nhwc(x), w, **config.nhwc_args, method="im2col")
        np.testing.assert_array_equal(ours["im2col"], config.from_nhwc(nhwc))
    if config.dtype == "int32":  # exact modulo 2**32, as TensorFlow
        for out in ours.values():
            np.testing.assert_array_equal(out, expected)
        return
    reference_error = conv_error_bound(x64, w64, **config.args)
    ours_bound = conv_error_bound(x, w, **config.args, accumulate_dtype=accumulation(config.dtype))
    for out in ours.values():
        assert_conv_close(out, desired, ours_bound + reference_error)
    # TensorFlow's own result honours the bound of an evaluation in its storage format.
    assert_conv_close(expected, desired, conv_error_bound(x, w, **config.args) + reference_error)


@settings(max_examples=50, **SETTINGS)
@given(config=configs(formats=("NCHW",), dtypes=("float32",), batch=(1, 3)))
def test_conv2d_nchw_matches_the_default_path(default, config):
    # Only the default (oneDNN) path has an NCHW forward on the CPU; it returns wrongly
    # shaped results for empty outputs, which the reference-kernel test covers.
    assume(nonempty(config))
    # TensorFlow 2.21's oneDNN float32 forward returns zeros or garbage for some batches of
    # two or more with strides (1, s > 1) and an output one column wide, in NHWC as well
    # as NCHW (the Eigen kernels are right): leave that corner to the Eigen test.
    geometry = conv_geometry(config.input_shape, config.filter_shape, **config.args)
    sh, sw = geometry.strides
    assume(not (config.batch > 1 and sh == 1 and sw > 1 and geometry.out_width == 1))
    x, w = config.arrays(config.input_shape, config.filter_shape)
    [tf_out] = default.call([("conv2d", {"input": x, "filters": w, **config.args})])
    assert tf_out[0] == "ok", tf_out
    # The float64 reference is ours, checked against TensorFlow's in the test above.
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    desired = conv2d(x64, w64, **config.args)
    bound = conv_error_bound(x, w, **config.args)
    reference_error = conv_error_bound(x64, w64, **config.args)
    assert_conv_close(tf_out[1], desired, bound + reference_error)
    assert_conv_close(conv2d(x, w, **config.args), desired, bound + reference_error)


# --------------------------------------------------------------------------
# Hand-checked cases with exact integer results: the padding and stride semantics
# --------------------------------------------------------------------------

ONE_TO_NINE = np.arange(1, 10).reshape(1, 3, 3, 1)
ONE_TO_SIXTEEN = np.arange(1, 17).reshape(1, 4, 4, 1)


def plane(rows) -> np.ndarray:
    return np.array(rows).reshape(1, len(rows), len(rows[0]), 1)


# (name, input, filters, conv2d arguments, expected), every expected value worked out by hand.
HAND_CASES = [
    (
        # SAME with a 2x2 kernel: one zero row and column, at the bottom and right.
        "same-even-kernel",
        ONE_TO_NINE,
        np.ones((2, 2, 1, 1)),
        {"strides": 1, "padding": "SAME"},
        plane([[12, 16, 9], [24, 28, 15], [15, 17, 9]]),
    ),
    (
        # SAME with stride 2 on an even input: pads (0, 1), windows start at rows 0 and 2.
        "same-stride-2",
        ONE_TO_SIXTEEN,
        np.ones((3, 3, 1, 1)),
        {"strides": 2, "padding": "SAME"},
        plane([[54, 45], [72, 54]]),
    ),
    (
        # A cross-correlation: the filter is not flipped.
        "not-flipped",
        ONE_TO_NINE,
        np.array([[1, 10], [100, 1000]]).reshape(2, 2, 1, 1),
        {"strides": 1, "padding": "VALID"},
        plane([[5421, 6532], [8754, 9865]]),
    ),
    (
        # Dilation 2: the 2x2 kernel reads the four corners.
        "dilated",
        ONE_TO_NINE,
        np.ones((2, 2, 1, 1)),
        {"strides": 1, "padding": "VALID", "dilations": 2},
        plane([[20]]),
    ),
    (
        # Explicit padding: one row on top, two columns on the right.
        "explicit",
        plane([[1, 2], [3, 4]]),
        np.ones((1, 1, 1, 1)),
        {"strides": 1, "padding": [[0, 0], [1, 0], [0, 2], [0, 0]]},
        plane([[0, 0, 0, 0], [1, 2, 0, 0], [3, 4, 0, 0]]),
    ),
    (
        # Strides (2, 1) given as two elements: height first.
        "strides-height-width",
        ONE_TO_NINE,
        np.ones((1, 2, 1, 1)),
        {"strides": [2, 1], "padding": "VALID"},
        plane([[3, 5], [15, 17]]),
    ),
    (
        # Groups: two channels, a 1-deep filter with two outputs, one per channel.
        "grouped",
        np.stack([ONE_TO_NINE[..., 0], 10 * ONE_TO_NINE[..., 0]], axis=-1),
        np.array([2, 3]).reshape(1, 1, 1, 2),
        {"strides": 1, "padding": "VALID"},
        np.stack([2 * ONE_TO_NINE[..., 0], 30 * ONE_TO_NINE[..., 0]], axis=-1),
    ),
    (
        # A kernel larger than the input under VALID: an empty result, as the Eigen kernel.
        "larger-kernel",
        plane([[1, 2], [3, 4]]),
        np.ones((3, 3, 1, 1)),
        {"strides": 1, "padding": "VALID"},
        np.zeros((1, 0, 0, 1)),
    ),
    (
        # Truncating division: (2 - 5 + 2) / 2 = -0.5 truncates to 0, not -1: empty, no error.
        "truncated-to-empty",
        plane([[1, 2], [3, 4]]),
        np.ones((5, 5, 1, 1)),
        {"strides": 2, "padding": "VALID"},
        np.zeros((1, 0, 0, 1)),
    ),
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("name", "x", "w", "args", "expected"), HAND_CASES, ids=[c[0] for c in HAND_CASES]
)
def test_hand_checked_cases(name, x, w, args, expected, method, dtype):
    out = conv2d(x.astype(dtype), w, **args, method=method)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, expected)
    # NCHW: the same numbers, transposed, with the arguments in NCHW order.
    nchw = {**args, "data_format": "NCHW"}
    if isinstance(args["padding"], list):
        nchw["padding"] = [args["padding"][i] for i in (0, 3, 1, 2)]
    out = conv2d(x.astype(dtype).transpose(0, 3, 1, 2), w, **nchw, method=method)
    np.testing.assert_array_equal(out, expected.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("method", METHODS)
def test_hand_checked_gradients(method):
    # Each input pixel collects one term per window covering it: SAME pads (0, 1), so the
    # first row and column are covered once, the others twice.
    ones = np.ones((1, 3, 3, 1))
    dx = conv2d_backprop_input((1, 3, 3, 1), np.ones((2, 2, 1, 1)), ones, 1, "SAME", method=method)
    np.testing.assert_array_equal(dx, plane([[1, 2, 2], [2, 4, 4], [2, 4, 4]]))
    # Stride 2 on a 4x4 input with a 3x3 kernel: windows cover rows {0,1,2} and {2,3}.
    dy = plane([[1, 2], [3, 4]])
    dx = conv2d_backprop_input((1, 4, 4, 1), np.ones((3, 3, 1, 1)), dy, 2, "SAME", method=method)
    expected = plane([[1, 1, 3, 2], [1, 1, 3, 2], [4, 4, 10, 6], [3, 3, 7, 4]])
    np.testing.assert_array_equal(dx, expected)
    # The filter gradient: sums of the input over each tap's shifted window.
    x = ONE_TO_NINE.astype(np.float64)
    dw = conv2d_backprop_filter(x, (2, 2, 1, 1), ones, 1, "SAME", method=method)
    np.testing.assert_array_equal(dw[:, :, 0, 0], [[45, 33], [39, 28]])
    # Dilation 2 on the 3x3 input: the single output reads the corners.
    one = np.ones((1, 1, 1, 1))
    dw = conv2d_backprop_filter(x, (2, 2, 1, 1), one, 1, "VALID", dilations=2, method=method)
    np.testing.assert_array_equal(dw[:, :, 0, 0], [[1, 3], [7, 9]])


def test_int32_wraps_modulo_2_to_the_32_as_tensorflow(eigen):
    x = np.full((1, 2, 2, 1), 2**20, np.int32)
    w = np.full((2, 2, 1, 1), 2**11, np.int32)
    [tf_out] = eigen.call(
        [("conv2d", {"input": x, "filters": w, "strides": 1, "padding": "VALID"})]
    )
    for method in METHODS:
        out = conv2d(x, w, 1, "VALID", method=method)
        np.testing.assert_array_equal(out, tf_out[1])
        assert out.dtype == np.int32 and out[0, 0, 0, 0] == 0  # 4 · 2**31 ≡ 0 (mod 2**32)


# --------------------------------------------------------------------------
# Bad input: a ValueError naming the argument, wherever TensorFlow's Eigen kernel fails
# --------------------------------------------------------------------------

X = np.ones((1, 5, 5, 4), np.float32)
W = np.ones((3, 3, 2, 4), np.float32)  # two groups

# (argument named in the message, the bad keyword arguments of conv2d)
BAD_FORWARD = [
    ("input", {"input": np.ones((5, 5, 4), np.float32)}),
    ("input", {"input": np.ones((1, 1, 5, 5, 4), np.float32)}),
    ("input", {"input": np.ones((1, 5, 5, 4), np.int64)}),
    ("input", {"input": np.ones((1, 5, 5, 4), np.complex64)}),
    ("filters", {"filters": np.ones((3, 3, 4), np.float32)}),
    ("filters", {"filters": np.ones((3, 3, 3, 4), np.float32)}),  # 4 channels, depth 3
    ("filters", {"filters": np.ones((3, 3, 2, 3), np.float32)}),  # 3 outputs, 2 groups
    ("filters", {"filters": np.ones((7, 7, 2, 4), np.float32), "padding": "VALID"}),
    ("strides", {"strides": 0}),
    ("strides", {"strides": -1}),
    ("strides", {"strides": [1, 2, 3]}),
    ("strides", {"strides": [2, 1, 1, 1]}),
    ("strides", {"strides": [1, 2, 2, 2]}),
    ("strides", {"strides": [1, 1, 2, 2]}),  # NCHW order given for NHWC: channel stride 2
    ("dilations", {"dilations": 0}),
    ("dilations", {"dilations": [1, 1, 1, 2]}),
    ("dilations", {"dilations": [2, 1, 1, 1]}),
    ("padding", {"padding": "same"}),
    ("padding", {"padding": "FULL"}),
    ("padding", {"padding": [[1, 1], [1, 1]]}),
    ("padding", {"padding": [[0, 0], [1], [0, 0], [0, 0]]}),
    ("padding", {"padding": [[0, 0], [-1, 0], [0, 0], [0, 0]]}),
    ("padding", {"padding": [[1, 0], [0, 0], [0, 0], [0, 0]]}),
    ("padding", {"padding": [[0, 0], [0, 0], [0, 0], [0, 1]]}),
    ("data_format", {"data_format": "NCWH"}),
    ("data_format", {"data_format": "nhwc"}),
]


def forward_call(bad: dict) -> dict:
    return {"input": X, "filters": W, "strides": 1, "padding": "SAME", **bad}


@pytest.mark.parametrize(
    ("argument", "bad"), BAD_FORWARD, ids=[f"{i}-{a}" for i, (a, _) in enumerate(BAD_FORWARD)]
)
def test_bad_forward_arguments_name_the_argument_and_the_value(argument, bad):
    for method in METHODS:
        with pytest.raises(ValueError, match=f"^{argument}: ") as caught:
            conv2d(**forward_call(bad), method=method)
    value = bad.get(argument)
    if not isinstance(value, np.ndarray):  # arrays are described by the offending size
        assert repr(value) in str(caught.value)


def test_tensorflow_rejects_every_bad_forward_call_too(eigen):
    # The Eigen kernel (a rank-3 input would abort TensorFlow's default path).
    results = eigen.call([("conv2d", forward_call(bad)) for _, bad in BAD_FORWARD])
    accepted = [index for index, result in enumerate(results) if result[0] == "ok"]
    # One deliberate difference: tf.nn.conv2d reads a rank-5 input as extra batch
    # dimensions; the twin takes rank 4 only, as its specification asks.
    assert accepted == [1]
    assert BAD_FORWARD[1][1]["input"].ndim == 5


def test_bad_method_and_bad_gradient_arguments():
    dy = np.ones((1, 5, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"^method: .*'fft'"):
        conv2d(X, W, 1, "SAME", method="fft")
    bad_sizes = [(1, 5, 5), (1, 5, 5, -4), (1.0, 5, 5, 4), "abcd", 7]
    for sizes in bad_sizes:
        with pytest.raises(ValueError, match=r"^input_sizes: "):
            conv2d_backprop_input(sizes, W, dy, 1, "SAME")
        with pytest.raises(ValueError, match=r"^filter_sizes: "):
            conv2d_backprop_filter(X, sizes, dy, 1, "SAME")
    wrong = np.ones((1, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"^out_backprop: .*\(1, 5, 5, 4\).*\(1, 3, 3, 4\)"):
        conv2d_backprop_input(X.shape, W, wrong, 1, "SAME")
    with pytest.raises(ValueError, match=r"^out_backprop: .*\(1, 5, 5, 4\).*\(1, 3, 3, 4\)"):
        conv2d_backprop_filter(X, W.shape, wrong, 1, "SAME")
    with pytest.raises(ValueError, match=r"^out_backprop: .*rank-4.*\(5, 5, 4\)"):
        conv2d_backprop_input(X.shape, W, dy[0], 1, "SAME")
    with pytest.raises(ValueError, match=r"^input: .*int32"):  # no int32 filter gradient in TF
        conv2d_backprop_filter(X.astype(np.int32), W.shape, dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"^filters: "):
        conv2d_backprop_input(X.shape, W[0], dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"^strides: "):
        conv2d_backprop_filter(X, W.shape, dy, [1, 1, 1, 2], "SAME")
    with pytest.raises(ValueError, match=r"^method: "):
        conv2d_backprop_filter(X, W.shape, dy, 1, "SAME", method="winograd")


# --------------------------------------------------------------------------
# Dtypes: preserved, and the first operand's dtype wins, as in TensorFlow
# --------------------------------------------------------------------------

MIXED = [
    ("float64", "float32"),
    ("float32", "float64"),
    ("float16", "float32"),
    ("float32", "float16"),
    ("float32", "int32"),
    ("bfloat16", "float32"),
    ("int32", "float64"),
]


def test_dtype_rules_follow_tensorflow(eigen):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 5, 5, 2)).astype(np.float64)
    w = rng.uniform(-2, 2, (3, 3, 2, 3))  # non-integers: int32 conversion truncates
    dy = rng.integers(-3, 4, (2, 3, 3, 3)).astype(np.float64)
    calls, ours = [], []
    strides4 = [1, 2, 2, 1]
    for first, second in MIXED:
        a, b = x.astype(dtype_of(first)), w.astype(dtype_of(second))
        calls.append(("conv2d", {"input": a, "filters": b, "strides": 2, "padding": "SAME"}))
        ours.append(conv2d(a, b, 2, "SAME"))
        f, g = w.astype(dtype_of(first)), dy.astype(dtype_of(second))
        call = {"filters": f, "out_backprop": g, "strides": strides4, "padding": "SAME"}
        calls.append(("backprop_input", {"input_sizes": x.shape, **call}))
        ours.append(conv2d_backprop_input(x.shape, f, g, 2, "SAME"))
        if first == "int32":  # TensorFlow has no int32 filter gradient (tested above)
            continue
        a, g = x.astype(dtype_of(first)), dy.astype(dtype_of(second))
        call = {"out_backprop": g, "strides": strides4, "padding": "SAME"}
        calls.append(("backprop_filter", {"input": a, "filter_sizes": w.shape, **call}))
        ours.append(conv2d_backprop_filter(a, w.shape, g, 2, "SAME"))
    results = eigen.call(calls)
    for (name, _), result, out in zip(calls, results, ours, strict=True):
        assert result[0] == "ok", (name, result)
        assert (out.dtype, out.shape) == (result[1].dtype, result[1].shape), name
        if out.dtype == np.int32:  # exact in both
            np.testing.assert_array_equal(out, result[1])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int32"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_dtype_and_layout_are_preserved(dtype, data_format):
    x = np.ones((2, 3, 6, 6) if data_format == "NCHW" else (2, 6, 6, 3), dtype_of(dtype))
    w = np.ones((2, 2, 3, 5), dtype_of(dtype))
    out = conv2d(x, w, 2, "VALID", data_format)
    expected_shape = (2, 5, 3, 3) if data_format == "NCHW" else (2, 3, 3, 5)
    assert (out.dtype, out.shape, out.flags.c_contiguous) == (x.dtype, expected_shape, True)
    np.testing.assert_array_equal(out.astype(np.float64), 12.0)


def test_an_input_without_channels_gives_zeros_as_the_eigen_kernel(eigen):
    x = np.ones((1, 5, 5, 0), np.float32)
    w = np.ones((3, 3, 1, 2), np.float32)
    [tf_out] = eigen.call([("conv2d", {"input": x, "filters": w, "strides": 1, "padding": "SAME"})])
    for method in METHODS:
        out = conv2d(x, w, 1, "SAME", method=method)
        np.testing.assert_array_equal(out, tf_out[1])
        assert out.shape == (1, 5, 5, 2)


def test_auto_uses_a_registered_strategy():
    geometry = conv_geometry((2, 8, 8, 4), (3, 3, 2, 6), 2, "SAME")
    assert numpy_conv.choose_method(geometry) in numpy_conv.STRATEGIES
    assert set(METHODS) == {"auto", *numpy_conv.STRATEGIES}
    assert (geometry.groups, geometry.terms, geometry.pads) == (2, 18, ((0, 1), (0, 1)))
    assert geometry.output_shape == (2, 4, 4, 6) and geometry.effective_kernel == (3, 3)
    # Every strategy computes the same thing from a geometry, within the bound.
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 8, 8, 4)), rng.standard_normal((3, 3, 2, 6))
    desired = conv2d(x, w, 2, "SAME", method="loops")
    bound = 2 * conv_error_bound(x, w, 2, "SAME")
    for strategy in numpy_conv.STRATEGIES.values():
        assert_conv_close(strategy(x, w, geometry), desired, bound)
    with pytest.raises(ValueError, match=r"^padding: "):
        conv_geometry((2, 8, 8, 4), (3, 3, 2, 6), 2, "same")
