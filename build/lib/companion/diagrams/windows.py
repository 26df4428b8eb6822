"""Windows over the input: the sliding window (strip and animation), galleries, groups."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation as mpl_animation
from matplotlib.patches import Rectangle

from companion.diagrams.drawing import (
    COLORS,
    WIDTH,
    default_steps,
    draw_cell,
    draw_padded_input,
    draw_window,
    finish_axes,
    frame_aspect,
    step_frame,
    tint,
    title_of,
    window_values,
)
from companion.diagrams.layout import (
    group_connections,
    window_layout,
)

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
    output = window_values(layout, image, kernel)
    kernel_labels = None if kernel is None else np.asarray(kernel).astype(int)
    steps = list(steps) if steps is not None else default_steps(layout, 4)
    ncols = min(ncols, len(steps))
    nrows = -(-len(steps) // ncols)
    aspect = frame_aspect(layout)
    width = WIDTH
    fig, axes = plt.subplots(
        nrows,
        ncols,
        layout="constrained",
        figsize=(width, (width / ncols) * aspect * nrows + 0.6),
        squeeze=False,
    )
    for ax, step in zip(axes.flat, steps, strict=False):
        step_frame(ax, layout, step, image, kernel_labels, output)
    for ax in axes.flat[len(steps) :]:
        ax.set_visible(False)
    fig.suptitle(title_of(layout), fontsize=9)
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
    output = window_values(layout, image, kernel)
    kernel_labels = None if kernel is None else np.asarray(kernel).astype(int)
    oh, ow = layout.output_size
    steps = [(i, j) for i in range(oh) for j in range(ow)][:max_frames]
    aspect = frame_aspect(layout)
    fig, ax = plt.subplots(layout="constrained", figsize=(width, width * aspect + 0.5))

    def draw(frame: int) -> list:
        step_frame(ax, layout, steps[frame], image, kernel_labels, output)
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
        draw_padded_input(ax, layout, numbers, fontsize=7.5, pad_text=False)
        oh, ow = layout.output_size
        if oh and ow:
            draw_window(ax, layout, 0, 0, COLORS["window"])
            if (oh, ow) != (1, 1):
                draw_window(ax, layout, oh - 1, ow - 1, COLORS["other"], fill=False, linestyle="--")
        (top, bottom), (left, right) = layout.pads
        ax.set_title(
            f"{case.get('title', '')}\npads ({top}, {bottom}), ({left}, {right}) → "
            f"output {oh}×{ow}",
            fontsize=8.5,
        )
        hp, wp = layout.padded_size
        finish_axes(ax, wp, hp)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    handles = [
        Rectangle((0, 0), 1, 1, facecolor=tint(COLORS["input"], 0.35), edgecolor="#555555"),
        Rectangle(
            (0, 0), 1, 1, facecolor=tint(COLORS["padding"], 0.6), hatch="///", edgecolor="#555555"
        ),
        Rectangle(
            (0, 0),
            1,
            1,
            facecolor=tint(COLORS["kernel"], 0.55),
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
        draw_cell(ax, x, 0, tint(COLORS["input"], 0.5), text=f"c{c}", size=0.8, fontsize=8)
    for o, x in enumerate(xs_out):
        draw_cell(ax, x, 2.6, tint(COLORS["output"], 0.45), text=f"o{o}", size=0.8, fontsize=8)
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
