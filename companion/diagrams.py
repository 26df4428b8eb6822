"""Pictures of the convolution arithmetic, drawn from the package's own geometry.

Every picture here is drawn from :mod:`companion.padding` (through
:func:`companion.numpy_conv.conv_geometry`), the single home of the
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

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation as mpl_animation
from matplotlib.colors import to_rgb
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from companion import numpy_conv
from companion import padding as tfpad

__all__ = [
    "COLORS",
    "PADDING_CASES",
    "STRIDE_DILATION_CASES",
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

#: One colour per meaning, for every diagram in the book (Okabe-Ito palette).
COLORS: dict[str, str] = {
    "input": "#56B4E9",  # sky blue
    "kernel": "#E69F00",  # orange
    "output": "#009E73",  # bluish green
    "padding": "#BBBBBB",  # grey, and hatched
    "window": "#D55E00",  # vermillion: the window (or row) being computed
    "other": "#0072B2",  # blue: a second window, for comparison
    "gradient": "#CC79A7",  # reddish purple: gradients
    "inserted": "#F0E442",  # yellow: zeros inserted between gradient values
}

#: Width of a figure at the site's article column (about 736 CSS pixels at dpi 100).
WIDTH = 7.5

#: Cases of :func:`window_gallery` for chapter 2's padding gallery.
PADDING_CASES: list[dict] = [
    {"title": "VALID", "input_size": 6, "kernel_size": 3, "strides": 2, "padding": "VALID"},
    {
        "title": "SAME, odd total (TensorFlow)",
        "input_size": 6,
        "kernel_size": 3,
        "strides": 2,
        "padding": "SAME",
    },
    {
        "title": "symmetric p = 1 (PyTorch, Caffe)",
        "input_size": 6,
        "kernel_size": 3,
        "strides": 2,
        "padding": [[0, 0], [1, 1], [1, 1], [0, 0]],
    },
    {
        "title": "SAME, even total",
        "input_size": 5,
        "kernel_size": 3,
        "strides": 2,
        "padding": "SAME",
    },
    {
        "title": "SAME, even kernel",
        "input_size": 5,
        "kernel_size": 4,
        "strides": 1,
        "padding": "SAME",
    },
    {
        "title": "explicit [[0,0],[2,0],[1,3],[0,0]]",
        "input_size": 4,
        "kernel_size": 3,
        "strides": 1,
        "padding": [[0, 0], [2, 0], [1, 3], [0, 0]],
    },
]

#: Cases of :func:`window_gallery` for chapter 2's strides and dilations.
STRIDE_DILATION_CASES: list[dict] = [
    {"title": "stride 2", "input_size": 7, "kernel_size": 3, "strides": 2, "padding": "VALID"},
    {"title": "dilation 2", "input_size": 7, "kernel_size": 3, "dilations": 2, "padding": "VALID"},
    {
        "title": "stride 2 and dilation 2",
        "input_size": 7,
        "kernel_size": 3,
        "strides": 2,
        "dilations": 2,
        "padding": "VALID",
    },
]


# --------------------------------------------------------------------------------------
# Geometry to data
# --------------------------------------------------------------------------------------


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    items = [int(v) for v in value]
    if len(items) != 2:
        raise ValueError(f"{name}: expected an int or (height, width), got {value!r}")
    return items[0], items[1]


def _padding4(pad: str | Sequence) -> str | list[list[int]]:
    """Accept tf.nn.conv2d's padding forms, and ``((top, bottom), (left, right))`` too."""
    if isinstance(pad, str):
        return pad
    pairs = [list(p) for p in pad]
    if len(pairs) == 2:
        return [[0, 0], pairs[0], pairs[1], [0, 0]]
    return pairs


