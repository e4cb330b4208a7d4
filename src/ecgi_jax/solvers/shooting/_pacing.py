"""Pacing-site search: which single-site Aliev–Panfilov beat best explains the body potentials?

The inverse problem by *shooting*: the whole heart trajectory of a paced beat is determined by the
pacing site, so instead of reconstructing ``n × t`` potentials we search over the ``n`` sites. A
coarse pass simulates beats from well-spread candidate sites (farthest-point sampling) and a
greedy pass walks over the mesh from the best one while the misfit decreases. Every simulation is
the jitted simulator, batched with ``lax.map``, so a search costs a few seconds on a CPU.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ...ep import APParams, integrate, simulate, stable_substeps
from ...forward import Observation, check_observation, fit_observation, project_gain_offset
from ...operators import SparseOperator, csr_adjacency

__all__ = ["PacingSearch", "farthest_point_sample", "pacing_search"]


class PacingSearch(NamedTuple):
    """Result of :func:`pacing_search`.

    Attributes:
        node: the best pacing node.
        misfit: its misfit ``mean((A U − Y)²) / var(Y)`` (≈ σ² for a perfect fit with noise σ).
        U, V: the simulated beat from ``node`` ``(n, t)``, shifted by ``onset``.
        visited: every node simulated, in order; ``visited_misfit`` their misfits (each at its
            best onset).
        onset: the pacing instant relative to sample 0 (``≤ 0``: the beat started before the
            recording; a multiple of ``dt``).
        observation: the gain and offsets mapping the beat's ``A U`` to ``Y`` (the identity
            unless the search ran with ``observation="gain-offset"``).
    """

    node: int
    misfit: float
    U: jax.Array
    V: jax.Array
    visited: np.ndarray
    visited_misfit: np.ndarray
    onset: float = 0.0
    observation: Observation = Observation()


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


@partial(jax.jit, static_argnames=("n_samples", "n_lead", "substeps", "batch_size", "observation"))
def _misfits(nodes, laplacian, Y, A, params, dt, *, n_samples, n_lead, substeps, batch_size, observation):
    """``(misfit, lead)`` per node: the beat is simulated ``n_lead`` samples longer and compared
    with ``Y`` from every start sample ``lead ∈ [0, n_lead]`` (the pacing instant ``lead·dt``
    before the first sample); the best lead is kept. With ``observation="gain-offset"`` every
    window is compared after its best gain and per-lead offsets (variable projection)."""
    # Module-level jit with the operators as arguments: one compilation per (shape, batch) serves
    # every call and every search, instead of one per call of a closure.
    n = A.shape[1]
    y_var = jnp.var(Y)

    def one(node):
        u0 = jnp.zeros(n, Y.dtype).at[node].set(1.0)
        U, _ = integrate(
            laplacian, params, u0, jnp.zeros_like(u0), None, dt, n_samples=n_samples + n_lead, substeps=substeps, scheme="heun"
        )
        AU = jnp.matmul(A, U, precision=jax.lax.Precision.HIGHEST)
        # A stimulus larger than one node (a patch, a different tissue) starts the wave sooner:
        # a single-node beat then matches the data only after a shift in time.
        def window(j):
            P = jax.lax.dynamic_slice_in_dim(AU, j, n_samples, axis=1)
            r = project_gain_offset(Y, P)[0] if observation == "gain-offset" else P - Y
            return jnp.mean(r**2)

        m = jax.lax.map(window, jnp.arange(n_lead + 1))
        return jnp.min(m) / y_var, jnp.argmin(m)

    return jax.lax.map(one, nodes, batch_size=batch_size)


def pacing_search(
    Y,
    A,
    laplacian: SparseOperator,
    *,
    vertices,
    adjacency,
    dt: float = 0.1,
    ap_params: APParams = APParams(),
    n_candidates: int = 64,
    max_walk: int = 50,
    batch_size: int = 16,
    substeps: int | None = None,
    max_advance: float = 5.0,
    candidates=None,
    observation: str = "identity",
) -> PacingSearch:
    """Find the single pacing node (and onset) whose simulated beat best fits ``Y ≈ A U``.

    Args:
        Y: body potentials ``(m, t)``, sample 0 at the pacing instant.
        A: transfer matrix ``(m, n)``.
        laplacian: the heart's mesh Laplacian ``(n, n)``.
        vertices, adjacency: node coordinates ``(n, 3)`` and the adjacency (CSR ``(indptr, indices)`` or
            per-node neighbour lists; for the candidate spread and the walk over neighbours).
        n_candidates: coarse candidates (farthest-point sample); more guards against a local
            minimum at the cost of more simulations.
        max_walk: bound on the greedy steps over 1-ring neighbourhoods.
        max_advance: how long (AP time units, ``≥ 0``) before sample 0 the beat may have started;
            every onset in ``[−max_advance, 0]`` on the sample grid is tried for each node, at
            the cost of simulating ``max_advance / dt`` more samples. ``0``: the beat starts at
            sample 0. (A stimulus larger than one node starts the wave sooner than a one-node
            beat: on the P-DL heart a 7-node patch looks like a single-node beat started
            3.2 units early.)
        candidates: the nodes of the coarse pass (default: ``n_candidates`` farthest-point
            samples); e.g. ``[node]`` walks from ``node`` alone — a local search.
        observation: ``"identity"`` (``Y = A U``, the data in the model's units) or
            ``"gain-offset"`` (``Y = g·A U + b``: recordings in mV, a transfer matrix of another
            scale or sign, leads with their own reference; :mod:`ecgi_jax.forward` observation
            model): every beat is scored after its best gain and per-lead offsets, and the
            chosen beat's are returned in ``observation``.
    """
    if not (np.isfinite(max_advance) and max_advance >= 0):
        raise ValueError(f"max_advance must be a finite number >= 0; got {max_advance!r}.")
    ap_params.validate()
    check_observation(observation)
    Y = jnp.asarray(Y)
    A = jnp.asarray(A, Y.dtype)
    n = A.shape[1]
    indptr, indices = csr_adjacency(adjacency)  # CSR or per-node neighbour lists
    if len(indptr) != n + 1:
        raise ValueError(f"adjacency has {len(indptr) - 1} nodes; A has {n} columns.")
    if substeps is None:
        substeps = stable_substeps(laplacian, ap_params, dt)
    if isinstance(laplacian, SparseOperator):
        lap = laplacian.astype(Y.dtype)
    elif sp.issparse(laplacian):
        lap = SparseOperator.from_scipy(laplacian, Y.dtype)
    else:
        lap = jnp.asarray(laplacian, Y.dtype)
    p = jax.tree.map(lambda x: jnp.asarray(x, Y.dtype), ap_params)
    seen: dict[int, float] = {}
    lead: dict[int, int] = {}
    n_lead = int(round(max_advance / dt))

    def evaluate(new):
        # In batches of exactly batch_size (the last padded by repeating a node): one compiled
        # shape serves every batch of every search (a map over all the new nodes at once compiled
        # once per count: 4 programs in the EAND-ARN auto start).
        k = len(new)
        padded = jnp.asarray(new + [new[0]] * (-k % batch_size))
        out = [
            _misfits(
                padded[i : i + batch_size], lap, Y, A, p, jnp.asarray(dt, Y.dtype), n_samples=Y.shape[1], n_lead=n_lead,
                substeps=int(substeps), batch_size=batch_size, observation=observation,
            )
            for i in range(0, len(padded), batch_size)
        ]
        return np.concatenate([o[0] for o in out])[:k], np.concatenate([o[1] for o in out])[:k]

    def score(nodes):
        new = [int(i) for i in nodes if int(i) not in seen]
        if new:
            for i, m, j in zip(new, *evaluate(new)):
                seen[i], lead[i] = float(m), int(j)
        return min(nodes, key=lambda i: seen[int(i)])

    if candidates is None:
        candidates = farthest_point_sample(vertices, min(n_candidates, n))
    candidates = np.atleast_1d(np.asarray(candidates))
    if candidates.size == 0 or candidates.min() < 0 or candidates.max() >= n:
        raise ValueError(f"candidates must be node indices in [0, {n - 1}]; got {candidates.tolist()}.")
    best = int(score(candidates))
    for _ in range(max_walk):
        # The 2-ring of the current best: wide enough to step over a shallow ridge.
        ring = set(indices[indptr[best] : indptr[best + 1]].tolist())
        ring |= {int(j) for i in list(ring) for j in indices[indptr[i] : indptr[i + 1]]}
        nxt = int(score(sorted(ring | {best})))
        if nxt == best:
            break
        best = nxt
    if seen[best] >= 1.0:
        warnings.warn(
            f"the best single-site Aliev-Panfilov beat explains the body potentials worse than their mean "
            f"(misfit {seen[best]:.3g} of var(Y) >= 1). The physics-based methods expect Y = A u with u in "
            "[0, 1] (the model's units): data in mV with a baseline, a transfer matrix for another source "
            "model or a sign flip look like this. Rescale Y (or A) and remove the baseline first, or "
            "fit a gain and per-lead offsets with observation='gain-offset'.",
            stacklevel=2,
        )
    u0 = jnp.zeros(n, Y.dtype).at[best].set(1.0)
    j, n_t = lead[best], Y.shape[1]
    U, V = simulate(laplacian, u0, ap_params=ap_params, dt=dt, n_samples=n_t + n_lead, substeps=substeps)
    U, V = U[:, j : j + n_t], V[:, j : j + n_t]
    obs = fit_observation(Y, jnp.matmul(A, U.astype(Y.dtype), precision="highest"), observation)
    visited = np.fromiter(seen.keys(), np.int64)
    return PacingSearch(best, seen[best], U, V, visited, np.fromiter(seen.values(), np.float64), -j * float(dt), obs)
