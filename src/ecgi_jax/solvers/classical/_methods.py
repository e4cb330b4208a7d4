"""The classical methods behind ``solve()``: ``"tikhonov-0/1/2"``, ``"tsvd"``, ``"spatiotemporal"``,
``"total-variation"``, ``"l1"``, ``"lp-lq"`` and ``"greensite"`` (registered on import).

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
from typing import Any, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ..._registry import Solution, register_method
from ...operators import SparseOperator, check_operator, edge_gradient, finite_array
from ._crossval import crossval
from ._greensite import greensite, greensite_rank, temporal_components
from ._lambda import DEFAULT_RULE, RULES, estimate_noise, select_lambda
from ._sparse_reg import admm_l1, lp_lq, lp_lq_objective, lp_lq_weight, normal_factor, sparse_penalty
from ._spatiotemporal import select_spatiotemporal, spatiotemporal, spatiotemporal_path, temporal_operator
from ._tikhonov import as_matrix, factorize, tikhonov_from_factor, tikhonov_path, tsvd_path

# Annotations of the methods' options (read by ``ecgi_jax.methods`` and ``solve``'s type checks).
ArrayLike = Any  # an array, or anything np.asarray takes
Operator = Union[Any, SparseOperator]  # a dense (K, N) array, a scipy.sparse matrix or a SparseOperator
Adjacency = Sequence  # the 1-ring, CSR (indptr, indices)

__all__ = ["spatial_operator", "pin_constant_mode", "zero_mean", "check_tsvd_rank"]


# ----------------------------------------------------------------------------------------------
# classical methods


# Jitted entry points: one compiled program each instead of dozens of eagerly dispatched ops
# (much faster to compile, and the ops fuse).
_factorize = jax.jit(factorize)
_tikhonov_path = jax.jit(tikhonov_path)
_tsvd_path = jax.jit(tsvd_path)
_from_factor = jax.jit(tikhonov_from_factor)


def _np(x):
    return None if x is None else np.asarray(x)


def spatial_operator(order, n, laplacian, gradient, vertices, adjacency):
    if isinstance(order, (bool, np.bool_)) or order not in (0, 1, 2):
        raise ValueError(f"option order must be 0, 1 or 2 (the derivative order of the spatial penalty); got {order!r}.")
    if order == 0:
        return None
    if order == 1:
        if gradient is not None:
            return check_operator(gradient, "gradient", n)
        if vertices is not None and adjacency is not None:
            return edge_gradient(np.asarray(vertices), adjacency)
        raise ValueError(
            "first-order Tikhonov needs a gradient operator: pass gradient= (K, N), e.g. "
            "ecgi_jax.operators.surface_gradient(mesh), or vertices= and adjacency= to build an edge gradient."
        )
    if laplacian is None:
        raise ValueError(
            "second-order Tikhonov needs the surface Laplacian: pass laplacian= (N, N) as a "
            "SparseOperator, scipy sparse matrix or dense array."
        )
    return check_operator(laplacian, "laplacian", n, square=True)


def _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, kind, choice=None):
    # choice: a LambdaChoice made outside (rule "cv" needs A and R, which the path does not hold).
    diag: dict[str, Any] = {}
    if lam is not None:
        raise AssertionError  # handled by callers
    kw = {}
    if lambda_rule == "discrepancy":
        kw = dict(noise_std=noise_std, tau=tau)
        diag["noise_std"] = float(estimate_noise(path) if noise_std is None else noise_std)
        diag["noise_std_estimated"] = noise_std is None
    if lambda_rule == "oracle" and truth is None:
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    if kind == "tsvd" and lambda_rule == "creso":
        raise ValueError("CRESO is defined for Tikhonov λ only; for tsvd use lcurve, gcv, discrepancy, ucurve or oracle.")
    if choice is None:
        choice = select_lambda(path, lambda_rule, **kw)
    i = int(choice.index)
    X = path.solution(i)
    diag.update(
        lam=float(choice.lam),
        lambda_index=i,
        lambda_rule=lambda_rule,
        benchmark_only=choice.benchmark_only,
        lambdas=_np(path.lambdas),
        criterion=_np(choice.curve),
        residual_norms=_np(path.residual_norm),
        seminorms=_np(path.seminorm),
        residual_norm=float(path.residual_norm[i]),
        seminorm=float(path.seminorm[i]),
    )
    if path.error is not None:
        diag["relative_errors"] = _np(path.error)  # BENCHMARK-ONLY curve
    return X, diag


def _column_components(R, n):
    """Connected components of the columns of ``R`` (columns linked when they share a row).

    The null space of a penalty built from a mesh graph (Laplacian, edge or surface gradient) is
    spanned by the indicator vectors of these components: one constant per connected part.
    """
    from scipy.sparse.csgraph import connected_components

    if isinstance(R, SparseOperator):
        m = R.to_scipy()
    elif sp.issparse(R):
        m = sp.csr_matrix(R)
    else:
        m = sp.csr_matrix(np.asarray(R))
    pattern = (abs(m) > 0).astype(np.float64)
    graph = (pattern.T @ pattern).tocsr()
    return connected_components(graph, directed=False)


def pin_constant_mode(A, R, name="the regularization operator"):
    """``(R, pinned)``: the penalty ``R``, with the constant mode pinned where neither the data nor
    ``R`` determine it.

    A zero-row-sum ``A`` (an equivalent-double-layer matrix, mean- or WCT-referenced leads:
    ``A·1 = 0``) and a penalty with ``R·1 = 0`` (Laplacian, gradient) leave the spatial mean of the
    potentials at every instant undetermined. The convention: the solution takes the member of the
    family with **zero spatial mean** (its minimum-norm member), by appending the row ``1ᵀ/√n``
    (scaled to ``R``'s rows) to the penalty; the data term cannot see that direction and ``R``
    does not touch it, so every other component is unchanged. The methods then remove the
    round-off left in that direction (:func:`zero_mean`; at a tiny λ it is amplified by 1/λ).
    ``pinned`` says whether it was applied (methods report ``diagnostics["constant_mode"]``).

    A penalty that splits the nodes into disconnected parts (one constant per part) with constants
    that ``A`` cannot tell apart is refused instead: that is a mesh defect, and which constant
    belongs where is not a convention. Cost: a sparse connected-components pass and an ``(M, k)``
    SVD for ``k`` components; other (non piecewise-constant) common null vectors are not sought.
    """
    n = A.shape[1]
    a = np.asarray(A, np.float64)
    probe = np.random.default_rng(0).normal(size=n) / np.sqrt(n)
    apply = lambda x: np.asarray(R @ jnp.asarray(x, R.dtype), np.float64)  # noqa: E731
    tol = 1e-5
    n_parts, labels = _column_components(R, n)
    basis = np.zeros((n, n_parts))
    basis[np.arange(n), labels] = 1.0
    basis /= np.sqrt(basis.sum(axis=0, keepdims=True))
    r_probe = np.linalg.norm(apply(probe))
    in_null = [j for j in range(n_parts) if np.linalg.norm(apply(basis[:, j])) <= tol * r_probe]
    if not in_null:
        return R, False
    sv = np.linalg.svd(a @ basis[:, in_null], compute_uv=False)
    # More blind components than leads: A cannot tell them apart, whatever its singular values
    # (the SVD returns only min(M, k) of them).
    if len(in_null) <= a.shape[0] and sv.min() > tol * np.linalg.norm(a @ probe):
        return R, False
    if n_parts == 1:
        return _with_mean_row(R, n, r_probe), True
    raise ValueError(
        f"{name} splits the {n} heart nodes into {n_parts} disconnected parts (sizes "
        f"{np.bincount(labels)[:8].tolist()}{'...' if n_parts > 8 else ''}) and is constant-blind on "
        f"{len(in_null)} of them, and A cannot tell those constants apart either (smallest singular "
        f"value {sv.min():.3g}): the solution is not unique. Use a connected mesh (check "
        "geometry.Mesh.n_components()), build A with reference='none', or use tikhonov-0."
    )


def zero_mean(X):
    """``X`` with its spatial mean removed at every instant: the pinned problems' solutions have
    none in exact arithmetic, and the data cannot see the round-off the solvers leave there."""
    return X - jnp.mean(X, axis=0, keepdims=True)


def _with_mean_row(R, n, scale):
    """``R`` with the row ``scale·1ᵀ/√n`` appended (``scale``: the size of ``R`` on a unit vector)."""
    row = np.full((1, n), scale / np.sqrt(n))
    if isinstance(R, SparseOperator):
        return SparseOperator.from_scipy(sp.vstack([R.to_scipy(), sp.csr_matrix(row)]).tocsr(), R.dtype)
    if sp.issparse(R):
        return sp.vstack([R, sp.csr_matrix(row)]).tocsr()
    R = jnp.asarray(R)
    return jnp.concatenate([R, jnp.asarray(row, R.dtype)], axis=0)


def _tikhonov_impl(order, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R):
    n = A.shape[1]
    pinned = False
    if R is not None:
        R, pinned = pin_constant_mode(A, R)
    if truth is not None:
        truth = finite_array(truth, "truth")
        if truth.shape != (n, Y.shape[1]):
            raise ValueError(f"truth has shape {truth.shape}; expected {(n, Y.shape[1])}.")
    if lambdas is not None:
        lambdas = finite_array(lambdas, "lambdas")
    if lam is not None and not float(lam) > 0:
        raise ValueError(f"lam must be positive; got {lam}.")
    if isinstance(R, SparseOperator):
        R = R.astype(A.dtype)
    factor = _factorize(A, as_matrix(R, A.dtype) if R is not None and not isinstance(R, SparseOperator) else R)
    if lam is not None:
        X = _from_factor(factor, Y, lam)
        res = float(jnp.linalg.norm(A @ X - Y))
        diag = dict(lam=float(lam), lambda_rule=None, residual_norm=res)
    else:
        path = _tikhonov_path(Y, lambdas=lambdas, factor=factor, truth=truth)
        cv = crossval(Y, A, R, path.lambdas) if lambda_rule == "cv" else None  # 5 random lead folds
        X, diag = _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, "tikhonov", cv)
    diag["order"] = order
    if pinned:
        X, diag["constant_mode"] = zero_mean(X), "zero-mean"
    return Solution(X, f"tikhonov-{order}", diag, {})


def _tikhonov0(
    Y, A, *,
    lam: float | None = None, lambda_rule: str = DEFAULT_RULE, lambdas: ArrayLike | None = None,
    noise_std: float | None = None, tau: float = 1.0, truth: ArrayLike | None = None,
):
    return _tikhonov_impl(0, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, None)


def _tikhonov1(
    Y, A, *,
    lam: float | None = None, lambda_rule: str = DEFAULT_RULE, lambdas: ArrayLike | None = None,
    gradient: Operator | None = None, vertices: ArrayLike | None = None,
    adjacency: Adjacency | None = None, noise_std: float | None = None, tau: float = 1.0,
    truth: ArrayLike | None = None,
):
    R = spatial_operator(1, A.shape[1], None, gradient, vertices, adjacency)
    return _tikhonov_impl(1, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R)


def _tikhonov2(
    Y, A, *,
    lam: float | None = None, lambda_rule: str = DEFAULT_RULE, lambdas: ArrayLike | None = None,
    laplacian: Operator | None = None, noise_std: float | None = None, tau: float = 1.0,
    truth: ArrayLike | None = None,
):
    R = spatial_operator(2, A.shape[1], laplacian, None, None, None)
    return _tikhonov_impl(2, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R)


def check_tsvd_rank(rank, p: int) -> None:
    """Refuse a TSVD truncation rank that is not an integer in ``[1, p]`` (``p``: singular values)."""
    if not (isinstance(rank, (int, np.integer)) and 1 <= rank <= p):
        raise ValueError(f"option rank must be an integer in [1, {p}]; got {rank!r}.")


def _tsvd(
    Y, A, *,
    rank: int | None = None, lambda_rule: str = "gcv", noise_std: float | None = None, tau: float = 1.0,
    truth: ArrayLike | None = None,
):
    factor = _factorize(A)
    p = factor.c.shape[0]
    if rank is not None:
        check_tsvd_rank(rank, p)
        path = _tsvd_path(Y, ks=jnp.asarray([rank]), factor=factor)
        X = path.solution(0)
        diag = dict(rank=int(rank), lambda_rule=None, residual_norm=float(path.residual_norm[0]))
    else:
        if truth is not None:
            truth = finite_array(truth, "truth")
        path = _tsvd_path(Y, factor=factor, truth=truth)
        X, diag = _run_path(Y, factor, path, None, lambda_rule, noise_std, tau, truth, "tsvd")
        diag["rank"] = int(round(diag["lam"]))
    return Solution(X, "tsvd", diag, {})


def _spatiotemporal(
    Y, A, *,
    lam_s: float | None = None, lam_t: float | None = None, lambda_rule: str = DEFAULT_RULE,
    lams_s: ArrayLike | None = None, lams_t: ArrayLike | None = None, order: int = 2,
    laplacian: Operator | None = None, gradient: Operator | None = None,
    vertices: ArrayLike | None = None, adjacency: Adjacency | None = None, dt: float = 0.1,
    temporal: ArrayLike | None = None, noise_std: float | None = None, tau: float = 1.0,
    truth: ArrayLike | None = None,
):
    n, n_t = A.shape[1], Y.shape[1]
    R = spatial_operator(order, n, laplacian, gradient, vertices, adjacency)
    pinned = False
    if R is not None:
        R, pinned = pin_constant_mode(A, R)
    Rd = as_matrix(R, A.dtype)
    D = temporal_operator(n_t, dt) if temporal is None else finite_array(temporal, "temporal")
    if truth is not None:
        truth = finite_array(truth, "truth")
    if lambda_rule not in ("gcv", "creso", "discrepancy", "oracle"):
        raise ValueError(f"spatiotemporal lambda_rule must be one of gcv, creso, discrepancy, oracle; got {lambda_rule!r}.")
    if lambda_rule == "oracle" and truth is None and (lam_s is None or lam_t is None):
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    for one, grid, name in ((lam_s, lams_s, "lam_s"), (lam_t, lams_t, "lam_t")):
        if one is not None and grid is not None:
            raise ValueError(f"give {name} (one value) or {name[:3]}s_{name[-1]} (a grid to choose from), not both.")
    if lam_t is not None:
        lams_t = [float(lam_t)]  # a fixed temporal weight; the rule still picks lam_s
    diag: dict[str, Any] = {}
    if lam_s is not None and lam_t is not None:
        X = spatiotemporal(Y, A, lam_s, lam_t, Rd, D)
        diag.update(lam_s=float(lam_s), lam_t=float(lam_t), lambda_rule=None)
    else:
        if lambda_rule == "discrepancy" and noise_std is None:
            noise_std = float(estimate_noise(tikhonov_path(Y, A, R=Rd)))
            diag["noise_std_estimated"] = True
        if lams_s is None:
            # Centre the spatial grid on the purely spatial choice of the same rule, then balance
            # the temporal weight so both penalties are equal at ratio 1 on that solution.
            fpath = tikhonov_path(Y, A, R=Rd, truth=truth)
            kw = dict(noise_std=noise_std, tau=tau) if lambda_rule == "discrepancy" else {}
            ch = select_lambda(fpath, lambda_rule, **kw)
            lam0 = float(ch.lam) if lam_s is None else float(lam_s)
            lams_s = [lam0] if lam_s is not None or lambda_rule == "creso" else lam0 * np.logspace(-0.5, 0.5, 3)
            X0 = fpath.solution(ch.index)
            rx = Rd if Rd is not None else None
            spat = float(jnp.sum((X0 if rx is None else rx @ X0) ** 2))
            temp = float(jnp.sum((X0 @ jnp.asarray(D, X0.dtype).T) ** 2))
            base = lam0 * spat / max(temp, 1e-30)
        else:
            base = 1.0
        if lambda_rule == "creso":
            # CRESO has no 2-D form: the spatial λ is the spatial problem's CRESO λ (or lam_s), the
            # temporal weight the balance point (lam_t, else both penalties equal on that solution).
            if lams_s is None or len(lams_s) != 1:
                raise ValueError("lambda_rule='creso' takes one spatial λ: give lam_s or neither, not lams_s.")
            lams_s, lams_t = [float(lams_s[0])], [float(lams_t[0]) if lams_t is not None else base]
        if lams_t is None:
            lams_t = base * np.concatenate([[0.0], np.logspace(-3, 1, 7)])
        path = spatiotemporal_path(Y, A, lams_s, lams_t, Rd, D, truth=truth)
        # (with "creso" the grid is one point: any rule picks it)
        rule = "gcv" if lambda_rule == "creso" else lambda_rule
        choice = select_spatiotemporal(path, rule, noise_std=noise_std, tau=tau)
        ls, lt = (float(v) for v in choice.lam)
        X = spatiotemporal(Y, A, ls, lt, Rd, D)
        diag.update(
            lam_s=ls, lam_t=lt, lambda_rule=lambda_rule, benchmark_only=choice.benchmark_only,
            lams_s=_np(path.lams_s), lams_t=_np(path.lams_t), criterion=_np(choice.curve),
            residual_norms=_np(path.residual_norm),
        )
        if noise_std is not None:
            diag["noise_std"] = float(noise_std)
        if path.error is not None:
            diag["relative_errors"] = _np(path.error)
    diag["residual_norm"] = float(jnp.linalg.norm(A @ X - Y))
    if pinned:
        X, diag["constant_mode"] = zero_mean(X), "zero-mean"
    return Solution(X, "spatiotemporal", diag, {"dt": dt})


register_method("tikhonov-0", _tikhonov0, "Zeroth-order Tikhonov (‖X‖ penalty), λ grid from one SVD.")
register_method("tikhonov-1", _tikhonov1, "First-order Tikhonov (surface/edge gradient penalty), λ grid from one GSVD.")
register_method("tikhonov-2", _tikhonov2, "Second-order Tikhonov (surface Laplacian penalty), λ grid from one GSVD.")
register_method("tsvd", _tsvd, "Truncated SVD of the transfer matrix, truncation level by a λ rule.")
register_method(
    "spatiotemporal",
    _spatiotemporal,
    "Spatial (Laplacian) + temporal (time-derivative) Tikhonov, solved exactly by diagonalization (STRE-like).",
)


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


def _tikhonov_start(Y, A, R, order, name):
    """``(λ_T, X_T)``: Tikhonov with operator ``R`` at its GCV λ (reuses the tikhonov-k code path).

    The sparse penalties are refused where ``A`` and ``R`` leave the constant undetermined: the
    zero-mean row of :func:`pin_constant_mode` would join their L1 / Lq groups."""
    if R is not None and pin_constant_mode(A, R)[1]:
        raise ValueError(
            f"A maps constant heart potentials to zero (a zero-mean reference or an EDL matrix) and {name}'s "
            "operator annihilates them too, so the constant component is undetermined. Build A with the heart "
            "reference (forward.transfer_matrix(..., reference='none')), or use tikhonov-1/2 or spatiotemporal, "
            "which take the zero-mean solution."
        )
    sol = _tikhonov_impl(order, Y, A, None, "gcv", None, None, 1.0, None, R)
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
    lam_t, X_t = _tikhonov_start(Y, A, R, order, name)
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
    Y, A, *,
    lam: float | None = None, lam_scale: float = 1.0, gradient: Operator | None = None,
    vertices: ArrayLike | None = None, adjacency: Adjacency | None = None, group: int = 1,
    rho: float | None = None, max_iter: int = 2000, tol_abs: float = 1e-7, tol_rel: float = 1e-3,
    relaxation: float = 1.6,
):
    """Total variation: ``‖AX − Y‖² + lam·‖GX‖_1`` with ``G`` the surface (``gradient=``) or edge
    (``vertices=``, ``adjacency=``) gradient; ``group=3`` with a ``(3F, N)`` surface gradient gives
    isotropic TV."""
    R = spatial_operator(1, A.shape[1], None, gradient, vertices, adjacency)
    return _admm_method("total-variation", Y, A, R, 1, lam, lam_scale, rho, max_iter, tol_abs, tol_rel, relaxation, group)


def _l1(
    Y, A, *,
    lam: float | None = None, lam_scale: float = 1.0, rho: float | None = None, max_iter: int = 2000,
    tol_abs: float = 1e-7, tol_rel: float = 1e-3, relaxation: float = 1.6,
):
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
    Y, A, *,
    p: float = 2.0, q: float = 1.0, order: int = 1, lam: float | None = None, lam_scale: float = 1.0,
    eps_p: float | None = None, eps_q: float | None = None, laplacian: Operator | None = None,
    gradient: Operator | None = None, vertices: ArrayLike | None = None,
    adjacency: Adjacency | None = None, max_iter: int = 500, tol: float = 1e-4,
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
    R = spatial_operator(order, A.shape[1], laplacian, gradient, vertices, adjacency)
    lam_t, X_t = _tikhonov_start(Y, A, R, order, "lp-lq")
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
    Y, A, *,
    order: int = 2, n_components: int | None = None, energy: float | None = None,
    lam: float | None = None, lambda_rule: str = "gcv", lambdas: ArrayLike | None = None,
    laplacian: Operator | None = None, gradient: Operator | None = None,
    vertices: ArrayLike | None = None, adjacency: Adjacency | None = None,
    noise_std: float | None = None, tau: float = 1.0, truth: ArrayLike | None = None,
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
    if lambda_rule not in RULES:
        raise ValueError(f"greensite lambda_rule must be one of {', '.join(RULES)}; got {lambda_rule!r}.")
    if lambda_rule == "oracle" and truth is None and lam is None:
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    R = spatial_operator(order, A.shape[1], laplacian, gradient, vertices, adjacency)
    pinned = False
    if R is not None:
        R, pinned = pin_constant_mode(A, R)
    Rop = _operator(R, A.dtype)
    factor = _factorize(A, Rop)
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
            noise_std = float(estimate_noise(_tikhonov_path(Y, factor=factor)))
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
    X = out.X
    if pinned:
        X, diag["constant_mode"] = zero_mean(X), "zero-mean"
    return Solution(X, "greensite", diag, {})


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
