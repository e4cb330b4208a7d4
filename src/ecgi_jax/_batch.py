"""``solve_batch``: many inverse problems at once, vectorized with ``jax.vmap`` and optionally
sharded over devices.

A batch is ``B`` problems of equal shapes: ``Y (B, m, t)`` with one transfer matrix per problem
``A (B, m, n)`` or one shared ``A (m, n)``. Each result equals the corresponding
``solve(Y[b], A[b], method=..., **options)`` up to float rounding (batched matrix products may
round differently from single ones).

How each family is batched:

* ``tikhonov-0/1/2`` and ``tsvd``: one jitted ``jax.vmap`` over the batch of factorization, λ path,
  λ rule and solution. With a shared ``A`` the (generalized) SVD is computed once and only the
  path, rule and solution are vmapped. Host-side work is limited to input checks (the
  constant-mode check runs once per distinct ``A``) and turning the batched diagnostics into each
  problem's ``Solution.diagnostics``.
* ``eand-arn`` and ``pdl``: start solutions and network initialisations are set up problem by
  problem, then every network is trained simultaneously by one jitted, vmapped step over the
  stacked parameters, optimizer states and problems (``run_training(..., batched=True)``). A
  problem that diverges or plateaus is frozen while the others continue.
* any other registered method (``spatiotemporal`` among them: its λ grid is built on the host
  from a first-stage choice, with ``float()`` conversions): a Python loop of :func:`solve`, with
  ``diagnostics["batched"] = False`` saying so.

Devices: ``devices="all"`` (every local device) or a list of devices shards the batch axis over a
1-D :class:`jax.sharding.Mesh` with axis ``"batch"``: stacked inputs and states are put on the
mesh with ``NamedSharding(mesh, PartitionSpec("batch"))`` and jit propagates the sharding
through the computation; shared arrays are replicated. A batch size that is not a multiple of the
device count is padded with copies of the last problem, whose results are dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._registry import Solution, batch_method, get_method, method_options, register_batch_method, result_of
from ._solve import (
    _check_options,
    _validate,
    _working_precision,
    check_option_names,
    check_option_types,
    with_heart,
    check_result,
    in_time_unit,
    method_and_options,
    solve,
)
from .operators import SparseOperator, finite_array
from .solvers import classical

__all__ = ["solve_batch", "register_batch_method", "batch_mesh", "shard_batch"]

# ----------------------------------------------------------------------------------------------
# devices


def batch_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh with axis ``"batch"``: ``None`` → no mesh (default device), ``"all"`` → every
    local device, or a list of devices."""
    if devices is None:
        return None
    if isinstance(devices, str) and devices != "all":
        raise ValueError(f"devices must be None, 'all' or a list of jax devices; got {devices!r}.")
    devs = jax.local_devices() if isinstance(devices, str) else list(devices)
    if not devs:
        raise ValueError("devices is an empty list: give at least one device, or devices=None.")
    return Mesh(np.array(devs), ("batch",))


def _pad(x, multiple):
    pad = -x.shape[0] % multiple
    return x if pad == 0 else jnp.concatenate([x] + [x[-1:]] * pad, axis=0)


