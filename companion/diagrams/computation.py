"""How a convolution is computed: im2col, the backward pass, and seed 000's dtype flow."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from companion import arithmetic
from companion.diagrams.drawing import (
    COLORS,
    WIDTH,
    draw_cell,
    draw_outline,
    draw_padded_input,
    draw_window,
    finish_axes,
    tint,
    title_of,
)
from companion.diagrams.layout import (
    im2col_matrix,
    input_gradient_taps,
    window_layout,
)


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
    draw_padded_input(left, layout, np.arange(1, h * w + 1).reshape(h, w), fontsize=8)
    i, j = highlight
    draw_window(left, layout, i, j, COLORS["window"])
    left.set_title(f"padded input; window of output ({i}, {j})", fontsize=9)
    finish_axes(left, wp, hp)
    current = i * ow + j
    for (r, c), value in np.ndenumerate(matrix):
        if value == 0:
            fill, hatch = tint(COLORS["padding"], 0.6), "///"
        else:
            fill, hatch = tint(COLORS["input"], 0.35), None
        if r == current:
            fill = tint(COLORS["kernel"], 0.55) if value else fill
        draw_cell(right, c, r, fill, text=str(value), hatch=hatch, fontsize=7)
    draw_outline(right, 0, current, cols, 1, COLORS["window"])
    for c in range(cols):
        right.text(
            c + 0.5, -0.15, f"{c // kw},{c % kw}", ha="center", va="bottom", fontsize=7, rotation=90
        )
    right.set_title(f"im2col matrix: {rows} rows (outputs) × {cols} columns (taps)", fontsize=9)
    finish_axes(right, cols, rows)
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
    eh = arithmetic.effective_kernel_size(kh, layout.dilations[0]) - 1
    ew = arithmetic.effective_kernel_size(kw, layout.dilations[1]) - 1
    fig, axes = plt.subplots(2, 2, layout="constrained", figsize=(WIDTH, 6.4))
    # Top left: dy placed at its windows' corners, inserted zeros, a border of e - 1 zeros.
    ax = axes[0, 0]
    hits = input_gradient_taps(layout, *cell)
    weight_at = {(i, j): (p, q) for i, j, p, q in hits}
    for r in range(-eh, hp):
        for c in range(-ew, wp):
            found = np.argwhere((anchors[..., 0] == r) & (anchors[..., 1] == c))
            if not len(found):
                draw_cell(
                    ax,
                    c + ew,
                    r + eh,
                    tint(COLORS["inserted"], 0.3),
                    text="0",
                    fontsize=7,
                    color="#666666",
                )
                continue
            i, j = (int(v) for v in found[0])
            if (i, j) in weight_at:
                p, q = weight_at[i, j]
                draw_cell(
                    ax,
                    c + ew,
                    r + eh,
                    tint(COLORS["kernel"], 0.55),
                    text=f"w{p}{q}",
                    fontsize=7.5,
                    edge=COLORS["window"],
                    linewidth=1.8,
                    zorder=4,
                )
            else:
                draw_cell(
                    ax, c + ew, r + eh, tint(COLORS["gradient"], 0.4), text=f"dy{i}{j}", fontsize=7
                )
    r0, c0 = cell
    draw_outline(
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
    finish_axes(ax, wp + ew, hp + eh)
    # Top right: the padded input gradient; the padding's rows are cropped away.
    ax = axes[0, 1]
    for (r, c), is_pad in np.ndenumerate(layout.padding_mask):
        fill = tint(COLORS["padding"], 0.6) if is_pad else tint(COLORS["gradient"], 0.25)
        draw_cell(ax, c, r, fill, hatch="///" if is_pad else None)
    draw_outline(ax, cell[1], cell[0], 1, 1, COLORS["window"])
    ax.set_title("input gradient (padded): padding cropped", fontsize=8.5)
    finish_axes(ax, wp, hp)
    # Bottom left: the input cells one tap read.
    ax = axes[1, 0]
    draw_padded_input(ax, layout, None, pad_text=False)
    p, q = tap
    for i, j in np.ndindex(oh, ow):
        r, c = layout.taps[i, j, p, q]
        draw_outline(ax, c + 0.05, r + 0.05, 0.9, 0.9, COLORS["window"], lw=1.8)
        ax.text(c + 0.5, r + 0.5, f"dy{i}{j}", ha="center", va="center", fontsize=7, zorder=8)
    ax.set_title(f"input: cells tap {tap} read, times dy", fontsize=8.5)
    finish_axes(ax, wp, hp)
    # Bottom right: the filter gradient.
    ax = axes[1, 1]
    for a, b in np.ndindex(kh, kw):
        draw_cell(ax, b, a, tint(COLORS["kernel"], 0.45), text=f"dw{a}{b}", fontsize=8)
    draw_outline(ax, q, p, 1, 1, COLORS["window"])
    ax.set_title(f"filter gradient: dw{p}{q} sums {oh * ow} products", fontsize=8.5)
    finish_axes(ax, max(kw, 3), max(kh, 3))
    fig.suptitle(title_of(layout), fontsize=9)
    return fig


#: Font sizes of the dtype-flow diagram, in points: at :data:`WIDTH` the figure shows at
#: nearly its own size in the site's column, so these stay legible.
_FLOW_TEXT = 10.5
_FLOW_NOTE = 10


def _box(
    ax: plt.Axes, x: float, y: float, text: str, color: str, w: float = 2.3, h: float = 0.8
) -> tuple[float, float, float, float]:
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.05",
            facecolor=tint(color, 0.35),
            edgecolor=color,
            linewidth=1.4,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=_FLOW_TEXT)
    return (x, y, w, h)


def _arrow(
    ax: plt.Axes,
    start: tuple,
    end: tuple,
    text: str = "",
    color: str = "#333333",
    linestyle: str = "-",
) -> None:
    (x0, y0, w0, _), (x1, y1, w1, _) = start, end
    ax.add_patch(
        FancyArrowPatch(
            (x0 + w0 / 2, y0),
            (x1 - w1 / 2, y1),
            arrowstyle="-|>",
            mutation_scale=14,
            color=color,
            linewidth=1.4,
            linestyle=linestyle,
        )
    )
    if text:
        ax.text(
            (x0 + w0 / 2 + x1 - w1 / 2) / 2,
            (y0 + y1) / 2 + 0.12,
            text,
            ha="center",
            va="bottom",
            fontsize=_FLOW_NOTE,
            color=color,
        )


def _marker(ax: plt.Axes, x: float, y: float, number: int) -> None:
    ax.text(
        x,
        y,
        str(number),
        ha="center",
        va="center",
        fontsize=10,
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

    Chapter 3. Pass the dtypes the notebook observed. The NumPy filter goes
    into ``tf.nn.conv2d`` itself; the layer builds its own kernel with the
    same values (``kernel_initializer="ones"``), drawn as a dashed arrow. With
    ``remedies``, a numbered marker shows where each remedy acts: 1, cast the
    input to float32; 2, ``dtype="float64"`` on the layer; 3,
    ``keras.config.set_floatx("float64")`` before the layer is built.

    Examples
    --------
    >>> fig = dtype_flow(remedies=True)
    >>> fig.axes[0].get_title()
    'Where the dtypes part, and where each remedy acts'
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(layout="constrained", figsize=(WIDTH, 4.3 if remedies else 3.6))
    image = _box(ax, 1.2, 2.2, f"china.jpg / 255\n{input_dtype} batch", COLORS["input"], h=0.9)
    weights = _box(ax, 1.2, 0.3, f"7×7 ones filter\n{filter_dtype}", COLORS["kernel"], h=0.9)
    op = _box(
        ax, 5.0, 3.4, f"tf.nn.conv2d\nfilter converted to {op_dtype}", COLORS["other"], w=3.4, h=0.9
    )
    cast = _box(
        ax,
        4.45,
        1.0,
        f"Keras Conv2D: policy\n{layer_dtype}, input cast",
        COLORS["other"],
        w=2.7,
        h=0.9,
    )
    conv = _box(ax, 7.05, 1.0, f"convolution\nin {layer_dtype}", COLORS["other"], w=1.85, h=0.9)
    out_op = _box(ax, 8.95, 3.4, f"{op_dtype}\noutput", COLORS["output"], w=1.5, h=0.9)
    out_layer = _box(ax, 9.2, 1.0, f"{layer_dtype}\noutput", COLORS["output"], w=1.3, h=0.9)
    _arrow(ax, image, op)
    _arrow(ax, image, cast, color=COLORS["window"])
    ax.text(
        2.45,
        1.25,
        f"cast {input_dtype}\n→ {layer_dtype}",
        ha="right",
        va="center",
        fontsize=_FLOW_NOTE,
        color=COLORS["window"],
    )
    _arrow(ax, weights, op)
    _arrow(ax, weights, cast, linestyle="--")
    ax.text(
        2.55,
        0.1,
        'same values: its own kernel,\nkernel_initializer="ones"',
        ha="left",
        va="top",
        fontsize=_FLOW_NOTE,
    )
    _arrow(ax, op, out_op)
    _arrow(ax, cast, conv)
    _arrow(ax, conv, out_layer)
    ax.text(
        9.05,
        2.2,
        "difference\nvalue ≠ 0",
        ha="center",
        va="center",
        fontsize=_FLOW_NOTE,
        color=COLORS["window"],
    )
    if remedies:
        _marker(ax, 1.2, 2.85, 1)
        _marker(ax, 3.2, 1.6, 2)
        _marker(ax, 5.7, 1.6, 3)
        ax.text(
            0.05,
            -0.85,
            "1  cast the batch to float32: both paths compute in float32\n"
            '2  Conv2D(..., dtype="float64"): this layer computes in float64\n'
            '3  keras.config.set_floatx("float64") before the first layer:\n'
            "     every new layer computes in float64",
            ha="left",
            va="top",
            fontsize=_FLOW_NOTE,
            linespacing=1.4,
        )
    ax.set_title(
        "Where the dtypes part, and where each remedy acts"
        if remedies
        else "One float64 batch, two paths, two dtypes",
        fontsize=11,
    )
    ax.set_xlim(-0.1, 10.0)
    ax.set_ylim(-2.45 if remedies else -0.8, 4.0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
