"""The front door: ``solve(Y, A, method=..., **options) -> Solution`` and the method registry.

Every inverse method, classical or neural, is a function ``fn(Y, A, **options) -> Solution``
registered under a name with :func:`register_method`. :func:`solve` validates the inputs, checks
the options against ``fn``'s signature, times the call and fills ``Solution.options`` with the
options actually used (defaults included).

Importing this module imports only the classical solvers; neural methods register themselves from
their own module (``register_method("eand-arn", fn, "...")``) when that module is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .operators import SparseOperator, edge_gradient
from .solvers import classical as C

__all__ = ["Solution", "solve", "register_method", "METHODS", "methods_table", "method_options"]


@dataclasses.dataclass(frozen=True)
class Solution:
    """Result of :func:`solve`.

    Attributes:
        potentials: ``(N, T)`` reconstructed heart potentials (alias :attr:`U`).
        method: the registered method name.
        diagnostics: method-specific facts: for classical methods the chosen λ (``"lam"``), the
            rule and the curves it was chosen from, residual norm, and ``"time_s"`` (wall-clock
            seconds of the whole call, added by :func:`solve`).
        options: every option the method ran with, defaults included.
        recovery: ``(N, T)`` recovery variable for methods that estimate it (alias :attr:`V`),
            ``None`` for classical methods.
        history: training history for iterative/neural methods, ``None`` for classical methods.
    """

    potentials: Any
    method: str
    diagnostics: dict
    options: dict
    recovery: Any = None
    history: Any = None

    @property
    def U(self):
        return self.potentials

    @property
    def V(self):
        return self.recovery


_REGISTRY: dict[str, tuple[Callable[..., Solution], str]] = {}
METHODS: dict[str, str] = {}
"""Registered method names → one-line descriptions (updated by :func:`register_method`)."""


def register_method(name: str, fn: Callable[..., Solution], description: str, *, overwrite: bool = True) -> None:
    """Register ``fn(Y, A, **options) -> Solution`` under ``name`` for :func:`solve`.

    Options are checked against ``fn``'s keyword parameters (a ``**kwargs`` parameter disables the
    check). Re-registering a name replaces it unless ``overwrite=False``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("method name must be a non-empty string.")
    if not callable(fn):
        raise TypeError(f"fn for method {name!r} must be callable.")
    if not overwrite and name in _REGISTRY:
        raise ValueError(f"method {name!r} is already registered.")
    _REGISTRY[name] = (fn, str(description))
    METHODS[name] = str(description)


def method_options(name: str) -> dict[str, Any]:
    """The options of a registered method and their defaults (``inspect.Parameter.empty`` if none)."""
    fn = _get(name)
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def methods_table() -> str:
    """Markdown table of the registered methods (for the README)."""
    lines = ["| method | description |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in METHODS.items()]
    return "\n".join(lines)


def _get(name):
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name][0]


# ----------------------------------------------------------------------------------------------
# validation


def _finite_array(x, name):
    try:
        arr = jnp.asarray(x)
    except TypeError as e:
        raise TypeError(f"{name} must be an array; got {type(x).__name__}.") from e
    if not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name} contains NaN or Inf values.")
    return arr


def _check_operator(op, name, n, square=False):
    """Validate a spatial operator (SparseOperator / scipy / dense): ``(K, n)`` (``(n, n)`` if
    ``square``) with finite entries. Returns it unchanged (or as a dense array)."""
    if isinstance(op, SparseOperator):
        shape, vals = op.shape, op.weights
    elif sp.issparse(op):
        shape, vals = op.shape, op.data
    else:
        op = _finite_array(op, name)
        shape, vals = op.shape, op
    if len(shape) != 2 or shape[1] != n or (square and shape[0] != n):
        want = f"({n}, {n})" if square else f"(K, {n})"
        raise ValueError(f"{name} has shape {tuple(shape)}; expected {want} for N = {n} heart nodes.")
    if not bool(np.all(np.isfinite(np.asarray(vals)))):
        raise ValueError(f"{name} contains NaN or Inf values.")
    return op


def _validate(Y, A):
    Y = _finite_array(Y, "Y")
    A = _finite_array(A, "A")
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (M leads, T samples); got shape {Y.shape}.")
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (M leads, N heart nodes); got shape {A.shape}.")
    if Y.shape[0] != A.shape[0]:
        raise ValueError(f"Y has {Y.shape[0]} rows but A has {A.shape[0]}: both must have M rows (leads).")
    dtype = jnp.result_type(Y, A, float)
    return Y.astype(dtype), A.astype(dtype)


