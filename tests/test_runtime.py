"""companion.runtime: versions, TensorFlow's CPU path, and subprocess runs."""

from __future__ import annotations

import platform

import pytest

from companion import runtime

# Captured from TensorFlow 2.21 importing on this project's CI machine.
TF_IMPORT_STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795607818.170308    2492 port.cc:153] oneDNN custom operations are on. You may see \
slightly different numerical results due to floating-point round-off errors from different \
computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795607818.171033    2492 cudart_stub.cc:31] Could not find cuda drivers on your \
machine, GPU will not be used.
I0000 00:00:1795607818.225620    2492 cpu_feature_guard.cc:227] This TensorFlow binary is \
optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other \
operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1795607819.612483    2492 cuda_platform.cc:51] failed call to cuInit: INTERNAL
"""


def test_strip_tf_log_lines_removes_every_notice_and_keeps_the_rest():
    text = "before\n" + TF_IMPORT_STDERR + "ValueError: a real message\n"
    assert runtime.strip_tf_log_lines(text) == "before\nValueError: a real message"


def test_strip_tf_log_lines_keeps_lines_that_only_look_similar():
    text = "I0000 is not a log line without its timestamp"
    assert runtime.strip_tf_log_lines(text) == text


def test_library_versions_names_every_library():
    versions = runtime.library_versions()
    assert set(versions) == {"python", *runtime.LIBRARIES}
    assert versions["conv2d-companion"] != "not installed"


def test_run_python_reports_output_and_status():
    run = runtime.run_python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    assert (run.returncode, run.stdout, run.stderr, run.crashed) == (3, "out\n", "err", False)


def test_run_python_reports_a_crash_instead_of_raising():
    run = runtime.run_python("import os; os.abort()")
    assert run.crashed and run.returncode == -6


def test_run_python_json_raises_with_the_childs_stderr():
    with pytest.raises(RuntimeError, match=r"status 1(.|\n)*boom"):
        runtime.run_python("raise SystemExit('boom')").json()


def test_run_python_sets_thread_variables():
    code = "import os, json; print(json.dumps(os.environ['OMP_NUM_THREADS']))"
    assert runtime.run_python(code, threads=1).json() == "1"


@pytest.mark.skipif(
    platform.machine().lower() not in {"x86_64", "amd64"},
    reason="TensorFlow enables oneDNN by default only on x86",
)
def test_onednn_switch_reaches_tensorflow_in_the_child():
    probe = "from companion.runtime import onednn_enabled; print(onednn_enabled())"
    assert runtime.run_python(probe, onednn=False).stdout.strip() == "False"
    assert runtime.run_python(probe, onednn=True).stdout.strip() == "True"


def test_probe_calls_gives_every_call_a_verdict_even_after_crashes():
    script = (
        "import os, signal\n"
        "def run(kind):\n"
        "    if kind == 'abort':\n"
        "        os.abort()\n"
        "    if kind == 'sigill':\n"  # how oneDNN dies on some TensorFlow versions
        "        os.kill(os.getpid(), signal.SIGILL)\n"
        "    if kind == 'raise':\n"
        "        raise ValueError('bad call\\nsecond line')\n"
        "    return kind.upper()\n"
    )
    calls = {
        "first": ("a",),
        "aborts": ("abort",),
        "middle": ("b",),
        "illegal": ("sigill",),
        "raises": ("raise",),
        "last": ("c",),
    }
    assert runtime.probe_calls(script, calls) == {
        "first": "A",
        "aborts": "process crashed (SIGABRT)",
        "middle": "B",
        "illegal": "process crashed (SIGILL)",
        "raises": "ValueError: bad call",
        "last": "C",
    }


def test_probe_calls_reports_a_broken_script_and_bad_arguments():
    with pytest.raises(RuntimeError, match="NameError"):
        runtime.probe_calls("def run():\n    return undefined_name\nundefined_name", {"a": ()})
    with pytest.raises(ValueError, match=r"^script: "):
        runtime.probe_calls(b"def run(): pass", {"a": ()})
    with pytest.raises(ValueError, match=r"^calls: "):
        runtime.probe_calls("def run(): pass", ["a"])


def test_the_tensorflow_worker_survives_a_crash():
    from tests.tf_worker import TFWorker

    worker = TFWorker(onednn=False)
    try:
        results = worker.call([("onednn", {}), ("abort", {}), ("onednn", {})])
    finally:
        worker.close()
    assert results == [("ok", False), ("crashed", "signal SIGABRT"), ("ok", False)]
    assert worker.crashes == 1


# -- as_recorded: recorded behaviour asserted where verified, reported elsewhere ----------


def test_as_recorded_asserts_on_a_verified_release(monkeypatch):
    monkeypatch.setattr(runtime, "tf_release", lambda: "2.19")
    runtime.as_recorded({"rank-3": True}, verified_on=["2.19"])
    with pytest.raises(AssertionError, match=r"TensorFlow 2\.19 .*, but not: rank-3; NCHW$"):
        claims = {"rank-3": False, "NCHW": False, "SAME": True}
        runtime.as_recorded(claims, verified_on=["2.16", "2.19"])


def test_as_recorded_reports_and_goes_on_elsewhere(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "tf_release", lambda: "2.30")
    runtime.as_recorded({"rank-3": True}, verified_on=["2.21"])
    assert capsys.readouterr().out == ""
    runtime.as_recorded({"rank-3": False, "NCHW": True}, verified_on=["2.16", "2.21"])
    assert capsys.readouterr().out == (
        "Your TensorFlow 2.30 differs from the book's record "
        "(verified on TensorFlow 2.16, 2.21): rank-3\n"
    )


def test_verified_releases_are_the_tested_stacks():
    # The newest stack is whatever `make env` installs; the others are tools/stacks.py's.
    from tools import stacks

    colab = ".".join(stacks.COLAB["tensorflow"].split(".")[:2])
    floor = next(r for r in stacks.floor() if r.startswith("tensorflow=="))
    assert colab in runtime.VERIFIED_TF
    assert floor.removeprefix("tensorflow==").removesuffix(".*") in runtime.VERIFIED_TF
