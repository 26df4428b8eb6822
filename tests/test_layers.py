"""Tests of companion.layers.NNConv2D: a Keras layer over tf.nn.conv2d.

In-process tests run on whichever TensorFlow CPU path this process uses (oneDNN
by default). What differs between the paths (gradients for dilation > 1 and
for groups, NCHW forward) is checked in two subprocesses, one per path.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import arguments
from companion import layers as layers_module
from companion.arguments import to_tf_data_format
from companion.layers import NNConv2D, native_nchw_available
from companion.numerics import gamma
from companion.runtime import onednn_enabled, run_python


def random(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def built_pair(config: dict, input_shape: tuple) -> tuple[keras.layers.Conv2D, NNConv2D]:
    conv = keras.layers.Conv2D(**config)
    conv.build(input_shape)
    conv.set_weights([random(w.shape, seed=i + 1) for i, w in enumerate(conv.weights)])
    nn = NNConv2D.from_config(conv.get_config())
    nn.build(input_shape)
    nn.set_weights(conv.get_weights())
    return conv, nn


# -- Keras' own layer checks ---------------------------------------------------------------


@pytest.fixture
def keras_case():
    """Keras' TestCase, whose run_layer_test is what Keras applies to its own layers."""
    # Private: Keras exports no public layer-conformance test; the tests' one private import.
    from keras.src.testing import TestCase

    keras.backend.clear_session()
    return TestCase("run_layer_test")


@pytest.mark.parametrize(
    ("init_kwargs", "input_shape", "output_shape"),
    [
        ({"filters": 5, "kernel_size": 3}, (2, 8, 8, 3), (2, 6, 6, 5)),
        (
            {
                "filters": 4,
                "kernel_size": (3, 2),
                "strides": 2,
                "dilation_rate": 2,
                "padding": "same",
            },
            (2, 9, 10, 3),
            (2, 5, 5, 4),
        ),
        (
            {"filters": 6, "kernel_size": 2, "groups": 2, "data_format": "channels_first"},
            (2, 4, 7, 7),
            (2, 6, 6, 6),
        ),
    ],
    ids=["basic", "strides-and-dilation", "groups-channels-first"],
)
def test_passes_keras_layer_checks(keras_case, init_kwargs, input_shape, output_shape):
    # build, symbolic call, eager call, get_config/from_config and serialize/deserialize
    # round trips, a training step in a model, and a mixed_float16 run.
    keras_case.run_layer_test(
        NNConv2D,
        init_kwargs=init_kwargs,
        input_shape=input_shape,
        expected_output_shape=output_shape,
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_num_losses=0,
        supports_masking=False,
        run_training_check=trains_here(init_kwargs),
    )


def test_passes_keras_layer_checks_without_bias(keras_case):
    keras_case.run_layer_test(
        NNConv2D,
        init_kwargs={"filters": 3, "kernel_size": 3, "use_bias": False, "padding": "same"},
        input_shape=(1, 5, 5, 2),
        expected_output_shape=(1, 5, 5, 3),
        expected_num_trainable_weights=1,
    )


# -- the same numbers as Conv2D ------------------------------------------------------------

CONV2D_CONFIGS = [
    ({"filters": 4, "kernel_size": 3}, (2, 9, 9, 3)),
    ({"filters": 4, "kernel_size": (3, 2), "padding": "same", "strides": (2, 1)}, (2, 9, 8, 3)),
    ({"filters": 4, "kernel_size": 4, "padding": "same"}, (2, 7, 7, 3)),
    ({"filters": 2, "kernel_size": 3, "activation": "relu", "padding": "same"}, (2, 9, 9, 3)),
    ({"filters": 3, "kernel_size": 1, "use_bias": False, "strides": 3}, (1, 10, 10, 5)),
    (
        {"filters": 4, "kernel_size": 3, "padding": "same", "data_format": "channels_first"},
        (2, 3, 8, 8),
    ),
]


