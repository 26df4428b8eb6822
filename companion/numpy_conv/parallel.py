"""Threads, scratch memory and BLAS's thread count for the fast strategies.

The blocked strategies (:mod:`companion.numpy_conv.blocked`) and the gradients
work in blocks no larger than :func:`block_budget`; :func:`for_each_block`
spreads the blocks over several threads while NumPy's BLAS is held to one
thread (:func:`single_threaded_blas`, with threadpoolctl), and :func:`scratch`
keeps their buffers from call to call. The knobs are public and validated:
:func:`settings` changes them for a ``with`` block, :func:`clear_workspace`
frees the buffers.

Each block is computed the same way whichever thread takes it, every
reduction over blocks runs in an order fixed by the shape alone, and BLAS never
splits a product among its threads, so results do not depend on the number of
CPUs, threads or BLAS threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from companion import arguments
from companion.arithmetic import Geometry

# The public settings; the other functions serve the package's strategies.
__all__ = ["MIN_BLOCK_POSITIONS", "Settings", "clear_workspace", "get_settings", "settings"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The fast strategies' knobs; read them with :func:`get_settings`.

    Attributes
    ----------
    threads : int or None
        Threads for the copies and the blocks (NumPy releases the GIL while it
        copies and multiplies); ``None``: one per core this process may use.
        Blocks also use no more threads than BLAS would.
    block_bytes : int
        Scratch bytes a blocked strategy aims at per block (a block of
        columns, an accumulator): small enough to stay in a CPU's cache (L2
        here, or nearly), large enough for an efficient matrix product; the
        block sizes between 1 and 4 MiB ran equally fast on the machine that
        built the book, 16 MiB slower.
    workspace_bytes : int
        The most scratch memory kept between calls, per thread.
    parallel_copy_bytes : int
        Copies smaller than this stay in the calling thread: handing work to
        another thread took 20-60 µs on the machine that built the book, as
        long as copying 0.5-1 MiB. With 1 MiB rather than 256 KiB, CIFAR's
        first layer ran 1.06 -> 1.00 ms and a 7×7 kernel at batch 1 0.93 ->
        0.88 ms at two threads; with 4 MiB, a grouped layer lost 11 %.
    """

    threads: int | None = None
    block_bytes: int = 2 << 20
    workspace_bytes: int = 64 << 20
    parallel_copy_bytes: int = 1 << 20


_settings = Settings()
_settings_lock = threading.Lock()
#: The changes of the ``with settings(...)`` blocks in force, oldest first.
_layers: list[tuple[object, dict]] = []


def get_settings() -> Settings:
    """Return the settings in force.

    Used in chapter 5.

    Examples
    --------
    >>> get_settings().block_bytes
    2097152
    """
    return _settings


@contextlib.contextmanager
def settings(
    *,
    threads: int | object | None = ...,
    block_bytes: int | object = ...,
    workspace_bytes: int | object = ...,
    parallel_copy_bytes: int | object = ...,
) -> Iterator[Settings]:
    """Change the fast strategies' settings for the duration of a ``with`` block.

    Used in chapter 5. The settings are process-wide (the strategies' worker
    threads read them). Blocks may nest or overlap, also from several
    threads: each block's changes stay in force until it exits, later blocks
    winning, and when the last one exits the defaults are back. ``threads``,
    ``workspace_bytes`` and ``parallel_copy_bytes`` change speed and memory,
    never results; ``block_bytes`` also regroups the sums of the filter
    gradient (``"auto"``), and so may change its last bits.

    Parameters
    ----------
    threads : int >= 1 or None, optional
        See :class:`Settings`; an argument left out keeps its value.
    block_bytes : int >= 1, optional
    workspace_bytes : int >= 0, optional
    parallel_copy_bytes : int >= 0, optional

    Raises
    ------
    ValueError
        Naming the setting, for a value that is not an int in range.

    Examples
    --------
    >>> with settings(threads=1, block_bytes=4096) as current:
    ...     current.threads, get_settings().block_bytes
    (1, 4096)
    >>> get_settings().threads is None
    True
    """
    global _settings
    changes = {}
    if threads is not ...:
        changes["threads"] = (
            None if threads is None else arguments.integer(threads, "threads", minimum=1)
        )
    for name, value, minimum in (
        ("block_bytes", block_bytes, 1),
        ("workspace_bytes", workspace_bytes, 0),
        ("parallel_copy_bytes", parallel_copy_bytes, 0),
    ):
        if value is not ...:
            changes[name] = arguments.integer(value, name, minimum=minimum)
    token = object()
    with _settings_lock:
        _layers.append((token, changes))
        _settings = _merged()
        current = _settings
    try:
        yield current
    finally:
        with _settings_lock:
            _layers[:] = [layer for layer in _layers if layer[0] is not token]
            _settings = _merged()