@dataclass(frozen=True)
class WindowLayout:
    """Where every tap of every window of a one-channel convolution falls.

    Attributes
    ----------
    input_size, kernel_size, strides, dilations : (int, int)
        Along height and width.
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros, from :mod:`companion.padding`.
    output_size : (int, int)
        The output's height and width.
    taps : ndarray of int, shape (out_h, out_w, kh, kw, 2)
        ``taps[i, j, p, q]`` is the ``(row, column)`` in the *padded* input
        that kernel tap ``(p, q)`` reads for output ``(i, j)``.

    Examples
    --------
    >>> layout = window_layout(5, 4, padding="SAME")  # made by window_layout (chapter 2)
    >>> layout.pads, layout.padded_size, int(layout.padding_mask.sum())
    (((1, 2), (1, 2)), (8, 8), 39)
    >>> layout.apply(np.ones((5, 5)), np.ones((4, 4)))[0].tolist()
    [9.0, 12.0, 12.0, 9.0, 6.0]
    """

    input_size: tuple[int, int]
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    output_size: tuple[int, int]
    taps: np.ndarray

    @property
    def padded_size(self) -> tuple[int, int]:
        """The padded input's ``(height, width)``."""
        (top, bottom), (left, right) = self.pads
        return self.input_size[0] + top + bottom, self.input_size[1] + left + right

    @property
    def padding_mask(self) -> np.ndarray:
        """A boolean map of the padded input, ``True`` on the zeros of padding."""
        (top, _), (left, _) = self.pads
        mask = np.ones(self.padded_size, bool)
        mask[top : top + self.input_size[0], left : left + self.input_size[1]] = False
        return mask

    def index_map(self) -> np.ndarray:
        """Which input pixel each tap reads: ``1 + row * width + column``, or 0 for padding.

        Returns
        -------
        ndarray of int, shape (out_h, out_w, kh, kw)
            The same numbers a convolution of the index-coded input
            ``1, 2, …, h·w`` with one-hot kernels computes.
        """
        (top, _), (left, _) = self.pads
        rows = self.taps[..., 0] - top
        cols = self.taps[..., 1] - left
        inside = (rows >= 0) & (rows < self.input_size[0]) & (cols >= 0)
        inside &= cols < self.input_size[1]
        return np.where(inside, 1 + rows * self.input_size[1] + cols, 0)

    def apply(self, image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """The convolution the picture shows: each output is its taps' products, summed.

        Parameters
        ----------
        image : ndarray, shape ``input_size``
        kernel : ndarray, shape ``kernel_size``

        Returns
        -------
        ndarray, shape ``output_size``
        """
        image = np.asarray(image)
        kernel = np.asarray(kernel)
        flat = np.concatenate([[0], image.ravel()]).astype(np.result_type(image, kernel))
        return np.einsum("ijpq,pq->ij", flat[self.index_map()], kernel)


def window_layout(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str | Sequence = "VALID",
    dilations: int | Sequence[int] | None = None,
) -> WindowLayout:
    """Resolve a convolution's windows, as the diagrams draw them.

    Used by every window diagram of chapters 2 and 5.

    Parameters
    ----------
    input_size, kernel_size : int or (int, int)
        Height and width (an int for both).
    strides, dilations : int or sequence
        As for :func:`tf.nn.conv2d` (an int, 1, 2 or 4 values, NHWC).
    padding : str or sequence of pairs
        ``"SAME"``, ``"VALID"``, four ``[before, after]`` pairs as for
        :func:`tf.nn.conv2d` (NHWC), or the two spatial pairs.

    Returns
    -------
    WindowLayout

    Examples
    --------
    >>> layout = window_layout(8, (1, 3), strides=[1, 2], padding="SAME")
    >>> layout.pads, layout.output_size
    (((0, 0), (0, 1)), (8, 4))
    >>> layout.index_map()[0, 3, 0].tolist()  # the last window reads 7, 8 and a zero
    [7, 8, 0]
    """
    height, width = _pair(input_size, "input_size")
    kh, kw = _pair(kernel_size, "kernel_size")
    geometry = numpy_conv.conv_geometry(
        (1, height, width, 1), (kh, kw, 1, 1), strides, _padding4(padding), "NHWC", dilations
    )
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    i = np.arange(geometry.out_height)[:, None, None, None]
    j = np.arange(geometry.out_width)[None, :, None, None]
    p = np.arange(kh)[None, None, :, None]
    q = np.arange(kw)[None, None, None, :]
    shape = (geometry.out_height, geometry.out_width, kh, kw)
    taps = np.stack(
        [np.broadcast_to(i * sh + p * dh, shape), np.broadcast_to(j * sw + q * dw, shape)],
        axis=-1,
    )
    return WindowLayout(
        input_size=(height, width),
        kernel_size=(kh, kw),
        strides=(sh, sw),
        dilations=(dh, dw),
        pads=geometry.pads,
        output_size=(geometry.out_height, geometry.out_width),
        taps=taps,
    )


def im2col_matrix(layout: WindowLayout) -> np.ndarray:
    """The im2col matrix of a one-channel convolution, as input-pixel numbers.

    Used by :func:`im2col_diagram` (chapter 5). Row ``i * out_w + j`` holds
    the window of output ``(i, j)``, one column per kernel tap, in the order
    of ``filters.reshape(-1, out_channels)``; 0 marks a padded zero.

    Examples
    --------
    >>> im2col_matrix(window_layout(3, 2)).tolist()
    [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]]
    """
    out_h, out_w, kh, kw = layout.index_map().shape
    return layout.index_map().reshape(out_h * out_w, kh * kw)


def input_gradient_taps(layout: WindowLayout, row: int, column: int) -> list[tuple[int, ...]]:
    """Every ``(i, j, p, q)`` whose tap reads padded-input cell ``(row, column)``.

    The input gradient at that cell is ``Σ dy[i, j] · w[p, q]`` over them:
    the output gradient, zero-inserted by the stride, convolved with the
    kernel turned by 180° (chapter 5, :func:`backward_diagram`).

    Examples
    --------
    >>> input_gradient_taps(window_layout(5, 3), 2, 2)[:3]
    [(0, 0, 2, 2), (0, 1, 2, 1), (0, 2, 2, 0)]
    """
    hits = np.argwhere(
        (layout.taps[..., 0] == row) & (layout.taps[..., 1] == column)
    )  # (i, j, p, q), in row-major order
    return [tuple(int(v) for v in hit) for hit in hits]


def group_connections(in_channels: int, in_depth: int, out_channels: int) -> np.ndarray:
    """Which input channel feeds which output channel in a grouped convolution.

    Used by :func:`grouped_channels` (chapter 2).

    Parameters
    ----------
    in_channels, in_depth, out_channels : int
        The input's channels and the filter's last two dimensions, as for
        :func:`tf.nn.conv2d`; ``in_channels // in_depth`` groups.

    Returns
    -------
    ndarray of bool, shape (in_channels, out_channels)

    Examples
    --------
    >>> group_connections(4, 2, 2).astype(int).tolist()
    [[1, 0], [1, 0], [0, 1], [0, 1]]
    """
    geometry = numpy_conv.conv_geometry(
        (1, 1, 1, in_channels), (1, 1, in_depth, out_channels), 1, "VALID"
    )
    per_group = geometry.out_channels // geometry.groups
    group_of_input = np.arange(in_channels) // geometry.in_depth
    group_of_output = np.arange(out_channels) // per_group
    return group_of_input[:, None] == group_of_output[None, :]


def binades(precision: int, exponents: Sequence[int]) -> list[tuple[float, float, float, int]]:
    """The binades of a binary format with ``precision`` significand bits.

    Used by :func:`float_number_line` (chapter 6).

    Returns
    -------
    list of (low, high, spacing, count)
        For each exponent ``e``: the binade ``[2**e, 2**(e+1))``, the spacing
        of its numbers ``2**(e - precision + 1)`` (one ULP) and how many there
        are, ``2**(precision - 1)``.

    Examples
    --------
    >>> binades(3, [0, 1])
    [(1.0, 2.0, 0.25, 4), (2.0, 4.0, 0.5, 4)]
    """
    return [
        (2.0**e, 2.0 ** (e + 1), 2.0 ** (e - precision + 1), 2 ** (precision - 1))
        for e in exponents
    ]


def summation_order(n: int, method: str = "sequential", block: int = 4) -> list[tuple[int, int]]:
    """The additions of an ``n``-term sum, in the order a method performs them.

    Leaves are ``0 … n-1``; the ``k``-th addition creates node ``n + k``.
    ``"sequential"`` and ``"pairwise"`` are the orders of
    :func:`companion.numerics.summation`; ``"blocked"`` sums blocks of
    ``block`` terms left to right, then the blocks' sums left to right.
    Used by :func:`summation_trees` (chapter 6).

    Returns
    -------
    list of (int, int)
        The two nodes each addition adds.

    Examples
    --------
    >>> summation_order(4, "sequential")
    [(0, 1), (4, 2), (5, 3)]
    >>> summation_order(4, "pairwise")
    [(0, 1), (2, 3), (4, 5)]
    """
    if n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    merges: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        merges.append((a, b))
        return n + len(merges) - 1

    def chain(nodes: list[int]) -> int:
        total = nodes[0]
        for node in nodes[1:]:
            total = add(total, node)
        return total

    def halves(nodes: list[int]) -> int:
        if len(nodes) == 1:
            return nodes[0]
        half = len(nodes) // 2
        left = halves(nodes[:half])
        return add(left, halves(nodes[half:]))

    leaves = list(range(n))
    if method == "sequential":
        chain(leaves)
    elif method == "pairwise":
        halves(leaves)
    elif method == "blocked":
        chain([chain(leaves[start : start + block]) for start in range(0, n, block)])
    else:
        raise ValueError(f"method: expected 'sequential', 'pairwise' or 'blocked', got {method!r}")
    return merges


# --------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------


def _tint(color: str, amount: float = 0.45) -> tuple[float, float, float]:
    """``color`` mixed with white: ``amount`` of the colour is kept."""
    r, g, b = to_rgb(color)
    return (1 - amount + amount * r, 1 - amount + amount * g, 1 - amount + amount * b)


def _cell(
    ax: plt.Axes,
    x: float,
    y: float,
    fill: object = "white",
    *,
    text: str = "",
    hatch: str | None = None,
    edge: str = "#555555",
    linewidth: float = 0.6,
    fontsize: float = 8,
    color: str = "black",
    size: float = 1.0,
    zorder: float = 1,
) -> None:
    """One square cell whose top-left corner is ``(x, y)`` (rows grow downwards).

    A hatched cell gets its hatch in a light grey, under a dark border, and its
    text on a small patch of its fill, so that the text stays readable.
    """
    light = hatch is not None
    ax.add_patch(
        Rectangle(
            (x, y),
            size,
            size,
            facecolor=fill,
            edgecolor="#a0a0a0" if light else edge,
            linewidth=0 if light else linewidth,
            hatch=hatch,
            zorder=zorder,
        )
    )
    if light:
        ax.add_patch(
            Rectangle(
                (x, y),
                size,
                size,
                fill=False,
                edgecolor=edge,
                linewidth=linewidth,
                zorder=zorder,
            )
        )
    if text:
        ax.text(
            x + size / 2,
            y + size / 2,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            color=color,
            zorder=8,
            bbox={"facecolor": fill, "edgecolor": "none", "pad": 0.6} if light else None,
        )


def _outline(
    ax: plt.Axes, x: float, y: float, w: float, h: float, color: str, lw: float = 2.2, **kw
) -> None:
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=lw, zorder=5, **kw))


