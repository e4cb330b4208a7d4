"""ecgi_jax: inverse ECG modelling (electrocardiographic imaging) in JAX.

The package follows the pipeline of an ECGI study:

    geometry -> operators -> forward (BEM) -> ep (Aliev-Panfilov) -> solvers -> metrics
"""

from . import geometry

__version__ = "0.1.0"
