"""ecgi_jax: inverse ECG modelling (electrocardiographic imaging) in JAX.

The package follows the pipeline of an ECGI study:

    geometry -> operators -> forward (BEM) -> ep (Aliev-Panfilov) -> solvers -> metrics
"""

from . import datasets, ep, forward, geometry, metrics, operators, synthetic
from ._solve import METHODS, Solution, method_options, methods_table, register_method, solve
from .solvers.neural import _methods as _neural_methods  # registers "eand-arn" and "pdl"

__all__ = [
    "geometry", "operators", "forward", "ep", "synthetic", "metrics", "datasets",
    "solve", "Solution", "register_method", "METHODS", "methods_table", "method_options",
]

__version__ = "0.1.0"
