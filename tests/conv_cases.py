"""Generated convolution configurations shared by the numpy_conv test modules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from companion import numpy_conv
from companion.arithmetic import conv_output_shape
from tests.helpers import window_argument

METHODS = numpy_conv.METHODS
LOW_PRECISION = ("float16", "bfloat16")


def dtype_of(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


VALUE_KINDS = {
    "float32": ("normal", "wide", "integers"),
    "float64": ("normal", "wide", "integers"),
    "float16": ("normal", "tiny"),
    "bfloat16": ("normal",),
    "int32": ("integers",),
}


def make_values(rng: np.random.Generator, shape, dtype: str, kind: str) -> np.ndarray:
    if kind == "integers":
        values = rng.integers(-8, 9, shape).astype(np.float64)
    else:
        values = rng.standard_normal(shape)
        if dtype == "float16":
            values = np.clip(values, -4, 4)  # sums of up to 48 products stay far from overflow
        if kind == "wide":
            values = values * 2.0 ** rng.integers(-20, 21, shape)
        elif kind == "tiny":
            values = values * 2.0**-7  # float16 products in the subnormal range
    return values.astype(dtype_of(dtype))


def padding_argument(data_format: str):
    pair = st.tuples(st.integers(0, 3), st.integers(0, 3)).map(list)

    def four(pairs):
        top, left = pairs
        return [[0, 0], top, left, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], top, left]

    return st.one_of(st.sampled_from(["SAME", "VALID"]), st.tuples(pair, pair).map(four))


def to_nhwc_argument(value, data_format: str):
    """A strides/dilations/padding argument rewritten for NHWC (independently of companion)."""
    if data_format == "NHWC" or value is None or isinstance(value, (int, str)) or len(value) != 4:
        return value
    return [value[0], value[2], value[3], value[1]]


def four_nhwc(value) -> list[int]:
    """strides/dilations of an NHWC call as four ints."""
    if value is None:
        return [1, 1, 1, 1]
    if isinstance(value, int):
        return [1, value, value, 1]
    if len(value) == 1:
        return [1, value[0], value[0], 1]
    if len(value) == 2:
        return [1, value[0], value[1], 1]
    return list(value)


@dataclass(frozen=True)
class Config:
    data_format: str
    batch: int
    height: int
    width: int
    groups: int
    depth: int
    per_group: int
    kernel: tuple[int, int]
    strides: object
    dilations: object
    padding: object
    dtype: str
    values: str
    seed: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        channels = self.groups * self.depth
        if self.data_format == "NHWC":
            return (self.batch, self.height, self.width, channels)
        return (self.batch, channels, self.height, self.width)

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        return (*self.kernel, self.depth, self.groups * self.per_group)

    @property
    def args(self) -> dict:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilations": self.dilations,
        }

    @property
    def nhwc_args(self) -> dict:
        return {
            "strides": to_nhwc_argument(self.strides, self.data_format),
            "padding": to_nhwc_argument(self.padding, self.data_format),
            "data_format": "NHWC",
            "dilations": to_nhwc_argument(self.dilations, self.data_format),
        }

    def arrays(self, *shapes) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [make_values(rng, shape, self.dtype, self.values) for shape in shapes]

    def to_nhwc(self, array: np.ndarray) -> np.ndarray:
        return array if self.data_format == "NHWC" else array.transpose(0, 2, 3, 1)

    def from_nhwc(self, array: np.ndarray) -> np.ndarray:
        return array if self.data_format == "NHWC" else array.transpose(0, 3, 1, 2)

    def output_shape(self) -> tuple | None:
        try:
            return conv_output_shape(self.input_shape, self.filter_shape, **self.args)
        except ValueError:
            return None


DTYPE_CHOICES = ["float32"] * 4 + ["float64"] * 2 + ["float16"] * 2 + ["bfloat16", "int32"]


@st.composite
def configs(draw, formats=("NHWC", "NCHW"), dtypes=tuple(DTYPE_CHOICES), batch=(0, 3)):
    data_format = draw(st.sampled_from(formats))
    dtype = draw(st.sampled_from(dtypes))
    return Config(
        data_format=data_format,
        batch=draw(st.integers(*batch)),
        height=draw(st.integers(1, 8)),
        width=draw(st.integers(1, 8)),
        groups=draw(st.integers(1, 3)),
        depth=draw(st.integers(1, 3)),
        per_group=draw(st.integers(1, 3)),
        kernel=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        strides=draw(window_argument(data_format, 3)),
        dilations=draw(st.none() | window_argument(data_format, 3)),
        padding=draw(padding_argument(data_format)),
        dtype=dtype,
        values=draw(st.sampled_from(VALUE_KINDS[dtype])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def nonempty(config: Config) -> bool:
    shape = config.output_shape()
    return shape is not None and 0 not in shape


def accumulation(dtype: str):
    """How companion.numpy_conv sums: float16 and bfloat16 in float32."""
    return "float32" if dtype in LOW_PRECISION else None


def integer_case(config: Config):
    """Small integers in float64: every order of summation gives the same, exact, sums."""
    rng = np.random.default_rng(config.seed)
    x = rng.integers(-4, 5, config.input_shape).astype(np.float64)
    w = rng.integers(-4, 5, config.filter_shape).astype(np.float64)
    return x, w
