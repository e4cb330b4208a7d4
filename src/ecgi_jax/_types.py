"""Shape vocabulary used across ecgi_jax (documentation aliases, not runtime checks).

Dimension names:
    m  -- number of torso leads (electrodes)
    n  -- number of heart-surface nodes
    t  -- number of time samples
    b  -- batch (patients, noise draws, seeds)
"""

from __future__ import annotations

from typing import TypeAlias

import jax
import numpy as np

Array: TypeAlias = jax.Array
ArrayLike: TypeAlias = jax.typing.ArrayLike

#: Body-surface potentials, ``(m, t)``.
Leads: TypeAlias = Array
#: Heart-surface quantity over time (potentials u, recovery v), ``(n, t)``.
HeartMap: TypeAlias = Array
#: Transfer matrix from heart nodes to leads, ``(m, n)``.
Transfer: TypeAlias = Array
#: Vertex coordinates ``(n, 3)`` (host-side numpy, float64, millimetres).
Vertices: TypeAlias = np.ndarray
#: Triangle vertex indices ``(f, 3)`` (host-side numpy, integer).
Triangles: TypeAlias = np.ndarray


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer inside jit/vmap/grad).

    Host-side input checks (NaN/Inf, positivity) run only on concrete values, so that validated
    entry points remain traceable; their callers validate before tracing.
    """
    return not isinstance(x, jax.core.Tracer)


def all_finite(x) -> bool:
    """True unless ``x`` is concrete and contains NaN or Inf (tracers pass)."""
    return not is_concrete(x) or bool(np.all(np.isfinite(np.asarray(x))))


def is_prng_key(x) -> bool:
    """A typed key (``jax.random.key``) or a legacy ``uint32 (2,)`` one (``jax.random.PRNGKey``)."""
    if not hasattr(x, "dtype"):
        return False
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return True
    return x.dtype == np.uint32 and np.shape(x) == (2,)


def check_key(key, name: str = "key") -> None:
    """Refuse anything but a PRNG key, naming ``name`` (an int seed is the usual slip)."""
    if not is_prng_key(key):
        raise TypeError(f"{name} must be a PRNG key, e.g. jax.random.key(0); got {type(key).__name__} {key!r}.")
