"""Checks of user-given arrays and operators, shared by every solver and the front door."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ._sparse import SparseOperator

__all__ = ["finite_array", "check_operator"]


def finite_array(x, name: str):
    """``x`` as a real, finite JAX array, or a ``TypeError``/``ValueError`` naming ``name``."""
    try:
        arr = jnp.asarray(x)
    except TypeError as e:
        dtype = f" of dtype {x.dtype}" if hasattr(x, "dtype") else ""
        raise TypeError(f"{name} must be a numeric array; got {type(x).__name__}{dtype}.") from e
    if not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype} (pass the real part if that is meant).")
    if not bool(jnp.all(jnp.isfinite(arr))):
        bad = int(jnp.size(arr) - jnp.sum(jnp.isfinite(arr)))
        hint = " (e.g. drop bad leads from Y and the matching rows of A)" if name in ("Y", "A") else ""
        raise ValueError(f"{name} contains NaN or Inf values ({bad} of {arr.size} entries); remove or interpolate them{hint}.")
    return arr


def check_operator(op, name: str, n: int, square: bool = False):
    """Validate a spatial operator (SparseOperator / scipy / dense): ``(K, n)`` (``(n, n)`` if
    ``square``) with finite entries. Returns it unchanged (or as a dense array)."""
    if isinstance(op, SparseOperator):
        shape, vals = op.shape, op.weights
    elif sp.issparse(op):
        shape, vals = op.shape, op.data
    else:
        op = finite_array(op, name)
        shape, vals = op.shape, op
    if len(shape) != 2 or shape[1] != n or (square and shape[0] != n):
        want = f"({n}, {n})" if square else f"(K, {n})"
        raise ValueError(f"{name} has shape {tuple(shape)}; expected {want} for N = {n} heart nodes.")
    vals = np.asarray(vals)
    if not bool(np.all(np.isfinite(vals))):
        raise ValueError(f"{name} contains NaN or Inf values.")
    if not np.any(vals):
        # An all-zero (or edgeless) penalty regularizes nothing: the problem keeps A's null space
        # and the solvers returned NaN.
        raise ValueError(
            f"{name} has no nonzero entry (an all-zero or empty operator): it regularizes nothing. "
            "Build it from the heart mesh, e.g. operators.huiskamp_laplacian(vertices, adjacency)."
        )
    return op