def _finish_axes(ax: plt.Axes, width: float, height: float) -> None:
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(height + 0.3, -0.3)  # rows grow downwards, as in an array
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_padded_input(
    ax: plt.Axes,
    layout: WindowLayout,
    labels: np.ndarray | None,
    x0: float = 0.0,
    y0: float = 0.0,
    fontsize: float = 8,
    pad_text: bool = True,
) -> None:
    """The padded input: input cells in the input colour, padding grey and hatched."""
    (top, _), (left, _) = layout.pads
    mask = layout.padding_mask
    for (r, c), is_pad in np.ndenumerate(mask):
        if is_pad:
            _cell(
                ax,
                x0 + c,
                y0 + r,
                _tint(COLORS["padding"], 0.6),
                hatch="///",
                fontsize=fontsize,
                text="0" if pad_text else "",
                color="#444444",
            )
        else:
            text = "" if labels is None else str(labels[r - top, c - left])
            _cell(ax, x0 + c, y0 + r, _tint(COLORS["input"], 0.35), text=text, fontsize=fontsize)


def _draw_window(
    ax: plt.Axes,
    layout: WindowLayout,
    i: int,
    j: int,
    color: str,
    x0: float = 0.0,
    y0: float = 0.0,
    kernel_labels: np.ndarray | None = None,
    fill: bool = True,
    fontsize: float = 7,
    linestyle: str = "-",
) -> None:
    """Output ``(i, j)``'s taps over the padded input, and the window's extent."""
    taps = layout.taps[i, j]
    for p, q in np.ndindex(*layout.kernel_size):
        r, c = taps[p, q]
        ax.add_patch(
            Rectangle(
                (x0 + c + 0.06, y0 + r + 0.06),
                0.88,
                0.88,
                facecolor=_tint(COLORS["kernel"], 0.55) if fill else "none",
                edgecolor=color,
                linewidth=1.8,
                linestyle=linestyle,
                alpha=0.6 if fill else 1.0,
                zorder=3,
            )
        )
        if kernel_labels is not None:
            ax.text(
                x0 + c + 0.93,
                y0 + r + 0.1,
                f"×{kernel_labels[p, q]}",
                ha="right",
                va="top",
                fontsize=fontsize,
                color="#7a3d00",
                zorder=6,
            )
    top, left = taps[0, 0]
    bottom, right = taps[-1, -1]
    _outline(
        ax,
        x0 + left,
        y0 + top,
        right - left + 1,
        bottom - top + 1,
        color,
        lw=1.2,
        linestyle=linestyle,
    )


def _step_frame(
    ax: plt.Axes,
    layout: WindowLayout,
    step: tuple[int, int],
    image: np.ndarray | None,
    kernel: np.ndarray | None,
    output: np.ndarray | None,
) -> None:
    """One step of the sliding window: padded input and window, the kernel, the output so far."""
    ax.clear()
    hp, wp = layout.padded_size
    oh, ow = layout.output_size
    kh, kw = layout.kernel_size
    labels = None if image is None else np.asarray(image).astype(int)
    _draw_padded_input(ax, layout, labels)
    i, j = step
    _draw_window(ax, layout, i, j, COLORS["window"])
    x_right = wp + 2.0
    for p, q in np.ndindex(kh, kw):
        text = "" if kernel is None else str(int(kernel[p, q]))
        _cell(ax, x_right + q, 0.8 + p, _tint(COLORS["kernel"], 0.55), text=text)
    y_out = 0.8 + kh + 1.4
    done = i * ow + j
    for a, b in np.ndindex(oh, ow):
        index = a * ow + b
        text = "" if output is None or index > done else str(int(output[a, b]))
        fill = _tint(COLORS["output"], 0.4) if index < done else "white"
        if index == done:
            fill = _tint(COLORS["window"], 0.45)
        _cell(ax, x_right + b, y_out + a, fill, text=text)
    _outline(ax, x_right + j, y_out + i, 1, 1, COLORS["window"], lw=2.2)
    r, c = layout.taps[i, j, -1, -1]
    ax.add_patch(
        FancyArrowPatch(
            (c + 1.0, r + 0.5),
            (x_right + j, y_out + i + 0.5),
            arrowstyle="-|>",
            mutation_scale=10,
            color=COLORS["window"],
            linewidth=1.2,
            connectionstyle="arc3,rad=0.25",
            zorder=7,
        )
    )
    ax.text(x_right + kw / 2, 0.7, "kernel", ha="center", va="bottom", fontsize=8)
    ax.text(x_right + ow / 2, y_out - 0.1, "output", ha="center", va="bottom", fontsize=8)
    ax.text(wp / 2, hp + 0.15, "padded input", ha="center", va="top", fontsize=8)
    value = "" if output is None else f" = {int(output[i, j])}"
    ax.set_title(f"output ({i}, {j}){value}", fontsize=9)
    _finish_axes(ax, x_right + max(kw, ow), max(hp + 0.8, y_out + oh))


