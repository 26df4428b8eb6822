"""Convolution in NumPy: a drop-in twin of ``tf.nn.conv2d``, forward and backward.

:func:`conv2d` takes the arguments of :func:`tf.nn.conv2d` with the same
meaning (strides, dilations, ``SAME``/``VALID``/explicit padding, NHWC and
NCHW, grouped convolution) and returns the same shape and dtype; where
TensorFlow's oneDNN and reference CPU kernels disagree, it follows the
reference kernel (``TF_ENABLE_ONEDNN_OPTS=0``). All argument checking and
output-size arithmetic comes from :mod:`companion.padding`.

Its values agree with TensorFlow's within the rounding-error bound of
:func:`companion.numerics.conv_error_bound`, not bitwise: every method adds
the ``kh·kw·in_depth`` products of an output in its own order.

Methods (``method=``), all giving the same answer within that bound:

- ``"loops"``: a Python loop over every output position, the way the third
  seed question started;
- ``"windows"``: a strided view of all windows at once
  (:func:`numpy.lib.stride_tricks.sliding_window_view`) contracted with the
  filters by :func:`numpy.einsum`: the "stacked" form;
- ``"im2col"``: the windows copied into one matrix, then one matrix product
  (GEMM) per group (Chetlur et al. 2014);
- ``"im2col_blocked"``: the same, a cache-sized block of output rows at a
  time, so the column matrix never exists whole (no ``kh·kw``-fold copy of a
  large input);
- ``"taps"``: one matrix product per kernel tap, ``x[:, a::s, b::s] @ w[a, b]``,
  accumulated: no column matrix at all, and for a 1×1 kernel a single product
  that reads the input in place. Strides are handled by splitting the padded
  input into its stride phases, where every tap reads one contiguous slice;
- ``"planar"``: im2col built transposed from a channel-first copy of the
  input, whose copies run along image rows: for few channels per group
  (first layers, grouped convolutions);
- ``"auto"``: the strategy :func:`choose_method` picks for the shape.

Methods are pluggable: :data:`STRATEGIES` maps a name to a function of the
unpadded NHWC input, the filters and a :class:`Geometry` (from
:func:`conv_geometry`); ``"auto"`` asks :func:`choose_method`.

The gradients :func:`conv2d_backprop_input` and
:func:`conv2d_backprop_filter` are convolutions too, and run through the same
strategies; with ``"auto"`` they take faster routes to the same sums (stride
phases for the input gradient, transposed column blocks for the filter
gradient).

Speed: the fast strategies work in blocks of at most :data:`BLOCK_BYTES`, so
their memory stays near the input plus twice the output; they spread the
blocks over :data:`THREADS` threads, holding NumPy's BLAS to one thread per
block meanwhile (with threadpoolctl, when it is installed; scikit-learn
depends on it; the setting is process-wide, so BLAS calls that other threads
make during a convolution run on one thread too), and keep their scratch
buffers (at most
:data:`WORKSPACE_BYTES` per thread) from call to call.
``python -m benchmarks.conv_speed`` times them against ``tf.nn.conv2d``.

Dtypes, as in TensorFlow: float16, bfloat16, float32, float64 and int32
inputs; the first operand's dtype wins (``input`` for :func:`conv2d` and
:func:`conv2d_backprop_filter`, ``filters`` for :func:`conv2d_backprop_input`),
and the other operand is converted to it with ``astype``, as TensorFlow
converts a NumPy array. float16 and bfloat16 are summed in float32 and
rounded once at the end; int32 is exact modulo 2**32, as in TensorFlow.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from companion import padding as tfpad

__all__ = [
    "BLOCK_BYTES",
    "METHODS",
    "MIN_BLOCK_POSITIONS",
    "PLANAR_MAX_DEPTH",
    "STRATEGIES",
    "THREADS",
    "WORKSPACE_BYTES",
    "Geometry",
    "choose_method",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "conv_geometry",
]

#: The dtypes ``tf.nn.conv2d`` and ``conv2d_backprop_input`` accept (their ops' type list).
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32")
#: ``Conv2DBackpropFilter`` has no int32 kernel.
_FILTER_GRADIENT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Geometry:
    """One convolution's sizes, resolved, in NHWC terms.

    Attributes
    ----------
    batch, in_height, in_width, in_channels : int
        The input's shape (NHWC).
    kernel_height, kernel_width, in_depth, out_channels : int
        The filter's shape; ``in_depth = in_channels / groups``.
    groups : int
        ``in_channels // in_depth`` (1 for an ordinary convolution).
    strides, dilations : (int, int)
        Along height and width.
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros, resolved from ``padding``.
    out_height, out_width : int
        The output's spatial size.
    """

    batch: int
    in_height: int
    in_width: int
    in_channels: int
    kernel_height: int
    kernel_width: int
    in_depth: int
    out_channels: int
    groups: int
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    out_height: int
    out_width: int

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(batch, out_height, out_width, out_channels)``."""
        return (self.batch, self.out_height, self.out_width, self.out_channels)

    @property
    def effective_kernel(self) -> tuple[int, int]:
        """The dilated kernel's extent ``(kh - 1)·dh + 1`` along height and width."""
        return (
            tfpad.effective_kernel_size(self.kernel_height, self.dilations[0]),
            tfpad.effective_kernel_size(self.kernel_width, self.dilations[1]),
        )

    @property
    def terms(self) -> int:
        """The number of products summed into each output, ``kh·kw·in_depth``."""
        return self.kernel_height * self.kernel_width * self.in_depth

    @property
    def flops(self) -> int:
        """Floating-point operations of the direct sum: ``2·N·Ho·Wo·K·kh·kw·Cin/groups``.

        One multiplication and one addition per product; the count every
        strategy is measured against (GFLOP/s), whatever it really executes.
        """
        return 2 * int(np.prod(self.output_shape, dtype=np.int64)) * self.terms

    @property
    def is_empty(self) -> bool:
        """``True`` when the output has no elements or every sum is empty."""
        return 0 in self.output_shape or self.in_channels == 0


#: A strategy computes the NHWC output from the unpadded NHWC input and the
#: filters, both already in the computation dtype; it is called only for
#: non-empty outputs.
Strategy = Callable[[np.ndarray, np.ndarray, Geometry], np.ndarray]


# --------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------


