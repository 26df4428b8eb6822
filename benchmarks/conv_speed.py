"""How fast is ``companion.numpy_conv`` beside ``tf.nn.conv2d``? A benchmark, not a test.

Run from the repository's root::

    python -m benchmarks.conv_speed                 # the whole suite (about a minute or two)
    python -m benchmarks.conv_speed --quick         # six shapes, fewer repeats
    python -m benchmarks.conv_speed --methods auto,im2col,taps --csv speed.csv --json speed.json
    python -m benchmarks.conv_speed --methods auto,products   # the matrix products alone too

What is measured
----------------
For every layer shape of :data:`SUITE` (float32, NHWC: 1×1, 3×3, 5×5 and 7×7
kernels, strides 1 and 2, ``SAME`` and ``VALID``, batches 1 to 64, 1 to 256
input channels, grouped convolutions), in one process:

- the inputs are materialised once, as NumPy arrays and as TensorFlow
  constants, and every function is called twice before timing (oneDNN builds
  its kernels on the first call);
- ``tf.nn.conv2d`` and each NumPy method are then timed *interleaved*, one call
  each per round, the order reversed every other round, for ``--repeats``
  rounds; a background job that slows the machine for a while slows both.
  Interleaving also means that each call finds its library's threads idle,
  as in a program that does other work between convolutions; one library
  timed alone, call after call, finds them still awake and can look faster
  (TensorFlow's small layers most: about a millisecond per call here);
- OpenBLAS's idle threads spin for about a tenth of a second after each
  product (its default ``OPENBLAS_THREAD_TIMEOUT``), and in one process they
  took a core from the TensorFlow call that followed, which then ran about
  half as fast. Unless ``--blas-spin`` is given or the variable is already
  set, the benchmark therefore restarts itself with
  ``OPENBLAS_THREAD_TIMEOUT=4`` (threads sleep at once; NumPy's own times did
  not change measurably);
- the table gives each function's **median** time, GFLOP/s computed from the
  direct sum's operation count ``2·N·Ho·Wo·K·kh·kw·Cin/groups`` (whatever the
  method really executes), and the **ratio**: the median, over rounds, of the
  NumPy time divided by TensorFlow's time *in the same round* (lower is
  better, 1 is parity);
- the summary gives the geometric mean and the worst ratio of ``auto``'s
  forward pass over the suite, and the same for both gradients
  (``conv2d_backprop_input`` against ``tf.raw_ops.Conv2DBackpropInput``,
  ``conv2d_backprop_filter`` against ``tf.raw_ops.Conv2DBackpropFilter``);
- ``--methods auto,products`` adds, for each operation, its matrix products
  alone (:func:`products_alone`: the same FLOPs in blocks of ``auto``'s size,
  operands already in the cache, no copies): what ``auto`` would take if
  building its column blocks cost nothing. Their ratio to TensorFlow tells
  apart the shapes where the copies cost the time from those where NumPy's
  BLAS itself is slower than TensorFlow's kernel;
- the memory table gives the peak of NumPy's allocations (traced by
  :mod:`tracemalloc`, from a cold start: the strategies' reusable scratch
  buffers are released first) during one forward call of ``auto`` and of
  ``im2col``, the output included, beside the input and output sizes.
  BLAS's own work buffers are not NumPy allocations and are not counted.

Machine dependence, honestly
----------------------------
Every number here belongs to one machine, one load and one set of libraries:

- NumPy's matrix products are those of the BLAS it was built with (the
  header names it, with its CPU kernel and thread count, via threadpoolctl);
  OpenBLAS picks a kernel for the CPU it detects (``OPENBLAS_CORETYPE``
  overrides that choice, ``OPENBLAS_L2_SIZE`` its cache-blocking assumption;
  the header shows them when set). A different BLAS (MKL, Accelerate, BLIS)
  or CPU moves every ratio.
- TensorFlow's CPU kernels are oneDNN's by default on x86
  (``TF_ENABLE_ONEDNN_OPTS=0`` selects the Eigen kernels, which are
  slower on most shapes: run the benchmark in both modes to see it); they are
  generated for the instruction set found at run time (AVX-512 here).
- Both libraries use every core they are given. On a shared machine another
  process's load comes and goes; the interleaved rounds and paired ratios
  resist slow drifts, not a busy neighbour during one call, so re-run and
  compare before trusting a single table (the header gives the load
  average). Absolute times and GFLOP/s vary far more from run to run than
  the ratios. A busy neighbour hurts NumPy more: a matrix product split
  among OpenBLAS's threads waits for the slowest, and the strategies that
  spread blocks over threads (``companion.numpy_conv.settings(threads=...)``) share out
  the blocks but not a single product. ``--threads 1`` compares both
  libraries on one thread each, which a neighbour disturbs far less.
- Which strategy ``auto`` picks (:func:`companion.numpy_conv.choose_method`)
  was tuned on the machine that built the book; on another machine another
  choice may be faster: ``--methods`` shows them side by side.

Nothing in the project's tests depends on these timings.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from companion import numpy_conv
from companion.arithmetic import Geometry, conv_geometry
from companion.numpy_conv import parallel
from companion.timing import paired_ratio, peak_memory, time_interleaved

__all__ = [
    "OPERATIONS",
    "QUICK",
    "SUITE",
    "Case",
    "Row",
    "geometric_mean",
    "machine_info",
    "main",
    "run",
    "summarize",
]

#: What is timed for each shape.
OPERATIONS = ("forward", "backprop_input", "backprop_filter")


@dataclass(frozen=True)
class Case:
    """One layer shape: an NHWC input, a filter, a stride and a padding (float32)."""

    name: str
    input_shape: tuple[int, int, int, int]
    filter_shape: tuple[int, int, int, int]
    strides: int
    padding: str
    note: str = ""

    @property
    def geometry(self) -> Geometry:
        return conv_geometry(self.input_shape, self.filter_shape, self.strides, self.padding)

    @property
    def flops(self) -> int:
        """``2·N·Ho·Wo·K·kh·kw·Cin/groups``."""
        return self.geometry.flops

    @property
    def shape(self) -> str:
        """``8x56x56x64 * 3x3x64x64 s1 SAME`` (and ``g32`` when grouped)."""
        x = "x".join(map(str, self.input_shape))
        w = "x".join(map(str, self.filter_shape))
        groups = self.geometry.groups
        grouped = f" g{groups}" if groups > 1 else ""
        return f"{x} * {w} s{self.strides} {self.padding}{grouped}"

    def arrays(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Input, filters and an output gradient: float32 normals, seeded."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape, dtype=np.float32)
        w = rng.standard_normal(self.filter_shape, dtype=np.float32)
        dy = rng.standard_normal(self.geometry.output_shape, dtype=np.float32)
        return x, w, dy


#: Layer shapes typical of small CNNs and ResNet-style blocks.
SUITE: tuple[Case, ...] = (
    Case("mnist-conv1", (64, 28, 28, 1), (3, 3, 1, 32), 1, "VALID", "one channel in"),
    Case("mnist-conv2", (64, 26, 26, 32), (3, 3, 32, 64), 1, "VALID", "Keras' MNIST example"),
    Case("deep-mnist-conv1", (64, 28, 28, 1), (5, 5, 1, 32), 1, "SAME", "5x5, one channel"),
    Case("deep-mnist-conv2", (64, 14, 14, 32), (5, 5, 32, 64), 1, "SAME", "5x5"),
    Case("lenet-conv1", (64, 32, 32, 1), (5, 5, 1, 6), 1, "VALID", "six filters"),
    Case("cifar-conv1", (32, 32, 32, 3), (3, 3, 3, 32), 1, "SAME", "three channels in"),
    Case("cifar-resnet-3x3", (64, 32, 32, 16), (3, 3, 16, 16), 1, "SAME", "ResNet-20 stage 1"),
    Case("resnet-stem", (1, 224, 224, 3), (7, 7, 3, 64), 2, "SAME", "7x7 stride 2, batch 1"),
    Case("large-kernel-b1", (1, 64, 64, 16), (7, 7, 16, 16), 1, "SAME", "7x7, batch 1"),
    Case("resnet-1x1", (8, 56, 56, 64), (1, 1, 64, 256), 1, "VALID", "bottleneck expansion"),
    Case("resnet-1x1-s2", (8, 56, 56, 256), (1, 1, 256, 512), 2, "VALID", "projection shortcut"),
    Case("resnet-3x3", (8, 56, 56, 64), (3, 3, 64, 64), 1, "SAME", "stage 1"),
    Case("resnet-3x3-s2", (8, 56, 56, 128), (3, 3, 128, 128), 2, "SAME", "downsampling"),
    Case("resnet-3x3-b1", (1, 14, 14, 256), (3, 3, 256, 256), 1, "SAME", "stage 3, batch 1"),
    Case("resnet-1x1-b1", (1, 14, 14, 256), (1, 1, 256, 1024), 1, "VALID", "stage 3, batch 1"),
    Case("inception-3x3-s2", (8, 35, 35, 96), (3, 3, 96, 96), 2, "VALID", "grid reduction"),
    Case("resnext-grouped", (8, 28, 28, 128), (3, 3, 4, 128), 1, "SAME", "32 groups of 4"),
)

#: The ``--quick`` subset: one of each kind.
QUICK = (
    "mnist-conv1",
    "deep-mnist-conv2",
    "resnet-stem",
    "resnet-1x1",
    "resnet-3x3-s2",
    "resnext-grouped",
)


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def geometric_mean(values: Iterable[float]) -> float:
    """``exp(mean(log(v)))``: the mean of ratios that treats 2× and ½× symmetrically.

    Examples
    --------
    >>> round(geometric_mean([0.5, 2.0, 1.0]), 12)
    1.0
    """
    values = list(values)
    if not values or min(values) <= 0:
        raise ValueError(f"values: expected positive ratios, got {values}")
    return math.exp(sum(math.log(v) for v in values) / len(values))


# --------------------------------------------------------------------------
# Backends: what the NumPy methods are compared with
# --------------------------------------------------------------------------


class TensorFlowReference:
    """``tf.nn.conv2d`` and its two gradient ops, on constants made once per case."""

    name = "tf.nn.conv2d"

    def __init__(self, threads: int | None = None) -> None:
        import tensorflow as tf

        if threads is not None:  # before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.tf = tf

    def functions(self, case: Case, x, w, dy) -> dict[str, Callable[[], object] | None]:
        tf = self.tf
        xt, wt, dyt = tf.constant(x), tf.constant(w), tf.constant(dy)
        strides = [1, case.strides, case.strides, 1]
        sizes = tf.constant(case.input_shape, tf.int32)
        filter_sizes = tf.constant(case.filter_shape, tf.int32)
        candidates = {
            "forward": lambda: tf.nn.conv2d(xt, wt, strides, case.padding),
            "backprop_input": lambda: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=sizes,
                filter=wt,
                out_backprop=dyt,
                strides=strides,
                padding=case.padding,
            ),
            "backprop_filter": lambda: tf.raw_ops.Conv2DBackpropFilter(
                input=xt,
                filter_sizes=filter_sizes,
                out_backprop=dyt,
                strides=strides,
                padding=case.padding,
            ),
        }
        usable: dict[str, Callable[[], object] | None] = {}
        for operation, function in candidates.items():
            try:  # some kernels lack some features (grouped gradients without oneDNN)
                function()
                usable[operation] = function
            except Exception:
                usable[operation] = None
        return usable


class NumPyReference:
    """A stand-in reference without TensorFlow (``--reference numpy``, and the tests)."""

    name = "numpy im2col"

    def functions(self, case: Case, x, w, dy) -> dict[str, Callable[[], object] | None]:
        args = (case.strides, case.padding)
        return {
            "forward": lambda: numpy_conv.conv2d(x, w, *args, method="im2col"),
            "backprop_input": lambda: numpy_conv.conv2d_backprop_input(
                x.shape, w, dy, *args, method="im2col"
            ),
            "backprop_filter": lambda: numpy_conv.conv2d_backprop_filter(
                x, w.shape, dy, *args, method="im2col"
            ),
        }


def numpy_functions(case: Case, x, w, dy, method: str) -> dict[str, Callable[[], object]]:
    """The three NumPy operations of ``companion.numpy_conv`` with ``method``."""
    args = (case.strides, case.padding)
    return {
        "forward": lambda: numpy_conv.conv2d(x, w, *args, method=method),
        "backprop_input": lambda: numpy_conv.conv2d_backprop_input(
            x.shape, w, dy, *args, method=method
        ),
        "backprop_filter": lambda: numpy_conv.conv2d_backprop_filter(
            x, w.shape, dy, *args, method=method
        ),
    }


#: ``--methods auto,products`` also times each operation's matrix products alone.
PRODUCTS = "products"


def products_alone(case: Case, operation: str) -> Callable[[], None]:
    """The matrix products of ``operation`` alone, as if building their operands cost nothing.

    The forward pass and the input gradient are lowered to a ``rows × inner``
    column matrix times ``inner × columns`` filters, per group (for the input
    gradient the rows are input pixels and the inner dimension holds the
    output gradient's taps), the filter gradient to the transposed column
    matrix times the output gradient, summed over the rows: the same FLOPs
    as the operation (for the input gradient, up to rounding the inner
    dimension to a whole number). The rows are cut into blocks of the size ``auto``'s
    column blocks have (:func:`companion.numpy_conv.parallel.block_budget`);
    one block of columns, already in the cache, is multiplied once per block,
    the blocks spread over the package's threads with BLAS on one thread, as
    ``auto`` does. No copies: what is left when building the columns is free.
    Beside TensorFlow, a ratio above 1 here means that NumPy's BLAS alone is
    slower than TensorFlow's kernel on that shape, whatever the strategy.

    Examples
    --------
    >>> products_alone(SUITE[0], "backprop_filter")()
    """
    g = case.geometry
    input_gradient = operation == "backprop_input"
    groups = g.groups
    columns = g.in_depth if input_gradient else g.per_group
    pixels = g.in_height * g.in_width if input_gradient else g.out_height * g.out_width
    rows = g.batch * pixels
    inner = max(1, round(g.flops / (2 * rows * columns * groups)))
    per_row = groups * inner * 4
    block = max(1, min(rows, parallel.block_budget(g, 4, per_row) // per_row))
    sizes = [min(block, rows - start) for start in range(0, rows, block)]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((groups, block, inner), dtype=np.float32)
    b = rng.standard_normal((groups, inner, columns), dtype=np.float32)
    gradient = rng.standard_normal((groups, block, columns), dtype=np.float32)

    def one(index: int) -> None:
        n = sizes[index]
        if operation == "backprop_filter":
            out = parallel.scratch("products", (groups, inner, columns), np.float32)
            for k in range(groups):  # np.dot lets the other threads run (see the gradients)
                np.dot(a[k, :n].T, gradient[k, :n], out=out[k])
        else:
            out = parallel.scratch("products", (groups, block, columns), np.float32)
            np.matmul(a[:, :n], b, out=out[:, :n])

    return lambda: parallel.for_each_block(one, len(sizes))


# --------------------------------------------------------------------------
# Running the suite
# --------------------------------------------------------------------------


@dataclass
class Row:
    """One measured line: a case, an operation and a NumPy method beside the reference."""

    case: str
    shape: str
    operation: str
    method: str
    choice: str
    gflop: float
    median_ms: float
    reference_ms: float | None
    gflops: float
    ratio: float | None
    peak_mib: float | None = None
    input_mib: float | None = None
    output_mib: float | None = None
    im2col_peak_mib: float | None = None

    @property
    def memory_ratio(self) -> float | None:
        """Peak / (input + 2 × output): at most about 1 is the issue's target."""
        if self.peak_mib is None:
            return None
        return self.peak_mib / (self.input_mib + 2 * self.output_mib)


@dataclass
class Summary:
    """Geometric mean and worst ratio of one method for one operation."""

    method: str
    operation: str
    shapes: int
    geometric_mean: float
    worst: float
    worst_case: str
    missing: list[str] = field(default_factory=list)


def run(
    cases: Sequence[Case],
    reference,
    *,
    methods: Sequence[str] = ("auto",),
    operations: Sequence[str] = OPERATIONS,
    repeats: int = 15,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Measure every case, operation and method against ``reference``.

    Parameters
    ----------
    cases : sequence of Case
    reference : TensorFlowReference or NumPyReference
        What the NumPy methods are compared with.
    methods : sequence of str
        ``companion.numpy_conv`` methods (``"auto"`` first, by convention), or
        :data:`PRODUCTS` for the matrix products alone (:func:`products_alone`).
    operations : sequence of str
        A subset of :data:`OPERATIONS`.
    repeats : int
        Interleaved rounds per case and operation.
    memory : bool
        Also measure peak memory of the forward pass (``auto`` and ``im2col``).
    progress : callable, optional
        Called with a line of text after each case.

    Returns
    -------
    list of Row
    """
    for method in methods:
        if method not in (*numpy_conv.METHODS, PRODUCTS):
            raise ValueError(
                f"methods: expected names from {(*numpy_conv.METHODS, PRODUCTS)}, got {method!r}"
            )
    for operation in operations:
        if operation not in OPERATIONS:
            raise ValueError(f"operations: expected names from {OPERATIONS}, got {operation!r}")
    rows = []
    for case in cases:
        x, w, dy = case.arrays()
        references = reference.functions(case, x, w, dy)
        ours = {
            method: (
                {operation: products_alone(case, operation) for operation in OPERATIONS}
                if method == PRODUCTS
                else numpy_functions(case, x, w, dy, method)
            )
            for method in methods
        }
        geometry = case.geometry
        choices = {
            "forward": numpy_conv.choose_method(geometry),
            "backprop_input": numpy_conv.choose_input_gradient(geometry),
            "backprop_filter": numpy_conv.choose_filter_gradient(geometry),
        }
        mib = 1 / 2**20
        for operation in operations:
            functions = {method: ours[method][operation] for method in methods}
            if references.get(operation) is not None:
                functions["reference"] = references[operation]
            times = time_interleaved(functions, repeats)
            reference_times = times.get("reference")
            for method in methods:
                median = statistics.median(times[method])
                row = Row(
                    case=case.name,
                    shape=case.shape,
                    operation=operation,
                    method=method,
                    choice=choices[operation] if method == "auto" else method,
                    gflop=case.flops / 1e9,
                    median_ms=1e3 * median,
                    reference_ms=(
                        None
                        if reference_times is None
                        else 1e3 * statistics.median(reference_times)
                    ),
                    gflops=case.flops / median / 1e9,
                    ratio=(
                        None
                        if reference_times is None
                        else paired_ratio(times[method], reference_times)
                    ),
                )
                if memory and operation == "forward" and method == "auto":
                    geometry = case.geometry
                    row.peak_mib = mib * peak_memory(ours["auto"]["forward"])
                    row.im2col_peak_mib = mib * peak_memory(
                        numpy_functions(case, x, w, dy, "im2col")["forward"]
                    )
                    row.input_mib = mib * x.nbytes
                    row.output_mib = mib * 4 * int(np.prod(geometry.output_shape))
                rows.append(row)
        if progress is not None:
            auto = [r for r in rows if r.case == case.name and r.method == methods[0]]
            ratios = ", ".join(
                f"{r.operation} {'n/a' if r.ratio is None else f'{r.ratio:.2f}'}" for r in auto
            )
            progress(f"{case.name}: {methods[0]} / reference: {ratios}")
    return rows


def summarize(rows: Sequence[Row], method: str = "auto") -> list[Summary]:
    """Geometric mean and worst ratio of ``method``, per operation.

    Examples
    --------
    >>> rows = [Row("a", "", "forward", "auto", "taps", 1, 2, 1, 1, 2.0),
    ...         Row("b", "", "forward", "auto", "taps", 1, 1, 2, 1, 0.5)]
    >>> [(s.geometric_mean, s.worst, s.worst_case) for s in summarize(rows)]
    [(1.0, 2.0, 'a')]
    """
    summaries = []
    for operation in OPERATIONS:
        selected = [r for r in rows if r.method == method and r.operation == operation]
        if not selected:
            continue
        measured = [r for r in selected if r.ratio is not None]
        missing = [r.case for r in selected if r.ratio is None]
        if not measured:
            continue
        worst = max(measured, key=lambda r: r.ratio)
        summaries.append(
            Summary(
                method=method,
                operation=operation,
                shapes=len(measured),
                geometric_mean=geometric_mean(r.ratio for r in measured),
                worst=worst.ratio,
                worst_case=worst.case,
                missing=missing,
            )
        )
    return summaries


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def machine_info(reference_name: str | None = None) -> dict[str, object]:
    """CPU, core count, NumPy's BLAS and the environment variables that steer it."""
    info: dict[str, object] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable cores"] = len(os.sched_getaffinity(0))
    info["blas"] = [
        {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    names = (
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "OPENBLAS_THREAD_TIMEOUT",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TF_ENABLE_ONEDNN_OPTS",
    )
    info["environment"] = {name: os.environ[name] for name in names if name in os.environ}
    if hasattr(os, "getloadavg"):
        info["load average"] = [round(v, 2) for v in os.getloadavg()]
    if reference_name is not None:
        info["reference"] = reference_name
    if "tensorflow" in sys.modules:
        from companion.runtime import onednn_enabled

        info["tensorflow"] = sys.modules["tensorflow"].__version__
        info["onednn"] = onednn_enabled()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(rows: Sequence[Row], summaries: Sequence[Summary], reference_name: str) -> str:
    """The speed table, the memory table and the summary, as plain text."""
    out = io.StringIO()
    header = (
        f"{'case':18} {'shape':34} {'operation':16} {'method':15} {'choice':15} "
        f"{'ms':>8} {'ref ms':>8} {'GFLOP/s':>8} {'ratio':>6}"
    )
    out.write(f"Speed (ratio: median over rounds of NumPy time / {reference_name} time)\n")
    out.write(header + "\n" + "-" * len(header) + "\n")
    for r in rows:
        out.write(
            f"{r.case:18} {r.shape:34} {r.operation:16} {r.method:15} {r.choice:15} "
            f"{r.median_ms:8.2f} {_number(r.reference_ms, 2):>8} {r.gflops:8.1f} "
            f"{_number(r.ratio, 2):>6}\n"
        )
    memory = [r for r in rows if r.peak_mib is not None]
    if memory:
        header = (
            f"{'case':18} {'auto choice':15} {'input MiB':>9} {'output MiB':>10} "
            f"{'auto peak':>9} {'peak/(in+2out)':>14} {'im2col peak':>11}"
        )
        out.write("\nPeak NumPy memory of one forward call (MiB, output included)\n")
        out.write(header + "\n" + "-" * len(header) + "\n")
        for r in memory:
            out.write(
                f"{r.case:18} {r.choice:15} {r.input_mib:9.2f} {r.output_mib:10.2f} "
                f"{r.peak_mib:9.2f} {r.memory_ratio:14.2f} {r.im2col_peak_mib:11.2f}\n"
            )
    out.write("\n")
    for s in summaries:
        missing = f" (no reference for {', '.join(s.missing)})" if s.missing else ""
        out.write(
            f"{s.operation:16} {s.method} / {reference_name}: "
            f"geometric mean {s.geometric_mean:.2f} "
            f"over {s.shapes} shapes, worst {s.worst:.2f} ({s.worst_case}){missing}\n"
        )
    return out.getvalue()


def write_csv(rows: Sequence[Row], path: str) -> None:
    """One line per row, with the fields of :class:`Row` and ``memory_ratio``."""
    names = [*asdict(rows[0]), "memory_ratio"] if rows else []
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "memory_ratio": row.memory_ratio})


def write_json(rows: Sequence[Row], summaries: Sequence[Summary], info: dict, path: str) -> None:
    """``{"machine": ..., "summary": [...], "rows": [...]}``."""
    document = {
        "machine": info,
        "summary": [asdict(s) for s in summaries],
        "rows": [{**asdict(r), "memory_ratio": r.memory_ratio} for r in rows],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def select(names: Sequence[str] | None, quick: bool) -> list[Case]:
    """The cases to run: ``--cases`` substrings, else the quick subset or the whole suite."""
    if names:
        chosen = [c for c in SUITE if any(n in c.name for n in names)]
        if not chosen:
            raise ValueError(f"cases: no case name contains any of {list(names)}")
        return chosen
    if quick:
        return [c for c in SUITE if c.name in QUICK]
    return list(SUITE)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.conv_speed",
        description="Time companion.numpy_conv against tf.nn.conv2d on typical layer shapes.",
    )
    parser.add_argument("--quick", action="store_true", help="six shapes, five rounds")
    parser.add_argument("--repeats", type=int, help="interleaved rounds (default 15, quick 5)")
    parser.add_argument(
        "--methods",
        default="auto",
        help="comma-separated NumPy methods (default: auto); 'products': each operation's"
        " matrix products alone, as if building their operands were free",
    )
    parser.add_argument("--cases", nargs="*", help="only cases whose name contains one of these")
    parser.add_argument(
        "--operations",
        default=",".join(OPERATIONS),
        help=f"comma-separated subset of {','.join(OPERATIONS)}",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    parser.add_argument(
        "--threads",
        type=int,
        help="limit NumPy (BLAS and copies) and TensorFlow to this many threads (default: all);"
        " --csv and --json files then get -threadsN in their names",
    )
    parser.add_argument(
        "--reference",
        choices=("tensorflow", "numpy"),
        default="tensorflow",
        help="compare with tf.nn.conv2d (default) or with NumPy's im2col (no TensorFlow)",
    )
    parser.add_argument(
        "--blas-spin",
        action="store_true",
        help="leave OpenBLAS's idle threads spinning (its default), which slows TensorFlow",
    )
    parser.add_argument("--csv", metavar="PATH", help="also write the rows as CSV")
    parser.add_argument("--json", metavar="PATH", help="also write machine, summary, rows as JSON")
    return parser.parse_args(argv)


def _blas_spins() -> bool:
    """Whether NumPy's BLAS is OpenBLAS with its default (spinning) thread timeout."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    return any(pool.get("internal_api") == "openblas" for pool in threadpool_info())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    args = parse_arguments(argv)
    if args.reference == "tensorflow" and not args.blas_spin and _blas_spins():
        # OpenBLAS's threads spin for a while after each product (by default about a
        # tenth of a second), taking a core from TensorFlow's next call: TensorFlow ran
        # about twice as slow right after NumPy here. The variable is read when OpenBLAS
        # loads, so the benchmark starts again with it set.
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        arguments = list(sys.argv[1:] if argv is None else argv)
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.conv_speed", *arguments])
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    operations = [o.strip() for o in args.operations.split(",") if o.strip()]
    repeats = args.repeats or (5 if args.quick else 15)
    cases = select(args.cases, args.quick)
    started = time.perf_counter()
    limits = contextlib.ExitStack()  # thread limits, undone at the end
    if args.threads is not None:
        limits.enter_context(threadpool_limits(args.threads, user_api="blas"))
        limits.enter_context(numpy_conv.settings(threads=args.threads))
    if args.reference == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        reference = TensorFlowReference(args.threads)
    else:
        reference = NumPyReference()
    if args.threads is not None:  # TensorFlow may load another BLAS: limit it too
        limits.enter_context(threadpool_limits(args.threads, user_api="blas"))
    info = machine_info(reference.name)
    info["threads"] = args.threads or "all"
    print("Machine:", json.dumps(info), flush=True)

    def progress(line: str) -> None:
        print(f"  [{time.perf_counter() - started:6.1f} s] {line}", flush=True)

    rows = run(
        cases,
        reference,
        methods=methods,
        operations=operations,
        repeats=repeats,
        memory=not args.no_memory,
        progress=progress,
    )
    summaries = [s for method in methods for s in summarize(rows, method)]
    print()
    print(format_table(rows, summaries, reference.name), end="")
    load = (
        f", load average at the end {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    )
    print(f"\n{len(cases)} shapes, {repeats} rounds, {time.perf_counter() - started:.0f} s{load}")
    limits.close()
    if args.csv:
        write_csv(rows, with_threads(args.csv, args.threads))
    if args.json:
        write_json(rows, summaries, info, with_threads(args.json, args.threads))
    return 0


def with_threads(path: str, threads: int | None) -> str:
    """The output file of a run limited to ``threads`` threads: ``-threadsN`` before the suffix.

    ``make bench`` runs the suite at all threads and at one; each run keeps its own file.

    Examples
    --------
    >>> with_threads("speed.json", None), with_threads("out/speed.json", 1)
    ('speed.json', 'out/speed-threads1.json')
    """
    if threads is None:
        return path
    name = Path(path)
    return str(name.with_name(f"{name.stem}-threads{threads}{name.suffix}"))


if __name__ == "__main__":
    sys.exit(main())
