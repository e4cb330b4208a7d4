"""Inverse ECG by shooting: fit a handful of beat parameters through the differentiable simulator.

Instead of reconstructing the ``n × t`` heart potentials, the beat is *parametrised* and the
parameters θ are fitted so that the simulated beat explains the body potentials,

    min_θ  ‖Y − A·U(θ)‖²_F ,

where ``U(θ)`` is the Aliev–Panfilov trajectory (:func:`ecgi_jax.ep.simulate`'s integrator, Heun)
started from a smooth initial activation. The parametrisation (``p = 5 … 7`` numbers):

* ``cx, cy, cz`` — centre ``c`` of the initial activation (mm, free in space; the nearest heart
  node is reported as the pacing site);
* ``log_width`` — ``w`` of the Gaussian patch ``u(0)_i = exp(−‖x_i − c‖² / (2 w²))``, ``v(0) = 0``;
* ``onset`` — time shift τ (AP units): ``U(t) = U_sim(t − τ)``, cubic (Catmull–Rom) interpolation
  between samples; before the onset the heart rests (``u = v = 0``); a negative τ (the beat started before
  the recording) is allowed down to ``−max_advance``, for which the simulation runs that much longer;
* ``log_D`` (``fit_D``) — ``D = D₀·exp(η)``, η ∈ ±log ``D_RANGE`` (16; a per-node ``D₀`` — a scar — is
  scaled as a whole);
* ``logit_a`` (``fit_a``) — ``a = sigmoid(logit(a₀) + η)``, η ∈ [−1.5, 1.5].

Every parameter is kept in a box (clipped after each step); the boxes are listed in
:func:`parameter_bounds`.

Why forward mode: with ``p ≤ 7`` the Jacobian ``J = ∂r/∂θ`` ``(m·t × p)`` costs one simulation
carrying ``p`` tangents (``jax.jvp`` vmapped over the unit vectors), with no trajectory stored,
whereas reverse mode needs one backward sweep per residual *component* for ``J`` (or the stored —
or recomputed, :func:`trajectory` with ``checkpoint=True`` — trajectory for a gradient only). The
full ``J`` is what Gauss–Newton wants, so forward mode it is. Reverse mode with per-sample
checkpointing is offered by :func:`misfit` ``+ jax.grad`` (used by the tests and the gradient
benchmark, and the right choice once θ has hundreds of entries, e.g. a per-node field).

The optimiser is the solvers' Levenberg–Marquardt (:func:`fit_start`), run from several starts.
The uncertainty is the Laplace (Gauss–Newton) approximation at the optimum
(:func:`laplace_covariance`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...ep import APParams, APProblem, activation_times, stable_substeps
from ...forward import NoPositiveGain, Observation, check_observation, fit_observation, misfit_scale
from ...operators import SparseOperator, csr_adjacency
from .._levenberg_marquardt import LMResult, levenberg_marquardt
from ._model import D_RANGE, ShootingConfig, _unpack, misfit, parameter_bounds, residual_and_jacobian, shoot
from ._pacing import PacingSearch, pacing_search

__all__ = ["ShootingFit", "fit_start", "laplace_covariance", "shooting_fit"]

_HI = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------------------------
# Levenberg–Marquardt


def _gauss_newton_system(theta, problem: APProblem, config: ShootingConfig):
    """``(Jᵀr, JᵀJ)`` at ``theta``: the system :func:`~ecgi_jax.solvers.levenberg_marquardt` asks for."""
    r, J = residual_and_jacobian(theta, problem, config)
    return jnp.matmul(J.T, r, precision=_HI), jnp.matmul(J.T, J, precision=_HI)


def fit_start(theta0, problem: APProblem, config: ShootingConfig, lower, upper, *, max_iter=20, tol: float = 1e-4, lam0: float = 1e-2) -> LMResult:
    """The Levenberg–Marquardt fit of θ from one start (:func:`~ecgi_jax.solvers.levenberg_marquardt`
    with the shooting residual; θ kept in ``[lower, upper]``). The Jacobian (``p`` tangents: ~8×
    a residual) is computed at accepted points only: about half the trials are rejected, which
    saved ~30 % of the multi-start stage at 642 × 400 (18.5 → 13 s). Jittable with ``config``,
    ``tol`` and ``lam0`` static (``max_iter`` may be traced)."""
    return levenberg_marquardt(
        lambda th: misfit(th, problem, config), lambda th: _gauss_newton_system(th, problem, config), theta0,
        max_iter=max_iter, tol=tol, lam0=lam0, lower=lower, upper=upper,
    )


def laplace_covariance(theta, problem: APProblem, config: ShootingConfig, prior_sd):
    """Laplace (Gauss–Newton) posterior covariance of θ at an optimum.

    ``Σ = (JᵀJ/σ̂² + diag(1/prior_sd²))⁻¹`` with ``σ̂² = ‖r‖²/(m·t − p)`` the residual variance and
    a weak Gaussian prior (``prior_sd`` ``(p,)``, wide) that keeps Σ finite in directions the data
    do not see (e.g. the width of a patch far below the mesh spacing). Without the prior this is
    the classical ``σ̂²(JᵀJ)⁻¹``.

    ``r`` and ``J`` come from the (jitted) forward-mode :func:`residual_and_jacobian`; the ``p × p``
    algebra runs on the host in float64 with Jacobi scaling, because the precision matrix mixes
    millimetres with log-parameters and is too ill-conditioned for a float32 inverse.

    Returns:
        ``(cov (p, p) float64 ndarray, sigma2 float)``.
    """
    r, J = _residual_and_jacobian(theta, problem, config)
    r, J = np.asarray(r, np.float64), np.asarray(J, np.float64)
    dof = max(r.shape[0] - J.shape[1], 1)
    sigma2 = float(r @ r) / dof
    H = J.T @ J / sigma2 + np.diag(1.0 / np.asarray(prior_sd, np.float64) ** 2)
    s = 1.0 / np.sqrt(np.diag(H))
    cov = s[:, None] * np.linalg.inv(s[:, None] * H * s[None, :]) * s[None, :]
    return 0.5 * (cov + cov.T), sigma2


# ----------------------------------------------------------------------------------------------
# the fit


class ShootingFit(NamedTuple):
    """Result of :func:`shooting_fit`.

    Attributes:
        U, V: the fitted beat ``(n, t)``.
        theta: ``(p,)`` best parameters (named by ``names``); cov: ``(p, p)`` Laplace covariance;
            std: ``sqrt(diag(cov))``; sigma2: residual variance ``σ̂²``.
        ap_params: the fitted :class:`~ecgi_jax.ep.APParams`; node: heart node nearest the centre;
            onset, width: the fitted onset time and patch width.
        misfit: ``‖Y − AU‖² / ‖Y‖²`` of the best start (:func:`~ecgi_jax.forward.relative_misfit`: with
            the gain and offsets over the leads' centred ``‖Y‖²``).
        observation: the gain and offsets mapping ``A U`` to ``Y`` (the identity unless fitted).
        starts: ``(k, p)`` start parameters; start_nodes ``(k,)``; lm: the
            :class:`LMResult` of every start.
        config: the :class:`ShootingConfig`.
        best: index of the fit returned (in ``starts``, ``start_nodes`` and ``lm``).
        at_bounds: the physics parameters (``"log_D"``, ``"logit_a"``) the fit left at an edge of
            their box (:func:`parameter_bounds`; a warning says so).
    """

    U: jax.Array
    V: jax.Array
    theta: np.ndarray
    names: tuple
    cov: np.ndarray
    std: np.ndarray
    sigma2: float
    ap_params: APParams
    node: int
    onset: float
    width: float
    misfit: float
    starts: np.ndarray
    start_nodes: np.ndarray
    lm: LMResult
    config: ShootingConfig
    best: int
    observation: Observation = Observation()
    at_bounds: tuple = ()


def _spacing(vertices, adjacency) -> float:
    indptr, indices = (np.asarray(a) for a in adjacency)
    v = np.asarray(vertices, np.float64)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return float(np.mean(np.linalg.norm(v[indices] - v[rows], axis=1)))


def _distinct(order, vertices, k, min_dist):
    """The first ``k`` nodes of ``order`` at least ``min_dist`` apart (greedy)."""
    chosen: list[int] = []
    for i in order:
        if all(np.linalg.norm(vertices[i] - vertices[j]) >= min_dist for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return chosen


def _as_laplacian(laplacian, n, dtype):
    import scipy.sparse as sp

    if laplacian is None:
        raise ValueError("shooting needs the heart's mesh Laplacian: pass laplacian=(n, n).")
    if sp.issparse(laplacian):
        laplacian = SparseOperator.from_scipy(laplacian, dtype)
    elif isinstance(laplacian, SparseOperator):
        laplacian = laplacian.astype(dtype)
    else:
        laplacian = jnp.asarray(laplacian, dtype)
    if tuple(laplacian.shape) != (n, n):
        raise ValueError(f"laplacian has shape {tuple(laplacian.shape)}; expected ({n}, {n}) for A with {n} columns.")
    return laplacian


# One start after another, not vmapped: each LM then skips the Jacobian of its rejected trials
# and stops on its own (vmapped, every start pays for both and runs as long as the slowest; at 642
# nodes x 400 samples, 4 vmapped Jacobians took 3.6x one). A call per start rather than a lax.map
# over the starts, so that the screening's n_starts and the later single starts share one compiled
# program (the map compiled once per number of starts: ~2 s each on a 2-core CPU).
_fit_start = jax.jit(fit_start, static_argnames=("config", "tol"))


def _fit_starts(theta0, problem, config, lower, upper, max_iter, *, tol) -> LMResult:
    """:func:`fit_start` from each row of ``theta0 (k, p)``; the results stacked (leading ``k``)."""
    max_iter = jnp.asarray(max_iter, jnp.int32)
    runs = [_fit_start(th, problem, config, lower, upper, max_iter=max_iter, tol=tol) for th in theta0]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)


_residual_and_jacobian = jax.jit(residual_and_jacobian, static_argnames=("config",))
_shoot = jax.jit(shoot, static_argnames=("config",))


def shooting_fit(
    Y,
    A,
    laplacian,
    *,
    vertices,
    adjacency,
    dt: float = 0.1,
    ap_params: APParams = APParams(),
    start="search",
    n_starts: int = 4,
    fit_D: bool = True,
    fit_a: bool = True,
    max_iter: int = 20,
    screen_iter: int = 8,
    tol: float = 1e-4,
    max_advance: float = 2.0,
    n_candidates: int = 64,
    substeps: int | None = None,
    prior_sd=None,
    refine: int = 2,
    observation: str = "identity",
) -> ShootingFit:
    """Fit the beat parameters θ (module docstring) to ``Y ≈ A·U(θ)``; multi-start.

    Args:
        Y: ``(m, t)`` body potentials, sample 0 at (about) the pacing instant.
        A: ``(m, n)`` transfer matrix.
        laplacian: the heart's Laplacian ``(n, n)`` (SparseOperator, scipy sparse or dense).
        vertices: ``(n, 3)`` heart nodes; adjacency: the 1-ring, CSR ``(indptr, indices)`` or per-node neighbour lists.
        dt: sample spacing (AP time units).
        ap_params: reference AP parameters (``D₀``, ``a₀`` and the fixed ones).
        start: where the starts come from:
            ``"search"`` — :func:`pacing_search` (farthest-point candidates + greedy walk): its best
            node and the next-best candidates at least 3 mesh spacings apart (or a
            :class:`PacingSearch` already run on the same data, to reuse it);
            an int array of nodes — centres at those nodes, onset 0;
            ``(U, V)`` or ``U`` ``(n, t)`` — a previous reconstruction (e.g. EAND-ARN's): centres at
            the ``n_starts`` earliest-activating distinct nodes, onset their activation time.
        n_starts: number of starts (fitted one after another in one compiled call); the lowest misfit wins.
        fit_D, fit_a: add ``log_D`` / ``logit_a`` to θ (both by default: with ``a`` fixed, a true
            ``a`` 20 % off is absorbed by a wrong D, and on the P-DL heart RE was 0.08–0.15
            instead of 0.006).
        max_iter, tol: LM stopping rule (see :func:`~ecgi_jax.solvers.levenberg_marquardt`).
        screen_iter: LM iterations of every start before the best is chosen; the best then runs
            on (``max_iter`` more, freeing ``a`` with ``fit_a``). Screening with the full budget
            spent most of a fit on starts that lose (642 nodes × 400 samples: 14.5 of 23 s).
        max_advance: how far (AP time) the onset may lie before sample 0.
        n_candidates: candidates of the pacing search.
        substeps: simulator sub-steps per sample (default: stable for ``D_RANGE·D₀`` if ``fit_D``).
        prior_sd: ``(p,)`` sds of the weak prior in the Laplace covariance (default: centre
            20 spacings, log_width 2, onset 100·dt, log_D 1, logit_a 1).
        refine: rounds of site refinement after the multi-start fit. Levenberg–Marquardt moves
            the centre only while the misfit falls smoothly; a start one mesh spacing off the
            true site, with D or a far from the truth, can settle on the wrong node (on the
            P-DL heart with D 20 % low: 7.5 mm off, RE 0.28 instead of 0.008). Each round walks
            :func:`pacing_search` from the fitted node *with the fitted D and a*; if it ends on
            another node, LM restarts there (fitted width, D, a; the walk's onset) and its beat
            is kept if the misfit is lower. If the walk stays on the fitted node but LM stopped at
            ``max_iter`` rather than converging, LM continues from the best θ instead (only the
            best start pays for the extra iterations). ``0`` turns it off.
        observation: ``"identity"`` (``Y ≈ A·U``) or ``"gain-offset"`` (``Y ≈ g·A·U + b``:
            recordings in mV, a transfer matrix of another scale or sign, per-lead references).
            The gain and per-lead offsets are projected out of every residual in closed form
            (variable projection: the search, LM, its Jacobian and the Laplace covariance all
            see the profiled residual), and the best beat's are returned in ``observation``.

    Returns:
        :class:`ShootingFit`.

    Raises:
        ValueError: mismatched shapes, a missing Laplacian/vertices/adjacency, bad counts.
    """
    ap_params.validate()
    Y = jnp.asarray(Y)
    dtype = Y.dtype
    A = jnp.asarray(A, dtype)
    if Y.ndim != 2 or A.ndim != 2 or A.shape[0] != Y.shape[0]:
        raise ValueError(f"Y (m, t) and A (m, n) must share m; got Y {Y.shape}, A {A.shape}.")
    m, n_t = Y.shape
    n = A.shape[1]
    if vertices is None or adjacency is None:
        raise ValueError("shooting needs the heart nodes and their 1-ring: pass vertices=(n, 3) and adjacency=(indptr, indices).")
    verts = np.asarray(vertices, np.float64)
    if verts.shape != (n, 3):
        raise ValueError(f"vertices has shape {verts.shape}; expected ({n}, 3).")
    adjacency = csr_adjacency(adjacency)  # CSR or per-node neighbour lists
    if len(adjacency[0]) != n + 1:
        raise ValueError(f"adjacency has {len(adjacency[0]) - 1} nodes; A has {n} columns.")
    if not (isinstance(n_starts, (int, np.integer)) and n_starts >= 1):
        raise ValueError(f"n_starts must be a positive integer; got {n_starts!r}.")
    for name, value in (("max_iter", max_iter), ("screen_iter", screen_iter)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
            raise ValueError(f"{name} must be a non-negative integer (LM iterations; 0: none); got {value!r}.")
    if not (isinstance(refine, (int, np.integer)) and refine >= 0):
        raise ValueError(f"refine must be a non-negative integer; got {refine!r}.")
    if not dt > 0 or not max_advance >= 0:
        raise ValueError(f"dt must be positive and max_advance non-negative; got dt={dt}, max_advance={max_advance}.")
    lap = _as_laplacian(laplacian, n, dtype)
    if substeps is None:
        fastest = dataclasses.replace(ap_params, D=np.asarray(ap_params.D) * D_RANGE) if fit_D else ap_params
        substeps = stable_substeps(lap, fastest, dt)
    config = ShootingConfig(
        n_samples=int(n_t), substeps=int(substeps), pad=int(math.ceil(max_advance / dt - 1e-9)), fit_D=bool(fit_D),
        fit_a=bool(fit_a), checkpoint=False,  # forward mode stores no trajectory: nothing to checkpoint
        observation=check_observation(observation),
    )
    h = _spacing(verts, adjacency)
    lower, upper = parameter_bounds(verts, h, config, dt)
    p = config.n_params
    if prior_sd is None:
        prior_sd = [20.0 * h] * 3 + [2.0, 100.0 * dt] + ([1.0] if fit_D else []) + ([1.0] if fit_a else [])
    prior_sd = np.asarray(prior_sd, np.float64)
    if prior_sd.shape != (p,) or not np.all(prior_sd > 0):
        raise ValueError(f"prior_sd must be {p} positive numbers (one per parameter {config.names}); got {prior_sd}.")

    # starts
    if isinstance(start, (str, PacingSearch)):
        if isinstance(start, str) and start != "search":
            raise ValueError(f"start must be 'search', node indices, or a (U, V) reconstruction; got {start!r}.")
        ps = start if isinstance(start, PacingSearch) else pacing_search(
            Y, A, lap, vertices=verts, adjacency=adjacency, dt=dt, ap_params=ap_params, n_candidates=n_candidates,
            max_advance=max_advance, observation=observation,
        )
        order = [ps.node] + [int(i) for i in ps.visited[np.argsort(ps.visited_misfit, kind="stable")]]
        nodes = _distinct(order, verts, n_starts, 3.0 * h)
        onsets = np.zeros(len(nodes))
        onsets[0] = ps.onset  # the search's best onset for its best node
    elif isinstance(start, (tuple, list)) and len(start) == 2 and np.ndim(start[0]) == 2:
        nodes, onsets = _starts_from_map(start[0], dt, verts, n_starts, h)
    elif np.ndim(start) == 2:
        nodes, onsets = _starts_from_map(start, dt, verts, n_starts, h)
    else:
        nodes = [int(i) for i in np.atleast_1d(np.asarray(start))]
        if not nodes or min(nodes) < 0 or max(nodes) >= n:
            raise ValueError(f"start nodes must be indices in [0, {n - 1}]; got {nodes}.")
        onsets = np.zeros(len(nodes))
    theta0 = np.zeros((len(nodes), p))
    theta0[:, :3] = verts[nodes]
    theta0[:, 3] = math.log(0.5 * h)
    theta0[:, 4] = onsets
    theta0 = np.clip(theta0, lower, upper)

    problem = APProblem(
        Y, A, lap, jnp.asarray(verts, dtype), jax.tree.map(lambda x: jnp.asarray(x, dtype), ap_params), jnp.asarray(dt, dtype)
    )
    lo, hi = jnp.asarray(lower, dtype), jnp.asarray(upper, dtype)
    starts, nodes = [np.asarray(theta0)], list(nodes)

    def fit(theta, cfg, lo, hi, iterations=max_iter):
        return _fit_starts(jnp.asarray(theta, dtype), problem, cfg, lo, hi, iterations, tol=float(tol))

    def fit_one_more(lm, best, theta, node):
        """LM from one more start ``theta (1, p)``, appended to the record (every start stays in
        ``lm``/``starts``: the diagnostics list them all); returns ``(lm, best, improved)``."""
        more = fit(theta, config, lo, hi)
        starts.append(np.asarray(theta))
        nodes.append(node)
        improved = bool(jnp.isfinite(more.cost[0]) & (more.cost[0] < lm.cost[best]))
        lm = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), lm, more)
        return lm, (len(nodes) - 1 if improved else best), improved

    # Every start is screened with a fixed (screen_iter iterations); then a is freed from the best
    # of them (or, without fit_a, the best runs on).
    # Fitting D and a together from the starts found worse local optima (on the P-DL heart with a
    # scar: misfit 0.0077 against 0.0051 for the nested fixed-a model). θ with logit_a = 0 *is* the
    # fixed-a model, so the first stage's results, padded with it, stay valid entries of the record.
    first = dataclasses.replace(config, fit_a=False)
    k = first.n_params
    lm = fit(theta0[:, :k], first, lo[:k], hi[:k], min(screen_iter, max_iter))
    lm = lm._replace(x=jnp.pad(lm.x, ((0, 0), (0, p - k))))
    best = int(jnp.argmin(jnp.where(jnp.isfinite(lm.cost), lm.cost, jnp.inf)))
    if config.fit_a or (screen_iter < max_iter and not bool(lm.converged[best])):
        lm, best, _ = fit_one_more(lm, best, lm.x[best][None], nodes[best])
    for _ in range(refine):
        theta = np.asarray(lm.x[best], np.float64)
        node = _nearest(verts, theta[:3])
        try:
            walk = pacing_search(
                Y, A, lap, vertices=verts, adjacency=adjacency, dt=dt, ap_params=_unpack(lm.x[best], problem, config)[3],
                max_advance=max_advance, candidates=[node], substeps=int(substeps), observation=observation,
            )
        except NoPositiveGain:
            # A single-node beat at the fitted D and a explains nothing here (seen on a measured
            # beat with D far from D₀): no walk to take; the fitted patch stands.
            break
        if walk.node == node:
            if bool(lm.converged[best]):
                break
            # Right site, but LM ran out of iterations (D and a trade off along a shallow
            # valley): continue it from where it stopped.
        else:
            theta[:3], theta[4] = verts[walk.node], walk.onset
        lm, best, improved = fit_one_more(lm, best, np.clip(theta, lower, upper)[None], walk.node)
        if not improved:
            break
    theta0 = np.concatenate(starts)
    theta = lm.x[best]
    cov, sigma2 = laplace_covariance(theta, problem, config, prior_sd)
    U, V = _shoot(theta, problem, config)
    _, width, onset, fitted = _unpack(theta, problem, config)
    th = np.asarray(theta, np.float64)
    # A physics parameter held by its box is a model the data push beyond: say so, do not hide it.
    at_bounds = tuple(name for name, x, lo, hi in zip(config.names, th, lower, upper)
                      if name in ("log_D", "logit_a") and min(x - lo, hi - x) <= 1e-3 * (hi - lo))
    if at_bounds:
        warnings.warn(
            f"shooting: {' and '.join(at_bounds)} ended at the edge of the box it is fitted in (D = "
            f"{np.asarray(fitted.D).mean():.3g}, a = {float(fitted.a):.3g}): the data ask for a beat the model does not "
            "reach there. Check the units: the mesh in mm, dt in AP time units (HeartModel.from_mesh(..., time_unit=, "
            "time_scale=) converts recordings in ms).",
            RuntimeWarning,
            stacklevel=2,
        )
    return ShootingFit(
        U=U, V=V, theta=th, names=config.names, cov=cov, std=np.sqrt(np.diag(cov)), sigma2=sigma2, ap_params=fitted,
        node=_nearest(verts, th[:3]), onset=float(onset), width=float(width),
        misfit=float(lm.cost[best] / misfit_scale(Y, observation)),
        starts=theta0, start_nodes=np.asarray(nodes), lm=lm, config=config, best=best,
        observation=fit_observation(Y, jnp.matmul(A, U, precision=_HI), observation), at_bounds=at_bounds,
    )


def _nearest(vertices, x) -> int:
    """The heart node nearest to the point ``x``."""
    return int(np.argmin(np.linalg.norm(vertices - x, axis=1)))


def _starts_from_map(U, dt, vertices, k, h):
    U = jnp.asarray(U)
    if U.shape[0] != len(vertices):
        raise ValueError(f"start map has {U.shape[0]} rows; expected {len(vertices)} heart nodes.")
    t = np.asarray(activation_times(U, dt), np.float64)
    nodes = _distinct(np.argsort(t, kind="stable"), vertices, k, 3.0 * h)
    return nodes, t[nodes]
