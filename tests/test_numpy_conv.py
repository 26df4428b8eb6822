"""companion.numpy_conv against TensorFlow: forward on the reference kernels, gradients on
the default path, exact integer cases, the adjoint identity and the errors.

TensorFlow runs in two long-lived child processes (tests/tf_worker.py): the reference CPU
kernels (``TF_ENABLE_ONEDNN_OPTS=0``), whose semantics ``conv2d`` mirrors, and the default
path, the only one with CPU gradients for dilated and grouped convolutions. Every
floating-point comparison goes through ``companion.numerics``: each result is compared with
a float64 reference within its rounding-error bound, plus the reference's own bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from companion import numpy_conv
from companion.arithmetic import conv_geometry, conv_output_shape
from companion.numerics import assert_conv_close, conv_error_bound, dot_error_bound, gamma
from companion.numpy_conv import conv2d, conv2d_backprop_filter, conv2d_backprop_input
from tests.helpers import SETTINGS, window_argument
from tests.tf_worker import TFWorker

METHODS = numpy_conv.METHODS
LOW_PRECISION = ("float16", "bfloat16")


@pytest.fixture(scope="module")
def workers():
    """Both TensorFlow children, started together (each import takes seconds)."""
    started = {"reference": TFWorker(onednn=False), "default": TFWorker(onednn=True)}
    yield started
    for worker in started.values():
        worker.close()


@pytest.fixture(scope="module")
def reference(workers):
    worker = workers["reference"]
    assert worker.call([("onednn", {})]) == [("ok", False)]
    return worker


@pytest.fixture(scope="module")
def default(workers):
    worker = workers["default"]
    assert worker.call([("onednn", {})])[0][0] == "ok"
    return worker


# --------------------------------------------------------------------------
# Generated configurations
# --------------------------------------------------------------------------


def dtype_of(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


VALUE_KINDS = {
    "float32": ("normal", "wide", "integers"),
    "float64": ("normal", "wide", "integers"),
    "float16": ("normal", "tiny"),
    "bfloat16": ("normal",),
    "int32": ("integers",),
}


def make_values(rng: np.random.Generator, shape, dtype: str, kind: str) -> np.ndarray:
    if kind == "integers":
        values = rng.integers(-8, 9, shape).astype(np.float64)
    else:
        values = rng.standard_normal(shape)
        if dtype == "float16":
            values = np.clip(values, -4, 4)  # sums of up to 48 products stay far from overflow
        if kind == "wide":
            values = values * 2.0 ** rng.integers(-20, 21, shape)
        elif kind == "tiny":
            values = values * 2.0**-7  # float16 products in the subnormal range
    return values.astype(dtype_of(dtype))


def padding_argument(data_format: str):
    pair = st.tuples(st.integers(0, 3), st.integers(0, 3)).map(list)

    def four(pairs):
        top, left = pairs
        return [[0, 0], top, left, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], top, left]

    return st.one_of(st.sampled_from(["SAME", "VALID"]), st.tuples(pair, pair).map(four))


def to_nhwc_argument(value, data_format: str):
    """A strides/dilations/padding argument rewritten for NHWC (independently of companion)."""
    if data_format == "NHWC" or value is None or isinstance(value, (int, str)) or len(value) != 4:
        return value
    return [value[0], value[2], value[3], value[1]]


def four_nhwc(value) -> list[int]:
    """strides/dilations of an NHWC call as four ints."""
    if value is None:
        return [1, 1, 1, 1]
    if isinstance(value, int):
        return [1, value, value, 1]
    if len(value) == 1:
        return [1, value[0], value[0], 1]
    if len(value) == 2:
        return [1, value[0], value[1], 1]
    return list(value)


@dataclass(frozen=True)
class Config:
    data_format: str
    batch: int
    height: int
    width: int
    groups: int
    depth: int
    per_group: int
    kernel: tuple[int, int]
    strides: object
    dilations: object
    padding: object
    dtype: str
    values: str
    seed: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        channels = self.groups * self.depth
        if self.data_format == "NHWC":
            return (self.batch, self.height, self.width, channels)
        return (self.batch, channels, self.height, self.width)

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        return (*self.kernel, self.depth, self.groups * self.per_group)

    @property
    def args(self) -> dict:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilations": self.dilations,
        }

    @property
    def nhwc_args(self) -> dict:
        return {
            "strides": to_nhwc_argument(self.strides, self.data_format),
            "padding": to_nhwc_argument(self.padding, self.data_format),
            "data_format": "NHWC",
            "dilations": to_nhwc_argument(self.dilations, self.data_format),
        }

    def arrays(self, *shapes) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [make_values(rng, shape, self.dtype, self.values) for shape in shapes]

    def to_nhwc(self, array: np.ndarray) -> np.ndarray:
        return array if self.data_format == "NHWC" else array.transpose(0, 2, 3, 1)

    def from_nhwc(self, array: np.ndarray) -> np.ndarray:
        return array if self.data_format == "NHWC" else array.transpose(0, 3, 1, 2)

    def output_shape(self) -> tuple | None:
        try:
            return conv_output_shape(self.input_shape, self.filter_shape, **self.args)
        except ValueError:
            return None


DTYPE_CHOICES = ["float32"] * 4 + ["float64"] * 2 + ["float16"] * 2 + ["bfloat16", "int32"]


@st.composite
def configs(draw, formats=("NHWC", "NCHW"), dtypes=tuple(DTYPE_CHOICES), batch=(0, 3)):
    data_format = draw(st.sampled_from(formats))
    dtype = draw(st.sampled_from(dtypes))
    return Config(
        data_format=data_format,
        batch=draw(st.integers(*batch)),
        height=draw(st.integers(1, 8)),
        width=draw(st.integers(1, 8)),
        groups=draw(st.integers(1, 3)),
        depth=draw(st.integers(1, 3)),
        per_group=draw(st.integers(1, 3)),
        kernel=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        strides=draw(window_argument(data_format, 3)),
        dilations=draw(st.none() | window_argument(data_format, 3)),
        padding=draw(padding_argument(data_format)),
        dtype=dtype,
        values=draw(st.sampled_from(VALUE_KINDS[dtype])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def nonempty(config: Config) -> bool:
    shape = config.output_shape()
    return shape is not None and 0 not in shape


def accumulation(dtype: str):
    """How companion.numpy_conv sums: float16 and bfloat16 in float32."""
    return "float32" if dtype in LOW_PRECISION else None


# --------------------------------------------------------------------------
# Forward: tf.nn.conv2d on the reference kernels
# --------------------------------------------------------------------------


@settings(max_examples=200, **SETTINGS)
@given(config=configs())
def test_conv2d_matches_the_reference_kernel(reference, config):
    x, w = config.arrays(config.input_shape, config.filter_shape)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    # The reference kernels have no NCHW forward on the CPU: they get the NHWC equivalent.
    tf_out, tf_64 = reference.call(
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
    # as NCHW (the reference kernels are right): leave that corner to the reference test.
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
# Gradients: tf.GradientTape on the default path
# --------------------------------------------------------------------------


def gradient_bounds(config: Config, x, w, dy, accumulate_dtype=None):
    """Bounds on the input and filter gradients: ours (or TensorFlow's), plus the reference's.

    The input gradient sums kh·kw·(out_channels/groups) products per element; the reference
    formulation (a zero-filled dilated kernel) has eff_h·eff_w·(out_channels/groups) terms.
    The filter gradient sums batch·out_height·out_width products per weight.
    """
    x64, w64, dy64 = (np.abs(a.astype(np.float64)) for a in (x, w, dy))
    kh, kw, _, out_channels = w.shape
    per_group = out_channels // config.groups
    _, dh, dw, _ = four_nhwc(to_nhwc_argument(config.dilations, config.data_format))
    n_input = kh * kw * per_group
    n_input_reference = ((kh - 1) * dh + 1) * ((kw - 1) * dw + 1) * per_group
    batch, out_h, out_w, _ = config.to_nhwc(dy).shape
    n_filter = batch * out_h * out_w
    # Our float64 magnitudes are sums too: enlarge them by their own worst-case error.
    grow = 1 / (1 - gamma(max(n_input_reference, n_filter), np.float64))
    m_input = conv2d_backprop_input(x.shape, w64, dy64, **config.args) * grow
    m_filter = conv2d_backprop_filter(x64, w.shape, dy64, **config.args) * grow
    dtype = x.dtype
    acc = {"accumulate_dtype": accumulate_dtype}
    input_bound = dot_error_bound(m_input, n_input, dtype, **acc) + dot_error_bound(
        m_input, n_input_reference, np.float64
    )
    filter_bound = dot_error_bound(m_filter, n_filter, dtype, **acc) + dot_error_bound(
        m_filter, n_filter, np.float64
    )
    return input_bound, filter_bound


GRADIENT_DTYPES = ("float32",) * 6 + ("float64", "float16", "bfloat16")


@settings(max_examples=150, **SETTINGS)
@given(config=configs(dtypes=GRADIENT_DTYPES, batch=(1, 3)))
def test_gradients_match_gradient_tape(default, config):
    # oneDNN fails on gradients of empty outputs; those are exact zeros, tested below.
    assume(nonempty(config))
    x, w, dy = config.arrays(config.input_shape, config.filter_shape, config.output_shape())
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    nhwc = config.nhwc_args
    # TensorFlow has no float64 CPU gradient for dilated or grouped convolutions (nor any
    # with oneDNN off): the float64 reference is the same
    # convolution built from undilated, ungrouped ones, differentiated by GradientTape.
    reference_call = {
        "input": config.to_nhwc(x64),
        "filters": w64,
        "out_backprop": config.to_nhwc(dy64),
        "strides": four_nhwc(nhwc["strides"]),
        "padding": nhwc["padding"],
        "dilations": four_nhwc(nhwc["dilations"]),
    }
    tape_call = {"input": x, "filters": w, "out_backprop": dy, **config.args}
    ref, tape = default.call([("reference_grads", reference_call), ("grads", tape_call)])
    assert ref[0] == "ok", ref
    desired_dx, desired_dw = config.from_nhwc(ref[1][0]), ref[1][1]
    # oneDNN computes float32 gradients for SAME and VALID only; everything else goes to
    # the reference kernels, which lack dilated, grouped and NCHW gradients.
    dilated = four_nhwc(nhwc["dilations"]) != [1, 1, 1, 1]
    unsupported = (config.dtype != "float32" or not isinstance(config.padding, str)) and (
        dilated or config.groups > 1 or config.data_format == "NCHW"
    )
    assert tape[0] == "ok" or unsupported, tape
    event(f"{config.dtype}, GradientTape {'has no CPU gradient' if tape[0] != 'ok' else 'runs'}")
    ours_bounds = gradient_bounds(config, x, w, dy, accumulation(config.dtype))
    for method in METHODS:
        dx = conv2d_backprop_input(x.shape, w, dy, **config.args, method=method)
        dw = conv2d_backprop_filter(x, w.shape, dy, **config.args, method=method)
        assert (dx.shape, dx.dtype, dw.shape, dw.dtype) == (x.shape, x.dtype, w.shape, w.dtype)
        assert_conv_close(dx, desired_dx, ours_bounds[0])
        assert_conv_close(dw, desired_dw, ours_bounds[1])
    # TensorFlow 2.21's oneDNN bfloat16 NCHW filter gradient can return garbage (inf, 1e27)
    # for tiny inputs with padding, so TensorFlow's own result is held to the bound elsewhere.
    if tape[0] == "ok" and not (config.dtype == "bfloat16" and config.data_format == "NCHW"):
        tf_dx, tf_dw = tape[1]
        tf_bounds = gradient_bounds(config, x, w, dy)
        assert (tf_dx.dtype, tf_dw.dtype) == (x.dtype, w.dtype)
        assert_conv_close(tf_dx, desired_dx, tf_bounds[0])
        assert_conv_close(tf_dw, desired_dw, tf_bounds[1])


# --------------------------------------------------------------------------
# The adjoint identity, exactly, for every configuration (dilated, grouped, empty, NCHW)
# --------------------------------------------------------------------------


def exact_dot(a: np.ndarray, b: np.ndarray) -> int:
    assert np.array_equal(a, np.round(a)) and np.array_equal(b, np.round(b))
    return int(np.sum(a.astype(np.int64) * b.astype(np.int64)))


@settings(max_examples=120, **SETTINGS)
@given(config=configs(dtypes=("float64", "int32")))
def test_backprops_are_the_adjoints_of_conv2d(config):
    """<conv(x, w), dy> = <x, backprop_input(dy)> = <w, backprop_filter(x, dy)>, exactly.

    Small integers make every sum exact in float64 (and in int32), whatever the order, so
    this pins both gradients, including where TensorFlow has no CPU gradient to compare with.
    """
    config = Config(**{**config.__dict__, "values": "integers"})
    x, w = config.arrays(config.input_shape, config.filter_shape)
    shape = config.output_shape()
    if shape is None:
        for call in (
            lambda: conv2d(x, w, **config.args),
            lambda: conv2d_backprop_input(x.shape, w, x, **config.args),
            lambda: conv2d_backprop_filter(x, w.shape, x, **config.args),
        ):
            with pytest.raises(ValueError):
                call()
        return
    (dy,) = config.arrays(shape)
    event("empty output" if 0 in shape else "non-empty output")
    for method in METHODS:
        y = conv2d(x, w, **config.args, method=method)
        dx = conv2d_backprop_input(x.shape, w, dy, **config.args, method=method)
        assert exact_dot(y, dy) == exact_dot(x, dx)
        if config.dtype == "int32":  # as TensorFlow, no integer filter gradient
            x = x.astype(np.float64)
        dw = conv2d_backprop_filter(x, w.shape, dy, **config.args, method=method)
        assert exact_dot(y, dy) == exact_dot(w, dw)


def test_gradients_of_an_empty_output_are_zero():
    x = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    w = np.ones((3, 3, 1, 2))
    dy = np.zeros((1, 0, 0, 2))
    for method in METHODS:
        dx = conv2d_backprop_input(x.shape, w, dy, 1, "VALID", method=method)
        dw = conv2d_backprop_filter(x, w.shape, dy, 1, "VALID", method=method)
        assert np.array_equal(dx, np.zeros_like(x)) and np.array_equal(dw, np.zeros_like(w))


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
        # A kernel larger than the input under VALID: an empty result, as the reference kernel.
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


def test_int32_wraps_modulo_2_to_the_32_as_tensorflow(reference):
    x = np.full((1, 2, 2, 1), 2**20, np.int32)
    w = np.full((2, 2, 1, 1), 2**11, np.int32)
    [tf_out] = reference.call(
        [("conv2d", {"input": x, "filters": w, "strides": 1, "padding": "VALID"})]
    )
    for method in METHODS:
        out = conv2d(x, w, 1, "VALID", method=method)
        np.testing.assert_array_equal(out, tf_out[1])
        assert out.dtype == np.int32 and out[0, 0, 0, 0] == 0  # 4 · 2**31 ≡ 0 (mod 2**32)


# --------------------------------------------------------------------------
# Bad input: a ValueError naming the argument, wherever TensorFlow's reference kernel fails
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


def test_tensorflow_rejects_every_bad_forward_call_too(reference):
    # The reference kernel (a rank-3 input would abort TensorFlow's default path).
    results = reference.call([("conv2d", forward_call(bad)) for _, bad in BAD_FORWARD])
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


def test_dtype_rules_follow_tensorflow(reference):
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
    results = reference.call(calls)
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


def test_an_input_without_channels_gives_zeros_as_the_reference_kernel(reference):
    x = np.ones((1, 5, 5, 0), np.float32)
    w = np.ones((3, 3, 1, 2), np.float32)
    [tf_out] = reference.call(
        [("conv2d", {"input": x, "filters": w, "strides": 1, "padding": "SAME"})]
    )
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


# --------------------------------------------------------------------------
# The fast strategies: blocks, stride phases, the scratch workspace, auto's choice
# --------------------------------------------------------------------------

FAST = ("im2col_blocked", "taps", "planar", "auto")


def integer_case(config: Config):
    """Small integers in float64: every order of summation gives the same, exact, sums."""
    rng = np.random.default_rng(config.seed)
    x = rng.integers(-4, 5, config.input_shape).astype(np.float64)
    w = rng.integers(-4, 5, config.filter_shape).astype(np.float64)
    return x, w


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


def test_auto_follows_its_documented_rule():
    shapes = {
        "taps": [((2, 9, 9, 16), (1, 1, 16, 8), 2), ((1, 5, 5, 64), (1, 1, 16, 8), 1)],
        "planar": [((2, 9, 9, 1), (5, 5, 1, 8), 1), ((2, 9, 9, 64), (3, 3, 8, 64), 2)],
        "im2col_blocked": [((2, 9, 9, 9), (3, 3, 9, 8), 1), ((1, 9, 9, 64), (3, 1, 32, 8), 1)],
    }
    for expected, cases in shapes.items():
        for x_shape, w_shape, stride in cases:
            geometry = conv_geometry(x_shape, w_shape, stride, "SAME")
            assert numpy_conv.choose_method(geometry) == expected, (x_shape, w_shape)
    assert {"im2col_blocked", "taps", "planar"} <= set(numpy_conv.STRATEGIES)


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
# grouped and dilated ones among them, large enough to be cut into many blocks.
DETERMINISM_CASES = [
    ((4, 57, 57, 3), (7, 7, 3, 16), 2, "SAME", None),
    ((3, 30, 30, 32), (3, 3, 32, 48), 1, "SAME", None),
    ((2, 32, 32, 32), (3, 3, 8, 64), 2, "SAME", 2),
    ((2, 30, 30, 64), (1, 1, 64, 32), 2, "VALID", None),
    ((1, 6, 6, 2), (3, 3, 2, 4), 1, "SAME", 500),
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

    fast = ("auto", "im2col_blocked", "taps", "planar")
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
