"""The step from geometry to data: what the diagrams draw, as arrays tests can check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from companion import arguments, arithmetic


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    items = arguments.integers(
        value, name, lengths=(1, 2), minimum=1, expected="a positive int or (height, width)"
    )
    return (items[0], items[0]) if len(items) == 1 else (items[0], items[1])


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
        ``((top, bottom), (left, right))`` zeros, from :mod:`companion.arithmetic`.
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
    geometry = arithmetic.conv_geometry(
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
    geometry = arithmetic.conv_geometry(
        (1, 1, 1, in_channels), (1, 1, in_depth, out_channels), 1, "VALID"
    )
    per_group = geometry.per_group
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
