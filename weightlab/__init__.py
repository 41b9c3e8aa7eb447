"""weightlab: see what weights and biases do.

Importing this package never imports TensorFlow; only :mod:`weightlab.training` does.
"""

__version__ = "0.1.0"
