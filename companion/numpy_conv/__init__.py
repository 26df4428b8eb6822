"""Convolution in NumPy: a drop-in twin of ``tf.nn.conv2d``, forward and backward.

Built in chapter 5. :func:`conv2d` takes :func:`tf.nn.conv2d`'s arguments with
their meaning (strides, dilations, ``SAME``/``VALID``/explicit padding, NHWC and
NCHW, groups) and returns the same shape and dtype, following TensorFlow's CPU
kernels of ``TF_ENABLE_ONEDNN_OPTS=0`` where the two CPU paths disagree;
:func:`conv2d_backprop_input` and :func:`conv2d_backprop_filter` are its
gradients. Values agree with TensorFlow's within
:func:`companion.numerics.conv_error_bound`, not bitwise: each method adds the
products in its own order. They are bitwise the same whatever the number of
CPUs, threads and BLAS threads, for every operation and method.

``method=`` picks one of :data:`METHODS`: the teaching ladder ``"loops"``,
``"windows"``, ``"im2col"``; the fast ``"im2col_blocked"``, ``"taps"``,
``"planar"``, ``"mec"``, ``"images"`` (cache-sized blocks spread over threads); ``"unpadded"`` (no
padded copy, for padding larger than the work); or ``"auto"`` (the default),
which asks :func:`choose_method`. The gradients' ``"auto"`` has algorithms of
its own (:data:`INPUT_GRADIENT_STRATEGIES`, :data:`FILTER_GRADIENT_STRATEGIES`),
chosen by :func:`choose_input_gradient` and :func:`choose_filter_gradient`.
:func:`settings` tunes speed and memory.

Import from ``companion.numpy_conv`` itself; its submodules are internals, named
for a reader of the code: ``operands`` (array arguments, dtypes), ``forward``,
``direct``, ``blocked``, ``grid`` (stride phases), ``depthwise`` (one channel per
group), ``mec``, ``unpadded``, ``parallel`` (threads, scratch, BLAS), ``products``
(matrix products cut to the size of the BLAS's small-matrix kernels), ``gradients``,
``scatter`` (the input gradient for few input channels).
"""

from companion.numpy_conv import forward as _forward
from companion.numpy_conv import gradients as _gradients
from companion.numpy_conv import operands as _operands
from companion.numpy_conv import parallel as _parallel
from companion.numpy_conv.forward import choose_method, conv2d
from companion.numpy_conv.gradients import (
    choose_filter_gradient,
    choose_input_gradient,
    conv2d_backprop_filter,
    conv2d_backprop_input,
)
from companion.numpy_conv.parallel import (
    Settings,
    clear_workspace,
    get_settings,
    settings,
)

#: The values ``method`` accepts: ``"auto"`` and the names of :data:`STRATEGIES`.
METHODS = _forward.METHODS
#: The implementations by name; each takes ``(x_nhwc, filters, geometry)``.
STRATEGIES = _forward.STRATEGIES
#: A strategy computes the NHWC output from the NHWC input and filters and a Geometry.
Strategy = _forward.Strategy
#: ``auto`` sends convolutions with at most this many input channels per group to ``"planar"``.
PLANAR_MAX_DEPTH = _forward.PLANAR_MAX_DEPTH
#: ``auto`` sends one-channel layers with at most this many terms per window to ``"images"``.
IMAGES_MAX_TERMS = _forward.IMAGES_MAX_TERMS
#: ``auto`` sends ungrouped convolutions with a small filter matrix per tap to ``"mec"``.
MEC_MAX_TAP = _forward.MEC_MAX_TAP
#: The input gradient's algorithms by name; each takes ``(dy_nhwc, filters, geometry)``.
INPUT_GRADIENT_STRATEGIES = _gradients.INPUT_GRADIENT_STRATEGIES
#: The filter gradient's algorithms by name; each takes ``(x_nhwc, dy_nhwc, geometry)``.
FILTER_GRADIENT_STRATEGIES = _gradients.FILTER_GRADIENT_STRATEGIES
#: The dtypes ``tf.nn.conv2d`` and its input gradient accept.
SUPPORTED_DTYPES = _operands.SUPPORTED_DTYPES
#: The fewest output positions a block of a matrix product holds.
MIN_BLOCK_POSITIONS = _parallel.MIN_BLOCK_POSITIONS

__all__ = [
    "FILTER_GRADIENT_STRATEGIES",
    "IMAGES_MAX_TERMS",
    "INPUT_GRADIENT_STRATEGIES",
    "MEC_MAX_TAP",
    "METHODS",
    "MIN_BLOCK_POSITIONS",
    "PLANAR_MAX_DEPTH",
    "STRATEGIES",
    "SUPPORTED_DTYPES",
    "Settings",
    "Strategy",
    "choose_filter_gradient",
    "choose_input_gradient",
    "choose_method",
    "clear_workspace",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "get_settings",
    "settings",
]