def solve(Y, A, *, method: str = "tikhonov-2", **options) -> Solution:
    """Reconstruct heart potentials from body-surface potentials.

    Args:
        Y: ``(M, T)`` body-surface potentials (M leads, T samples).
        A: ``(M, N)`` transfer matrix.
        method: a name in :data:`METHODS` (``methods_table()`` lists them).
        **options: method options; ``method_options(name)`` lists them with defaults.

    Raises:
        ValueError: bad shapes, NaN/Inf inputs (naming the input), unknown method.
        TypeError: an option the method does not take (listing the valid ones).
    """
    fn = _get(method)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[2:]
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        valid = [p.name for p in params]
        bad = sorted(set(options) - set(valid))
        if bad:
            raise TypeError(f"method {method!r} got unknown option(s) {bad}; valid options: {', '.join(valid)}.")
    Y, A = _validate(Y, A)
    t0 = time.perf_counter()
    sol = fn(Y, A, **options)
    jax.block_until_ready(sol.potentials)
    elapsed = time.perf_counter() - t0
    used = {p.name: p.default for p in params if p.default is not p.empty}
    used.update(sol.options)
    used.update(options)
    return dataclasses.replace(sol, method=method, options=used, diagnostics={**sol.diagnostics, "time_s": elapsed})


# ----------------------------------------------------------------------------------------------
# classical methods


# Jitted entry points: one compiled program each instead of dozens of eagerly dispatched ops
# (much faster to compile, and the ops fuse).
_factorize = jax.jit(C.factorize)
_tikhonov_path = jax.jit(C.tikhonov_path)
_tsvd_path = jax.jit(C.tsvd_path)
_from_factor = jax.jit(C.tikhonov_from_factor)


def _np(x):
    return None if x is None else np.asarray(x)


def _spatial_operator(order, n, laplacian, gradient, vertices, adjacency):
    if order == 0:
        return None
    if order == 1:
        if gradient is not None:
            return _check_operator(gradient, "gradient", n)
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
    return _check_operator(laplacian, "laplacian", n, square=True)


def _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, kind):
    diag: dict[str, Any] = {}
    if lam is not None:
        raise AssertionError  # handled by callers
    kw = {}
    if lambda_rule == "discrepancy":
        kw = dict(noise_std=noise_std, tau=tau)
        diag["noise_std"] = float(C.estimate_noise(path) if noise_std is None else noise_std)
        diag["noise_std_estimated"] = noise_std is None
    if lambda_rule == "oracle" and truth is None:
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    if kind == "tsvd" and lambda_rule == "creso":
        raise ValueError("CRESO is defined for Tikhonov λ only; for tsvd use lcurve, gcv, discrepancy, ucurve or oracle.")
    choice = C.select_lambda(path, lambda_rule, **kw)
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


def _check_constant_mode(A, R, name):
    """Refuse the common singular case: A and R both annihilate constant heart potentials."""
    n = A.shape[1]
    ones = np.ones(n) / np.sqrt(n)
    a = np.asarray(A, np.float64)
    probe = np.random.default_rng(0).normal(size=n) / np.sqrt(n)
    apply = lambda x: np.asarray(R @ jnp.asarray(x, jnp.result_type(float)), np.float64)  # noqa: E731
    tol = 1e-5
    if np.linalg.norm(a @ ones) <= tol * np.linalg.norm(a @ probe) and np.linalg.norm(apply(ones)) <= tol * np.linalg.norm(apply(probe)):
        raise ValueError(
            f"A maps constant heart potentials to zero (a zero-mean reference) and {name} annihilates "
            "them too, so the constant component of the solution is undetermined. Build A with the "
            "heart reference (forward.transfer_matrix(..., reference='none')), or use tikhonov-0."
        )


def _tikhonov_impl(order, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R):
    n = A.shape[1]
    if R is not None:
        _check_constant_mode(A, R, "the regularization operator")
    if truth is not None:
        truth = _finite_array(truth, "truth")
        if truth.shape != (n, Y.shape[1]):
            raise ValueError(f"truth has shape {truth.shape}; expected {(n, Y.shape[1])}.")
    if lambdas is not None:
        lambdas = _finite_array(lambdas, "lambdas")
    if lam is not None and not float(lam) > 0:
        raise ValueError(f"lam must be positive; got {lam}.")
    if isinstance(R, SparseOperator):
        R = R.astype(A.dtype)
    factor = _factorize(A, C.as_matrix(R, A.dtype) if R is not None and not isinstance(R, SparseOperator) else R)
    if lam is not None:
        X = _from_factor(factor, Y, lam)
        res = float(jnp.linalg.norm(A @ X - Y))
        diag = dict(lam=float(lam), lambda_rule=None, residual_norm=res)
    else:
        path = _tikhonov_path(Y, lambdas=lambdas, factor=factor, truth=truth)
        X, diag = _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, "tikhonov")
    diag["order"] = order
    return Solution(X, f"tikhonov-{order}", diag, {})


