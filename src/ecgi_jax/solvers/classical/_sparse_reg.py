"""Sparsity-promoting regularization: L1 / total variation by ADMM, Lp–Lq by majorization–minimization.

L1 and total variation (TV)
---------------------------
Problem (``Y`` is ``(M, T)``; every time column shares ``A``, ``R`` and ``λ``)::

    X = argmin_X ‖A X − Y‖_F² + λ ‖R X‖_1

with ``R = I`` (L1: sparse potentials) or a first-order operator (TV: piecewise-constant maps),
``R`` being an edge gradient ``(E, N)`` (:func:`ecgi_jax.operators.edge_gradient`, anisotropic
graph TV) or a surface gradient ``(3F, N)`` (:func:`ecgi_jax.operators.surface_gradient`; with
``group=3`` the three gradient components of each triangle are shrunk together: isotropic TV).
``‖·‖_1`` sums absolute values over all entries (all time samples), or the Euclidean norms of the
row groups when ``group > 1``.

ADMM (Boyd, Parikh, Chu, Peleato & Eckstein 2011, §6.4 "generalized lasso"), scaled form, with
``Z = R X`` and scaled dual ``W``::

    X ← (AᵀA + (ρ/2) RᵀR)⁻¹ (AᵀY + (ρ/2) Rᵀ(Z − W))           (x-update: one cached factor)
    H ← α R X + (1 − α) Z                                       (over-relaxation, α ∈ [1, 1.8])
    Z ← shrink(H + W, λ/ρ)                                       (soft threshold)
    W ← W + H − Z

The x-update matrix does not change between iterations or time samples, so it is factored once:
``AᵀA + (ρ/2)RᵀR = TᵀT`` with ``T`` the triangular factor of the QR decomposition of the stacked
matrix ``[A; sqrt(ρ/2) R̃]`` (``R̃`` = ``R`` reduced to ``N`` rows by its own QR when taller).
That *is* the Cholesky factor, obtained without forming ``AᵀA`` (which would square the condition
number of a transfer matrix — fatal in float32). Each iteration is two triangular solves with all
``T`` columns at once. ``AᵀA + (ρ/2)RᵀR`` must be positive definite: ``null(A) ∩ null(R) = {0}``.

Stopping rule (Boyd et al. 2011, §3.3.1): stop when both

    primal residual  r = ‖R X − Z‖_F          ≤ ε_pri  = sqrt(K·T)·tol_abs + tol_rel·max(‖R X‖_F, ‖Z‖_F)
    dual residual    s = ρ‖Rᵀ(Z − Z_prev)‖_F   ≤ ε_dual = sqrt(N·T)·tol_abs + tol_rel·ρ‖Rᵀ W‖_F

or after ``max_iter`` iterations. The loop is one jitted ``lax.while_loop`` with the operators as
arguments. At a solution ``u = ρW`` is a subgradient certificate: ``2Aᵀ(AX − Y) + Rᵀu = 0`` and
``u ∈ λ ∂‖·‖_1(RX)`` (|u| ≤ λ, ``u = λ sign(RX)`` where ``RX ≠ 0``).

Lp–Lq
-----
Problem (``0 < p, q ≤ 2``; ``φ_r(t) = (t² + ε²)^{r/2}``, the smoothed ``|t|^r``)::

    X = argmin_X Σ φ_p(A X − Y; ε_p) + λ Σ φ_q(R X; ε_q)

(``p = 2``: the data term is ``‖AX − Y‖²`` up to a constant). Iteratively reweighted least
squares with a *fixed quadratic majorant* (Huang, Lanza, Morigi, Reichel & Sgallari 2017, BIT 57):
because ``φ_r'' ≤ r ε^{r−2}`` for ``r ≤ 2``, every ``φ_r`` is majorized at ``t_k`` by a parabola of
that fixed curvature, and minimizing the sum of majorants is the least-squares problem::

    (AᵀA + μ RᵀR) X = Aᵀ(Y + a_k) + μ Rᵀ b_k,     μ = λ q ε_q^{q−2} / (p ε_p^{p−2}),
    a_k = t_k (1 − ω_p(t_k)),  t_k = A X_k − Y;   b_k = s_k (1 − ω_q(s_k)),  s_k = R X_k;
    ω_r(t) = (1 + t²/ε_r²)^{(r−2)/2}       (the IRLS weights, moved to the right-hand side)

The matrix is fixed, so one factorization again serves all iterations and time samples (classical
IRLS would re-factor per iteration *and* per time sample, because the weights differ per entry).
The smoothed objective decreases monotonically. Stopping: ``‖X_{k+1} − X_k‖_F ≤ tol·‖X_{k+1}‖_F``
or ``max_iter``. For ``q < 1`` the problem is non-convex: the result depends on the start
(default: the Tikhonov solution passed in).

Every array function here is jittable; dtypes follow the inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ...operators import SparseOperator
from ._tikhonov import _as_2d, _dtype, as_matrix

__all__ = [
    "SparseResult",
    "normal_factor",
    "shrink",
    "admm_l1",
    "lp_lq",
    "lp_lq_objective",
    "lp_lq_weight",
    "sparse_penalty",
]


# ----------------------------------------------------------------------------------------------
# pieces


def _apply(R, X):
    """``R @ X`` with ``R = None`` meaning the identity (dense arrays and SparseOperators alike)."""
    return X if R is None else R @ X


def _transpose(R):
    return None if R is None else R.T


def _prepare_R(R, dtype):
    """Dense arrays are cast; a SparseOperator keeps its form (applied by segment_sum)."""
    if R is None:
        return None
    if isinstance(R, SparseOperator):
        return R.astype(dtype)
    return as_matrix(R, dtype)


def normal_factor(A, R=None, mu=1.0) -> jax.Array:
    """Upper-triangular ``T`` (``N × N``) with ``TᵀT = AᵀA + mu·RᵀR``, from the QR decomposition of
    ``[A; sqrt(mu) R̃]`` — the Cholesky factor without forming ``AᵀA``.

    Args:
        A: ``(M, N)``.
        R: ``(K, N)`` dense / SparseOperator / scipy sparse, or ``None`` (identity).
        mu: positive weight.

    Returns:
        ``(N, N)`` upper-triangular factor. Jittable (``R`` dense or SparseOperator).

    Raises:
        ValueError: ``R`` of the wrong width, or too few rows in total for ``null(A) ∩ null(R) = {0}``.
    """
    A = jnp.asarray(A)
    dtype = _dtype(A)
    A = A.astype(dtype)
    m, n = A.shape
    Rd = jnp.eye(n, dtype=dtype) if R is None else as_matrix(R, dtype)
    if Rd.ndim != 2 or Rd.shape[1] != n:
        raise ValueError(f"R has shape {Rd.shape}; expected (K, {n}) to match A of shape {A.shape}.")
    if Rd.shape[0] > n:
        Rd = jnp.linalg.qr(Rd, mode="r")  # same RᵀR, N×N
    if m + Rd.shape[0] < n:
        raise ValueError(
            f"A {A.shape} and R {Rd.shape} together have fewer rows than columns: AᵀA + μRᵀR is "
            "singular (null(A) ∩ null(R) ≠ {0})."
        )
    S = jnp.concatenate([A, jnp.sqrt(jnp.asarray(mu, dtype)) * Rd], axis=0)
    T = jnp.linalg.qr(S, mode="r")
    # Make the diagonal positive (QR's signs are arbitrary); TᵀT is unchanged.
    sign = jnp.where(jnp.diagonal(T) < 0, -1.0, 1.0).astype(dtype)
    return T * sign[:, None]


def _normal_solve(T, B):
    """``(TᵀT)⁻¹ B``: two triangular solves, all columns at once."""
    tri = jax.scipy.linalg.solve_triangular
    return tri(T, tri(T, B, trans="T", lower=False), lower=False)


def shrink(V, threshold, group: int = 1):
    """Proximal map of ``threshold·‖·‖_1``: soft thresholding of every entry (``group = 1``), or
    block soft thresholding of consecutive groups of ``group`` rows (each time column separately),
    the proximal map of the sum of the groups' Euclidean norms (isotropic TV for a ``(3F, N)``
    surface gradient with ``group = 3``)."""
    if group == 1:
        return jnp.sign(V) * jnp.maximum(jnp.abs(V) - threshold, 0.0)
    k, t = V.shape
    G = V.reshape(k // group, group, t)
    norm = jnp.sqrt(jnp.sum(G**2, axis=1, keepdims=True))
    scale = jnp.maximum(1.0 - threshold / jnp.maximum(norm, jnp.finfo(V.dtype).tiny), 0.0)
    return (G * scale).reshape(k, t)


def sparse_penalty(RX, group: int = 1):
    """``‖RX‖_1`` (``group = 1``) or the sum of the Euclidean norms of consecutive row groups."""
    if group == 1:
        return jnp.sum(jnp.abs(RX))
    k, t = RX.shape
    return jnp.sum(jnp.sqrt(jnp.sum(RX.reshape(k // group, group, t) ** 2, axis=1)))


class SparseResult(NamedTuple):
    """Output of :func:`admm_l1` / :func:`lp_lq`.

    Attributes:
        X: ``(N, T)`` solution.
        Z: ``(K, T)`` split variable ``≈ R X`` (ADMM) or ``R X`` (Lp–Lq).
        dual: ``(K, T)`` unscaled dual ``u = ρW`` (ADMM: the subgradient certificate), zeros for Lp–Lq.
        iterations: iterations run.
        primal_residual: final ``‖RX − Z‖_F`` (ADMM) or last relative step ``‖ΔX‖/‖X‖`` (Lp–Lq).
        dual_residual: final ``ρ‖Rᵀ(Z − Z_prev)‖_F`` (ADMM); ``nan`` for Lp–Lq.
        converged: whether the stopping rule was met before ``max_iter``.
    """

    X: jax.Array
    Z: jax.Array
    dual: jax.Array
    iterations: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    converged: jax.Array


# ----------------------------------------------------------------------------------------------
# ADMM for L1 / TV


def _check_group(R, n, group):
    k = n if R is None else R.shape[0]
    if not isinstance(group, int) or group < 1 or k % group:
        raise ValueError(f"group must be a positive integer dividing the {k} rows of R; got {group!r}.")


def admm_l1(
    Y, A, lam, R=None, *, rho, factor=None, X0=None, max_iter=1000, tol_abs=1e-6, tol_rel=1e-3,
    relaxation=1.0, group: int = 1,
) -> SparseResult:
    """``argmin_X ‖AX − Y‖_F² + lam·‖RX‖_1`` by ADMM (module docstring). Jittable with ``group``
    static; ``R`` may be dense, a :class:`SparseOperator` or ``None`` (identity, i.e. L1).

    Args:
        Y: ``(M, T)`` data. A: ``(M, N)``. lam: penalty weight (> 0). R: ``(K, N)`` or ``None``.
        rho: ADMM penalty parameter (> 0).
        factor: :func:`normal_factor` ``(A, R, rho/2)``, to reuse across data sets; computed if ``None``.
        X0: optional ``(N, T)`` start (``Z₀ = R X0``, ``W₀ = 0``); default zeros.
        max_iter: iteration cap. tol_abs, tol_rel: Boyd's absolute / relative tolerances.
        relaxation: over-relaxation ``α`` (1 = plain ADMM; 1.5–1.8 often faster).
        group: row-group size of the shrinkage (1: anisotropic, 3 with a surface gradient: isotropic).

    Returns:
        :class:`SparseResult`.
    """
    Y, squeeze = _as_2d(Y)
    dtype = _dtype(Y, A)
    Y = Y.astype(dtype)
    A = jnp.asarray(A, dtype)
    R = _prepare_R(R, dtype)
    _check_group(R, A.shape[1], group)
    rho = jnp.asarray(rho, dtype)
    lam = jnp.asarray(lam, dtype)
    if factor is None:
        factor = normal_factor(A, R, rho / 2)
    X0 = jnp.zeros((A.shape[1], Y.shape[1]), dtype) if X0 is None else jnp.asarray(X0, dtype)
    out = _admm_loop(Y, A, R, _transpose(R), factor, lam, rho, X0, jnp.asarray(max_iter),
                     jnp.asarray(tol_abs, dtype), jnp.asarray(tol_rel, dtype), jnp.asarray(relaxation, dtype), group)
    if squeeze:
        out = out._replace(X=out.X[:, 0], Z=out.Z[:, 0], dual=out.dual[:, 0])
    return out


def _admm_loop(Y, A, R, Rt, T, lam, rho, X0, max_iter, tol_abs, tol_rel, alpha, group):
    AtY = A.T @ Y
    half = rho / 2
    Z0 = _apply(R, X0)
    n_pri = jnp.sqrt(jnp.asarray(Z0.size, Y.dtype))
    n_dual = jnp.sqrt(jnp.asarray(X0.size, Y.dtype))
    inf = jnp.asarray(jnp.inf, Y.dtype)

    def cond(state):
        k, _, _, _, r, s, e_pri, e_dual = state
        return (k < max_iter) & ~((r <= e_pri) & (s <= e_dual))

    def body(state):
        k, X, Z, W, *_ = state
        X = _normal_solve(T, AtY + half * _apply(Rt, Z - W))
        RX = _apply(R, X)
        H = alpha * RX + (1 - alpha) * Z
        Z_new = shrink(H + W, lam / rho, group)
        W = W + H - Z_new
        r = jnp.linalg.norm(RX - Z_new)
        s = rho * jnp.linalg.norm(_apply(Rt, Z_new - Z))
        e_pri = n_pri * tol_abs + tol_rel * jnp.maximum(jnp.linalg.norm(RX), jnp.linalg.norm(Z_new))
        e_dual = n_dual * tol_abs + tol_rel * rho * jnp.linalg.norm(_apply(Rt, W))
        return k + 1, X, Z_new, W, r, s, e_pri, e_dual

    init = (jnp.asarray(0), X0, Z0, jnp.zeros_like(Z0), inf, inf, jnp.zeros((), Y.dtype), jnp.zeros((), Y.dtype))
    k, X, Z, W, r, s, e_pri, e_dual = jax.lax.while_loop(cond, body, init)
    return SparseResult(X, Z, rho * W, k, r, s, (r <= e_pri) & (s <= e_dual))


# ----------------------------------------------------------------------------------------------
# Lp–Lq by IRLS with a fixed quadratic majorant


def _phi(t, r, eps):
    return (t**2 + eps**2) ** (r / 2)


def _omega(t, r, eps):
    return (1.0 + (t / eps) ** 2) ** ((r - 2) / 2)


def lp_lq_objective(X, Y, A, lam, R=None, *, p=2.0, q=1.0, eps_p=1.0, eps_q=1.0):
    """The smoothed Lp–Lq objective ``Σ φ_p(AX − Y; ε_p) + λ Σ φ_q(RX; ε_q)`` (module docstring)."""
    return jnp.sum(_phi(A @ X - Y, p, eps_p)) + lam * jnp.sum(_phi(_apply(R, X), q, eps_q))


def lp_lq_weight(lam, p, q, eps_p, eps_q):
    """``μ = λ q ε_q^{q−2} / (p ε_p^{p−2})``: the weight of ``RᵀR`` in the fixed majorant's normal matrix."""
    return lam * q * eps_q ** (q - 2) / (p * eps_p ** (p - 2))


