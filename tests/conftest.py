"""Test configuration shared by every test module.

Hypothesis draws new examples on every run by default; CI sets
``HYPOTHESIS_PROFILE=ci``, which derandomises them, so that a CI failure
reproduces exactly on the next run and on any machine.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
