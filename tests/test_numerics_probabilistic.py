"""companion.numerics.probabilistic: Higham and Mary's estimate and its probability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from companion.numerics import (
    bound_probability,
    dot_error_bound,
    gamma,
    probabilistic_error_bound,
    probabilistic_gamma,
    summation,
    unit_roundoff,
)


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


def test_probabilistic_functions_refuse_bad_arguments_by_name():
    for lam in ("1.0", None, True, 1.0 + 1j, [1.0], -1.0, math.inf):
        with pytest.raises(ValueError, match=r"^lam: "):
            probabilistic_gamma(9, np.float32, lam)
        with pytest.raises(ValueError, match=r"^lam: "):
            bound_probability(9, np.float32, lam)
        with pytest.raises(ValueError, match=r"^lam: "):
            probabilistic_error_bound(1.0, 9, np.float32, lam=lam)
    for magnitude in (np.nan, -1.0, 1.0 + 0j, "1.0", None, np.ones(2, object)):
        with pytest.raises(ValueError, match=r"^magnitude: "):
            probabilistic_error_bound(magnitude, 9, np.float32)
    for n in (None, "9", np.ones(2, object), 9.0, [1.5]):
        with pytest.raises(ValueError, match=r"^n: "):
            probabilistic_gamma(n, np.float32)
    assert probabilistic_error_bound(np.inf, 9, np.float32) == math.inf
    big = np.array([1.0, 2.0], ">f8")
    np.testing.assert_array_equal(
        probabilistic_error_bound(big, 9, np.float32),
        probabilistic_error_bound(big.astype(np.float64), 9, np.float32),
    )
