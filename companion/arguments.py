"""The forms ``tf.nn.conv2d``'s arguments take, checked and normalised once.

Every public function of the package reads its integer, shape, stride,
dilation, padding and data-format arguments through this module, so each is
accepted in the same forms and rejected with the same kind of message: the
argument's name first, then what was expected and what was received.

Integers follow Python's own rule (:func:`operator.index`): ``int`` and
NumPy integer scalars are integers; ``bool``, floats (even ``2.0``), strings
and arrays are not. This is also how Keras' ``standardize_tuple`` reads
``kernel_size`` and ``strides``.

Conventions for four-element arguments: they are in the data format's order
(``"NHWC"`` or ``"NCHW"``); two-element ones are ``(height, width)``; a pad is
a ``(before, after)`` pair, ``before`` zeros at the top (left).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "DATA_FORMATS",
    "Padding",
    "Pads",
    "choice",
    "integer",
    "integers",
    "normalize_data_format",
    "normalize_dilations",
    "normalize_padding",
    "normalize_strides",
    "pair_of_pads",
    "spatial",
    "to_tf_data_format",
]

#: The data formats :func:`tf.nn.conv2d` accepts: channels last, or channels first.
DATA_FORMATS = ("NHWC", "NCHW")

#: ``(before, after)`` zeros along one spatial dimension.
Pads = tuple[int, int]
#: A normalised ``padding``: ``"SAME"``, ``"VALID"``, or ``((top, bottom), (left, right))``.
Padding = Literal["SAME", "VALID"] | tuple[Pads, Pads]

_KERAS_DATA_FORMATS = {"channels_last": "NHWC", "channels_first": "NCHW"}


def _as_index(value: object) -> int | None:
    """``value`` as a Python int if it is an integer (not a bool), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def integer(
    value: object,
    name: str,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    expected: str | None = None,
) -> int:
    """Return ``value`` as an ``int`` from ``minimum`` to ``maximum``, or raise a ``ValueError``.

    Parameters
    ----------
    value : object
        An ``int`` or NumPy integer scalar (not a ``bool``, not a float).
    name : str
        The argument's name, which starts the error message.
    minimum : int, default 0
        The smallest value allowed.
    maximum : int, optional
        The largest value allowed, if any.
    expected : str, optional
        What the message says was expected; by default ``"a non-negative
        int"`` (``minimum`` 0), ``"a positive int"`` (``minimum`` 1), ``"an
        int >= minimum"``, or ``"an int in minimum..maximum"``.

    Raises
    ------
    ValueError
        ``"{name}: expected {expected}, got {value!r}"``.

    Examples
    --------
    >>> import numpy as np
    >>> integer(np.int64(3), "groups", minimum=1)
    3
    >>> integer(2.0, "groups", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: groups: expected a positive int, got 2.0
    """
    number = _as_index(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        if expected is None and maximum is not None:
            expected = f"an int in {minimum}..{maximum}"
        elif expected is None:
            expected = {0: "a non-negative int", 1: "a positive int"}.get(
                minimum, f"an int >= {minimum}"
            )
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return number


def integers(
    value: object,
    name: str,
    *,
    lengths: Sequence[int],
    minimum: int | None = 0,
    expected: str,
) -> tuple[int, ...]:
    """Return an int, or a sequence of ints, as a tuple of ints.

    A lone integer becomes a one-element tuple; a sequence must have one of
    ``lengths`` entries, each an integer of at least ``minimum`` (``None``:
    any integer, for callers that check signs with a message of their own).

    Parameters
    ----------
    value : int or sequence of ints
    name : str
        The argument's name, which starts the error message.
    lengths : sequence of int
        The lengths accepted.
    minimum : int or None, default 0
    expected : str
        What the message says was expected, such as ``"an int or a list of
        1, 2 or 4 ints"``.

    Raises
    ------
    ValueError
        ``"{name}: expected {expected}, got {value!r}"``, with ``"of length
        N"`` added when only the length is wrong.

    Examples
    --------
    >>> import numpy as np
    >>> integers([2, np.int32(3)], "strides", lengths=(1, 2, 4), expected="1, 2 or 4 ints")
    (2, 3)
    >>> integers(2, "strides", lengths=(1, 2, 4), expected="1, 2 or 4 ints")
    (2,)
    """
    message = f"{name}: expected {expected}, got {value!r}"
    single = _as_index(value)
    if single is not None:
        items: list[int | None] = [single]
    elif isinstance(value, (str, bytes)) or getattr(value, "ndim", 1) == 0:
        raise ValueError(message)
    else:
        try:
            items = [_as_index(item) for item in value]  # type: ignore[attr-defined]
        except TypeError:
            raise ValueError(message) from None
    if any(item is None for item in items) or (
        minimum is not None and any(item < minimum for item in items)  # type: ignore[operator]
    ):
        raise ValueError(message)
    if len(items) not in lengths:
        raise ValueError(f"{message} of length {len(items)}")
    return tuple(items)  # type: ignore[arg-type]


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings ``allowed``, or raise a ``ValueError``.

    Examples
    --------
    >>> choice("pairwise", "method", ("sequential", "pairwise"))
    'pairwise'
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {tuple(allowed)}, got {value!r}")
    return value


def normalize_data_format(data_format: str | None) -> str:
    """Check ``data_format`` and return it; ``None`` means ``"NHWC"``, as in TensorFlow.

    Built in chapter 2.

    Parameters
    ----------
    data_format : str or None
        ``"NHWC"`` or ``"NCHW"``, exactly as :func:`tf.nn.conv2d` accepts them;
        ``None`` is TensorFlow's default, ``"NHWC"``.

    Raises
    ------
    ValueError
        For anything else (TensorFlow accepts no lower case and no aliases).

    Examples
    --------
    >>> normalize_data_format("NCHW"), normalize_data_format(None)
    ('NCHW', 'NHWC')
    """
    if data_format is None:
        return "NHWC"
    if not isinstance(data_format, str) or data_format not in DATA_FORMATS:
        raise ValueError(f"data_format: expected 'NHWC' or 'NCHW', got {data_format!r}")
    return data_format


def to_tf_data_format(data_format: str | None) -> str:
    """Return TensorFlow's name for a Keras ``data_format``.

    Built in chapter 3; used by :mod:`companion.keras_vs_op` and
    :mod:`companion.layers`.

    Parameters
    ----------
    data_format : {"channels_last", "channels_first"} or None
        Case-insensitive, as Keras reads it; ``None`` means Keras' configured
        default (``keras.config.image_data_format()``, which imports Keras).

    Returns
    -------
    str
        ``"NHWC"`` or ``"NCHW"``.

    Raises
    ------
    ValueError
        For any other value.

    Examples
    --------
    >>> to_tf_data_format("channels_first")
    'NCHW'
    >>> to_tf_data_format("Channels_Last")
    'NHWC'
    """
    if data_format is None:
        import keras  # only for its configured default

        data_format = keras.config.image_data_format()
    standardized = str(data_format).lower()
    if standardized not in _KERAS_DATA_FORMATS:
        raise ValueError(
            f"data_format: expected 'channels_last' or 'channels_first', got {data_format!r}"
        )
    return _KERAS_DATA_FORMATS[standardized]


def spatial(values: Sequence[int], data_format: str = "NHWC") -> tuple[int, int]:
    """Return the ``(height, width)`` entries of a four-element shape or argument.

    Built in chapter 2.

    Examples
    --------
    >>> spatial((8, 3, 32, 48), "NCHW")
    (32, 48)
    """
    normalize_data_format(data_format)
    if data_format == "NHWC":
        return values[1], values[2]
    return values[2], values[3]


def _four(height: int, width: int, fill: int, data_format: str) -> tuple[int, int, int, int]:
    if data_format == "NHWC":
        return (fill, height, width, fill)
    return (fill, fill, height, width)


def _window_argument(
    value: int | Sequence[int], name: str, data_format: str
) -> tuple[int, int, int, int]:
    normalize_data_format(data_format)
    items = integers(
        value,
        name,
        lengths=(1, 2, 4),
        minimum=None,
        expected="an int or a list of 1, 2 or 4 ints",
    )
    if len(items) == 1:
        four = _four(items[0], items[0], 1, data_format)
    elif len(items) == 2:
        four = _four(items[0], items[1], 1, data_format)
    else:
        four = items
    if min(four) <= 0:
        raise ValueError(f"{name}: every entry must be a positive integer, got {value!r}")
    batch, channel = (four[0], four[3]) if data_format == "NHWC" else (four[0], four[1])
    if (batch, channel) != (1, 1):
        raise ValueError(
            f"{name}: the batch and channel entries must be 1 (TensorFlow supports "
            f"{name} only along height and width), got {value!r} for {data_format}"
        )
    return four  # type: ignore[return-value]


def normalize_strides(
    strides: int | Sequence[int], data_format: str = "NHWC"
) -> tuple[int, int, int, int]:
    """Return ``strides`` in its four-element form, as :func:`tf.nn.conv2d` reads it.

    Built in chapter 2.

    Parameters
    ----------
    strides : int or sequence of 1, 2 or 4 ints
        An int (or one-element list) applies to height and width; two elements
        are ``(height, width)``; four are in the data format's order, with 1 on
        the batch and channel dimensions.
    data_format : {"NHWC", "NCHW"}

    Returns
    -------
    tuple of 4 ints
        In the data format's order.

    Raises
    ------
    ValueError
        A wrong length, a non-positive entry, or a batch/channel entry other than 1.

    Examples
    --------
    >>> normalize_strides(2)
    (1, 2, 2, 1)
    >>> normalize_strides([2, 3], "NCHW")
    (1, 1, 2, 3)
    """
    return _window_argument(strides, "strides", data_format)


def normalize_dilations(
    dilations: int | Sequence[int] | None, data_format: str = "NHWC"
) -> tuple[int, int, int, int]:
    """Return ``dilations`` in its four-element form; ``None`` means no dilation.

    Built in chapter 2. Takes the same forms as :func:`normalize_strides`.

    Examples
    --------
    >>> normalize_dilations(None)
    (1, 1, 1, 1)
    >>> normalize_dilations([1, 1, 2, 2], "NCHW")
    (1, 1, 2, 2)
    """
    value = 1 if dilations is None else dilations
    return _window_argument(value, "dilations", data_format)


def normalize_padding(padding: str | Sequence[Sequence[int]], data_format: str = "NHWC") -> Padding:
    """Check ``padding`` and return ``"SAME"``, ``"VALID"`` or explicit spatial pads.

    Built in chapter 2.

    Parameters
    ----------
    padding : str or sequence of 4 pairs
        ``"SAME"`` or ``"VALID"`` (upper case, as TensorFlow requires), or an
        explicit list of four ``[before, after]`` pairs in the data format's
        order, for example ``[[0, 0], [1, 2], [3, 4], [0, 0]]`` in NHWC.
    data_format : {"NHWC", "NCHW"}

    Returns
    -------
    str or tuple of two pairs
        ``"SAME"``, ``"VALID"``, or ``((top, bottom), (left, right))``.

    Raises
    ------
    ValueError
        An unknown string, a list not of four pairs, a negative pad, or a
        non-zero pad on the batch or channel dimension (which TensorFlow's
        Eigen kernel rejects; oneDNN silently accepts it).

    Examples
    --------
    >>> normalize_padding("VALID")
    'VALID'
    >>> normalize_padding([[0, 0], [1, 2], [3, 4], [0, 0]])
    ((1, 2), (3, 4))
    """
    normalize_data_format(data_format)
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding  # type: ignore[return-value]
        hint = " (TensorFlow requires upper case)" if padding.upper() in ("SAME", "VALID") else ""
        raise ValueError(
            f"padding: expected 'SAME', 'VALID' or a list of 4 [before, after] pairs, "
            f"got {padding!r}{hint}"
        )
    expected = "a list of 4 [before, after] pairs of non-negative ints"
    try:
        pairs = [list(pair) for pair in padding]
    except TypeError:
        raise ValueError(
            f"padding: expected 'SAME', 'VALID' or {expected}, got {padding!r}"
        ) from None
    if len(pairs) != 4 or any(len(p) != 2 for p in pairs):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    pairs = [[_as_index(v) for v in pair] for pair in pairs]
    if any(v is None for pair in pairs for v in pair):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding: every pad must be non-negative, got {padding!r}")
    if data_format == "NHWC":
        batch, height, width, channel = pairs
    else:
        batch, channel, height, width = pairs
    if batch != [0, 0] or channel != [0, 0]:
        raise ValueError(
            f"padding: the batch and channel pairs must be [0, 0] (TensorFlow pads only "
            f"height and width), got {padding!r} for {data_format}"
        )
    return (tuple(height), tuple(width))  # type: ignore[return-value]


def pair_of_pads(padding: object) -> Pads:
    """Return an explicit ``(before, after)`` pair of one dimension, or raise naming ``padding``.

    Examples
    --------
    >>> pair_of_pads([1, 2])
    (1, 2)
    """
    expected = "'SAME', 'VALID' or a (before, after) pair of non-negative ints"
    if isinstance(padding, str):
        raise ValueError(f"padding: expected {expected}, got {padding!r}")
    return integers(padding, "padding", lengths=(2,), expected=expected)  # type: ignore[return-value]