def _frame_aspect(layout: WindowLayout) -> float:
    hp, wp = layout.padded_size
    oh, ow = layout.output_size
    kh, kw = layout.kernel_size
    return max(hp + 0.8, 0.8 + kh + 1.4 + oh) / (wp + 2.0 + max(kw, ow))


def _default_steps(layout: WindowLayout, count: int) -> list[tuple[int, int]]:
    oh, ow = layout.output_size
    every = [(i, j) for i in range(oh) for j in range(ow)]
    if len(every) <= count:
        return every
    picks = np.linspace(0, len(every) - 1, count).round().astype(int)
    return [every[k] for k in picks]


def _title_of(layout: WindowLayout) -> str:
    (top, bottom), (left, right) = layout.pads
    h, w = layout.input_size
    kh, kw = layout.kernel_size
    oh, ow = layout.output_size
    return (
        f"input {h}×{w}, kernel {kh}×{kw}, strides {layout.strides}, "
        f"dilations {layout.dilations}, pads ({top}, {bottom}), ({left}, {right}): "
        f"output {oh}×{ow}"
    )


def _values(
    layout: WindowLayout, image: np.ndarray | None, kernel: np.ndarray | None
) -> np.ndarray | None:
    if image is None or kernel is None:
        return None
    return layout.apply(image, kernel)


# --------------------------------------------------------------------------------------
# 1. The sliding window
# --------------------------------------------------------------------------------------