def shard_batch(tree, mesh: Mesh | None):
    """Pad every leaf's leading (batch) axis to a multiple of the mesh size with copies of the
    last entry, and put it on ``mesh`` sharded along that axis (unchanged when ``mesh`` is None)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.tree.map(lambda x: jax.device_put(_pad(jnp.asarray(x), mesh.size), sharding), tree)


def _replicate(tree, mesh: Mesh | None):
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


# ----------------------------------------------------------------------------------------------
# classical methods


def _path_outputs(path, choice, noise):
    """The per-problem arrays the diagnostics need (not the factor: it may be shared)."""
    return dict(
        lambdas=path.lambdas, residual_norms=path.residual_norm, seminorms=path.seminorm, errors=path.error,
        lam=choice.lam, index=choice.index, criterion=choice.curve, noise=noise,
    )


@functools.partial(jax.jit, static_argnames=("kind", "rule", "shared"))
def _classical_core(Y, A, R, lambdas, truth, noise_std, tau, fixed, *, kind, rule, shared):
    """Batched factorization (once if ``shared``), path, rule and solution.

    ``rule=None``: the fixed λ (or TSVD rank) ``fixed`` instead of a path.
    """

    def one(y, factor, a, t, sigma):
        if rule is None:
            if kind == "tsvd":
                path = classical.tsvd_path(y, ks=jnp.reshape(fixed, (1,)), factor=factor)
                return path.solution(0), {"residual_norm": path.residual_norm[0]}
            X = classical.tikhonov_from_factor(factor, y, fixed)
            return X, {"residual_norm": jnp.linalg.norm(a @ X - y)}
        if kind == "tsvd":
            path = classical.tsvd_path(y, factor=factor, truth=t)
        else:
            path = classical.tikhonov_path(y, lambdas=lambdas, factor=factor, truth=t)
        kw = dict(noise_std=sigma, tau=tau) if rule == "discrepancy" else {}
        choice = classical.select_lambda(path, rule, **kw)
        noise = classical.estimate_noise(path) if rule == "discrepancy" else None
        return path.solution(choice.index), _path_outputs(path, choice, noise)

    if shared:
        factor = classical.factorize(A, R)
        return jax.vmap(one, in_axes=(0, None, None, 0, 0))(Y, factor, A, truth, noise_std)
    return jax.vmap(lambda y, a, t, s: one(y, classical.factorize(a, R), a, t, s))(Y, A, truth, noise_std)


def _np(x):
    return None if x is None else np.asarray(x)


def _classical_diagnostics(out, b, kind, rule, fixed, noise_given):
    """``Solution.diagnostics`` of problem ``b``, the same entries :func:`solve` reports."""
    if rule is None:
        key = "rank" if kind == "tsvd" else "lam"
        value = int(fixed) if kind == "tsvd" else float(fixed)
        return {key: value, "lambda_rule": None, "residual_norm": float(out["residual_norm"][b])}
    i = int(out["index"][b])
    diag: dict[str, Any] = {}
    if rule == "discrepancy":
        diag["noise_std"] = float(noise_given[b] if noise_given is not None else out["noise"][b])
        diag["noise_std_estimated"] = noise_given is None
    residuals, seminorms = np.asarray(out["residual_norms"][b]), np.asarray(out["seminorms"][b])
    diag.update(
        lam=float(out["lam"][b]), lambda_index=i, lambda_rule=rule, benchmark_only=rule == "oracle",
        lambdas=_np(out["lambdas"][b]), criterion=_np(out["criterion"][b]), residual_norms=residuals,
        seminorms=seminorms, residual_norm=float(residuals[i]), seminorm=float(seminorms[i]),
    )
    if out["errors"] is not None:
        diag["relative_errors"] = _np(out["errors"][b])  # BENCHMARK-ONLY curve
    if kind == "tsvd":
        diag["rank"] = int(round(diag["lam"]))
    return diag


def _batch_classical(name, kind, order):
    defaults = {k: v for k, v in method_options(name).items() if v is not inspect.Parameter.empty}

    def run(Y, A, *, keys=None, place, replicate, **options):
        if keys is not None:
            raise TypeError(f"method {name!r} takes no key: leave keys=None.")
        o = {**defaults, **options}
        n_problems, n, dtype = Y.shape[0], A.shape[-1], Y.dtype
        shared = A.ndim == 2
        rule = o["lambda_rule"]
        fixed = o["rank"] if kind == "tsvd" else o["lam"]
        if fixed is not None:
            rule = None
            if kind == "tsvd":
                classical.check_tsvd_rank(fixed, min(A.shape[-2:]))
            elif not float(fixed) > 0:
                raise ValueError(f"lam must be positive; got {fixed}.")
        elif rule == "oracle" and o["truth"] is None:
            raise ValueError("lambda_rule='oracle' needs the ground truth: pass truth= (B, N, T). (BENCHMARK-ONLY)")
        elif kind == "tsvd" and rule == "creso":
            raise ValueError("CRESO is defined for Tikhonov λ only; for tsvd use lcurve, gcv, discrepancy, ucurve or oracle.")
        elif rule not in classical.RULES:
            raise ValueError(f"unknown lambda_rule {rule!r}; valid rules: {', '.join(classical.RULES)}.")

        R, constant_pinned = None, False
        if kind == "tikhonov" and order:
            R = classical.spatial_operator(
                order, n, o.get("laplacian"), o.get("gradient"), o.get("vertices"), o.get("adjacency")
            )
            # Host-side, once per distinct A: the zero-mean convention of solve where A and R leave
            # the constant undetermined (it must then hold for every A of the batch: one R is shared).
            pinned = [classical.pin_constant_mode(a, R) for a in ([A] if shared else A)]
            if len({p for _, p in pinned}) > 1:
                raise ValueError(
                    "the constant component is undetermined for some transfer matrices of the batch (A·1 = 0) and "
                    "not for others: batch problems of one reference convention, or solve them one by one."
                )
            R, constant_pinned = pinned[0]
            R = R.astype(dtype) if isinstance(R, SparseOperator) else classical.as_matrix(R, dtype)
        truth = o["truth"]
        if truth is not None and rule is not None:
            truth = finite_array(truth, "truth").astype(dtype)
            if truth.shape != (n_problems, n, Y.shape[2]):
                raise ValueError(f"truth has shape {truth.shape}; expected {(n_problems, n, Y.shape[2])} (one per problem).")
        else:
            truth = None
        lambdas = o.get("lambdas")
        if lambdas is not None:
            lambdas = finite_array(lambdas, "lambdas").astype(dtype)
        noise_given = o.get("noise_std")
        noise = None
        if rule == "discrepancy" and noise_given is not None:
            noise_given = np.broadcast_to(np.asarray(noise_given, dtype=np.float64), (n_problems,))
            noise = jnp.asarray(noise_given, dtype)
        elif rule != "discrepancy":
            noise_given = None

        Y, truth, noise = place((Y, truth, noise))
        A_in = replicate(A) if shared else place(A)
        X, out = _classical_core(
            Y, A_in, replicate(R), replicate(lambdas), truth, noise, o.get("tau", 1.0),
            fixed, kind=kind, rule=rule, shared=shared,
        )
        X = jax.block_until_ready(X)
        sols = []
        for b in range(n_problems):
            diag = _classical_diagnostics(out, b, kind, rule, fixed, noise_given)
            if kind == "tikhonov":
                diag["order"] = order
            X_b = X[b]
            if constant_pinned:
                X_b, diag["constant_mode"] = classical.zero_mean(X_b), "zero-mean"
            sols.append(Solution(X_b, name, diag, {}))
        return sols

    return run


for _order in (0, 1, 2):
    register_batch_method(f"tikhonov-{_order}", _batch_classical(f"tikhonov-{_order}", "tikhonov", _order))
register_batch_method("tsvd", _batch_classical("tsvd", "tsvd", None))


# ----------------------------------------------------------------------------------------------
# front door


def _loop(method, Y, A, keys, options):
    """Fallback for methods without a batched implementation: one :func:`solve` per problem."""
    takes_key = "key" in method_options(method)
    if keys is not None and not takes_key:
        raise TypeError(f"method {method!r} takes no key: leave keys=None.")
    sols = []
    for b in range(Y.shape[0]):
        opts = dict(options)
        if opts.get("truth") is not None:
            opts["truth"] = opts["truth"][b]
        if keys is not None:
            opts["key"] = keys[b]
        sol = solve(Y[b], A if A.ndim == 2 else A[b], method=method, **opts)
        sols.append(dataclasses.replace(sol, diagnostics={**sol.diagnostics, "batched": False}))
    return sols


def _as_batch_array(x, name):
    """``(array, finite)``: ``x`` checked as :func:`solve` checks an input (numeric, real) over
    the whole batch at once; NaN/Inf are left to the per-problem checks, which say where."""
    try:
        return finite_array(x, name), True
    except ValueError:  # NaN or Inf values (every other failure is a TypeError)
        return jnp.asarray(x), False


def _validate_batch(Y, A):
    """``Y (B, M, T)`` and ``A (B, M, N)`` or ``(M, N)`` checked and cast to one float dtype.

    Every problem gets :func:`solve`'s checks (``_solve._validate``: numeric, real, finite,
    matching and non-empty ``Y (M, T)`` and ``A (M, N)``), with errors that name the problem.
    The batch shares shapes and dtypes, so one problem stands for all in those checks; only NaN/Inf
    differ between problems, and when the batch has some each problem is checked until the first
    bad one.
    """
    Y, y_finite = _as_batch_array(Y, "Y")
    A, a_finite = _as_batch_array(A, "A")
    if Y.ndim != 3:
        raise ValueError(f"Y must be 3-D (B problems, M leads, T samples); got shape {Y.shape}.")
    if A.ndim not in (2, 3):
        raise ValueError(f"A must be (B, M, N) or a shared (M, N); got shape {A.shape}.")
    if A.ndim == 3 and A.shape[0] != Y.shape[0]:
        raise ValueError(f"Y holds {Y.shape[0]} problems but A holds {A.shape[0]}: give one A per problem or one shared (M, N).")
    if Y.shape[0] < 1:
        raise ValueError("Y holds no problems (B = 0).")
    shared = A.ndim == 2
    if shared and not a_finite:
        finite_array(A, "A")  # raises: NaN/Inf in the shared A are no one problem's
    for b in range(1 if y_finite and a_finite else Y.shape[0]):
        try:
            _validate(Y[b], A if shared else A[b])
        except (TypeError, ValueError) as e:
            raise type(e)(f"problem {b} of the batch: {e}") from None
    return _working_precision(Y, A)


def _check_batch_options(options, n_problems, n, n_t):
    """:func:`solve`'s option checks, with the per-problem options checked for their batch axis."""
    per_problem = ("truth", "noise_std", "start")
    _check_options({k: v for k, v in options.items() if k not in per_problem}, n, n_t)
    truth = options.get("truth")
    if truth is not None:
        t = np.asarray(truth)
        if t.shape != (n_problems, n, n_t):
            raise ValueError(f"truth has shape {t.shape}; expected (B, N, T) = {(n_problems, n, n_t)} to match Y and A.")
        for b in range(n_problems):
            _check_options({"truth": t[b]}, n, n_t)
    noise_std = options.get("noise_std")
    if noise_std is not None and np.ndim(noise_std) == 0:
        _check_options({"noise_std": noise_std}, n, n_t)


