"""The stride-phase grid: where each kernel tap reads, as one contiguous slice.

A strided convolution, split into the ``sh·sw`` stride phases of its padded
input, is a stride-1 convolution in each phase; laid flat, a phase turns every
tap's reads for a run of outputs into one contiguous slice (:class:`Grid`).
:func:`phase_image` copies one phase of the zero-padded input, NHWC or
channel-first. The strategies ``"taps"`` and ``"planar"``
(:mod:`companion.numpy_conv.blocked`), the depthwise kernels
(:mod:`companion.numpy_conv.depthwise`) and the planar filter gradient work on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from companion.arithmetic import Geometry
from companion.numpy_conv import parallel


@dataclass(frozen=True)
class Grid:
    """Where every kernel tap reads once the padded input is split into stride phases.

    With strides ``(sh, sw)``, padded row ``r = i·sh + a·dh`` lies in row phase
    ``r % sh``, at row ``i + (a·dh) // sh`` of that phase. Split into its
    ``sh·sw`` phases, a strided convolution becomes stride 1 in each phase
    image, and a phase image of ``height × width`` positions laid flat
    (``p = (n·height + i)·width + j``) lets tap ``t`` read output ``p``'s pixel
    at ``p + offset_t``: every tap is one contiguous slice. Positions with
    ``i ≥ out_height`` or ``j ≥ out_width`` are computed and dropped.
    """

    height: int
    width: int
    #: The ``(row phase, column phase)`` pairs some tap reads.
    phases: tuple[tuple[int, int], ...]
    #: Per tap, in the filter's ``(a, b)`` order: ``(phase index, flat offset)``.
    taps: tuple[tuple[int, int], ...]
    #: Per phase: ``(first offset, rows, row step, columns, column step, tap indices)``,
    #: the taps of a phase forming a regular ``rows × columns`` grid of offsets.
    lattices: tuple[tuple[int, int, int, int, int, tuple[int, ...]], ...]

    @property
    def positions(self) -> int:
        """Positions per image."""
        return self.height * self.width


def stride_phase_grid(geometry: Geometry) -> Grid:
    """The :class:`Grid` of a geometry: its stride phases and where each tap reads."""
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded_h, padded_w = geometry.padded_size
    height, width = -(-padded_h // sh), -(-padded_w // sw)
    rows = [divmod(a * dh, sh) for a in range(geometry.kernel_height)]  # (shift, phase)
    cols = [divmod(b * dw, sw) for b in range(geometry.kernel_width)]
    phases = sorted({(pa, pb) for _, pa in rows for _, pb in cols})
    index = {phase: k for k, phase in enumerate(phases)}
    taps = tuple((index[(pa, pb)], qa * width + qb) for qa, pa in rows for qb, pb in cols)
    lattices = []
    for pa, pb in phases:
        # The taps of one phase: an arithmetic progression of shifts along each axis.
        a_of = [a for a, (_, p) in enumerate(rows) if p == pa]
        b_of = [b for b, (_, p) in enumerate(cols) if p == pb]
        qa = [rows[a][0] for a in a_of]
        qb = [cols[b][0] for b in b_of]
        step_a = qa[1] - qa[0] if len(qa) > 1 else 0
        step_b = qb[1] - qb[0] if len(qb) > 1 else 0
        tap_indices = tuple(a * geometry.kernel_width + b for a in a_of for b in b_of)
        lattices.append(
            (qa[0] * width + qb[0], len(qa), step_a * width, len(qb), step_b, tap_indices)
        )
    return Grid(height, width, tuple(phases), taps, tuple(lattices))


def phase_image(
    x: np.ndarray, geometry: Geometry, grid: Grid, phase: tuple[int, int], planar: bool
) -> np.ndarray:
    """One phase of the zero-padded input, flat: ``(positions, C)``, or ``(C, positions)``."""
    batch, height, width, channels = x.shape
    (top, bottom), (left, right) = geometry.pads
    (sh, sw), (pa, pb) = geometry.strides, phase
    trivial = (sh, sw) == (1, 1) and top == bottom == left == right == 0
    if trivial and not planar:
        return x.reshape(-1, channels)  # no copy for a contiguous input
    shape = (batch, grid.height, grid.width)
    role = f"phase {pa} {pb} {'planar' if planar else 'nhwc'}"
    image = parallel.scratch(role, (channels, *shape) if planar else (*shape, channels), x.dtype)
    inner = image if planar else np.moveaxis(image, 3, 0)  # (C, N, height, width) either way
    # Phase row u is padded row pa + u·sh, input row pa + u·sh − top.
    u0 = min(grid.height, max(0, -((pa - top) // sh)))
    v0 = min(grid.width, max(0, -((pb - left) // sw)))
    u1 = max(u0, min(grid.height, (top + height - 1 - pa) // sh + 1))
    v1 = max(v0, min(grid.width, (left + width - 1 - pb) // sw + 1))
    for zeros in (
        np.s_[:, :, :u0],
        np.s_[:, :, u1:],
        np.s_[:, :, u0:u1, :v0],
        np.s_[:, :, u0:u1, v1:],
    ):
        inner[zeros] = 0  # the padding (and the phase's overhang)
    if u1 > u0 and v1 > v0:
        r0, c0 = pa + u0 * sh - top, pb + v0 * sw - left
        source = x[:, r0 : r0 + (u1 - u0 - 1) * sh + 1 : sh, c0 : c0 + (v1 - v0 - 1) * sw + 1 : sw]
        if planar:
            # Channel-first: transposed in chunks of rows that stay in cache, the
            # images shared among the copying threads.
            target, source = image[:, :, u0:u1, v0:v1], source.transpose(3, 0, 1, 2)
            rows = max(1, (1 << 15) // (source.shape[3] * source.shape[0] * x.itemsize))

            def transpose(first: int, last: int) -> None:
                for n in range(first, last):
                    for i in range(0, u1 - u0, rows):
                        target[:, n, i : i + rows] = source[:, n, i : i + rows]

            threads = parallel.copy_in_parallel(target.nbytes)
            parallel.run_parallel(
                [lambda a=a, b=b: transpose(a, b) for a, b in parallel.split_evenly(batch, threads)]
            )
        else:
            parallel.copyto(image[:, u0:u1, v0:v1], source)
    return image.reshape(channels, -1) if planar else image.reshape(-1, channels)
