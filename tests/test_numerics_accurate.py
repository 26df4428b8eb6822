"""companion.numerics.accurate: the three modes of accurate_conv2d against exact oracles."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import numerics
from companion.numerics import (
    accurate_conv2d,
    compensated_error_bound,
    conv_error_bound,
    conv_magnitude,
    ulp,
    ulp_distance,
)
from companion.numpy_conv import conv2d
from tests.helpers import (
    DTYPES,
    FINFO,
    SETTINGS,
    correctly_rounded,
    finite_floats,
    ieee_conv,
    same_values,
    swapped,
)


def exact_conv_fractions(x, w):
    """A VALID, stride-1 NHWC convolution in rational arithmetic: an array of Fractions."""
    n, h, wd, _ = x.shape
    kh, kw, _, k = w.shape
    out = np.empty((n, h - kh + 1, wd - kw + 1, k), object)
    xf = np.vectorize(lambda v: Fraction(float(v)), otypes=[object])(x)
    wf = np.vectorize(lambda v: Fraction(float(v)), otypes=[object])(w)
    for b in range(n):
        for i in range(h - kh + 1):
            for j in range(wd - kw + 1):
                for o in range(k):
                    window = xf[b, i : i + kh, j : j + kw, :] * wf[..., o]
                    out[b, i, j, o] = sum(window.ravel(), Fraction())
    return out


def exact_conv(x, w, dtype):
    """The same, each output correctly rounded to ``dtype``."""
    exact = exact_conv_fractions(x, w)
    out = np.empty(exact.shape, dtype)
    for index, value in np.ndenumerate(exact):
        out[index] = correctly_rounded(value, np.dtype(dtype))
    return out


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("kind", ["normal", "cancel"])
def test_exact_mode_is_correctly_rounded(name, kind):
    dtype = DTYPES[name]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 5, 4, 3))
    w = rng.standard_normal((3, 2, 3, 2))
    if kind == "cancel":  # the filter's halves cancel on a smooth input
        x = 1 + x * 1e-3
        w[..., 1] = -w[..., 0] * (1 + rng.standard_normal((3, 2, 3)) * 1e-3)
    x, w = x.astype(dtype), w.astype(dtype)
    result = accurate_conv2d(x, w, 1, "VALID", mode="exact")
    assert result.dtype == dtype
    assert result.tobytes() == exact_conv(x, w, dtype).tobytes()


@pytest.mark.parametrize("name", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "cancel", "range"])
def test_compensated_and_float64_modes_within_their_bounds(name, kind):
    dtype = DTYPES[name]
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 9, 9, 64))
    w = rng.standard_normal((3, 3, 64, 4))
    if kind == "cancel":
        x = 1 + x * 1e-4
        w[..., 1] = -w[..., 0]
        w[0, 0, 0, 1] *= 1 + 1e-6
    elif kind == "range":
        x = x * 2.0 ** rng.integers(-30, 31, x.shape)
    x, w = x.astype(dtype), w.astype(dtype)
    exact = accurate_conv2d(x, w, 1, "SAME", mode="exact").astype(np.float64)
    ulps = ulp(exact, dtype)  # the exact result is within half of this of the true sum
    magnitude = conv_magnitude(x, w, 1, "SAME")
    n = 3 * 3 * 64
    compensated = accurate_conv2d(x, w, 1, "SAME", mode="compensated")
    bound = compensated_error_bound(magnitude, n, dtype, exact=np.abs(exact) + ulps)
    numerics.assert_conv_close(compensated, exact, bound + ulps / 2)
    wide = accurate_conv2d(x, w, 1, "SAME", mode="float64")
    bound = conv_error_bound(x, w, 1, "SAME", accumulate_dtype="float64")
    numerics.assert_conv_close(wide, exact, bound + ulps / 2)
    if kind != "cancel":  # without heavy cancellation both are at most one ULP away
        assert ulp_distance(compensated, exact.astype(dtype)).max() <= 1
        if name == "float32":
            assert ulp_distance(wide, exact.astype(dtype)).max() <= 1


@st.composite
def geometries(draw):
    data_format = draw(st.sampled_from(["NHWC", "NCHW"]))
    groups, depth, per_group = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 2)),
    )
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    channels = groups * depth
    shape = (draw(st.integers(0, 2)), h, w, channels)
    if data_format == "NCHW":
        shape = (shape[0], channels, h, w)
    pads = draw(
        st.sampled_from(["SAME", "VALID"])
        | st.tuples(st.integers(0, 2), st.integers(0, 2)).map(
            lambda p: (
                [[0, 0], list(p), list(p), [0, 0]]
                if data_format == "NHWC"
                else [[0, 0], [0, 0], list(p), list(p)]
            )
        )
    )
    return {
        "input_shape": shape,
        "filter_shape": (kh, kw, depth, groups * per_group),
        "strides": draw(st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3))),
        "dilations": draw(st.none() | st.integers(1, 2)),
        "padding": pads,
        "data_format": data_format,
        "dtype": draw(st.sampled_from(["float16", "bfloat16", "float32", "float64"])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@settings(max_examples=150, **SETTINGS)
@given(config=geometries())
def test_every_mode_follows_conv2d_exactly_on_integers(config):
    # Small integers make every sum exact, so all modes must equal numpy_conv.conv2d bitwise:
    # this checks the padding, strides, dilations, groups and layouts.
    rng = np.random.default_rng(config["seed"])
    dtype = DTYPES[config["dtype"]]
    x = rng.integers(-3, 4, config["input_shape"]).astype(dtype)
    w = rng.integers(-3, 4, config["filter_shape"]).astype(dtype)
    args = {k: config[k] for k in ("strides", "padding", "data_format", "dilations")}
    try:
        expected = conv2d(x, w, **args)
    except ValueError as error:
        with pytest.raises(ValueError, match=re.escape(str(error)[:20])):
            accurate_conv2d(x, w, **args)
        return
    for mode in numerics.ACCURATE_MODES:
        result = accurate_conv2d(x, w, **args, mode=mode)
        assert result.dtype == dtype and result.shape == expected.shape
        assert result.tobytes() == expected.tobytes(), mode


def test_exact_mode_settles_outputs_at_a_rounding_boundary():
    # float64 sums land on float32 midpoints: the exact sums lie just above, just below, or
    # on them (a true tie, to even), so only exact arithmetic decides.
    x = np.zeros((1, 3, 1, 3), np.float32)
    x[0, :, 0, :2] = [1.0, 2.0**-24]
    x[0, :, 0, 2] = [2.0**-60, -(2.0**-60), 0.0]
    w = np.ones((1, 1, 3, 1), np.float32)
    result = accurate_conv2d(x, w, 1, "VALID", mode="exact")[0, :, 0, 0]
    np.testing.assert_array_equal(result, np.float32([1 + 2.0**-23, 1.0, 1.0]))
    assert result.tobytes() == exact_conv(x, w, np.float32)[0, :, 0, 0].tobytes()


def test_accurate_conv2d_refuses():
    x, w = np.ones((1, 4, 4, 1), np.float32), np.ones((3, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"^mode: "):
        accurate_conv2d(x, w, 1, "SAME", mode="quad")
    with pytest.raises(ValueError, match=r"^input: .*int32"):
        accurate_conv2d(x.astype(np.int32), w, 1, "SAME")
    with pytest.raises(ValueError, match=r"^input: .*rank-4"):
        accurate_conv2d(x[0], w, 1, "SAME")
    with pytest.raises(ValueError, match=r"^filters: .*rank-4"):
        accurate_conv2d(x, w[0], 1, "SAME")
    with pytest.raises(ValueError, match=r"^padding: "):
        accurate_conv2d(x, w, 1, "FULL")


def test_conv_magnitude_is_an_upper_bound_close_to_conv_abs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 5, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    magnitude = conv_magnitude(x, w, 1, "VALID")
    exact = exact_conv_fractions(np.abs(x), np.abs(w))
    for index, value in np.ndenumerate(exact):
        assert value <= Fraction(float(magnitude[index])) <= value * (1 + 3 * Fraction(18, 2**53))


def test_compensated_error_bound_arguments():
    assert compensated_error_bound(0.0, 0, np.float32) == 0.0
    assert compensated_error_bound(np.ones(3), 5, np.float32).shape == (3,)
    with pytest.raises(ValueError, match=r"^magnitude: "):
        compensated_error_bound(-1.0, 3, np.float32)
    with pytest.raises(ValueError, match=r"^n: "):
        compensated_error_bound(1.0, -3, np.float32)


# --------------------------------------------------------------------------
# Reliability (issue 13): byte order, overflow, infinities and NaN
# --------------------------------------------------------------------------


def compensated_within_its_bound(result, x, w, dtype):
    """|result − s| ≤ u·|s| + γ_n²·Σ|x·w| + half an ULP of the rounded s, in rationals (VALID,
    stride 1, NHWC), for every output whose exact value is finite; elsewhere IEEE's value."""
    expected = ieee_conv(x, w, dtype)
    fmt = numerics.float_format(np.float64 if dtype == np.float64 else np.float32)
    u = Fraction(fmt.unit_roundoff)
    n = int(np.prod(w.shape[:3]))
    g = n * u / (1 - n * u)
    for index, want in np.ndenumerate(expected):
        got = result[index]
        if not np.isfinite(float(want)):
            assert same_values(np.asarray(got), np.asarray(want)), index
            continue
        assert np.isfinite(float(got)), index
        b, i, j, o = index
        window = x[b, i : i + w.shape[0], j : j + w.shape[1], :]
        pairs = list(zip(window.ravel().tolist(), w[..., o].ravel().tolist(), strict=True))
        exact = sum((Fraction(float(p)) * Fraction(float(q)) for p, q in pairs), Fraction(0))
        size = sum((abs(Fraction(float(p)) * Fraction(float(q))) for p, q in pairs), Fraction(0))
        half_ulp = Fraction(float(ulp(float(want), dtype))) / 2
        assert abs(Fraction(float(got)) - exact) <= u * abs(exact) + g * g * size + half_ulp


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
@pytest.mark.parametrize("mode", numerics.ACCURATE_MODES)
def test_accurate_modes_read_either_byte_order(name, mode):
    rng = np.random.default_rng(30)
    x = rng.standard_normal((1, 5, 4, 3)).astype(name)
    w = rng.standard_normal((2, 3, 3, 2)).astype(name)
    native = accurate_conv2d(x, w, 1, "SAME", mode=mode)
    for xs, ws in [(swapped(x), w), (x, swapped(w)), (swapped(x), swapped(w))]:
        result = accurate_conv2d(xs, ws, 1, "SAME", mode=mode)
        assert result.dtype.isnative and result.tobytes() == native.tobytes()


