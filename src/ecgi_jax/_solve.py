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
import enum
import inspect
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from ._types import check_key
from .operators import SparseOperator, edge_gradient
from .solvers import classical as C

__all__ = ["Result", "SolveError", "Solution", "solve", "register_method", "METHODS", "methods_table", "method_options"]


class Result(str, enum.Enum):
    """How a method ended, the same for every method (``Solution.result``).

    ``SUCCESS``: it ran to its own end (a classical solve, a stopping rule met, the training
    budget or a plateau). ``NOT_CONVERGED``: an iterative method (ADMM, IRLS, Levenberg–Marquardt)
    used up ``max_iter`` before its stopping rule held; the last iterate is returned.
    ``DIVERGED``: training met a non-finite loss or gradient; the last finite state is returned.
    ``NON_FINITE``: the returned potentials hold NaN or Inf.
    """

    SUCCESS = "success"
    NOT_CONVERGED = "not-converged"
    DIVERGED = "diverged"
    NON_FINITE = "non-finite"


class SolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when the result is not :attr:`Result.SUCCESS`; the
    solution is in ``.solution``."""

    def __init__(self, message: str, solution: "Solution"):
        super().__init__(message)
        self.solution = solution


def result_of(potentials, diagnostics: dict) -> Result:
    """The :class:`Result` of a method's output, from its potentials and the diagnostics every
    iterative method reports (``"stopped"``: training; ``"converged"``: ADMM, IRLS, LM)."""
    if not bool(jnp.all(jnp.isfinite(jnp.asarray(potentials)))):
        return Result.NON_FINITE
    if diagnostics.get("stopped") == "diverged":
        return Result.DIVERGED
    if diagnostics.get("converged") is False:
        return Result.NOT_CONVERGED
    return Result.SUCCESS


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
        result: how the method ended (:class:`Result`; set by :func:`solve`), the one field to
            check in every method instead of its own diagnostics.
    """

    potentials: Any
    method: str
    diagnostics: dict
    options: dict
    recovery: Any = None
    history: Any = None
    result: Result = Result.SUCCESS

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


def _option_parameters(name: str) -> list[inspect.Parameter]:
    """A registered method's parameters after ``(Y, A)``: its options."""
    return list(inspect.signature(_get(name)).parameters.values())[2:]


def method_options(name: str) -> dict[str, Any]:
    """The options of a registered method and their defaults (``inspect.Parameter.empty`` if none)."""
    return {p.name: p.default for p in _option_parameters(name) if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


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
        dtype = f" of dtype {x.dtype}" if hasattr(x, "dtype") else ""
        raise TypeError(f"{name} must be a numeric array; got {type(x).__name__}{dtype}.") from e
    if not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype} (pass the real part if that is meant).")
    if not bool(jnp.all(jnp.isfinite(arr))):
        bad = int(jnp.size(arr) - jnp.sum(jnp.isfinite(arr)))
        hint = " (e.g. drop bad leads from Y and the matching rows of A)" if name in ("Y", "A") else ""
        raise ValueError(f"{name} contains NaN or Inf values ({bad} of {arr.size} entries); remove or interpolate them{hint}.")
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
        if Y.shape[1] == A.shape[0]:
            hint = " Y looks transposed: pass Y as (M leads, T samples)."
        else:
            hint = ""
        raise ValueError(f"Y has {Y.shape[0]} rows but A has {A.shape[0]}: both must have M rows (leads).{hint}")
    if 0 in Y.shape or 0 in A.shape:
        raise ValueError(f"Y {Y.shape} and A {A.shape} must be non-empty (at least one lead, sample and heart node).")
    return _working_precision(Y, A)


def _working_precision(Y, A):
    """``Y`` and ``A`` in their common floating dtype, at least float32: XLA's linear algebra has
    no half-precision kernels (float16/bfloat16 inputs ended in a jaxlib ``NotImplementedError``),
    so those are solved in float32 and the solution comes back in float32."""
    dtype = jnp.result_type(Y, A, float)
    if jnp.finfo(dtype).bits < 32:
        dtype = jnp.promote_types(dtype, jnp.float32)
    return Y.astype(dtype), A.astype(dtype)


