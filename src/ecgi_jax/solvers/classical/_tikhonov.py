"""Tikhonov regularization and truncated SVD for all time samples at once.

Problem (``Y`` is ``(M, T)``, one column per time sample, every column shares ``A`` and ``λ``)::

    X_λ = argmin_X ‖A X − Y‖_F² + λ ‖R X‖_F²

with ``R = I`` (zeroth order), a surface/edge gradient (first order) or a Laplacian (second
order). Note the convention: ``λ`` multiplies the *squared* seminorm (some papers write ``λ²``).

How a whole λ grid is obtained from ONE factorization
-----------------------------------------------------
* ``R = I``: the SVD ``A = U diag(σ) Vᵀ``; ``X_λ = V diag(σ/(σ²+λ)) Uᵀ Y``.
* ``R ≠ I``: a generalized SVD computed *without normal equations* (so it is sound in float32,
  where forming ``AᵀA`` would square the condition number of a transfer matrix):

  1. If ``R`` has more rows than columns, replace it by the triangular factor of its QR
     decomposition (same ``RᵀR``, so the same problem, but ``N × N``).
  2. Scale ``R`` by ``w = ‖A‖_F / ‖R‖_F`` so the two blocks have comparable norms, and take the
     thin QR ``[A; wR] = [Q_A; Q_R] T``. ``T`` is invertible iff ``null(A) ∩ null(R) = {0}``,
     the condition for a unique Tikhonov solution; a singular ``R`` (e.g. a Laplacian, whose null
     space is the constants) is fine.
  3. SVD ``Q_A = U diag(c) Zᵀ``. Then ``Q_R Z`` has orthogonal columns with norms ``s̃_i`` and
     ``c_i² + s̃_i² = 1`` (a CS decomposition). ``s̃_i`` is taken from the column norms, not
     from ``sqrt(1 − c²)``, which would cancel catastrophically when ``c_i ≈ 1``.
  4. With ``W = T⁻¹ Z`` (``N × p``, ``p = min(M, N)``) and ``s = s̃ / w`` every Tikhonov solution
     is ``X_λ = W diag(c/(c² + λ s²)) Uᵀ Y``; the generalized singular values are ``γ = c/s``
     (infinite on the null space of ``R``, where ``s = 0``).

  Both cases share one :class:`TikhonovFactor` ``(U, c, s, W)`` (for ``R = I``: ``c = σ``,
  ``s = 1``, ``W = V``), so everything downstream (paths, λ rules) is written once. With
  ``β = Uᵀ Y`` and ``b_i = ‖β_i‖²`` (sum over time), for each λ::

      filter factors   φ_i = c_i² / (c_i² + λ s_i²)
      residual²        ‖A X_λ − Y‖² = ‖(I − UUᵀ)Y‖² + Σ_i (λ s_i² / (c_i² + λ s_i²))² b_i
      seminorm²        ‖R X_λ‖²     = Σ_i s_i² (c_i / (c_i² + λ s_i²))² b_i
      dof              trace of the influence matrix = Σ_i φ_i

  are O(p) per λ; solutions need one ``(N, p) @ (p, T)`` product and are formed only on request.

Every array function here is jittable; dtypes follow the inputs (float64 when x64 is enabled and
the inputs are float64).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ...operators import as_dense

__all__ = [
    "TikhonovFactor",
    "RegularizationPath",
    "factorize",
    "tikhonov",
    "tikhonov_from_factor",
    "tikhonov_path",
    "tsvd",
    "tsvd_path",
    "default_lambdas",
    "as_matrix",
]


# ----------------------------------------------------------------------------------------------
# helpers


def as_matrix(R, dtype=None):
    """Dense ``jax.Array`` from ``None`` (returned as ``None``), a :class:`SparseOperator`, scipy
    sparse matrix or array-like (see :func:`ecgi_jax.operators.as_dense`). scipy matrices are
    converted on the host; a SparseOperator densifies inside jit (its shape is static)."""
    return None if R is None else jnp.asarray(as_dense(R), dtype=dtype)


def _dtype(*xs):
    dt = jnp.result_type(*[jnp.asarray(x).dtype for x in xs if x is not None])
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.result_type(float)
    return dt


def _as_2d(Y):
    Y = jnp.asarray(Y)
    return (Y[:, None], True) if Y.ndim == 1 else (Y, False)


class TikhonovFactor(NamedTuple):
    """One factorization serving every λ (see the module docstring).

    Attributes:
        U: ``(M, p)`` orthonormal data-space basis.
        c: ``(p,)`` "A-part" values (singular values of ``A`` when ``R = I``), descending γ order.
        s: ``(p,)`` "R-part" values (ones when ``R = I``; zero on the null space of ``R``).
        W: ``(N, p)`` solution-space basis: ``X = W diag(f) Uᵀ Y``.
    """

    U: jax.Array
    c: jax.Array
    s: jax.Array
    W: jax.Array

    @property
    def gamma(self) -> jax.Array:
        """Generalized singular values ``c/s`` (``inf`` where ``s = 0``)."""
        return jnp.where(self.s > 0, self.c / jnp.where(self.s > 0, self.s, 1), jnp.inf)


def factorize(A, R=None) -> TikhonovFactor:
    """SVD (``R is None``) or generalized SVD of the pair ``(A, R)`` for Tikhonov regularization.

    ``R`` may be ``(K, N)`` with any ``K`` (dense, :class:`SparseOperator` or scipy sparse).
    Requires ``null(A) ∩ null(R) = {0}``. Jittable (for array / SparseOperator arguments).
    """
    A = jnp.asarray(A)
    dtype = _dtype(A)
    A = A.astype(dtype)
    if R is None:
        U, sig, Vh = jnp.linalg.svd(A, full_matrices=False)
        return TikhonovFactor(U, sig, jnp.ones_like(sig), Vh.T)
    R = as_matrix(R, dtype)
    m, n = A.shape
    if R.ndim != 2 or R.shape[1] != n:
        raise ValueError(f"R has shape {R.shape}; expected (K, {n}) to match A of shape {A.shape}.")
    if R.shape[0] > n:
        # Same RᵀR, N×N: keeps the stacked QR below small whatever K is (e.g. 3F gradient rows).
        R = jnp.linalg.qr(R, mode="r")
    if m + R.shape[0] < n:
        raise ValueError(
            f"A {A.shape} and R {R.shape} together have fewer rows than columns: the Tikhonov "
            "problem has no unique solution (null(A) ∩ null(R) ≠ {0})."
        )
    w = jnp.linalg.norm(A) / jnp.linalg.norm(R)
    Q, T = jnp.linalg.qr(jnp.concatenate([A, w * R], axis=0), mode="reduced")
    QA, QR = Q[:m], Q[m:]
    U, c, Zh = jnp.linalg.svd(QA, full_matrices=False)
    Z = Zh.T  # (N, p)
    s_tilde = jnp.linalg.norm(QR @ Z, axis=0)
    W = jax.scipy.linalg.solve_triangular(T, Z, lower=False)
    return TikhonovFactor(U, c, s_tilde / w, W)


def default_lambdas(factor: TikhonovFactor, num: int = 81, span: float = None) -> jax.Array:
    """A log-spaced λ grid covering the generalized singular values: from ``γ_min²`` (no
    regularization) up to ``10·γ_max²`` (everything filtered), the lower end floored at
    ``γ_max²·span`` (default ``1e-14`` in float64, ``1e-10`` in float32) where smaller λ would only
    resolve round-off. Jittable (fixed ``num``)."""
    g = factor.gamma
    # Directions with s at round-off level are null directions of R (γ = ∞ in exact arithmetic);
    # counting them would push the grid up to λ ~ 1/eps where every λ over-regularizes.
    s_tol = jnp.sqrt(jnp.finfo(factor.s.dtype).eps) * jnp.max(jnp.abs(factor.s))
    finite = jnp.isfinite(g) & (g > 0) & (jnp.abs(factor.s) > s_tol)
    gmax = jnp.max(jnp.where(finite, g, 0.0))
    gmin = jnp.min(jnp.where(finite, g, jnp.inf))
    if span is None:
        span = 1e-14 if factor.c.dtype == jnp.float64 else 1e-10
    lo = jnp.log10(jnp.maximum(gmin**2, gmax**2 * span))
    hi = jnp.log10(gmax**2) + 1.0
    return jnp.logspace(lo, hi, num, dtype=factor.c.dtype)


# ----------------------------------------------------------------------------------------------
# single solves


def tikhonov_from_factor(factor: TikhonovFactor, Y, lam) -> jax.Array:
    """``X_λ`` from a precomputed factorization. ``Y`` ``(M, T)`` or ``(M,)``; scalar ``lam``."""
    Y, squeeze = _as_2d(Y)
    Y = Y.astype(factor.c.dtype)
    lam = jnp.asarray(lam, factor.c.dtype)
    c, s = factor.c, factor.s
    denom = c**2 + lam * s**2
    f = jnp.where(denom > 0, c / jnp.where(denom > 0, denom, 1), 0.0)
    X = factor.W @ (f[:, None] * (factor.U.T @ Y))
    return X[:, 0] if squeeze else X


def tikhonov(Y, A, lam, R=None) -> jax.Array:
    """``argmin_X ‖A X − Y‖_F² + lam ‖R X‖_F²`` (``R = None`` → identity). Jittable.

    ``Y`` is ``(M, T)`` (or ``(M,)``), ``A`` ``(M, N)``; returns ``(N, T)`` (or ``(N,)``).
    """
    Y = jnp.asarray(Y)
    dtype = _dtype(Y, A)
    return tikhonov_from_factor(factorize(jnp.asarray(A, dtype), R), Y.astype(dtype), lam)


def tsvd(Y, A, k) -> jax.Array:
    """Truncated-SVD solution keeping the ``k`` largest singular values of ``A``. Jittable
    (``k`` may be traced: truncation is a mask)."""
    Y, squeeze = _as_2d(Y)
    dtype = _dtype(Y, A)
    fac = factorize(jnp.asarray(A, dtype))
    keep = jnp.arange(fac.c.shape[0]) < k
    f = jnp.where(keep & (fac.c > 0), 1.0 / jnp.where(fac.c > 0, fac.c, 1), 0.0)
    X = fac.W @ (f[:, None] * (fac.U.T @ Y.astype(dtype)))
    return X[:, 0] if squeeze else X


# ----------------------------------------------------------------------------------------------
# paths


class RegularizationPath(NamedTuple):
    """Everything the λ rules need, for a grid of regularization parameters.

    Attributes:
        lambdas: ``(L,)`` parameters (λ for Tikhonov; the truncation index ``k`` for TSVD). The
            λ rules orient themselves, so the grid may run either way.
        residual_norm: ``(L,)`` ``‖A X − Y‖_F``.
        seminorm: ``(L,)`` ``‖R X‖_F`` (``‖X‖_F`` for ``R = I`` and TSVD).
        dof: ``(L,)`` trace of the influence matrix (effective number of parameters, per column).
        n_data: number of data rows ``M`` (for GCV).
        error: ``(L,)`` relative error ``‖X − U_true‖_F / ‖U_true‖_F`` when the path was built
            with ``truth=`` (BENCHMARK-ONLY), else ``None``.
        coef: ``(L, p)`` solution coefficients: ``X_i = W diag(coef[i]) β``.
        beta: ``(p, T)`` data coefficients ``Uᵀ Y``.
        factor: the :class:`TikhonovFactor`.
    """

    lambdas: jax.Array
    residual_norm: jax.Array
    seminorm: jax.Array
    dof: jax.Array
    n_data: jax.Array
    error: jax.Array | None
    coef: jax.Array
    beta: jax.Array
    factor: TikhonovFactor

    def solution(self, i) -> jax.Array:
        """The ``(N, T)`` solution at grid index ``i`` (may be traced)."""
        return self.factor.W @ (self.coef[i][:, None] * self.beta)

    def solutions(self) -> jax.Array:
        """All ``(L, N, T)`` solutions (memory ``L·N·T``: use :meth:`solution` for big grids)."""
        return jnp.einsum("np,lp,pt->lnt", self.factor.W, self.coef, self.beta)


def _path(factor, Y, lambdas, phi, psi, coef, truth) -> RegularizationPath:
    """Common path assembly from filter factors ``phi`` (L,p), ``psi = 1 − phi`` computed stably,
    and coefficients ``coef`` (L,p) with ``X = W diag(coef) β``."""
    beta = factor.U.T @ Y
    b = jnp.sum(beta**2, axis=1)  # (p,)
    perp2 = jnp.sum((Y - factor.U @ beta) ** 2)
    residual = jnp.sqrt(perp2 + (psi**2) @ b)
    seminorm = jnp.sqrt((coef**2 * factor.s[None, :] ** 2) @ b)
    dof = jnp.sum(phi, axis=1)
    error = None
    if truth is not None:
        # ‖Wg − U‖² = gᵀ(WᵀW ∘ ββᵀ)g − 2 gᵀ diag(β (WᵀU)ᵀ) + ‖U‖² with g = coef: O(p²) per λ
        # instead of forming every (N, T) solution.
        Ut = jnp.asarray(truth, Y.dtype)
        G = factor.W.T @ factor.W
        B = beta @ beta.T
        h = jnp.sum(beta * (factor.W.T @ Ut), axis=1)
        nu2 = jnp.sum(Ut**2)
        quad = jnp.einsum("lp,pq,lq->l", coef, G * B, coef)
        err2 = jnp.maximum(quad - 2 * coef @ h + nu2, 0.0)
        error = jnp.sqrt(err2 / nu2)
    return RegularizationPath(
        lambdas, residual, seminorm, dof, jnp.asarray(Y.shape[0]), error, coef, beta, factor
    )


def tikhonov_path(Y, A=None, lambdas=None, R=None, *, truth=None, factor=None) -> RegularizationPath:
    """Tikhonov solutions' diagnostics for a whole λ grid from one factorization. Jittable.

    Args:
        Y: ``(M, T)`` data.
        A: ``(M, N)`` forward matrix (ignored when ``factor`` is given).
        lambdas: ``(L,)`` grid; default :func:`default_lambdas` (81 log-spaced values).
        R: regularization operator (``None`` → identity).
        truth: optional ``(N, T)`` ground truth; fills ``error`` (BENCHMARK-ONLY).
        factor: a precomputed :func:`factorize` result, to reuse across data sets.

    Returns:
        :class:`RegularizationPath`; ``path.solution(i)`` forms the ``i``-th solution.
    """
    Y, _ = _as_2d(Y)
    if factor is None:
        dtype = _dtype(Y, A)
        factor = factorize(jnp.asarray(A, dtype), R)
    dtype = factor.c.dtype
    Y = Y.astype(dtype)
    lambdas = default_lambdas(factor) if lambdas is None else jnp.asarray(lambdas, dtype)
    c2 = factor.c[None, :] ** 2
    ls2 = lambdas[:, None] * factor.s[None, :] ** 2
    denom = c2 + ls2
    ok = denom > 0
    safe = jnp.where(ok, denom, 1)
    phi = jnp.where(ok, c2 / safe, 0.0)
    psi = jnp.where(ok, ls2 / safe, 1.0)
    coef = jnp.where(ok, factor.c[None, :] / safe, 0.0)
    return _path(factor, Y, lambdas, phi, psi, coef, truth)


def tsvd_path(Y, A=None, ks=None, *, truth=None, factor=None) -> RegularizationPath:
    """Truncated-SVD diagnostics for truncation levels ``ks`` (default ``1 … p``). Jittable.

    ``lambdas`` of the returned path holds the ``k`` values (as floats); ``seminorm`` is ``‖X‖_F``.
    """
    Y, _ = _as_2d(Y)
    if factor is None:
        dtype = _dtype(Y, A)
        factor = factorize(jnp.asarray(A, dtype))
    dtype = factor.c.dtype
    Y = Y.astype(dtype)
    p = factor.c.shape[0]
    ks = jnp.arange(1, p + 1) if ks is None else jnp.asarray(ks)
    keep = jnp.arange(p)[None, :] < ks[:, None]
    phi = keep.astype(dtype)
    psi = 1.0 - phi
    inv = jnp.where(factor.c > 0, 1.0 / jnp.where(factor.c > 0, factor.c, 1), 0.0)
    coef = phi * inv[None, :]
    return _path(factor, Y, ks.astype(dtype), phi, psi, coef, truth)

