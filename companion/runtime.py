"""Which TensorFlow runs here, and running code under TensorFlow's other CPU path.

TensorFlow has two CPU implementations of most convolution kernels: the
oneDNN kernels (on by default on x86 Linux since TensorFlow 2.9) and its
Eigen-based kernels, chosen with the environment variable
``TF_ENABLE_ONEDNN_OPTS=0``. The variable is read once, when TensorFlow is
imported, so the only way to compare both paths from one notebook or test is
to run one of them in a fresh interpreter: :func:`run_python` does that.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from companion import arguments

__all__ = [
    "VERIFIED_TF",
    "PythonRun",
    "as_recorded",
    "crash_description",
    "library_versions",
    "onednn_enabled",
    "probe_calls",
    "run_python",
    "strip_tf_log_lines",
    "tf_release",
]

#: The TensorFlow releases the book's recorded TensorFlow and Keras behaviour was verified
#: on: its newest stack, Colab's and the declared floor (``make compat`` runs all three).
VERIFIED_TF = ("2.16", "2.19", "2.21")

#: Distributions whose versions decide the numbers in this book.
LIBRARIES = ("tensorflow", "keras", "numpy", "matplotlib", "scikit-learn", "conv2d-companion")

# What TensorFlow's C++ runtime writes to stderr on import and on first use:
# absl log lines ("I0000 00:00:1795607818.170308    2492 port.cc:153] ..."),
# absl's preamble, and the CPU-feature notice's second line.
_TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\].*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler"
    r" flags\.)$"
)


def library_versions() -> dict[str, str]:
    """Return the installed versions of the libraries this book depends on.

    Built in chapter 0.

    Returns
    -------
    dict of str to str
        ``{"python": ..., "tensorflow": ..., ...}``; a library that is not
        installed maps to ``"not installed"``.

    Examples
    --------
    >>> versions = library_versions()
    >>> sorted(versions)[:2]
    ['conv2d-companion', 'keras']
    """
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def tf_release() -> str:
    """Return the installed TensorFlow's release, ``"major.minor"``, without importing it.

    Examples
    --------
    >>> tf_release().startswith("2.")
    True
    """
    return ".".join(importlib.metadata.version("tensorflow").split(".")[:2])


def as_recorded(claims: Mapping[str, bool], *, verified_on: Sequence[str] = VERIFIED_TF) -> None:
    """Hold TensorFlow's behaviour to the book's record, but only where it was verified.

    A chapter that records how TensorFlow or Keras behaves states each
    recorded behaviour as a claim and whether the running version shows it.
    On a release in ``verified_on`` a claim that does not hold is an error:
    the record is wrong, or the library regressed. On any other release (a
    reader's newer or older TensorFlow) the claims that do not hold are
    printed, plainly, and the notebook goes on: it never fails because the
    reader's TensorFlow behaves differently.

    Parameters
    ----------
    claims : mapping of str to bool
        Each recorded behaviour, in words, and whether the running version shows it.
    verified_on : sequence of str, optional
        The ``"major.minor"`` releases the record was verified on.

    Raises
    ------
    AssertionError
        On a verified release, when a claim does not hold.

    Examples
    --------
    >>> as_recorded({"1 + 1 == 2": 1 + 1 == 2})  # silent when every claim holds
    >>> as_recorded({"a behaviour": False}, verified_on=["1.0"])  # doctest: +ELLIPSIS
    Your TensorFlow ... differs from the book's record (verified on TensorFlow 1.0): a behaviour
    """
    failing = [str(claim) for claim, holds in dict(claims).items() if not holds]
    release = tf_release()
    if release in verified_on:
        assert not failing, (
            f"TensorFlow {release} was verified to behave as recorded, but not: "
            f"{'; '.join(failing)}"
        )
    elif failing:
        print(
            f"Your TensorFlow {release} differs from the book's record "
            f"(verified on TensorFlow {', '.join(verified_on)}): {'; '.join(failing)}"
        )


def onednn_enabled() -> bool:
    """Tell whether this process's TensorFlow runs its oneDNN CPU kernels.

    Built in chapter 0.

    Imports TensorFlow. The answer is fixed at import time by
    ``TF_ENABLE_ONEDNN_OPTS``; TensorFlow's own runtime flag is asked first,
    and the environment variable is the fallback where that private flag is
    missing.

    Returns
    -------
    bool
        ``True`` when convolutions go through oneDNN.

    Examples
    --------
    >>> isinstance(onednn_enabled(), bool)
    True
    """
    import tensorflow  # noqa: F401  (the flag is set when TensorFlow loads)

    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - a future TensorFlow without the private module
        default = platform.machine().lower() in {"x86_64", "amd64"}
        value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        return default if value is None else value.strip().lower() in {"1", "true"}
    return bool(_pywrap_util_port.IsMklEnabled())


def strip_tf_log_lines(text: str) -> str:
    """Remove TensorFlow's C++ start-up notices from captured stderr text.

    Built in chapter 0.

    Parameters
    ----------
    text : str
        Text a TensorFlow process wrote to stderr.

    Returns
    -------
    str
        The same text without absl log lines (``I0000 ... port.cc:153] ...``)
        and the notices that accompany them; other lines are kept in order.

    Examples
    --------
    >>> strip_tf_log_lines("I0000 00:00:17.5   24 port.cc:153] oneDNN on\\nreal error")
    'real error'
    """
    kept = [line for line in text.splitlines() if not _TF_LOG_LINE.match(line)]
    return "\n".join(kept)


@dataclass(frozen=True)
class PythonRun:
    """The outcome of :func:`run_python`.

    Built in chapter 0.

    Attributes
    ----------
    returncode : int
        The process's exit status; negative ``-N`` when signal ``N`` ended it
        (``-6``: aborted).
    stdout : str
        What the code printed.
    stderr : str
        What it wrote to stderr, without TensorFlow's start-up notices.
    """

    returncode: int
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        """``True`` when a signal, not an exit call, ended the process."""
        return self.returncode < 0

    def json(self) -> object:
        """Parse the last line of ``stdout`` as JSON.

        Raises
        ------
        RuntimeError
            If the process failed or printed no JSON; the message carries its
            stderr.
        """
        lines = self.stdout.strip().splitlines()
        if self.returncode != 0 or not lines:
            raise RuntimeError(
                f"the subprocess exited with status {self.returncode}; stderr:\n{self.stderr}"
            )
        return json.loads(lines[-1])


def run_python(
    code: str, *, onednn: bool | None = None, threads: int | None = None, timeout: float = 300
) -> PythonRun:
    """Run Python code in a fresh interpreter, choosing TensorFlow's CPU path.

    Built in chapter 0.

    Parameters
    ----------
    code : str
        Source code to run with this interpreter (``sys.executable -c code``).
    onednn : bool or None, optional
        ``True`` or ``False`` sets ``TF_ENABLE_ONEDNN_OPTS`` to ``1`` or ``0``
        in the child; ``None`` (default) passes the current environment on.
    threads : int or None, optional
        If given, limit the child's BLAS and OpenMP pools with
        ``OMP_NUM_THREADS`` and friends. TensorFlow's own pools are set in
        code, with ``tf.config.threading``.
    timeout : float, optional
        Seconds before the child is killed and :class:`subprocess.TimeoutExpired`
        raised.

    Returns
    -------
    PythonRun
        Exit status, stdout, and stderr without TensorFlow's notices. A crash
        (for example TensorFlow aborting on a bad input) is reported here, not
        raised, so that a notebook can show it.

    Examples
    --------
    >>> run = run_python("print(6 * 7)")
    >>> run.returncode, run.stdout.strip()
    (0, '42')
    >>> run_python("import json; print(json.dumps([1, 2]))").json()
    [1, 2]
    """
    if not isinstance(code, str):
        raise ValueError(f"code: expected Python source as a str, got {type(code).__name__}")
    if onednn is not None and not (isinstance(onednn, int) and onednn in (0, 1)):
        raise ValueError(f"onednn: expected True, False (or 1, 0) or None, got {onednn!r}")
    if threads is not None:
        threads = arguments.integer(threads, "threads", minimum=1)
    env = dict(os.environ)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PythonRun(
        returncode=completed.returncode,
        stdout=completed.stdout,
        stderr=strip_tf_log_lines(completed.stderr),
    )


def crash_description(returncode: int) -> str:
    """Say how a child process ended that :func:`run_python` reports as crashed.

    Built in chapter 2.

    Examples
    --------
    >>> crash_description(-6)
    'process crashed (SIGABRT)'
    >>> crash_description(-4)
    'process crashed (SIGILL)'
    """
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"process crashed ({name})"


# The child side of probe_calls: one JSON line per call, flushed at once, so that the
# parent knows which calls finished before a crash.
_PROBE_LOOP = """
import json as _json

