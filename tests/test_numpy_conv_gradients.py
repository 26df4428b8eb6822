"""companion.numpy_conv's gradients: against tf.GradientTape on the default path, and the
adjoint identity exactly for every configuration (dilated, grouped, empty, NCHW)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, event, given, settings

from companion.numerics import assert_conv_close, dot_error_bound, gamma
from companion.numpy_conv import conv2d, conv2d_backprop_filter, conv2d_backprop_input
from tests.conv_cases import (
    METHODS,
    Config,
    accumulation,
    configs,
    four_nhwc,
    nonempty,
    to_nhwc_argument,
)
from tests.helpers import SETTINGS

# --------------------------------------------------------------------------
# Gradients: tf.GradientTape on the default path
# --------------------------------------------------------------------------


def gradient_bounds(config: Config, x, w, dy, accumulate_dtype=None):
    """Bounds on the input and filter gradients: ours (or TensorFlow's), plus the reference's.

    The input gradient sums kh·kw·(out_channels/groups) products per element; the reference
    formulation (a zero-filled dilated kernel) has eff_h·eff_w·(out_channels/groups) terms.
    The filter gradient sums batch·out_height·out_width products per weight.
    """
    x64, w64, dy64 = (np.abs(a.astype(np.float64)) for a in (x, w, dy))
    kh, kw, _, out_channels = w.shape
    per_group = out_channels // config.groups
    _, dh, dw, _ = four_nhwc(to_nhwc_argument(config.dilations, config.data_format))
    n_input = kh * kw * per_group
    n_input_reference = ((kh - 1) * dh + 1) * ((kw - 1) * dw + 1) * per_group
    batch, out_h, out_w, _ = config.to_nhwc(dy).shape
    n_filter = batch * out_h * out_w
    # Our float64 magnitudes are sums too: enlarge them by their own worst-case error.
    grow = 1 / (1 - gamma(max(n_input_reference, n_filter), np.float64))
    m_input = conv2d_backprop_input(x.shape, w64, dy64, **config.args) * grow
    m_filter = conv2d_backprop_filter(x64, w.shape, dy64, **config.args) * grow
    dtype = x.dtype
    acc = {"accumulate_dtype": accumulate_dtype}
    input_bound = dot_error_bound(m_input, n_input, dtype, **acc) + dot_error_bound(
        m_input, n_input_reference, np.float64
    )
    filter_bound = dot_error_bound(m_filter, n_filter, dtype, **acc) + dot_error_bound(
        m_filter, n_filter, np.float64
    )
    return input_bound, filter_bound


GRADIENT_DTYPES = ("float32",) * 6 + ("float64", "float16", "bfloat16")


@settings(max_examples=150, **SETTINGS)
@given(config=configs(dtypes=GRADIENT_DTYPES, batch=(1, 3)))
def test_gradients_match_gradient_tape(default, config):
    # oneDNN fails on gradients of empty outputs; those are exact zeros, tested below.
    assume(nonempty(config))
    x, w, dy = config.arrays(config.input_shape, config.filter_shape, config.output_shape())
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    nhwc = config.nhwc_args
    # TensorFlow has no float64 CPU gradient for dilated or grouped convolutions (nor any
    # with oneDNN off): the float64 reference is the same
    # convolution built from undilated, ungrouped ones, differentiated by GradientTape.
    reference_call = {
        "input": config.to_nhwc(x64),
        "filters": w64,
        "out_backprop": config.to_nhwc(dy64),
        "strides": four_nhwc(nhwc["strides"]),
        "padding": nhwc["padding"],
        "dilations": four_nhwc(nhwc["dilations"]),
    }
    tape_call = {"input": x, "filters": w, "out_backprop": dy, **config.args}
    ref, tape = default.call([("reference_grads", reference_call), ("grads", tape_call)])
    assert ref[0] == "ok", ref
    desired_dx, desired_dw = config.from_nhwc(ref[1][0]), ref[1][1]
    # oneDNN computes float32 gradients for SAME and VALID only; everything else goes to
    # the Eigen kernels, which lack dilated, grouped and NCHW gradients.
    dilated = four_nhwc(nhwc["dilations"]) != [1, 1, 1, 1]
    unsupported = (config.dtype != "float32" or not isinstance(config.padding, str)) and (
        dilated or config.groups > 1 or config.data_format == "NCHW"
    )
    assert tape[0] == "ok" or unsupported, tape
    event(f"{config.dtype}, GradientTape {'has no CPU gradient' if tape[0] != 'ok' else 'runs'}")
    ours_bounds = gradient_bounds(config, x, w, dy, accumulation(config.dtype))
    for method in METHODS:
        dx = conv2d_backprop_input(x.shape, w, dy, **config.args, method=method)
        dw = conv2d_backprop_filter(x, w.shape, dy, **config.args, method=method)
        assert (dx.shape, dx.dtype, dw.shape, dw.dtype) == (x.shape, x.dtype, w.shape, w.dtype)
        assert_conv_close(dx, desired_dx, ours_bounds[0])
        assert_conv_close(dw, desired_dw, ours_bounds[1])
    # TensorFlow 2.21's oneDNN bfloat16 NCHW filter gradient can return garbage (inf, 1e27)
    # for tiny inputs with padding, so TensorFlow's own result is held to the bound elsewhere.
    if tape[0] == "ok" and not (config.dtype == "bfloat16" and config.data_format == "NCHW"):
        tf_dx, tf_dw = tape[1]
        tf_bounds = gradient_bounds(config, x, w, dy)
        assert (tf_dx.dtype, tf_dw.dtype) == (x.dtype, w.dtype)
        assert_conv_close(tf_dx, desired_dx, tf_bounds[0])
        assert_conv_close(tf_dw, desired_dw, tf_bounds[1])


# --------------------------------------------------------------------------
# The adjoint identity, exactly, for every configuration (dilated, grouped, empty, NCHW)
# --------------------------------------------------------------------------


def exact_dot(a: np.ndarray, b: np.ndarray) -> int:
    assert np.array_equal(a, np.round(a)) and np.array_equal(b, np.round(b))
    return int(np.sum(a.astype(np.int64) * b.astype(np.int64)))


@settings(max_examples=120, **SETTINGS)
@given(config=configs(dtypes=("float64", "int32")))
def test_backprops_are_the_adjoints_of_conv2d(config):
    """<conv(x, w), dy> = <x, backprop_input(dy)> = <w, backprop_filter(x, dy)>, exactly.

    Small integers make every sum exact in float64 (and in int32), whatever the order, so
    this pins both gradients, including where TensorFlow has no CPU gradient to compare with.
    """
    config = Config(**{**config.__dict__, "values": "integers"})
    x, w = config.arrays(config.input_shape, config.filter_shape)
    shape = config.output_shape()
    if shape is None:
        for call in (
            lambda: conv2d(x, w, **config.args),
            lambda: conv2d_backprop_input(x.shape, w, x, **config.args),
            lambda: conv2d_backprop_filter(x, w.shape, x, **config.args),
        ):
            with pytest.raises(ValueError):
                call()
        return
    (dy,) = config.arrays(shape)
    event("empty output" if 0 in shape else "non-empty output")
    for method in METHODS:
        y = conv2d(x, w, **config.args, method=method)
        dx = conv2d_backprop_input(x.shape, w, dy, **config.args, method=method)
        assert exact_dot(y, dy) == exact_dot(x, dx)
        if config.dtype == "int32":  # as TensorFlow, no integer filter gradient
            x = x.astype(np.float64)
        dw = conv2d_backprop_filter(x, w.shape, dy, **config.args, method=method)
        assert exact_dot(y, dy) == exact_dot(w, dw)


def test_gradients_of_an_empty_output_are_zero():
    x = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    w = np.ones((3, 3, 1, 2))
    dy = np.zeros((1, 0, 0, 2))
    for method in METHODS:
        dx = conv2d_backprop_input(x.shape, w, dy, 1, "VALID", method=method)
        dw = conv2d_backprop_filter(x, w.shape, dy, 1, "VALID", method=method)
        assert np.array_equal(dx, np.zeros_like(x)) and np.array_equal(dw, np.zeros_like(w))
