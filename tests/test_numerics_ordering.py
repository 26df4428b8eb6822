"""companion.numerics, chapter 6's extensions: ULP distances, rounding to narrower formats,
the probabilistic estimate, summation orders and their bounds, the accurate convolution.

Expected values come from independent oracles: exhaustive enumeration of float16 and
bfloat16, ``np.spacing``/``np.nextafter``, ``astype``, and exact rational arithmetic
(``fractions.Fraction``) with a correct-rounding oracle written here. Every tolerance-based
check goes through a bound from ``companion.numerics``.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from companion import numerics
from companion.numerics import (
    accurate_conv2d,
    bound_probability,
    compensated_error_bound,
    conv_error_bound,
    conv_magnitude,
    dot_error_bound,
    fma_dot,
    gamma,
    probabilistic_error_bound,
    probabilistic_gamma,
    round_to_format,
    summation,
    summation_error_bound,
    ulp,
    ulp_distance,
    unit_roundoff,
)
from companion.numpy_conv import conv2d

ROOT = Path(__file__).resolve().parents[1]
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def every_value(name: str) -> np.ndarray:
    """Every non-NaN value of a 16-bit format, from its 65536 bit patterns."""
    values = np.arange(2**16, dtype=np.uint16).view(DTYPES[name])
    return values[~np.isnan(values.astype(np.float32))]


def from_bits(name: str, bits: int) -> np.ndarray:
    return np.array(bits, UINT[name]).view(DTYPES[name])


@st.composite
def finite_floats(draw, name: str):
    """Any finite value of the format (subnormals and both zeros included), from its bits."""
    width = 8 * DTYPES[name].itemsize
    while True:
        value = from_bits(name, draw(st.integers(0, 2**width - 1)))
        if np.isfinite(value.astype(np.float64)):
            return value


def correctly_rounded(exact: Fraction, dtype: np.dtype):
    """The nearest value of ``dtype`` to a rational, ties to even: an independent oracle."""
    guess = np.array(float(exact)).astype(dtype)  # within a step or two of the answer
    candidates = [guess]
    for _ in range(2):
        candidates.append(np.nextafter(candidates[-1], np.array(np.inf, dtype)))
    below = [guess]
    for _ in range(2):
        below.append(np.nextafter(below[-1], np.array(-np.inf, dtype)))
    candidates += below[1:]

    def key(value):
        distance = abs(Fraction(float(value)) - exact)
        odd = int(np.array(value).view(UINT[dtype.name])) & 1
        return (distance, odd)

    return min(candidates, key=key)


# --------------------------------------------------------------------------
# ulp_distance
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_ulp_distance_is_the_rank_among_all_values(name):
    # Exhaustive: sort every value of the format; the distance between two values is the
    # difference of their ranks, with -0 and +0 sharing one rank.
    values = np.unique(every_value(name).astype(np.float64))  # np.unique merges ±0
    typed = values.astype(DTYPES[name])
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(values), (2, 20000))
    np.testing.assert_array_equal(ulp_distance(typed[i], typed[j]), np.abs(i - j))
    assert ulp_distance(typed[0], typed[-1]) == len(values) - 1  # -inf to inf


@pytest.mark.parametrize("name", list(DTYPES))
@settings(max_examples=60, **SETTINGS)
@given(data=st.data(), steps=st.integers(0, 40))
def test_ulp_distance_counts_nextafter_steps(name, data, steps):
    start = data.draw(finite_floats(name))
    direction = np.array(data.draw(st.sampled_from([np.inf, -np.inf])), DTYPES[name])
    value, repeated = start, 0
    for _ in range(steps):
        with np.errstate(over="ignore"):
            previous, value = value, np.nextafter(value, direction)
        repeated += int(previous == 0 and value == 0)  # -0 to +0 (or back): one number
    if np.isinf(value.astype(np.float64)):
        return  # walked off the end: covered by the infinity tests
    assert ulp_distance(start, value) == steps - repeated
    assert ulp_distance(value, start) == ulp_distance(start, value)


@pytest.mark.parametrize("name", list(DTYPES))
@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_ulp_distance_adds_along_the_line(name, data):
    a, b, c = sorted(
        (data.draw(finite_floats(name)) for _ in range(3)), key=lambda v: float(v.astype(float))
    )
    assert int(ulp_distance(a, c)) == int(ulp_distance(a, b)) + int(ulp_distance(b, c))
    assert (ulp_distance(a, b) == 0) == (a == b)


@pytest.mark.parametrize("name", list(DTYPES))
def test_ulp_distance_special_values(name):
    dtype = DTYPES[name]
    info = ml_dtypes.finfo(dtype) if name == "bfloat16" else np.finfo(dtype)
    tiny, largest = np.array(info.smallest_subnormal, dtype), np.array(info.max, dtype)
    zero, inf = np.array(0.0, dtype), np.array(np.inf, dtype)
    assert ulp_distance(-zero, zero) == 0  # signed zeros are the same number
    assert ulp_distance(zero, tiny) == 1 and ulp_distance(-tiny, zero) == 1
    assert ulp_distance(-tiny, tiny) == 2  # zero lies between them
    assert ulp_distance(largest, inf) == 1  # infinity follows the largest finite value
    assert ulp_distance(-inf, -largest) == 1
    smallest_normal = np.array(info.smallest_normal, dtype)
    assert ulp_distance(zero, smallest_normal) == 2**info.nmant  # the subnormals, then it


def test_ulp_distance_of_float64_extremes_needs_uint64():
    largest = np.finfo(np.float64).max
    distance = ulp_distance(np.array([-np.inf, -largest]), np.array([np.inf, largest]))
    assert distance.dtype == np.uint64
    assert [int(d) for d in distance] == [2 * (2**63 - 2**52), 2 * (2**63 - 2**52 - 1)]
    assert ulp_distance(-4.0, 4.0) == 2 * int(np.float64(4.0).view(np.uint64))


def test_ulp_distance_types_and_broadcasting():
    one = np.float32(1.0)
    assert type(ulp_distance(one, one)) is int
    d = ulp_distance(np.ones((2, 3), np.float32), np.float32([1.0, 2.0, 0.5]))
    assert d.shape == (2, 3) and d.dtype == np.int64
    np.testing.assert_array_equal(d[0], [0, 2**23, 2**23])


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.float32([1.0, np.nan]), np.float32([1.0, 1.0]), r"^a: .*NaN at \(1,\)"),
        (np.float32(1.0), np.float32(np.nan), r"^b: .*NaN"),
        (np.float32(1.0), np.float64(1.0), r"^b: .*float32.*float64"),
        (np.float32(1.0), 1.0, r"^b: expected the dtype of a"),
        (np.int32(1), np.int32(2), r"^a: .*int32"),
    ],
)
def test_ulp_distance_refuses(a, b, match):
    with pytest.raises(ValueError, match=match):
        ulp_distance(a, b)


# --------------------------------------------------------------------------
# ulp and round_to_format
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_ulp_is_numpys_spacing(name, data):
    value = np.abs(data.draw(finite_floats(name)))
    assume(value < np.finfo(DTYPES[name]).max)
    assert ulp(value) == float(np.spacing(value))
    assert ulp(value.astype(np.float64), name) == float(np.spacing(value))


def test_ulp_of_bfloat16_and_tf32():
    values = np.unique(np.abs(every_value("bfloat16")))
    values = values[np.isfinite(values.astype(np.float32))][:-1]  # all finite but the largest
    following = np.nextafter(values, np.array(np.inf, BFLOAT16))
    np.testing.assert_array_equal(
        ulp(values), following.astype(np.float64) - values.astype(np.float64)
    )
    # TF32: float32's exponent, 10 stored mantissa bits.
    assert ulp(1.0, "tf32") == 2.0**-10 and ulp(2.0**-130, "tf32") == 2.0 ** (-126 - 10)
    assert ulp(1e39, "float32") == math.inf
    with pytest.raises(ValueError, match=r"^x: "):
        ulp(np.nan)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_round_to_format_is_the_conversion(name, data):
    x = data.draw(finite_floats("float32"))
    with np.errstate(over="ignore"):
        expected = x.astype(DTYPES[name]).astype(np.float32)
    result = round_to_format(x, name)
    assert result.dtype == np.float32
    assert result.tobytes() == expected.tobytes() or (result == 0 and expected == 0)


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_round_to_format_tf32(data):
    x = data.draw(finite_floats("float32"))
    nearest, truncated = round_to_format(x, "tf32"), round_to_format(x, "tf32", rounding="truncate")
    step = ulp(x, "tf32")
    for result in (nearest, truncated):
        if np.isfinite(result):
            assert int(result.view(np.uint32)) & 0x1FFF == 0  # 13 low mantissa bits cleared
    x64, n64, t64 = float(x), float(nearest), float(truncated)
    if math.isfinite(n64):
        assert abs(n64 - x64) <= step / 2
        if abs(n64 - x64) == step / 2:  # a tie goes to the even neighbour
            assert (int(nearest.view(np.uint32)) >> 13) & 1 == 0
    assert abs(t64) <= abs(x64) and abs(x64 - t64) < step


def test_round_to_format_overflow_and_special_values():
    largest = numerics.float_format("float16").max  # 65504; its neighbours are 32 apart
    x = np.float32([largest + 15, largest + 16, 1e6, -1e6, np.inf, np.nan])
    nearest = round_to_format(x, "float16")
    truncated = round_to_format(x, "float16", rounding="truncate")
    np.testing.assert_array_equal(nearest[:5], [largest, np.inf, np.inf, -np.inf, np.inf])
    np.testing.assert_array_equal(truncated[:5], [largest, largest, largest, -largest, np.inf])
    assert np.isnan(nearest[5]) and np.isnan(truncated[5])
    with pytest.raises(ValueError, match=r"^rounding: "):
        round_to_format(x, "float16", rounding="up")
    with pytest.raises(ValueError, match=r"^dtype: "):
        round_to_format(x, "int8")


# --------------------------------------------------------------------------
# The probabilistic estimate
# --------------------------------------------------------------------------


def test_probabilistic_gamma_is_lambda_root_n_u_to_first_order():
    u = unit_roundoff(np.float32)
    for n in (1, 9, 147, 2304, 10**6):
        for lam in (1.0, 3.0):
            value = probabilistic_gamma(n, np.float32, lam)
            first_order, second = lam * math.sqrt(n) * u, n * u * u / (1 - u)
            # exp(a) − 1 lies between a and a + a² for 0 < a < 1.
            assert first_order <= value <= (first_order + second) * (1 + first_order + second)
    # Far below the worst case once n is large, above it for tiny n and large λ.
    assert probabilistic_gamma(2304, np.float32, 5) < gamma(2304, np.float32) / 9
    assert probabilistic_gamma(1, np.float32, 5) > gamma(1, np.float32)
    values = probabilistic_gamma(np.arange(1, 50), "float16")
    assert np.all(np.diff(values) > 0)
    for bad in ({"n": -1}, {"n": 2.5}, {"n": 3, "lam": 0.0}, {"n": 3, "lam": math.nan}):
        with pytest.raises(ValueError, match=r"^(n|lam): "):
            probabilistic_gamma(bad["n"], np.float32, bad.get("lam", 1.0))


def test_bound_probability():
    u = unit_roundoff(np.float32)
    assert bound_probability(9, np.float32, 1.0) == 0.0
    expected = 1 - 2 * 1000 * math.exp(-25 * (1 - u) ** 2 / 2)
    # rel: the two float64 evaluations of the same formula may differ in the last bits.
    assert bound_probability(1000, np.float32, 5.0) == pytest.approx(expected, abs=0, rel=1e-12)
    assert bound_probability(0, np.float32, 1.0) == 1.0
    with pytest.raises(ValueError, match=r"^n: "):
        bound_probability(-3, np.float32, 1.0)


def test_probabilistic_bound_holds_with_the_promised_probability_on_random_data():
    # 3000 random float32 inner products of 1000 terms, added sequentially in float32.
    rng = np.random.default_rng(7)
    n, trials = 1000, 3000
    x = rng.standard_normal((trials, n)).astype(np.float32)
    y = rng.standard_normal((trials, n)).astype(np.float32)
    products = (x.astype(np.float64) * y.astype(np.float64)).astype(np.float32)
    computed = summation(products, "sequential").astype(np.float64)
    exact = np.array([math.fsum(row) for row in (x.astype(np.float64) * y).tolist()])
    magnitude = np.abs(x.astype(np.float64) * y).sum(axis=1)
    error = np.abs(computed - exact)
    lam = 5.0
    fails = np.mean(error > probabilistic_error_bound(magnitude, n, np.float32, lam=lam))
    assert fails <= 1 - bound_probability(n, np.float32, lam)
    # λ = 1 is the typical size: most errors are below it, all below the worst case.
    typical = probabilistic_error_bound(magnitude, n, np.float32)
    assert np.mean(error < typical) > 0.5
    assert np.all(error <= dot_error_bound(magnitude, n, np.float32))


# --------------------------------------------------------------------------
# Summation
# --------------------------------------------------------------------------


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
    total, error = values[0], values[0] * 0
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
# The accurate convolution
# --------------------------------------------------------------------------


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
# Tolerances in the repository
# --------------------------------------------------------------------------

TOLERANCE = re.compile(r"\b[ar]tol\s*=")


def _code_lines(path: Path) -> list[list[str]]:
    """The code of a file as blocks of lines (one block per notebook code cell)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return ["".join(c["source"]).splitlines() for c in cells if c["cell_type"] == "code"]
    return [path.read_text(encoding="utf-8").splitlines()]