@pytest.mark.parametrize(("config", "input_shape"), CONV2D_CONFIGS)
def test_matches_conv2d_bitwise_forward_and_backward(config, input_shape):
    conv, nn = built_pair(config, input_shape)
    x = tf.constant(random(input_shape, seed=7))
    if config.get("data_format") == "channels_first" and not native_nchw_available():
        # TensorFlow's Eigen CPU kernels have no NCHW convolution, and Conv2D fails.
        with pytest.raises(tf.errors.UnimplementedError, match="NHWC"):
            conv(x)
        assert tuple(nn(x).shape) == nn.compute_output_shape(input_shape)
        return
    outputs, grads = [], []
    for layer in (conv, nn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * random(y.shape, seed=9))
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_weights])])
    assert outputs[0].dtype == outputs[1].dtype == np.float32
    assert np.array_equal(outputs[0], outputs[1])
    for g_conv, g_nn in zip(grads[0], grads[1], strict=True):
        assert np.array_equal(g_conv, g_nn)


def trains_here(config: dict) -> bool:
    """TensorFlow's Eigen CPU kernels have no gradient for dilation > 1 or groups > 1."""
    plain = config.get("groups", 1) == 1 and config.get("dilation_rate", 1) in (1, (1, 1))
    return plain or onednn_enabled()