def near_the_maximum(rng, name, shape):
    """Values from a quarter of the format's largest value to the largest, both signs."""
    largest = float(FINFO[name].max)
    values = rng.uniform(0.25, 1.0, shape) * rng.choice([-1.0, 1.0], shape) * largest
    return np.clip(values, -largest, largest).astype(DTYPES[name])


@pytest.mark.parametrize("name", list(DTYPES))
def test_accurate_modes_near_the_formats_largest_value(name):
    # Partial sums overflow the working precision (and for float64 data, float64 itself),
    # while many exact sums cancel back into range: exact mode rounds each correctly (to ±inf
    # only beyond the largest value), compensated stays within its bound.
    dtype = DTYPES[name]
    rng = np.random.default_rng(31)
    x = near_the_maximum(rng, name, (2, 4, 4, 2))
    w = rng.choice([1.0, -1.0, 0.5, -0.5, 0.75], (2, 2, 2, 3)).astype(dtype)
    expected = ieee_conv(x, w, dtype)
    exact = accurate_conv2d(x, w, 1, "VALID", mode="exact")
    assert same_values(exact, expected)
    finite = np.isfinite(expected.astype(np.float64))
    assert finite.any() and not finite.all()  # both cases occur
    compensated = accurate_conv2d(x, w, 1, "VALID", mode="compensated")
    compensated_within_its_bound(compensated, x, w, dtype)
    wide = accurate_conv2d(x, w, 1, "VALID", mode="float64")
    for result in (exact, compensated):  # finite wherever the float64 mode is
        assert np.all(np.isfinite(result.astype(np.float64))[np.isfinite(wide.astype(np.float64))])


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float64"])
def test_veltkamp_split_does_not_overflow(name):
    # 1e35 (float32) or 1e300 (float64): (2**s + 1)·x overflowed, and the error terms of the
    # compensated mode became NaN.
    dtype = DTYPES[name]
    big = {"float32": 1e35, "bfloat16": 1e35, "float64": 1e300}[name]
    rng = np.random.default_rng(32)
    x = (rng.uniform(1, 2, (1, 4, 4, 2)) * big).astype(dtype)
    w = rng.uniform(-1, 1, (2, 2, 2, 2)).astype(dtype)
    compensated = accurate_conv2d(x, w, 1, "VALID", mode="compensated")
    assert np.all(np.isfinite(compensated.astype(np.float64)))
    compensated_within_its_bound(compensated, x, w, dtype)
    assert same_values(accurate_conv2d(x, w, 1, "VALID", mode="exact"), ieee_conv(x, w, dtype))


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("mode", numerics.ACCURATE_MODES)
def test_accurate_modes_propagate_infinities_and_nan_as_ieee(name, mode):
    dtype = DTYPES[name]
    rng = np.random.default_rng(33)
    x = rng.standard_normal((2, 5, 5, 2)).astype(dtype)
    w = rng.standard_normal((3, 3, 2, 2)).astype(dtype)
    w[1, 1, 0, 0] = 0  # an infinite input times a zero weight: NaN
    x[0, 1, 1, 0], x[0, 3, 3, 1], x[1, 2, 2, 0] = np.inf, -np.inf, np.nan
    x[1, 0, 4, 1] = np.inf
    w[0, 0, 1, 1] = np.inf  # reaches the padding too: 0·inf there, as numpy_conv computes it
    result = accurate_conv2d(x, w, 1, "SAME", mode=mode)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = ieee_conv(padded, w, dtype)
    wide = accurate_conv2d(x, w, 1, "SAME", mode="float64")
    special = ~np.isfinite(expected.astype(np.float64))
    assert special.any() and not special.all()
    assert same_values(result[special], expected[special])
    assert same_values(wide[special], expected[special])  # the float64 mode agrees
    if mode == "exact":
        assert same_values(result, expected)
    else:
        assert np.all(np.isfinite(result.astype(np.float64))[~special])