# Options shared by several methods, checked once here whatever the method: name -> (lower bound,
# whether the bound itself is allowed). λ multiplies a squared seminorm, so it must be > 0; a zero
# temporal weight (no temporal penalty) is allowed.
_POSITIVE_SCALARS = {
    "lam": (0.0, False), "lam_s": (0.0, False), "lam_t": (0.0, True), "dt": (0.0, False),
    "tau": (0.0, False), "noise_std": (0.0, True), "learning_rate": (0.0, False),
}
_POSITIVE_GRIDS = {"lambdas": (0.0, False), "lams_s": (0.0, False), "lams_t": (0.0, True)}
# Counts (integers, not bools or floats that happen to be whole): name -> smallest allowed value.
_COUNTS = {
    "steps": 1, "chunk": 1, "patience": 0, "lbfgs_steps": 0, "n_blocks": 1, "block_depth": 1,
    "n_layers": 1, "collocation": 1, "checkpoint_every": 1, "fourier_features": 0, "max_iter": 1, "screen_iter": 0, "n_starts": 1,
}


def _option_kind(p: inspect.Parameter) -> str | None:
    """``"bool"``, ``"number"`` or ``None`` (anything else) for a method's option, from its default
    or, for a ``None`` default, its annotation (``int | None`` is a number) or the shared tables."""
    if p.name in _POSITIVE_SCALARS or p.name in _COUNTS:
        return "number"
    d = p.default
    if isinstance(d, (bool, np.bool_)):
        return "bool"
    if isinstance(d, (int, float, np.integer, np.floating)):
        return "number"
    ann = p.annotation if isinstance(p.annotation, str) else ("" if p.annotation is p.empty else str(p.annotation))
    tokens = {t.strip().removeprefix("<class '").removesuffix("'>") for t in ann.split("|")} - {"None", "NoneType", ""}
    if tokens == {"bool"}:
        return "bool"
    if tokens and tokens <= {"int", "float"}:
        return "number"
    return None


#: Options renamed so that a name means one thing in every method: method -> {old: new}.
RENAMED_OPTIONS: dict[str, dict[str, str]] = {
    "eand-arn": {"order": "stencil_order"},
    "spatiotemporal": {"spatial_order": "order"},
    "tsvd": {"k": "rank"},
    "greensite": {"k": "n_components"},
    "activation-based": {"width": "upstroke_width", "width_start": "upstroke_width_start"},
}


def check_option_names(method: str, options) -> None:
    """Refuse an option ``method`` does not take, naming the valid ones (and the new name of a
    renamed one)."""
    params = _option_parameters(method)
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params]
    bad = sorted(set(options) - set(valid))
    if not bad:
        return
    renamed = RENAMED_OPTIONS.get(method, {})
    hints = [f"{old!r} is now {renamed[old]!r}" for old in bad if old in renamed]
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise TypeError(f"method {method!r} got unknown option(s) {bad}{hint}; valid options: {', '.join(valid)}.")


def check_option_types(method: str, options) -> None:
    """The type of every option given to ``method`` against what its signature says: a flag must
    be ``True``/``False`` (a string ``"yes"`` or ``"False"`` is not), a number must not be a string
    or a bool. One layer for every method, run before any work is done; ranges are checked by
    :func:`_check_options` and by the methods themselves."""
    kinds = {p.name: _option_kind(p) for p in _option_parameters(method)}
    for name, value in options.items():
        kind = kinds.get(name)
        if value is None or kind is None or isinstance(value, jax.core.Tracer) or name in _COUNTS or name in _POSITIVE_SCALARS:
            continue  # counts and positive numbers: _check_options, with the bounds in the message
        if kind == "bool" and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"option {name} must be True or False; got {type(value).__name__} {value!r} (method {method!r}).")
        if kind == "number":
            if isinstance(value, (str, bytes, bool, np.bool_)) or not (
                isinstance(value, (int, float, np.integer, np.floating)) or (hasattr(value, "shape") and np.ndim(value) == 0)
            ):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__} {value!r} (method {method!r}).")


