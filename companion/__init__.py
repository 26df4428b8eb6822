"""Companion package of the book *Convolution, exactly*.

Each module has one job; chapters import what they teach from here once they
have built it up in the open:

- :mod:`companion.runtime`: which TensorFlow path runs (oneDNN or the
  reference kernels), the library versions, and running a snippet in a fresh
  interpreter in either mode.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