def forward_and_gradients(layer, x, g, gradients=True):
    """The layer's output and the gradients of sum(output * g) for the input and weights."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * g)
    if not gradients:
        return [y.numpy()]
    return [y.numpy()] + [d.numpy() for d in tape.gradient(loss, [x, *layer.trainable_weights])]


@pytest.mark.parametrize(
    ("config", "input_shape"),
    [
        (
            {"filters": 4, "kernel_size": 3, "dilation_rate": (2, 3), "padding": "same"},
            (2, 11, 12, 3),
        ),
        ({"filters": 6, "kernel_size": 3, "groups": 3, "padding": "same"}, (2, 8, 8, 6)),
    ],
    ids=["dilation", "groups"],
)
def test_matches_conv2d_within_the_rounding_bound_where_conv2d_runs_other_ops(config, input_shape):
    # For dilation > 1, Conv2D calls tf.nn.convolution, which rearranges the input with
    # space_to_batch and runs an undilated convolution; for groups, Keras compiles the
    # convolution with XLA on the CPU. Both add the same products in other orders, so the
    # results agree within the bound of the longest sum involved: each is within
    # gamma_n * (the same computation on absolute values) of the exact value.
    conv, nn = built_pair(config, input_shape)
    x = random(input_shape, seed=3)
    y_shape = nn.compute_output_shape(input_shape)
    g = random(y_shape, seed=4)
    gradients = trains_here(config)  # else compare the forward pass only
    expected = forward_and_gradients(conv, x, g, gradients)
    got = forward_and_gradients(nn, x, g, gradients)
    magnitude_layer = NNConv2D.from_config({**nn.get_config(), "name": "magnitudes"})
    magnitude_layer.build(input_shape)
    magnitude_layer.set_weights([np.abs(w) for w in nn.get_weights()])
    magnitudes = forward_and_gradients(magnitude_layer, np.abs(x), np.abs(g), gradients)
    kh, kw, in_depth, filters = nn.kernel.shape
    batch_pixels = int(np.prod(y_shape[:-1]))
    n = max(kh * kw * in_depth + 1, kh * kw * filters, batch_pixels)
    bound_factor = (
        2 * gamma(n, np.float32) / (1 - gamma(n, np.float32))
    )  # the float32 magnitudes may be low by 1 - gamma_n
    names = ["output", "d/dx", "d/dkernel", "d/dbias"][: len(got)]
    for name, e, o, m in zip(names, expected, got, magnitudes, strict=True):
        assert np.all(np.abs(e - o) <= bound_factor * m), name


def test_equals_tf_nn_conv2d_with_strides_and_dilation_where_conv2d_refuses():
    with pytest.raises(ValueError, match="dilation_rate"):
        keras.layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    x = random((2, 13, 12, 3), seed=1)
    for padding in ("valid", "same"):
        layer = NNConv2D(4, 3, strides=(2, 3), dilation_rate=(2, 2), padding=padding)
        y = layer(x)
        expected = (
            tf.nn.conv2d(x, layer.kernel, strides=(2, 3), padding=padding.upper(), dilations=2)
            + layer.bias
        )
        assert np.array_equal(y.numpy(), expected.numpy())
        assert tuple(y.shape) == layer.compute_output_shape(x.shape)


def test_kernel_gradient_with_strides_and_dilation_is_correct():
    # dL/dw[i, j, c, f] = sum over n, p, q of x[n, p*s + i*d, q*s + j*d, c] * g[n, p, q, f]
    # for VALID padding; computed in float64 and compared within the bound of that sum.
    s, d, k = 2, 2, 3
    x = random((2, 11, 11, 2), seed=4)
    layer = NNConv2D(3, k, strides=s, dilation_rate=d, use_bias=False)
    layer.build(x.shape)
    if not onednn_enabled():  # the Eigen kernels have no such gradient: say so
        with pytest.raises(tf.errors.InvalidArgumentError, match="dilation rates"):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x))
            tape.gradient(loss, layer.kernel)
        return
    with tf.GradientTape() as tape:
        y = layer(x)
        g = random(y.shape, seed=5)
        loss = tf.reduce_sum(y * g)
    grad = tape.gradient(loss, layer.kernel).numpy()
    n, p, q, _ = y.shape
    expected = np.zeros((k, k, 2, 3))
    magnitude = np.zeros((k, k, 2, 3))
    for i in range(k):
        for j in range(k):
            window = x[:, i * d : i * d + s * p : s, j * d : j * d + s * q : s, :].astype(float)
            expected[i, j] = np.einsum("npqc,npqf->cf", window, g.astype(float))
            magnitude[i, j] = np.einsum("npqc,npqf->cf", np.abs(window), np.abs(g.astype(float)))
    assert np.all(np.abs(grad - expected) <= 2 * gamma(n * p * q, np.float32) * magnitude)


def test_channels_first_transposes_where_nchw_is_missing(monkeypatch):
    x = random((2, 3, 9, 8), seed=2)
    layer = NNConv2D(4, 3, strides=2, padding="same", data_format="channels_first")
    layer.build(x.shape)
    monkeypatch.setattr(layers_module, "native_nchw_available", lambda dtype="float32": False)
    transposed = layer(x).numpy()
    nhwc = NNConv2D.from_config({**layer.get_config(), "data_format": "channels_last"})
    nhwc.build((2, 9, 8, 3))
    nhwc.set_weights(layer.get_weights())
    expected = np.transpose(nhwc(np.transpose(x, (0, 2, 3, 1))).numpy(), (0, 3, 1, 2))
    assert np.array_equal(transposed, expected)


# -- shapes -----------------------------------------------------------------------------------


@settings(deadline=None, max_examples=40)
@given(
    height=st.one_of(st.none(), st.integers(1, 14)),
    width=st.one_of(st.none(), st.integers(1, 14)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.sampled_from(["valid", "same", "VALID", "Same"]),
    channels_first=st.booleans(),
)
def test_compute_output_shape_matches_the_actual_output(
    height, width, kernel, strides, dilation, padding, channels_first
):
    data_format = "channels_first" if channels_first else "channels_last"
    layer = NNConv2D(2, kernel, strides, padding, data_format, dilation)

    def shape(h, w):
        return (1, 3, h, w) if channels_first else (1, h, w, 3)

    # Unknown sizes stay unknown, and the known one is what it would be anyway.
    full = (14 if height is None else height, 14 if width is None else width)
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    empty = padding.lower() == "valid" and any(n < e for n, e in zip(full, effective, strict=True))
    if empty:
        with pytest.raises(ValueError, match="kernel_size"):
            layer.compute_output_shape(shape(*full))
        return
    predicted = layer.compute_output_shape(shape(*full))
    partial = layer.compute_output_shape(shape(height, width))
    fmt = to_tf_data_format(data_format)
    expected_partial = tuple(
        None if size is None else out
        for size, out in zip((height, width), arguments.spatial(predicted, fmt), strict=True)
    )
    assert arguments.spatial(partial, fmt) == expected_partial
    if channels_first and not native_nchw_available():
        return  # Conv2D-free NCHW on this path transposes; shapes checked in NHWC
    actual = layer(np.zeros(shape(*full), "float32")).shape
    assert tuple(actual) == predicted


def test_symbolic_call_with_unknown_spatial_sizes():
    inputs = keras.Input((None, None, 3))
    layer = NNConv2D(8, 3, strides=2, padding="same")
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, None, 8)
    model = keras.Model(inputs, outputs)
    assert tuple(model(np.zeros((2, 9, 6, 3), "float32")).shape) == (2, 5, 3, 8)
    assert layer.compute_output_shape((None, None, 7, 3)) == (None, None, 4, 8)


# -- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"filters": 0}, "filters"),
        ({"filters": -2}, "filters"),
        ({"filters": 2.5}, "filters"),
        ({"filters": True}, "filters"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3, -1)}, "kernel_size"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"kernel_size": "3"}, "kernel_size"),
        ({"strides": 0}, "strides"),
        ({"strides": (1, -2)}, "strides"),
        ({"dilation_rate": 0}, "dilation_rate"),
        ({"padding": "causal"}, "padding"),
        ({"padding": "full"}, "padding"),
        ({"padding": [[1, 1], [1, 1]]}, "padding"),
        ({"data_format": "NHWC"}, "data_format"),
        ({"groups": 0}, "groups"),
        ({"filters": 5, "groups": 2}, "filters"),
    ],
)
def test_bad_constructor_arguments_raise_value_error_naming_them(kwargs, argument):
    arguments = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=argument) as error:
        NNConv2D(**arguments)
    assert repr(kwargs[argument]) in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "input_shape", "argument"),
    [
        ({"groups": 2}, (1, 8, 8, 3), "groups"),
        ({"groups": 2, "data_format": "channels_first"}, (1, 3, 8, 8), "groups"),
        ({}, (8, 8, 3), "input_shape"),
        ({"dilation_rate": 3}, (1, 6, 6, 3), "kernel_size"),
        ({}, (1, 8, 8, None), "input_shape"),
    ],
)
def test_bad_inputs_raise_value_error_at_build(kwargs, input_shape, argument):
    layer = NNConv2D(4, 3, **kwargs)
    with pytest.raises(ValueError, match=argument):
        layer.build(input_shape)


def test_rank_3_input_is_refused_before_tensorflow_sees_it():
    # With oneDNN, a rank-3 input to tf.nn.conv2d aborts the process; Keras' input
    # spec turns it into a ValueError first.
    layer = NNConv2D(2, 3)
    layer(np.zeros((1, 5, 5, 1), "float32"))
    with pytest.raises(ValueError, match="ndim=4"):
        layer(np.zeros((5, 5, 1), "float32"))


# -- dtypes and mixed precision ------------------------------------------------------------


def test_mixed_precision_keeps_float32_weights_and_computes_in_float16():
    x = random((2, 6, 6, 3))
    layer = NNConv2D(4, 3, dtype="mixed_float16")
    y = layer(x)
    assert layer.kernel.dtype == "float32" and layer.bias.dtype == "float32"
    assert y.dtype == tf.float16
    expected = tf.nn.conv2d(
        tf.cast(x, tf.float16), tf.cast(layer.kernel, tf.float16), 1, "VALID"
    ) + tf.cast(layer.bias, tf.float16)
    assert np.array_equal(y.numpy(), expected.numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(layer(x), tf.float32))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert [g.dtype for g in grads] == [tf.float32, tf.float32]


def test_float64_layer_computes_in_float64():
    x = random((1, 7, 7, 3), dtype="float64")
    layer = NNConv2D(2, 3, padding="same", dtype="float64")
    y = layer(x)
    assert layer.kernel.dtype == "float64" and y.dtype == tf.float64
    expected = tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias
    assert np.array_equal(y.numpy(), expected.numpy())


# -- training, configuration, saving -------------------------------------------------------


def small_model(seed: int = 0, dilation_rate: int = 2) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10, 10, 1)),
            NNConv2D(
                4, 3, strides=2, dilation_rate=dilation_rate, padding="same", activation="relu"
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )


def test_training_updates_the_kernel_and_bias():
    model = small_model(dilation_rate=2 if onednn_enabled() else 1)
    conv = model.layers[0]
    assert [w.name for w in conv.trainable_weights] == ["kernel", "bias"]
    before = [w.numpy().copy() for w in conv.trainable_weights]
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    x, y = random((16, 10, 10, 1)), np.arange(16) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = [w.numpy() for w in conv.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_get_config_round_trips_every_argument():
    layer = NNConv2D(
        6,
        (3, 2),
        strides=(2, 1),
        padding="SAME",
        data_format="channels_first",
        dilation_rate=(1, 2),
        groups=2,
        activation="tanh",
        use_bias=False,
        kernel_initializer=keras.initializers.HeNormal(seed=3),
        bias_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(0.01),
        bias_regularizer="l1",
        activity_regularizer=keras.regularizers.L1(0.5),
        kernel_constraint=keras.constraints.MaxNorm(2.0),
        bias_constraint="non_neg",
        name="nn_conv",
        dtype="float64",
    )
    config = layer.get_config()
    assert config["padding"] == "same" and config["kernel_size"] == (3, 2)
    revived = NNConv2D.from_config(json.loads(json.dumps(config)))
    assert json.dumps(revived.get_config()) == json.dumps(config)
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "companion>NNConv2D"
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert isinstance(again, NNConv2D)
    assert json.dumps(again.get_config()) == json.dumps(config)


def test_config_keys_are_those_of_conv2d():
    conv = keras.layers.Conv2D(4, 3)
    assert set(NNConv2D(4, 3).get_config()) == set(conv.get_config())


def test_keras_file_round_trip_gives_identical_predictions(tmp_path):
    model = small_model(seed=1)
    x = random((4, 10, 10, 1), seed=8)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    keras.backend.clear_session()
    loaded = keras.saving.load_model(path)  # no custom_objects: the class is registered
    assert isinstance(loaded.layers[0], NNConv2D)
    assert loaded.layers[0].get_config()["dilation_rate"] == (2, 2)
    assert np.array_equal(loaded.predict(x, verbose=0), expected)
    for saved, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(saved, restored)


def test_loading_in_a_fresh_process_needs_companion_layers_imported(tmp_path):
    # Chapter 4: the file names the class companion>NNConv2D; Keras finds it only once the
    # module that registers it has been imported.
    path = tmp_path / "model.keras"
    small_model(seed=2).save(path)
    code = f"""
