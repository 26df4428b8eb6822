"""Timing and peak memory, measured the same way in the book and in the benchmark.

Built in chapter 5. :func:`time_interleaved` times several functions round
robin, so that each sees the same background load, and :func:`paired_ratio`
compares two of them round by round; :func:`peak_memory` counts what NumPy
allocates during one call. Timings are measurements, never test assertions.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable, Collection, Sequence

from companion import arguments, numpy_conv

__all__ = ["paired_ratio", "peak_memory", "time_interleaved"]


def time_interleaved(
    functions: dict[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 2,
    pause: Collection[str] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time every function once per round, round robin, for ``repeats`` rounds.

    Built in chapter 5.

    The order is reversed every other round, so that no function always runs
    right after the same neighbour; each function is first called ``warmup``
    times untimed. Before each call of a function named in ``pause`` the
    clock waits a fifth of a second, untimed: long enough for OpenBLAS's
    threads, which spin for about a tenth of a second after a matrix
    product, to fall idle (chapter 5 measured TensorFlow twice as slow right
    after NumPy without it).

    Returns
    -------
    dict of str to list of float
        Seconds, one entry per round, in round order.

    Examples
    --------
    >>> times = time_interleaved({"a": lambda: None, "b": lambda: None}, 3, warmup=0)
    >>> {name: len(runs) for name, runs in times.items()}
    {'a': 3, 'b': 3}
    """
    repeats = arguments.integer(repeats, "repeats", minimum=1, expected="at least 1 round")
    warmup = arguments.integer(warmup, "warmup")
    names = list(functions)
    for name in names:
        for _ in range(warmup):
            functions[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            if name in pause:
                time.sleep(0.2)
            start = clock()
            functions[name]()
            times[name].append(clock() - start)
    return times


def paired_ratio(times: Sequence[float], reference: Sequence[float]) -> float:
    """The median over rounds of ``times[i] / reference[i]``.

    Built in chapter 5.

    Examples
    --------
    >>> paired_ratio([2.0, 4.0, 30.0], [1.0, 2.0, 3.0])
    2.0
    """
    times = _seconds(times, "times")
    reference = _seconds(reference, "reference")
    if len(times) != len(reference) or not times:
        raise ValueError(
            f"times: expected one entry per reference round ({len(reference)}), got {len(times)}"
        )
    return statistics.median(t / r for t, r in zip(times, reference, strict=True))


def peak_memory(function: Callable[[], object]) -> int:
    """Peak bytes NumPy allocated during one call, from a cold workspace, result included.

    Built in chapter 5.

    The strategies' reusable scratch buffers are released first, so their
    first allocation is counted; :mod:`tracemalloc` sees every NumPy array's
    data (not BLAS's private buffers).

    Examples
    --------
    >>> import numpy as np
    >>> peak_memory(lambda: np.ones(1000, np.float64)) >= 8000
    True
    """
    numpy_conv.clear_workspace()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    del result
    return peak - before


def _seconds(values: object, name: str) -> list[float]:
    """A sequence of positive durations, or a ``ValueError`` naming ``name``."""
    try:
        seconds = [float(value) for value in values]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a sequence of seconds, got {values!r}") from None
    if not all(second > 0 for second in seconds):  # also refuses NaN
        raise ValueError(f"{name}: expected positive durations, got {values!r}")
    return seconds
