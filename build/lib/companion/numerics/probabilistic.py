"""Higham and Mary's probabilistic error estimate, beside the worst case.

Built in chapter 6: rounding errors typically grow like ``√n·u`` rather than
``n·u`` (Higham & Mary 2019).
"""

from __future__ import annotations

import math

import numpy as np

from companion import arguments
from companion.numerics.bounds import nonnegative
from companion.numerics.formats import unit_roundoff
from companion.numpy_conv import operands


def _lam(lam: object) -> float:
    """``λ`` as a positive finite float, or a ``ValueError`` naming ``lam``."""
    value = None
    if not isinstance(lam, (bool, np.bool_, str, bytes)):
        try:
            array = np.asarray(lam)
            if array.ndim == 0 and (array.dtype.kind in "iuf" or array.dtype.name == "bfloat16"):
                value = float(array)
        except (TypeError, ValueError):
            value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"lam: expected a positive number λ, got {lam!r}")
    return value


# The probabilistic estimate


def probabilistic_gamma(n: int | np.ndarray, dtype: object, lam: float = 1.0) -> float | np.ndarray:
    """Higham and Mary's probabilistic constant ``γ̃_n(λ)``, the typical counterpart of ``γ_n``.

    Built in chapter 6.

    If the rounding errors are independent random variables of mean zero (a
    model, not a theorem about every input), a product of ``n`` factors
    ``(1 + δ_i)^±1`` equals ``1 + θ_n`` with
    ``|θ_n| ≤ γ̃_n(λ) = exp(λ·√n·u + n·u²/(1 − u)) − 1 ≈ λ·√n·u``, except with
    probability at most ``2·exp(−λ²(1 − u)²/2)``; an inner product of ``n``
    terms then satisfies ``|ŝ − s| ≤ γ̃_n(λ)·Σ|x_i·y_i|`` except with
    probability at most ``n`` times that (Higham & Mary 2019, §3–4). With
    ``λ`` about 1 it is an estimate of the typical error; a larger ``λ``
    gives a bound that fails rarely: see :func:`bound_probability`.

    Parameters
    ----------
    n : int or array of ints
        Number of roundings (products in an inner product), ``n ≥ 0``.
    dtype : dtype-like or str
        As for :func:`unit_roundoff`.
    lam : float, optional
        ``λ > 0``.

    Returns
    -------
    float or ndarray of float64

    Raises
    ------
    ValueError
        For a negative or non-integer ``n`` or ``λ ≤ 0``.

    Examples
    --------
    >>> u = unit_roundoff(np.float32)
    >>> round(probabilistic_gamma(2304, np.float32) / u, 3)     # √2304 = 48
    48.0
    >>> from companion.numerics import gamma
    >>> probabilistic_gamma(2304, np.float32, lam=5) < gamma(2304, np.float32) / 9
    True
    """
    values = operands.as_array(n, "n")
    if values.dtype.kind not in "iu" or (values.size and values.min() < 0):
        raise ValueError(f"n: expected a non-negative integer (a count of roundings), got {n!r}")
    lam = _lam(lam)
    u = unit_roundoff(dtype)
    counts = values.astype(np.float64)
    result = np.expm1(lam * np.sqrt(counts) * u + counts * u * u / (1 - u))
    return float(result) if result.ndim == 0 else result


def bound_probability(n: int, dtype: object, lam: float) -> float:
    """A lower bound on the probability that the λ-bound of an ``n``-term inner product holds.

    Built in chapter 6.

    ``Q(λ, n) = 1 − 2n·exp(−λ²(1 − u)²/2)`` under Higham and Mary's model of
    independent, mean-zero rounding errors (Higham & Mary 2019); 0 when that
    is negative (the bound is then only an estimate).

    Examples
    --------
    >>> bound_probability(9, np.float32, lam=1.0)               # λ = 1: no guarantee
    0.0
    >>> bound_probability(9, np.float32, lam=6.0) > 1 - 1e-6
    True
    """
    n = arguments.integer(n, "n", expected="a non-negative integer number of products")
    lam = _lam(lam)
    u = unit_roundoff(dtype)
    return max(0.0, 1.0 - 2.0 * n * math.exp(-(lam**2) * (1 - u) ** 2 / 2))


def probabilistic_error_bound(
    magnitude: np.ndarray | float, n: int, dtype: object, *, lam: float = 1.0
) -> np.ndarray | float:
    """The probabilistic counterpart of :func:`dot_error_bound`: ``γ̃_n(λ)·Σ|x_i·y_i|``.

    Built in chapter 6.

    With the default ``λ = 1`` this is the *typical* size of the rounding
    error of a sum of ``n`` products, about ``√n·u·Σ|x_i·y_i|`` (Higham & Mary
    2019), where the worst case is ``n·u·Σ|x_i·y_i|``. It holds with
    probability at least :func:`bound_probability` under their model; it is
    not a guarantee (sums of like-signed terms added sequentially can have
    correlated errors).

    Parameters
    ----------
    magnitude : array_like
        ``Σ|x_i·y_i|`` for each sum, as for :func:`dot_error_bound`.
    n : int
        The number of products in each sum.
    dtype : dtype-like or str
        The format of the products and partial sums.
    lam : float, optional
        ``λ > 0``.

    Returns
    -------
    float or ndarray of float64
        ``inf`` where ``magnitude`` is infinite.

    Raises
    ------
    ValueError
        Naming ``magnitude`` for NaN, negative, complex or non-numeric values,
        ``n`` for anything but a non-negative integer, ``lam`` for anything but
        a positive finite number.

    Examples
    --------
    >>> from companion.numerics import dot_error_bound
    >>> worst = dot_error_bound(1.0, 2304, np.float32)
    >>> typical = probabilistic_error_bound(1.0, 2304, np.float32)
    >>> round(worst / typical)                                   # √2304
    48
    """
    magnitude = nonnegative(magnitude, "magnitude", "sums of absolute products")
    n = arguments.integer(n, "n", expected="a non-negative integer number of products")
    bound = probabilistic_gamma(n, dtype, lam) * magnitude
    return float(bound) if bound.ndim == 0 else bound