def _check_options(options, n, n_t):
    """Method-independent checks of the options given to :func:`solve` (defaults are trusted).

    Numbers that must be positive (λ's, ``dt``, ``tau``, ``learning_rate``), λ grids, and the
    array options whose shape follows from ``Y (M, T)`` and ``A (M, N)``: ``truth (N, T)``,
    ``laplacian (N, N)``, ``gradient (K, N)``, ``temporal (T, T)``, ``vertices (N, 3)``.
    Nothing is converted: the method receives the options exactly as given.
    """
    for name, value in options.items():
        if value is None:
            continue
        if name in _POSITIVE_SCALARS:
            lo, closed = _POSITIVE_SCALARS[name]
            if isinstance(value, jax.core.Tracer):
                continue
            if isinstance(value, (str, bytes, bool, np.bool_)):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__} {value!r}.")
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__}.") from None
            if not np.isfinite(v) or v < lo or (v == lo and not closed):
                rel = ">=" if closed else ">"
                raise ValueError(f"option {name} must be a finite number {rel} {lo:g}; got {value!r}.")
        elif name in _POSITIVE_GRIDS:
            lo, closed = _POSITIVE_GRIDS[name]
            g = np.asarray(_finite_array(value, name))
            if g.ndim != 1 or g.size == 0:
                raise ValueError(f"option {name} must be a non-empty 1-D grid of values; got shape {g.shape}.")
            if (g < lo).any() or (not closed and (g <= lo).any()):
                rel = ">=" if closed else ">"
                raise ValueError(f"option {name} must contain only values {rel} {lo:g}; got min {g.min():g}.")
        elif name in _COUNTS:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"option {name} must be an integer; got {type(value).__name__} {value!r}.")
            if value < _COUNTS[name]:
                raise ValueError(f"option {name} must be an integer >= {_COUNTS[name]}; got {value}.")
        elif name == "key":
            check_key(value, "option key")
        elif name == "truth":
            t = _finite_array(value, "truth")
            if t.shape != (n, n_t):
                raise ValueError(f"truth has shape {t.shape}; expected (N, T) = {(n, n_t)} to match A and Y.")
        elif name == "laplacian":
            _check_operator(value, "laplacian", n, square=True)
        elif name == "gradient":
            _check_operator(value, "gradient", n)
        elif name == "temporal":
            t = _finite_array(value, "temporal")
            if t.shape != (n_t, n_t):
                raise ValueError(f"temporal has shape {t.shape}; expected (T, T) = {(n_t, n_t)} for T = {n_t} samples.")
        elif name == "ap_params" and hasattr(value, "validate"):
            value.validate()  # Aliev–Panfilov parameters: finite, positive D, k, …; 0 < a < 1
        elif name == "vertices":
            v = _finite_array(value, "vertices")
            if v.shape != (n, 3):
                raise ValueError(f"vertices has shape {v.shape}; expected (N, 3) = {(n, 3)} heart-node coordinates.")


def _check_time_samples(params, options, n_t, method):
    """Physics-informed methods (options ``stencil_order``, ``dt`` and ``ap_params``) need at
    least as many samples as the time stencil of their AP residual spans."""
    from .operators import min_samples

    declared = {p.name: p.default for p in params}
    if not {"stencil_order", "dt", "ap_params"} <= set(declared):
        return
    order = options.get("stencil_order", declared["stencil_order"])
    if not isinstance(order, int) or isinstance(order, bool) or order < 2 or order % 2:
        raise ValueError(f"option stencil_order must be an even integer >= 2; got {order!r}.")
    need = min_samples(1, order)
    if n_t < need:
        raise ValueError(
            f"method {method!r} with stencil_order={order} needs at least {need} time samples; Y has {n_t}. "
            "Pass more samples or a lower stencil_order (2 needs 3)."
        )


