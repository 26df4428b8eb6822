"""Tests of companion.data: Fashion-MNIST through Keras' loader, offline, or the digits.

Keras reads ``KERAS_HOME`` once, when it is imported, so the tests of the real
Keras loading path run in a fresh interpreter whose ``KERAS_HOME`` is a
temporary directory. That interpreter also has its network calls replaced by
a recorder, so nothing here can touch (or wait for) the network.
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from companion.data import (
    FASHION_MNIST_FILES,
    bilinear_resize,
    check_fashion_mnist_cache,
    load_dataset,
    load_digits_28,
    read_idx,
)
from companion.runtime import run_python

# Shared with the subprocess below, which executes the same source.
IDX_WRITER = '''
import gzip, struct
import numpy as np

def write_idx(path, array):
    """Write a uint8 array as a gzip-compressed IDX file (magic 0x0000 08 rank, sizes)."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.tobytes())

def tiny_fashion_mnist(directory, n_train=12, n_test=5):
    """Write a small but well-formed Fashion-MNIST cache; return its arrays."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / name, array)
    return arrays
'''
_namespace: dict = {}
exec(IDX_WRITER, _namespace)
write_idx = _namespace["write_idx"]
tiny_fashion_mnist = _namespace["tiny_fashion_mnist"]


# -- IDX files ---------------------------------------------------------------------------------


def test_read_idx_round_trips(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / "images.gz", images)
    assert np.array_equal(read_idx(tmp_path / "images.gz", rank=3), images)


def corrupt(tmp_path, how):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    good = np.zeros((4, 28, 28), np.uint8)
    if how == "not gzip":
        path.write_bytes(b"<html>captive portal</html>")
    elif how == "truncated gzip":
        write_idx(path, good)
        path.write_bytes(path.read_bytes()[:-12])
    elif how == "bad magic":
        with gzip.open(path, "wb") as f:
            f.write(
                struct.pack(">HBB", 0, 0x0D, 3) + struct.pack(">3I", 4, 28, 28) + good.tobytes()
            )
    elif how == "wrong rank":
        write_idx(path, good.reshape(4, 784))
    elif how == "short header":
        with gzip.open(path, "wb") as f:
            f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">I", 4))
    elif how == "short payload":
        with gzip.open(path, "wb") as f:
            f.write(
                struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 4, 28, 28) + good.tobytes()[:-1]
            )
    elif how == "long payload":
        with gzip.open(path, "wb") as f:
            f.write(
                struct.pack(">HBB", 0, 8, 3)
                + struct.pack(">3I", 4, 28, 28)
                + good.tobytes()
                + b"\0"
            )
    return path


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not gzip", "gzip"),
        ("truncated gzip", "truncated"),
        ("bad magic", "not an IDX file"),
        ("wrong rank", "rank 3"),
        ("short header", "truncated IDX header"),
        ("short payload", "truncated or corrupt"),
        ("long payload", "truncated or corrupt"),
    ],
)
def test_read_idx_reports_corrupt_files_by_name(tmp_path, how, message):
    path = corrupt(tmp_path, how)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path, rank=3)
    assert str(path) in str(error.value)


def test_read_idx_checks_the_header_before_reading_the_data(tmp_path):
    # A small gzip file whose header announces 10 labels but which inflates to 64 MiB:
    # the reader stops one byte past the announced size, so its memory stays small.
    from companion.timing import peak_memory

    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10))
        zeros = bytes(1 << 20)
        for _ in range(64):
            stream.write(zeros)
    assert path.stat().st_size < 1 << 20

    def read() -> None:
        with pytest.raises(ValueError, match=r"announces shape \(10,\).* holds more"):
            read_idx(path, rank=1)

    assert peak_memory(read) < 4 << 20
    # A header announcing more than the limit is refused before anything is read.
    with pytest.raises(ValueError, match=r"more than the limit of 5 bytes"):
        read_idx(path, rank=1, limit=5)
    with pytest.raises(ValueError, match=r"^limit: "):
        read_idx(path, rank=1, limit=-1)


# -- the cache check ------------------------------------------------------------------------


def test_check_accepts_a_well_formed_cache(tmp_path):
    tiny_fashion_mnist(tmp_path, n_train=7, n_test=3)
    shapes = check_fashion_mnist_cache(tmp_path)
    assert shapes == {
        "train-labels-idx1-ubyte.gz": (7,),
        "train-images-idx3-ubyte.gz": (7, 28, 28),
        "t10k-labels-idx1-ubyte.gz": (3,),
        "t10k-images-idx3-ubyte.gz": (3, 28, 28),
    }


def test_check_reports_missing_files(tmp_path):
    tiny_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz"):
        check_fashion_mnist_cache(tmp_path)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("train-images-idx3-ubyte.gz", np.zeros((12, 27, 28)), "28×28"),
        ("train-labels-idx1-ubyte.gz", np.zeros(13), "12 images but 13 labels"),
        ("t10k-labels-idx1-ubyte.gz", np.full(5, 10), "labels must be 0..9"),
    ],
)
def test_check_reports_inconsistent_files(tmp_path, name, array, message):
    tiny_fashion_mnist(tmp_path)
    write_idx(tmp_path / name, array)
    with pytest.raises(ValueError, match=message):
        check_fashion_mnist_cache(tmp_path)


def test_cache_file_names_are_those_of_keras_loader():
    import inspect

    import keras

    source = inspect.getsource(keras.datasets.fashion_mnist.load_data)
    assert all(name in source for name in FASHION_MNIST_FILES)
    assert '"fashion-mnist"' in source


# -- the digits --------------------------------------------------------------------------------


def test_bilinear_resize_matches_tensorflow():
    import tensorflow as tf

    images = np.random.default_rng(2).random((3, 8, 8))
    ours = bilinear_resize(images, 28)
    theirs = tf.image.resize(images[..., None], (28, 28), method="bilinear", antialias=False)
    assert ours.shape == (3, 28, 28)
    # TensorFlow interpolates in float32: agreement to float32 precision at values <= 1
    assert np.allclose(ours, theirs.numpy()[..., 0], rtol=0, atol=1e-6)


def test_bilinear_resize_keeps_constants_and_range():
    # weights summing to 1 in float64: a constant comes back to within a few float64 ulps
    assert np.allclose(bilinear_resize(np.full((1, 8, 8), 16.0), 28), 16.0, rtol=0, atol=1e-12)
    images = np.random.default_rng(3).random((2, 8, 8))
    resized = bilinear_resize(images, 28)
    assert resized.min() >= images.min() and resized.max() <= images.max()
    with pytest.raises(ValueError, match="images"):
        bilinear_resize(np.zeros((8, 8)), 28)
    with pytest.raises(ValueError, match="size"):
        bilinear_resize(np.zeros((1, 8, 8)), 0)


def test_digits_at_28_by_28():
    from sklearn.datasets import load_digits

    data = load_digits_28()
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    assert data.name == "digits"
    assert x_train.shape == (1437, 28, 28, 1) and x_test.shape == (360, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))
    # every original image appears once, resized
    digits = load_digits()
    originals = bilinear_resize(digits.images, 28) / 16
    x_all = np.concatenate([x_train, x_test])[..., 0]
    order = np.random.default_rng(0).permutation(len(digits.images))
    # stored as float32 in [0, 1]: one rounding, at most 2**-25 (3e-8) from the float64 resize
    assert np.allclose(x_all, originals[order], rtol=0, atol=1e-6)
    assert np.array_equal(np.concatenate([y_train, y_test]), digits.target[order])


def test_digits_are_deterministic_and_split_as_asked():
    first, again = load_digits_28(test_size=100), load_digits_28(test_size=100)
    assert np.array_equal(first.train[0], again.train[0])
    assert len(first.test[0]) == 100
    with pytest.raises(ValueError, match="test_size"):
        load_digits_28(test_size=0)


def test_load_dataset_subsets_and_checks_its_arguments():
    data = load_dataset(n_train=50, n_test=10, source="digits")
    name, (x_train, _), (_, y_test) = data
    assert name == "digits"
    assert x_train.shape == (50, 28, 28, 1) and y_test.shape == (10,)
    full = load_dataset(source="digits")
    assert np.array_equal(full.train[0][:50], x_train)
    for kwargs, argument in [
        ({"source": "mnist"}, "source"),
        ({"n_train": 0}, "n_train"),
        ({"n_test": 10_000}, "n_test"),
        ({"n_train": 2.5}, "n_train"),
        ({"download": "yes"}, "download"),
    ]:
        with pytest.raises(ValueError, match=argument):
            load_dataset(**{"source": "digits", **kwargs})


# -- Keras' loader, offline, in a fresh interpreter ----------------------------------------

KERAS_PROBE = (
    IDX_WRITER
    + r"""