def _as_array(value: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected an array, got {type(value).__name__}") from error
    if array.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got dtype object")
    return array


def _check_dtype(
    array: np.ndarray, name: str, allowed: tuple[str, ...] = SUPPORTED_DTYPES, op: str = "conv2d"
) -> None:
    if array.dtype.name not in allowed:
        raise ValueError(
            f"{name}: expected one of the dtypes TensorFlow's {op} accepts "
            f"({', '.join(allowed)}), got {array.dtype}"
        )


def _convert(array: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """Convert the second operand to the first one's dtype, as TensorFlow does."""
    if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(dtype, copy=False)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.name in ("float16", "bfloat16"):
        return np.dtype(np.float32)
    if dtype.name == "int32":
        return np.dtype(np.int64)  # exact modulo 2**32 after the final cast
    return dtype


def _check_rank(array: np.ndarray, name: str, layout: str) -> None:
    if array.ndim != 4:
        raise ValueError(f"{name}: expected a rank-4 array {layout}, got shape {array.shape}")


def _geometry(
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str,
    dilations: int | Sequence[int] | None,
) -> Geometry:
    """Check every argument with :mod:`companion.padding` and resolve the sizes."""
    try:
        out_shape = tfpad.conv_output_shape(
            input_shape, filter_shape, strides, padding, data_format, dilations
        )
    except ValueError as error:
        if not str(error).startswith("kernel_size:"):
            raise
        raise ValueError(
            f"filters: shape {tuple(filter_shape)} is too large for input shape "
            f"{tuple(input_shape)} with padding {padding!r} ({error})"
        ) from None
    sh, sw = tfpad.spatial(tfpad.normalize_strides(strides, data_format), data_format)
    dh, dw = tfpad.spatial(tfpad.normalize_dilations(dilations, data_format), data_format)
    pad = tfpad.normalize_padding(padding, data_format)
    height, width = tfpad.spatial(input_shape, data_format)
    channels = input_shape[3] if data_format == "NHWC" else input_shape[1]
    kh, kw, in_depth, out_channels = (int(d) for d in filter_shape)
    pads = (
        tfpad.resolve_pads(height, kh, sh, dh, pad if isinstance(pad, str) else pad[0]),
        tfpad.resolve_pads(width, kw, sw, dw, pad if isinstance(pad, str) else pad[1]),
    )
    out_height, out_width = tfpad.spatial(out_shape, data_format)
    return Geometry(
        batch=int(input_shape[0]),
        in_height=int(height),
        in_width=int(width),
        in_channels=int(channels),
        kernel_height=kh,
        kernel_width=kw,
        in_depth=in_depth,
        out_channels=out_channels,
        groups=max(int(channels) // in_depth, 1),
        strides=(sh, sw),
        dilations=(dh, dw),
        pads=pads,
        out_height=int(out_height),
        out_width=int(out_width),
    )


def conv_geometry(
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> Geometry:
    """Check the arguments of a ``tf.nn.conv2d`` call and resolve its sizes.

    Parameters
    ----------
    input_shape, filter_shape : sequence of 4 ints
        The shapes of ``input`` (in ``data_format`` order) and ``filters``.
    strides, padding, data_format, dilations
        As for :func:`conv2d`.

    Returns
    -------
    Geometry
        In NHWC terms, whatever ``data_format``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` rejects.

    Examples
    --------
    >>> g = conv_geometry((8, 3, 32, 32), (3, 3, 3, 16), 2, "SAME", "NCHW")
    >>> g.output_shape, g.pads, g.terms, g.flops
    ((8, 16, 16, 16), ((0, 1), (0, 1)), 27, 1769472)
    """
    data_format = tfpad.normalize_data_format(data_format)
    return _geometry(
        tuple(input_shape), tuple(filter_shape), strides, padding, data_format, dilations
    )


def _check_method(method: str) -> str:
    if method not in STRATEGIES and method != "auto":
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def _to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return array if data_format == "NHWC" else array.transpose(0, 2, 3, 1)


def _from_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return array if data_format == "NHWC" else np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def _shape_argument(value: object, name: str, what: str) -> tuple[int, int, int, int]:
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        items = []
    if len(items) != 4 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in items
    ):
        raise ValueError(f"{name}: expected 4 non-negative ints ({what}), got {value!r}")
    return tuple(int(v) for v in items)  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------


def _pad(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _windows(x: np.ndarray, geometry: Geometry, padded: np.ndarray | None = None) -> np.ndarray:
    """All windows as a view: ``(batch, out_h, out_w, channels, kh, kw)``.

    ``padded``, if given, is ``x`` already padded (see :func:`_pad_scratch`).
    """
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded = _pad(x, geometry) if padded is None else padded
    view = sliding_window_view(padded, (eh, ew), axis=(1, 2))
    view = view[:, ::sh, ::sw, :, ::dh, ::dw]
    return view[:, : geometry.out_height, : geometry.out_width]


def _loops(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One output position at a time, as the seed's triple loop."""
    eh, ew = geometry.effective_kernel
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    cin, cout = geometry.in_depth, geometry.out_channels // geometry.groups
    padded = _pad(x, geometry)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    for n in range(geometry.batch):
        for i in range(geometry.out_height):
            for j in range(geometry.out_width):
                window = padded[n, i * sh : i * sh + eh : dh, j * sw : j * sw + ew : dw, :]
                for g in range(geometry.groups):
                    patch = window[:, :, g * cin : (g + 1) * cin, np.newaxis]
                    product = patch * w[:, :, :, g * cout : (g + 1) * cout]
                    out[n, i, j, g * cout : (g + 1) * cout] = product.sum(axis=(0, 1, 2))
    return out


def _windows_einsum(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The stacked form: contract the view of all windows with the filters."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = _windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    filters = w.reshape(kh, kw, cin, g, geometry.out_channels // g)
    out = np.einsum("nhwgcij,ijcgk->nhwgk", view, filters, optimize=True)
    return out.reshape(geometry.output_shape)


def _im2col(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Copy the windows into a matrix, one row per output position; one GEMM per group."""
    n, ho, wo, _ = geometry.output_shape
    g, cin = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    view = _windows(x, geometry).reshape(n, ho, wo, g, cin, kh, kw)
    # (groups, positions, kh·kw·cin), in the filter's (kh, kw, cin) order.
    columns = view.transpose(3, 0, 1, 2, 5, 6, 4).reshape(g, n * ho * wo, kh * kw * cin)
    matrix = w.reshape(kh * kw * cin, g, geometry.out_channels // g).transpose(1, 0, 2)
    out = np.matmul(columns, matrix)  # (groups, positions, out per group)
    return out.transpose(1, 0, 2).reshape(geometry.output_shape)


# --------------------------------------------------------------------------
# Fast strategies: blocks that fit in cache, and the stride-phase grid
# --------------------------------------------------------------------------

#: Scratch bytes a blocked strategy aims at per block (a block of columns, an
#: accumulator): small enough to stay in a CPU's cache (L2 here, or nearly),
#: large enough for an efficient matrix product; the block sizes between 1 and
#: 4 MiB ran equally fast on the machine that built the book, 16 MiB slower.
BLOCK_BYTES = 2 << 20
#: Blocks are also held to the output's size, so that a small layer's scratch
#: stays near its output (peak memory about input + 2 × output), unless that
#: would leave fewer than this many output positions per matrix product, whose
#: speed falls off quickly for fewer rows.
MIN_BLOCK_POSITIONS = 512


def _block_bytes(geometry: Geometry, itemsize: int, per_position: int) -> int:
    """Scratch bytes per block, for ``per_position`` bytes of scratch per output position.

    :data:`BLOCK_BYTES` at most; no more than the output's size, unless that
    leaves fewer than :data:`MIN_BLOCK_POSITIONS` positions.
    """
    output = int(np.prod(geometry.output_shape)) * itemsize
    return min(BLOCK_BYTES, max(output, MIN_BLOCK_POSITIONS * per_position))


#: The most scratch memory the fast strategies keep between calls, per thread.
WORKSPACE_BYTES = 64 << 20

_workspace = threading.local()


def _scratch(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised scratch array, reused from call to call in this thread.

    Fresh large arrays cost page faults on first touch, and whether the
    allocator hands back recycled memory depends on what else the process did;
    reusing one buffer per role makes the strategies' speed depend on the
    shapes alone. At most :data:`WORKSPACE_BYTES` are kept per thread; a
    larger request gets a fresh array.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes > WORKSPACE_BYTES:
        return np.empty(shape, dtype=dtype)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(role)
    if buffer is None or buffer.nbytes < nbytes:
        buffers.pop(role, None)
        if sum(b.nbytes for b in buffers.values()) + nbytes > WORKSPACE_BYTES:
            buffers.clear()
        buffer = buffers[role] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


#: Threads the fast strategies use for their copies and their blocks (NumPy
#: releases the GIL while it copies and multiplies); ``None``: one per core this
#: process may use. Blocks also use no more threads than BLAS would.
THREADS: int | None = None
#: Copies smaller than this stay in the calling thread.
_PARALLEL_COPY_BYTES = 1 << 18

_pool: dict[int, ThreadPoolExecutor] = {}
_block_pool: dict[int, ThreadPoolExecutor] = {}  # separate: blocks may wait for copies
_pool_lock = threading.Lock()


def _copy_threads() -> int:
    if THREADS is not None:
        return max(1, THREADS)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without affinity


def _run_parallel(tasks: list[Callable[[], object]], pools: dict | None = None) -> None:
    """Run the tasks on as many threads, the calling thread taking the first."""
    if len(tasks) == 1:
        tasks[0]()
        return
    pools = _pool if pools is None else pools
    with _pool_lock:
        pool = pools.get(len(tasks))
        if pool is None:
            name = "numpy_conv blocks" if pools is _block_pool else "numpy_conv copy"
            pool = pools[len(tasks)] = ThreadPoolExecutor(len(tasks) - 1, name)
    futures = [pool.submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()


def _split(length: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, length, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _copyto(target: np.ndarray, source: np.ndarray) -> None:
    """``target[...] = source``, split across :data:`THREADS` threads.

    Matrix products use every core (BLAS threads); the copies that feed them
    would otherwise use one. The work is split along the first axis long
    enough.
    """
    threads = _copy_threads()
    axis = next((a for a, n in enumerate(target.shape) if n >= threads), None)
    if threads == 1 or axis is None or target.nbytes < _PARALLEL_COPY_BYTES:
        np.copyto(target, source)
        return
    index = [slice(None)] * target.ndim
    tasks = []
    for start, stop in _split(target.shape[axis], threads):
        index[axis] = slice(start, stop)
        part = tuple(index)
        tasks.append(lambda part=part: np.copyto(target[part], source[part]))
    _run_parallel(tasks)


_blas_lock = threading.Lock()
_blas_state: dict[str, object] = {"libraries": None, "users": 0, "saved": []}


def _blas_libraries() -> list:
    """NumPy's BLAS libraries, as threadpoolctl controllers (none without threadpoolctl)."""
    if _blas_state["libraries"] is None:
        try:
            from threadpoolctl import ThreadpoolController

            found = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # threadpoolctl missing or unable to inspect: no block threads
            found = []
        _blas_state["libraries"] = list(found)
    return _blas_state["libraries"]


def _block_threads(blocks: int) -> int:
    """How many threads may compute blocks at once: cores, BLAS's threads, the blocks."""
    libraries = _blas_libraries()
    if not libraries or blocks < 2:
        return 1
    with _blas_lock:
        blas = max(_blas_state["saved"]) if _blas_state["users"] else None
    if blas is None:
        blas = max(library.num_threads for library in libraries)
    return max(1, min(blas, _copy_threads(), blocks))


def _for_each_block(function: Callable[[int], None], blocks: int) -> None:
    """Call ``function(0), …, function(blocks - 1)``, spread over several threads.

    A matrix product split among BLAS's threads waits for the slowest at every
    step, and the copies that feed it run on one core. Instead, while the
    blocks run, BLAS is held to one thread per caller (with threadpoolctl) and
    :func:`_block_threads` threads take blocks in turn, each copying and
    multiplying its own; a thread slowed by another process simply takes
    fewer blocks. Each block is computed the same way whichever thread takes
    it, so results do not depend on the scheduling.
    """
    threads = _block_threads(blocks)
    if threads == 1:
        for index in range(blocks):
            function(index)
        return
    libraries = _blas_libraries()
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["saved"] = [library.num_threads for library in libraries]
            for library in libraries:
                library.set_num_threads(1)
        _blas_state["users"] += 1
    try:
        counter = itertools.count()
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    index = next(counter)
                if index >= blocks:
                    return
                function(index)

        _run_parallel([work] * threads, _block_pool)
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                for library, count in zip(libraries, _blas_state["saved"], strict=True):
                    library.set_num_threads(count)


def _clear_workspace() -> None:
    """Release this thread's scratch buffers (the benchmark measures memory from cold)."""
    _workspace.__dict__.pop("buffers", None)


@dataclass(frozen=True)
class _Grid:
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


def _grid(geometry: Geometry) -> _Grid:
    (top, bottom), (left, right) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    height = -(-(geometry.in_height + top + bottom) // sh)
    width = -(-(geometry.in_width + left + right) // sw)
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
    return _Grid(height, width, tuple(phases), taps, tuple(lattices))


def _phase_image(
    x: np.ndarray, geometry: Geometry, grid: _Grid, phase: tuple[int, int], planar: bool
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
    image = _scratch(role, (channels, *shape) if planar else (*shape, channels), x.dtype)
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

            threads = 1 if target.nbytes < _PARALLEL_COPY_BYTES else _copy_threads()
            _run_parallel([lambda a=a, b=b: transpose(a, b) for a, b in _split(batch, threads)])
        else:
            _copyto(image[:, u0:u1, v0:v1], source)
    return image.reshape(channels, -1) if planar else image.reshape(-1, channels)


def _grid_blocks(geometry: Geometry, grid: _Grid, positions: int):
    """Split the grid into blocks of whole rows that hold valid outputs.

    Yields ``(start, count, pieces)``: the block's first flat position, how
    many positions it needs (up to its last valid output), and
    ``(n, i0, i1, k0)`` for each image it touches: output rows ``i0:i1`` of
    image ``n`` are the block's rows ``k0:k0 + i1 - i0``.
    """
    batch, out_h = geometry.batch, geometry.out_height
    height, width = grid.height, grid.width
    per_block = max(1, positions // width)
    row, last = 0, (batch - 1) * height + out_h  # global grid rows; the last valid one + 1
    while row < last:
        n, i = divmod(row, height)
        if i >= out_h:  # rows that only feed dropped positions
            row = (n + 1) * height
            continue
        end = min(row + per_block, last)
        pieces, r = [], row
        while r < end:
            n, i = divmod(r, height)
            stop = min(end, n * height + out_h)
            if stop > r:
                pieces.append((n, i, i + stop - r, r - row))
            r = (n + 1) * height
        n, i0, i1, k0 = pieces[-1]
        count = (k0 + i1 - i0 - 1) * width + geometry.out_width
        yield row * width, count, pieces
        row = end


def _scatter(out: np.ndarray, block: np.ndarray, pieces, width: int) -> None:
    """Copy a block's valid outputs (rows of ``width`` positions) into ``out``."""
    rows = block.shape[0] // width
    view = block[: rows * width].reshape(rows, width, block.shape[1])
    out_w = out.shape[2]
    for n, i0, i1, k0 in pieces:
        out[n, i0:i1] = view[k0 : k0 + i1 - i0, :out_w]


def _grouped_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, groups: int) -> None:
    """``out[:, g] = a[:, g] @ b[g]`` for each group, on channel-blocked views, into ``out``."""
    if groups == 1:
        np.matmul(a, b, out=out)
        return
    rows = a.shape[0]
    np.matmul(
        a.reshape(rows, groups, -1).transpose(1, 0, 2),
        b,
        out=out.reshape(rows, groups, -1).transpose(1, 0, 2),
    )


def _taps(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One matrix product per kernel tap, accumulated: no column matrix at all.

    ``out += x_shifted @ w[a, b]`` for each tap, on the stride-phase grid
    (:class:`_Grid`), block by block so that the accumulator stays in cache.
    For a 1×1 kernel this is a single product, written straight into the
    output; without padding or strides it reads the input in place.
    """
    grid = _grid(geometry)
    images = [_phase_image(x, geometry, grid, phase, planar=False) for phase in grid.phases]
    groups, depth = geometry.groups, geometry.in_depth
    out_channels = geometry.out_channels
    per_group = out_channels // groups
    kh, kw = geometry.kernel_height, geometry.kernel_width
    if groups == 1:
        matrices = w.reshape(kh * kw, depth, out_channels)
    else:  # (taps, groups, depth, per group)
        matrices = w.reshape(kh * kw, depth, groups, per_group).transpose(0, 2, 1, 3)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    direct = (grid.height, grid.width) == (geometry.out_height, geometry.out_width)
    flat_out = out.reshape(-1, out_channels)
    per_position = 2 * out_channels * x.itemsize  # an accumulator and a product
    per_block = _block_bytes(geometry, x.itemsize, per_position) // per_position
    per_block = max(grid.width, per_block)
    if direct and len(grid.taps) == 1:
        per_block = flat_out.shape[0]  # one product for the whole output
    size = (per_block + grid.width, out_channels)
    blocks = list(_grid_blocks(geometry, grid, per_block))

    def block(index: int) -> None:
        start, count, pieces = blocks[index]
        accumulator = None if direct else _scratch("accumulator", size, x.dtype)
        product = _scratch("product", size, x.dtype) if len(grid.taps) > 1 else None
        total = flat_out[start : start + count] if direct else accumulator[:count]
        for t, (phase, offset) in enumerate(grid.taps):
            rows = images[phase][start + offset : start + offset + count]
            if t == 0:
                _grouped_matmul(rows, matrices[t], total, groups)
            else:
                _grouped_matmul(rows, matrices[t], product[:count], groups)
                total += product[:count]
        if not direct:
            _scatter(out, accumulator, pieces, grid.width)

    _for_each_block(block, len(blocks))
    return out


def _pad_scratch(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``x`` zero-padded into a scratch buffer (``x`` itself when there is no padding)."""
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return x
    batch, height, width, channels = x.shape
    padded = _scratch(
        "padded", (batch, height + top + bottom, width + left + right, channels), x.dtype
    )
    padded[:, :top] = 0
    padded[:, top + height :] = 0
    padded[:, top : top + height, :left] = 0
    padded[:, top : top + height, left + width :] = 0
    _copyto(padded[:, top : top + height, left : left + width], x)
    return padded


def _row_spans(geometry: Geometry, row_bytes: int, budget: int) -> list[tuple[int, int, int, int]]:
    """Blocks of output rows ``(n0, n1, i0, i1)`` whose columns fit in ``budget`` bytes.

    Whole images when one fits, else rows of one image; either way the
    block's outputs are one contiguous slice of the output.
    """
    batch, out_h = geometry.batch, geometry.out_height
    rows = max(1, budget // max(row_bytes, 1))
    if rows >= out_h:
        images = min(batch, rows // out_h)
        return [(n, min(batch, n + images), 0, out_h) for n in range(0, batch, images)]
    return [
        (n, n + 1, i, min(out_h, i + rows)) for n in range(batch) for i in range(0, out_h, rows)
    ]


def _nhwc_columns(x: np.ndarray, geometry: Geometry):
    """im2col in blocks: ``(spans, fill)``, ``fill(span)`` giving ``(groups, positions, terms)``.

    ``spans`` are blocks of output rows (:func:`_row_spans`); the terms of a
    row are in the filter's ``(kh, kw, depth)`` order. ``fill`` copies a block
    from the window view into the calling thread's scratch buffer of
    :func:`_block_bytes` (at least one output row).
    """
    batch, out_h, out_w, _ = geometry.output_shape
    groups, depth = geometry.groups, geometry.in_depth
    kh, kw = geometry.kernel_height, geometry.kernel_width
    terms = kh * kw * depth
    view = _windows(x, geometry, _pad_scratch(x, geometry))
    view = view.reshape(batch, out_h, out_w, groups, depth, kh, kw)
    view = view.transpose(3, 0, 1, 2, 5, 6, 4)  # (groups, n, i, j, kh, kw, depth)
    row_bytes = groups * out_w * terms * x.itemsize
    per_position = row_bytes // out_w
    spans = _row_spans(geometry, row_bytes, _block_bytes(geometry, x.itemsize, per_position))
    n0, n1, i0, i1 = spans[0]
    size = (groups, (n1 - n0) * (i1 - i0) * out_w * terms)

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, i0, i1 = span
        source = view[:, n0:n1, i0:i1]
        columns = _scratch("columns", size, x.dtype)[:, : source[0].size].reshape(source.shape)
        np.copyto(columns, source)
        return columns.reshape(groups, -1, terms)

    return spans, fill


def _im2col_blocked(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """im2col a block of output rows at a time, into a buffer no larger than the output.

    The same windows and the same product as ``"im2col"``, but the column
    matrix is never whole: blocks of output rows (or of whole images) are
    copied into one reused buffer, small enough to stay in cache (at most
    :data:`BLOCK_BYTES`, and no more than the output), and multiplied straight
    into their place in the output.
    """
    groups, out_channels = geometry.groups, geometry.out_channels
    per_group = out_channels // groups
    matrix = w.reshape(-1, groups, per_group).transpose(1, 0, 2)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    spans, fill = _nhwc_columns(x, geometry)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        target = out[n0:n1, i0:i1].reshape(-1, groups, per_group).transpose(1, 0, 2)
        np.matmul(fill(spans[index]), matrix, out=target)

    _for_each_block(block, len(spans))
    return out


def _planar_order(geometry: Geometry, grid: _Grid) -> np.ndarray:
    """Term ``order[r]`` (``tap·depth + channel``) is row ``r`` of a planar column block."""
    depth = geometry.in_depth
    return np.array(
        [t * depth + c for *_, taps in grid.lattices for c in range(depth) for t in taps],
        dtype=np.intp,
    )


def _planar_columns(x: np.ndarray, geometry: Geometry, grid: _Grid):
    """Transposed im2col in blocks: ``(spans, fill)``, ``fill(span)`` giving
    ``(groups, terms, positions)``.

    Row ``r`` of a block holds term ``_planar_order(...)[r]``. The input is
    first copied into channel-first stride phases (``(C, N, height, width)``,
    :class:`_Grid`); there the values of one ``(channel, tap)`` pair for a
    block of outputs form a view whose innermost axis, along an output row,
    is contiguous, so each phase's rows are filled by one copy with long runs.
    """
    planes = [_phase_image(x, geometry, grid, phase, planar=True) for phase in grid.phases]
    out_w, groups, depth = geometry.out_width, geometry.groups, geometry.in_depth
    terms = geometry.terms
    row_bytes = groups * terms * out_w * x.itemsize
    per_position = row_bytes // out_w
    spans = _row_spans(geometry, row_bytes, _block_bytes(geometry, x.itemsize, per_position))
    n0, n1, i0, i1 = spans[0]
    size = (groups, terms, (n1 - n0) * (i1 - i0) * out_w)

    def fill(span: tuple[int, int, int, int]) -> np.ndarray:
        n0, n1, i0, i1 = span
        block = _scratch("columns", size, x.dtype)[:, :, : (n1 - n0) * (i1 - i0) * out_w]
        row = 0
        for plane, (offset, n_a, step_a, n_b, step_b, taps) in zip(
            planes, grid.lattices, strict=True
        ):
            s_c, s_p = plane.strides
            first = (n0 * grid.height + i0) * grid.width + offset
            view = as_strided(
                plane[:, first:],
                (groups, depth, n_a, n_b, n1 - n0, i1 - i0, out_w),
                (
                    depth * s_c,
                    s_c,
                    step_a * s_p,
                    step_b * s_p,
                    grid.positions * s_p,
                    grid.width * s_p,
                    s_p,
                ),
                writeable=False,
            )
            size_rows = depth * len(taps)
            np.copyto(block[:, row : row + size_rows].reshape(view.shape), view)
            row += size_rows
        return block

    return spans, fill


def _planar(x: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """im2col from a channel-first copy of the input, for few channels per group.

    Where an NHWC im2col copies runs of only ``kw·depth`` values, the column
    blocks here are built *transposed*, one row per ``(channel, tap)``, each
    filled by long contiguous runs along the output rows
    (:func:`_planar_columns`); the product (the block transposed, times the
    filters) is written straight into the output.
    """
    grid = _grid(geometry)
    groups, out_channels = geometry.groups, geometry.out_channels
    per_group = out_channels // groups
    matrix = w.reshape(-1, groups, per_group)[_planar_order(geometry, grid)].transpose(1, 0, 2)
    out = np.empty(geometry.output_shape, dtype=x.dtype)
    spans, fill = _planar_columns(x, geometry, grid)

    def block(index: int) -> None:
        n0, n1, i0, i1 = spans[index]
        target = out[n0:n1, i0:i1].reshape(-1, groups, per_group).transpose(1, 0, 2)
        np.matmul(fill(spans[index]).transpose(0, 2, 1), matrix, out=target)

    _for_each_block(block, len(spans))
    return out


def _input_gradient_phases(dy: np.ndarray, w: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The input gradient as one stride-1 convolution per stride phase: no zeros inserted.

    Padded input row ``r`` receives ``dy[i] · w[a]`` wherever ``i·sh + a·dh = r``,
    so only the taps with ``a·dh ≡ r (mod sh)`` reach the rows of one phase, each
    shifted by ``(a·dh) // sh``: per phase, a convolution of ``dy`` (zero-padded)
    with those taps turned by 180°, their channels swapped, at stride 1 and a
    smaller dilation, computed by ``auto``. Returns the unpadded NHWC gradient.
    """
    (top, bottom), (left, right) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    kh, kw = geometry.kernel_height, geometry.kernel_width
    groups, depth = geometry.groups, geometry.in_depth
    per_group = geometry.out_channels // groups
    batch, out_h, out_w, out_channels = geometry.output_shape
    padded_h = geometry.in_height + top + bottom
    padded_w = geometry.in_width + left + right
    # Each tap's matrix with its channels swapped within each group: (kh, kw, per group, C).
    swapped = w.reshape(kh, kw, depth, groups, per_group).transpose(0, 1, 4, 3, 2)
    swapped = swapped.reshape(kh, kw, per_group, geometry.in_channels)
    dx = np.zeros((batch, padded_h, padded_w, geometry.in_channels), dtype=dy.dtype)
    for pa in range(min(sh, padded_h)):
        rows = [a for a in range(kh) if (a * dh) % sh == pa]
        qa = [(a * dh) // sh for a in rows]
        height = -(-(padded_h - pa) // sh)
        for pb in range(min(sw, padded_w)):
            cols = [b for b in range(kw) if (b * dw) % sw == pb]
            qb = [(b * dw) // sw for b in cols]
            width = -(-(padded_w - pb) // sw)
            if not rows or not cols:
                continue  # no tap reads these pixels: their gradient is zero
            kernel = np.ascontiguousarray(swapped[rows][:, cols][::-1, ::-1])
            inner = Geometry(
                batch=batch,
                in_height=out_h,
                in_width=out_w,
                in_channels=out_channels,
                kernel_height=len(rows),
                kernel_width=len(cols),
                in_depth=per_group,
                out_channels=geometry.in_channels,
                groups=groups,
                strides=(1, 1),
                dilations=(
                    qa[1] - qa[0] if len(qa) > 1 else 1,
                    qb[1] - qb[0] if len(qb) > 1 else 1,
                ),
                pads=((qa[-1], height - qa[0] - out_h), (qb[-1], width - qb[0] - out_w)),
                out_height=height,
                out_width=width,
            )
            dx[:, pa::sh, pb::sw] = _forward(dy, kernel, inner, "auto")
    return dx[:, top : top + geometry.in_height, left : left + geometry.in_width]


def _filter_gradient_blocked(x: np.ndarray, dy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The filter gradient as ``columnsᵀ @ dy``, on the column blocks ``auto``'s strategy builds.

    Each weight's gradient sums one product per output position, so it is the
    product of the transposed im2col matrix with the output gradient; it is
    accumulated block by block over the same column blocks as the forward
    pass (channel-first ones where ``auto`` would choose ``"planar"``).
    Returns ``(kh, kw, depth, out_channels)``.
    """
    groups, depth = geometry.groups, geometry.in_depth
    per_group = geometry.out_channels // groups
    terms = geometry.terms
    planar = choose_method(geometry) == "planar"
    if planar:
        grid = _grid(geometry)
        spans, fill = _planar_columns(x, geometry, grid)
    else:
        spans, fill = _nhwc_columns(x, geometry)
    # One partial sum per thread, over a fixed range of blocks, added in order: the
    # result depends on the number of threads, not on their timing.
    ranges = _split(len(spans), _block_threads(len(spans)))
    partial = np.zeros((len(ranges), groups, terms, per_group), dtype=x.dtype)

    def accumulate(index: int) -> None:
        product = np.empty_like(partial[index])
        for span in spans[slice(*ranges[index])]:
            n0, n1, i0, i1 = span
            gradient = dy[n0:n1, i0:i1].reshape(-1, groups, per_group).transpose(1, 0, 2)
            columns = fill(span)
            rows = columns if planar else columns.transpose(0, 2, 1)  # (groups, terms, positions)
            np.matmul(rows, gradient, out=product)
            partial[index] += product

    _for_each_block(accumulate, len(ranges))
    total = partial.sum(axis=0)
    if planar:
        ordered = np.empty_like(total)
        ordered[:, _planar_order(geometry, grid)] = total
        total = ordered
    return total.transpose(1, 0, 2).reshape(
        geometry.kernel_height, geometry.kernel_width, depth, geometry.out_channels
    )


#: The implementations by name; each takes ``(x_nhwc, filters, geometry)``.
STRATEGIES: dict[str, Strategy] = {
    "loops": _loops,
    "windows": _windows_einsum,
    "im2col": _im2col,
    "im2col_blocked": _im2col_blocked,
    "taps": _taps,
    "planar": _planar,
}

#: The values ``method`` accepts.
METHODS = ("auto", *STRATEGIES)


#: ``auto`` sends convolutions with at most this many input channels per group
#: to ``"planar"``.
PLANAR_MAX_DEPTH = 8


def choose_method(geometry: Geometry) -> str:
    """Return the strategy ``method="auto"`` uses for this geometry.

    The rule comes from timing every strategy on the layer shapes of
    ``benchmarks/conv_speed.py`` on the machine that built the book (2 cores,
    OpenBLAS): on the shapes of each kind, the strategy named was the fastest
    or within noise of it, and the others lost clearly somewhere.

    - a 1×1 kernel: ``"taps"``, which is then a single matrix product per
      group, read in place when there is no stride;
    - at most :data:`PLANAR_MAX_DEPTH` input channels per group (a first
      layer on grey or colour images, a grouped convolution with narrow
      groups): ``"planar"``, whose column copies run along image rows instead
      of along the few channels;
    - anything else: ``"im2col_blocked"``, one large matrix product per block
      of output rows (a cache-sized column buffer, no larger than the output
      unless that would leave too few rows for an efficient product).

    Examples
    --------
    >>> choose_method(conv_geometry((8, 56, 56, 64), (1, 1, 64, 256), 1, "VALID"))
    'taps'
    >>> choose_method(conv_geometry((64, 28, 28, 1), (5, 5, 1, 32), 1, "SAME"))
    'planar'
    >>> choose_method(conv_geometry((8, 56, 56, 64), (3, 3, 64, 64), 1, "SAME"))
    'im2col_blocked'
    """
    if geometry.kernel_height * geometry.kernel_width == 1:
        return "taps"
    if geometry.in_depth <= PLANAR_MAX_DEPTH:
        return "planar"
    return "im2col_blocked"


def _forward(x: np.ndarray, w: np.ndarray, geometry: Geometry, method: str) -> np.ndarray:
    """NHWC forward in the computation dtype; handles empty outputs."""
    if geometry.is_empty:
        return np.zeros(geometry.output_shape, dtype=x.dtype)
    name = choose_method(geometry) if method == "auto" else method
    return STRATEGIES[name](x, w, geometry)


def _finish(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.name == "int32":
        return result.astype(np.int32)  # wraps modulo 2**32, as int32 arithmetic does
    return result.astype(dtype, copy=False)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def conv2d(
    input: np.ndarray,
    filters: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Compute a 2-D convolution exactly as :func:`tf.nn.conv2d` defines it.

    Like TensorFlow, this is a cross-correlation (the filter is not flipped):
    ``out[n, i, j, k] = Σ_{a, b, c} xp[n, i·sh + a·dh, j·sw + b·dw, g·D + c] ·
    filters[a, b, c, k]`` with ``xp`` the zero-padded input, ``D`` the
    filter's in-depth and ``g = k // (out_channels / groups)`` the group of
    output channel ``k``.

    Parameters
    ----------
    input : array_like
        Rank 4, in ``data_format`` order; float16, bfloat16, float32, float64
        or int32.
    filters : array_like
        ``(kernel_height, kernel_width, in_depth, out_channels)``, converted to
        ``input``'s dtype. The input's channels must be a multiple of
        ``in_depth`` (``channels / in_depth`` groups) and ``out_channels`` a
        multiple of the groups.
    strides : int or sequence of 1, 2 or 4 ints
        As for :func:`tf.nn.conv2d`; four entries are in ``data_format`` order
        with 1 on the batch and channel dimensions.
    padding : "SAME", "VALID", or a list of 4 ``[before, after]`` pairs
        Explicit pairs are in ``data_format`` order, ``[0, 0]`` on batch and
        channels. ``SAME`` puts the odd zero at the bottom/right.
    data_format : {"NHWC", "NCHW"}
    dilations : int, sequence of 1, 2 or 4 ints, or None
        Same forms as ``strides``; ``None`` means 1.
    method : {"auto", "loops", "windows", "im2col"}, keyword-only
        The implementation (see the module's docstring).

    Returns
    -------
    ndarray
        In ``data_format`` order, of ``input``'s dtype. Empty batches and
        kernels larger than the input under ``VALID`` give empty results, as
        in TensorFlow's reference kernel.

    Raises
    ------
    ValueError
        Naming the argument, the value and what was expected, wherever
        TensorFlow's reference kernel rejects the call.

    Examples
    --------
    A 2×2 sum over ``1..9`` with ``SAME`` padding: TensorFlow pads the odd
    row and column at the bottom and right.

    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> conv2d(x, np.ones((2, 2, 1, 1)), 1, "SAME")[0, :, :, 0]
    array([[12., 16.,  9.],
           [24., 28., 15.],
           [15., 17.,  9.]])
    >>> conv2d(x.astype(np.float32), np.ones((3, 3, 1, 4)), 2, "VALID").shape
    (1, 1, 1, 4)
    """
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    x = _as_array(input, "input")
    _check_rank(x, "input", f"in {data_format} order")
    _check_dtype(x, "input")
    w = _as_array(filters, "filters")
    _check_rank(w, "filters", "(kernel_height, kernel_width, in_depth, out_channels)")
    w = _convert(w, x.dtype, "filters")
    geometry = _geometry(x.shape, w.shape, strides, padding, data_format, dilations)
    compute = _compute_dtype(x.dtype)
    out = _forward(
        _to_nhwc(x, data_format).astype(compute, copy=False),
        w.astype(compute, copy=False),
        geometry,
        method,
    )
    return _from_nhwc(_finish(out, x.dtype), data_format)


def conv2d_backprop_input(
    input_sizes: Sequence[int],
    filters: np.ndarray,
    out_backprop: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its input, given the output's gradient.

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_input`
    (and the input gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts.
    It is itself a convolution: ``out_backprop``, spread out by the strides
    (zeros between its rows and columns) and padded by ``(k − 1)·d`` zeros
    on each side, is convolved with the filters turned by 180° and with
    their in/out channels swapped, at stride 1 and the same dilations; the
    forward padding is then cut off. That is what a named ``method`` computes;
    ``"auto"`` skips the inserted zeros by splitting the result into its
    stride phases, each a stride-1 convolution of ``out_backprop`` with the
    taps that reach it.

    Parameters
    ----------
    input_sizes : sequence of 4 ints
        The forward input's full shape, in ``data_format`` order.
    filters : array_like
        As for :func:`conv2d`; its dtype is the result's.
    out_backprop : array_like
        The gradient of the forward output, of the shape :func:`conv2d` gives
        for ``input_sizes``; converted to ``filters``' dtype.
    strides, padding, data_format, dilations, method
        As for :func:`conv2d`.

    Returns
    -------
    ndarray
        Of shape ``input_sizes``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` would reject, malformed
        ``input_sizes``, or an ``out_backprop`` of the wrong shape.

    Examples
    --------
    With an all-ones gradient, each input pixel collects one term per
    window that covers it; under ``SAME``, the bottom/right padding means
    the first row and column are covered only once:

    >>> dx = conv2d_backprop_input((1, 3, 3, 1), np.ones((2, 2, 1, 1)),
    ...                            np.ones((1, 3, 3, 1)), 1, "SAME")
    >>> dx[0, :, :, 0]
    array([[1., 2., 2.],
           [2., 4., 4.],
           [2., 4., 4.]])
    """
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    sizes = _shape_argument(input_sizes, "input_sizes", f"the input's shape in {data_format} order")
    w = _as_array(filters, "filters")
    _check_rank(w, "filters", "(kernel_height, kernel_width, in_depth, out_channels)")
    _check_dtype(w, "filters")
    dy = _as_array(out_backprop, "out_backprop")
    _check_rank(dy, "out_backprop", f"in {data_format} order")
    dy = _convert(dy, w.dtype, "out_backprop")
    geometry = _geometry(sizes, w.shape, strides, padding, data_format, dilations)
    expected = tfpad.conv_output_shape(sizes, w.shape, strides, padding, data_format, dilations)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input_sizes "
            f"{sizes}), got {dy.shape}"
        )
    compute = _compute_dtype(w.dtype)
    nhwc = (geometry.batch, geometry.in_height, geometry.in_width, geometry.in_channels)
    if geometry.is_empty or 0 in nhwc:
        return np.zeros(sizes, dtype=w.dtype)
    dy = _to_nhwc(dy, data_format).astype(compute, copy=False)
    if method == "auto":
        dx = _input_gradient_phases(dy, w.astype(compute, copy=False), geometry)
        return _from_nhwc(np.ascontiguousarray(_finish(dx, w.dtype)), data_format)
    g = geometry.groups
    kh, kw, cin, cout = (
        geometry.kernel_height,
        geometry.kernel_width,
        geometry.in_depth,
        (geometry.out_channels // g),
    )
    (top, bottom), (left, right) = geometry.pads
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    padded_h = geometry.in_height + top + bottom
    padded_w = geometry.in_width + left + right
    # out_backprop spread out by the strides, with (k - 1)·d zeros before each axis.
    spread = np.zeros(
        (geometry.batch, padded_h + (kh - 1) * dh, padded_w + (kw - 1) * dw, geometry.out_channels),
        dtype=compute,
    )
    first_h, first_w = (kh - 1) * dh, (kw - 1) * dw
    spread[
        :,
        first_h : first_h + (geometry.out_height - 1) * sh + 1 : sh,
        first_w : first_w + (geometry.out_width - 1) * sw + 1 : sw,
    ] = dy
    # Filters turned by 180°, in/out swapped within each group.
    turned = w.astype(compute, copy=False)[::-1, ::-1].reshape(kh, kw, cin, g, cout)
    turned = turned.transpose(0, 1, 4, 3, 2).reshape(kh, kw, cout, g * cin)
    inner = Geometry(
        batch=geometry.batch,
        in_height=spread.shape[1],
        in_width=spread.shape[2],
        in_channels=geometry.out_channels,
        kernel_height=kh,
        kernel_width=kw,
        in_depth=cout,
        out_channels=geometry.in_channels,
        groups=g,
        strides=(1, 1),
        dilations=(dh, dw),
        pads=((0, 0), (0, 0)),
        out_height=padded_h,
        out_width=padded_w,
    )
    full = _forward(spread, turned, inner, method)
    dx = full[:, top : top + geometry.in_height, left : left + geometry.in_width]
    return _from_nhwc(np.ascontiguousarray(_finish(dx, w.dtype)), data_format)


def conv2d_backprop_filter(
    input: np.ndarray,
    filter_sizes: Sequence[int],
    out_backprop: np.ndarray,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    *,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its filters, given the output's gradient.

    The same computation as :func:`tf.compat.v1.nn.conv2d_backprop_filter`
    (and the filter gradient ``tf.GradientTape`` returns), accepting
    ``strides`` and ``dilations`` in the forms :func:`conv2d` accepts. It is
    a convolution of the padded input with ``out_backprop`` as the kernel,
    batch and channels exchanged: the forward *dilations* become its strides
    and the forward *strides* its dilations; every weight sums
    ``batch·out_height·out_width`` products. A named ``method`` computes that
    convolution with that strategy; ``"auto"`` computes the same sums as the
    transposed column matrix times ``out_backprop``, accumulated over the
    column blocks of the strategy :func:`choose_method` picks for the forward
    pass (that convolution's huge kernel and tiny output suit no strategy).

    Parameters
    ----------
    input : array_like
        The forward input, as for :func:`conv2d` but not int32 (TensorFlow has no
        integer filter gradient); its dtype is the result's.
    filter_sizes : sequence of 4 ints
        The filters' full shape ``(kernel_height, kernel_width, in_depth,
        out_channels)``.
    out_backprop : array_like
        The gradient of the forward output, of the shape :func:`conv2d` gives;
        converted to ``input``'s dtype.
    strides, padding, data_format, dilations, method
        As for :func:`conv2d`.

    Returns
    -------
    ndarray
        Of shape ``filter_sizes``.

    Raises
    ------
    ValueError
        For any argument :func:`conv2d` would reject, malformed
        ``filter_sizes``, or an ``out_backprop`` of the wrong shape.

    Examples
    --------
    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> dw = conv2d_backprop_filter(x, (2, 2, 1, 1), np.ones((1, 3, 3, 1)), 1, "SAME")
    >>> dw[:, :, 0, 0]            # sums of x over the shifted windows
    array([[45., 33.],
           [39., 28.]])
    """
    data_format = tfpad.normalize_data_format(data_format)
    method = _check_method(method)
    x = _as_array(input, "input")
    _check_rank(x, "input", f"in {data_format} order")
    _check_dtype(x, "input", _FILTER_GRADIENT_DTYPES, "conv2d_backprop_filter")
    sizes = _shape_argument(
        filter_sizes, "filter_sizes", "(kernel_height, kernel_width, in_depth, out_channels)"
    )
    dy = _as_array(out_backprop, "out_backprop")
    _check_rank(dy, "out_backprop", f"in {data_format} order")
    dy = _convert(dy, x.dtype, "out_backprop")
    geometry = _geometry(x.shape, sizes, strides, padding, data_format, dilations)
    expected = tfpad.conv_output_shape(x.shape, sizes, strides, padding, data_format, dilations)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop: expected shape {expected} (the conv2d output for input shape "
            f"{x.shape}), got {dy.shape}"
        )
    if geometry.is_empty:
        return np.zeros(sizes, dtype=x.dtype)
    compute = _compute_dtype(x.dtype)
    if method == "auto":
        x_nhwc = _to_nhwc(x, data_format).astype(compute, copy=False)
        dy_nhwc = _to_nhwc(dy, data_format).astype(compute, copy=False)
        return _finish(_filter_gradient_blocked(x_nhwc, dy_nhwc, geometry), x.dtype)
    g = geometry.groups
    kh, kw, cin, cout = sizes[0], sizes[1], sizes[2], geometry.out_channels // g
    (sh, sw), (dh, dw) = geometry.strides, geometry.dilations
    ho, wo = geometry.out_height, geometry.out_width
    # Only the rows and columns some window reaches.
    rows = (ho - 1) * sh + (kh - 1) * dh + 1
    cols = (wo - 1) * sw + (kw - 1) * dw + 1
    padded = _pad(_to_nhwc(x, data_format).astype(compute, copy=False), geometry)
    padded = padded[:, :rows, :cols]
    dy = _to_nhwc(dy, data_format).astype(compute, copy=False)
    inner = Geometry(
        batch=cin,
        in_height=rows,
        in_width=cols,
        in_channels=geometry.batch,
        kernel_height=ho,
        kernel_width=wo,
        in_depth=geometry.batch,
        out_channels=cout,
        groups=1,
        strides=(dh, dw),
        dilations=(sh, sw),
        pads=((0, 0), (0, 0)),
        out_height=kh,
        out_width=kw,
    )
    blocks = []
    for group in range(g):
        # Batch and channels exchanged: the group's channels become the batch.
        images = padded[..., group * cin : (group + 1) * cin].transpose(3, 1, 2, 0)
        kernel = dy[..., group * cout : (group + 1) * cout].transpose(1, 2, 0, 3)
        blocks.append(_forward(images, kernel, inner, method).transpose(1, 2, 0, 3))
    return _finish(np.concatenate(blocks, axis=3), x.dtype)
