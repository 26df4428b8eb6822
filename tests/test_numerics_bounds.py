"""companion.numerics.bounds: γ_n, the dot-product and convolution bounds (which must hold,
adversarially) and the assertion's report."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import numerics
from companion.numerics import (
    assert_conv_close,
    conv_error_bound,
    dot_error_bound,
    gamma,
    unit_roundoff,
)
from companion.numpy_conv import conv2d
from tests.helpers import (
    BFLOAT16,
    DTYPES,
    swapped,
)


def test_gamma():
    u = 2.0**-24
    assert gamma(0, np.float32) == 0.0
    assert gamma(9, np.float32) == 9 * u / (1 - 9 * u)
    assert gamma(2**24, np.float32) == math.inf  # n·u = 1: no guarantee
    assert gamma(2**10, np.float16) == 1.0  # n·u = 1/2
    values = gamma(np.array([1, 2, 3]), np.float64)
    assert values.shape == (3,) and np.all(np.diff(values) > 0)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"^n: "):
            gamma(bad, np.float32)


# --------------------------------------------------------------------------
# The dot-product bound holds, for every order and adversarial data
# --------------------------------------------------------------------------


def exact_dot(x: np.ndarray, y: np.ndarray) -> float:
    """Σ x·y rounded once to float64 (the products of float32/16 values are exact in float64)."""
    return math.fsum((x.astype(np.float64) * y.astype(np.float64)).tolist())


def sequential(x, y, dtype):
    """Left to right, every product and sum rounded to dtype."""
    total = dtype.type(0)
    for a, b in zip(x.astype(dtype), y.astype(dtype), strict=True):
        total = dtype.type(total + dtype.type(a * b))
    return total


def pairwise(products, dtype):
    if len(products) == 1:
        return products[0]
    half = len(products) // 2
    return dtype.type(pairwise(products[:half], dtype) + pairwise(products[half:], dtype))


def evaluations(x, y, dtype):
    """Several orders of summation for the same dot product, all in dtype."""
    products = [dtype.type(a * b) for a, b in zip(x, y, strict=True)]
    yield sequential(x, y, dtype)
    yield sequential(x[::-1], y[::-1], dtype)
    order = np.argsort(np.abs(x.astype(np.float64) * y.astype(np.float64)))[::-1]
    yield sequential(x[order], y[order], dtype)  # largest first: the worst for small terms
    yield pairwise(products, dtype) if products else dtype.type(0)


ADVERSARIAL = st.sampled_from(["normal", "cancel", "range", "tiny"])


def make(rng, n, kind, dtype):
    if kind == "normal":
        x, y = rng.standard_normal(n), rng.standard_normal(n)
    elif kind == "cancel":  # pairs that cancel to leave a small remainder
        x = np.repeat(rng.standard_normal((n + 1) // 2), 2)[:n] * 1000
        y = np.tile([1.0, -1.0], (n + 1) // 2)[:n] * (1 + rng.standard_normal(n) * 1e-4)
    elif kind == "range":  # huge dynamic range
        x = rng.standard_normal(n) * 2.0 ** rng.integers(-12, 13, n)
        y = rng.standard_normal(n)
    else:  # products at the bottom of the range: float16 subnormals
        x, y = rng.standard_normal(n) * 2.0**-7, rng.standard_normal(n) * 2.0**-7
    return x.astype(dtype), y.astype(dtype)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 300),
    kind=ADVERSARIAL,
    name=st.sampled_from(["float16", "float32", "bfloat16"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dot_error_bound_holds_for_every_order(n, kind, name, seed):
    dtype = BFLOAT16 if name == "bfloat16" else np.dtype(name)
    if name == "float16" and kind in ("cancel", "range"):
        kind = "normal"  # stays far from float16's overflow
    x, y = make(np.random.default_rng(seed), n, kind, dtype)
    exact = exact_dot(x, y)
    magnitude = math.fsum(np.abs(x.astype(np.float64) * y.astype(np.float64)).tolist())
    bound = dot_error_bound(magnitude, n, dtype)
    # fsum's answer is the exact sum rounded once to float64: allow that half ULP.
    slack = abs(exact) * 2.0**-53
    for computed in evaluations(x, y, dtype):
        assert abs(float(computed) - exact) <= bound + slack


def test_the_underflow_term_is_needed():
    # 2**-13 · 2**-13 = 2**-26 is below half of float16's smallest subnormal (2**-24):
    # the product rounds to 0, an absolute error that no relative bound covers.
    x = np.float16([2.0**-13])
    computed = float(sequential(x, x, np.dtype(np.float16)))
    exact = 2.0**-26
    assert computed == 0.0
    bound = dot_error_bound(exact, 1, np.float16)
    assert abs(computed - exact) <= bound
    assert abs(computed - exact) > gamma(1, np.float16) * exact


def test_wider_accumulation_adds_one_rounding_of_the_output():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(500).astype(np.float16), rng.standard_normal(500).astype(np.float16)
    computed = np.float16(sequential(x, y, np.dtype(np.float32)))
    exact = exact_dot(x, y)
    magnitude = math.fsum(np.abs(x.astype(np.float64) * y.astype(np.float64)).tolist())
    wide = dot_error_bound(magnitude, 500, np.float16, accumulate_dtype=np.float32)
    narrow = dot_error_bound(magnitude, 500, np.float16)
    assert abs(float(computed) - exact) <= wide < narrow
    # The output rounding term dominates: about u(float16)·|exact|.
    assert wide >= unit_roundoff(np.float16) * abs(exact)


def test_narrower_accumulation_rounds_the_operands_first():
    # float32 data on a bfloat16 unit: operands rounded to bfloat16, products and sums too.
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    computed = float(sequential(x, y, BFLOAT16))
    exact = exact_dot(x, y)
    magnitude = math.fsum(np.abs(x.astype(np.float64) * y.astype(np.float64)).tolist())
    bound = dot_error_bound(magnitude, 64, np.float32, accumulate_dtype="bfloat16")
    assert abs(computed - exact) <= bound
    assert bound >= gamma(66, "bfloat16") * magnitude


def test_dot_error_bound_arguments():
    assert dot_error_bound(0.0, 0, np.float32) == 0.0
    assert dot_error_bound(np.ones((2, 3)), 5, np.float32).shape == (2, 3)
    assert dot_error_bound(1.0, 2**24, np.float32) == math.inf
    with pytest.raises(ValueError, match=r"^magnitude: "):
        dot_error_bound(-1.0, 3, np.float32)
    with pytest.raises(ValueError, match=r"^n: "):
        dot_error_bound(1.0, 2.5, np.float32)
    with pytest.raises(ValueError, match=r"^dtype: "):
        dot_error_bound(1.0, 3, np.int32)


# --------------------------------------------------------------------------
# conv_error_bound
# --------------------------------------------------------------------------


def python_conv(x, w, dtype):
    """A direct NHWC, VALID, stride-1 convolution with every operation rounded to dtype."""
    n, h, wd, _ = x.shape
    kh, kw, _, k = w.shape
    out = np.zeros((n, h - kh + 1, wd - kw + 1, k))
    for b in range(n):
        for i in range(h - kh + 1):
            for j in range(wd - kw + 1):
                for o in range(k):
                    window = x[b, i : i + kh, j : j + kw, :].reshape(-1)
                    out[b, i, j, o] = sequential(window, w[..., o].reshape(-1), dtype)
    return out


def test_conv_error_bound_is_the_dot_bound_of_conv_abs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    bound = conv_error_bound(x, w, 1, "VALID")
    magnitude = conv2d(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), 1, "VALID")
    expected = gamma(18, np.float32) * magnitude
    assert bound.shape == (2, 4, 4, 4) and bound.dtype == np.float64
    # rtol: the bound enlarges conv(|x|, |w|) by its own float64 error, about 18·2**-53.
    assert np.all(bound >= expected) and np.allclose(bound, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_conv_error_bound_holds_for_a_sequential_evaluation(name):
    rng = np.random.default_rng(4)
    dtype = np.dtype(name)
    x = rng.standard_normal((1, 5, 5, 4)).astype(dtype)
    w = rng.standard_normal((3, 3, 4, 2)).astype(dtype)
    desired = conv2d(x.astype(np.float64), w.astype(np.float64), 1, "VALID")
    bound = conv_error_bound(x, w, 1, "VALID") + conv_error_bound(
        x.astype(np.float64), w.astype(np.float64), 1, "VALID"
    )
    ratio = assert_conv_close(python_conv(x, w, dtype), desired, bound)
    assert 0 < ratio <= 1


def test_conv_error_bound_converts_the_filters_and_takes_the_conv2d_arguments():
    x = np.ones((1, 4, 4, 2), np.float16)
    w = np.full((2, 2, 1, 4), 0.1)  # float64, converted to float16 as conv2d does
    bound = conv_error_bound(x, w, [1, 2], "SAME", dilations=1)
    assert bound.shape == (1, 4, 2, 4)
    wider = conv_error_bound(x, w, [1, 2], "SAME", accumulate_dtype=np.float32)
    assert np.all(wider < bound)
    nchw = conv_error_bound(x.transpose(0, 3, 1, 2), w, [1, 2], "SAME", "NCHW")
    np.testing.assert_array_equal(nchw, bound.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"^input: "):
        conv_error_bound(x.astype(np.int32), w, 1, "SAME")
    with pytest.raises(ValueError, match=r"^padding: "):
        conv_error_bound(x, w, 1, "FULL")


# --------------------------------------------------------------------------
# assert_conv_close
# --------------------------------------------------------------------------


def test_assert_conv_close_passes_and_returns_the_largest_ratio():
    desired = np.array([[1.0, -2.0], [0.0, 4.0]])
    actual = desired + np.array([[1e-7, 0.0], [-3e-7, 0.0]])
    ratio = assert_conv_close(actual.astype(np.float32), desired, 1e-6)
    assert 0.25 < ratio < 0.35
    assert assert_conv_close(desired, desired, 0.0) == 0.0
    assert assert_conv_close(np.zeros((0, 3)), np.zeros((0, 3)), 1.0) == 0.0


def test_assert_conv_close_reports_count_error_ratio_and_place():
    desired = np.zeros((2, 3, 4))
    actual = desired.copy()
    actual[1, 2, 3] = 5e-3  # the largest error
    actual[0, 1, 2] = 2e-3  # a larger ratio: its bound is tighter
    bound = np.full(desired.shape, 1e-3)
    bound[0, 1, 2] = 1e-4
    with pytest.raises(AssertionError) as caught:
        assert_conv_close(actual, desired, bound)
    message = str(caught.value)
    assert "2 of 24 elements" in message
    assert "largest error 0.005 at index (1, 2, 3), 5 × its bound 0.001" in message
    assert "largest ratio 0.002 at index (0, 1, 2), 20 × its bound 0.0001" in message


def test_assert_conv_close_special_values():
    desired = np.array([np.inf, -np.inf, np.nan, 1.0])
    assert_conv_close(desired.astype(np.float32), desired, 0.0)
    for wrong in (
        [np.inf, np.inf, np.nan, 1.0],
        [np.inf, -np.inf, 0.0, 1.0],
        [np.inf, -np.inf, np.nan, np.nan],
    ):
        with pytest.raises(AssertionError, match="1 of 4 elements"):
            assert_conv_close(np.array(wrong), desired, 1.0)


def test_assert_conv_close_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^desired: .*float32"):
        assert_conv_close(np.zeros(3), np.zeros(3, np.float32), 1.0)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_conv_close(np.zeros(3), np.zeros(4), 1.0)
    with pytest.raises(ValueError, match=r"^bound: "):
        assert_conv_close(np.zeros(3), np.zeros(3), np.ones(2))
    for bad in (-1.0, np.nan):
        with pytest.raises(ValueError, match=r"^bound: "):
            assert_conv_close(np.zeros(3), np.zeros(3), bad)


def test_public_api():
    core = {
        "FloatFormat",
        "assert_conv_close",
        "conv_error_bound",
        "dot_error_bound",
        "float_format",
        "gamma",
        "unit_roundoff",
    }
    chapter_6 = {  # tested in the other tests/test_numerics_*.py
        "ACCURATE_MODES",
        "SUMMATION_METHODS",
        "accurate_conv2d",
        "bound_probability",
        "compensated_error_bound",
        "conv_magnitude",
        "fma_conv2d",
        "fma_dot",
        "probabilistic_error_bound",
        "probabilistic_gamma",
        "round_to_format",
        "summation",
        "summation_error_bound",
        "ulp",
        "ulp_distance",
    }
    assert set(numerics.__all__) == core | chapter_6


# --------------------------------------------------------------------------
# Reliability (issue 13): non-finite values, infinite bounds, complex values, byte order
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [0.0, 1.0, 1e300, np.finfo(np.float64).max])
def test_assert_conv_close_never_passes_a_non_finite_mismatch(bound):
    inf, nan = np.inf, np.nan
    for actual, desired in [
        (nan, 1.0),
        (1.0, nan),
        (inf, 1.0),
        (1.0, -inf),
        (-inf, inf),
        (nan, inf),
        (inf, nan),
        (1e308, -1e308),  # the difference overflows float64
    ]:
        for dtype in ("float32", "float64"):
            if dtype == "float32" and abs(actual) == 1e308:
                continue
            with pytest.raises(AssertionError, match="1 of 2 elements"):
                assert_conv_close(np.array([actual, 0.0], dtype), np.array([desired, 0.0]), bound)
    for same in (inf, -inf, nan):  # the same non-finite value agrees, whatever the bound
        assert assert_conv_close(np.float32([same, 1.0]), np.array([same, 1.0]), bound) == 0.0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, -1.0, [1.0, np.inf]])
def test_assert_conv_close_refuses_a_bound_that_guarantees_nothing(bad):
    for actual in (np.array([np.nan, 1.0]), np.array([1.0, 1.0])):
        with pytest.raises(ValueError, match=r"^bound: "):
            assert_conv_close(actual, np.array([1.0, 1.0]), bad)


def test_assert_conv_close_refuses_complex_object_and_string_values():
    desired = np.array([1.0, 2.0])
    for bad in (desired + 1j, desired.astype(object), desired.astype(str), [1.0, "2"]):
        with pytest.raises(ValueError, match=r"^actual: "):
            assert_conv_close(bad, desired, 1.0)
        with pytest.raises(ValueError, match=r"^desired: "):
            assert_conv_close(desired, bad, 1.0)
        with pytest.raises(ValueError, match=r"^bound: "):
            assert_conv_close(desired, desired, bad)
    with pytest.raises(ValueError, match=r"^bound: "):
        assert_conv_close(desired, desired, 1e-3 + 1e-3j)  # never the real part alone


def test_assert_conv_close_reads_either_byte_order_and_layout():
    rng = np.random.default_rng(50)
    desired = rng.standard_normal((3, 4))
    actual = desired.astype(np.float32)
    bound = np.full((3, 4), 1e-7)
    ratio = assert_conv_close(actual, desired, bound)
    assert assert_conv_close(swapped(actual), swapped(desired), swapped(bound)) == ratio
    wide = np.repeat(desired, 2, axis=1)
    assert assert_conv_close(actual, wide[:, ::2], bound) == ratio
    assert assert_conv_close(actual.T.copy().T, desired, bound[:1]) == ratio


@pytest.mark.parametrize("name", list(DTYPES))
def test_conv_error_bound_with_infinities_and_nan(name):
    # Where a non-finite operand decides an output, every evaluation gives IEEE's value:
    # the bound is 0 there (exact match), and finite elsewhere.
    dtype = DTYPES[name]
    rng = np.random.default_rng(51)
    x = rng.standard_normal((1, 6, 6, 2)).astype(dtype)
    w = rng.standard_normal((3, 3, 2, 2)).astype(dtype)
    x[0, 1, 1, 0], x[0, 4, 4, 1] = np.inf, np.nan
    bound = conv_error_bound(x, w, 1, "SAME")
    reference = conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME")
    special = ~np.isfinite(reference)
    assert special.any() and not special.all()
    assert np.all(np.isfinite(bound)) and np.all(bound[special] == 0)
    assert np.all(bound[~special] > 0)
    finite_x = np.where(np.isfinite(x.astype(np.float64)), x, np.zeros((), dtype)).astype(dtype)
    np.testing.assert_array_equal(
        bound[~special], conv_error_bound(finite_x, w, 1, "SAME")[~special]
    )
    for mode in numerics.ACCURATE_MODES:
        accurate = numerics.accurate_conv2d(x, w, 1, "SAME", mode=mode)
        assert_conv_close(
            accurate, reference, bound + conv_error_bound(x.astype(np.float64), w, 1, "SAME")
        )
    wrong = reference.copy()
    wrong[special] = 0.0
    with pytest.raises(AssertionError):
        assert_conv_close(wrong, reference, bound)


def test_conv_error_bound_checks_its_operands_as_conv2d_does():
    x, w = np.ones((1, 4, 4, 1), np.float32), np.ones((3, 3, 1, 1), np.float32)
    for bad in (w.astype(complex), w.astype(object), w.astype(str), "filters", None):
        with pytest.raises(ValueError) as expected:
            conv2d(x, bad, 1, "SAME")
        assert str(expected.value).startswith("filters: ")
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            conv_error_bound(x, bad, 1, "SAME")
    for bad in (x.astype(complex), x.astype(object), x.astype(str), x[0], None):
        with pytest.raises(ValueError, match=r"^input: "):
            conv_error_bound(bad, w, 1, "SAME")
    nan_input = x.copy()
    nan_input[0, 0, 0, 0] = np.nan  # a NaN operand is data, not a negative sum
    assert conv_error_bound(nan_input, w, 1, "SAME")[0, 0, 0, 0] == 0
    native = conv_error_bound(x, w, 1, "SAME")
    assert conv_error_bound(swapped(x), swapped(w), 1, "SAME").tobytes() == native.tobytes()


def test_dot_error_bound_refuses_nan_complex_and_strings_by_name():
    for bad, match in [
        (np.nan, r"^magnitude: .*NaN"),
        (-1.0, r"^magnitude: .*negative"),
        (1.0 + 0j, r"^magnitude: .*complex"),
        ("1.0", r"^magnitude: "),
        (None, r"^magnitude: "),
    ]:
        with pytest.raises(ValueError, match=match):
            dot_error_bound(bad, 3, np.float32)
    with pytest.raises(ValueError, match=r"^exact: "):
        dot_error_bound(1.0, 3, np.float16, accumulate_dtype=np.float32, exact=np.nan)
    assert dot_error_bound(np.inf, 3, np.float32) == math.inf  # no guarantee, not NaN
    assert dot_error_bound(0.0, 2**24, np.float32) == math.inf  # γ = inf: inf, not NaN
    assert dot_error_bound(swapped(np.ones(2)), 3, np.float32).dtype.isnative


def test_an_unknown_accumulation_format_is_named_as_the_argument():
    x, w = np.ones((1, 3, 3, 1), np.float32), np.ones((2, 2, 1, 1), np.float32)
    for bad in (np.int32, "float8", 1 + 2j):
        with pytest.raises(ValueError, match=r"^accumulate_dtype: "):
            dot_error_bound(1.0, 3, np.float32, accumulate_dtype=bad)
        with pytest.raises(ValueError, match=r"^accumulate_dtype: "):
            conv_error_bound(x, w, 1, "VALID", accumulate_dtype=bad)