import json, os, shutil, socket, urllib.request, warnings
from pathlib import Path

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args)[:80])
    raise OSError("network disabled in this test")

socket.socket.connect = refuse
socket.create_connection = refuse
urllib.request.urlopen = refuse
urllib.request.urlretrieve = refuse

from companion.data import DataFallbackWarning, fashion_mnist_cache_dir, load_dataset

facts = {}
directory = fashion_mnist_cache_dir()
facts["cache_under_keras_home"] = str(directory).startswith(os.environ["KERAS_HOME"])

def outcome(**kwargs):
    try:
        data = load_dataset(**kwargs)
        return {"name": data.name, "shape": list(data.train[0].shape)}
    except Exception as error:
        return {"error": type(error).__name__, "message": str(error)}

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    facts["empty"] = outcome()
facts["empty_warning"] = [
    str(w.message) for w in caught if issubclass(w.category, DataFallbackWarning)
]
facts["digits_warning"] = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    outcome(source="digits")
facts["digits_warning"] = [str(w.message) for w in caught]
facts["empty_insisting"] = outcome(source="fashion_mnist")
facts["attempts_offline"] = list(attempts)

arrays = tiny_fashion_mnist(directory)
data = load_dataset()
from keras.datasets import fashion_mnist
(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
facts["cached"] = {
    "name": data.name,
    "train_shape": list(data.train[0].shape),
    "test_shape": list(data.test[0].shape),
    "dtypes": [str(data.train[0].dtype), str(data.train[1].dtype)],
    "equals_keras_loader": bool(
        np.array_equal(data.train[0][..., 0], x_train.astype("float32") / 255)
        and np.array_equal(data.test[1], y_test)
    ),
    "equals_written": bool(np.array_equal(x_test, arrays["t10k-images-idx3-ubyte.gz"])),
    "subset": list(load_dataset(n_train=4, n_test=2).train[0].shape),
}
facts["attempts_cached"] = list(attempts)

images = directory / "train-images-idx3-ubyte.gz"
good = images.read_bytes()
images.write_bytes(good[: len(good) // 2])
facts["truncated"] = outcome()
images.write_bytes(good)
write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(6))
facts["mismatched"] = outcome()
(directory / "t10k-labels-idx1-ubyte.gz").unlink()
facts["partial"] = outcome()
facts["attempts_broken"] = list(attempts)

shutil.rmtree(directory)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    facts["download_failed"] = outcome(download=True)
facts["download_warning"] = [
    str(w.message) for w in caught if issubclass(w.category, DataFallbackWarning)
]
facts["download_insisting"] = outcome(source="fashion_mnist", download=True)
facts["attempts_download"] = len(attempts)
print(json.dumps(facts))
"""
)


@pytest.fixture(scope="module")
def keras_facts(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("keras_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_HOME", str(home))  # read by Keras when the child imports it
    try:
        return run_python(KERAS_PROBE, timeout=120).json()
    finally:
        mp.undo()


def test_without_a_cache_it_returns_the_digits_without_touching_the_network(keras_facts):
    assert keras_facts["cache_under_keras_home"] is True
    assert keras_facts["empty"] == {"name": "digits", "shape": [1437, 28, 28, 1]}
    # The fallback is announced with a warning a notebook shows; asking for the
    # digits is not a fallback.
    assert len(keras_facts["empty_warning"]) == 1
    assert "download=False" in keras_facts["empty_warning"][0]
    assert keras_facts["digits_warning"] == []
    assert keras_facts["empty_insisting"]["error"] == "FileNotFoundError"
    assert "download=False" in keras_facts["empty_insisting"]["message"]
    assert keras_facts["attempts_offline"] == []


def test_a_cached_fashion_mnist_is_read_by_keras_loader(keras_facts):
    cached = keras_facts["cached"]
    assert cached["name"] == "fashion_mnist"
    assert cached["train_shape"] == [12, 28, 28, 1] and cached["test_shape"] == [5, 28, 28, 1]
    assert cached["dtypes"] == ["float32", "int64"]
    assert cached["equals_keras_loader"] is True
    assert cached["equals_written"] is True
    assert cached["subset"] == [4, 28, 28, 1]
    assert keras_facts["attempts_cached"] == []


def test_a_broken_cache_is_an_error_naming_the_file(keras_facts):
    truncated = keras_facts["truncated"]
    assert truncated["error"] == "ValueError"
    assert "train-images-idx3-ubyte.gz" in truncated["message"]
    mismatched = keras_facts["mismatched"]
    assert mismatched["error"] == "ValueError" and "5 images but 6 labels" in mismatched["message"]
    partial = keras_facts["partial"]
    assert partial["error"] == "FileNotFoundError"
    assert "not (completely) cached" in partial["message"]
    assert keras_facts["attempts_broken"] == []


def test_a_failed_download_falls_back_only_when_not_insisting(keras_facts):
    assert keras_facts["download_failed"]["name"] == "digits"
    assert any("could not be downloaded" in m for m in keras_facts["download_warning"])
    assert keras_facts["download_insisting"]["error"] == "ConnectionError"
    assert "network disabled in this test" in keras_facts["download_insisting"]["message"]
    assert keras_facts["attempts_download"] >= 2  # so the guard above really intercepts