def lp_lq(
    Y, A, lam, R=None, *, p=2.0, q=1.0, eps_p=1.0, eps_q=1.0, factor=None, X0=None, max_iter=500, tol=1e-4,
) -> SparseResult:
    """``argmin_X Σ φ_p(AX − Y) + lam Σ φ_q(RX)`` by IRLS with a fixed quadratic majorant
    (module docstring). Jittable.

    Args:
        Y: ``(M, T)``. A: ``(M, N)``. lam: weight (> 0). R: ``(K, N)`` or ``None`` (identity).
        p, q: exponents in ``(0, 2]`` (data fidelity, regularization).
        eps_p, eps_q: smoothing of ``|t|^p`` / ``|t|^q`` (absolute units of residuals / of ``RX``).
        factor: :func:`normal_factor` ``(A, R, lp_lq_weight(lam, p, q, eps_p, eps_q))``; computed if ``None``.
        X0: ``(N, T)`` start; default zeros (pass a Tikhonov solution for a better start).
        max_iter, tol: stop when ``‖ΔX‖_F ≤ tol·‖X‖_F`` or after ``max_iter`` iterations.

    Returns:
        :class:`SparseResult` (``primal_residual`` = last relative step; ``dual`` zeros).
    """
    Y, squeeze = _as_2d(Y)
    dtype = _dtype(Y, A)
    Y = Y.astype(dtype)
    A = jnp.asarray(A, dtype)
    R = _prepare_R(R, dtype)
    c = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    p, q, eps_p, eps_q, lam = c(p), c(q), c(eps_p), c(eps_q), c(lam)
    mu = lp_lq_weight(lam, p, q, eps_p, eps_q)
    if factor is None:
        factor = normal_factor(A, R, mu)
    X0 = jnp.zeros((A.shape[1], Y.shape[1]), dtype) if X0 is None else jnp.asarray(X0, dtype)
    out = _lp_lq_loop(Y, A, R, _transpose(R), factor, mu, p, q, eps_p, eps_q, X0, jnp.asarray(max_iter), c(tol))
    if squeeze:
        out = out._replace(X=out.X[:, 0], Z=out.Z[:, 0], dual=out.dual[:, 0])
    return out


def _lp_lq_loop(Y, A, R, Rt, T, mu, p, q, eps_p, eps_q, X0, max_iter, tol):
    At = A.T

    def cond(state):
        k, _, step = state
        return (k < max_iter) & (step > tol)

    def body(state):
        k, X, _ = state
        t = A @ X - Y
        s = _apply(R, X)
        a = t * (1 - _omega(t, p, eps_p))
        b = s * (1 - _omega(s, q, eps_q))
        X_new = _normal_solve(T, At @ (Y + a) + mu * _apply(Rt, b))
        step = jnp.linalg.norm(X_new - X) / jnp.maximum(jnp.linalg.norm(X_new), jnp.finfo(X.dtype).tiny)
        return k + 1, X_new, step

    k, X, step = jax.lax.while_loop(cond, body, (jnp.asarray(0), X0, jnp.asarray(jnp.inf, Y.dtype)))
    Z = _apply(R, X)
    return SparseResult(X, Z, jnp.zeros_like(Z), k, step, jnp.asarray(jnp.nan, Y.dtype), step <= tol)
