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
    SETTINGS,
    correctly_rounded,
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
