"""Sample images and hand-made filters: the material of chapter 1.

The images are the two photographs bundled with scikit-learn
(``china.jpg`` and ``flower.jpg``, both 427 × 640 RGB), so nothing is
downloaded. The filters are small 2-D kernels written by hand, as in the
experiment of Géron's *Hands-On Machine Learning* (chapter 14), and
:func:`to_filters` stacks them into the ``(kh, kw, in, out)`` layout that
:func:`tf.nn.conv2d` expects.

``tf.nn.conv2d`` computes a cross-correlation: it does not flip the kernel.
The kernels below are therefore written the way they are applied: the entry at
row ``r`` and column ``c`` multiplies the pixel ``r`` rows below and ``c``
columns right of the window's top-left corner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from companion import arguments

__all__ = [
    "SAMPLE_IMAGES",
    "box_blur",
    "hand_made_filters",
    "horizontal_line",
    "identity",
    "load_sample_batch",
    "sobel_x",
    "sobel_y",
    "to_filters",
    "vertical_line",
]

#: The photographs scikit-learn bundles, in the order :func:`load_sample_batch` stacks them.
SAMPLE_IMAGES = ("china.jpg", "flower.jpg")

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype: object) -> np.dtype:
    """Return ``dtype`` as float32 or float64, or raise a ValueError naming it."""
    try:
        # np.dtype(None) would mean float64: refuse None explicitly.
        resolved = None if dtype is None else np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved is None or not any(resolved == allowed for allowed in _DTYPES):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return resolved


def load_sample_batch(
    dtype: str | type | np.dtype = "float32", names: Sequence[str] = SAMPLE_IMAGES
) -> np.ndarray:
    """Load scikit-learn's sample photographs as one NHWC batch scaled to [0, 1].

    Built in chapter 1.

    Parameters
    ----------
    dtype : {"float32", "float64"}, optional
        The batch's floating-point type. Each pixel is ``value / 255``,
        rounded once to ``dtype`` (float32 pixels are therefore exactly the
        float64 ones rounded to float32).
    names : sequence of str, optional
        Which images, in which order; default ``("china.jpg", "flower.jpg")``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(names), 427, 640, 3)``.

    Raises
    ------
    ValueError
        For another ``dtype``, an unknown name or no name at all.

    Examples
    --------
    >>> batch = load_sample_batch()
    >>> batch.shape, batch.dtype
    ((2, 427, 640, 3), dtype('float32'))
    >>> float(batch.min()), float(batch.max())
    (0.0, 1.0)
    >>> load_sample_batch("float64", names=["china.jpg"]).shape
    (1, 427, 640, 3)
    """
    resolved = _float_dtype(dtype)
    if isinstance(names, str) or not len(names):
        raise ValueError(
            f"names: expected a non-empty sequence of names from {SAMPLE_IMAGES}, got {names!r}"
        )
    unknown = [name for name in names if name not in SAMPLE_IMAGES]
    if unknown:
        raise ValueError(f"names: expected names from {SAMPLE_IMAGES}, got unknown {unknown!r}")
    from sklearn.datasets import load_sample_image

    pixels = np.stack([load_sample_image(name) for name in names])
    # uint8 -> exact in either type; one correctly rounded division.
    return pixels.astype(resolved) / resolved.type(255)


def _check_odd_size(size: int) -> int:
    size = arguments.integer(size, "size", minimum=1)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd int (the kernel needs a centre), got {size}")
    return size


def identity(size: int = 3) -> np.ndarray:
    """Return a kernel that copies each pixel: a 1 in the centre, zeros elsewhere.

    Built in chapter 1.

    Examples
    --------
    >>> identity(3)
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    size = _check_odd_size(size)
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, size // 2] = 1
    return kernel


