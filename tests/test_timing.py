"""companion.timing: interleaved rounds, paired ratios and peak memory."""

from __future__ import annotations

import numpy as np
import pytest

from companion import timing


def test_time_interleaved_alternates_the_order():
    calls = []
    ticks = iter(range(1000))
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = timing.time_interleaved(functions, 3, warmup=1, clock=lambda: next(ticks))
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    assert times == {"a": [1, 1, 1], "b": [1, 1, 1], "c": [1, 1, 1]}  # one tick per call
    with pytest.raises(ValueError, match=r"^repeats: "):
        timing.time_interleaved(functions, 0)


def test_paired_ratio():
    # Pairing per round cancels a slow round that slowed both sides.
    assert timing.paired_ratio([2.0, 20.0, 2.0], [1.0, 10.0, 1.0]) == 2.0
    with pytest.raises(ValueError, match=r"^times: "):
        timing.paired_ratio([1.0], [1.0, 2.0])


def test_peak_memory_counts_numpy_allocations():
    peak = timing.peak_memory(lambda: np.zeros(250_000, np.float64) + 1)
    assert 2_000_000 <= peak < 8_000_000  # the result, and one temporary at most