import json
import keras

try:
    keras.saving.load_model({str(path)!r})
    before = "loaded"
except TypeError as error:
    before = str(error)
import companion.layers

after = type(keras.saving.load_model({str(path)!r}).layers[0]).__name__
print(json.dumps([before, after]))
"""
    before, after = run_python(code).json()
    assert "Could not locate class 'NNConv2D'" in before
    assert after == "NNConv2D"


def test_add_weight_variables_are_autocast_inside_call_only():
    # Chapter 4: under a mixed policy Keras hands add_weight variables to `call` in the
    # compute dtype, which is why NNConv2D's explicit cast is optional; a direct call of
    # `call` gets float32 variables.
    class Plain(keras.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(3, 3, input_shape[-1], 2), name="kernel")

        def call(self, inputs):
            return tf.nn.conv2d(inputs, self.kernel, 1, "VALID")

    x = random((1, 6, 6, 1))
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        layer = Plain()
        assert layer(x).dtype == tf.float16 and layer.kernel.dtype == "float32"
        with pytest.raises(ValueError, match="float16"):
            layer.call(tf.cast(x, tf.float16))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# -- both TensorFlow CPU paths, each in its own process -----------------------------------

PATH_PROBE = r"""
import json
import numpy as np
import tensorflow as tf
import keras
from companion.layers import NNConv2D, native_nchw_available
from companion.runtime import onednn_enabled

