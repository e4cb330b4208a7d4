"""``solve()`` entries of the sparsity-promoting and Greensite methods: ``"total-variation"``,
``"l1"``, ``"lp-lq"`` and ``"greensite"``.

Imported by the package ``ecgi_jax/__init__.py`` (not by ``solvers/classical/__init__.py``, which
``_solve.py`` imports: registering from there would be a circular import).

Default λ of the sparse methods ("tikhonov-gcv-matched"): with ``(λ_T, X_T)`` the Tikhonov
solution with the *same* operator ``R`` at its GCV λ, take

    λ = lam_scale · λ_T · ‖R X_T‖_F² / P(R X_T)

with ``P`` the sparse penalty (``‖·‖_1``, the group norm, or ``Σ φ_q``): the sparse penalty then
weighs exactly what the Tikhonov penalty weighed at the Tikhonov-GCV solution. It costs one
Tikhonov path (no sweep of nonlinear solves), is scale-covariant (multiplying ``Y`` by ``c``
multiplies λ by ``c``, as the L1 problem requires). Measured (TV, sweep ``lam_scale`` ∈ {0.3, 1,
3, 10}): on the P-DL synthetic case (paced at node 0, σ = 0.1, 50 samples) the relative error was
(0.66 not converged, 0.358, 0.322, 0.335), best at 3; on the two-region sphere case of the tests
(0.207, 0.284, 0.354, 0.385), best at 0.3. The rule sits within a factor 3 of the best of the
sweep on both, in opposite directions, so no further factor is built in. ``lam=`` or
``lam_scale=`` override it.

Default ADMM parameter ``ρ = 0.6 λ_T``: the x-update matrix ``AᵀA + (ρ/2)RᵀR`` is then the
Tikhonov system at ``0.3 λ_T`` — well conditioned and of the scale of the problem. Measured on
the P-DL synthetic case (TV, 50 samples, float32): ρ = (0.2, 0.6, 2)·λ_T took (> 3000, 466, 1303)
iterations to tol_rel = 1e-3.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ... import _solve as S
from ..._solve import Solution, register_method
from ...operators import SparseOperator
from ._greensite import greensite, greensite_rank, temporal_components
from ._lambda import estimate_noise
from ._sparse_reg import admm_l1, lp_lq, lp_lq_objective, lp_lq_weight, normal_factor, sparse_penalty

__all__: list[str] = []

_admm = jax.jit(admm_l1, static_argnames=("group",))
_lp_lq = jax.jit(lp_lq)
_normal_factor = jax.jit(normal_factor)
_greensite = jax.jit(greensite, static_argnames=("k", "rule"))
_temporal = jax.jit(temporal_components)


def _operator(R, dtype):
    """R as the jitted solvers take it: SparseOperator (kept sparse) or dense array, or None."""
    if R is None or isinstance(R, SparseOperator):
        return None if R is None else R.astype(dtype)
    from ._tikhonov import as_matrix

    return as_matrix(R, dtype)


def _tikhonov_start(Y, A, R, order):
    """``(λ_T, X_T)``: Tikhonov with operator ``R`` at its GCV λ (reuses the tikhonov-k code path,
    including its check that the problem has a unique solution)."""
    sol = S._tikhonov_impl(order, Y, A, None, "gcv", None, None, 1.0, None, R)
    return sol.diagnostics["lam"], sol.potentials


def _check_positive(name, value):
    if value is not None and not (np.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"option {name} must be a finite number > 0; got {value!r}.")


def _check_int(name, value, lo):
    if not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"option {name} must be an integer >= {lo}; got {value!r}.")


def _admm_method(name, Y, A, R, order, lam, lam_scale, rho, max_iter, tol_abs, tol_rel, relaxation, group):
    _check_positive("lam_scale", lam_scale)
    _check_positive("rho", rho)
    _check_positive("tol_rel", tol_rel)
    _check_int("max_iter", max_iter, 1)
    if not (isinstance(tol_abs, (int, float)) and tol_abs >= 0):
        raise ValueError(f"option tol_abs must be a number >= 0; got {tol_abs!r}.")
    if not 0 < float(relaxation) < 2:
        raise ValueError(f"option relaxation must lie in (0, 2) (1 = plain ADMM, 1.5-1.8 over-relaxed); got {relaxation!r}.")
    k_rows = A.shape[1] if R is None else R.shape[0]
    if not isinstance(group, (int, np.integer)) or group < 1 or k_rows % group:
        raise ValueError(
            f"option group must be a positive integer dividing the {k_rows} rows of the operator "
            f"(3 for a (3F, N) surface gradient: isotropic TV); got {group!r}."
        )
    group = int(group)
    lam_t, X_t = _tikhonov_start(Y, A, R, order)
    Rop = _operator(R, A.dtype)
    diag: dict[str, Any] = {"lam_tikhonov": float(lam_t)}
    if lam is None:
        RX = X_t if Rop is None else Rop @ X_t
        lam = float(lam_scale) * lam_t * float(jnp.sum(RX**2)) / float(sparse_penalty(RX, group))
        diag["lambda_rule"] = "tikhonov-gcv-matched"
    else:
        diag["lambda_rule"] = None
    adapt = rho is None
    rho = 0.6 * lam_t if rho is None else float(rho)
    # Residual balancing (Boyd et al. 2011, §3.4.1) by restarts: the x-update's factorization
    # depends on ρ, so ρ changes only between rounds (warm-started from the last X), at most 4 rounds
    # sharing the max_iter budget. A user-given rho is kept fixed.
    rounds = 4 if adapt else 1
    X, iterations, rhos = X_t, 0, []
    for r in range(rounds):
        budget = max_iter - iterations if r == rounds - 1 else max(max_iter // rounds, 1)
        factor = _normal_factor(A, Rop, rho / 2)
        out = _admm(Y, A, lam, Rop, rho=rho, factor=factor, X0=X, max_iter=budget, tol_abs=tol_abs,
                    tol_rel=tol_rel, relaxation=relaxation, group=group)
        X, iterations = out.X, iterations + int(out.iterations)
        rhos.append(rho)
        primal, dual = float(out.primal_residual), float(out.dual_residual)
        if bool(out.converged) or iterations >= max_iter:
            break
        if primal > 10 * dual:
            rho *= 4.0
        elif dual > 10 * primal:
            rho /= 4.0
    converged = bool(out.converged)
    if not converged:
        warnings.warn(
            f"{name}: ADMM stopped at max_iter={max_iter} before meeting the tolerances (primal "
            f"{float(out.primal_residual):.3g}, dual {float(out.dual_residual):.3g}); raise max_iter or tune rho.",
            RuntimeWarning, stacklevel=3,
        )
    RX = X if Rop is None else Rop @ X
    diag.update(
        lam=float(lam), rho=float(rho), rho_rounds=rhos, iterations=iterations, converged=converged,
        primal_residual=float(out.primal_residual), dual_residual=float(out.dual_residual),
        residual_norm=float(jnp.linalg.norm(A @ X - Y)), penalty=float(sparse_penalty(RX, group)),
    )
    return Solution(X, name, diag, {})


_ADMM_DOC = """
    Options:
        lam: weight of ``‖RX‖_1`` (objective ``‖AX − Y‖_F² + lam·‖RX‖_1``); default: the
            Tikhonov-GCV-matched rule (module docstring), times ``lam_scale``.
        rho: ADMM parameter, kept fixed when given; by default it starts at ``0.6·λ_T`` (λ_T:
            Tikhonov-GCV λ with the same operator) and is rebalanced ×4 / ÷4 between up to 4
            warm-started rounds when the primal and dual residuals differ by more than 10×.
        max_iter, tol_abs, tol_rel: iteration cap and Boyd et al.'s (2011) tolerances.
        relaxation: over-relaxation α in (0, 2); 1.6 by default.
    Diagnostics: ``lam``, ``lambda_rule``, ``lam_tikhonov``, ``rho``, ``iterations``,
    ``primal_residual``, ``dual_residual``, ``converged``, ``residual_norm``, ``penalty``.
