"""Companion package of the book *Convolution, exactly*.

Each module has one job; chapters import what they teach from here once they
have built it up in the open:

- :mod:`companion.runtime`: which TensorFlow path runs (oneDNN or the
  Eigen kernels), the library versions, and running a snippet in a fresh
  interpreter in either mode.
- :mod:`companion.diagrams`: pictures of the convolution arithmetic (windows, padding,
  strides, dilations, groups, im2col, gradients, dtypes, floating-point numbers), drawn
  from :mod:`companion.padding` and checked against ``tf.nn.conv2d`` (chapters 2, 3, 5, 6).
- :mod:`companion.images`: scikit-learn's sample photographs as a batch, the
  hand-made filters of chapter 1, and stacking 2-D kernels into a filter.
- :mod:`companion.plotting`: image and kernel grids drawn the same way in every chapter.
- :mod:`companion.arguments`: the forms ``tf.nn.conv2d``'s arguments take, checked
  and normalised once for the whole package (chapter 2).
- :mod:`companion.arithmetic`: output sizes, ``SAME`` padding and the resolved
  :class:`~companion.arithmetic.Geometry` of a call, the single home of the
  convolution arithmetic (chapter 2).
- :mod:`companion.numpy_conv`: ``tf.nn.conv2d`` and its two gradients in NumPy,
  from Python loops to cache-blocked matrix products, with TensorFlow's exact semantics
  (chapter 5).
- :mod:`companion.timing`: interleaved timing and peak memory (chapter 5 and the
  benchmark).
- :mod:`companion.numerics`: unit roundoff, ``γ_n``, the rounding-error bounds that
  every floating-point comparison in the book uses, float formats and ULPs, summation
  orders and an accurate convolution (chapters 5 and 6).
- :mod:`companion.keras_vs_op`: a Keras ``Conv2D`` layer computed with
  ``tf.nn.conv2d``, a bias and its activation (chapter 3).
- :mod:`companion.layers`: ``NNConv2D``, a learnable Keras layer over ``tf.nn.conv2d``
  with ``Conv2D``'s arguments, strides together with dilation, and saving (chapter 4).
- :mod:`companion.data`: Fashion-MNIST through Keras' loader when cached, else
  scikit-learn's digits at 28 × 28, offline (chapter 4).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
