"""Inverse solvers.

``solvers.classical`` (re-exported here) holds the regularized least-squares methods. The neural
solvers live in ``solvers.neural`` and are deliberately NOT imported here: they pull in flax/optax,
and importing the classical solvers (or :func:`ecgi_jax.solve`) must stay light.
"""

from . import classical
from .classical import *  # noqa: F401,F403
from .classical import __all__ as _classical_all

__all__ = ["classical", *_classical_all]
