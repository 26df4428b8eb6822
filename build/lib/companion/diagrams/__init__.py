"""Pictures of the convolution arithmetic, drawn from the package's own geometry.

Every picture here is drawn from :mod:`companion.padding` (through
:func:`companion.arithmetic.conv_geometry`), the single home of the
arithmetic: this module computes no pads, sizes or offsets of its own. Each
drawing function takes the arguments of :func:`tf.nn.conv2d` (sizes instead
of tensors), and the step from geometry to drawing is a pure function that
returns data (:func:`window_layout`, :func:`im2col_matrix`,
:func:`input_gradient_taps`, :func:`group_connections`, :func:`binades`,
:func:`summation_order`), so tests check what is drawn without reading images.

One colour means one thing throughout the book (:data:`COLORS`, from the
Okabe-Ito palette, which stays distinct under the common colour-vision
deficiencies); padding is also hatched, so it does not rely on colour alone.

Drawing functions return the figure (or the animation) and never call
``plt.show()``: the notebooks do.
"""

from companion.diagrams import drawing as _drawing
from companion.diagrams import windows as _windows
from companion.diagrams.computation import backward_diagram, dtype_flow, im2col_diagram
from companion.diagrams.layout import (
    WindowLayout,
    binades,
    group_connections,
    im2col_matrix,
    input_gradient_taps,
    summation_order,
    window_layout,
)
from companion.diagrams.numbers import float_number_line, summation_trees
from companion.diagrams.windows import (
    animation_html,
    grouped_channels,
    sliding_window,
    sliding_window_animation,
    window_gallery,
)

#: One colour per meaning, for every diagram in the book (Okabe-Ito palette).
COLORS = _drawing.COLORS
#: Width of a figure at the site's article column, in inches (about 736 CSS pixels).
WIDTH = _drawing.WIDTH
#: Cases of :func:`window_gallery` for chapter 2's padding gallery.
PADDING_CASES = _windows.PADDING_CASES
#: Cases of :func:`window_gallery` for stride, dilation and both.
STRIDE_DILATION_CASES = _windows.STRIDE_DILATION_CASES

__all__ = [
    "COLORS",
    "PADDING_CASES",
    "STRIDE_DILATION_CASES",
    "WIDTH",
    "WindowLayout",
    "animation_html",
    "backward_diagram",
    "binades",
    "dtype_flow",
    "float_number_line",
    "group_connections",
    "grouped_channels",
    "im2col_diagram",
    "im2col_matrix",
    "input_gradient_taps",
    "sliding_window",
    "sliding_window_animation",
    "summation_order",
    "summation_trees",
    "window_gallery",
    "window_layout",
]