rng = np.random.default_rng(0)
x = rng.normal(size=(2, 11, 10, 4)).astype("float32")


def gradient(layer, inputs):
    try:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(inputs) ** 2)
        grads = tape.gradient(loss, layer.trainable_weights)
        return all(g is not None and bool(np.isfinite(g.numpy()).all()) for g in grads)
    except tf.errors.OpError as error:
        return str(error.message).splitlines()[0]


facts = {"onednn": onednn_enabled(), "native_nchw": native_nchw_available()}
dilated = NNConv2D(6, 3, strides=2, dilation_rate=2, padding="same")
y = dilated(x)
reference = tf.nn.conv2d(x, dilated.kernel, 2, "SAME", dilations=2) + dilated.bias
facts["dilated_equals_tf"] = bool(np.array_equal(y.numpy(), reference.numpy()))
facts["dilated_gradient"] = gradient(dilated, x)
facts["grouped_gradient"] = gradient(NNConv2D(6, 3, groups=2), x)
facts["conv2d_dilated_gradient"] = gradient(keras.layers.Conv2D(6, 3, dilation_rate=2), x)
facts["conv2d_grouped_gradient"] = gradient(keras.layers.Conv2D(6, 3, groups=2), x)

conv = keras.layers.Conv2D(6, 3, strides=2, padding="same")
conv.build(x.shape)
twin = NNConv2D.from_config(conv.get_config())
twin.build(x.shape)
twin.set_weights(conv.get_weights())
facts["equals_conv2d"] = bool(np.array_equal(conv(x).numpy(), twin(x).numpy()))

