"""weightlab: see what weights and biases do.

Importing this package never imports TensorFlow; only :mod:`weightlab.training` does. The Python
API (:func:`open_store`, :func:`compare`) is loaded on first use so that ``import weightlab`` stays
cheap for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "compare", "open_store"]

if TYPE_CHECKING:
    from weightlab.api import compare, open_store


def __getattr__(name: str) -> Any:
    if name in ("open_store", "compare"):
        from weightlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'weightlab' has no attribute {name!r}")
