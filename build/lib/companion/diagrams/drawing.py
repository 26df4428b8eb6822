"""The drawing primitives every diagram shares: one colour per meaning, cells, windows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.patches import FancyArrowPatch, Rectangle

from companion.diagrams.layout import WindowLayout

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


def tint(color: str, amount: float = 0.45) -> tuple[float, float, float]:
    """``color`` mixed with white: ``amount`` of the colour is kept."""
    r, g, b = to_rgb(color)
    return (1 - amount + amount * r, 1 - amount + amount * g, 1 - amount + amount * b)


def draw_cell(
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


def draw_outline(
    ax: plt.Axes, x: float, y: float, w: float, h: float, color: str, lw: float = 2.2, **kw
) -> None:
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=lw, zorder=5, **kw))


def finish_axes(ax: plt.Axes, width: float, height: float) -> None:
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(height + 0.3, -0.3)  # rows grow downwards, as in an array
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_padded_input(
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
            draw_cell(
                ax,
                x0 + c,
                y0 + r,
                tint(COLORS["padding"], 0.6),
                hatch="///",
                fontsize=fontsize,
                text="0" if pad_text else "",
                color="#444444",
            )
        else:
            text = "" if labels is None else str(labels[r - top, c - left])
            draw_cell(ax, x0 + c, y0 + r, tint(COLORS["input"], 0.35), text=text, fontsize=fontsize)


def draw_window(
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
                facecolor=tint(COLORS["kernel"], 0.55) if fill else "none",
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
    draw_outline(
        ax,
        x0 + left,
        y0 + top,
        right - left + 1,
        bottom - top + 1,
        color,
        lw=1.2,
        linestyle=linestyle,
    )


def step_frame(
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
    draw_padded_input(ax, layout, labels)
    i, j = step
    draw_window(ax, layout, i, j, COLORS["window"])
    x_right = wp + 2.0
    for p, q in np.ndindex(kh, kw):
        text = "" if kernel is None else str(int(kernel[p, q]))
        draw_cell(ax, x_right + q, 0.8 + p, tint(COLORS["kernel"], 0.55), text=text)
    y_out = 0.8 + kh + 1.4
    done = i * ow + j
    for a, b in np.ndindex(oh, ow):
        index = a * ow + b
        text = "" if output is None or index > done else str(int(output[a, b]))
        fill = tint(COLORS["output"], 0.4) if index < done else "white"
        if index == done:
            fill = tint(COLORS["window"], 0.45)
        draw_cell(ax, x_right + b, y_out + a, fill, text=text)
    draw_outline(ax, x_right + j, y_out + i, 1, 1, COLORS["window"], lw=2.2)
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
    finish_axes(ax, x_right + max(kw, ow), max(hp + 0.8, y_out + oh))


def frame_aspect(layout: WindowLayout) -> float:
    hp, wp = layout.padded_size
    oh, ow = layout.output_size
    kh, kw = layout.kernel_size
    return max(hp + 0.8, 0.8 + kh + 1.4 + oh) / (wp + 2.0 + max(kw, ow))


def default_steps(layout: WindowLayout, count: int) -> list[tuple[int, int]]:
    oh, ow = layout.output_size
    every = [(i, j) for i in range(oh) for j in range(ow)]
    if len(every) <= count:
        return every
    picks = np.linspace(0, len(every) - 1, count).round().astype(int)
    return [every[k] for k in picks]


def title_of(layout: WindowLayout) -> str:
    (top, bottom), (left, right) = layout.pads
    h, w = layout.input_size
    kh, kw = layout.kernel_size
    oh, ow = layout.output_size
    return (
        f"input {h}×{w}, kernel {kh}×{kw}, strides {layout.strides}, "
        f"dilations {layout.dilations}, pads ({top}, {bottom}), ({left}, {right}): "
        f"output {oh}×{ow}"
    )


def window_values(
    layout: WindowLayout, image: np.ndarray | None, kernel: np.ndarray | None
) -> np.ndarray | None:
    if image is None or kernel is None:
        return None
    return layout.apply(image, kernel)
