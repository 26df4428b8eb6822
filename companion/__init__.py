"""Companion package of the book *Convolution, exactly*.

Each module has one job; chapters import what they teach from here once they
have built it up in the open:

- :mod:`companion.runtime`: which TensorFlow path runs (oneDNN or the
  reference kernels), the library versions, and running a snippet in a fresh
  interpreter in either mode.
- :mod:`companion.images`: scikit-learn's sample photographs as a batch, the
  hand-made filters of chapter 1, and stacking 2-D kernels into a filter.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
