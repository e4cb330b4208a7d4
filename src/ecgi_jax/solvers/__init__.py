"""Inverse solvers.

``solvers.classical`` (re-exported here) holds the regularized least-squares methods. The neural
solvers live in ``solvers.neural`` and are deliberately NOT imported here: they pull in flax/optax,
and importing the classical solvers (or :func:`ecgi_jax.solve`) must stay light.
:func:`levenberg_marquardt` is the one least-squares optimiser of the fits (shooting,
activation-based).
"""

from . import classical
from ._levenberg_marquardt import LMResult, levenberg_marquardt
from .classical import *  # noqa: F401,F403
from .classical import __all__ as _classical_all

__all__ = ["classical", "LMResult", "levenberg_marquardt", *_classical_all]
