"""One figure style for the whole book, and grids of images, feature maps and kernels.

Every chapter calls :func:`use_book_style` once; the grid helpers give each
panel a title and keep pixel axes labelled, so figures read the same across
chapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["BOOK_STYLE", "image_grid", "kernel_grid", "kernel_value_label", "use_book_style"]

#: The rcParams every figure in the book uses.
BOOK_STYLE: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (8.0, 4.0),
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "gray",
    "image.interpolation": "nearest",
    "axes.prop_cycle": mpl.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    ),
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib's global settings.

    Built in chapter 1.

    Examples
    --------
    >>> use_book_style()
    >>> import matplotlib as mpl
    >>> mpl.rcParams["image.cmap"]
    'gray'
    """
    mpl.rcParams.update(BOOK_STYLE)


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ncols: int | None = None,
    suptitle: str | None = None,
    cmap: str | None = None,
    symmetric: bool | Sequence[bool] = False,
    colorbar: bool = False,
    panel_size: float = 3.0,
    axis_labels: bool = True,
    limits: tuple[float, float] | None = None,
) -> plt.Figure:
    """Show images or feature maps side by side, each with its title.

    Built in chapter 1.

    Parameters
    ----------
    images : sequence of 2-D or (H, W, 3) arrays
        Grayscale maps or RGB images (floats in [0, 1] or uint8).
    titles : sequence of str
        One title per image.
    ncols : int, optional
        Panels per row; default all in one row.
    suptitle : str, optional
        A title for the whole figure.
    cmap : str, optional
        Colour map for 2-D panels; default the style's gray.
    symmetric : bool or sequence of bool, optional
        Centre the colour scale of 2-D panels on zero (for signed feature
        maps such as edge responses), with a diverging map unless ``cmap``.
        One flag per image mixes signed and unsigned panels in one figure.
    colorbar : bool, optional
        Add a colour bar to each 2-D panel.
    panel_size : float, optional
        Inches per panel.
    axis_labels : bool, optional
        Label the axes "column (pixels)" and "row (pixels)".
    limits : (float, float), optional
        One colour scale ``(vmin, vmax)`` for every 2-D panel, instead of
        each panel's own range (or its symmetric range).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``images`` and ``titles`` differ in length or are empty,
        ``symmetric`` is a sequence of another length, or ``limits`` is not
        an increasing pair.

    Examples
    --------
    >>> fig = image_grid([np.eye(4), -np.eye(4)], ["identity", "negated"], symmetric=True)
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    >>> fig = image_grid([np.eye(4), np.eye(4)], ["signed", "plain"], symmetric=[True, False])
    >>> [tuple(float(v) for v in ax.images[0].get_clim()) for ax in fig.axes]
    [(-1.0, 1.0), (0.0, 1.0)]
    >>> plt.close(fig)
    >>> fig = image_grid([np.eye(4), 2 * np.eye(4)], ["one", "two"], limits=(0, 2))
    >>> [tuple(float(v) for v in ax.images[0].get_clim()) for ax in fig.axes]
    [(0.0, 2.0), (0.0, 2.0)]
    >>> plt.close(fig)
    >>> image_grid([np.eye(4)], ["one"], limits=(1, 0))
    Traceback (most recent call last):
    ...
    ValueError: limits: expected vmin < vmax, got (1, 0)
    """
    if len(images) != len(titles) or not images:
        raise ValueError(
            f"titles: expected one title per image ({len(images)} images), got {len(titles)}"
        )
    if isinstance(symmetric, (bool, np.bool_)):
        flags = [bool(symmetric)] * len(images)
    else:
        flags = [bool(flag) for flag in symmetric]
        if len(flags) != len(images):
            raise ValueError(
                f"symmetric: expected a bool or one bool per image ({len(images)} images), "
                f"got {len(flags)} flags"
            )
    if limits is not None:
        limits = _check_limits(limits)
    ncols = len(images) if ncols is None else ncols
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False
    )
    for ax, image, title, signed in zip(axes.flat, images, titles, flags, strict=False):
        image = np.asarray(image)
        kwargs: dict[str, object] = {}
        if image.ndim == 2:
            kwargs["cmap"] = cmap or ("RdBu_r" if signed else None)
            if limits is not None:
                kwargs.update(vmin=limits[0], vmax=limits[1])
            elif signed:
                limit = float(np.max(np.abs(image))) or 1.0
                kwargs.update(vmin=-limit, vmax=limit)
        shown = ax.imshow(image, **kwargs)
        ax.set_title(title)
        if axis_labels:
            ax.set_xlabel("column (pixels)")
            ax.set_ylabel("row (pixels)")
        if colorbar and image.ndim == 2:
            fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in axes.flat[len(images) :]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _check_limits(limits: object) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in limits)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"limits: expected a pair (vmin, vmax), got {limits!r}") from None
    if not low < high:
        raise ValueError(f"limits: expected vmin < vmax, got {limits!r}")
    return low, high