@pytest.mark.parametrize("name", list(DTYPES))
def test_exact_mode_with_subnormal_products(name):
    # For float64 data the products underflow: TwoProduct's error term is not exact there.
    dtype = DTYPES[name]
    info = FINFO[name]
    rng = np.random.default_rng(34)
    tiny = float(info.smallest_normal)
    scale = math.sqrt(tiny) if name == "float64" else tiny
    x = (rng.uniform(-4, 4, (1, 4, 4, 2)) * scale).astype(dtype)
    w = (rng.uniform(-4, 4, (2, 2, 2, 2)) * (math.sqrt(tiny) if name == "float64" else 1.0)).astype(
        dtype
    )
    expected = ieee_conv(x, w, dtype)
    assert same_values(accurate_conv2d(x, w, 1, "VALID", mode="exact"), expected)


def test_accurate_conv2d_refuses_complex_object_and_string_operands():
    x, w = np.ones((1, 4, 4, 1), np.float32), np.ones((3, 3, 1, 1), np.float32)
    for bad_w in (w.astype(complex), w.astype(object), w.astype(str)):
        with pytest.raises(ValueError) as expected:
            conv2d(x, bad_w, 1, "SAME")
        for mode in numerics.ACCURATE_MODES:
            with pytest.raises(ValueError, match=re.escape(str(expected.value))):
                accurate_conv2d(x, bad_w, 1, "SAME", mode=mode)
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            conv_magnitude(x, bad_w, 1, "SAME")
    for bad_x in (x.astype(complex), x.astype(object), x.astype(str)):
        with pytest.raises(ValueError, match=r"^input: "):
            accurate_conv2d(bad_x, w, 1, "SAME")


