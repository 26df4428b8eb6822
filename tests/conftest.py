"""Test configuration shared by every test module.

Hypothesis draws new examples on every run by default; CI sets
``HYPOTHESIS_PROFILE=ci``, which derandomises them, so that a CI failure
reproduces exactly on the next run and on any machine.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.tf_worker import TFWorker

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def workers():
    """Both TensorFlow children, started together (each import takes seconds): the Eigen
    CPU kernels (``TF_ENABLE_ONEDNN_OPTS=0``) and the default (oneDNN) path."""
    started = {"eigen": TFWorker(onednn=False), "default": TFWorker(onednn=True)}
    yield started
    for worker in started.values():
        worker.close()


@pytest.fixture(scope="module")
def eigen(workers):
    worker = workers["eigen"]
    assert worker.call([("onednn", {})]) == [("ok", False)]
    return worker


@pytest.fixture(scope="module")
def default(workers):
    worker = workers["default"]
    assert worker.call([("onednn", {})])[0][0] == "ok"
    return worker