def unjustified_tolerances(path: Path, root: Path = ROOT) -> list[str]:
    """Lines passing a relative or absolute tolerance with no comment on them or above."""
    found = []
    for block in _code_lines(path):
        for index, line in enumerate(block):
            code_part = line.split("#", 1)[0]  # a comment that names a tolerance is no use
            if not TOLERANCE.search(code_part) or "TOLERANCE = re.compile" in line:
                continue
            above = block[index - 1].strip() if index else ""
            same_line = "#" in line.split("tol", 1)[1]
            if not same_line and not above.startswith(("#", ">>> #")):
                found.append(f"{path.relative_to(root)}: {line.strip()}")
    return found


SOURCES = sorted(
    p
    for folder in ("companion", "tests", "tools", "book")
    for p in (ROOT / folder).rglob("*")
    if p.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in p.parts
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_tolerance_is_justified_by_a_comment(path):
    assert unjustified_tolerances(path) == []


def test_the_tolerance_search_finds_an_unjustified_use(tmp_path):
    bare = tmp_path / "bare.py"
    # The file's text holds an unjustified tolerance and a justified one:
    bare.write_text(
        "x = np.isclose(a, b, r" + "tol=1e-5)\n# the bound\ny = f(a" + "tol=b)\n# r" + "tol=0\n"
    )
    expected = "bare.py: x = np.isclose(a, b, r" + "tol=1e-5)"
    assert unjustified_tolerances(bare, tmp_path) == [expected]
