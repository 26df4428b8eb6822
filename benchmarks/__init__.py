"""Benchmarks of the book's companion package: measured, never asserted in tests.

Run them from the repository's root, e.g. ``python -m benchmarks.conv_speed``.
"""
