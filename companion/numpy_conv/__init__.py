"""Convolution in NumPy: a drop-in twin of ``tf.nn.conv2d``, forward and backward.

Built in chapter 5. :func:`conv2d` takes the arguments of :func:`tf.nn.conv2d`
with the same meaning (strides, dilations, ``SAME``/``VALID``/explicit
padding, NHWC and NCHW, grouped convolution) and returns the same shape and
dtype; where TensorFlow's CPU paths disagree, it follows the one that runs with
``TF_ENABLE_ONEDNN_OPTS=0``. :func:`conv2d_backprop_input` and
:func:`conv2d_backprop_filter` are its gradients. Every call resolves its
arguments once, with :func:`companion.arithmetic.conv_geometry`.

Its values agree with TensorFlow's within the rounding-error bound of
:func:`companion.numerics.conv_error_bound`, not bitwise: every method adds the
``kh·kw·in_depth`` products of an output in its own order.

The methods (``method=``, :data:`METHODS`), all giving the same answer within
that bound:

- ``"loops"``, ``"windows"``, ``"im2col"``: the teaching ladder of chapter 5
  (:mod:`~companion.numpy_conv.direct`): a Python loop per output, one
  ``einsum`` over a strided view of all windows, one matrix product over the
  copied windows (Chellapilla, Puri and Simard 2006);
- ``"im2col_blocked"``, ``"taps"``, ``"planar"``: the fast strategies
  (:mod:`~companion.numpy_conv.blocked`), which work in cache-sized blocks
  spread over threads (:mod:`~companion.numpy_conv.parallel`);
- ``"auto"`` (the default): the strategy :func:`choose_method` picks for the
  shape; the gradients then take faster routes to the same sums
  (:mod:`~companion.numpy_conv.gradients`).

Where the padding would dwarf the input and the output, ``"auto"`` pads
nothing (:mod:`~companion.numpy_conv.unpadded`): time and memory follow the
taps that land on the input.

Results are bitwise the same whatever the number of CPUs, threads and BLAS
threads, for every operation and method. Settings change speed and memory but
never results: :func:`settings`, :func:`get_settings`, :func:`clear_workspace`.
``python -m benchmarks.conv_speed`` times the strategies against
``tf.nn.conv2d``.

Modules: :mod:`~companion.numpy_conv.operands` (array arguments and dtypes),
:mod:`~companion.numpy_conv.forward` (:func:`conv2d` and the registry),
:mod:`~companion.numpy_conv.direct`, :mod:`~companion.numpy_conv.blocked`,
:mod:`~companion.numpy_conv.unpadded`, :mod:`~companion.numpy_conv.parallel`,
:mod:`~companion.numpy_conv.gradients`.
"""

from companion.numpy_conv.forward import (
    METHODS,
    PLANAR_MAX_DEPTH,
    STRATEGIES,
    Strategy,
    choose_method,
    conv2d,
)
from companion.numpy_conv.gradients import conv2d_backprop_filter, conv2d_backprop_input
from companion.numpy_conv.operands import SUPPORTED_DTYPES
from companion.numpy_conv.parallel import (
    MIN_BLOCK_POSITIONS,
    Settings,
    clear_workspace,
    get_settings,
    settings,
)

__all__ = [
    "METHODS",
    "MIN_BLOCK_POSITIONS",
    "PLANAR_MAX_DEPTH",
    "STRATEGIES",
    "SUPPORTED_DTYPES",
    "Settings",
    "Strategy",
    "choose_method",
    "clear_workspace",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "get_settings",
    "settings",
]
