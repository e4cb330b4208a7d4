"""Spatiotemporal Tikhonov regularization, solved exactly by diagonalization.

Problem (in the spirit of Yao & Yang's STRE, Sci. Rep. 2016)::

    X = argmin ‖A X − Y‖_F² + λ_s ‖R X‖_F² + λ_t ‖X Dᵀ‖_F²

with ``R`` a spatial operator ``(K, N)`` (default identity) and ``D`` a temporal difference matrix
``(T, T)`` (default first derivative, 2nd-order accurate, :func:`ecgi_jax.operators.difference_matrix`).
The normal equations are the Sylvester equation::

    (AᵀA + λ_s RᵀR) X + λ_t X DᵀD = AᵀY.

Why not the generalized SVD of ``(A, R)``: it diagonalizes ``AᵀA`` and ``RᵀR`` but in a
non-orthogonal basis ``W``, and the temporal term acts with the *identity* in space, which ``W``
does not diagonalize (``WᵀW ≠ I``), so the equations would not decouple. Instead, for each λ_s we
diagonalize the whole spatial operator ``K = AᵀA + λ_s RᵀR = Q diag(σ²) Qᵀ`` in an orthonormal
basis, and ``DᵀD = P diag(θ) Pᵀ`` in time (once). In these bases the Sylvester equation is
entrywise::

    Z_ij = (Qᵀ AᵀY P)_ij / (σ_i² + λ_t θ_j),    X = Q Z Pᵀ,

exact, with any number of λ_t values for the price of one spatial decomposition. ``σ`` and ``Q``
come from the SVD of the stacked matrix ``[A; sqrt(λ_s) R]`` (not an eigendecomposition of ``K``,
which would square the condition number — that matters in float32). ``K`` must be positive
definite: ``null(A) ∩ null(R) = {0}``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...operators import difference_matrix
from ._lambda import LambdaChoice
from ._tikhonov import _as_2d, _dtype, as_matrix

__all__ = [
    "temporal_operator",
    "spatiotemporal",
    "spatiotemporal_path",
    "SpatiotemporalPath",
    "select_spatiotemporal",
]


def temporal_operator(n_samples: int, dt: float = 1.0, derivative: int = 1, order: int = 2) -> np.ndarray:
    """Default ``D``: the ``(T, T)`` finite-difference matrix of the ``derivative``-th time
    derivative (``x @ D.T`` differentiates each row of ``x`` in time)."""
    return difference_matrix(n_samples, dt, derivative=derivative, order=order)


def _reduce_R(R, n, dtype):
    if R is None:
        return jnp.eye(n, dtype=dtype)
    R = as_matrix(R, dtype)
    if R.ndim != 2 or R.shape[1] != n:
        raise ValueError(f"R has shape {R.shape}; expected (K, {n}).")
    if R.shape[0] > n:
        R = jnp.linalg.qr(R, mode="r")  # same RᵀR, N×N
    return R


def _spatial(A, R, lam_s):
    """Orthonormal eigenbasis ``Q`` and eigenvalues ``σ²`` of ``AᵀA + λ_s RᵀR`` via the SVD of
    the stacked matrix."""
    m, n = A.shape
    if m + R.shape[0] < n:
        raise ValueError(f"A {A.shape} and R {R.shape} have fewer rows than columns together.")
    S = jnp.concatenate([A, jnp.sqrt(lam_s) * R], axis=0)
    _, sig, Qh = jnp.linalg.svd(S, full_matrices=False)
    return Qh.T, sig**2


def _temporal(D, dtype):
    D = jnp.asarray(D, dtype)
    theta, P = jnp.linalg.eigh(D.T @ D)
    return P, jnp.maximum(theta, 0.0)  # DᵀD is PSD: clip round-off negatives


def _prepare(Y, A, R, D, dt):
    Y, squeeze = _as_2d(Y)
    dtype = _dtype(Y, A)
    Y = Y.astype(dtype)
    A = jnp.asarray(A, dtype)
    n_t = Y.shape[1]
    if D is None:
        D = temporal_operator(n_t, dt)
    D = as_matrix(D, dtype)
    if D.shape != (n_t, n_t):
        raise ValueError(f"D has shape {D.shape}; expected ({n_t}, {n_t}) for T = {n_t} time samples.")
    return Y, A, _reduce_R(R, A.shape[1], dtype), D, squeeze


def spatiotemporal(Y, A, lam_s, lam_t, R=None, D=None, *, dt: float = 1.0) -> jax.Array:
    """Exact minimizer of ``‖AX − Y‖² + lam_s‖RX‖² + lam_t‖X Dᵀ‖²`` (module docstring).

    Args:
        Y: ``(M, T)``; A: ``(M, N)``; R: ``(K, N)`` or ``None`` (identity); D: ``(T, T)`` or
            ``None`` (first difference with spacing ``dt``).
    Returns ``(N, T)``. Jittable (``dt`` static when ``D`` is None).
    """
    Y, A, R, D, squeeze = _prepare(Y, A, R, D, dt)
    Q, sig2 = _spatial(A, R, jnp.asarray(lam_s, Y.dtype))
    P, theta = _temporal(D, Y.dtype)
    F = (A @ Q).T @ (Y @ P)
    Z = F / (sig2[:, None] + jnp.asarray(lam_t, Y.dtype) * theta[None, :])
    X = Q @ Z @ P.T
    return X[:, 0] if squeeze else X


class SpatiotemporalPath(NamedTuple):
    """Diagnostics on a ``(L_s, L_t)`` grid of ``(λ_s, λ_t)``.

    Attributes:
        lams_s, lams_t: the grids.
        residual_norm: ``(L_s, L_t)`` ``‖AX − Y‖_F``.
        temporal_seminorm: ``(L_s, L_t)`` ``‖X Dᵀ‖_F``.
        dof: ``(L_s, L_t)`` trace of the influence matrix of the stacked (all-time) problem.
        n_data: ``M·T``.
        error: ``(L_s, L_t)`` relative error against ``truth`` (BENCHMARK-ONLY) or ``None``.
    """

    lams_s: jax.Array
    lams_t: jax.Array
    residual_norm: jax.Array
    temporal_seminorm: jax.Array
    dof: jax.Array
    n_data: jax.Array
    error: jax.Array | None


@jax.jit
def _row(Y, A, R, P, theta, lam_s, lams_t, truth):
    Q, sig2 = _spatial(A, R, lam_s)
    AQ = A @ Q
    YP = Y @ P
    F = AQ.T @ YP
    a = jnp.sum(AQ**2, axis=0)  # diag(QᵀAᵀAQ): influence-matrix trace weights
    Ut = None if truth is None else Q.T @ truth @ P

    def one(lt):
        denom = sig2[:, None] + lt * theta[None, :]
        Z = F / denom
        res = jnp.linalg.norm(AQ @ Z - YP)
        tsemi = jnp.sqrt(jnp.sum(Z**2 * theta[None, :]))
        dof = jnp.sum(a[:, None] / denom)
        err = jnp.nan if Ut is None else jnp.linalg.norm(Z - Ut)
        return res, tsemi, dof, err

    return jax.lax.map(one, lams_t)


def spatiotemporal_path(Y, A, lams_s, lams_t, R=None, D=None, *, dt: float = 1.0, truth=None) -> SpatiotemporalPath:
    """Residual, temporal seminorm, dof (and error vs ``truth``) on a ``(λ_s, λ_t)`` grid.

    One stacked SVD per λ_s; each λ_t costs one ``(M, N) @ (N, T)`` product. Host loop over λ_s.
    """
    Y, A, R, D, _ = _prepare(Y, A, R, D, dt)
    dtype = Y.dtype
    P, theta = _temporal(D, dtype)
    lams_s = jnp.asarray(lams_s, dtype).reshape(-1)
    lams_t = jnp.asarray(lams_t, dtype).reshape(-1)
    tr = None if truth is None else jnp.asarray(truth, dtype)
    rows = [_row(Y, A, R, P, theta, ls, lams_t, tr) for ls in lams_s]
    res, tsemi, dof, err = (jnp.stack(x) for x in zip(*rows))
    error = None if truth is None else err / jnp.linalg.norm(tr)
    return SpatiotemporalPath(lams_s, lams_t, res, tsemi, dof, jnp.asarray(Y.shape[0] * Y.shape[1]), error)


def select_spatiotemporal(path: SpatiotemporalPath, rule: str = "gcv", noise_std=None, tau: float = 1.0) -> LambdaChoice:
    """Pick ``(λ_s, λ_t)`` on a :class:`SpatiotemporalPath`.

    Rules: ``"gcv"`` (minimize ``ρ²/(MT − dof)²``), ``"discrepancy"`` (among grid points with
    ``ρ ≤ τσ·sqrt(MT)``, the one with the largest residual; needs ``noise_std``) and
    ``"oracle"`` (BENCHMARK-ONLY, least error vs the truth the path was built with). ``lam`` and
    ``index`` of the result are length-2 arrays ``(λ_s, λ_t)`` / ``(i_s, i_t)``; ``curve`` is 2-D.
    """
    shape = path.residual_norm.shape
    if rule == "gcv":
        denom = path.n_data - path.dof
        curve = jnp.where(denom > 1e-3, path.residual_norm**2 / jnp.where(denom > 1e-3, denom, 1) ** 2, jnp.inf)
        flat = jnp.argmin(curve)
        bench = False
    elif rule == "discrepancy":
        if noise_std is None:
            raise ValueError("spatiotemporal discrepancy needs noise_std= (noise std per data entry).")
        target = tau * noise_std * jnp.sqrt(path.n_data.astype(path.residual_norm.dtype))
        curve = path.residual_norm - target
        ok = curve <= 0
        flat = jnp.where(jnp.any(ok), jnp.argmax(jnp.where(ok, curve, -jnp.inf)), jnp.argmin(curve))
        bench = False
    elif rule == "oracle":
        if path.error is None:
            raise ValueError("oracle needs the ground truth: build the path with truth=U_true.")
        curve = path.error
        flat = jnp.argmin(curve)
        bench = True
    else:
        raise ValueError(f"unknown spatiotemporal lambda_rule {rule!r}; valid: gcv, discrepancy, oracle.")
    i, j = jnp.unravel_index(flat, shape)
    lam = jnp.stack([path.lams_s[i], path.lams_t[j]])
    return LambdaChoice(lam, jnp.stack([i, j]), curve, rule, bench)
