"""Synthetic ECGI cases: geometry + pacing site(s) + noise level → ground truth and body signals.

A :class:`SyntheticCase` is one pytree, so cases of the same shape stack along a leading axis
(``jax.tree.map(lambda *x: jnp.stack(x), *cases)``) and vmap over patients, seeds or noise levels.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._types import all_finite
from .ep import APParams, simulate
from .forward import add_noise

__all__ = ["SyntheticCase", "pacing_nodes", "make_case"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SyntheticCase:
    """Ground truth and measurements of one simulated heartbeat.

    Attributes:
        U, V: heart potentials (normalised transmembrane potential) and recovery variable ``(n, t)``.
        Y_clean: noise-free body potentials ``A @ U`` ``(m, t)``.
        Y: noisy body potentials ``(m, t)``.
        A: transfer matrix ``(m, n)``.
        dt: sample spacing (AP time units).
        sigma: relative noise level (``Y = Y_clean + sigma·std(Y_clean)·N(0, 1)``).
        pacing: 0/1 mask ``(n,)`` of the initially activated nodes.
    """

    U: jax.Array
    V: jax.Array
    Y_clean: jax.Array
    Y: jax.Array
    A: jax.Array
    dt: jax.Array
    sigma: jax.Array
    pacing: jax.Array

    @property
    def n_samples(self) -> int:
        return self.U.shape[-1]

    @property
    def times(self) -> jax.Array:
        return jnp.arange(self.n_samples) * self.dt


def pacing_nodes(adjacency, node: int, rings: int = 0) -> np.ndarray:
    """``node`` and its neighbours up to ``rings`` edges away (sorted indices)."""
    indptr, indices = adjacency
    if not 0 <= node < len(indptr) - 1:
        raise ValueError(f"pacing node {node} out of range [0, {len(indptr) - 2}].")
    sel = {int(node)}
    frontier = {int(node)}
    for _ in range(rings):
        frontier = {int(j) for i in frontier for j in indices[indptr[i] : indptr[i + 1]]} - sel
        sel |= frontier
    return np.array(sorted(sel), dtype=np.int64)


def make_case(
    key: jax.Array,
    A,
    laplacian,
    pacing,
    *,
    sigma: float = 0.1,
    ap_params: APParams = APParams(),
    dt: float = 0.1,
    n_samples: int = 661,
    substeps: int | None = None,
    dtype=None,
) -> SyntheticCase:
    """Simulate an AP beat from ``pacing`` (node indices) and measure it through ``A`` with noise.

    ``laplacian``: the heart's surface Laplacian ``(n, n)`` (SparseOperator, scipy.sparse or dense).
    ``u(0) = 1`` at the pacing nodes, ``v(0) = 0``; the beat is sampled every ``dt`` for
    ``n_samples`` samples. Body potentials ``Y = A U`` (float32 matmul at "highest" precision)
    plus white noise ``sigma·std(AU)·N(0,1)`` drawn with ``key``.

    Raises:
        ValueError: a non-square Laplacian, ``A`` not ``(m, n)`` or not finite, pacing indices that
            are not integers in ``[0, n)``, and (from :func:`~ecgi_jax.ep.simulate` /
            :func:`~ecgi_jax.forward.add_noise`) non-positive ``dt``, ``n_samples < 2``, a
            negative / non-finite ``sigma``, a Laplacian in the wrong units (mesh in metres) and a
            simulation that diverged (``substeps`` too few) — reported as such, not as NaN data.
    """
    dtype = dtype or jnp.result_type(float)
    A = jnp.asarray(A, dtype)
    if len(getattr(laplacian, "shape", ())) != 2 or laplacian.shape[0] != laplacian.shape[1]:
        raise ValueError(
            f"laplacian must be a square (n, n) operator (SparseOperator, scipy.sparse or array); got shape "
            f"{getattr(laplacian, 'shape', None)}."
        )
    n = laplacian.shape[0]
    if A.ndim != 2 or A.shape[1] != n:
        raise ValueError(f"A has shape {A.shape}; expected (m, {n}) to match the Laplacian.")
    if not all_finite(A):
        raise ValueError("A contains NaN or Inf values; check the transfer matrix.")
    raw = np.atleast_1d(np.asarray(pacing))
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"pacing must be integer node indices; got dtype {raw.dtype} ({raw[:5].tolist()}).")
    idx = raw.astype(np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"pacing nodes must be non-empty indices in [0, {n - 1}]; got {idx.tolist()}.")
    mask = jnp.zeros(n, dtype).at[idx].set(1.0)
    U, V = simulate(laplacian, mask, ap_params=ap_params, dt=dt, n_samples=n_samples, substeps=substeps)
    Y_clean = jnp.matmul(A, U, precision=jax.lax.Precision.HIGHEST)
    Y = add_noise(key, Y_clean, sigma)
    return SyntheticCase(U, V, Y_clean, Y, A, jnp.asarray(dt, dtype), jnp.asarray(sigma, dtype), mask)