@pytest.mark.parametrize("name", list(DTYPES))
def test_compensated_mode_with_products_in_the_underflow_range(name):
    # TwoProduct's error term is not exact there: those outputs are recomputed exactly.
    dtype = DTYPES[name]
    info = FINFO[name]
    rng = np.random.default_rng(35)
    root = math.sqrt(float(info.smallest_normal))
    x = (rng.uniform(-4, 4, (1, 4, 4, 2)) * root).astype(dtype)
    w = (rng.uniform(-4, 4, (2, 2, 2, 2)) * root).astype(dtype)
    x[0, 0, 0, 0] = float(info.smallest_subnormal) * 3
    compensated = accurate_conv2d(x, w, 1, "VALID", mode="compensated")
    compensated_within_its_bound(compensated, x, w, dtype)


@st.composite
def non_finite_cases(draw):
    config = draw(geometries())
    positions = draw(
        st.lists(
            st.tuples(st.integers(0, 10**6), st.sampled_from([np.inf, -np.inf, np.nan])),
            min_size=1,
            max_size=3,
        )
    )
    in_filter = draw(st.booleans())
    return config, positions, in_filter


@settings(max_examples=60, **SETTINGS)
@given(case=non_finite_cases())
def test_every_mode_agrees_with_the_float64_mode_on_non_finite_outputs(case):
    # Any geometry (strides, dilations, groups, padding, NCHW): where the float64 mode is not
    # finite, every mode gives the same IEEE value; where it is finite, every mode is finite.
    config, positions, in_filter = case
    rng = np.random.default_rng(config["seed"])
    dtype = DTYPES[config["dtype"]]
    x = rng.standard_normal(config["input_shape"]).astype(dtype)
    w = rng.integers(-1, 2, config["filter_shape"]).astype(dtype)  # zeros: 0·inf
    target = w if in_filter else x
    for position, value in positions:
        if target.size:
            target.reshape(-1)[position % target.size] = value
    args = {k: config[k] for k in ("strides", "padding", "data_format", "dilations")}
    try:
        wide = accurate_conv2d(x, w, **args, mode="float64").astype(np.float64)
    except ValueError:
        return  # a geometry conv2d rejects: checked in the test above
    special = ~np.isfinite(wide)
    for mode in ("compensated", "exact"):
        result = accurate_conv2d(x, w, **args, mode=mode).astype(np.float64)
        assert same_values(result[special], wide[special]), mode
        assert np.all(np.isfinite(result[~special])), mode