def _merged() -> Settings:
    """The defaults with every block's changes applied, oldest first."""
    merged: dict = {}
    for _, changes in _layers:
        merged.update(changes)
    return Settings(**merged)


#: Blocks are also held to the output's size, so that a small layer's scratch
#: stays near its output (peak memory about input + 2 × output), unless that
#: would leave fewer than this many output positions per matrix product, whose
#: speed falls off quickly for fewer rows.
MIN_BLOCK_POSITIONS = 512

#: Work is cut into at least this many blocks, so that the threads share it
#: evenly (one block per thread leaves a core idle on a small layer, five
#: blocks on two threads one core idle a fifth of the time), unless that leaves
#: less than :data:`MIN_SPLIT_BYTES` of scratch per block. A fixed number,
#: not the thread count: how a result is cut into blocks never depends on the
#: threads.
MIN_BLOCKS = 8

#: The least scratch per block that :data:`MIN_BLOCKS` may leave: below about a
#: megabyte, the Python work around each block's copies and product, which holds
#: the interpreter's lock, kept two threads slower than one on the machine that
#: built the book.
MIN_SPLIT_BYTES = 1 << 20


def block_budget(
    geometry: Geometry, itemsize: int, per_position: int, min_split: int = MIN_SPLIT_BYTES
) -> int:
    """Scratch bytes per block, for ``per_position`` bytes of scratch per output position.

    ``Settings.block_bytes`` at most; no more than the output's size, unless
    that leaves fewer than :data:`MIN_BLOCK_POSITIONS` positions; and no more
    than a :data:`MIN_BLOCKS`-th of the output positions, unless that leaves
    less than ``min_split`` bytes per block (:data:`MIN_SPLIT_BYTES` unless a
    strategy's blocks do less work in Python).

    Examples
    --------
    >>> from companion.arithmetic import conv_geometry
    >>> block_budget(conv_geometry((1, 8, 8, 1), (3, 3, 1, 1), 1, "SAME"), 4, 36)
    18432
    >>> block_budget(conv_geometry((1, 14, 14, 256), (3, 3, 256, 256), 1, "SAME"), 4, 9216)
    1048576
    """
    output = math.prod(geometry.output_shape) * itemsize
    budget = min(_settings.block_bytes, max(output, MIN_BLOCK_POSITIONS * per_position))
    positions = geometry.batch * geometry.out_height * geometry.out_width
    even = max(-(-positions // MIN_BLOCKS) * per_position, min_split)
    return min(budget, even)


#: A matrix product cut by output channels (:func:`channel_pieces`) keeps at least this
#: many in each piece.
WIDE_PIECE = 64


def channel_pieces(channels: int) -> list[tuple[int, int]]:
    """One product's output channels cut into pieces for the threads to share.

    At most :data:`MIN_BLOCKS` pieces of at least :data:`WIDE_PIECE` channels
    (one piece for fewer than twice that), fixed by the count alone. For a
    product with few rows (a layer at batch 1), cutting its columns costs far
    less than cutting its rows: on the machine that built the book, a
    196 × 256 by 256 × 1024 product took 1.08 ms whole, 1.14 ms in eight pieces
    of columns and 1.85 ms in eight pieces of rows.

    Examples
    --------
    >>> channel_pieces(256)
    [(0, 64), (64, 128), (128, 192), (192, 256)]
    >>> channel_pieces(100)
    [(0, 100)]
    """
    return split_evenly(channels, max(1, min(MIN_BLOCKS, channels // WIDE_PIECE)))


def row_spans(
    batch: int, height: int, row_bytes: int, budget: int
) -> list[tuple[int, int, int, int]]:
    """Blocks ``(n0, n1, i0, i1)`` of ``batch`` images of ``height`` rows, of ``row_bytes``
    each, ``budget`` per block.

    Whole images when one fits, else rows of one image; either way the
    block's rows are one contiguous slice of the images. The images, or an
    image's rows, are cut into as few blocks as the budget allows, of nearly
    equal sizes (:func:`split_evenly`).

    Examples
    --------
    >>> row_spans(1, 7, 10, 30)  # at most 3 rows a block: 3 blocks
    [(0, 1, 0, 2), (0, 1, 2, 4), (0, 1, 4, 7)]
    >>> row_spans(5, 6, 10, 120)
    [(0, 1, 0, 6), (1, 3, 0, 6), (3, 5, 0, 6)]
    """
    rows = max(1, budget // max(row_bytes, 1))
    if rows >= height:
        images = min(batch, rows // height)
        return [(n0, n1, 0, height) for n0, n1 in split_evenly(batch, -(-batch // images))]
    cuts = split_evenly(height, -(-height // rows))
    return [(n, n + 1, i0, i1) for n in range(batch) for i0, i1 in cuts]


_workspace = threading.local()


def scratch(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised scratch array, reused from call to call in this thread.

    Fresh large arrays cost page faults on first touch, and whether the
    allocator hands back recycled memory depends on what else the process did;
    reusing one buffer per role makes the strategies' speed depend on the
    shapes alone. At most ``Settings.workspace_bytes`` are kept per thread; a
    larger request gets a fresh array.

    Examples
    --------
    >>> scratch("example", (2, 3), np.float32).shape
    (2, 3)
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    limit = _settings.workspace_bytes
    if nbytes > limit:
        return np.empty(shape, dtype=dtype)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(role)
    if buffer is None or buffer.nbytes < nbytes:
        buffers.pop(role, None)
        if sum(b.nbytes for b in buffers.values()) + nbytes > limit:
            buffers.clear()
        buffer = buffers[role] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def clear_workspace() -> None:
    """Release this thread's scratch buffers (to measure memory from cold, or free it).

    Examples
    --------
    >>> clear_workspace()
    """
    _workspace.__dict__.pop("buffers", None)


_pool: dict[int, ThreadPoolExecutor] = {}
_block_pool: dict[int, ThreadPoolExecutor] = {}  # separate: blocks may wait for copies
_pool_lock = threading.Lock()


def copy_threads() -> int:
    """Threads for copies: ``Settings.threads``, else the cores this process may use."""
    if _settings.threads is not None:
        return _settings.threads
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without affinity


def run_parallel(tasks: list[Callable[[], object]], pools: dict | None = None) -> None:
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


def even_count(blocks: int) -> int:
    """``blocks`` rounded up to an even number (1 stays 1).

    Few blocks of equal size keep two threads (or four) busy to the end when
    their count is even: three leave one of two threads idle during the last
    block. MEC cuts the columns of a single image this way (the ResNet stem's
    112 columns into four blocks, not three). The count depends on the shape
    alone, never on the threads.

    Examples
    --------
    >>> even_count(1), even_count(3), even_count(8)
    (1, 4, 8)
    """
    return blocks + blocks % 2 if blocks > 1 else blocks


def split_evenly(length: int, parts: int) -> list[tuple[int, int]]:
    """``range(length)`` cut into ``parts`` nearly equal ``(start, stop)`` pieces.

    Examples
    --------
    >>> split_evenly(5, 2)
    [(0, 2), (2, 5)]
    """
    edges = [length * k // parts for k in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def copyto(target: np.ndarray, source: np.ndarray) -> None:
    """``target[...] = source``, split across :func:`copy_threads` threads.

    Matrix products use every core (BLAS threads); the copies that feed them
    would otherwise use one. The work is split along the first axis long
    enough.
    """
    threads = copy_threads()
    axis = next((a for a, n in enumerate(target.shape) if n >= threads), None)
    if threads == 1 or axis is None or target.nbytes < _settings.parallel_copy_bytes:
        np.copyto(target, source)
        return
    index = [slice(None)] * target.ndim
    tasks = []
    for start, stop in split_evenly(target.shape[axis], threads):
        index[axis] = slice(start, stop)
        part = tuple(index)
        tasks.append(lambda part=part: np.copyto(target[part], source[part]))
    run_parallel(tasks)


def copy_in_parallel(target_bytes: int) -> int:
    """Threads for a copy of ``target_bytes``: 1 below ``Settings.parallel_copy_bytes``."""
    return 1 if target_bytes < _settings.parallel_copy_bytes else copy_threads()


_blas_lock = threading.Lock()
_blas_state: dict[str, object] = {"libraries": None, "users": 0, "saved": []}


def blas_libraries() -> list:
    """NumPy's BLAS libraries, as threadpoolctl controllers (a required dependency)."""
    if _blas_state["libraries"] is None:
        found = ThreadpoolController().select(user_api="blas").lib_controllers
        _blas_state["libraries"] = list(found)
    return _blas_state["libraries"]


def block_threads(blocks: int) -> int:
    """How many threads may compute blocks at once: cores, BLAS's threads, the blocks."""
    libraries = blas_libraries()
    if not libraries or blocks < 2:
        return 1
    with _blas_lock:
        blas = max(_blas_state["saved"]) if _blas_state["users"] else None
    if blas is None:
        blas = max(library.num_threads for library in libraries)
    return max(1, min(blas, copy_threads(), blocks))


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold NumPy's BLAS to one thread while the ``with`` block runs (reentrant).

    Every public function of :mod:`companion.numpy_conv` runs inside it. A
    multi-threaded BLAS may split a long inner product among its threads (seen
    with OpenBLAS for products with a long inner dimension and few outputs, as
    in the filter gradient), and its result then depends on the thread count;
    one thread per product makes every result depend on the shapes alone, and
    the package spreads its own blocks over threads instead
    (:func:`for_each_block`). The setting is process-wide: BLAS calls that
    other threads make meanwhile run on one thread too. A BLAS that
    threadpoolctl cannot find (none seen with NumPy's wheels) keeps its
    threads, and then the guarantee rests on that BLAS.

    Examples
    --------
    >>> with single_threaded_blas():
    ...     pass
    """
    libraries = blas_libraries()
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["saved"] = [library.num_threads for library in libraries]
            for library in libraries:
                library.set_num_threads(1)
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                for library, count in zip(libraries, _blas_state["saved"], strict=True):
                    library.set_num_threads(count)


def for_each_block(function: Callable[[int], None], blocks: int) -> None:
    """Call ``function(0), …, function(blocks - 1)``, spread over several threads.

    A matrix product split among BLAS's threads waits for the slowest at every
    step, and the copies that feed it run on one core. Instead, BLAS is held
    to one thread (:func:`single_threaded_blas`) and :func:`block_threads`
    threads take blocks in turn, each copying and multiplying its own; a
    thread slowed by another process simply takes fewer blocks. Each block is
    computed the same way whichever thread takes it, so results do not depend
    on the scheduling nor on the number of threads.
    """
    threads = block_threads(blocks)
    with single_threaded_blas():
        if threads == 1:
            for index in range(blocks):
                function(index)
            return
        counter = itertools.count()
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    index = next(counter)
                if index >= blocks:
                    return
                function(index)

        run_parallel([work] * threads, _block_pool)


def sum_blocks(
    contribute: Callable[[int, np.ndarray], None], blocks: int, shape: tuple[int, ...], dtype
) -> np.ndarray:
    """``Σ_b contribute(b)`` over ``blocks`` blocks, in an order fixed by ``blocks`` alone.

    ``contribute(b, out)`` writes block ``b``'s term into ``out``. Block ``b``
    is added to partial sum ``b % lanes`` (``lanes = min(MIN_BLOCKS, blocks)``)
    in block order, and the partial sums are added in order at the end;
    threads (:func:`for_each_block`) take whole partial sums, so the result
    is the same bits on any number of threads, with no wait between blocks.

    Examples
    --------
    >>> sum_blocks(lambda b, out: out.fill(b), 10, (2,), np.float64)
    array([45., 45.])
    """
    lanes = min(MIN_BLOCKS, blocks)
    sums = np.empty((lanes, *shape), dtype=dtype)

    def lane(index: int) -> None:
        contribute(index, sums[index])
        for number in range(index + lanes, blocks, lanes):
            term = scratch("term", shape, dtype)
            contribute(number, term)
            sums[index] += term

    for_each_block(lane, lanes)
    total = sums[0]
    for partial in sums[1:]:
        total += partial
    return total
