"""Small image-classification data for training demos, offline when it must be.

:func:`load_dataset` returns Fashion-MNIST, the data of the learnable-layer
thread, through Keras' own loader (:func:`keras.datasets.fashion_mnist.load_data`)
when its files are already in Keras' cache, or when downloading is allowed (on
Google Colab by default). Otherwise it returns scikit-learn's bundled
handwritten digits, resized from 8×8 to 28×28 pixels so that a network built
for Fashion-MNIST runs on them unchanged. The result says which one it is.

Keras' loader downloads any of its four files that are missing from
``$KERAS_HOME/datasets/fashion-mnist/`` and checks no hash. This module
therefore never calls it unless all four files are present or downloading was
allowed, and it checks the cached files itself (gzip stream, IDX header,
length) so that a corrupt or truncated file gives a :class:`ValueError` that
names it, not an error deep inside NumPy.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from companion import arguments

__all__ = [
    "FASHION_MNIST_FILES",
    "IDX_LIMIT",
    "DataFallbackWarning",
    "Dataset",
    "bilinear_resize",
    "check_fashion_mnist_cache",
    "fashion_mnist_cache_dir",
    "load_dataset",
    "load_digits_28",
    "read_idx",
]

#: The four files of Keras' Fashion-MNIST cache and the IDX rank of each.
FASHION_MNIST_FILES = {
    "train-labels-idx1-ubyte.gz": 1,
    "train-images-idx3-ubyte.gz": 3,
    "t10k-labels-idx1-ubyte.gz": 1,
    "t10k-images-idx3-ubyte.gz": 3,
}

_IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes


class DataFallbackWarning(UserWarning):
    """:func:`load_dataset` returned scikit-learn's digits where Fashion-MNIST was preferred.

    Built in chapter 4. Raised with ``source="auto"`` when Fashion-MNIST is
    not cached and may not (or could not) be downloaded; ask for
    ``source="digits"`` to get the digits without it.
    """


class Dataset(NamedTuple):
    """A small image-classification data set: its name, then ``(x, y)`` for training and test.

    Built in chapter 4.

    Images are float32 arrays of shape ``(n, 28, 28, 1)`` with values in [0, 1];
    labels are int64 arrays of shape ``(n,)`` with values 0..9.
    """

    #: ``"fashion_mnist"`` or ``"digits"``: which data set this is.
    name: str
    #: ``(x_train, y_train)``.
    train: tuple[np.ndarray, np.ndarray]
    #: ``(x_test, y_test)``.
    test: tuple[np.ndarray, np.ndarray]


#: The largest IDX payload :func:`read_idx` reads by default: Fashion-MNIST's training
#: images (60000 × 28 × 28 bytes) are 47 MB.
IDX_LIMIT = 1 << 28


def read_idx(
    path: str | os.PathLike, rank: int | None = None, *, limit: int = IDX_LIMIT
) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes, checking it completely.

    Built in chapter 4.

    The IDX format (used by MNIST and Fashion-MNIST) is a 4-byte magic number
    (two zero bytes, the type code ``0x08`` for unsigned bytes, the rank), one
    big-endian 32-bit size per dimension, then the data.

    Parameters
    ----------
    path : path-like
        A ``.gz`` file.
    rank : int, optional
        The expected number of dimensions.
    limit : int, keyword-only
        The most data bytes the header may announce (default
        :data:`IDX_LIMIT`). The header is checked first, and no more than
        announced (plus one byte, to detect a longer file) is ever read, so a
        corrupt or hostile file cannot make the reader use much memory.

    Returns
    -------
    ndarray of uint8

    Raises
    ------
    ValueError
        Naming the file, when it is not gzip data, its gzip stream is
        truncated or corrupt, its header is not IDX of unsigned bytes (of the
        expected rank) or announces more than ``limit`` bytes, or its length
        disagrees with the header.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.gz")
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path, rank=1)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    limit = arguments.integer(limit, "limit")
    try:
        with gzip.open(path, "rb") as stream:
            return _read_idx_stream(stream, path, rank, limit)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(
            f"{path}: not a complete gzip file ({type(exc).__name__}: {exc}); "
            "the file is corrupt or truncated, delete it to re-download"
        ) from exc


def _read_exactly(stream, count: int) -> bytes:
    """Up to ``count`` bytes, in chunks: memory follows what the file really holds."""
    chunks, left = [], count
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_idx_stream(stream, path: Path, rank: int | None, limit: int) -> np.ndarray:
    """:func:`read_idx` on an open stream: the header is checked before any data is read."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{path}: {len(magic)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or dtype_code != _IDX_UBYTE or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file of unsigned bytes (magic bytes {magic.hex()}, "
            f"expected 0000 08 followed by the rank)"
        )
    if rank is not None and ndim != rank:
        raise ValueError(f"{path}: expected an IDX file of rank {rank}, got rank {ndim}")
    sizes = _read_exactly(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({4 + len(sizes)} of {4 + 4 * ndim} bytes)")
    shape = struct.unpack(f">{ndim}I", sizes)
    expected = int(np.prod(shape, dtype=np.int64))
    if expected > limit:
        raise ValueError(
            f"{path}: the IDX header announces shape {shape} ({expected} bytes), more than "
            f"the limit of {limit} bytes"
        )
    data = _read_exactly(stream, expected + 1)  # one byte more: is there anything after?
    if len(data) != expected:
        held = f"{len(data)} bytes" if len(data) < expected else "more"
        raise ValueError(
            f"{path}: the IDX header announces shape {shape} ({expected} bytes of data) but "
            f"the file holds {held}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, np.uint8).reshape(shape)


def check_fashion_mnist_cache(directory: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Check the four Fashion-MNIST files in ``directory`` as Keras will read them.

    Built in chapter 4.

    Parameters
    ----------
    directory : path-like
        Keras' cache directory for the data set,
        ``$KERAS_HOME/datasets/fashion-mnist``.

    Returns
    -------
    dict of str to tuple
        Each file's array shape.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is corrupt or truncated (see :func:`read_idx`), the images
        are not 28×28, image and label counts differ, or a label is not 0..9.

    Examples
    --------
    >>> check_fashion_mnist_cache("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Fashion-MNIST cache: missing /nonexistent/train-labels-idx1-ubyte.gz
    """
    directory = Path(directory)
    arrays = {}
    for name, rank in FASHION_MNIST_FILES.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"Fashion-MNIST cache: missing {path}")
        arrays[name] = read_idx(path, rank)
    for split in ("train", "t10k"):
        labels = arrays[f"{split}-labels-idx1-ubyte.gz"]
        images = arrays[f"{split}-images-idx3-ubyte.gz"]
        where = directory / f"{split}-images-idx3-ubyte.gz"
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{where}: expected 28×28 images, got shape {images.shape}")
        if len(images) != len(labels):
            raise ValueError(
                f"{where}: {len(images)} images but {len(labels)} labels in the labels file"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(
                f"{directory / f'{split}-labels-idx1-ubyte.gz'}: labels must be 0..9, "
                f"got {int(labels.max())}"
            )
    return {name: array.shape for name, array in arrays.items()}


def fashion_mnist_cache_dir() -> Path:
    """Return the directory where Keras' Fashion-MNIST loader looks for its files.

    Built in chapter 4.

    ``$KERAS_HOME/datasets/fashion-mnist`` (``~/.keras`` without
    ``KERAS_HOME``), read by Keras when it is imported, and ``/tmp/.keras``
    instead when that is not writable, as :func:`keras.utils.get_file` does.
    Imports Keras.

    Examples
    --------
    >>> fashion_mnist_cache_dir().parts[-2:]
    ('datasets', 'fashion-mnist')
    """
    # Keras has no public accessor for the folder it resolved from KERAS_HOME at import
    # (keras.utils.get_file computes it inline); this is the package's one private import.
    try:
        from keras.src.backend.config import keras_home
    except ImportError:  # pragma: no cover - a Keras without the private accessor

        def keras_home() -> str:
            return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))

    base = os.path.expanduser(keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "datasets" / "fashion-mnist"


def bilinear_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize square images with bilinear interpolation (half-pixel centres).

    Built in chapter 4.

    Each output pixel's centre is mapped back into the input, and the value
    there is interpolated between the four nearest input pixels; at the
    border the edge pixel is repeated. Every output is a convex combination of
    inputs, so the value range is kept.

    Parameters
    ----------
    images : ndarray of shape (n, h, h)
    size : int
        The output's height and width.

    Returns
    -------
    ndarray of float64, shape (n, size, size)

    Examples
    --------
    >>> bilinear_resize(np.array([[[0.0, 1.0], [0.0, 1.0]]]), 4)[0, 0]
    array([0.  , 0.25, 0.75, 1.  ])
    """
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"images: expected a real numeric array, got dtype {array.dtype}")
    images = np.ascontiguousarray(array, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images: expected shape (n, h, h), got {images.shape}")
    size = arguments.integer(size, "size", minimum=1)
    n_in = images.shape[1]
    centres = (np.arange(size) + 0.5) * (n_in / size) - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    weights = np.zeros((size, n_in))
    np.add.at(weights, (np.arange(size), low), 1 - frac)
    np.add.at(weights, (np.arange(size), high), frac)
    return np.einsum("ij,njk,lk->nil", weights, images, weights)


def load_digits_28(test_size: int = 360, seed: int = 0) -> Dataset:
    """Return scikit-learn's digits as a 28×28 data set (offline, bundled).

    Built in chapter 4.

    The 1797 images of 8×8 pixels with values 0..16 are resized to 28×28
    (:func:`bilinear_resize`), scaled to [0, 1], shuffled with ``seed`` and
    split, the last ``test_size`` images forming the test set.

    Examples
    --------
    >>> data = load_digits_28()
    >>> data.name, data.train[0].shape, data.test[0].shape
    ('digits', (1437, 28, 28, 1), (360, 28, 28, 1))
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.images)
    test_size = arguments.integer(test_size, "test_size", minimum=1, maximum=n - 1)
    images = np.clip(bilinear_resize(digits.images, 28) / 16.0, 0.0, 1.0)
    x = images.astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(n)
    x, y = x[order], y[order]
    return Dataset("digits", (x[:-test_size], y[:-test_size]), (x[-test_size:], y[-test_size:]))


def _load_fashion_mnist(directory: Path, download: bool) -> Dataset:
    present = [name for name in FASHION_MNIST_FILES if (directory / name).exists()]
    complete = len(present) == len(FASHION_MNIST_FILES)
    if complete:
        check_fashion_mnist_cache(directory)
    elif not download:
        raise FileNotFoundError(
            f"Fashion-MNIST is not (completely) cached in {directory} "
            f"(found {present or 'no files'}) and download=False"
        )
    from keras.datasets import fashion_mnist

    try:
        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    except Exception as exc:  # Keras raises a bare Exception when a download fails
        if not complete:
            raise ConnectionError(
                f"downloading Fashion-MNIST into {directory} failed: {exc}"
            ) from exc
        raise ValueError(
            f"keras.datasets.fashion_mnist.load_data() failed on the files in {directory}: {exc}"
        ) from exc
    if not complete:  # files that were just downloaded are checked too
        check_fashion_mnist_cache(directory)

    def prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x.astype(np.float32) / 255.0)[..., np.newaxis], y.astype(np.int64)

    return Dataset("fashion_mnist", prepare(x_train, y_train), prepare(x_test, y_test))


def _first(data: tuple[np.ndarray, np.ndarray], n: int | None, name: str):
    if n is None:
        return data
    available = len(data[0])
    n = arguments.integer(n, name, minimum=1, maximum=available)
    return data[0][:n], data[1][:n]


def load_dataset(
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    source: str = "auto",
    download: bool | None = None,
) -> Dataset:
    """Return Fashion-MNIST if it is available, otherwise scikit-learn's digits at 28×28.

    Built in chapter 4.

    Parameters
    ----------
    n_train, n_test : int, optional
        Keep only the first ``n_train`` training and ``n_test`` test images
        (both data sets come shuffled). Default: all (60000/10000 for
        Fashion-MNIST, 1437/360 for the digits).
    source : {"auto", "fashion_mnist", "digits"}
        ``"auto"``: Fashion-MNIST if it is cached (or may be downloaded),
        else the digits, with a :class:`DataFallbackWarning`. The other two
        insist on one data set.
    download : bool, optional
        Whether Keras may download missing Fashion-MNIST files. Default: only
        on Google Colab. Without it, nothing touches the network.

    Returns
    -------
    Dataset
        ``name`` says which data set was returned.

    Raises
    ------
    ValueError
        A bad argument, or a corrupt or truncated file in Keras' cache (a
        broken cache is reported, not silently replaced by the digits).
    FileNotFoundError
        ``source="fashion_mnist"`` when the files are missing and may not be
        downloaded.

    Examples
    --------
    >>> data = load_dataset(n_train=100, n_test=20, source="digits")
    >>> data.name, data.train[0].shape, data.train[0].dtype, data.test[1].shape
    ('digits', (100, 28, 28, 1), dtype('float32'), (20,))
    """
    source = arguments.choice(source, "source", ("auto", "fashion_mnist", "digits"))
    if download is None:
        download = "google.colab" in sys.modules
    if not isinstance(download, bool):
        raise ValueError(f"download: expected True, False or None, got {download!r}")
    data, reason = None, None
    if source != "digits":
        directory = fashion_mnist_cache_dir()
        cached = any((directory / name).exists() for name in FASHION_MNIST_FILES)
        if source == "fashion_mnist" or cached or download:
            try:
                data = _load_fashion_mnist(directory, download)
            except Exception as exc:
                # A cache that exists but is broken is an error; so is insisting on
                # Fashion-MNIST. Only a failed download in "auto" mode falls back.
                if source == "fashion_mnist" or cached:
                    raise
                reason = f"could not be downloaded ({exc})"
        else:
            reason = f"is not in Keras' cache ({directory}) and download=False"
    if data is None:
        data = load_digits_28()
        if reason is not None:
            warnings.warn(
                f"Fashion-MNIST {reason}: using scikit-learn's digits at 28×28 instead "
                "(source='digits' asks for them without this warning)",
                DataFallbackWarning,
                stacklevel=2,
            )
    return Dataset(
        data.name, _first(data.train, n_train, "n_train"), _first(data.test, n_test, "n_test")
    )
