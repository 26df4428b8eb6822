"""companion.arguments: the forms of tf.nn.conv2d's arguments, and the shared normaliser."""

from __future__ import annotations

import numpy as np
import pytest

from companion import arguments


@pytest.mark.parametrize(
    ("value", "data_format", "expected"),
    [
        (2, "NHWC", (1, 2, 2, 1)),
        ([3], "NHWC", (1, 3, 3, 1)),
        ((2, 3), "NHWC", (1, 2, 3, 1)),
        ([1, 2, 3, 1], "NHWC", (1, 2, 3, 1)),
        (2, "NCHW", (1, 1, 2, 2)),
        ([2, 3], "NCHW", (1, 1, 2, 3)),
        ([1, 1, 2, 3], "NCHW", (1, 1, 2, 3)),
        (np.int64(4), "NHWC", (1, 4, 4, 1)),
        (np.array([2, 3]), "NHWC", (1, 2, 3, 1)),
    ],
)
def test_window_argument_forms(value, data_format, expected):
    assert arguments.normalize_strides(value, data_format) == expected
    assert arguments.normalize_dilations(value, data_format) == expected


def test_dilations_none_means_one():
    assert arguments.normalize_dilations(None, "NCHW") == (1, 1, 1, 1)


def test_spatial():
    assert arguments.spatial((8, 32, 48, 3)) == (32, 48)
    assert arguments.spatial((8, 3, 32, 48), "NCHW") == (32, 48)


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_integer_accepts_python_and_numpy_integers(value):
    assert arguments.integer(value, "n") == 3
    assert type(arguments.integer(value, "n")) is int


@pytest.mark.parametrize("value", [True, 3.0, "3", None, [3], np.array([3]), np.float32(3)])
def test_integer_rejects_everything_else(value):
    with pytest.raises(ValueError, match=r"^n: expected a non-negative int, got "):
        arguments.integer(value, "n")


def test_integer_bounds_and_messages():
    assert arguments.integer(0, "n") == 0
    with pytest.raises(ValueError, match=r"^n: expected a positive int, got 0$"):
        arguments.integer(0, "n", minimum=1)
    with pytest.raises(ValueError, match=r"^n: expected an int in 1\.\.4, got 5$"):
        arguments.integer(5, "n", minimum=1, maximum=4)
    with pytest.raises(ValueError, match=r"^n: expected an int >= 2, got 1$"):
        arguments.integer(1, "n", minimum=2)
    with pytest.raises(ValueError, match=r"^n: expected a count, got -1$"):
        arguments.integer(-1, "n", expected="a count")


def test_integers_forms_and_messages():
    expected = "1 or 2 ints"
    assert arguments.integers(2, "k", lengths=(1, 2), expected=expected) == (2,)
    assert arguments.integers((2, np.int32(3)), "k", lengths=(1, 2), expected=expected) == (2, 3)
    assert arguments.integers(np.array([2, 3]), "k", lengths=(2,), expected=expected) == (2, 3)
    for bad in ["23", b"23", 2.0, [2, 3.0], [True, 1], np.array(2.5), None]:
        with pytest.raises(ValueError, match=r"^k: expected 1 or 2 ints, got "):
            arguments.integers(bad, "k", lengths=(1, 2), expected=expected)
    with pytest.raises(ValueError, match=r"^k: .* of length 3$"):
        arguments.integers([1, 2, 3], "k", lengths=(1, 2), expected=expected)
    with pytest.raises(ValueError, match=r"^k: "):
        arguments.integers([1, -2], "k", lengths=(2,), expected=expected)
    assert arguments.integers([1, -2], "k", lengths=(2,), minimum=None, expected=expected) == (
        1,
        -2,
    )


def test_choice():
    assert arguments.choice("b", "mode", ("a", "b")) == "b"
    for bad in ["c", None, ["a"]]:
        with pytest.raises(ValueError, match=r"^mode: expected one of \('a', 'b'\), got "):
            arguments.choice(bad, "mode", ("a", "b"))


def test_to_tf_data_format():
    assert arguments.to_tf_data_format("channels_first") == "NCHW"
    assert arguments.to_tf_data_format("Channels_Last") == "NHWC"
    with pytest.raises(ValueError, match=r"^data_format: .*'NCHW'"):
        arguments.to_tf_data_format("NCHW")
    keras = pytest.importorskip("keras")
    default = arguments.to_tf_data_format(keras.config.image_data_format())
    assert arguments.to_tf_data_format(None) == default


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: arguments.normalize_strides([1, 2, 3]), r"^strides: .*\[1, 2, 3\] of length 3"),
        (lambda: arguments.normalize_strides(0), r"^strides: every entry must be a positive"),
        (lambda: arguments.normalize_strides([2, -1]), r"^strides: every entry must be a positive"),
        (lambda: arguments.normalize_strides(1.5), r"^strides: expected an int or a list"),
        (lambda: arguments.normalize_strides("2"), r"^strides: expected an int or a list"),
        (lambda: arguments.normalize_strides(True), r"^strides: expected an int or a list"),
        (lambda: arguments.normalize_strides([2, 1, 1, 1]), r"^strides: the batch and channel"),
        (
            lambda: arguments.normalize_strides([1, 2, 2, 1], "NCHW"),
            r"^strides: the batch and channel .* for NCHW",
        ),
        (lambda: arguments.normalize_dilations([1, 2, 2, 2]), r"^dilations: the batch and channel"),
        (lambda: arguments.normalize_dilations([]), r"^dilations: .* of length 0"),
        (lambda: arguments.normalize_padding("same"), r"^padding: .*'same'.*requires upper case"),
        (lambda: arguments.normalize_padding("FULL"), r"^padding: expected 'SAME', 'VALID'"),
        (lambda: arguments.normalize_padding(3), r"^padding: expected 'SAME', 'VALID'"),
        (lambda: arguments.normalize_padding([[1, 2], [3, 4]]), r"^padding: expected a list of 4"),
        (
            lambda: arguments.normalize_padding([[0, 0], [1, 2, 3], [0, 0], [0, 0]]),
            r"^padding: expected a list of 4",
        ),
        (
            lambda: arguments.normalize_padding([[0, 0], [-1, 0], [0, 0], [0, 0]]),
            r"^padding: every pad must be non-negative",
        ),
        (
            lambda: arguments.normalize_padding([[0, 0], [1.0, 0], [0, 0], [0, 0]]),
            r"^padding: expected a list of 4",
        ),
        (
            lambda: arguments.normalize_padding([[1, 0], [0, 0], [0, 0], [0, 0]]),
            r"^padding: the batch and channel pairs must be \[0, 0\]",
        ),
        (
            lambda: arguments.normalize_padding([[0, 0], [0, 0], [0, 0], [0, 1]]),
            r"^padding: the batch and channel pairs .* for NHWC",
        ),
        (
            lambda: arguments.normalize_padding([[0, 0], [0, 1], [0, 0], [0, 0]], "NCHW"),
            r"^padding: the batch and channel pairs .* for NCHW",
        ),
        (lambda: arguments.normalize_data_format("nhwc"), r"^data_format: .*got 'nhwc'"),
        (lambda: arguments.normalize_data_format("channels_last"), r"^data_format: expected"),
    ],
)
def test_errors_name_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
