"""The activation map of fronts from a few sites at one speed, nearest to a given map.

    tau_e(x) = min_k (t_k + s · d(x_k, x))

with the sites ``x_k`` at the local minima of the given map (each keeping its own time ``t_k``),
``d`` the distance along the mesh's edges and one slowness ``s`` (time per length) fitted by least
squares. Why: a waveform-template fit (:mod:`._template`) started from a single-site beat keeps
that beat's fronts between the sites of a beat that starts at several (the data, smoothed by the
torso, barely see where two fronts meet): its times come out early at the right sites but shaped
like one front. Re-shaped as fronts from those sites, and refitted, the template explains the
data better and lies nearer the truth (``solvers.neural.start_solution``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ...operators import csr_adjacency, geodesic_distances

__all__ = ["EikonalMap", "eikonal_projection"]


class EikonalMap(NamedTuple):
    """Result of :func:`eikonal_projection`: the map ``times (n,)``, its ``sites (k,)`` (node
    indices, earliest first) and their ``site_times (k,)``, the ``slowness`` (the map's time
    unit per the vertices' length unit) and the root-mean-square distance ``rms`` from the given map."""

    times: np.ndarray
    sites: np.ndarray
    site_times: np.ndarray
    slowness: float
    rms: float


def _local_minima(tau, indptr, indices, rings: int) -> np.ndarray:
    """Nodes no node within ``rings`` rings of precedes (earlier, or as early with a lower index),
    earliest first."""
    n = len(tau)
    step = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n)) + sp.eye(n, format="csr")
    ring = step
    for _ in range(rings - 1):
        ring = ring @ step
    ring = ring.tocsr()
    ring.sort_indices()
    order = np.lexsort((np.arange(n), tau))  # earliest first, ties by index
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    first = np.minimum.reduceat(rank[ring.indices], ring.indptr[:-1])  # each ring holds its own node
    return order[(first == rank)[order]]


def eikonal_projection(tau, vertices, adjacency, *, rings: int = 2, iterations: int = 10) -> EikonalMap:
    """Fronts from a few sites at one speed, nearest to the activation map ``tau (n,)`` (module
    docstring).

    The sites are ``tau``'s local minima over ``rings`` rings. The slowness is the least-squares fit
    of ``tau − t_k`` against the distance from each node's first-reached site, alternated with that
    assignment (``iterations`` rounds at most); a site another front reaches before its own time is
    dropped. ``vertices (n, 3)``, ``adjacency``: CSR ``(indptr, indices)`` or neighbour lists.
    """
    tau = np.asarray(tau, np.float64)
    v = np.asarray(vertices, np.float64)
    if tau.ndim != 1 or v.shape != (tau.shape[0], 3):
        raise ValueError(f"tau must be (n,) and vertices (n, 3) for the same n; got tau {tau.shape}, vertices {v.shape}.")
    if not np.isfinite(tau).all():
        raise ValueError("tau holds NaN or inf: give every node a finite activation time.")
    if isinstance(rings, bool) or not isinstance(rings, (int, np.integer)) or rings < 1:
        raise ValueError(f"rings must be an integer >= 1; got {rings!r}.")
    indptr, indices = csr_adjacency(adjacency, len(tau))
    sites = _local_minima(tau, indptr, indices, int(rings))
    dist = geodesic_distances(v, (indptr, indices), sites)
    if not np.isfinite(dist).all():
        raise ValueError("the mesh is not connected: eikonal_projection needs one connected surface.")
    times = tau[sites]
    # First guess: each node's nearest site; then alternate the slowness and the assignment.
    owner = np.argmin(dist, axis=0)
    slowness = 0.0
    for _ in range(iterations):
        d = dist[owner, np.arange(len(tau))]
        slowness = max(float(d @ (tau - times[owner]) / max(float(d @ d), np.finfo(float).tiny)), 0.0)
        arrival = times[:, None] + slowness * dist
        new = np.argmin(arrival, axis=0)
        if np.array_equal(new, owner):
            break
        owner = new
    kept = np.unique(owner)  # a site reached first by another front owns no node, not even itself
    arrival = times[kept, None] + slowness * dist[kept]
    fitted = arrival.min(axis=0)
    return EikonalMap(fitted, sites[kept], times[kept], slowness, float(np.sqrt(np.mean((fitted - tau) ** 2))))
