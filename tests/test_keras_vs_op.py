"""The facts chapter 3 (Keras Conv2D vs tf.nn.conv2d) relies on, on both TensorFlow CPU paths.

Each claim of the chapter is measured by :func:`chapter_facts` in a fresh process per CPU
path (``TF_ENABLE_ONEDNN_OPTS=1`` and ``=0``, through ``companion.runtime.run_python``), and
checked by one test whose failure message names the claim that no longer holds. A future
TensorFlow or Keras that changes a dtype rule, a cast or a kernel path fails here, loudly,
before the chapter's stored outputs go stale.

The unit tests of :mod:`companion.keras_vs_op` run in this process, on whichever path it uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import runtime

CHAPTER = "book/03_keras_vs_tf_nn_conv2d.ipynb"
PATHS = {"oneDNN": True, "Eigen": False}


def _claim(text: str, path: str, detail: object = "") -> str:
    return f"{CHAPTER} claims that {text}; this no longer holds on the {path} path. {detail}"


def chapter_facts() -> dict:
    """Measure every fact of chapter 3 in this process; JSON-serialisable.

    Runs in a child process per CPU path (see ``facts`` below). Everything chapter 3
    asserts is recomputed here from scratch, not copied from the notebook.
    """
    import logging
    import traceback
    import warnings

    import keras
    import tensorflow as tf

    from companion import arithmetic, numerics
    from companion.images import load_sample_batch, to_filters
    from companion.keras_vs_op import conv2d_layer_as_op, op_arguments
    from companion.runtime import onednn_enabled

    facts: dict[str, object] = {"onednn": onednn_enabled()}

    # The seed's experiment: china.jpg / 255 in float64, a 7x7x3 filter of ones in float32.
    batch = load_sample_batch("float64", names=["china.jpg"])
    filters = to_filters(np.ones((7, 7)), in_channels=3)
    by_op = tf.nn.conv2d(batch, filters, strides=1, padding="SAME").numpy()
    inputs = keras.Input(shape=batch.shape[1:])
    layer = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones")
    model = keras.Model(inputs, layer(inputs))
    by_keras = model.predict(batch, verbose=0)
    facts["op dtype"] = by_op.dtype.name
    facts["keras dtype"] = by_keras.dtype.name
    facts["keras policy"] = [layer.dtype_policy.name, layer.variable_dtype, layer.compute_dtype]

    # The dtype rule of tf.nn.conv2d for mixed operands.
    rules = {}
    for name, (x, w) in {
        "numpy/numpy": (batch, filters),
        "numpy/tensor": (batch, tf.constant(filters)),
        "tensor/numpy": (tf.constant(batch), filters),
        "tensor/tensor": (tf.constant(batch), tf.constant(filters)),
    }.items():
        try:
            rules[name] = tf.nn.conv2d(x[:, :20, :20], w, 1, "SAME").dtype.name
        except tf.errors.InvalidArgumentError as error:
            rules[name] = type(error).__name__
    facts["op dtype rules"] = rules

    # Keras 3 casts silently.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in (None, "tensorflow", "keras")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones")(batch)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    facts["cast messages"] = [str(w.message) for w in caught] + [r.getMessage() for r in records]

    batch_32 = batch.astype(np.float32)
    by_op_32 = tf.nn.conv2d(batch_32, filters, strides=1, padding="SAME").numpy()
    facts["float32 op == keras"] = bool(np.array_equal(by_op_32, by_keras))
    by_call = layer(batch).numpy()
    facts["predict == layer call"] = bool(np.array_equal(by_keras, by_call))
    facts["model call == layer call"] = bool(np.array_equal(model(batch).numpy(), by_call))

    # The difference: non-zero, within the bound of a 147-term float32 sum (plus the pixel
    # rounding and the float64 reference's own error).
    facts["difference value"] = float(np.abs(by_op - by_keras).sum())
    summation = numerics.conv_error_bound(batch_32, filters, 1, "SAME")
    reference_error = numerics.conv_error_bound(batch, filters, 1, "SAME")
    magnitude = tf.nn.conv2d(np.abs(batch), np.abs(filters).astype(np.float64), 1, "SAME")
    pixel_rounding = numerics.gamma(1, "float32") * magnitude.numpy()
    bound = summation + pixel_rounding + reference_error
    facts["products per pixel"] = int(np.prod(filters.shape[:3]))
    try:
        facts["error / bound"] = numerics.assert_conv_close(by_keras, by_op, bound)
    except AssertionError as error:
        facts["error / bound"] = str(error)
    facts["summed bound"] = float(bound.sum())

    # Remedy 2: a float64 layer; and predict's own cast to floatx.
    layer_64 = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones", dtype="float64")
    by_layer_64 = layer_64(batch).numpy()
    facts["float64 layer"] = [by_layer_64.dtype.name, bool(np.array_equal(by_layer_64, by_op))]
    inputs_64 = keras.Input(shape=batch.shape[1:], dtype="float64")
    model_64 = keras.Model(inputs_64, layer_64(inputs_64))
    by_predict_64 = model_64.predict(batch, verbose=0)
    pixels_only = tf.nn.conv2d(batch_32.astype(np.float64), filters.astype(np.float64), 1, "SAME")
    facts["float64 model predict"] = {
        "dtype": by_predict_64.dtype.name,
        "== op of float32-rounded batch": bool(np.array_equal(by_predict_64, pixels_only)),
        "== op": bool(np.array_equal(by_predict_64, by_op)),
    }
    try:
        numerics.assert_conv_close(by_predict_64, by_op, pixel_rounding + 2 * reference_error)
        facts["float64 model predict"]["within pixel-rounding bound"] = True
    except AssertionError as error:
        facts["float64 model predict"]["within pixel-rounding bound"] = str(error)
    by_dataset = model_64.predict(tf.data.Dataset.from_tensors(batch), verbose=0)
    facts["float64 model predict on a Dataset == op"] = bool(np.array_equal(by_dataset, by_op))
    facts["float64 model routes"] = {
        "predict(tensor) == op of float32-rounded batch": bool(
            np.array_equal(model_64.predict(tf.constant(batch), verbose=0), pixels_only)
        ),
        "predict_on_batch == op": bool(np.array_equal(model_64.predict_on_batch(batch), by_op)),
        "model call == op": bool(np.array_equal(model_64(batch).numpy(), by_op)),
    }

    # Remedy 3: set_floatx after the first layer; then the dtype policy too; restore both.
    saved_floatx, saved_policy = keras.config.floatx(), keras.config.dtype_policy()
    try:
        keras.config.set_floatx("float64")
        late = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones")
        facts["late set_floatx"] = {
            "layer compute dtype": late.compute_dtype,
            "keras.Input dtype": keras.Input(shape=(2,)).dtype,
        }
        keras.config.set_dtype_policy("float64")
        inputs_x = keras.Input(shape=batch.shape[1:])
        layer_x = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones")
        by_x = keras.Model(inputs_x, layer_x(inputs_x)).predict(batch, verbose=0)
        facts["set_dtype_policy"] = [layer_x.compute_dtype, bool(np.array_equal(by_x, by_op))]
    finally:
        keras.config.set_floatx(saved_floatx)
        keras.config.set_dtype_policy(saved_policy)
    facts["restored"] = [keras.config.floatx(), keras.config.dtype_policy().name]

    # Conv2D == tf.nn.conv2d + bias, then the activation.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 17, 16, 6)).astype(np.float32)
    configurations = {
        "same": {"kernel_size": 3, "padding": "same"},
        "valid": {"kernel_size": 3, "padding": "valid"},
        "even kernel, stride 2": {"kernel_size": 4, "strides": 2, "padding": "same"},
        "strides (1, 2)": {"kernel_size": (3, 5), "strides": (1, 2), "padding": "valid"},
        "dilation 2": {"kernel_size": 3, "dilation_rate": 2, "padding": "same"},
        "3 groups": {"kernel_size": 3, "groups": 3, "padding": "same"},
    }
    mapping = {}
    for name, config in configurations.items():
        conv = keras.layers.Conv2D(6, activation="relu", **config)
        conv.build(x.shape)
        weights = [rng.standard_normal(w.shape).astype(np.float32) for w in conv.get_weights()]
        conv.set_weights(weights)
        by_layer = conv(x).numpy()
        arguments = op_arguments(conv)
        by_hand = tf.nn.relu(tf.nn.conv2d(x, weights[0], **arguments) + weights[1]).numpy()
        x64, k64, b64 = (a.astype(np.float64) for a in (x, *weights))
        exact = np.maximum(tf.nn.conv2d(x64, k64, **arguments).numpy() + b64, 0)
        size = tf.nn.conv2d(np.abs(x64), np.abs(k64), **arguments).numpy() + np.abs(b64)
        bound_r = numerics.dot_error_bound(size, int(np.prod(k64.shape[:3])) + 1, "float32")
        try:
            numerics.assert_conv_close(by_layer, exact, bound_r)
            within = True
        except AssertionError as error:
            within = str(error)
        mapping[name] = {
            "exact (by hand)": bool(np.array_equal(by_layer, by_hand)),
            "exact (companion)": bool(np.array_equal(by_layer, conv2d_layer_as_op(conv, x))),
            "within bound": within,
        }
    facts["mapping"] = mapping

    # Keras' "same" is TensorFlow's SAME (odd zero at the bottom/right); integers: exact.
    x_int = rng.integers(0, 10, (1, 17, 16, 2)).astype(np.float32)
    k_int = rng.integers(-2, 3, (4, 4, 2, 1)).astype(np.float32)
    same = keras.layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False)
    same.build(x_int.shape)
    same.set_weights([k_int])
    rows, cols = arithmetic.same_pads(17, 4, stride=2), arithmetic.same_pads(16, 4, stride=2)
    explicit = tf.nn.conv2d(x_int, k_int, 2, [[0, 0], list(rows), list(cols), [0, 0]])
    flipped = tf.nn.conv2d(x_int, k_int, 2, [[0, 0], list(rows[::-1]), list(cols), [0, 0]])
    facts["same pads"] = {
        "rows": list(rows),
        "== explicit": bool(np.array_equal(same(x_int), explicit)),
        "== flipped": bool(np.array_equal(same(x_int), flipped)),
    }

    # strides > 1 with dilation > 1: Keras refuses, tf.nn.conv2d accepts.
    try:
        keras.layers.Conv2D(1, 3, strides=2, dilation_rate=2)
        facts["keras refusal"] = facts["keras refusal raised in"] = None
    except ValueError as error:
        facts["keras refusal"] = str(error)
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = Path(frame.filename).relative_to(Path(keras.__file__).parent.parent)
        facts["keras refusal raised in"] = [where.as_posix(), frame.name]
    try:
        result = tf.nn.conv2d(batch_32, filters, strides=2, padding="SAME", dilations=2)
        facts["op strides+dilations shape"] = list(result.shape)
    except Exception as error:  # reported, not raised: the test says which claim failed
        facts["op strides+dilations shape"] = f"{type(error).__name__}: {error}"
    facts["expected strides+dilations shape"] = list(
        arithmetic.conv_output_shape(batch_32.shape, filters.shape, 2, "SAME", dilations=2)
    )

    # Mixed precision: dtypes, and the bound of 16-bit operands summed in float32.
    mixed = {}
    for policy in ("mixed_float16", "mixed_bfloat16"):
        layer_m = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones", dtype=policy)
        output = layer_m(batch)
        x_hat = tf.cast(batch, layer_m.compute_dtype).numpy()
        w_hat = tf.cast(layer_m.kernel, layer_m.compute_dtype).numpy()
        bound_m = (
            numerics.conv_error_bound(x_hat, w_hat, 1, "SAME", accumulate_dtype="float32")
            + numerics.gamma(2, layer_m.compute_dtype) * magnitude.numpy()
            + reference_error
        )
        try:
            numerics.assert_conv_close(tf.cast(output, tf.float64).numpy(), by_op, bound_m)
            within = True
        except AssertionError as error:
            within = str(error)
        # The three terms' largest values, and where the error exceeds the output term alone.
        x64_hat, w64_hat = x_hat.astype(np.float64), w_hat.astype(np.float64)
        rounded = tf.nn.conv2d(np.abs(x64_hat), np.abs(w64_hat), 1, "SAME").numpy()
        output_term = numerics.unit_roundoff(layer_m.compute_dtype) * rounded
        error = np.abs(tf.cast(output, tf.float64).numpy() - by_op)
        mixed[policy] = {
            "dtypes": [layer_m.variable_dtype, layer_m.compute_dtype, output.dtype.name],
            "within bound": within,
            "largest terms": {
                "inputs": float(
                    (numerics.gamma(2, layer_m.compute_dtype) * magnitude.numpy()).max()
                ),
                "sum": float((numerics.gamma(147, "float32") * rounded).max()),
                "output": float(output_term.max()),
            },
            "share above the output term": float(np.mean(error > output_term)),
        }
    facts["mixed"] = mixed
    return facts


@pytest.fixture(scope="module", params=list(PATHS), ids=list(PATHS))
def facts(request) -> tuple[str, dict]:
    path = request.param
    code = (
        "import json, runpy\n"
        f"namespace = runpy.run_path({str(Path(__file__).resolve())!r}, run_name='chapter3')\n"
        "print(json.dumps(namespace['chapter_facts']()))\n"
    )
    child = runtime.run_python(code, onednn=PATHS[path])
    measured = child.json()
    assert measured["onednn"] is PATHS[path], f"the child did not run the {path} path"
    return path, measured


def test_tf_nn_conv2d_computes_in_float64_for_the_float64_batch(facts):
    path, f = facts
    assert f["op dtype"] == "float64", _claim(
        "tf.nn.conv2d returns float64 for the float64 batch and a float32 NumPy filter",
        path,
        f"It returned {f['op dtype']}.",
    )
    expected = {
        "numpy/numpy": "float64",
        "numpy/tensor": "float32",
        "tensor/numpy": "float64",
        "tensor/tensor": "InvalidArgumentError",
    }
    assert f["op dtype rules"] == expected, _claim(
        "the input's dtype wins between two NumPy operands, a tensor's over a NumPy array, "
        "and two tensors of different dtypes are an error",
        path,
        f"Measured: {f['op dtype rules']}.",
    )


def test_keras_layer_autocasts_to_float32_silently(facts):
    path, f = facts
    assert f["keras dtype"] == "float32" and f["keras policy"] == [
        "float32",
        "float32",
        "float32",
    ], _claim(
        "the default Conv2D has policy float32, float32 variables, computes in float32 and "
        "returns float32",
        path,
        f"Policy/variable/compute: {f['keras policy']}, output {f['keras dtype']}.",
    )
    assert f["cast messages"] == [], _claim(
        "Keras 3 casts the float64 input without a warning or a log record",
        path,
        f"It said: {f['cast messages']}.",
    )


def test_float32_cast_makes_the_paths_bitwise_equal(facts):
    path, f = facts
    assert f["float32 op == keras"], _claim(
        "tf.nn.conv2d on the batch cast to float32 equals the Keras output bit for bit "
        "(remedy 1: the difference value becomes exactly 0)",
        path,
    )


def test_predict_equals_the_layer_call(facts):
    path, f = facts
    assert f["predict == layer call"] and f["model call == layer call"], _claim(
        "model.predict(batch), model(batch) and layer(batch) agree bit for bit on the CPU, "
        "so the model is not the cause",
        path,
        f"predict == call: {f['predict == layer call']}, "
        f"model call == call: {f['model call == layer call']}.",
    )


def test_difference_is_nonzero_and_within_the_rounding_bound(facts):
    path, f = facts
    assert f["products per pixel"] == 147
    assert f["difference value"] > 0, _claim("the seed's difference value is non-zero", path)
    ratio = f["error / bound"]
    assert isinstance(ratio, float) and 0 < ratio <= 1, _claim(
        "every pixel of the Keras map is within the bound of a 147-term float32 sum plus the "
        "pixel rounding, against the float64 map",
        path,
        ratio,
    )
    assert f["difference value"] <= f["summed bound"], _claim(
        "the difference value is below the summed bound", path
    )


def test_float64_layer_remedy_and_predicts_own_cast(facts):
    path, f = facts
    assert f["float64 layer"] == ["float64", True], _claim(
        "a Conv2D with dtype='float64' returns float64 equal to tf.nn.conv2d bit for bit",
        path,
        f["float64 layer"],
    )
    predict = f["float64 model predict"]
    assert predict == {
        "dtype": "float64",
        "== op of float32-rounded batch": True,
        "== op": False,
        "within pixel-rounding bound": True,
    }, _claim(
        "model.predict casts a float64 NumPy batch to floatx (float32) even for a float64 "
        "model: the result is tf.nn.conv2d of the float32-rounded batch, in float64",
        path,
        predict,
    )
    assert f["float64 model predict on a Dataset == op"], _claim(
        "predict on a tf.data.Dataset skips that cast (exercise 3)", path
    )
    assert f["float64 model routes"] == {
        "predict(tensor) == op of float32-rounded batch": True,
        "predict_on_batch == op": True,
        "model call == op": True,
    }, _claim(
        "predict converts a tensor to floatx too, while predict_on_batch and a model call "
        "pass the float64 batch through",
        path,
        f["float64 model routes"],
    )


def test_set_floatx_after_the_first_layer_needs_the_dtype_policy(facts):
    path, f = facts
    assert f["late set_floatx"] == {
        "layer compute dtype": "float32",
        "keras.Input dtype": "float64",
    }, _claim(
        "set_floatx('float64') after a layer exists changes keras.Input but not new layers",
        path,
        f["late set_floatx"],
    )
    assert f["set_dtype_policy"] == ["float64", True], _claim(
        "with set_dtype_policy('float64') too, the thread's model under predict equals "
        "tf.nn.conv2d bit for bit",
        path,
        f["set_dtype_policy"],
    )
    assert f["restored"] == ["float32", "float32"], _claim(
        "restoring floatx and the dtype policy restores float32", path, f["restored"]
    )


def test_conv2d_is_the_op_plus_bias_and_activation(facts):
    path, f = facts
    for name, result in f["mapping"].items():
        assert result["within bound"] is True, _claim(
            f"Conv2D ({name}) is within the rounding bound of the float64 result",
            path,
            result["within bound"],
        )
        if name != "3 groups":
            assert result["exact (by hand)"] and result["exact (companion)"], _claim(
                f"Conv2D ({name}) equals relu(tf.nn.conv2d + bias) bit for bit",
                path,
                result,
            )


def test_keras_same_is_tensorflow_same(facts):
    path, f = facts
    assert f["same pads"] == {"rows": [1, 2], "== explicit": True, "== flipped": False}, _claim(
        "Keras padding='same' is TensorFlow's SAME rule, the odd zero at the bottom/right",
        path,
        f["same pads"],
    )


def test_keras_refuses_strides_with_dilation_but_the_op_accepts(facts):
    path, f = facts
    refusal = f["keras refusal"]
    assert refusal is not None and refusal.startswith(
        "`strides > 1` not supported in conjunction with `dilation_rate > 1`"
    ), _claim("Conv2D(strides=2, dilation_rate=2) raises the quoted ValueError", path, refusal)
    assert f["keras refusal raised in"] == [
        "keras/src/layers/convolutional/base_conv.py",
        "__init__",
    ], _claim(
        "Keras raises the refusal in its own convolution constructor (BaseConv.__init__)",
        path,
        f["keras refusal raised in"],
    )
    assert f["op strides+dilations shape"] == f["expected strides+dilations shape"], _claim(
        "tf.nn.conv2d accepts strides=2 with dilations=2 on the CPU",
        path,
        f["op strides+dilations shape"],
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_dtypes_and_bound(facts, policy):
    path, f = facts
    dtype = policy.removeprefix("mixed_")
    result = f["mixed"][policy]
    assert result["dtypes"] == ["float32", dtype, dtype], _claim(
        f"under {policy} the variables are float32 and the layer computes in and returns {dtype}",
        path,
        result["dtypes"],
    )
    assert result["within bound"] is True, _claim(
        f"under {policy} the output is within the bound of 16-bit operands summed in float32 "
        "and rounded to 16 bits",
        path,
        result["within bound"],
    )
    largest = result["largest terms"]
    assert largest["inputs"] > 1.9 * largest["output"] > 19 * largest["sum"], _claim(
        f"under {policy} the input-rounding term is about twice the output-rounding term, "
        "and both dwarf the float32 summation term",
        path,
        largest,
    )
    assert result["share above the output term"] > 0, _claim(
        f"under {policy} some pixels err by more than the output rounding alone allows",
        path,
        result["share above the output term"],
    )


def test_set_floatx_first_makes_the_threads_model_exact():
    code = """
