"""A Keras ``Conv2D`` layer, computed with :func:`tf.nn.conv2d`: the mapping of chapter 3.

A built :class:`keras.layers.Conv2D` computes, on Keras' TensorFlow backend,

1. its input cast to the layer's *compute dtype* (Keras' autocast: a float64
   NumPy batch becomes float32 under the default policy, silently);
2. ``tf.nn.conv2d`` of that input with the kernel (cast to the compute dtype),
   Keras' ``padding="same"``/``"valid"`` passed on as TensorFlow's ``"SAME"``/
   ``"VALID"``, ``strides`` and ``dilation_rate`` as ``strides`` and
   ``dilations``;
3. plus the bias, broadcast from shape ``(1, 1, 1, filters)``;
4. followed by the activation.

:func:`op_arguments` gives step 2's arguments and :func:`conv2d_layer_as_op`
evaluates all four steps. Where Keras runs the same TensorFlow kernel, the two
agree bit for bit; for grouped convolution Keras compiles the op with XLA,
another implementation, so agreement is only guaranteed within the rounding
bound of :mod:`companion.numerics`.

Keras refuses ``strides > 1`` together with ``dilation_rate > 1`` in
``Conv2D`` although ``tf.nn.conv2d`` accepts the combination; chapter 4's
:class:`companion.layers.NNConv2D` lifts that restriction.
"""

from __future__ import annotations

from typing import Any

from companion.arguments import to_tf_data_format

__all__ = ["conv2d_layer_as_op", "op_arguments"]


def _check_conv2d(layer: object) -> Any:
    import keras

    if not isinstance(layer, keras.layers.Conv2D):
        raise ValueError(f"layer: expected a keras.layers.Conv2D, got {type(layer).__name__}")
    if not layer.built:
        raise ValueError(
            "layer: expected a built Conv2D (call it once, or call layer.build(input_shape)), "
            "got an unbuilt one"
        )
    return layer


def op_arguments(layer: Any) -> dict[str, object]:
    """Return the :func:`tf.nn.conv2d` keyword arguments that a ``Conv2D`` layer uses.

    Built in chapter 3.

    Parameters
    ----------
    layer : keras.layers.Conv2D
        A built layer.

    Returns
    -------
    dict
        ``strides`` and ``dilations`` as ``(height, width)`` tuples,
        ``padding`` as ``"SAME"`` or ``"VALID"``, ``data_format`` as
        ``"NHWC"`` or ``"NCHW"``.

    Raises
    ------
    ValueError
        If ``layer`` is not a built ``keras.layers.Conv2D``.

    Examples
    --------
    >>> import keras
    >>> layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
    >>> layer.build((None, 8, 8, 3))
    >>> op_arguments(layer)
    {'strides': (2, 2), 'padding': 'SAME', 'data_format': 'NHWC', 'dilations': (1, 1)}
    """
    layer = _check_conv2d(layer)
    return {
        "strides": tuple(int(s) for s in layer.strides),
        "padding": str(layer.padding).upper(),
        "data_format": to_tf_data_format(layer.data_format),
        "dilations": tuple(int(d) for d in layer.dilation_rate),
    }


def conv2d_layer_as_op(layer: Any, inputs: Any) -> Any:
    """Compute what ``layer(inputs)`` computes, with :func:`tf.nn.conv2d` and plain ops.

    Built in chapter 3.

    The input and the weights are cast to ``layer.compute_dtype`` (as Keras'
    autocast does), convolved with :func:`tf.nn.conv2d` using
    :func:`op_arguments`, the bias is added as a ``(1, 1, 1, filters)``
    broadcast (``(1, filters, 1, 1)`` for channels first), and
    ``layer.activation`` is applied.

    Parameters
    ----------
    layer : keras.layers.Conv2D
        A built layer; its weights are read, not changed.
    inputs : array_like or tf.Tensor
        A floating-point batch in the layer's data format.

    Returns
    -------
    tf.Tensor
        In ``layer.compute_dtype``.

    Raises
    ------
    ValueError
        If ``layer`` is not a built ``Conv2D``, or ``inputs`` is not floating point.

    Examples
    --------
    >>> import keras, numpy as np
    >>> layer = keras.layers.Conv2D(2, 3, padding="same", activation="relu")
    >>> x = np.random.default_rng(0).standard_normal((1, 5, 5, 3))   # float64
    >>> expected = layer(x)                  # builds the layer; Keras casts x to float32
    >>> got = conv2d_layer_as_op(layer, x)
    >>> got.dtype.name, bool(np.array_equal(got, expected))
    ('float32', True)
    """
    import tensorflow as tf

    layer = _check_conv2d(layer)
    x = tf.convert_to_tensor(inputs)
    if not x.dtype.is_floating:
        raise ValueError(f"inputs: expected a floating-point batch, got dtype {x.dtype.name}")
    dtype = layer.compute_dtype
    outputs = tf.nn.conv2d(tf.cast(x, dtype), tf.cast(layer.kernel, dtype), **op_arguments(layer))
    if layer.use_bias:
        shape = (1, 1, 1, -1) if layer.data_format == "channels_last" else (1, -1, 1, 1)
        outputs = outputs + tf.reshape(tf.cast(layer.bias, dtype), shape)
    return layer.activation(outputs)
