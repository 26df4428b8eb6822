"""The array arguments of the NumPy twin: checked, converted and laid out as TensorFlow does.

Dtypes, as in TensorFlow: float16, bfloat16, float32, float64 and int32
inputs; the first operand's dtype wins (``input`` for ``conv2d`` and
``conv2d_backprop_filter``, ``filters`` for ``conv2d_backprop_input``), and
the other operand is converted to it with ``astype``, as TensorFlow converts a
NumPy array. float16 and bfloat16 are summed in float32 and rounded once at
the end; int32 is exact modulo 2**32, as in TensorFlow.
"""

from __future__ import annotations

import functools

import numpy as np

from companion import arguments

#: The dtypes ``tf.nn.conv2d`` and ``conv2d_backprop_input`` accept (their ops' type list).
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32")
#: ``Conv2DBackpropFilter`` has no int32 kernel.
FILTER_GRADIENT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@functools.cache
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered: NumPy computes it in Python on every access, a few
    microseconds that every call of the twin paid several times."""
    return dtype.name


def as_array(value: object, name: str) -> np.ndarray:
    """``value`` as a NumPy array of numbers in native byte order, or a ``ValueError`` naming
    ``name``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected an array, got {type(value).__name__}") from error
    if array.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got dtype object")
    if not array.dtype.isnative:  # big-endian data on a little-endian machine: the values
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def check_dtype(
    array: np.ndarray, name: str, allowed: tuple[str, ...] = SUPPORTED_DTYPES, op: str = "conv2d"
) -> None:
    """Raise a ``ValueError`` naming ``name`` unless TensorFlow's ``op`` accepts the dtype."""
    if dtype_name(array.dtype) not in allowed:
        raise ValueError(
            f"{name}: expected one of the dtypes TensorFlow's {op} accepts "
            f"({', '.join(allowed)}), got {array.dtype}"
        )


def convert(array: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """Convert the second operand to the first one's dtype, as TensorFlow does."""
    if array.dtype.kind not in "biuf" and dtype_name(array.dtype) != "bfloat16":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(dtype, copy=False)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the products are summed in: float32 for 16-bit floats, int64 for int32."""
    if dtype_name(dtype) in ("float16", "bfloat16"):
        return np.dtype(np.float32)
    if dtype_name(dtype) == "int32":
        return np.dtype(np.int64)  # exact modulo 2**32 after the final cast
    return dtype


def check_rank(array: np.ndarray, name: str, layout: str) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``array`` has rank 4."""
    if array.ndim != 4:
        raise ValueError(f"{name}: expected a rank-4 array {layout}, got shape {array.shape}")


def to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    """A view of ``array`` in NHWC order."""
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)


def from_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    """An NHWC result in ``data_format`` order (contiguous)."""
    return array if data_format == "NHWC" else np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def shape_argument(value: object, name: str, what: str) -> tuple[int, int, int, int]:
    """A full shape argument (``input_sizes``, ``filter_sizes``): 4 non-negative ints."""
    expected = f"4 non-negative ints ({what})"
    return arguments.integers(value, name, lengths=(4,), expected=expected)  # type: ignore[return-value]


def finish(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round a result from the computation dtype to the operands' ``dtype``."""
    if dtype_name(dtype) == "int32":
        return result.astype(np.int32)  # wraps modulo 2**32, as int32 arithmetic does
    return result.astype(dtype, copy=False)


def array_argument(value: object, name: str, layout: str) -> np.ndarray:
    """``value`` as a rank-4 NumPy array, or a ``ValueError`` naming ``name``."""
    array = as_array(value, name)
    check_rank(array, name, layout)
    return array


#: How the filters' axes are laid out, for error messages.
FILTER_LAYOUT = "(kernel_height, kernel_width, in_depth, out_channels)"