nchw = NNConv2D.from_config({**twin.get_config(), "data_format": "channels_first"})
x_nchw = np.transpose(x, (0, 3, 1, 2))
nchw.build(x_nchw.shape)
nchw.set_weights(twin.get_weights())
expected = np.transpose(twin(x).numpy(), (0, 3, 1, 2))
got = nchw(x_nchw).numpy()
facts["nchw_equals_nhwc"] = bool(np.array_equal(got, expected))
# 3x3x4 = 36 products per output: both within float32's worst-case bound of the exact sum.
magnitude = np.transpose(
    tf.nn.conv2d(np.abs(x), np.abs(twin.kernel.numpy()), 2, "SAME").numpy()
    + np.abs(twin.bias.numpy()), (0, 3, 1, 2)
)
facts["nchw_within_bound"] = bool(
    np.all(np.abs(got - expected) <= 2 * 37 * 2.0**-24 / (1 - 37 * 2.0**-24) * magnitude)
)
facts["tf_version"] = tf.__version__
facts["nchw_gradient"] = gradient(nchw, x_nchw)
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def path_facts() -> dict[bool, dict]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {onednn: pool.submit(run_python, PATH_PROBE, onednn=onednn) for onednn in (1, 0)}
        return {bool(onednn): run.result().json() for onednn, run in runs.items()}


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "eigen"])
def test_forward_pass_is_the_same_on_both_paths(path_facts, onednn):
    facts = path_facts[onednn]
    assert facts["onednn"] is onednn
    assert facts["native_nchw"] is onednn  # no GPU here
    assert facts["dilated_equals_tf"] is True
    assert facts["equals_conv2d"] is True
    # Natively with oneDNN, by transposing without. oneDNN's NCHW and NHWC kernels agree
    # bit for bit from TensorFlow 2.20 on (verified on 2.20 and 2.21); on 2.16-2.19 they
    # add in other orders, each within the rounding bound (seen on 2.16 and on 2.19).
    version = tuple(int(v) for v in facts["tf_version"].split(".")[:2])
    if onednn and version < (2, 20):
        assert facts["nchw_within_bound"] is True
    else:
        assert facts["nchw_equals_nhwc"] is True
    assert facts["nchw_gradient"] is True


def test_gradients_for_dilation_and_groups_exist_on_the_onednn_path(path_facts):
    assert path_facts[True]["dilated_gradient"] is True
    assert path_facts[True]["grouped_gradient"] is True


def test_reference_path_has_no_gradient_for_dilation_or_groups(path_facts):
    # Conv2D's dilated convolution is an undilated one on rearranged data, and its grouped
    # convolution is compiled with XLA: both train where NNConv2D's cannot (chapter 4).
    assert path_facts[False]["conv2d_dilated_gradient"] is True
    assert path_facts[False]["conv2d_grouped_gradient"] is True
    assert "dilation rates larger than 1" in path_facts[False]["dilated_gradient"]
    assert "grouped convolutions" in path_facts[False]["grouped_gradient"]
