"""Tikhonov-2 λ sweep: one generalized SVD for 50 λ vs a ``numpy.linalg.solve`` per λ.

Problem: the P-DL geometry (352 leads × 1094 nodes, its Laplacian as ``R``, all 661 samples), or
``default_heart_torso()`` (352 × 1000) when the data are absent. For 50 log-spaced λ:

* ``GSVD``: :func:`ecgi_jax.solvers.classical.factorize` (``A``, ``R``) once, then
  :func:`tikhonov_path`: (a) the diagnostics of all 50 λ plus one solution (what a λ rule needs),
  (b) every ``(N, T)`` solution (``path.solutions()``); jitted, float32 (the library default) and,
  in full runs, float64 (``jax_enable_x64``, in a subprocess).
* ``numpy loop``: the normal equations ``(AᵀA + λ RᵀR) X = AᵀY`` solved by ``numpy.linalg.solve``
  for each λ, float64, with ``AᵀA``, ``RᵀR``, ``AᵀY`` formed once outside the loop.

Reported: both times, the speed-up (goal ≥ 20×) and the largest difference of the solutions,
relative to the largest absolute value of the float64 reference solution at that λ.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _common as C

NAME = "tikhonov_sweep"
N_LAMBDAS = 50


def lambda_grid(A, R) -> np.ndarray:
    """50 log-spaced λ over ``[1e-8, 10]·(‖A‖₂/‖R‖₂)²``: from barely regularized to everything
    filtered (the usual scale-free range; below it the float64 normal equations lose all digits)."""
    scale = (np.linalg.norm(A, 2) / np.linalg.norm(R, 2)) ** 2
    return np.logspace(np.log10(1e-8 * scale), np.log10(10 * scale), N_LAMBDAS)


def gsvd_sweep(case: str, data: str, lambdas: list, x64: bool, repeats: int) -> dict:
    """Time the one-factorization sweep: (a) diagnostics for every λ + the solution at one λ (what
    a λ rule needs), (b) every solution. Saves the solutions to an ``.npz`` for comparison."""
    import jax

    jax.config.update("jax_enable_x64", bool(x64))
    import jax.numpy as jnp

    from ecgi_jax.solvers.classical import factorize, tikhonov_path

    prob = C.inverse_case(case, data)
    dtype = jnp.float64 if x64 else jnp.float32
    A, Y = jnp.asarray(prob["A"], dtype), jnp.asarray(prob["Y"], dtype)
    R = jnp.asarray(prob["laplacian"].toarray(), dtype)
    lams = jnp.asarray(lambdas, dtype)

    @jax.jit
    def diagnostics(A, R, Y, lams):
        path = tikhonov_path(Y, lambdas=lams, factor=factorize(A, R))
        best = jnp.argmin(jnp.abs(jnp.log(path.residual_norm) - jnp.log(path.seminorm)))  # any rule
        return path.residual_norm, path.seminorm, path.solution(best)

    @jax.jit
    def all_solutions(A, R, Y, lams):
        return tikhonov_path(Y, lambdas=lams, factor=factorize(A, R)).solutions()

    t_diag = C.time_call(diagnostics, A, R, Y, lams, repeats=repeats)
    t_all = C.time_call(all_solutions, A, R, Y, lams, repeats=repeats)
    X = all_solutions(A, R, Y, lams)
    out = C.ROOT / "benchmarks" / "results" / ".cache" / f"tik_sweep_{case}_{'f64' if x64 else 'f32'}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, np.asarray(X, np.float64))
    return {"diag": t_diag, "all": t_all, "npy": str(out)}


def numpy_loop(A, R, Y, lambdas) -> tuple[np.ndarray, float]:
    """Per-λ normal-equation solves (float64). Returns ``(X (L, N, T), seconds)``."""
    t0 = time.perf_counter()
    AtA, RtR, AtY = A.T @ A, R.T @ R, A.T @ Y
    X = np.stack([np.linalg.solve(AtA + lam * RtR, AtY) for lam in lambdas])
    return X, time.perf_counter() - t0


def run(args) -> dict:
    case = "pdl" if args.data.is_dir() else "default"
    notes = [] if case == "pdl" else [f"[skip] no P-DL data at {args.data}: default geometry used"]
    reps = C.repeats_of(args)
    prob = C.inverse_case(case, args.data)
    A, Y, R = prob["A"].astype(np.float64), prob["Y"].astype(np.float64), prob["laplacian"].toarray()
    lambdas = lambda_grid(A, R)
    times = []
    for _ in range(1 if args.quick else 3):
        ref, dt = numpy_loop(A, R, Y, lambdas)
        times.append(dt)
    loop_s = float(np.median(times))
    rows = [{"method": "numpy.linalg.solve per λ (normal eq.)", "dtype": "float64", "lambdas": len(lambdas),
             "s": loop_s, "iqr_s": float(np.subtract(*np.percentile(times, [75, 25]))), "speedup": 1.0}]
    scale = np.abs(ref).max(axis=(1, 2))
    summary = {}
    for x64 in (False,) if args.quick else (False, True):
        dname = "float64" if x64 else "float32"
        g = C.run_isolated("benchmarks.bench_tikhonov_sweep", "gsvd_sweep",
                           dict(case=case, data=str(args.data), lambdas=lambdas.tolist(), x64=x64,
                                repeats=min(reps, 3) if args.quick else reps))
        rel = np.abs(np.load(g["npy"]) - ref).max(axis=(1, 2)) / scale
        for what, label in (("diag", "GSVD: 50 λ diagnostics + 1 solution"), ("all", "GSVD: all 50 solutions")):
            t = g[what]
            rows.append({"method": label, "dtype": dname, "lambdas": len(lambdas), "s": t["median_s"], "iqr_s": t["iqr_s"],
                         "first_call_s": t["first_call_s"], "speedup": loop_s / t["median_s"],
                         "max_rel_diff": float(rel.max()) if what == "all" else None,
                         "median_rel_diff": float(np.median(rel)) if what == "all" else None})
            summary[f"speedup_{what}_{dname}"] = loop_s / t["median_s"]
        summary[f"max_rel_diff_{dname}"] = float(rel.max())
    notes.append("λ: 50 log-spaced in [1e-8, 10]·(‖A‖₂/‖R‖₂)²; rel_diff at each λ: max|X − X_numpy| / max|X_numpy|")
    notes.append("'diagnostics + 1 solution' is what a λ rule (L-curve, GCV, ...) needs; the loop has to form every solution")
    return {"case": case, "shape": {"leads": A.shape[0], "nodes": A.shape[1], "samples": Y.shape[1]},
            "lambdas": lambdas, "rows": rows, "notes": notes, "summary": summary,
            "columns": ["method", "dtype", "lambdas", "s", "iqr_s", "first_call_s", "speedup", "max_rel_diff",
                        "median_rel_diff"]}


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
