"""Hypothesis strategies shared by the test modules: tf.nn.conv2d's argument forms."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def window_form(draw, top: int, allow_none: bool = False):
    """A strides or dilations argument as ``(form, height, width)``; see :func:`spelled`."""
    forms = ["int", "one", "two", "four"] + (["none"] if allow_none else [])
    form = draw(st.sampled_from(forms))
    height = draw(st.integers(1, top))
    width = height if form in ("int", "one", "none") else draw(st.integers(1, top))
    if form == "none":
        height = width = 1
    return form, height, width


def spelled(form: str, height: int, width: int, data_format: str):
    """Write (height, width) in the requested argument form for ``data_format``."""
    if form == "none":
        return None
    if form == "int":
        return height
    if form == "one":
        return [height]
    if form == "two":
        return [height, width]
    return [1, height, width, 1] if data_format == "NHWC" else [1, 1, height, width]


def window_argument(data_format: str, top: int, allow_none: bool = False):
    """strides/dilations in every form tf.nn.conv2d accepts, spelled for ``data_format``."""
    return window_form(top, allow_none).map(lambda form: spelled(*form, data_format))
