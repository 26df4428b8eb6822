"""Every public function of companion.numerics, fed adversarial arrays (issue 13).

For each array argument of each function, one argument at a time is replaced by a variant:

- a value that is not an array of real numbers of the right rank (a string, ``None``, an
  object array, a list of strings, complex numbers, a wrong rank): the call must raise a
  ``ValueError`` or ``TypeError`` whose message starts with the argument's name (a
  different rank is allowed to succeed where the function accepts any rank);
- the same numbers stored differently (the other byte order, a strided view, Fortran
  order, a read-only array), possibly with NaN or an infinity put in: the call must give
  exactly what it gives for a native, contiguous, writable copy of those numbers (the
  same value, or the same exception).

In every case the arguments are left as they were, and no result shares memory with them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import numerics
from tests.helpers import SETTINGS, same_values

RNG = np.random.default_rng(13)
X = RNG.standard_normal((1, 4, 4, 2)).astype(np.float32)
W = RNG.standard_normal((2, 2, 2, 3)).astype(np.float32)
VALUES = RNG.standard_normal((3, 5)).astype(np.float32)
MAGNITUDE = np.abs(RNG.standard_normal(3))


def _conv(function, **keywords):
    return (
        function,
        {"input": X, "filters": W},
        (),
        {"strides": 1, "padding": "SAME", **keywords},
        4,
    )


#: name: (function, {array argument: good value}, other positional args, keywords, rank),
#: rank being the one rank the array arguments must have, or None for any rank.
CALLS = {
    **{
        f"accurate_conv2d-{mode}": _conv(numerics.accurate_conv2d, mode=mode)
        for mode in numerics.ACCURATE_MODES
    },
    "conv_error_bound": _conv(numerics.conv_error_bound),
    "fma_conv2d": _conv(numerics.fma_conv2d),
    "conv_magnitude": _conv(numerics.conv_magnitude),
    "assert_conv_close": (
        numerics.assert_conv_close,
        {
            "actual": VALUES,
            "desired": VALUES.astype(np.float64) + 1e-9,
            "bound": np.full(VALUES.shape, 1e-7),
        },
        (),
        {},
        None,
    ),
    "compensated_error_bound": (
        numerics.compensated_error_bound,
        {"magnitude": MAGNITUDE, "exact": MAGNITUDE / 2},
        (),
        {"n": 9, "dtype": np.float32},
        None,
    ),
    "dot_error_bound": (
        numerics.dot_error_bound,
        {"magnitude": MAGNITUDE, "exact": MAGNITUDE / 2},
        (),
        {"n": 9, "dtype": np.float16, "accumulate_dtype": np.float32},
        None,
    ),
    "probabilistic_error_bound": (
        numerics.probabilistic_error_bound,
        {"magnitude": MAGNITUDE},
        (),
        {"n": 9, "dtype": np.float32},
        None,
    ),
    "summation_error_bound": (
        numerics.summation_error_bound,
        {"magnitude": MAGNITUDE},
        (),
        {"n": 9, "dtype": np.float32},
        None,
    ),
    "gamma": (numerics.gamma, {"n": np.arange(4)}, (), {"dtype": np.float32}, None),
    "probabilistic_gamma": (
        numerics.probabilistic_gamma,
        {"n": np.arange(4)},
        (),
        {"dtype": np.float32},
        None,
    ),
    "fma_dot": (numerics.fma_dot, {"x": VALUES, "y": VALUES[::-1]}, (), {}, None),
    "round_to_format": (numerics.round_to_format, {"x": VALUES}, (), {"dtype": "tf32"}, None),
    **{
        f"summation-{method}": (
            numerics.summation,
            {"values": VALUES},
            (),
            {"method": method},
            None,
        )
        for method in numerics.SUMMATION_METHODS
    },
    "ulp": (numerics.ulp, {"x": VALUES}, (), {}, None),
    "ulp_distance": (
        numerics.ulp_distance,
        {"a": VALUES, "b": VALUES + np.float32(1e-6)},
        (),
        {},
        None,
    ),
}
#: Public names without array arguments (checked in their own tests).
NO_ARRAYS = {"FloatFormat", "float_format", "unit_roundoff", "bound_probability"}
CONSTANTS = {"ACCURATE_MODES", "SUMMATION_METHODS"}
#: Array arguments whose default is None.
OPTIONAL = {"exact"}

INVALID = ["text", "none", "object", "strings", "complex", "lower rank", "higher rank"]
STORAGE = ["byte order", "strided", "fortran", "read-only"]


def test_every_public_function_is_covered():
    covered = {name.split("-")[0] for name in CALLS}
    assert covered | NO_ARRAYS | CONSTANTS == set(numerics.__all__)


def invalid(value: np.ndarray, kind: str):
    if kind == "text":
        return "abc"
    if kind == "none":
        return None
    if kind == "object":
        return value.astype(object)
    if kind == "strings":
        return [str(v) for v in value.ravel().tolist()]
    if kind == "complex":
        return value + 1j * np.ones_like(value, dtype=np.float64)
    if kind == "lower rank":
        return value[0] if value.ndim else value.reshape(1, 1)
    return value[np.newaxis]


def stored(value: np.ndarray, kinds: list[str]) -> np.ndarray:
    """The same numbers, stored in each of the ways ``kinds`` names."""
    if "byte order" in kinds:
        value = value.astype(value.dtype.newbyteorder("S"))
    if "fortran" in kinds:
        value = np.asfortranarray(value)
    if "strided" in kinds and value.ndim:
        wide = np.repeat(value, 2, axis=-1)
        value = wide[..., ::2]
        assert not value.flags.c_contiguous or value.shape[-1] <= 1
    if "read-only" in kinds:
        value = value.copy() if "strided" not in kinds else value
        value.flags.writeable = False
    return value


def outcome(function, arrays, args, keywords):
    try:
        return "value", function(*args, **arrays, **keywords)
    except Exception as error:  # the type is part of what is compared
        return "error", (type(error), str(error))


def check_untouched(arrays, snapshots):
    for name, value in arrays.items():
        if isinstance(value, np.ndarray):
            before = snapshots[name]
            assert value.dtype == before.dtype and value.tobytes() == before.tobytes(), name


def check_no_alias(result, arrays):
    for item in result if isinstance(result, tuple) else (result,):
        if isinstance(item, np.ndarray):
            for name, value in arrays.items():
                if isinstance(value, np.ndarray):
                    assert not np.shares_memory(item, value), name


@st.composite
def cases(draw):
    call = draw(st.sampled_from(sorted(CALLS)))
    good = CALLS[call][1]
    argument = draw(st.sampled_from(sorted(good)))
    value = good[argument]
    if draw(st.booleans()):
        kind = draw(st.sampled_from(INVALID))
        return call, argument, "invalid", kind, invalid(value, kind)
    special = None
    if value.dtype.kind == "f" and draw(st.booleans()):
        special = (
            draw(st.integers(0, value.size - 1)),
            draw(st.sampled_from([np.nan, np.inf, -np.inf])),
        )
    kinds = draw(st.lists(st.sampled_from(STORAGE), min_size=1, unique=True))
    return call, argument, "stored", (kinds, special), value


@settings(max_examples=400, **SETTINGS)
@given(case=cases())
def test_bad_input_raises_by_name_or_gives_the_native_answer(case):
    call, argument, category, detail, value = case
    function, good, args, keywords, rank = CALLS[call]
    arrays = dict(good)
    if category == "invalid":
        arrays[argument] = value
        snapshots = {k: v.copy() for k, v in arrays.items() if isinstance(v, np.ndarray)}
        result = outcome(function, arrays, args, keywords)
        check_untouched(arrays, snapshots)
        if result[0] == "value":
            # Only a different rank, where every rank is accepted, may succeed, or None for
            # an optional argument whose default it is.
            allowed = (detail.endswith("rank") and rank is None) or (
                detail == "none" and argument in OPTIONAL
            )
            assert allowed, (call, argument, detail)
            check_no_alias(result[1], arrays)
            return
        kind, message = result[1]
        if kind is AssertionError and detail.endswith("rank"):  # its documented verdict
            assert call == "assert_conv_close" and message.startswith("shapes differ")
            return
        assert kind in (ValueError, TypeError), (call, argument, detail, kind, message)
        assert message.startswith(f"{argument}: "), (call, argument, detail, message)
        return
    kinds, special = detail
    value = value.copy()
    if special is not None:
        value.reshape(-1)[special[0]] = special[1]
    clean = dict(arrays)
    clean[argument] = np.ascontiguousarray(value)
    expected = outcome(function, clean, args, keywords)
    arrays[argument] = stored(value, kinds)
    snapshots = {k: v.copy() for k, v in arrays.items() if isinstance(v, np.ndarray)}
    result = outcome(function, arrays, args, keywords)
    check_untouched(arrays, snapshots)
    assert result[0] == expected[0], (call, argument, kinds, special, result, expected)
    if result[0] == "error":
        assert result[1] == expected[1]
        kind, message = result[1]
        if kind is AssertionError:  # assert_conv_close's verdict, not a refusal
            assert call == "assert_conv_close"
        else:
            assert kind is ValueError and message.split(":")[0] in good, message
        return
    got, want = result[1], expected[1]
    check_no_alias(got, arrays)
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype.isnative
        assert same_values(got, want), (call, argument, kinds, special)
    else:
        assert type(got) is type(want)
        assert same_values(np.asarray(got), np.asarray(want)), (call, argument, kinds, special)


@pytest.mark.parametrize("bad", ["abc", None, 1 + 2j, [1.0], np.ones(2, object)])
def test_functions_without_array_arguments_refuse_by_name(bad):
    with pytest.raises(ValueError, match=r"^dtype: "):
        numerics.float_format(bad)
    with pytest.raises(ValueError, match=r"^dtype: "):
        numerics.unit_roundoff(bad)
    with pytest.raises(ValueError, match=r"^n: "):
        numerics.bound_probability(bad, np.float32, 1.0)
    with pytest.raises(ValueError, match=r"^lam: "):
        numerics.bound_probability(9, np.float32, bad)
