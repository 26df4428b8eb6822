"""A learnable Keras layer whose forward pass is :func:`tf.nn.conv2d`.

:class:`NNConv2D` takes :class:`keras.layers.Conv2D`'s constructor arguments,
with the same meanings and defaults, and is usable wherever ``Conv2D`` is: in
Sequential and functional models, in ``fit``, under mixed precision, and in
``.keras`` files. Given the same weights it computes what ``Conv2D`` computes,
bit for bit where ``Conv2D`` runs the same kernel (see below). Unlike ``Conv2D``
it accepts ``strides > 1`` together with ``dilation_rate > 1``, which
:func:`tf.nn.conv2d` supports.

All stride, dilation, padding and output-size arithmetic comes from
:mod:`companion.arithmetic`.

Notes
-----
**Data formats.** Keras' ``"channels_last"`` and ``"channels_first"`` are
TensorFlow's ``"NHWC"`` and ``"NCHW"``. TensorFlow's Eigen CPU kernels
(``TF_ENABLE_ONEDNN_OPTS=0``) have no NCHW convolution ("The Conv2D op
currently only supports the NHWC tensor format on the CPU"), while the oneDNN
kernels (for float32 and bfloat16) and GPUs do. A ``"channels_first"``
layer therefore calls ``tf.nn.conv2d(..., data_format="NCHW")`` where that
exists (:func:`native_nchw_available`), and otherwise transposes its input to
NHWC, convolves, and transposes back. Transposing moves values without
rounding them, and on the oneDNN path the tests find both routes bitwise
equal. ``keras.layers.Conv2D`` itself has no such fallback: with
``"channels_first"`` it fails on the Eigen CPU path.

**Gradients.** On the oneDNN path (TensorFlow's default on x86 CPUs) gradients
exist for every configuration. The Eigen CPU kernels have no gradient for
``dilation_rate > 1`` ("Current CPU implementations do not yet support
dilation rates larger than 1") nor for grouped convolution: the forward pass
works there, training does not.

**Bias.** The bias is added the way ``Conv2D`` adds it, with ``keras.ops.add`` and
a ``(1, 1, 1, filters)`` tensor, which Keras (3.9 and newer) lowers to
TensorFlow's ``BiasAdd``. A plain ``outputs + bias`` gives the same sums but
becomes ``AddV2``, whose gradient adds up the batch and the pixels in another
order, so training drifts from ``Conv2D``'s in the last bits (chapter 4 caught
this). Using ``Conv2D``'s ops keeps the two layers' computations identical.

**Backend.** The layer calls TensorFlow directly, so it needs Keras' TensorFlow
backend (the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import keras
import tensorflow as tf

from companion import arguments, arithmetic
from companion.arguments import to_tf_data_format
from companion.runtime import onednn_enabled

__all__ = ["NNConv2D", "native_nchw_available"]


@cache
def native_nchw_available(dtype: str = "float32") -> bool:
    """Tell whether :func:`tf.nn.conv2d` can run ``data_format="NCHW"`` here in ``dtype``.

    Built in chapter 4.

    True when TensorFlow sees a GPU, or uses its oneDNN CPU kernels and
    ``dtype`` is float32 or bfloat16 (oneDNN's NCHW kernels exist for those
    only); False otherwise, in particular on the Eigen CPU kernels
    (``TF_ENABLE_ONEDNN_OPTS=0``).

    Examples
    --------
    >>> isinstance(native_nchw_available("float16"), bool)
    True
    """
    if tf.config.list_logical_devices("GPU"):
        return True
    return onednn_enabled() and tf.as_dtype(dtype).name in {"float32", "bfloat16"}


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An int or two ints (height, width), each positive, as Conv2D takes them."""
    items = arguments.integers(
        value,
        name,
        lengths=(1, 2),
        minimum=1,
        expected="a positive int or a tuple of 2 positive ints",
    )
    return (items[0], items[0]) if len(items) == 1 else items  # type: ignore[return-value]