import json
import keras
import numpy as np
import tensorflow as tf
from companion.images import load_sample_batch, to_filters

keras.config.set_floatx("float64")
batch = load_sample_batch("float64", names=["china.jpg"])
filters = to_filters(np.ones((7, 7)), in_channels=3)
inputs = keras.Input(shape=batch.shape[1:])
layer = keras.layers.Conv2D(1, 7, padding="same", kernel_initializer="ones")
by_keras = keras.Model(inputs, layer(inputs)).predict(batch, verbose=0)
by_op = tf.nn.conv2d(batch, filters, strides=1, padding="SAME").numpy()
print(json.dumps([layer.compute_dtype, by_keras.dtype.name, float(np.abs(by_op - by_keras).sum())]))
"""
    measured = runtime.run_python(code).json()
    assert measured == ["float64", "float64", 0.0], (
        f"{CHAPTER} claims that set_floatx('float64') before the first layer makes the "
        f"thread's model compute in float64 and match tf.nn.conv2d exactly; got {measured}"
    )


# --- companion.keras_vs_op, in this process -------------------------------------------


def _layer(**config):
    import keras

    filters = config.pop("filters", 4)
    layer = keras.layers.Conv2D(filters, **config)
    return layer


def test_op_arguments_map_keras_names_onto_tf_nn_conv2d():
    from companion.keras_vs_op import op_arguments

    layer = _layer(kernel_size=(3, 5), strides=(1, 2), padding="valid")
    layer.build((None, 9, 9, 3))
    assert op_arguments(layer) == {
        "strides": (1, 2),
        "padding": "VALID",
        "data_format": "NHWC",
        "dilations": (1, 1),
    }
    first = _layer(kernel_size=3, dilation_rate=2, padding="same", data_format="channels_first")
    first.build((None, 3, 9, 9))
    assert op_arguments(first) == {
        "strides": (1, 1),
        "padding": "SAME",
        "data_format": "NCHW",
        "dilations": (2, 2),
    }


def test_keras_vs_op_rejects_bad_arguments():
    import keras

    from companion.keras_vs_op import conv2d_layer_as_op, op_arguments

    with pytest.raises(ValueError, match=r"layer: expected a keras.layers.Conv2D, got Dense"):
        op_arguments(keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"layer: expected a built Conv2D"):
        op_arguments(_layer(kernel_size=3))
    layer = _layer(kernel_size=3)
    layer.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"inputs: expected a floating-point batch, got dtype int"):
        conv2d_layer_as_op(layer, np.ones((1, 5, 5, 2), np.int32))


@settings(max_examples=40, deadline=None)
@given(
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pad=st.sampled_from(["same", "valid"]),
    groups=st.sampled_from([1, 2]),
    activation=st.sampled_from([None, "relu"]),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv2d_layer_as_op_equals_the_layer(
    kernel, stride, dilation, pad, groups, activation, use_bias, seed
):
    import keras

    from companion import numerics
    from companion.keras_vs_op import conv2d_layer_as_op

    if stride > 1 and dilation > 1:
        dilation = 1  # Keras refuses the combination
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 9, 8, 4))  # float64: the layer's autocast applies
    layer = keras.layers.Conv2D(
        4,
        kernel,
        strides=stride,
        dilation_rate=dilation,
        padding=pad,
        groups=groups,
        activation=activation,
        use_bias=use_bias,
    )
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    expected = layer(x).numpy()
    got = conv2d_layer_as_op(layer, x).numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    if groups == 1:
        # The same TensorFlow kernel on the same operands: bit for bit.
        assert np.array_equal(got, expected)
    else:
        # Keras runs grouped convolutions through XLA: both within the bound of a float64
        # reference of the pre-activation sum (ReLU never enlarges an error).
        import tensorflow as tf

        from companion.keras_vs_op import op_arguments

        arguments = op_arguments(layer)
        x32 = x.astype(np.float32).astype(np.float64)
        weights = [w.astype(np.float64) for w in layer.get_weights()]
        pre = tf.nn.conv2d(x32, weights[0], **arguments).numpy()
        size = tf.nn.conv2d(np.abs(x32), np.abs(weights[0]), **arguments).numpy()
        if use_bias:
            pre, size = pre + weights[1], size + np.abs(weights[1])
        n = int(np.prod(weights[0].shape[:3])) + int(use_bias)
        bound = numerics.dot_error_bound(size, n, "float32")
        exact = pre if activation is None else np.maximum(pre, 0)
        numerics.assert_conv_close(expected, exact, bound)
        numerics.assert_conv_close(got, exact, bound)
