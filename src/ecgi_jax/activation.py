"""Activation times from extracellular electrograms, and pacing-site localisation.

Conventions: electrograms ``phi`` are ``(N, T)`` (nodes x samples, sampling step ``dt``); times
are returned in the units of ``dt``. For transmembrane-like signals ``u`` (upstroke), use
:func:`ecgi_jax.metrics.activation_times`; this module is about *extracellular* potentials,
where a passing wavefront shows as the steepest *downslope* (most negative ``dphi/dt``) of the
unipolar electrogram.

Estimators
----------
* :func:`steepest_downslope`: per node, the time of the most negative ``dphi/dt`` (centred
  differences, optional Gaussian temporal smoothing), refined by a parabola through the peak
  (the ``"upstroke"`` rule of :func:`ecgi_jax.metrics.activation_times` applied to ``-phi``).
* :func:`spatiotemporal_downslope`: the same on the 1-ring-smoothed electrograms
  ``(1 - alpha) phi_i + alpha * mean_{j in N(i)} phi_j``. Averaging neighbours whose arrival
  times straddle node ``i``'s (a locally planar front) keeps the downslope near ``tau_i`` while
  averaging out uncorrelated noise.
* :func:`spatially_coherent`: after Erem, Coll-Font, Martinez Orellana, Stovicek & Brooks
  (IEEE TBME 61(6), 2014): for every mesh edge ``(i, j)``, the activation delay
  ``tau_j - tau_i`` is the lag (parabolically refined) that maximises the cross-correlation of
  the two nodes' ``-dphi/dt`` signals, each windowed around its node's time (first the 1-ring
  median of the downslope times, then the current estimate); the times
  then solve the weighted least-squares problem over the edges,
  ``min_tau sum_e w_e (tau_j - tau_i - d_e)^2 + mu^2 sum_i (tau_i - t_i)^2``, anchored to the
  per-node downslope times ``t_i`` with weight ``mu`` (``w_e``: the normalised correlation peak,
  clipped at 0). A few passes re-centre the windows on the current estimate and down-weight
  (Huber IRLS) the anchors of leads whose own downslope disagrees with their neighbours. The
  normal equations are a dense ``(N, N)`` SPD solve in JAX (fine for the
  few thousand nodes of an epicardial mesh; everything is jittable and vmappable over beats).

Pacing site: :func:`pacing_site` (node of earliest activation), :func:`localization_error_mm`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .metrics import activation_times

__all__ = [
    "steepest_downslope",
    "spatiotemporal_downslope",
    "spatially_coherent",
    "edges_from_adjacency",
    "pacing_site",
    "localization_error_mm",
]


# --------------------------------------------------------------------------- helpers
def _check_signals(phi) -> jax.Array:
    phi = jnp.asarray(phi)
    if phi.ndim != 2:
        raise ValueError(f"phi must be (N nodes, T samples); got shape {phi.shape}.")
    if phi.shape[1] < 3:
        raise ValueError(f"phi needs at least 3 time samples; got {phi.shape[1]}.")
    return phi.astype(jnp.result_type(phi, float))


def _check_dt(dt) -> None:
    if isinstance(dt, (int, float, np.floating, np.integer)) and not dt > 0:
        raise ValueError(f"dt must be positive; got {dt}.")


def _gaussian_smooth(phi: jax.Array, sigma: float) -> jax.Array:
    """Gaussian smoothing along time (``sigma`` in samples, edge-padded); identity for 0."""
    if sigma < 0:
        raise ValueError(f"smooth (Gaussian sigma in samples) must be >= 0; got {sigma}.")
    if sigma == 0:
        return phi
    half = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k = jnp.asarray(k / k.sum(), phi.dtype)
    n_t = phi.shape[1]
    padded = jnp.pad(phi, ((0, 0), (half, half)), mode="edge")
    return sum(k[i] * padded[:, i : i + n_t] for i in range(2 * half + 1))


def edges_from_adjacency(adjacency) -> np.ndarray:
    """Unique undirected edges ``(E, 2)`` (``i < j``) from CSR adjacency ``(indptr, indices)``
    (e.g. ``Mesh.adjacency``) or from an edge array ``(E, 2)`` (returned sorted and deduplicated).

    Raises ``ValueError`` for anything else, self-loops, or negative indices.
    """
    if isinstance(adjacency, tuple) and len(adjacency) == 2:
        indptr, indices = (np.asarray(a, dtype=np.int64) for a in adjacency)
        if indptr.ndim != 1 or indices.ndim != 1 or indptr[-1] != indices.size:
            raise ValueError("adjacency must be CSR (indptr, indices) with indptr[-1] == len(indices).")
        rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        e = np.stack([rows, indices], axis=1)
    else:
        e = np.asarray(adjacency)
        if e.ndim != 2 or e.shape[1] != 2 or not np.issubdtype(e.dtype, np.integer):
            raise ValueError(
                "adjacency must be CSR (indptr, indices), e.g. mesh.adjacency, or an integer edge "
                f"array (E, 2); got {type(adjacency).__name__} of shape {getattr(e, 'shape', None)}."
            )
        e = e.astype(np.int64)
    if (e[:, 0] == e[:, 1]).any():
        raise ValueError("adjacency contains self-loops (i, i); remove them.")
    if e.size and e.min() < 0:
        raise ValueError("adjacency contains negative node indices.")
    return np.unique(np.sort(e, axis=1), axis=0)


def _ring_table(edges: np.ndarray, n: int) -> np.ndarray:
    """``(N, 1 + max degree)`` table of each node and its neighbours, padded with the node itself
    (padding biases a median towards the node's own value, never towards a stranger's)."""
    nbrs = [[i] for i in range(n)]
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    width = max(len(r) for r in nbrs)
    return np.array([r + [r[0]] * (width - len(r)) for r in nbrs], dtype=np.int64)


def _check_edges(edges: np.ndarray, n: int) -> None:
    if edges.shape[0] == 0:
        raise ValueError("adjacency has no edges.")
    if edges.max() >= n:
        raise ValueError(f"adjacency refers to node {int(edges.max())} but phi has only {n} nodes.")


# --------------------------------------------------------------------------- estimators
def steepest_downslope(phi, dt=1.0, *, smooth: float = 0.0):
    """Activation time of each node = time of the most negative ``dphi/dt``.

    Args:
        phi: ``(N, T)`` unipolar electrograms.
        dt: sampling step (times are returned in its units).
        smooth: Gaussian temporal smoothing before differentiation, sigma in samples
            (static; 0 = none).

    Returns:
        ``(N,)`` times; sub-sample accuracy from a parabola through the derivative's minimum and
        its two neighbours. A node with no negative slope gets ``T * dt`` (never activates).

    Raises:
        ValueError: ``phi`` not 2-D or shorter than 3 samples; ``dt <= 0``; ``smooth < 0``.

    Jittable (``smooth`` static) and vmappable over beats.
    """
    phi = _check_signals(phi)
    _check_dt(dt)
    return activation_times(-_gaussian_smooth(phi, smooth), dt, method="upstroke")


def _ring_mean(phi, edges, alpha):
    n = phi.shape[0]
    rows = jnp.concatenate([edges[:, 0], edges[:, 1]])
    cols = jnp.concatenate([edges[:, 1], edges[:, 0]])
    total = jax.ops.segment_sum(phi[cols], rows, num_segments=n)
    deg = jax.ops.segment_sum(jnp.ones_like(rows, dtype=phi.dtype), rows, num_segments=n)
    mean = total / jnp.maximum(deg, 1)[:, None]
    return jnp.where(deg[:, None] > 0, (1 - alpha) * phi + alpha * mean, phi)


def spatiotemporal_downslope(phi, dt, adjacency, *, alpha: float = 0.5, smooth: float = 0.0):
    """Steepest downslope of the 1-ring-smoothed electrograms (module docstring).

    Args:
        phi: ``(N, T)`` electrograms. dt: sampling step.
        adjacency: CSR ``(indptr, indices)`` (``mesh.adjacency``) or an edge array ``(E, 2)``.
        alpha: weight of the neighbours' mean, in ``[0, 1]`` (0 = plain downslope).
        smooth: Gaussian temporal sigma in samples, as in :func:`steepest_downslope`.

    Returns:
        ``(N,)`` activation times.

    Raises:
        ValueError: bad ``phi``/``dt``/``adjacency`` or ``alpha`` outside ``[0, 1]``.
    """
    phi = _check_signals(phi)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
    edges = edges_from_adjacency(adjacency)
    _check_edges(edges, phi.shape[0])
    return steepest_downslope(_ring_mean(phi, jnp.asarray(edges), alpha), dt, smooth=smooth)


def _edge_delays(d, t0, edges, max_lag: int, window: float):
    """Lag (samples, refined) maximising the windowed cross-correlation of ``d_i`` and ``d_j``
    for every edge, i.e. the estimate of ``tau_j - tau_i``; and the normalised peak value."""
    n_t = d.shape[1]
    t = jnp.arange(n_t, dtype=d.dtype)
    i, j = edges[:, 0], edges[:, 1]
    # Each signal is windowed around its *own* downslope time, so that the windowed b is (about)
    # the windowed a shifted by the delay; a common window would pull both peaks towards its
    # centre and bias every delay towards 0.
    win = lambda c: jnp.exp(-0.5 * ((t[None, :] - c[:, None]) / window) ** 2)  # noqa: E731
    a = d[i] * win(t0[i])
    b = d[j] * win(t0[j])
    pad = jnp.pad(b, ((0, 0), (max_lag, max_lag)))
    # corr[k] = sum_t a[t] b[t + lag_k], lag_k = k - max_lag: peak at lag = tau_j - tau_i.
    shifts = np.arange(2 * max_lag + 1)[:, None] + np.arange(n_t)[None, :]  # (lags, T)
    corr = jnp.einsum("et,elt->el", a, pad[:, shifts], precision="highest")
    norm = jnp.sqrt(jnp.sum(a**2, axis=1) * jnp.sum(b**2, axis=1))
    k = jnp.argmax(corr, axis=1)
    take = lambda idx: jnp.take_along_axis(corr, idx[:, None], 1)[:, 0]  # noqa: E731
    c0 = take(k)
    cm = take(jnp.clip(k - 1, 0, 2 * max_lag))
    cp = take(jnp.clip(k + 1, 0, 2 * max_lag))
    curv = cm - 2 * c0 + cp
    inner = (k > 0) & (k < 2 * max_lag) & (curv < 0)
    shift = jnp.where(inner, 0.5 * (cm - cp) / jnp.where(inner, curv, -1), 0.0)
    lag = (k - max_lag).astype(corr.dtype) + jnp.clip(shift, -0.5, 0.5)
    rho = jnp.where(norm > 0, c0 / jnp.where(norm > 0, norm, 1), 0.0)
    return lag, rho


@jax.jit
def _edge_least_squares(t0, edges, delay, weight, mu2):
    """argmin_tau sum_e w_e (tau_j - tau_i - d_e)^2 + sum_i mu2_i (tau_i - t0_i)^2 (dense normal
    equations; ``mu2`` is the per-node squared anchor weight)."""
    n = t0.shape[0]
    i, j = edges[:, 0], edges[:, 1]
    lap = jnp.zeros((n, n), t0.dtype)
    lap = lap.at[i, i].add(weight).at[j, j].add(weight).at[i, j].add(-weight).at[j, i].add(-weight)
    rhs = mu2 * t0 + jax.ops.segment_sum(weight * delay, j, num_segments=n) - jax.ops.segment_sum(
        weight * delay, i, num_segments=n
    )
    return jnp.linalg.solve(lap + jnp.diag(mu2), rhs)


def spatially_coherent(
    phi,
    dt,
    adjacency,
    *,
    smooth: float = 1.0,
    max_lag: int = 20,
    window: float = 5.0,
    anchor_weight: float = 0.3,
    iterations: int = 3,
    huber: float = 3.0,
    valid=None,
):
    """Activation times from neighbour delays by cross-correlation plus least squares over edges.

    Method in the module docstring (after Erem et al. 2014).

    Args:
        phi: ``(N, T)`` unipolar electrograms. dt: sampling step (output units).
        adjacency: CSR ``(indptr, indices)`` (``mesh.adjacency``) or an edge array ``(E, 2)``.
        smooth: Gaussian temporal sigma (samples) applied before differentiating.
        max_lag: largest neighbour delay searched, in samples (static).
        window: Gaussian window sigma (samples) applied to each derivative signal around its
            own downslope time before correlating (suppresses other deflections).
        anchor_weight: ``mu`` of the anchor to the per-node downslope times (``> 0``; it also
            fixes the constant the edge differences leave free). Small = trust the delays.
        iterations: passes (static); pass 1 windows each signal at the 1-ring median of the
            downslope times,
            later passes at the previous coherent estimate, with Huber-reweighted anchors
            (squared weight ``anchor_weight**2 * min(1, huber / |tau_i - t_i|)``).
        huber: Huber threshold in samples for the anchor reweighting.
        valid: optional ``(N,)`` bool mask of usable leads; edges touching an invalid lead are
            dropped, and such a lead keeps its own downslope time (exclude it when scoring).

    Returns:
        ``(N,)`` activation times in the units of ``dt``.

    Raises:
        ValueError: bad ``phi``/``dt``/``adjacency``/``valid``, ``max_lag < 1``,
            ``window <= 0``, ``anchor_weight <= 0``.

    Jittable in ``phi`` (adjacency and the options are concrete); vmappable over beats.
    """
    phi = _check_signals(phi)
    _check_dt(dt)
    if int(max_lag) < 1 or int(max_lag) != max_lag:
        raise ValueError(f"max_lag must be a positive integer number of samples; got {max_lag}.")
    if not window > 0:
        raise ValueError(f"window must be > 0 samples; got {window}.")
    if int(iterations) < 1 or not huber > 0:
        raise ValueError(f"iterations must be >= 1 and huber > 0; got {iterations}, {huber}.")
    if not anchor_weight > 0:
        raise ValueError(f"anchor_weight must be > 0 (it fixes the time origin); got {anchor_weight}.")
    edges = edges_from_adjacency(adjacency)
    n = phi.shape[0]
    _check_edges(edges, n)
    weight_mask = np.ones(edges.shape[0])
    if valid is not None:
        v = np.asarray(valid)
        if v.shape != (n,) or v.dtype != bool:
            raise ValueError(f"valid must be a boolean mask of shape ({n},); got {v.dtype} {v.shape}.")
        weight_mask = (v[edges[:, 0]] & v[edges[:, 1]]).astype(float)
    tau = _coherent_core(
        _gaussian_smooth(phi, smooth),
        jnp.asarray(edges),
        jnp.asarray(_ring_table(edges, n)),
        jnp.asarray(weight_mask, phi.dtype),
        jnp.asarray(anchor_weight, phi.dtype),
        jnp.asarray(huber, phi.dtype),
        jnp.asarray(window, phi.dtype),
        max_lag=int(max_lag),
        iterations=int(iterations),
    )
    return tau * jnp.asarray(dt, phi.dtype)


@functools.partial(jax.jit, static_argnames=("max_lag", "iterations"))
def _coherent_core(smoothed, edges, ring, mask, anchor_weight, huber, window, *, max_lag, iterations):
    """Jitted body of :func:`spatially_coherent` (times in samples)."""
    t0 = activation_times(-smoothed, 1.0, method="upstroke")
    d = -jnp.gradient(smoothed, axis=1)
    # Start from the 1-ring median of the downslope times: a lead whose own downslope is a noise
    # spike then still gets its window where its neighbours activate.
    centre = jnp.median(t0[ring], axis=1)
    mu2 = anchor_weight**2 * jnp.minimum(1.0, huber / jnp.maximum(jnp.abs(centre - t0), 1e-12))
    for _ in range(iterations):
        lag, rho = _edge_delays(d, centre, edges, max_lag, window)
        tau = _edge_least_squares(t0, edges, lag, jnp.maximum(rho, 0.0) * mask, mu2)
        # Next pass: windows follow the coherent estimate, and a node whose own downslope time
        # disagrees with it by more than `huber` samples is anchored with Huber IRLS weight
        # huber / |tau - t0|, so that a noise spike at one lead stops pulling on its time.
        centre = tau
        mu2 = anchor_weight**2 * jnp.minimum(1.0, huber / jnp.maximum(jnp.abs(tau - t0), 1e-12))
    return tau


# --------------------------------------------------------------------------- pacing site
def pacing_site(times, vertices=None, *, valid=None):
    """Node of earliest activation (``argmin`` of ``times`` over ``valid`` nodes).

    Args:
        times: ``(N,)`` activation times.
        vertices: optional ``(N, 3)`` node positions; if given, also return the position.
        valid: optional ``(N,)`` bool mask; invalid nodes are never chosen.

    Returns:
        The node index (int array scalar), or ``(index, xyz)`` when ``vertices`` is given.

    Raises:
        ValueError: ``times`` not 1-D, shape mismatch with ``vertices``/``valid``, no valid node.
    """
    t = jnp.asarray(times)
    if t.ndim != 1:
        raise ValueError(f"times must be 1-D (N,); got shape {t.shape}.")
    if valid is not None:
        v = jnp.asarray(valid)
        if v.shape != t.shape or v.dtype != bool:
            raise ValueError(f"valid must be a boolean mask of shape {t.shape}; got {v.dtype} {v.shape}.")
        if isinstance(valid, np.ndarray) and not valid.any():
            raise ValueError("valid marks no node as usable.")
        t = jnp.where(v, t, jnp.inf)
    k = jnp.argmin(t)
    if vertices is None:
        return k
    x = jnp.asarray(vertices)
    if x.shape != (t.shape[0], 3):
        raise ValueError(f"vertices must have shape ({t.shape[0]}, 3); got {x.shape}.")
    return k, x[k]


def localization_error_mm(estimate, true_xyz, vertices=None):
    """Euclidean distance between an estimated pacing site and the true one (units of the mesh).

    Args:
        estimate: a node index (then ``vertices`` is required) or a position ``(3,)``.
        true_xyz: the true position ``(3,)`` (e.g. ``vertices[true_node]``).
        vertices: ``(N, 3)`` node positions, needed when ``estimate`` is an index.

    Returns:
        Scalar distance (mm for the project's meshes).

    Raises:
        ValueError: an index without ``vertices``, or positions that are not 3-vectors.
    """
    est = jnp.asarray(estimate)
    if est.ndim == 0:
        if not jnp.issubdtype(est.dtype, jnp.integer):
            raise ValueError("estimate must be an integer node index or a (3,) position.")
        if vertices is None:
            raise ValueError("estimate is a node index: pass vertices=(N, 3) to locate it.")
        est = jnp.asarray(vertices)[est]
    true = jnp.asarray(true_xyz)
    if est.shape != (3,) or true.shape != (3,):
        raise ValueError(f"positions must be (3,) vectors; got {est.shape} and {true.shape}.")
    return jnp.linalg.norm(est.astype(float) - true.astype(float))