def kernel_value_label(value: float, max_denominator: int = 100) -> str:
    r"""Write a kernel weight briefly: an integer, a small fraction, or two digits.

    Built in chapter 1.

    A float32 weight such as ``1/49`` is not exactly 1/49; it is labelled as
    that fraction when the fraction rounds to the same float32 number. A
    fraction is written in matplotlib's mathtext, stacked, so that it fits
    in a kernel's square tap.

    Examples
    --------
    >>> [kernel_value_label(v) for v in np.float32([2, -1, 0, 0.3])]
    ['2', '-1', '0', '$\\dfrac{3}{10}$']
    >>> kernel_value_label(np.float32(-1 / 49))
    '$-\\dfrac{1}{49}$'
    >>> kernel_value_label(np.pi)
    '3.1'
    """
    value = float(value)
    fraction = Fraction(value).limit_denominator(max_denominator)
    if np.float32(fraction.numerator / fraction.denominator) != np.float32(value):
        return f"{value:.2g}"
    if fraction.denominator == 1:
        return str(fraction.numerator)
    sign = "-" if fraction < 0 else ""
    return f"${sign}\\dfrac{{{abs(fraction.numerator)}}}{{{fraction.denominator}}}$"


def kernel_grid(
    kernels: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ncols: int | None = None,
    suptitle: str | None = None,
    panel_size: float = 3.0,
    value_label: Callable[[float], str] | None = kernel_value_label,
    fontsize: float = 12,
    own_scale: bool | Sequence[bool] = False,
    label_taps: bool | Sequence[bool] = True,
) -> plt.Figure:
    r"""Show 2-D kernels on one colour scale centred on zero, each tap labelled with its weight.

    Built in chapter 1.

    Unlike :func:`image_grid`, which scales each panel to its own range, all
    panels share one scale (and one colour bar), so a weight of ``1/49``
    looks small next to a weight of 1 or 2.

    Parameters
    ----------
    kernels : sequence of 2-D arrays
        The kernels, as written: row ``r``, column ``c`` of a kernel is its
        tap ``(r, c)``.
    titles : sequence of str
        One title per kernel.
    ncols : int, optional
        Panels per row; default all in one row.
    suptitle : str, optional
        A title for the whole figure.
    panel_size : float, optional
        Inches per panel.
    value_label : callable or None, optional
        Turns a weight into the text written on its tap; default
        :func:`kernel_value_label`; ``None`` writes nothing.
    fontsize : float, optional
        Size of the tap labels, in points (mathtext labels, such as the
        stacked fractions of :func:`kernel_value_label`, at 70 % of it).
    own_scale : bool or sequence of bool, optional
        Give a kernel its own colour scale, centred on zero, and its own
        colour bar, instead of the shared one (one flag per kernel, or one
        for all). Useful for a kernel whose weights are all tiny, such as a
        box blur, which would look blank on the shared scale.
    label_taps : bool or sequence of bool, optional
        Write each weight on its tap (one flag per kernel, or one for all);
        ``False`` leaves a kernel's taps blank, for instance when every
        weight is the same and the title states it.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``kernels`` and ``titles`` differ in length or are empty, a
        kernel is not 2-D, or ``own_scale`` or ``label_taps`` is a sequence
        of another length.

    Examples
    --------
    >>> fig = kernel_grid([np.eye(3), np.full((2, 2), 0.25)], ["identity", "box"])
    >>> [tuple(float(v) for v in ax.images[0].get_clim()) for ax in fig.axes[:2]]
    [(-1.0, 1.0), (-1.0, 1.0)]
    >>> [text.get_text() for text in fig.axes[1].texts]
    ['$\\dfrac{1}{4}$', '$\\dfrac{1}{4}$', '$\\dfrac{1}{4}$', '$\\dfrac{1}{4}$']
    >>> plt.close(fig)
    >>> fig = kernel_grid([np.eye(3), np.full((2, 2), 0.25)], ["identity", "box"],
    ...                   own_scale=[False, True], label_taps=[True, False])
    >>> [tuple(float(v) for v in ax.images[0].get_clim()) for ax in fig.axes[:2]]
    [(-1.0, 1.0), (-0.25, 0.25)]
    >>> len(fig.axes[1].texts)
    0
    >>> plt.close(fig)
    >>> kernel_grid([np.ones(3)], ["a row"])
    Traceback (most recent call last):
    ...
    ValueError: kernels: expected 2-D kernels, kernel 0 has shape (3,)
    """
    if len(kernels) != len(titles) or not kernels:
        raise ValueError(
            f"titles: expected one title per kernel ({len(kernels)} kernels), got {len(titles)}"
        )
    arrays = [np.asarray(kernel, dtype=np.float64) for kernel in kernels]
    for index, array in enumerate(arrays):
        if array.ndim != 2:
            raise ValueError(
                f"kernels: expected 2-D kernels, kernel {index} has shape {array.shape}"
            )
    own = _per_kernel_flags(own_scale, len(arrays), "own_scale")
    labelled = _per_kernel_flags(label_taps, len(arrays), "label_taps")
    shared = [array for array, alone in zip(arrays, own, strict=True) if not alone]
    shared_limit = max((float(np.max(np.abs(array))) for array in shared), default=0.0) or 1.0
    ncols = len(arrays) if ncols is None else ncols
    nrows = -(-len(arrays) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False
    )
    cmap = plt.get_cmap("RdBu_r")
    shown = None
    for index, (ax, array, title) in enumerate(zip(axes.flat, arrays, titles, strict=False)):
        limit = (float(np.max(np.abs(array))) or 1.0) if own[index] else shared_limit
        image = ax.imshow(array, cmap=cmap, vmin=-limit, vmax=limit)
        if own[index]:
            fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
        else:
            shown = image
        ax.set_title(title)
        ax.set_xlabel("kernel column")
        ax.set_ylabel("kernel row")
        ax.set_xticks(range(array.shape[1]))
        ax.set_yticks(range(array.shape[0]))
        if value_label is not None and labelled[index]:
            for (r, c), value in np.ndenumerate(array):
                label = value_label(value)
                dark = abs(value) > 0.6 * limit
                ax.text(
                    c,
                    r,
                    label,
                    ha="center",
                    va="center",
                    # A stacked fraction is two lines high: smaller, it fits a tap.
                    fontsize=0.7 * fontsize if label.startswith("$") else fontsize,
                    color="white" if dark else "black",
                )
    for ax in axes.flat[len(arrays) :]:
        ax.set_visible(False)
    if shown is not None:
        on_shared = [ax for ax, alone in zip(axes.flat, own, strict=False) if not alone]
        fig.colorbar(shown, ax=on_shared, shrink=0.8, label="weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _per_kernel_flags(flags: bool | Sequence[bool], count: int, name: str) -> list[bool]:
    if isinstance(flags, (bool, np.bool_)):
        return [bool(flags)] * count
    result = [bool(flag) for flag in flags]
    if len(result) != count:
        raise ValueError(
            f"{name}: expected a bool or one bool per kernel ({count} kernels), "
            f"got {len(result)} flags"
        )
    return result
