"""The numbers: a float number line with its binades, and summation trees."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from companion.diagrams.drawing import (
    COLORS,
    WIDTH,
    tint,
)
from companion.diagrams.layout import (
    binades,
    summation_order,
)


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
                    fontsize=9,
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
                f"A {precision}-bit significand: {table[0][3]} numbers per binade", fontsize=10
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
                color=tint(COLORS["input"], 0.6) if is_leaf else COLORS["output"],
                edgecolor="#333333",
                linewidth=0.6,
                zorder=3,
            )
            if is_leaf:
                ax.text(x, y - 0.55, f"x{node + 1}", ha="center", va="top", fontsize=9)
        name = f"blocks of {block}" if method == "blocked" else method
        ax.set_title(f"{name}: depth {depth}", fontsize=10)
        ax.set_xticks([])
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(-1.4, n)
        for spine in ("top", "right", "bottom"):
            ax.spines[spine].set_visible(False)
    axes[0].set_ylabel("additions above the terms (depth)")
    return fig
