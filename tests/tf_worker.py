"""A TensorFlow process that stays up for a test module: TensorFlow as a test oracle.

TensorFlow chooses its CPU path (oneDNN or the Eigen kernels) once, at
import, from ``TF_ENABLE_ONEDNN_OPTS``, so a test that needs a given path runs
TensorFlow in a child process with the variable set (as
``companion.runtime.run_python`` does). Importing TensorFlow takes seconds, too
long to repeat for each of hundreds of generated cases, so :class:`TFWorker`
keeps one child per path alive and sends it batches of calls over a pipe
(length-prefixed pickles). The test process itself never imports TensorFlow,
so its results do not depend on how the test run was started.

The child knows a few functions (see ``_FUNCTIONS``); each call in a batch
returns ``("ok", value)`` or ``("error", exception type name, message)``, or
``("crashed", description)`` when it killed the child: TensorFlow's oneDNN path
aborts or segfaults on some inputs (on TensorFlow 2.16 to 2.19 more than on
later versions). The worker then starts a new child and goes on with the
calls after it, so one crash never takes the test process down with it.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from typing import Any

_FUNCTIONS = r'''
import numpy as np
import tensorflow as tf


def onednn():
    from companion.runtime import onednn_enabled

    return onednn_enabled()


def abort():
    """Kill this process, as TensorFlow's oneDNN path does on some inputs (for the tests)."""
    import os

    os.abort()


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None):
    """tf.nn.conv2d itself."""
    return tf.nn.conv2d(input, filters, strides, padding, data_format, dilations).numpy()


def conv2d_xla(input, filters, strides, padding, data_format="NHWC", dilations=None):
    """tf.nn.conv2d compiled by XLA (which runs NCHW on either CPU path)."""
    compiled = tf.function(
        lambda a, b: tf.nn.conv2d(a, b, strides, padding, data_format, dilations),
        jit_compile=True,
    )
    return compiled(input, filters).numpy()


def grads(input, filters, out_backprop, strides, padding, data_format="NHWC", dilations=None):
    """(input gradient, filter gradient) of tf.nn.conv2d from tf.GradientTape."""
    x, w = tf.constant(input), tf.constant(filters)
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = tf.nn.conv2d(x, w, strides, padding, data_format, dilations)
    dx, dw = tape.gradient(y, [x, w], output_gradients=tf.constant(out_backprop))
    return dx.numpy(), dw.numpy()


def backprop_input(input_sizes, filters, out_backprop, strides, padding, data_format="NHWC"):
    """tf.compat.v1.nn.conv2d_backprop_input (strides: four ints)."""
    return tf.compat.v1.nn.conv2d_backprop_input(
        input_sizes, filters, out_backprop, strides, padding, data_format=data_format
    ).numpy()


def backprop_filter(input, filter_sizes, out_backprop, strides, padding, data_format="NHWC"):
    """tf.compat.v1.nn.conv2d_backprop_filter (strides: four ints)."""
    return tf.compat.v1.nn.conv2d_backprop_filter(
        input, filter_sizes, out_backprop, strides, padding, data_format=data_format
    ).numpy()


def _equivalent(x, w, strides, padding, dilations, groups):
    """NHWC conv2d built from undilated, ungrouped convolutions (float64 gradients exist)."""
    kh, kw, depth, out = w.shape
    dh, dw = dilations[1], dilations[2]
    if (dh, dw) != (1, 1):
        rows, cols = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
        indices = np.stack([rows, cols], axis=-1)
        w = tf.scatter_nd(indices, w, [(kh - 1) * dh + 1, (kw - 1) * dw + 1, depth, out])
    per_group = out // groups
    parts = [
        tf.nn.conv2d(
            x[..., g * depth : (g + 1) * depth],
            w[..., g * per_group : (g + 1) * per_group],
            strides,
            padding,
        )
        for g in range(groups)
    ]
    return tf.concat(parts, axis=-1)


def reference_grads(input, filters, out_backprop, strides, padding, dilations):
    """float64 gradients of an NHWC convolution, through _equivalent; 4-element arguments."""
    x = tf.constant(input, tf.float64)
    w = tf.constant(filters, tf.float64)
    groups = x.shape[3] // w.shape[2]
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = _equivalent(x, w, strides, padding, dilations, groups)
    dy = tf.constant(out_backprop, tf.float64)
    dx, dw = tape.gradient(y, [x, w], output_gradients=dy)
    return dx.numpy(), dw.numpy()
'''

_MAIN = r"""
import os, pickle, struct, sys

_protocol = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # a stray print goes to stderr, never into the protocol
_requests = sys.stdin.buffer


def _read():
    header = _requests.read(8)
    if len(header) < 8:
        return None
    return pickle.loads(_requests.read(struct.unpack("<Q", header)[0]))


def _write(value):
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    _protocol.write(struct.pack("<Q", len(data)) + data)
    _protocol.flush()


_namespace = {}
exec(FUNCTIONS, _namespace)
_write("ready")
while (batch := _read()) is not None:
    for name, kwargs in batch:  # one answer per call, as soon as it is known
        try:
            result = ("ok", _namespace[name](**kwargs))
        except Exception as error:
            result = ("error", type(error).__name__, str(error))
        _write(result)
"""


class TFWorker:
    """One child Python process running TensorFlow on a chosen CPU path.

    Parameters
    ----------
    onednn : bool
        ``TF_ENABLE_ONEDNN_OPTS`` for the child: ``True`` is TensorFlow's default
        path on x86, ``False`` the Eigen kernels.
    """

    def __init__(self, onednn: bool) -> None:
        self.onednn = onednn
        self.crashes = 0
        self._start()

    def _start(self) -> None:
        env = dict(os.environ)
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if self.onednn else "0"
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"FUNCTIONS = {_FUNCTIONS!r}\n{_MAIN}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._ready = False

    def _read(self) -> Any:
        """The child's next message, or ``None`` when it died."""
        header = self._process.stdout.read(8)
        if len(header) < 8:
            return None
        return pickle.loads(self._process.stdout.read(struct.unpack("<Q", header)[0]))

    def _log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def call(self, batch: list[tuple[str, dict[str, Any]]]) -> list[tuple]:
        """Run ``[(function name, keyword arguments), ...]`` in the child; return the results.

        A call that kills the child gets ``("crashed", "signal SIGSEGV")`` (or its exit
        status); a new child runs the calls after it.
        """
        results: list[tuple] = []
        while len(results) < len(batch):
            if not self._ready:
                if self._read() != "ready":
                    raise RuntimeError(f"the TensorFlow worker did not start:\n{self._log()}")
                self._ready = True
            pending = batch[len(results) :]
            data = pickle.dumps(pending, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                self._process.stdin.write(struct.pack("<Q", len(data)) + data)
                self._process.stdin.flush()
            except BrokenPipeError:
                pass  # it died while idle: the read below finds out
            for _ in pending:
                answer = self._read()
                if answer is None:
                    status = self._process.wait()
                    if status < 0:
                        what = f"signal {signal.Signals(-status).name}"
                    else:
                        what = f"exit status {status}"
                    results.append(("crashed", what))
                    self.crashes += 1
                    self._stderr.close()
                    self._start()
                    break
                results.append(answer)
        return results

    def close(self) -> None:
        """End the child (closing its input ends its loop) and release the log file."""
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stderr.close()
