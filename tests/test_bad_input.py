"""Bad input, as a hostile user would send it, to every public function outside numerics.

The contract: a call returns the right answer or raises ``ValueError``/``TypeError``
whose message starts with the name of the argument at fault; never another exception
from deep inside, never a silently different answer, and never a modified input.

- Each argument gets every value of its kind's bad classes (wrong type, bool for int,
  float for int, wrong length or rank, negative, zero, NaN/inf, complex, object).
- Arrays also come in forms that must give the *same* answer as the plain array: another
  byte order, a strided (non-contiguous) view, Fortran order, read-only.
(``tests/test_numerics_bad_input.py`` does the same for ``companion.numerics``.)
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import arguments, arithmetic, data, images, numpy_conv, timing

# -- bad values by kind ----------------------------------------------------------------------

BAD_INT = [True, 2.5, np.float64(2.0), "3", None, [2], np.array([2]), -1, object()]
BAD_SIZE = [*BAD_INT, 0]  # sizes that must be positive
BAD_SHAPE = [(1, 5, 5), (1, 5, 5, 4, 1), (1, -5, 5, 4), (1.0, 5, 5, 4), "abcd", None, 7]
BAD_WINDOW = [0, -1, 1.5, "2", [1, 2, 3], [2, 1, 1, 1], [1, 1, 1, 2], [True, 1], object()]
BAD_PADDING = [
    "same",
    "FULL",
    None,
    3,
    [[1, 1], [1, 1]],
    [[0, 0], [1], [0, 0], [0, 0]],
    [[0, 0], [-1, 0], [0, 0], [0, 0]],
    [[0, 0], [1.5, 0], [0, 0], [0, 0]],
    [[1, 0], [0, 0], [0, 0], [0, 0]],
]
BAD_FORMAT = ["nhwc", "NCWH", "channels_last", 4, b"NHWC"]
BAD_METHOD = ["fft", "", None, 3, ["auto"]]


def bad_arrays(good: np.ndarray) -> list:
    """Arrays (and non-arrays) that no conv argument accepts."""
    return [
        "not an array",
        None,
        object(),
        [["a", "b"]],
        np.array([object()] * good.size, dtype=object).reshape(good.shape),
        good.astype(np.complex64),
        good.reshape(-1),  # wrong rank
        good[np.newaxis],  # wrong rank
        good.astype(np.int64),  # a dtype tf.nn.conv2d has no kernel for
    ]


def equivalents(good: np.ndarray) -> list[np.ndarray]:
    """The same values in forms that must give the same answer."""
    swapped = good.astype(good.dtype.newbyteorder())
    doubled = np.repeat(good, 2, axis=-1)[..., ::2]  # a strided view
    fortran = np.asfortranarray(good)
    frozen = good.copy()
    frozen.setflags(write=False)
    return [swapped, doubled, fortran, frozen]


def assert_names(error: BaseException, name: str) -> None:
    assert re.match(rf"{re.escape(name)}: ", str(error)), f"{name!r} not named first: {error}"


def check(call, name: str, bad: dict) -> None:
    """``call(**bad)`` raises a ValueError or TypeError naming ``name``."""
    with pytest.raises((ValueError, TypeError)) as caught:
        call(**bad)
    assert_names(caught.value, name)


# -- numpy_conv ------------------------------------------------------------------------------

X = np.arange(1 * 6 * 5 * 4, dtype=np.float32).reshape(1, 6, 5, 4) % 7
W = (np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4) % 5) - 2  # two groups
DY = np.ones((1, 3, 3, 4), np.float32)  # strides 2, SAME
BASE = {"strides": 2, "padding": "SAME", "data_format": "NHWC", "dilations": None}


def forward(**kwargs):
    return numpy_conv.conv2d(**{"input": X, "filters": W, **BASE, **kwargs})


def backprop_input(**kwargs):
    args = {"input_sizes": X.shape, "filters": W, "out_backprop": DY, **BASE, **kwargs}
    return numpy_conv.conv2d_backprop_input(**args)


def backprop_filter(**kwargs):
    args = {"input": X, "filter_sizes": W.shape, "out_backprop": DY, **BASE, **kwargs}
    return numpy_conv.conv2d_backprop_filter(**args)


COMMON = (
    [("strides", v) for v in BAD_WINDOW]
    + [("dilations", v) for v in BAD_WINDOW]
    + [("padding", v) for v in BAD_PADDING]
    + [("data_format", v) for v in BAD_FORMAT]
    + [("method", v) for v in BAD_METHOD]
)
CASES = (
    [(forward, name, value) for name, value in COMMON]
    + [(forward, "input", v) for v in bad_arrays(X)]
    + [(forward, "filters", v) for v in bad_arrays(W)[:-1]]  # int filters are converted
    + [(backprop_input, name, value) for name, value in COMMON]
    + [(backprop_input, "input_sizes", v) for v in BAD_SHAPE]
    + [(backprop_input, "filters", v) for v in bad_arrays(W)]
    + [(backprop_input, "out_backprop", v) for v in bad_arrays(DY)[:-1]]
    + [(backprop_filter, name, value) for name, value in COMMON]
    + [(backprop_filter, "filter_sizes", v) for v in BAD_SHAPE]
    + [(backprop_filter, "filter_sizes", v) for v in [(0, 3, 2, 4), (3, 3, 3, 4), (3, 3, 2, 3)]]
    + [(backprop_filter, "input", v) for v in bad_arrays(X)]
    + [(backprop_filter, "out_backprop", v) for v in bad_arrays(DY)[:-1]]
)


@pytest.mark.parametrize(
    ("call", "name", "value"),
    CASES,
    ids=[f"{c.__name__}-{n}-{i}" for i, (c, n, _) in enumerate(CASES)],
)
def test_numpy_conv_names_the_bad_argument(call, name, value):
    check(call, name, {name: value})


@pytest.mark.parametrize("call", [forward, backprop_input, backprop_filter])
def test_numpy_conv_gives_the_same_answer_for_equivalent_arrays(call):
    expected = call()
    arrays = {
        forward: {"input": X, "filters": W},
        backprop_input: {"filters": W, "out_backprop": DY},
        backprop_filter: {"input": X, "out_backprop": DY},
    }[call]
    for name, good in arrays.items():
        for same in equivalents(good):
            before = same.copy()
            result = call(**{name: same})
            assert result.dtype.isnative and result.dtype == expected.dtype
            np.testing.assert_array_equal(result, expected)
            np.testing.assert_array_equal(same, before)  # the input is not modified


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["input", "filters", "out_backprop"]),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.integers(0, 10**6),
    st.sampled_from(numpy_conv.METHODS),
    st.sampled_from([BASE, {**BASE, "dilations": 3}, {**BASE, "padding": "VALID"}]),
)
def test_non_finite_values_propagate_as_in_the_loop(name, special, seed, method, base):
    # A NaN or an infinity is no error: every method puts NaN and inf where the plain
    # loop (IEEE arithmetic on the zero-padded input, one product at a time) puts them,
    # in the forward pass and both gradients.
    rng = np.random.default_rng(seed)
    arrays = {"input": X, "filters": W, "out_backprop": DY}
    if base["padding"] == "VALID" or base["dilations"] == 3:
        arrays["out_backprop"] = np.ones(forward(**base).shape, np.float32)
    spoiled = arrays[name].copy()
    spoiled.flat[rng.integers(spoiled.size)] = special
    arrays[name] = spoiled
    x, w, dy = arrays["input"], arrays["filters"], arrays["out_backprop"]
    calls = [
        lambda m: numpy_conv.conv2d(x, w, **base, method=m),
        lambda m: numpy_conv.conv2d_backprop_filter(x, w.shape, dy, **base, method=m),
    ]
    if name != "filters":
        # The named methods build the input gradient from out_backprop spread out with
        # zeros (the textbook construction): a non-finite weight times those zeros is NaN
        # where auto, which sums only the real pairs, is finite (documented).
        calls.append(lambda m: numpy_conv.conv2d_backprop_input(x.shape, w, dy, **base, method=m))
    with np.errstate(invalid="ignore", over="ignore"):
        for call in calls:
            loop, result = call("loops"), call(method)
            for kind in (np.isnan, np.isposinf, np.isneginf):
                np.testing.assert_array_equal(kind(result), kind(loop))


def pair_sum_input_gradient(dy, w, strides, dilations, top, left, input_shape):
    """dx[p] = sum of dy[i] · w[a] over the (output i, tap a) pairs that read input pixel p."""
    dx = np.zeros(input_shape)
    groups = input_shape[3] // w.shape[2]
    per_group = w.shape[3] // groups
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            for a in range(w.shape[0]):
                for b in range(w.shape[1]):
                    r, c = i * strides + a * dilations - top, j * strides + b * dilations - left
                    if 0 <= r < input_shape[1] and 0 <= c < input_shape[2]:
                        for g in range(groups):
                            ks = slice(g * per_group, (g + 1) * per_group)
                            cs = slice(g * w.shape[2], (g + 1) * w.shape[2])
                            dx[:, r, c, cs] += dy[:, i, j, ks] @ w[a, b, :, ks].T
    return dx


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 10**6), st.sampled_from([1, 2]))
def test_the_input_gradient_sums_only_the_real_pairs(special, seed, strides):
    # auto's input gradient with an infinite or NaN weight: NaN and inf exactly where the
    # sum over the (output, tap) pairs that read each pixel has them (no padded zeros).
    rng = np.random.default_rng(seed)
    w = W.astype(np.float64)
    w.flat[rng.integers(w.size)] = special
    geometry = arithmetic.conv_geometry(X.shape, w.shape, strides, "SAME")
    dy = rng.standard_normal(geometry.output_shape)
    (top, _), (left, _) = geometry.pads
    with np.errstate(invalid="ignore", over="ignore"):
        expected = pair_sum_input_gradient(dy, w, strides, 1, top, left, X.shape)
        result = numpy_conv.conv2d_backprop_input(X.shape, w, dy, strides, "SAME")
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(result), kind(expected))


def test_settings_name_the_bad_setting():
    for name in ("threads", "block_bytes", "workspace_bytes", "parallel_copy_bytes"):
        for value in [v for v in BAD_INT if v is not None] + (
            [0] if name != "workspace_bytes" and name != "parallel_copy_bytes" else []
        ):
            with pytest.raises(ValueError) as caught, numpy_conv.settings(**{name: value}):
                pass
            assert_names(caught.value, name)
    with pytest.raises(TypeError), numpy_conv.settings(thread=2):
        pass
    assert numpy_conv.get_settings() == numpy_conv.Settings()  # nothing leaked


# -- arithmetic and arguments ----------------------------------------------------------------

SHAPE_CASES = (
    [("input_shape", "input", v) for v in BAD_SHAPE if v is not None]
    + [("input_shape", "input", None)]
    + [("filter_shape", "filters", v) for v in [*BAD_SHAPE, (0, 3, 4, 1), (3, 3, 3, 1)]]
    + [("strides", "strides", v) for v in BAD_WINDOW]
    + [("dilations", "dilations", v) for v in BAD_WINDOW]
    + [("padding", "padding", v) for v in BAD_PADDING]
    + [("data_format", "data_format", v) for v in BAD_FORMAT]
)


@pytest.mark.parametrize("function", [arithmetic.conv_geometry, arithmetic.conv_output_shape])
@pytest.mark.parametrize(("argument", "name", "value"), SHAPE_CASES)
def test_shape_helpers_name_the_bad_argument(function, argument, name, value):
    good = {
        "input_shape": (2, 7, 6, 4),
        "filter_shape": (3, 3, 2, 4),
        "strides": 2,
        "padding": "SAME",
        "data_format": "NHWC",
        "dilations": None,
    }
    check(lambda **bad: function(**{**good, **bad}), name, {argument: value})


PER_AXIS = {
    arithmetic.same_pads: {"in_size": 7, "kernel_size": 3, "stride": 2, "dilation": 1},
    arithmetic.output_size: {"in_size": 7, "kernel_size": 3, "stride": 2, "dilation": 1},
    arithmetic.resolve_pads: {
        "in_size": 7,
        "kernel_size": 3,
        "stride": 2,
        "dilation": 1,
        "padding": "VALID",
    },
    arithmetic.effective_kernel_size: {"kernel_size": 3, "dilation": 2},
    arithmetic.tap_reach: {
        "in_size": 7,
        "out_size": 4,
        "stride": 2,
        "dilation": 1,
        "before": 1,
        "tap": 0,
    },
}
PER_AXIS_CASES = [
    (function, name, value)
    for function, good in PER_AXIS.items()
    for name in good
    if name != "padding"
    for value in (BAD_SIZE if name not in ("in_size", "out_size", "before", "tap") else BAD_INT)
    # An unknown size (None) is allowed where it can be: an unknown output, or pads that
    # do not depend on the size (VALID, explicit).
    if not (
        name == "in_size"
        and value is None
        and function in (arithmetic.output_size, arithmetic.resolve_pads)
    )
]


@pytest.mark.parametrize(
    ("function", "name", "value"),
    PER_AXIS_CASES,
    ids=[f"{f.__name__}-{n}-{i}" for i, (f, n, _) in enumerate(PER_AXIS_CASES)],
)
def test_per_axis_helpers_name_the_bad_argument(function, name, value):
    check(lambda **bad: function(**{**PER_AXIS[function], **bad}), name, {name: value})


def test_numpy_integers_give_the_same_answers_as_ints():
    for function, good in PER_AXIS.items():
        numpy_args = {k: np.int64(v) if isinstance(v, int) else v for k, v in good.items()}
        assert function(**numpy_args) == function(**good)
    assert arithmetic.conv_output_shape(
        np.array([2, 7, 6, 4]), np.array([3, 3, 2, 4]), np.array([2, 2]), "SAME"
    ) == arithmetic.conv_output_shape((2, 7, 6, 4), (3, 3, 2, 4), 2, "SAME")


@pytest.mark.parametrize("value", BAD_WINDOW)
def test_window_forms_name_the_argument(value):
    check(lambda v: arguments.normalize_strides(v), "strides", {"v": value})
    check(lambda v: arguments.normalize_dilations(v), "dilations", {"v": value})


# -- images, data and timing -----------------------------------------------------------------

SIZED = [
    images.identity,
    images.vertical_line,
    images.horizontal_line,
    images.hand_made_filters,
]


@pytest.mark.parametrize("function", SIZED)
@pytest.mark.parametrize("value", [*BAD_SIZE, 4])  # the kernels have odd sizes
def test_kernel_sizes(function, value):
    check(lambda size: function(size), "size", {"size": value})
    if value != 4:  # a box blur may be even
        check(lambda size: images.box_blur(size), "size", {"size": value})


@pytest.mark.parametrize("value", BAD_SIZE)
def test_to_filters_in_channels(value):
    check(
        lambda **bad: images.to_filters([images.identity(3)], **bad),
        "in_channels",
        {"in_channels": value},
    )


def test_bilinear_resize():
    digits = np.arange(2 * 8 * 8, dtype=np.float64).reshape(2, 8, 8)
    expected = data.bilinear_resize(digits, 5)
    for same in equivalents(digits):
        np.testing.assert_array_equal(data.bilinear_resize(same, 5), expected)
    for value in BAD_SIZE:
        check(lambda size: data.bilinear_resize(digits, size), "size", {"size": value})
    for value in ["abc", None, digits[0], digits[:, :, :4], digits.astype(np.complex128)]:
        check(lambda images: data.bilinear_resize(images, 5), "images", {"images": value})


def test_load_digits_and_dataset_arguments():
    for value in [*BAD_INT, 0, 1797, 10**9]:
        check(lambda test_size: data.load_digits_28(test_size), "test_size", {"test_size": value})
    for name in ("n_train", "n_test"):
        for value in [v for v in BAD_INT if v is not None] + [0, 10**9]:
            check(lambda **bad: data.load_dataset(source="digits", **bad), name, {name: value})
    check(lambda **bad: data.load_dataset(**bad), "source", {"source": "mnist"})
    check(lambda **bad: data.load_dataset(**bad), "download", {"download": "yes"})


def test_timing_arguments():
    for value in [*BAD_INT, 0]:
        check(lambda repeats: timing.time_interleaved({}, repeats), "repeats", {"repeats": value})
    check(lambda **bad: timing.paired_ratio([1.0], **bad), "times", {"reference": [1.0, 2.0]})


def test_run_python_arguments():
    from companion.runtime import run_python

    check(lambda **bad: run_python(**bad), "code", {"code": b"print(1)"})
    for value in ("yes", 2, -1, "1"):
        check(lambda **bad: run_python("pass", **bad), "onednn", {"onednn": value})
    for value in [*BAD_INT, 0]:
        if value is not None:
            check(lambda **bad: run_python("pass", **bad), "threads", {"threads": value})
