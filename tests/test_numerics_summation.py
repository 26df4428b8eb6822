"""companion.numerics.summation: each order against an exact rational oracle, within its
bound, and the FMA chain."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import numerics
from companion.numerics import (
    fma_dot,
    summation,
    summation_error_bound,
    unit_roundoff,
)
from tests.helpers import (
    BFLOAT16,
    DTYPES,
    FINFO,
    SETTINGS,
    correctly_rounded,
    finite_floats,
    rounded_or_inf,
    same_values,
    swapped,
)


def scalar_sequential(values):
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def scalar_pairwise(values):
    if len(values) == 1:
        return values[0]
    half = len(values) // 2
    return scalar_pairwise(values[:half]) + scalar_pairwise(values[half:])


def scalar_kahan(values):
    # Higham (2002), Algorithm 4.2, one scalar at a time.
    # The accumulator in the values' own format (values[0] * 0 is float64 under NumPy 1.26).
    total, error = values[0], np.zeros((), np.asarray(values[0]).dtype)[()]
    for value in values[1:]:
        temp = total
        y = value + error
        total = temp + y
        error = (temp - total) + y
    return total


ORACLES = {"sequential": scalar_sequential, "pairwise": scalar_pairwise, "kahan": scalar_kahan}


def adversarial(rng, n, kind, dtype):
    if kind == "normal":
        values = rng.standard_normal(n)
    elif kind == "cancel":  # pairs that nearly cancel
        values = np.repeat(rng.standard_normal((n + 1) // 2) * 1000, 2)[:n]
        values[1::2] *= -(1 + rng.standard_normal(len(values[1::2])) * 1e-3)
    elif kind == "range":  # huge dynamic range
        values = rng.standard_normal(n) * 2.0 ** rng.integers(-40, 41, n)
    else:  # a big value, then many small ones: sequential summation's worst case
        values = np.concatenate([[1e4], rng.random(n - 1)])
    if dtype.name in ("float16", "bfloat16"):
        values = np.clip(values, -100, 100)  # sums stay far from float16's overflow
    return values.astype(dtype)


KINDS = st.sampled_from(["normal", "cancel", "range", "big-first"])


@settings(max_examples=80, **SETTINGS)
@given(
    name=st.sampled_from(list(DTYPES)),
    n=st.integers(1, 200),
    kind=KINDS,
    seed=st.integers(0, 2**32 - 1),
)
def test_each_order_is_what_it_says_and_within_its_bound(name, n, kind, seed):
    dtype = DTYPES[name]
    values = adversarial(np.random.default_rng(seed), n, kind, dtype)
    scalars = list(values)
    exact = Fraction(0)
    for value in scalars:
        exact += Fraction(float(value))
    magnitude = math.fsum(abs(float(v)) for v in scalars)
    for method, oracle in ORACLES.items():
        result = summation(values, method)
        assert result.dtype == dtype
        assert result.tobytes() == np.asarray(oracle(scalars), dtype).tobytes(), method
    assert (
        summation(values, "exact").tobytes()
        == np.asarray(correctly_rounded(exact, dtype)).tobytes()
    )
    slack = magnitude * 2.0**-52  # the bound's own float64 evaluation
    for method in ("sequential", "pairwise", "float64", "exact"):
        error = abs(Fraction(float(summation(values, method))) - exact)
        assert error <= summation_error_bound(magnitude, n, dtype, method) + slack, method
    if name in ("float32", "float64"):  # n·u ≤ 1e-3: Kahan's first-order bound 2u, with room
        error = abs(Fraction(float(summation(values, "kahan"))) - exact)
        assert error <= 3 * unit_roundoff(dtype) * magnitude + slack


def test_exact_summation_settles_double_rounding():
    # The exact sum is just above the float32 midpoint 1 + 2**-24; fsum's float64 result is
    # the midpoint itself, which a plain conversion rounds down (ties to even).
    values = np.float32([1.0, 2.0**-24, 2.0**-60])
    assert np.float32(math.fsum(values.astype(np.float64))) == 1.0
    assert summation(values, "exact") == np.float32(1 + 2.0**-23)
    assert summation(-values, "exact") == np.float32(-(1 + 2.0**-23))
    assert summation(values[:2], "exact") == 1.0  # a true tie: to even
    # bfloat16: ml_dtypes converts float64 through float32, rounding twice.
    halves = np.array([1.0, 2.0**-8, 2.0**-30], BFLOAT16)
    assert float(summation(halves, "exact")) == 1 + 2.0**-7
    assert float(summation(halves, "float64")) == 1 + 2.0**-7


def test_the_seeds_example_and_kahan():
    x = np.array([1.2, -1.0, -0.2])
    assert summation(x, "sequential") != 0.0 and summation(x[[0, 2, 1]], "sequential") == 0.0
    assert summation(x, "exact") == summation(x[[0, 2, 1]], "exact")
    tenths = np.full(10, 0.1, np.float32)
    assert summation(tenths, "sequential") != summation(tenths, "kahan")
    assert summation(tenths, "kahan") == summation(tenths, "exact")


def test_summation_along_an_axis_and_edge_cases():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((4, 7, 5)).astype(np.float32)
    for method in numerics.SUMMATION_METHODS:
        along = summation(values, method, axis=1)
        assert along.shape == (4, 5)
        for i in range(4):
            for j in range(5):
                assert along[i, j] == summation(values[i, :, j], method)
        assert summation(np.zeros((3, 0), np.float32), method).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"^method: "):
        summation(values, "random")
    with pytest.raises(ValueError, match=r"^values: "):
        summation(np.arange(3), "sequential")
    with pytest.raises(ValueError, match=r"^method: .*Kahan"):
        summation_error_bound(1.0, 10, np.float32, "kahan")


@settings(max_examples=60, **SETTINGS)
@given(
    name=st.sampled_from(["float16", "bfloat16", "float32"]),
    n=st.integers(1, 40),
    kind=KINDS,
    seed=st.integers(0, 2**32 - 1),
)
def test_fma_dot_rounds_once_per_term(name, n, kind, seed):
    dtype = DTYPES[name]
    rng = np.random.default_rng(seed)
    x, y = adversarial(rng, n, kind, dtype), adversarial(rng, n, "normal", dtype)
    total = np.zeros((), dtype)
    for a, b in zip(x, y, strict=True):  # s <- RN(s + a·b), in rational arithmetic
        exact = Fraction(float(total)) + Fraction(float(a)) * Fraction(float(b))
        total = np.asarray(correctly_rounded(exact, dtype))
    assert fma_dot(x, y).tobytes() == total.tobytes()
    stacked = fma_dot(np.stack([x, -x]), y)  # along the last axis, row by row
    assert stacked[0].tobytes() == total.tobytes() and stacked[1] == -total


def test_fma_dot_refuses_float64_and_mixed_dtypes():
    with pytest.raises(ValueError, match=r"^x: "):
        fma_dot(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"^y: "):
        fma_dot(np.ones(3, np.float32), np.ones(3, np.float16))


# --------------------------------------------------------------------------
# Reliability (issue 13): byte order, overflow, infinities and NaN, aliasing
# --------------------------------------------------------------------------


def exact_sum(values, dtype):
    return rounded_or_inf(sum((Fraction(float(v)) for v in values), Fraction(0)), dtype)


@pytest.mark.parametrize("name", list(DTYPES))
def test_exact_summation_near_the_largest_value(name):
    dtype = DTYPES[name]
    largest = float(FINFO[name].max)
    half_step = float(FINFO[name].eps) * 2.0 ** (FINFO[name].maxexp - 2)  # half an ULP of max
    tiny = float(FINFO[name].smallest_subnormal)
    cases = [
        [largest, largest, -largest],  # math.fsum overflows on the way (float64)
        [-largest, -largest, largest, 0.5 * largest],
        [largest, half_step],  # exactly halfway to the next power of two: to even, inf
        [largest, half_step, -tiny],  # just below halfway: the largest value
        [largest, half_step / 2],
        [largest, largest],  # beyond: inf
        [-largest, -largest, -tiny],
    ]
    for case in cases:
        values = np.array(case, dtype)
        assert np.array(case, np.float64).tolist() == values.astype(np.float64).tolist()
        expected = exact_sum(values, dtype)
        assert same_values(summation(values, "exact"), expected), case


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("method", numerics.SUMMATION_METHODS)
def test_every_summation_follows_ieee_for_infinities_and_nan(name, method):
    dtype = DTYPES[name]
    inf, nan = math.inf, math.nan
    cases = {
        (inf, 1.0): inf,
        (1.0, -inf, 2.0, 3.0): -inf,
        (inf, 1.0, 1.0, inf): inf,
        (inf, -inf): nan,
        (1.0, inf, 2.0, -inf): nan,
        (nan, 1.0): nan,
        (inf, nan): nan,
    }
    for case, expected in cases.items():
        result = summation(np.array(case, dtype), method)
        assert same_values(result, np.array(expected, dtype)), case
        stacked = summation(np.array([case, case], dtype), method, axis=1)
        assert same_values(stacked, np.array([expected, expected], dtype)), case


@pytest.mark.parametrize("name", list(DTYPES))
def test_exact_summation_of_subnormals(name):
    dtype = DTYPES[name]
    tiny = float(FINFO[name].smallest_subnormal)
    rng = np.random.default_rng(40)
    for _ in range(20):
        values = (rng.integers(-(2**12), 2**12, 9) * tiny).astype(dtype)
        values[0] = np.array(float(FINFO[name].smallest_normal), dtype) * rng.choice([-1, 1])
        assert same_values(summation(values, "exact"), exact_sum(values, dtype))


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
@pytest.mark.parametrize("method", numerics.SUMMATION_METHODS)
def test_summation_reads_either_byte_order(name, method):
    values = np.random.default_rng(41).standard_normal((3, 17)).astype(name)
    native = summation(values, method)
    other = summation(swapped(values), method)
    assert other.dtype.isnative and other.tobytes() == native.tobytes()
    strided = np.repeat(values, 2, axis=1)[:, ::2]  # not contiguous
    assert summation(strided, method).tobytes() == native.tobytes()


@pytest.mark.parametrize("method", numerics.SUMMATION_METHODS)
def test_summation_never_returns_a_view_of_its_input(method):
    for values in (np.float32([[1.0, 2.0, 3.0]]), np.float32([[1.0], [2.0]]).T):
        before = values.copy()
        result = summation(values, method, axis=0)  # one term per sum
        assert not np.shares_memory(result, values)
        result[...] = 7
        np.testing.assert_array_equal(values, before)
    one = np.float64([5.0])
    assert summation(one, method) == 5.0 and not np.shares_memory(summation(one, method), one)


def test_summation_refuses_scalars_and_bad_axes_by_name():
    with pytest.raises(ValueError, match=r"^values: .*scalar"):
        summation(np.float32(1.0))
    for axis in (2, -3, 1.0, "0", None):
        with pytest.raises(ValueError, match=r"^axis: "):
            summation(np.zeros((2, 3), np.float32), axis=axis)
    for bad in (
        np.ones(3, complex),
        np.array(["1.0"]),
        np.array([1.0], object),
        [[1.0], [2.0, 3.0]],
    ):
        with pytest.raises(ValueError, match=r"^values: "):
            summation(bad)


def fma_reference(x, y, dtype):
    """s ← RN(s + a·b) in rationals while finite, IEEE arithmetic once something is not."""
    total = np.zeros((), dtype)
    for a, b in zip(x, y, strict=True):
        s, a, b = float(total), float(a), float(b)
        if all(math.isfinite(v) for v in (s, a, b)):
            total = rounded_or_inf(Fraction(s) + Fraction(a) * Fraction(b), dtype)
        else:
            total = np.array(s + a * b).astype(dtype)
    return total


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_fma_dot_overflow_infinities_nan_and_byte_order(name):
    dtype = DTYPES[name]
    largest = float(FINFO[name].max)
    inf, nan = math.inf, math.nan
    cases = [
        ([largest, largest, -largest], [1.0, 1.0, 1.0]),  # overflows, stays inf
        ([largest, largest], [0.5, 0.75]),
        ([1.0, inf, 2.0], [1.0, 1.0, 1.0]),
        ([1.0, inf, 2.0], [1.0, 0.0, 1.0]),  # 0·inf
        ([inf, inf], [1.0, -1.0]),
        ([nan, 1.0], [1.0, 1.0]),
        ([largest, 2.0], [1.0, -1.0]),
    ]
    for xs, ys in cases:
        x, y = np.array(xs, dtype), np.array(ys, dtype)
        expected = fma_reference(x, y, dtype)
        assert same_values(fma_dot(x, y), expected), (xs, ys)
        if name != "bfloat16":
            assert same_values(fma_dot(swapped(x), swapped(y)), expected), (xs, ys)


@settings(max_examples=150, **SETTINGS)
@given(name=st.sampled_from(list(DTYPES)), data=st.data())
def test_exact_summation_of_any_finite_values(name, data):
    # Any finite values of the format, subnormals and values near the largest one included:
    # the exact sum rounded once, or ±inf exactly when it rounds beyond the largest value.
    dtype = DTYPES[name]
    count = data.draw(st.integers(1, 8))
    values = np.array([data.draw(finite_floats(name)) for _ in range(count)], dtype)
    assert same_values(summation(values, "exact"), exact_sum(values, dtype))


@settings(max_examples=100, **SETTINGS)
@given(name=st.sampled_from(["float16", "bfloat16", "float32"]), data=st.data())
def test_fma_dot_of_any_finite_values(name, data):
    dtype = DTYPES[name]
    count = data.draw(st.integers(1, 6))
    x = np.array([data.draw(finite_floats(name)) for _ in range(count)], dtype)
    y = np.array([data.draw(finite_floats(name)) for _ in range(count)], dtype)
    assert same_values(fma_dot(x, y), fma_reference(x, y, dtype))
