"""Pacing-site search: which single-site Aliev–Panfilov beat best explains the body potentials?

The inverse problem by *shooting*: the whole heart trajectory of a paced beat is determined by the
pacing site, so instead of reconstructing ``n × t`` potentials we search over the ``n`` sites. A
coarse pass simulates beats from well-spread candidate sites (farthest-point sampling) and a
greedy pass walks over the mesh from the best one while the misfit decreases. Every simulation is
the jitted simulator, batched with ``lax.map``, so a search costs a few seconds on a CPU.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ...ep import APParams, simulate, stable_substeps
from ...ep._simulate import _simulate
from ...operators import SparseOperator

__all__ = ["PacingSearch", "farthest_point_sample", "pacing_search"]


class PacingSearch(NamedTuple):
    """Result of :func:`pacing_search`.

    Attributes:
        node: the best pacing node.
        misfit: its misfit ``mean((A U − Y)²) / var(Y)`` (≈ σ² for a perfect fit with noise σ).
        U, V: the simulated beat from ``node`` ``(n, t)``.
        visited: every node simulated, in order; ``visited_misfit`` their misfits.
    """

    node: int
    misfit: float
    U: jax.Array
    V: jax.Array
    visited: np.ndarray
    visited_misfit: np.ndarray


def farthest_point_sample(vertices, k: int) -> np.ndarray:
    """``k`` well-spread vertex indices (greedy farthest-point sampling).

    Deterministic: starts at the vertex farthest from the centroid.
    """
    x = np.asarray(vertices, np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must lie in [1, {len(x)}]; got {k}.")
    first = int(np.argmax(np.linalg.norm(x - x.mean(axis=0), axis=1)))
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(k - 1):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(x - x[j], axis=1))
    return np.asarray(chosen, np.int64)


@partial(jax.jit, static_argnames=("n_samples", "substeps", "batch_size"))
def _misfits(nodes, laplacian, Y, A, params, dt, *, n_samples, substeps, batch_size):
    # Module-level jit with the operators as arguments: one compilation per (shape, batch) serves
    # every call and every search, instead of one per call of a closure.
    n = A.shape[1]

    def one(node):
        u0 = jnp.zeros(n, Y.dtype).at[node].set(1.0)
        U, _ = _simulate(laplacian, params, u0, jnp.zeros_like(u0), None, dt, n_samples=n_samples, substeps=substeps, scheme="heun")
        r = jnp.matmul(A, U, precision=jax.lax.Precision.HIGHEST) - Y
        return jnp.mean(r**2) / jnp.var(Y)

    return jax.lax.map(one, nodes, batch_size=batch_size)


def pacing_search(
    Y,
    A,
    laplacian: SparseOperator,
    *,
    vertices,
    adjacency,
    dt: float = 0.1,
    params: APParams = APParams(),
    n_candidates: int = 64,
    max_walk: int = 50,
    batch_size: int = 16,
    substeps: int | None = None,
) -> PacingSearch:
    """Find the single pacing node whose simulated beat best fits ``Y ≈ A U``.

    Args:
        Y: body potentials ``(m, t)``, sample 0 at the pacing instant.
        A: transfer matrix ``(m, n)``.
        laplacian: the heart's mesh Laplacian ``(n, n)``.
        vertices, adjacency: node coordinates ``(n, 3)`` and CSR adjacency ``(indptr, indices)``
            (for the candidate spread and the walk over neighbours).
        n_candidates: coarse candidates (farthest-point sample); more guards against a local
            minimum at the cost of more simulations.
        max_walk: bound on the greedy steps over 1-ring neighbourhoods.
    """
    params.validate()
    Y = jnp.asarray(Y)
    A = jnp.asarray(A, Y.dtype)
    n = A.shape[1]
    indptr, indices = (np.asarray(a) for a in adjacency)
    if len(indptr) != n + 1:
        raise ValueError(f"adjacency has {len(indptr) - 1} nodes; A has {n} columns.")
    if substeps is None:
        substeps = stable_substeps(laplacian, params, dt)
    if isinstance(laplacian, SparseOperator):
        lap = laplacian.astype(Y.dtype)
    elif sp.issparse(laplacian):
        lap = SparseOperator.from_scipy(laplacian, Y.dtype)
    else:
        lap = jnp.asarray(laplacian, Y.dtype)
    p = jax.tree.map(lambda x: jnp.asarray(x, Y.dtype), params)
    seen: dict[int, float] = {}

    def evaluate(new):
        # Pad the batch to a multiple of batch_size (repeating a node) so that few shapes compile.
        k = len(new)
        padded = new + [new[0]] * (-k % batch_size)
        out = _misfits(
            jnp.asarray(padded), lap, Y, A, p, jnp.asarray(dt, Y.dtype), n_samples=Y.shape[1], substeps=int(substeps),
            batch_size=batch_size,
        )
        return np.asarray(out)[:k]

    def score(nodes):
        new = [int(i) for i in nodes if int(i) not in seen]
        if new:
            for i, m in zip(new, evaluate(new)):
                seen[i] = float(m)
        return min(nodes, key=lambda i: seen[int(i)])

    best = int(score(farthest_point_sample(vertices, min(n_candidates, n))))
    for _ in range(max_walk):
        # The 2-ring of the current best: wide enough to step over a shallow ridge.
        ring = set(indices[indptr[best] : indptr[best + 1]].tolist())
        ring |= {int(j) for i in list(ring) for j in indices[indptr[i] : indptr[i + 1]]}
        nxt = int(score(sorted(ring | {best})))
        if nxt == best:
            break
        best = nxt
    u0 = jnp.zeros(n, Y.dtype).at[best].set(1.0)
    U, V = simulate(laplacian, u0, params=params, dt=dt, n_samples=Y.shape[1], substeps=substeps)
    visited = np.fromiter(seen.keys(), np.int64)
    return PacingSearch(best, seen[best], U, V, visited, np.fromiter(seen.values(), np.float64))