def solve_batch(Y, A, *, method="tikhonov-2", keys=None, devices=None, heart=None, throw: bool = False, **options) -> list[Solution]:
    """Solve ``B`` inverse problems of equal shapes at once.

    Args:
        Y: ``(B, M, T)`` body-surface potentials, one recording per problem.
        A: ``(B, M, N)`` transfer matrices, or one ``(M, N)`` matrix shared by every problem
            (factorized once for the classical methods).
        method: a name in :data:`~ecgi_jax.METHODS`, or an :class:`~ecgi_jax.Method`.
        keys: ``B`` PRNG keys (a ``(B,)`` key array or a sequence), one per problem, for methods
            that take ``key``; ``None`` gives every problem the method's default key (exactly as
            a loop of :func:`solve` without ``key``).
        heart: a :class:`~ecgi_jax.operators.HeartModel` shared by every problem (as :func:`solve`).
        throw: raise :class:`~ecgi_jax.SolveError` naming the first problem whose result is not
            :attr:`~ecgi_jax.Result.SUCCESS` (as :func:`solve`); by default every solution
            comes back with its own ``result``.
        devices: ``None`` (default device, no sharding), ``"all"`` (every local device) or a list
            of devices: the batch axis is sharded over them (module docstring); a batch size that
            is not a multiple of their number is padded and the padding dropped.
        **options: the method's options (``method_options(method)``), shared by every problem,
            except per-problem arrays with a leading batch axis: ``truth (B, N, T)``; for the
            discrepancy rule ``noise_std`` may be a scalar or ``(B,)``; for ``eand-arn``,
            ``start`` may be a name or per-problem starts (a ``(B, N, T)`` array of u, or a pair
            of such arrays ``(U0, V0)``).

    Returns:
        A list of ``B`` :class:`~ecgi_jax.Solution`, each as :func:`solve` would return it (same
        options record and diagnostics), with ``diagnostics["time_s"]`` the wall time of the
        whole batch and ``diagnostics["batch_size"] = B``.

    Raises:
        ValueError: bad shapes (naming the input), empty problems (``M``, ``T`` or ``N`` = 0),
            NaN/Inf (naming the problem), unknown method, keys of the wrong length, a bad
            ``devices``. Each problem gets :func:`solve`'s checks of ``Y`` and ``A``; their
            messages start with ``problem b of the batch:``.
        TypeError: an option the method does not take (listing the valid ones), ``key=`` given
            instead of ``keys=``.
    """
    method, options = method_and_options(method, options)
    get_method(method)  # an unknown method: ValueError naming the valid ones
    check_result(None, throw)  # the flag's type, before any work
    options = with_heart(method, heart, options)
    check_option_names(method, options)
    if "key" in options:
        raise TypeError("solve_batch takes one key per problem: pass keys= (B keys), not key=.")
    check_option_types(method, options)
    Y, A = _validate_batch(Y, A)
    n_problems = Y.shape[0]
    _check_batch_options(options, n_problems, A.shape[-1], Y.shape[-1])
    if keys is not None:
        keys = list(keys)
        if len(keys) != n_problems:
            raise ValueError(f"got {len(keys)} keys for {n_problems} problems: give one key per problem.")
    mesh = batch_mesh(devices)
    place = functools.partial(shard_batch, mesh=mesh)

    t0 = time.perf_counter()
    batched = batch_method(method)
    if batched is None:
        sols = _loop(method, Y, A, keys, options)
    else:
        replicate = functools.partial(_replicate, mesh=mesh)
        sols = batched(Y, A, keys=keys, place=place, replicate=replicate, **options)
    jax.block_until_ready([s.potentials for s in sols])
    elapsed = time.perf_counter() - t0
    defaults = {k: v for k, v in method_options(method).items() if v is not inspect.Parameter.empty}
    out = []
    for b, sol in enumerate(sols):
        used = {**defaults, **sol.options, **options}
        if options.get("truth") is not None:
            used["truth"] = options["truth"][b]  # as a loop of solve() records it
        diagnostics = {**sol.diagnostics, "time_s": elapsed, "batch_size": n_problems}
        result = result_of(sol.potentials, sol.diagnostics)
        sol = dataclasses.replace(sol, method=method, options=used, diagnostics=diagnostics, result=result)
        out.append(in_time_unit(sol, heart))
    for b, sol in enumerate(out):
        check_result(sol, throw, where=f"problem {b} of the batch: ")
    return out