def _standardize_padding(padding: object) -> str:
    if not isinstance(padding, str) or padding.lower() not in {"valid", "same"}:
        raise ValueError(f"padding: expected 'valid' or 'same' (any case), got {padding!r}")
    return padding.lower()


@keras.saving.register_keras_serializable(package="companion")
class NNConv2D(keras.layers.Layer):
    """2D convolution layer computed with :func:`tf.nn.conv2d`, with learnable weights.

    Built in chapter 4.

    The arguments, their defaults and the layer's weights (``kernel`` of shape
    ``(kernel_height, kernel_width, in_channels // groups, filters)``, then
    ``bias`` of shape ``(filters,)``) are those of
    :class:`keras.layers.Conv2D`, so ``NNConv2D.from_config(conv.get_config())``
    followed by ``set_weights(conv.get_weights())`` reproduces a ``Conv2D``.

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : int or tuple of 2 ints
        Height and width of the convolution window.
    strides : int or tuple of 2 ints, default 1
        Step of the window. Unlike ``Conv2D``, may exceed 1 together with
        ``dilation_rate``.
    padding : {"valid", "same"}, default "valid"
        Case-insensitive. ``"same"`` pads as TensorFlow does, the odd zero
        at the bottom/right (:func:`companion.arithmetic.same_pads`).
    data_format : {"channels_last", "channels_first"} or None
        ``None`` means ``keras.config.image_data_format()``. See the module
        notes for ``"channels_first"`` on TensorFlow's Eigen CPU kernels.
    dilation_rate : int or tuple of 2 ints, default 1
        Spacing between the kernel's taps.
    groups : int, default 1
        Split the input channels (and ``filters``) into this many groups,
        each convolved separately; both must be divisible by it.
    activation : str, callable or None
        Applied to the output; ``None`` means linear.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or initializer
        Default ``"glorot_uniform"`` and ``"zeros"``.
    kernel_regularizer, bias_regularizer, activity_regularizer : optional
    kernel_constraint, bias_constraint : optional
    **kwargs
        Passed to :class:`keras.layers.Layer` (``name``, ``dtype``,
        ``trainable``, ...). ``dtype`` may be a mixed policy such as
        ``"mixed_float16"``: the weights are kept in the variable dtype and
        used in the compute dtype.

    Raises
    ------
    ValueError
        At construction, for a non-positive or non-integer ``filters``,
        ``kernel_size``, ``strides``, ``dilation_rate`` or ``groups``, a
        ``filters`` not divisible by ``groups``, or an unknown ``padding`` or
        ``data_format``; at build, for input channels not divisible by
        ``groups``, an input that is not rank 4, or an input too small for
        the (dilated) kernel. The message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> layer = NNConv2D(4, 3, strides=2, dilation_rate=2, padding="same")
    >>> layer(np.zeros((1, 9, 9, 3), "float32")).shape
    TensorShape([1, 5, 5, 4])
    >>> layer.compute_output_shape((None, None, 32, 3))
    (None, None, 16, 4)
    >>> [tuple(w.shape) for w in layer.weights]
    [(3, 3, 3, 4), (4,)]
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | Sequence[int] = (1, 1),
        groups: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"NNConv2D calls tf.nn.conv2d and needs Keras' TensorFlow backend, "
                f"got backend {keras.backend.backend()!r}"
            )
        self.filters = arguments.integer(filters, "filters", minimum=1)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.groups = arguments.integer(groups, "groups", minimum=1)
        if self.filters % self.groups:
            raise ValueError(
                f"filters: must be divisible by groups={self.groups}, got filters={self.filters}"
            )
        self.padding = _standardize_padding(padding)
        tf_format = to_tf_data_format(data_format)
        self.data_format = "channels_last" if tf_format == "NHWC" else "channels_first"
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        # Checked now, so that a bad combination fails here rather than inside TensorFlow.
        self._tf_strides = arguments.normalize_strides(self.strides, tf_format)
        self._tf_dilations = arguments.normalize_dilations(self.dilation_rate, tf_format)
        self._tf_padding = arguments.normalize_padding(self.padding.upper(), tf_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.kernel = None
        self.bias = None

    # -- shapes ---------------------------------------------------------------

    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _in_depth(self, input_shape: Sequence[int | None]) -> int | None:
        """The kernel's input depth, checking that ``groups`` divides the channels."""
        channels = input_shape[self._channel_axis()]
        if channels is None:
            return None
        if channels % self.groups:
            raise ValueError(
                f"groups: the input's {channels} channels must be divisible by "
                f"groups={self.groups} (input shape {tuple(input_shape)})"
            )
        return channels // self.groups

    def compute_output_shape(self, input_shape):
        """Return the output shape; unknown (``None``) sizes stay unknown.

        Raises
        ------
        ValueError
            For an input that is not rank 4, channels not divisible by
            ``groups``, or spatial sizes too small for the dilated kernel
            (``Conv2D`` refuses an empty output too).
        """
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                f"input_shape: expected rank 4 (batch, height, width, channels) or "
                f"(batch, channels, height, width), got {input_shape}"
            )
        in_depth = self._in_depth(input_shape)
        output_shape = arithmetic.conv_output_shape(
            input_shape,
            (*self.kernel_size, in_depth or 1, self.filters),
            strides=self.strides,
            padding=self.padding.upper(),
            data_format=to_tf_data_format(self.data_format),
            dilations=self.dilation_rate,
        )
        spatial_out = arguments.spatial(output_shape, to_tf_data_format(self.data_format))
        if 0 in spatial_out:
            raise ValueError(
                f"kernel_size: the input {input_shape} is too small for kernel_size="
                f"{self.kernel_size} with dilation_rate={self.dilation_rate} and "
                f"padding={self.padding!r}: the output would be empty {output_shape}"
            )
        return output_shape

    def build(self, input_shape):
        """Create ``kernel`` (and ``bias``) in the layer's variable dtype."""
        self.compute_output_shape(input_shape)  # validates everything first
        in_depth = self._in_depth(input_shape)
        if in_depth is None:
            raise ValueError(
                f"input_shape: the channel dimension must be known to build the layer, "
                f"got {tuple(input_shape)} with data_format={self.data_format!r}"
            )
        channels = input_shape[self._channel_axis()]
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={self._channel_axis(): channels})
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, in_depth, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=True,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None

    # -- forward pass ---------------------------------------------------------

    def call(self, inputs):
        kernel = keras.ops.cast(self.kernel, self.compute_dtype)
        tf_format = to_tf_data_format(self.data_format)
        if tf_format == "NCHW" and not native_nchw_available(self.compute_dtype):
            nhwc = tf.transpose(inputs, (0, 2, 3, 1))
            outputs = tf.nn.conv2d(
                nhwc,
                kernel,
                strides=arguments.normalize_strides(self.strides, "NHWC"),
                padding=self._tf_padding,
                data_format="NHWC",
                dilations=arguments.normalize_dilations(self.dilation_rate, "NHWC"),
            )
            outputs = tf.transpose(outputs, (0, 3, 1, 2))
        else:
            outputs = tf.nn.conv2d(
                inputs,
                kernel,
                strides=self._tf_strides,
                padding=self._tf_padding,
                data_format=tf_format,
                dilations=self._tf_dilations,
            )
        if self.use_bias:
            bias = keras.ops.cast(self.bias, self.compute_dtype)
            shape = (1, 1, 1, self.filters) if tf_format == "NHWC" else (1, self.filters, 1, 1)
            outputs = keras.ops.add(outputs, keras.ops.reshape(bias, shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # -- serialisation ----------------------------------------------------------

    def get_config(self):
        """Return the constructor arguments, with the same keys as ``Conv2D.get_config``."""
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "groups": self.groups,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config