def vertical_line(size: int = 7) -> np.ndarray:
    """Return Géron's vertical-line kernel: ones in the centre column.

    Built in chapter 1.

    It sums a vertical strip of ``size`` pixels, so it responds most to bright
    vertical lines and blurs the image along the vertical.

    Examples
    --------
    >>> vertical_line(3)
    array([[0., 1., 0.],
           [0., 1., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    size = _check_odd_size(size)
    kernel = np.zeros((size, size), np.float32)
    kernel[:, size // 2] = 1
    return kernel


def horizontal_line(size: int = 7) -> np.ndarray:
    """Return Géron's horizontal-line kernel: ones in the centre row.

    Built in chapter 1.

    Examples
    --------
    >>> horizontal_line(3)
    array([[0., 0., 0.],
           [1., 1., 1.],
           [0., 0., 0.]], dtype=float32)
    """
    return vertical_line(size).T.copy()


def box_blur(size: int = 3) -> np.ndarray:
    """Return the box blur: every weight ``1 / size**2``, so the output is a local mean.

    Built in chapter 1.

    Examples
    --------
    >>> box_blur(2)
    array([[0.25, 0.25],
           [0.25, 0.25]], dtype=float32)
    """
    size = arguments.integer(size, "size", minimum=1)
    return np.full((size, size), 1 / size**2, np.float32)


def sobel_x() -> np.ndarray:
    """Return the Sobel kernel of the horizontal derivative (it finds vertical edges).

    Built in chapter 1.

    Positive where brightness increases to the right (no flip: see the module
    docstring).

    Examples
    --------
    >>> sobel_x()
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]], dtype=float32)
    """
    return np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def sobel_y() -> np.ndarray:
    """Return the Sobel kernel of the vertical derivative (it finds horizontal edges).

    Built in chapter 1.

    Positive where brightness increases downwards.

    Examples
    --------
    >>> sobel_y()
    array([[-1., -2., -1.],
           [ 0.,  0.,  0.],
           [ 1.,  2.,  1.]], dtype=float32)
    """
    return sobel_x().T.copy()


def hand_made_filters(size: int = 7) -> dict[str, np.ndarray]:
    """Return the book's named hand-made kernels, 2-D float32 arrays.

    Built in chapter 1.

    Parameters
    ----------
    size : int, optional
        The (odd) size of the line filters and of the box blur; the Sobel
        kernels are always 3 × 3.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"vertical line"``, ``"horizontal line"``, ``"box blur"``,
        ``"Sobel x"`` and ``"Sobel y"``, in that order.

    Examples
    --------
    >>> {name: kernel.shape for name, kernel in hand_made_filters(5).items()}
    {'vertical line': (5, 5), 'horizontal line': (5, 5), 'box blur': (5, 5), \
'Sobel x': (3, 3), 'Sobel y': (3, 3)}
    """
    size = _check_odd_size(size)
    return {
        "vertical line": vertical_line(size),
        "horizontal line": horizontal_line(size),
        "box blur": box_blur(size),
        "Sobel x": sobel_x(),
        "Sobel y": sobel_y(),
    }


def to_filters(
    kernels: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray],
    in_channels: int = 1,
    dtype: str | type | np.dtype = "float32",
) -> np.ndarray:
    """Stack 2-D kernels into a ``(kh, kw, in_channels, out)`` filter for ``tf.nn.conv2d``.

    Built in chapter 1.

    Each kernel becomes one output channel and is copied to every input
    channel, so the output sums the kernel's response over all input
    channels (for an RGB image: over red, green and blue), as in Géron's
    experiment.

    Parameters
    ----------
    kernels : 2-D array, sequence of 2-D arrays, or mapping of name to 2-D array
        One kernel, or several of the same shape (a mapping's values in order).
    in_channels : int, optional
        The input's channels (3 for RGB images).
    dtype : {"float32", "float64"}, optional

    Returns
    -------
    numpy.ndarray
        Shape ``(kh, kw, in_channels, len(kernels))``;
        ``result[:, :, c, o]`` is kernel ``o`` for every ``c``.

    Raises
    ------
    ValueError
        A kernel that is not 2-D, kernels of different shapes, no kernel,
        a non-positive ``in_channels``, or another ``dtype``.

    Examples
    --------
    >>> to_filters([vertical_line(), horizontal_line()], in_channels=3).shape
    (7, 7, 3, 2)
    >>> to_filters(sobel_x())[:, :, 0, 0]
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]], dtype=float32)
    """
    resolved = _float_dtype(dtype)
    in_channels = arguments.integer(in_channels, "in_channels", minimum=1)
    if isinstance(kernels, Mapping):
        kernels = list(kernels.values())
    if isinstance(kernels, np.ndarray) and kernels.ndim == 2:
        kernels = [kernels]
    arrays = [np.asarray(kernel) for kernel in kernels]
    if not arrays:
        raise ValueError("kernels: expected at least one 2-D kernel, got none")
    for index, array in enumerate(arrays):
        if array.ndim != 2 or 0 in array.shape:
            raise ValueError(
                f"kernels: expected non-empty 2-D kernels, kernel {index} has shape {array.shape}"
            )
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"kernels: expected kernels of one shape, kernel 0 has shape "
                f"{arrays[0].shape} and kernel {index} has shape {array.shape}"
            )
    stacked = np.stack(arrays, axis=-1).astype(resolved)  # (kh, kw, out)
    return np.repeat(stacked[:, :, np.newaxis, :], in_channels, axis=2)