@settings(max_examples=60, **SETTINGS)
@given(name=st.sampled_from(list(DTYPES)), data=st.data())
def test_exact_and_compensated_modes_on_any_finite_values(name, data):
    # Operands anywhere in the format's range (subnormals, values near the largest one): exact
    # mode is IEEE's correctly rounded value, compensated is within its bound, both finite
    # wherever that value is.
    dtype = DTYPES[name]
    x = np.array([data.draw(finite_floats(name)) for _ in range(8)], dtype).reshape(1, 2, 2, 2)
    w = np.array([data.draw(finite_floats(name)) for _ in range(8)], dtype).reshape(2, 2, 2, 1)
    assert same_values(accurate_conv2d(x, w, 1, "VALID", mode="exact"), ieee_conv(x, w, dtype))
    compensated = accurate_conv2d(x, w, 1, "VALID", mode="compensated")
    compensated_within_its_bound(compensated, x, w, dtype)


@pytest.mark.parametrize("name", list(DTYPES))
def test_at_the_overflow_threshold_the_exact_value_decides(name):
    # max + half its spacing is the threshold: ties go to the even side, beyond the largest
    # value. Just above, the exact value overflows even if some order of float64 additions
    # stays finite; just below, it is the largest value even if some order overflows.
    dtype = DTYPES[name]
    largest = float(FINFO[name].max)
    quarter = float(FINFO[name].eps) * 2.0 ** (FINFO[name].maxexp - 3)  # a quarter spacing
    tiny = float(FINFO[name].smallest_subnormal)
    w = np.ones((1, 4, 1, 1), dtype)
    for terms, expected in [
        ([largest, quarter, quarter, tiny], np.inf),
        ([largest, quarter, quarter, -tiny], largest),
        ([largest, quarter, quarter, 0.0], np.inf),  # a tie: to even
        ([-largest, -quarter, -quarter, tiny], -largest),
    ]:
        x = np.array(terms, dtype).reshape(1, 1, 4, 1)
        for mode in ("compensated", "exact"):
            result = accurate_conv2d(x, w, 1, "VALID", mode=mode)
            assert same_values(result.ravel(), np.array([expected], dtype)), (terms, mode)