def _tikhonov0(Y, A, *, lam=None, lambda_rule="gcv", lambdas=None, noise_std=None, tau=1.0, truth=None):
    return _tikhonov_impl(0, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, None)


def _tikhonov1(
    Y, A, *, lam=None, lambda_rule="gcv", lambdas=None, gradient=None, vertices=None, adjacency=None,
    noise_std=None, tau=1.0, truth=None,
):
    R = _spatial_operator(1, A.shape[1], None, gradient, vertices, adjacency)
    return _tikhonov_impl(1, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R)


def _tikhonov2(Y, A, *, lam=None, lambda_rule="gcv", lambdas=None, laplacian=None, noise_std=None, tau=1.0, truth=None):
    R = _spatial_operator(2, A.shape[1], laplacian, None, None, None)
    return _tikhonov_impl(2, Y, A, lam, lambda_rule, lambdas, noise_std, tau, truth, R)


def _tsvd(Y, A, *, k=None, lambda_rule="gcv", noise_std=None, tau=1.0, truth=None):
    factor = _factorize(A)
    p = factor.c.shape[0]
    if k is not None:
        if not (isinstance(k, (int, np.integer)) and 1 <= k <= p):
            raise ValueError(f"k must be an integer in [1, {p}]; got {k!r}.")
        path = _tsvd_path(Y, ks=jnp.asarray([k]), factor=factor)
        X = path.solution(0)
        diag = dict(k=int(k), lambda_rule=None, residual_norm=float(path.residual_norm[0]))
    else:
        if truth is not None:
            truth = _finite_array(truth, "truth")
        path = _tsvd_path(Y, factor=factor, truth=truth)
        X, diag = _run_path(Y, factor, path, None, lambda_rule, noise_std, tau, truth, "tsvd")
        diag["k"] = int(round(diag["lam"]))
    return Solution(X, "tsvd", diag, {})


def _spatiotemporal(
    Y, A, *, lam_s=None, lam_t=None, lambda_rule="gcv", lams_s=None, lams_t=None, spatial_order=2,
    laplacian=None, gradient=None, vertices=None, adjacency=None, dt=1.0, temporal=None, noise_std=None,
    tau=1.0, truth=None,
):
    n, n_t = A.shape[1], Y.shape[1]
    R = _spatial_operator(spatial_order, n, laplacian, gradient, vertices, adjacency)
    Rd = C.as_matrix(R, A.dtype)
    D = C.temporal_operator(n_t, dt) if temporal is None else _finite_array(temporal, "temporal")
    if truth is not None:
        truth = _finite_array(truth, "truth")
    if lambda_rule not in ("gcv", "discrepancy", "oracle"):
        raise ValueError(f"spatiotemporal lambda_rule must be one of gcv, discrepancy, oracle; got {lambda_rule!r}.")
    if lambda_rule == "oracle" and truth is None and (lam_s is None or lam_t is None):
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    diag: dict[str, Any] = {}
    if lam_s is not None and lam_t is not None:
        X = C.spatiotemporal(Y, A, lam_s, lam_t, Rd, D)
        diag.update(lam_s=float(lam_s), lam_t=float(lam_t), lambda_rule=None)
    else:
        if lambda_rule == "discrepancy" and noise_std is None:
            noise_std = float(C.estimate_noise(C.tikhonov_path(Y, A, R=Rd)))
            diag["noise_std_estimated"] = True
        if lams_s is None:
            # Centre the spatial grid on the purely spatial choice of the same rule, then balance
            # the temporal weight so both penalties are equal at ratio 1 on that solution.
            fpath = C.tikhonov_path(Y, A, R=Rd, truth=truth)
            kw = dict(noise_std=noise_std, tau=tau) if lambda_rule == "discrepancy" else {}
            ch = C.select_lambda(fpath, lambda_rule, **kw)
            lam0 = float(ch.lam) if lam_s is None else float(lam_s)
            lams_s = [lam0] if lam_s is not None else lam0 * np.logspace(-0.5, 0.5, 3)
            X0 = fpath.solution(ch.index)
            rx = Rd if Rd is not None else None
            spat = float(jnp.sum((X0 if rx is None else rx @ X0) ** 2))
            temp = float(jnp.sum((X0 @ jnp.asarray(D, X0.dtype).T) ** 2))
            base = lam0 * spat / max(temp, 1e-30)
        else:
            base = 1.0
        if lams_t is None:
            lams_t = base * np.concatenate([[0.0], np.logspace(-3, 1, 7)])
        path = C.spatiotemporal_path(Y, A, lams_s, lams_t, Rd, D, truth=truth)
        choice = C.select_spatiotemporal(path, lambda_rule, noise_std=noise_std, tau=tau)
        ls, lt = (float(v) for v in choice.lam)
        X = C.spatiotemporal(Y, A, ls, lt, Rd, D)
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
