"""One figure style for the whole book, and grids of images and feature maps.

Every chapter calls :func:`use_book_style` once; the grid helpers give each
panel a title and keep pixel axes labelled, so figures read the same across
chapters.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["BOOK_STYLE", "image_grid", "use_book_style"]

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
) -> plt.Figure:
    """Show images or feature maps side by side, each with its title.

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

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``images`` and ``titles`` differ in length or are empty, or
        ``symmetric`` is a sequence of another length.

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
            if signed:
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