def solve(Y, A, *, method: str = "tikhonov-2", throw: bool = False, **options) -> Solution:
    """Reconstruct heart potentials from body-surface potentials.

    Args:
        Y: ``(M, T)`` body-surface potentials (M leads, T samples).
        A: ``(M, N)`` transfer matrix.
        method: a name in :data:`METHODS` (``methods_table()`` lists them).
        throw: raise :class:`SolveError` (holding the solution) when the result is not
            :attr:`Result.SUCCESS`; by default the solution comes back with ``result`` saying how
            it ended (and a ``RuntimeWarning`` where the method gives one).
        **options: method options; ``method_options(name)`` lists them with defaults.

    Raises:
        ValueError: bad shapes (``Y (M, T)``, ``A (M, N)``, ``truth (N, T)``, ``laplacian (N, N)``,
            ``gradient (K, N)``, ``temporal (T, T)``), empty or NaN/Inf inputs (naming the input),
            non-positive ``lam``/``lam_s``/``dt``/``tau``/``learning_rate`` or λ grids, an unknown
            method (listing the valid ones), and for the classical solvers a regularized problem
            without a unique solution (A and the penalty share a null vector).
        TypeError: an option the method does not take (listing the valid ones), a non-string
            method, complex or non-numeric arrays.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string; got {type(method).__name__}. Valid methods: {', '.join(sorted(_REGISTRY))}.")
    fn = _get(method)
    if not isinstance(throw, (bool, np.bool_)):
        raise TypeError(f"throw must be True or False; got {type(throw).__name__} {throw!r}.")
    params = _option_parameters(method)
    check_option_names(method, options)
    check_option_types(method, options)
    Y, A = _validate(Y, A)
    _check_options(options, A.shape[1], Y.shape[1])
    _check_time_samples(params, options, Y.shape[1], method)
    t0 = time.perf_counter()
    sol = fn(Y, A, **options)
    jax.block_until_ready(sol.potentials)
    elapsed = time.perf_counter() - t0
    used = {p.name: p.default for p in params if p.default is not p.empty}
    used.update(sol.options)
    used.update(options)
    sol = dataclasses.replace(
        sol, method=method, options=used, diagnostics={**sol.diagnostics, "time_s": elapsed},
        result=result_of(sol.potentials, sol.diagnostics),
    )
    check_result(sol, throw)
    return sol


def check_result(sol: Solution, throw: bool, where: str = "") -> None:
    """Raise :class:`SolveError` for a failed ``sol`` when ``throw`` (``where`` prefixes the message)."""
    if throw and sol.result is not Result.SUCCESS:
        raise SolveError(f"{where}method {sol.method!r} ended {sol.result.value} (Solution.result); the solution is in .solution.", sol)


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
    if isinstance(order, (bool, np.bool_)) or order not in (0, 1, 2):
        raise ValueError(f"option order must be 0, 1 or 2 (the derivative order of the spatial penalty); got {order!r}.")
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


def _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, kind, choice=None):
    # choice: a LambdaChoice made outside (rule "cv" needs A and R, which the path does not hold).
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
    if choice is None:
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


def _check_constant_mode(A, R, name):
    """Refuse a Tikhonov problem whose solution is not unique: A and R both annihilate a
    piecewise-constant potential (constant on each connected part of R's node graph).

    This covers the common case (zero-mean-reference A with A·1 = 0 and a Laplacian with L·1 = 0)
    and its generalization to penalties on disconnected meshes (one constant per part) and to
    nodes no row of R touches. Cost: a sparse connected-components pass and an ``(M, k)`` SVD
    for ``k`` components. It does not look for other (non piecewise-constant) common null vectors.
    """
    n = A.shape[1]
    a = np.asarray(A, np.float64)
    probe = np.random.default_rng(0).normal(size=n) / np.sqrt(n)
    apply = lambda x: np.asarray(R @ jnp.asarray(x, jnp.result_type(float)), np.float64)  # noqa: E731
    tol = 1e-5
    n_parts, labels = _column_components(R, n)
    basis = np.zeros((n, n_parts))
    basis[np.arange(n), labels] = 1.0
    basis /= np.sqrt(basis.sum(axis=0, keepdims=True))
    r_probe = np.linalg.norm(apply(probe))
    in_null = [j for j in range(n_parts) if np.linalg.norm(apply(basis[:, j])) <= tol * r_probe]
    if not in_null:
        return
    sv = np.linalg.svd(a @ basis[:, in_null], compute_uv=False)
    if sv.min() > tol * np.linalg.norm(a @ probe):
        return
    if n_parts == 1:
        raise ValueError(
            f"A maps constant heart potentials to zero (a zero-mean reference) and {name} annihilates "
            "them too, so the constant component of the solution is undetermined. Build A with the "
            "heart reference (forward.transfer_matrix(..., reference='none')), or use tikhonov-0."
        )
    raise ValueError(
        f"{name} splits the {n} heart nodes into {n_parts} disconnected parts (sizes "
        f"{np.bincount(labels)[:8].tolist()}{'...' if n_parts > 8 else ''}) and is constant-blind on "
        f"{len(in_null)} of them, and A cannot tell those constants apart either (smallest singular "
        f"value {sv.min():.3g}): the solution is not unique. Use a connected mesh (check "
        "geometry.Mesh.n_components()), build A with reference='none', or use tikhonov-0."
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
        cv = C.crossval(Y, A, R, path.lambdas) if lambda_rule == "cv" else None  # 5 random lead folds
        X, diag = _run_path(Y, factor, path, lam, lambda_rule, noise_std, tau, truth, "tikhonov", cv)
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


def _tsvd(Y, A, *, rank=None, lambda_rule="gcv", noise_std=None, tau=1.0, truth=None):
    factor = _factorize(A)
    p = factor.c.shape[0]
    if rank is not None:
        if not (isinstance(rank, (int, np.integer)) and 1 <= rank <= p):
            raise ValueError(f"option rank must be an integer in [1, {p}]; got {rank!r}.")
        path = _tsvd_path(Y, ks=jnp.asarray([rank]), factor=factor)
        X = path.solution(0)
        diag = dict(rank=int(rank), lambda_rule=None, residual_norm=float(path.residual_norm[0]))
    else:
        if truth is not None:
            truth = _finite_array(truth, "truth")
        path = _tsvd_path(Y, factor=factor, truth=truth)
        X, diag = _run_path(Y, factor, path, None, lambda_rule, noise_std, tau, truth, "tsvd")
        diag["rank"] = int(round(diag["lam"]))
    return Solution(X, "tsvd", diag, {})


def _spatiotemporal(
    Y, A, *, lam_s=None, lam_t=None, lambda_rule="gcv", lams_s=None, lams_t=None, order=2,
    laplacian=None, gradient=None, vertices=None, adjacency=None, dt=0.1, temporal=None, noise_std=None,
    tau=1.0, truth=None,
):
    n, n_t = A.shape[1], Y.shape[1]
    R = _spatial_operator(order, n, laplacian, gradient, vertices, adjacency)
    Rd = C.as_matrix(R, A.dtype)
    D = C.temporal_operator(n_t, dt) if temporal is None else _finite_array(temporal, "temporal")
    if truth is not None:
        truth = _finite_array(truth, "truth")
    if lambda_rule not in ("gcv", "discrepancy", "oracle"):
        raise ValueError(f"spatiotemporal lambda_rule must be one of gcv, discrepancy, oracle; got {lambda_rule!r}.")
    if lambda_rule == "oracle" and truth is None and (lam_s is None or lam_t is None):
        raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (N, T). (BENCHMARK-ONLY)")
    for one, grid, name in ((lam_s, lams_s, "lam_s"), (lam_t, lams_t, "lam_t")):
        if one is not None and grid is not None:
            raise ValueError(f"give {name} (one value) or {name[:3]}s_{name[-1]} (a grid to choose from), not both.")
    if lam_t is not None:
        lams_t = [float(lam_t)]  # a fixed temporal weight; the rule still picks lam_s
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
