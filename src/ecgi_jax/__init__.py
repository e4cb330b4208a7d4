"""ecgi_jax: inverse ECG modelling (electrocardiographic imaging) in JAX.

The package follows the pipeline of an ECGI study:

    geometry -> operators -> forward (BEM) -> ep (Aliev-Panfilov) -> solvers -> metrics
"""

from . import activation, datasets, ep, forward, geometry, io, metrics, operators, synthetic
from ._solve import METHODS, Method, Result, SolveError, Solution, method_options, methods_table, register_method, solve
from ._batch import solve_batch
from ._compilation_cache import use_compilation_cache
from .solvers.neural import _methods as _neural_methods  # registers "eand-arn" and "pdl"
from .solvers.shooting import _methods as _shooting_methods  # registers "ap-shooting" and "hybrid"
from .solvers.activation import _methods as _activation_methods  # registers "activation-based"
from . import methods  # one typed class per method, made from the registry: after the registrations

__all__ = [
    "geometry", "operators", "forward", "ep", "synthetic", "metrics", "datasets", "io", "activation",
    "solve", "Method", "methods", "Solution", "Result", "SolveError", "register_method", "METHODS", "methods_table", "method_options",
    "solve_batch", "use_compilation_cache",
]

__version__ = "0.1.0"
