"""companion.numerics.formats: the formats, ULP distances and spacings, and rounding to a
narrower format, against finfo, exhaustive enumeration, nextafter and astype."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from companion import numerics
from companion.numerics import (
    float_format,
    round_to_format,
    ulp,
    ulp_distance,
    unit_roundoff,
)
from tests.helpers import (
    BFLOAT16,
    DTYPES,
    FINFO,
    SETTINGS,
    every_value,
    finite_floats,
    swapped,
)

# --------------------------------------------------------------------------
# Formats and u
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FINFO))
def test_formats_agree_with_finfo(name):
    info, fmt = FINFO[name], float_format(name)
    assert fmt.unit_roundoff == float(info.eps) / 2 == unit_roundoff(name)
    assert fmt.min_normal == float(info.tiny)
    assert fmt.min_subnormal == float(info.smallest_subnormal)
    assert fmt.max == float(info.max)


@pytest.mark.parametrize(
    "spelling",
    [np.float32, "float32", np.dtype("float32"), np.zeros(1, np.float32).dtype, "FLOAT32"],
)
def test_float_format_accepts_every_spelling(spelling):
    assert float_format(spelling).name == "float32"


def test_bfloat16_and_tf32():
    assert float_format(BFLOAT16) is float_format("bfloat16")
    assert unit_roundoff("bfloat16") == 2.0**-8
    tf32 = float_format("tf32")
    # 10 stored mantissa bits like float16, float32's exponent range.
    assert tf32.unit_roundoff == unit_roundoff(np.float16)
    assert tf32.min_normal == float_format(np.float32).min_normal


@pytest.mark.parametrize("bad", [np.int32, "int8", np.complex64, "float128x", None, object])
def test_float_format_rejects_other_types(bad):
    with pytest.raises(ValueError, match=r"^dtype: "):
        float_format(bad)


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
# Reliability (issue 13): byte order, layout, and what is refused
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_every_format_function_reads_either_byte_order(name):
    info = FINFO[name]
    one_two = (np.array([1.0, -2.0], name), np.array([2.0, 4.0], name))
    big = tuple(swapped(a) for a in one_two)
    assert not big[0].dtype.isnative
    expected = ulp_distance(*one_two)
    assert expected[0] == 2**info.nmant
    np.testing.assert_array_equal(ulp_distance(*big), expected)
    assert ulp_distance(big[0][0], big[1][0]) == 2**info.nmant  # 0-d, non-native
    special = np.array([np.inf, -np.inf, info.max, info.smallest_subnormal, -0.0], name)
    for x in (special, one_two[0]):
        np.testing.assert_array_equal(ulp(swapped(x)), ulp(x))
        for target in ("float16", "tf32", "bfloat16"):
            rounded = round_to_format(swapped(x), target)
            assert rounded.dtype.isnative and rounded.dtype == x.dtype
            assert rounded.tobytes() == round_to_format(x, target).tobytes()
    strided = np.repeat(special, 2)[::2]
    np.testing.assert_array_equal(ulp_distance(strided, special), np.zeros(5, int))


@pytest.mark.parametrize(
    "bad",
    [np.ones(2, complex), np.ones(2, object), np.array(["1.0", "2.0"]), None, [[1.0], [1.0, 2.0]]],
)
def test_format_functions_refuse_non_real_values_by_name(bad):
    good = np.ones(2)
    with pytest.raises(ValueError, match=r"^a: "):
        ulp_distance(bad, good)
    with pytest.raises(ValueError, match=r"^b: "):
        ulp_distance(good, bad)
    with pytest.raises(ValueError, match=r"^x: "):
        ulp(bad)
    with pytest.raises(ValueError, match=r"^x: "):
        round_to_format(bad, "float16")


def test_ulp_distance_names_the_operand_whose_shape_does_not_broadcast():
    with pytest.raises(ValueError, match=r"^b: .*broadcast"):
        ulp_distance(np.ones(3, np.float32), np.ones(2, np.float32))