"""


def _total_variation(
    Y, A, *, lam=None, lam_scale=1.0, gradient=None, vertices=None, adjacency=None, group=1, rho: float | None = None,
    max_iter=2000, tol_abs=1e-7, tol_rel=1e-3, relaxation=1.6,
):
    """Total variation: ``‖AX − Y‖² + lam·‖GX‖_1`` with ``G`` the surface (``gradient=``) or edge
    (``vertices=``, ``adjacency=``) gradient; ``group=3`` with a ``(3F, N)`` surface gradient gives
    isotropic TV."""
    R = S._spatial_operator(1, A.shape[1], None, gradient, vertices, adjacency)
    return _admm_method("total-variation", Y, A, R, 1, lam, lam_scale, rho, max_iter, tol_abs, tol_rel, relaxation, group)


def _l1(Y, A, *, lam=None, lam_scale=1.0, rho: float | None = None, max_iter=2000, tol_abs=1e-7, tol_rel=1e-3, relaxation=1.6):
    """L1: ``‖AX − Y‖² + lam·‖X‖_1`` (sparse heart potentials).

    The prior is that most heart potentials are zero at each time. Activation maps and
    electrograms are dense, and with fewer leads than nodes the L1 minimizer is then a few large
    spikes: on the P-DL synthetic beat (σ = 0.1) RE ≈ 4 at every ``lam_scale`` in 1–30 (its
    objective is below the truth's, so this is the model, not the solver), and RE 2.9 on the Utah
    sock beats. Use it for focal, sparse sources; use TV or Tikhonov for activation maps."""
    return _admm_method("l1", Y, A, None, 0, lam, lam_scale, rho, max_iter, tol_abs, tol_rel, relaxation, 1)


_total_variation.__doc__ += _ADMM_DOC
_l1.__doc__ += _ADMM_DOC


def _lp_lq_method(
    Y, A, *, p=2.0, q=1.0, order=1, lam=None, lam_scale=1.0, eps_p: float | None = None, eps_q: float | None = None, laplacian=None, gradient=None,
    vertices=None, adjacency=None, max_iter=500, tol=1e-4,
):
    """Lp–Lq: ``Σ φ_p(AX − Y; ε_p) + lam·Σ φ_q(RX; ε_q)`` (``φ_r(t) = (t² + ε²)^{r/2}``), R of
    ``order`` 0 (identity), 1 (gradient) or 2 (Laplacian), by IRLS with a fixed quadratic
    majorant started from the Tikhonov-GCV solution of the same order.

    Defaults: ``eps_q = 0.05·RMS(R X_T)``, ``eps_p = 0.05·RMS(Y)`` (the smoothing sets both the
    model and the speed: iterations grow like 1/ε), ``lam`` by the Tikhonov-GCV-matched rule.
    Diagnostics: ``lam``, ``eps_p``, ``eps_q``, ``iterations``, ``converged``, ``last_step``,
    ``objective``, ``objective_start``, ``residual_norm``.
    """
    for name, v in (("p", p), ("q", q)):
        if not 0 < float(v) <= 2:
            raise ValueError(f"option {name} must lie in (0, 2]; got {v!r}.")
    for name, v in (("lam_scale", lam_scale), ("eps_p", eps_p), ("eps_q", eps_q), ("tol", tol)):
        _check_positive(name, v)
    _check_int("max_iter", max_iter, 1)
    R = S._spatial_operator(order, A.shape[1], laplacian, gradient, vertices, adjacency)
    lam_t, X_t = _tikhonov_start(Y, A, R, order)
    Rop = _operator(R, A.dtype)
    RX = X_t if Rop is None else Rop @ X_t
    eps_q = 0.05 * float(jnp.sqrt(jnp.mean(RX**2))) if eps_q is None else float(eps_q)
    eps_p = 0.05 * float(jnp.sqrt(jnp.mean(Y**2))) if eps_p is None else float(eps_p)
    diag: dict[str, Any] = {"lam_tikhonov": float(lam_t), "eps_p": eps_p, "eps_q": eps_q}
    if lam is None:
        pen = float(jnp.sum((RX**2 + eps_q**2) ** (float(q) / 2)))
        lam = float(lam_scale) * lam_t * float(jnp.sum(RX**2)) / pen
        diag["lambda_rule"] = "tikhonov-gcv-matched"
    else:
        diag["lambda_rule"] = None
    mu = lp_lq_weight(float(lam), float(p), float(q), eps_p, eps_q)
    factor = _normal_factor(A, Rop, mu)
    out = _lp_lq(Y, A, lam, Rop, p=p, q=q, eps_p=eps_p, eps_q=eps_q, factor=factor, X0=X_t, max_iter=max_iter, tol=tol)
    objective = lambda X: float(lp_lq_objective(X, Y, A, lam, Rop, p=p, q=q, eps_p=eps_p, eps_q=eps_q))  # noqa: E731
    converged = bool(out.converged)
    if not converged:
        warnings.warn(
            f"lp-lq: stopped at max_iter={max_iter} with relative step {float(out.primal_residual):.3g} > tol={tol}; "
            "raise max_iter or eps_q (iterations grow like 1/eps).", RuntimeWarning, stacklevel=2,
        )
    diag.update(
        lam=float(lam), p=float(p), q=float(q), order=order, iterations=int(out.iterations), converged=converged,
        last_step=float(out.primal_residual), objective=objective(out.X), objective_start=objective(X_t),
        residual_norm=float(jnp.linalg.norm(A @ out.X - Y)),
    )
    return Solution(out.X, "lp-lq", diag, {})


def _greensite_method(
    Y, A, *, order=2, n_components: int | None = None, energy: float | None = None, lam=None, lambda_rule="gcv", lambdas=None, laplacian=None, gradient=None,
    vertices=None, adjacency=None, noise_std=None, tau=1.0, truth=None,
):
    """Greensite's isotropy method: Tikhonov of ``order`` on each of the ``n_components`` leading temporal
    SVD components of ``Y`` with its own λ (``lambda_rule``: gcv, lcurve, creso, discrepancy,
    ucurve, oracle), recombined.

    ``n_components``: explicit; else ``energy`` (fraction of ``‖Y‖²`` kept); else the noise rule
    ``s_j > σ(√M + √T)`` with σ = ``noise_std`` or estimated from the data
    (:func:`~._lambda.estimate_noise`). ``lam``: one λ for every component (no rule).
    Diagnostics: ``n_components``, ``n_components_rule``, ``lams`` (per component), ``singular_values``, ``energy_kept``,
    ``noise_std`` (when used), ``residual_norm``.
    """
    if lambda_rule not in S.C.RULES:
        raise ValueError(f"greensite lambda_rule must be one of {', '.join(S.C.RULES)}; got {lambda_rule!r}.")
    if lambda_rule == "oracle" and truth is None and lam is None:
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    R = S._spatial_operator(order, A.shape[1], laplacian, gradient, vertices, adjacency)
    if R is not None:
        S._check_constant_mode(A, R, "the regularization operator")
    Rop = _operator(R, A.dtype)
    factor = S._factorize(A, Rop)
    s, _ = _temporal(Y)
    diag: dict[str, Any] = {}
    if n_components is not None:
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= len(s):
            raise ValueError(
                f"option n_components must be an integer in [1, {len(s)}] (the rank of the SVD of Y); got {n_components!r}."
            )
        diag["n_components_rule"] = "given"
    elif energy is not None:
        diag["n_components_rule"] = "energy"
    else:
        diag["n_components_rule"] = "noise"
        if noise_std is None:
            noise_std = float(estimate_noise(S._tikhonov_path(Y, factor=factor)))
            diag["noise_std_estimated"] = True
        diag["noise_std"] = float(noise_std)
    k = greensite_rank(s, Y.shape, k=n_components, energy=energy, noise_std=noise_std)
    tr = None if truth is None else jnp.asarray(truth, A.dtype)
    lambdas = None if lambdas is None else jnp.asarray(lambdas, A.dtype)
    out = _greensite(Y, factor, k, rule=lambda_rule, lambdas=lambdas, lam=lam, noise_std=noise_std, tau=tau, truth=tr)
    s2 = np.asarray(s, np.float64) ** 2
    diag.update(
        n_components=k, lams=np.asarray(out.lams), lambda_rule=None if lam is not None else lambda_rule,
        benchmark_only=lambda_rule == "oracle" and lam is None,
        singular_values=np.asarray(s), energy_kept=float(s2[:k].sum() / s2.sum()),
        residual_norm=float(jnp.linalg.norm(A @ out.X - Y)), order=order,
    )
    if lam is not None:
        diag["lam"] = float(lam)
    return Solution(out.X, "greensite", diag, {})


register_method(
    "total-variation", _total_variation,
    "Total variation (L1 of the surface/edge gradient) by ADMM with one cached factorization; λ matched to Tikhonov-1 GCV.",
)
register_method("l1", _l1, "L1-regularized potentials (‖X‖_1) by ADMM with one cached factorization; assumes sparse potentials (spiky maps on dense activation data).")
register_method(
    "lp-lq", _lp_lq_method,
    "Smoothed Lp data fit + Lq penalty (order 0/1/2) by IRLS with a fixed quadratic majorant (one factorization).",
)
register_method(
    "greensite", _greensite_method,
    "Greensite's isotropy method: Tikhonov per leading temporal SVD component, each with its own λ.",
)
