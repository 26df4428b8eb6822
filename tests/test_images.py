"""Tests of companion.images: the sample batch, the hand-made kernels, and to_filters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_sample_image

from companion import images


@pytest.fixture(scope="module")
def batch32() -> np.ndarray:
    return images.load_sample_batch()


@pytest.fixture(scope="module")
def batch64() -> np.ndarray:
    return images.load_sample_batch("float64")


def test_batch_is_nhwc_float32_in_unit_interval(batch32):
    assert batch32.shape == (2, 427, 640, 3)
    assert batch32.dtype == np.float32
    assert batch32.min() == 0.0
    assert batch32.max() == 1.0


def test_float64_batch_is_the_learners_pixels_over_255(batch64):
    # Seed 000 builds its input as load_sample_image("china.jpg") / 255.
    assert batch64.dtype == np.float64
    assert np.array_equal(batch64[0], load_sample_image("china.jpg") / 255)
    assert np.array_equal(batch64[1], load_sample_image("flower.jpg") / 255)


def test_float32_batch_is_the_float64_batch_rounded_once(batch32, batch64):
    # One division in float32 equals the float64 quotient rounded to float32:
    # no double-rounding case among the 256 pixel values.
    assert np.array_equal(batch32, batch64.astype(np.float32))
    values = np.arange(256)
    assert np.array_equal(
        values.astype(np.float32) / np.float32(255), (values / 255).astype(np.float32)
    )


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float32")])
def test_dtype_spellings(dtype):
    assert images.load_sample_batch(dtype, names=["flower.jpg"]).dtype == np.float32


def test_names_choose_images_and_order(batch64):
    flipped = images.load_sample_batch("float64", names=["flower.jpg", "china.jpg"])
    assert np.array_equal(flipped, batch64[::-1])


@pytest.mark.parametrize("dtype", ["float16", np.int32, "uint8", None, "bogus", 3])
def test_other_dtypes_are_refused_by_name(dtype):
    with pytest.raises(ValueError, match=r"^dtype: expected 'float32' or 'float64', got"):
        images.load_sample_batch(dtype)


@pytest.mark.parametrize("names", [[], "china.jpg", ["china.jpg", "lena.png"]])
def test_bad_names_are_refused(names):
    with pytest.raises(ValueError, match=r"^names: expected"):
        images.load_sample_batch(names=names)


def correlate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """VALID cross-correlation of a 2-D image, written out for the test."""
    kh, kw = kernel.shape
    rows, cols = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            out[r, c] = np.sum(image[r : r + kh, c : c + kw] * kernel)
    return out


def test_line_kernels_respond_most_to_their_line():
    picture = np.zeros((15, 15))
    picture[:, 4] = 1  # a vertical line in column 4
    picture[10, :] = 1  # a horizontal line in row 10
    vertical = correlate(picture, images.vertical_line(7))
    horizontal = correlate(picture, images.horizontal_line(7))
    # Centred on the vertical line (column 4 = output column 1), away from the
    # horizontal one, the vertical kernel sums 7 ones; the horizontal kernel 1.
    assert vertical[0, 1] == 7 and horizontal[0, 1] == 1
    assert horizontal[7, 8] == 7 and vertical[7, 8] == 1
    assert vertical.max() == horizontal.max() == 7


def test_sobel_signs_follow_the_brightness_gradient():
    ramp_right = np.tile(np.arange(6.0), (6, 1))  # brighter to the right
    ramp_down = ramp_right.T
    assert np.all(correlate(ramp_right, images.sobel_x()) == 8)
    assert np.all(correlate(ramp_right, images.sobel_y()) == 0)
    assert np.all(correlate(ramp_down, images.sobel_y()) == 8)
    assert np.all(correlate(ramp_down, images.sobel_x()) == 0)


def test_box_blur_is_a_mean_and_identity_copies():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 10, size=(9, 9)).astype(float)
    blurred = correlate(picture, images.box_blur(3).astype(np.float64))
    # the kernel's 1/9 is stored in float32, relative error below 2**-24 (6e-8 < 1e-6)
    assert np.allclose(blurred[2, 5], picture[2:5, 5:8].mean(), rtol=1e-6)
    assert np.array_equal(correlate(picture, images.identity(3)), picture[1:-1, 1:-1])


def test_kernels_shapes_dtypes_and_transposes():
    kernels = images.hand_made_filters(5)
    assert list(kernels) == ["vertical line", "horizontal line", "box blur", "Sobel x", "Sobel y"]
    assert all(k.dtype == np.float32 and k.ndim == 2 for k in kernels.values())
    assert np.array_equal(kernels["horizontal line"], kernels["vertical line"].T)
    assert np.array_equal(kernels["Sobel y"], kernels["Sobel x"].T)
    assert kernels["vertical line"].sum() == 5 and kernels["box blur"].shape == (5, 5)


@pytest.mark.parametrize("size", [0, 2, -3, 1.0, True])
def test_line_sizes_must_be_odd_positive_ints(size):
    with pytest.raises(ValueError, match=r"^size: expected"):
        images.vertical_line(size)


def test_box_blur_takes_even_sizes_but_not_zero():
    assert images.box_blur(2).shape == (2, 2)
    with pytest.raises(ValueError, match=r"^size: expected a positive int, got 0"):
        images.box_blur(0)


def test_to_filters_layout():
    kernels = [images.vertical_line(3), images.horizontal_line(3)]
    filters = images.to_filters(kernels, in_channels=3)
    assert filters.shape == (3, 3, 3, 2) and filters.dtype == np.float32
    for channel in range(3):
        for out, kernel in enumerate(kernels):
            assert np.array_equal(filters[:, :, channel, out], kernel)


def test_to_filters_accepts_one_kernel_a_mapping_and_float64():
    assert images.to_filters(images.sobel_x()).shape == (3, 3, 1, 1)
    named = images.hand_made_filters(3)
    from_mapping = images.to_filters(named, dtype="float64")
    assert from_mapping.shape == (3, 3, 1, 5) and from_mapping.dtype == np.float64
    assert np.array_equal(from_mapping[:, :, 0, 3], named["Sobel x"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernels": []}, r"^kernels: expected at least one"),
        ({"kernels": [np.ones((3, 3)), np.ones((5, 5))]}, r"^kernels: expected kernels of one"),
        ({"kernels": [np.ones((3, 3, 1))]}, r"^kernels: expected non-empty 2-D kernels"),
        ({"kernels": np.ones(3)}, r"^kernels: expected non-empty 2-D kernels"),
        ({"kernels": np.ones((3, 3)), "in_channels": 0}, r"^in_channels: expected a positive"),
        ({"kernels": np.ones((3, 3)), "dtype": "int32"}, r"^dtype: expected"),
    ],
)
def test_to_filters_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        images.to_filters(**kwargs)


def test_copied_kernels_sum_the_input_channels_in_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    picture = rng.integers(0, 8, size=(1, 9, 11, 3)).astype(np.float32)
    kernel = images.sobel_x()
    rgb = tf.nn.conv2d(picture, images.to_filters(kernel, in_channels=3), 1, "VALID").numpy()
    summed = picture.sum(axis=-1, keepdims=True)
    gray = tf.nn.conv2d(summed, images.to_filters(kernel), 1, "VALID").numpy()
    # Small integers: every sum is exact, so the two orders agree bit for bit.
    assert rgb.shape == (1, 7, 9, 1)
    assert np.array_equal(rgb, gray)
    assert np.array_equal(rgb[0, :, :, 0], correlate(summed[0, :, :, 0], kernel))