for _label, _args in CALLS:
    try:
        _verdict = str(run(*_args))
    except Exception as _error:  # any rejection, whatever its type
        _line = (str(_error).splitlines() or [""])[0]
        _message = _line.split("}} ")[-1].split(" [Op:")[0]
        _verdict = f"{type(_error).__name__}: {_message}"
    print(_json.dumps([_label, _verdict]), flush=True)
"""


def probe_calls(
    script: str,
    calls: Mapping[str, Sequence[object]],
    *,
    onednn: bool | None = None,
    timeout: float = 300,
) -> dict[str, str]:
    r"""Run ``run(*arguments)`` for every call in fresh processes; a crash is a verdict too.

    Built in chapter 2. ``script`` defines a function ``run`` (it may import
    TensorFlow); each call's verdict is ``str(run(*arguments))``, or the
    exception's type and first line when it raises. A call that kills its
    process (TensorFlow's oneDNN path aborts on some inputs, and on some
    versions dies of SIGILL) gets the verdict ``"process crashed (SIGABRT)"``
    (or its signal), and the calls after it run in a new process: one bad
    input never costs the others their answers.

    Parameters
    ----------
    script : str
        Python source defining ``run``.
    calls : mapping of str to sequence
        Labels and the positional arguments of each call (literals that
        ``repr`` writes out and Python reads back).
    onednn : bool or None, optional
        TensorFlow's CPU path in the children, as for :func:`run_python`.
    timeout : float, optional
        Seconds for each child process.

    Returns
    -------
    dict of str to str
        A verdict for every label, in the order of ``calls``.

    Raises
    ------
    RuntimeError
        When a child fails before its first call without crashing (a
        mistake in ``script``), with its stderr.

    Examples
    --------
    >>> script = "import os\ndef run(n):\n    return 1 // n if n != 13 else os.abort()"
    >>> calls = {"one": (1,), "zero": (0,), "crash": (13,), "after": (2,)}
    >>> for label, verdict in probe_calls(script, calls).items():
    ...     print(label, "->", verdict)
    one -> 1
    zero -> ZeroDivisionError: integer division or modulo by zero
    crash -> process crashed (SIGABRT)
    after -> 0
    """
    if not isinstance(script, str):
        raise ValueError(f"script: expected Python source as a str, got {type(script).__name__}")
    try:
        pending = [(str(label), list(args)) for label, args in dict(calls).items()]
    except (TypeError, ValueError):
        raise ValueError(
            f"calls: expected a mapping of labels to argument lists, got {calls!r}"
        ) from None
    verdicts: dict[str, str] = {}
    while pending:
        child = run_python(
            f"{script}\nCALLS = {pending!r}\n{_PROBE_LOOP}", onednn=onednn, timeout=timeout
        )
        for line in child.stdout.splitlines():
            if line.startswith("["):
                label, verdict = json.loads(line)
                verdicts[label] = verdict
        done = [label for label, _ in pending if label in verdicts]
        pending = pending[len(done) :]
        if not pending:
            break
        if not child.crashed:
            raise RuntimeError(
                f"the probe exited with status {child.returncode} before "
                f"{pending[0][0]!r}; stderr:\n{child.stderr}"
            )
        verdicts[pending[0][0]] = crash_description(child.returncode)
        pending = pending[1:]
    return {label: verdicts[label] for label in dict(calls)}