def sliding_window(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str | Sequence = "VALID",
    dilations: int | Sequence[int] | None = None,
    *,
    image: np.ndarray | None = None,
    kernel: np.ndarray | None = None,
    steps: Sequence[tuple[int, int]] | None = None,
    ncols: int = 2,
) -> plt.Figure:
    """A strip of panels: the window over the padded input, one output pixel at a time.

    Chapter 2. Each panel shows the padded input (padding grey and hatched),
    the kernel's taps for one output pixel (orange, outlined in vermillion)
    and the output so far (green), with the current pixel outlined.

    Parameters
    ----------
    input_size, kernel_size, strides, padding, dilations
        As for :func:`window_layout`.
    image, kernel : ndarray of small integers, optional
        The input and the kernel to write into the cells; the outputs written
        are :meth:`WindowLayout.apply` of them.
    steps : sequence of (i, j), optional
        The output pixels to show; default up to four, first to last.
    ncols : int, optional
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = sliding_window(input_size=(5, 5), kernel_size=3, strides=2, padding="SAME")
    >>> len(fig.axes), fig.axes[0].get_title()
    (4, 'output (0, 0)')
    >>> plt.close(fig)
    """
    layout = window_layout(input_size, kernel_size, strides, padding, dilations)
    output = _values(layout, image, kernel)
    kernel_labels = None if kernel is None else np.asarray(kernel).astype(int)
    steps = list(steps) if steps is not None else _default_steps(layout, 4)
    ncols = min(ncols, len(steps))
    nrows = -(-len(steps) // ncols)
    aspect = _frame_aspect(layout)
    width = WIDTH
    fig, axes = plt.subplots(
        nrows,
        ncols,
        layout="constrained",
        figsize=(width, (width / ncols) * aspect * nrows + 0.6),
        squeeze=False,
    )
    for ax, step in zip(axes.flat, steps, strict=False):
        _step_frame(ax, layout, step, image, kernel_labels, output)
    for ax in axes.flat[len(steps) :]:
        ax.set_visible(False)
    fig.suptitle(_title_of(layout), fontsize=9)
    return fig


def sliding_window_animation(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str | Sequence = "VALID",
    dilations: int | Sequence[int] | None = None,
    *,
    image: np.ndarray | None = None,
    kernel: np.ndarray | None = None,
    interval: int = 700,
    width: float = 5.0,
    max_frames: int = 36,
) -> mpl_animation.FuncAnimation:
    """The sliding window as an animation: one frame per output pixel.

    Chapter 2. Show it with :func:`animation_html`, which plays without a
    kernel on the static site and in Colab.

    Parameters
    ----------
    input_size, kernel_size, strides, padding, dilations, image, kernel
        As for :func:`sliding_window`.
    interval : int, optional
        Milliseconds per frame.
    width : float, optional
        The figure's width in inches (small frames keep the page light).
    max_frames : int, optional
        At most this many frames (the first output pixels).

    Returns
    -------
    matplotlib.animation.FuncAnimation
        :func:`animation_html` renders it and closes its figure.

    Examples
    --------
    >>> anim = sliding_window_animation(4, 3, padding="SAME")
    >>> anim._save_count  # one frame per output pixel
    16
    >>> html = animation_html(anim)
    """
    layout = window_layout(input_size, kernel_size, strides, padding, dilations)
    output = _values(layout, image, kernel)
    kernel_labels = None if kernel is None else np.asarray(kernel).astype(int)
    oh, ow = layout.output_size
    steps = [(i, j) for i in range(oh) for j in range(ow)][:max_frames]
    aspect = _frame_aspect(layout)
    fig, ax = plt.subplots(layout="constrained", figsize=(width, width * aspect + 0.5))

    def draw(frame: int) -> list:
        _step_frame(ax, layout, steps[frame], image, kernel_labels, output)
        return []

    draw(0)
    return mpl_animation.FuncAnimation(fig, draw, frames=len(steps), interval=interval, blit=False)


_ICONS = {
    "minus": "−",
    "fast-backward": "❙◀◀",
    "step-backward": "❙◀",
    "play fa-flip-horizontal": "◀",
    "pause": "❙❙",
    "play": "▶",
    "step-forward": "▶❙",
    "fast-forward": "▶▶❙",
    "plus": "+",
}


def animation_html(anim: mpl_animation.FuncAnimation, *, dpi: int = 100, close: bool = True) -> str:
    """An animation as self-contained HTML: frames, controls and script, nothing fetched.

    Matplotlib's ``to_jshtml`` draws its buttons with an icon font loaded
    from a CDN; that request fails offline (and on this book's site, which
    must need no other host), so the icons are replaced by plain characters.
    Its random element id is replaced by one derived from the frames, so the
    same animation always gives the same HTML. Display the result with
    ``IPython.display.HTML``. Chapter 2.

    Parameters
    ----------
    anim : matplotlib.animation.FuncAnimation
        For example from :func:`sliding_window_animation`.
    dpi : int, optional
        Resolution of the embedded PNG frames (lower keeps the page light).
    close : bool, optional
        Close the animation's figure afterwards, so that it is not shown
        a second time as a still image.

    Returns
    -------
    str

    Examples
    --------
    >>> html = animation_html(sliding_window_animation(3, 2))
    >>> again = animation_html(sliding_window_animation(3, 2))
    >>> "cdn" in html, 'title="Play"' in html, html == again
    (False, True, True)
    """
    figure = anim._fig
    try:
        with plt.rc_context({"savefig.dpi": dpi}):
            html = anim.to_jshtml(default_mode="loop")
    finally:
        if close:
            plt.close(figure)
    html = re.sub(r'<link rel="stylesheet"\s*href="[^"]*font-awesome[^"]*">', "", html)

    def icon(match: re.Match) -> str:
        return _ICONS.get(match.group(1), match.group(1))

    html = re.sub(r'<i class="fa fa-([\w -]+?)"></i>', icon, html)
    random_id = re.search(r'id="_anim_img(\w+)"', html).group(1)
    stable = hashlib.sha256(html.replace(random_id, "").encode()).hexdigest()[:16]
    return html.replace(random_id, f"diagram{stable}")


# --------------------------------------------------------------------------------------
# 2-3. Galleries: padding, strides and dilations; grouped convolution
# --------------------------------------------------------------------------------------


def window_gallery(cases: Sequence[dict], *, ncols: int = 3) -> plt.Figure:
    """Several convolutions side by side: padded input, first and last window.

    Chapter 2 draws :data:`PADDING_CASES` and :data:`STRIDE_DILATION_CASES`.
    Input pixels are numbered ``1 … h·w`` row by row (the numbers an
    index-coded input carries through :func:`tf.nn.conv2d`), zeros of padding
    are grey and hatched, the first window is vermillion with its taps
    filled, the last window blue and dashed.

    Parameters
    ----------
    cases : sequence of dict
        Keyword arguments of :func:`window_layout`, plus a ``"title"``.
    ncols : int, optional
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = window_gallery(PADDING_CASES[:2])
    >>> [ax.get_title().splitlines()[0] for ax in fig.axes if ax.get_visible()]
    ['VALID', 'SAME, odd total (TensorFlow)']
    >>> plt.close(fig)
    """
    cases = list(cases)
    ncols = min(ncols, len(cases))
    nrows = -(-len(cases) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, layout="constrained", figsize=(WIDTH, 2.75 * nrows + 0.4), squeeze=False
    )
    for ax, case in zip(axes.flat, cases, strict=False):
        arguments = {k: v for k, v in case.items() if k != "title"}
        layout = window_layout(**arguments)
        h, w = layout.input_size
        numbers = np.arange(1, h * w + 1).reshape(h, w)
        _draw_padded_input(ax, layout, numbers, fontsize=7.5, pad_text=False)
        oh, ow = layout.output_size
        if oh and ow:
            _draw_window(ax, layout, 0, 0, COLORS["window"])
            if (oh, ow) != (1, 1):
                _draw_window(
                    ax, layout, oh - 1, ow - 1, COLORS["other"], fill=False, linestyle="--"
                )
        (top, bottom), (left, right) = layout.pads
        ax.set_title(
            f"{case.get('title', '')}\npads ({top}, {bottom}), ({left}, {right}) → "
            f"output {oh}×{ow}",
            fontsize=8.5,
        )
        hp, wp = layout.padded_size
        _finish_axes(ax, wp, hp)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    handles = [
        Rectangle((0, 0), 1, 1, facecolor=_tint(COLORS["input"], 0.35), edgecolor="#555555"),
        Rectangle(
            (0, 0), 1, 1, facecolor=_tint(COLORS["padding"], 0.6), hatch="///", edgecolor="#555555"
        ),
        Rectangle(
            (0, 0),
            1,
            1,
            facecolor=_tint(COLORS["kernel"], 0.55),
            edgecolor=COLORS["window"],
            linewidth=1.8,
        ),
        Rectangle(
            (0, 0), 1, 1, facecolor="none", edgecolor=COLORS["other"], linewidth=1.8, linestyle="--"
        ),
    ]
    fig.legend(
        handles,
        ["input pixel (numbered)", "zero of padding", "first window's taps", "last window's taps"],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
    return fig


def grouped_channels(in_channels: int, in_depth: int, out_channels: int) -> plt.Figure:
    """Which input channels feed which output channels in a grouped convolution.

    Chapter 2. Lines join each input channel to the outputs whose filters
    read it (:func:`group_connections`); each group has its own line style.

    Examples
    --------
    >>> fig = grouped_channels(6, 2, 9)
    >>> fig.axes[0].get_title()
    '6 input channels, in_depth 2: 3 groups of 3 filters'
    >>> plt.close(fig)
    """
    links = group_connections(in_channels, in_depth, out_channels)
    groups = in_channels // in_depth
    fig, ax = plt.subplots(layout="constrained", figsize=(WIDTH, 2.6))
    span = max(in_channels, out_channels)
    xs_in = np.linspace(0, span - 1, in_channels) if in_channels > 1 else np.array([span / 2])
    xs_out = np.linspace(0, span - 1, out_channels) if out_channels > 1 else np.array([span / 2])
    styles = ["-", "--", ":", "-."]
    for c, o in np.argwhere(links):
        group = c // in_depth
        ax.plot(
            [xs_in[c] + 0.4, xs_out[o] + 0.4],
            [0.9, 2.6],
            color="#444444",
            linestyle=styles[group % len(styles)],
            linewidth=1.2,
        )
    for c, x in enumerate(xs_in):
        _cell(ax, x, 0, _tint(COLORS["input"], 0.5), text=f"c{c}", size=0.8, fontsize=8)
    for o, x in enumerate(xs_out):
        _cell(ax, x, 2.6, _tint(COLORS["output"], 0.45), text=f"o{o}", size=0.8, fontsize=8)
    ax.text(-0.6, 0.4, "input\nchannels", ha="right", va="center", fontsize=8)
    ax.text(-0.6, 3.0, "output\nchannels", ha="right", va="center", fontsize=8)
    for g in range(groups):
        first = xs_in[g * in_depth]
        last = xs_in[(g + 1) * in_depth - 1]
        ax.text((first + last) / 2 + 0.4, -0.25, f"group {g}", ha="center", va="bottom", fontsize=8)
    ax.set_title(
        f"{in_channels} input channels, in_depth {in_depth}: {groups} groups of "
        f"{out_channels // groups} filters",
        fontsize=9,
    )
    ax.set_xlim(-2.2, span + 0.2)
    ax.set_ylim(3.6, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


# --------------------------------------------------------------------------------------
# 4-5. im2col and the backward pass (chapter 5)
# --------------------------------------------------------------------------------------


def im2col_diagram(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str | Sequence = "VALID",
    dilations: int | Sequence[int] | None = None,
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    highlight: tuple[int, int] = (0, 0),
) -> plt.Figure:
    """im2col: every window becomes one row of a matrix, and the convolution one product.

    Chapter 5. Left, the padded input with one window (the colours of
    :func:`sliding_window`); right, :func:`im2col_matrix`, with that window's
    row in the same colour, and the shapes of the product.

    Examples
    --------
    >>> fig = im2col_diagram(4, 3, padding="SAME")
    >>> fig.axes[1].get_title()
    'im2col matrix: 16 rows (outputs) × 9 columns (taps)'
    >>> plt.close(fig)
    """
    layout = window_layout(input_size, kernel_size, strides, padding, dilations)
    matrix = im2col_matrix(layout)
    rows, cols = matrix.shape
    hp, wp = layout.padded_size
    h, w = layout.input_size
    oh, ow = layout.output_size
    kh, kw = layout.kernel_size
    fig, (left, right) = plt.subplots(
        1,
        2,
        layout="constrained",
        figsize=(WIDTH, max(3.2, 0.22 * rows + 1.2)),
        width_ratios=[wp, cols + 1],
    )
    _draw_padded_input(left, layout, np.arange(1, h * w + 1).reshape(h, w), fontsize=8)
    i, j = highlight
    _draw_window(left, layout, i, j, COLORS["window"])
    left.set_title(f"padded input; window of output ({i}, {j})", fontsize=9)
    _finish_axes(left, wp, hp)
    current = i * ow + j
    for (r, c), value in np.ndenumerate(matrix):
        if value == 0:
            fill, hatch = _tint(COLORS["padding"], 0.6), "///"
        else:
            fill, hatch = _tint(COLORS["input"], 0.35), None
        if r == current:
            fill = _tint(COLORS["kernel"], 0.55) if value else fill
        _cell(right, c, r, fill, text=str(value), hatch=hatch, fontsize=7)
    _outline(right, 0, current, cols, 1, COLORS["window"])
    for c in range(cols):
        right.text(
            c + 0.5, -0.15, f"{c // kw},{c % kw}", ha="center", va="bottom", fontsize=7, rotation=90
        )
    right.set_title(f"im2col matrix: {rows} rows (outputs) × {cols} columns (taps)", fontsize=9)
    _finish_axes(right, cols, rows)
    right.set_ylim(rows + 0.3, -1.3)
    k = kh * kw * in_channels
    fig.supxlabel(
        f"({oh}·{ow} × {k}) @ ({k} × {out_channels}) = ({oh * ow} × {out_channels}), "
        f"reshaped to {oh}×{ow}×{out_channels}; column labels are kernel taps (row, column)",
        fontsize=8.5,
    )
    return fig


def backward_diagram(
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = 1,
    padding: str | Sequence = "VALID",
    dilations: int | Sequence[int] | None = None,
    *,
    cell: tuple[int, int] | None = None,
    tap: tuple[int, int] = (0, 0),
) -> plt.Figure:
    """Both gradients of a convolution, drawn from its forward windows.

    Chapter 5. Top: the input gradient at one padded-input ``cell`` collects
    ``dy[i, j]·w[p, q]`` from every window tap that read it
    (:func:`input_gradient_taps`); laid out on the output gradient with the
    stride's zeros inserted, those weights form the kernel turned by 180°.
    Bottom: the filter gradient at one ``tap`` correlates the input cells
    that tap read (a strided grid) with the output gradient.

    Examples
    --------
    >>> fig = backward_diagram(5, 3, strides=2, padding="SAME", cell=(2, 2))
    >>> [ax.get_title().split(":")[0] for ax in fig.axes]
    ['output gradient, zeros inserted', 'input gradient (padded)', 'input', 'filter gradient']
    >>> plt.close(fig)
    """
    layout = window_layout(input_size, kernel_size, strides, padding, dilations)
    hp, wp = layout.padded_size
    oh, ow = layout.output_size
    kh, kw = layout.kernel_size
    if cell is None:  # the padded-input cell that the most taps read
        counts = np.zeros(layout.padded_size, int)
        np.add.at(counts, (layout.taps[..., 0].ravel(), layout.taps[..., 1].ravel()), 1)
        cell = tuple(int(v) for v in np.unravel_index(np.argmax(counts), counts.shape))
    anchors = layout.taps[:, :, 0, 0]  # where each dy[i, j] sits: its window's corner
    eh = tfpad.effective_kernel_size(kh, layout.dilations[0]) - 1
    ew = tfpad.effective_kernel_size(kw, layout.dilations[1]) - 1
    fig, axes = plt.subplots(2, 2, layout="constrained", figsize=(WIDTH, 6.4))
    # Top left: dy placed at its windows' corners, inserted zeros, a border of e - 1 zeros.
    ax = axes[0, 0]
    hits = input_gradient_taps(layout, *cell)
    weight_at = {(i, j): (p, q) for i, j, p, q in hits}
    for r in range(-eh, hp):
        for c in range(-ew, wp):
            found = np.argwhere((anchors[..., 0] == r) & (anchors[..., 1] == c))
            if not len(found):
                _cell(
                    ax,
                    c + ew,
                    r + eh,
                    _tint(COLORS["inserted"], 0.3),
                    text="0",
                    fontsize=7,
                    color="#666666",
                )
                continue
            i, j = (int(v) for v in found[0])
            if (i, j) in weight_at:
                p, q = weight_at[i, j]
                _cell(
                    ax,
                    c + ew,
                    r + eh,
                    _tint(COLORS["kernel"], 0.55),
                    text=f"w{p}{q}",
                    fontsize=7.5,
                    edge=COLORS["window"],
                    linewidth=1.8,
                    zorder=4,
                )
            else:
                _cell(
                    ax, c + ew, r + eh, _tint(COLORS["gradient"], 0.4), text=f"dy{i}{j}", fontsize=7
                )
    r0, c0 = cell
    _outline(
        ax,
        c0,
        r0,
        ew + 1,
        eh + 1,
        COLORS["window"],
        lw=1.0,
        linestyle="--",
    )
    ax.set_title(f"output gradient, zeros inserted: {len(hits)} taps reach {cell}", fontsize=8.5)
    _finish_axes(ax, wp + ew, hp + eh)
    # Top right: the padded input gradient; the padding's rows are cropped away.
    ax = axes[0, 1]
    for (r, c), is_pad in np.ndenumerate(layout.padding_mask):
        fill = _tint(COLORS["padding"], 0.6) if is_pad else _tint(COLORS["gradient"], 0.25)
        _cell(ax, c, r, fill, hatch="///" if is_pad else None)
    _outline(ax, cell[1], cell[0], 1, 1, COLORS["window"])
    ax.set_title("input gradient (padded): padding cropped", fontsize=8.5)
    _finish_axes(ax, wp, hp)
    # Bottom left: the input cells one tap read.
    ax = axes[1, 0]
    _draw_padded_input(ax, layout, None, pad_text=False)
    p, q = tap
    for i, j in np.ndindex(oh, ow):
        r, c = layout.taps[i, j, p, q]
        _outline(ax, c + 0.05, r + 0.05, 0.9, 0.9, COLORS["window"], lw=1.8)
        ax.text(c + 0.5, r + 0.5, f"dy{i}{j}", ha="center", va="center", fontsize=7, zorder=8)
    ax.set_title(f"input: cells tap {tap} read, times dy", fontsize=8.5)
    _finish_axes(ax, wp, hp)
    # Bottom right: the filter gradient.
    ax = axes[1, 1]
    for a, b in np.ndindex(kh, kw):
        _cell(ax, b, a, _tint(COLORS["kernel"], 0.45), text=f"dw{a}{b}", fontsize=8)
    _outline(ax, q, p, 1, 1, COLORS["window"])
    ax.set_title(f"filter gradient: dw{p}{q} sums {oh * ow} products", fontsize=8.5)
    _finish_axes(ax, max(kw, 3), max(kh, 3))
    fig.suptitle(_title_of(layout), fontsize=9)
    return fig


# --------------------------------------------------------------------------------------
# 6. Seed 000's dtype flow (chapter 3)
# --------------------------------------------------------------------------------------


def _box(
    ax: plt.Axes, x: float, y: float, text: str, color: str, w: float = 2.3, h: float = 0.8
) -> tuple[float, float, float, float]:
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.05",
            facecolor=_tint(color, 0.35),
            edgecolor=color,
            linewidth=1.4,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    return (x, y, w, h)


def _arrow(ax: plt.Axes, start: tuple, end: tuple, text: str = "", color: str = "#333333") -> None:
    (x0, y0, w0, _), (x1, y1, w1, _) = start, end
    ax.add_patch(
        FancyArrowPatch(
            (x0 + w0 / 2, y0),
            (x1 - w1 / 2, y1),
            arrowstyle="-|>",
            mutation_scale=12,
            color=color,
            linewidth=1.3,
        )
    )
    if text:
        ax.text(
            (x0 + w0 / 2 + x1 - w1 / 2) / 2,
            (y0 + y1) / 2 + 0.12,
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            color=color,
        )


def _marker(ax: plt.Axes, x: float, y: float, number: int) -> None:
    ax.text(
        x,
        y,
        str(number),
        ha="center",
        va="center",
        fontsize=9,
        color="white",
        fontweight="bold",
        zorder=10,
        bbox={"boxstyle": "circle,pad=0.25", "facecolor": COLORS["window"], "edgecolor": "none"},
    )


def dtype_flow(
    input_dtype: str = "float64",
    filter_dtype: str = "float32",
    op_dtype: str = "float64",
    layer_dtype: str = "float32",
    *,
    remedies: bool = False,
) -> plt.Figure:
    """The first seed's two paths, as boxes and arrows: which dtype each step computes in.

    Chapter 3. Pass the dtypes the notebook observed. With ``remedies``, a
    numbered marker shows where each remedy acts: 1, cast the input to
    float32; 2, ``dtype="float64"`` on the layer; 3,
    ``keras.config.set_floatx("float64")`` before the layer is built.

    Examples
    --------
    >>> fig = dtype_flow(remedies=True)
    >>> fig.axes[0].get_title()
    'Where the dtypes part, and where each remedy acts'
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(layout="constrained", figsize=(WIDTH, 3.6 if remedies else 3.0))
    image = _box(ax, 1.4, 2.0, f"china.jpg / 255\n{input_dtype} batch", COLORS["input"])
    weights = _box(ax, 1.4, 0.35, f"7×7 ones filter\n{filter_dtype}", COLORS["kernel"], h=0.7)
    op = _box(ax, 5.0, 3.2, f"tf.nn.conv2d\nfilter converted to {op_dtype}", COLORS["other"], w=2.8)
    cast = _box(
        ax, 4.3, 1.0, f"Keras Conv2D: policy\n{layer_dtype}, input cast", COLORS["other"], w=2.5
    )
    conv = _box(ax, 6.9, 1.0, f"convolution\nin {layer_dtype}", COLORS["other"], w=1.8)
    out_op = _box(ax, 8.6, 3.2, f"{op_dtype}\noutput", COLORS["output"], w=1.6)
    out_layer = _box(ax, 8.9, 1.0, f"{layer_dtype}\noutput", COLORS["output"], w=1.3)
    _arrow(ax, image, op)
    _arrow(ax, image, cast, color=COLORS["window"])
    ax.text(
        2.45,
        1.3,
        f"cast {input_dtype}\n→ {layer_dtype}",
        ha="right",
        va="center",
        fontsize=8,
        color=COLORS["window"],
    )
    _arrow(ax, weights, op)
    _arrow(ax, weights, cast)
    _arrow(ax, op, out_op)
    _arrow(ax, cast, conv)
    _arrow(ax, conv, out_layer)
    ax.text(
        9.0,
        2.1,
        "difference\nvalue ≠ 0",
        ha="center",
        va="center",
        fontsize=8.5,
        color=COLORS["window"],
    )
    if remedies:
        _marker(ax, 1.4, 2.6, 1)
        _marker(ax, 3.25, 1.55, 2)
        _marker(ax, 5.35, 1.55, 3)
        ax.text(
            0.2,
            -0.75,
            "1  cast the batch to float32: both paths compute in float32 "
            "(the op follows its input)\n"
            '2  Conv2D(..., dtype="float64"): this layer computes in float64, no cast\n'
            '3  keras.config.set_floatx("float64") before the first layer exists: '
            "new layers compute in float64",
            ha="left",
            va="top",
            fontsize=8,
            linespacing=1.5,
        )
    ax.set_title(
        "Where the dtypes part, and where each remedy acts"
        if remedies
        else "One float64 batch, two paths, two dtypes",
        fontsize=10,
    )
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.9 if remedies else -0.2, 3.9)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


# --------------------------------------------------------------------------------------
# 7. The numbers (chapter 6)
# --------------------------------------------------------------------------------------


def float_number_line(precision: int = 3, exponents: Sequence[int] = (-1, 0, 1, 2)) -> plt.Figure:
    """Every positive number of a small binary format, binade by binade.

    Chapter 6. With ``precision`` significand bits each binade
    ``[2**e, 2**(e+1))`` holds ``2**(precision-1)`` equally spaced numbers,
    and the spacing (one ULP) doubles from one binade to the next
    (:func:`binades`); float32 is the same picture with ``precision=24``.

    Examples
    --------
    >>> fig = float_number_line()
    >>> fig.axes[0].get_xlabel()
    'value (log scale: each binade is as wide as the next)'
    >>> plt.close(fig)
    """
    table = binades(precision, exponents)
    fig, axes = plt.subplots(2, 1, layout="constrained", figsize=(WIDTH, 3.4), height_ratios=[1, 1])
    colors = [COLORS["input"], COLORS["kernel"]]
    for ax, log in zip(axes, (True, False), strict=True):
        for k, (low, high, spacing, count) in enumerate(table):
            values = low + spacing * np.arange(count)
            ax.vlines(values, 0, 0.5, color=colors[k % 2], linewidth=1.6)
            ax.vlines([low], -0.1, 0.8, color="black", linewidth=1.2)
            if log:
                ax.annotate(
                    "",
                    xy=(low, 0.62),
                    xytext=(low + spacing, 0.62),
                    arrowprops={"arrowstyle": "<->", "color": COLORS["window"], "lw": 1.0},
                )
                ax.text(
                    low * (high / low) ** 0.5,
                    0.9,
                    f"[{low:g}, {high:g}): ULP {spacing:g}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        last = table[-1][1]
        ax.vlines([last], -0.1, 0.8, color="black", linewidth=1.2)
        ax.set_yticks([])
        ax.set_ylim(-0.2, 1.4)
        ax.spines["left"].set_visible(False)
        if log:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("value (log scale: each binade is as wide as the next)")
            ax.set_title(
                f"A {precision}-bit significand: {table[0][3]} numbers per binade", fontsize=9
            )
        else:
            ax.set_xlabel("value (linear scale: the gaps double at every power of two)")
        ax.set_xlim(table[0][0] * (0.9 if log else 1) - (0 if log else 0.2), last * 1.05)
    return fig


def _tree_positions(n: int, merges: list[tuple[int, int]]) -> dict[int, tuple[float, float]]:
    positions = {leaf: (float(leaf), 0.0) for leaf in range(n)}
    for k, (a, b) in enumerate(merges):
        (xa, ya), (xb, yb) = positions[a], positions[b]
        positions[n + k] = ((xa + xb) / 2, max(ya, yb) + 1)
    return positions


def summation_trees(n: int = 8, block: int = 4) -> plt.Figure:
    """Three orders of one ``n``-term sum: a sequential chain, pairwise halves, blocks.

    Chapter 6. Each addition rounds once; an error committed at depth ``d``
    passes through the additions above it, so a tree's depth is what enters
    the worst-case bound ``γ_depth`` (:func:`summation_order`).

    Examples
    --------
    >>> fig = summation_trees(8)
    >>> [ax.get_title() for ax in fig.axes]
    ['sequential: depth 7', 'pairwise: depth 3', 'blocks of 4: depth 4']
    >>> plt.close(fig)
    """
    fig, axes = plt.subplots(1, 3, layout="constrained", figsize=(WIDTH, 3.0), sharey=True)
    for ax, method in zip(axes, ("sequential", "pairwise", "blocked"), strict=True):
        merges = summation_order(n, method, block)
        positions = _tree_positions(n, merges)
        depth = int(max(y for _, y in positions.values()))
        for k, (a, b) in enumerate(merges):
            x, y = positions[n + k]
            for child in (a, b):
                cx, cy = positions[child]
                ax.plot([cx, x], [cy, y], color="#555555", linewidth=1.0, zorder=1)
        for node, (x, y) in positions.items():
            is_leaf = node < n
            ax.scatter(
                [x],
                [y],
                s=110 if is_leaf else 45,
                color=_tint(COLORS["input"], 0.6) if is_leaf else COLORS["output"],
                edgecolor="#333333",
                linewidth=0.6,
                zorder=3,
            )
            if is_leaf:
                ax.text(x, y - 0.55, f"x{node + 1}", ha="center", va="top", fontsize=8)
        name = f"blocks of {block}" if method == "blocked" else method
        ax.set_title(f"{name}: depth {depth}", fontsize=9)
        ax.set_xticks([])
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(-1.4, n)
        for spine in ("top", "right", "bottom"):
            ax.spines[spine].set_visible(False)
    axes[0].set_ylabel("additions above the terms (depth)")
    return fig
