"""Gradient of the shooting misfit through thousands of simulator sub-steps: memory and time.

The misfit ``‖Y − A·U(θ)‖²`` of :mod:`ecgi_jax.solvers.shooting` (θ: patch centre, width, onset,
log D — 6 numbers) on the P-DL heart (1094 nodes, 352 leads; the default phantom if the data are
absent), differentiated over a horizon of ``S`` sub-steps (5 sub-steps per sample, so ``S/5``
samples) three ways, each jitted:

* ``reverse``: ``jax.grad`` through the plain time loop (stores every sub-step's intermediates);
* ``reverse+ckpt``: ``jax.grad`` with ``jax.checkpoint`` on each sample interval (stores one state
  per sample, recomputes an interval's sub-steps during the backward pass);
* ``forward``: the full Jacobian ``J`` ``(m·t × 6)`` by forward mode (one simulation carrying 6
  tangents), gradient ``2Jᵀr`` — what the Levenberg–Marquardt fit uses.

Memory: the compiled program's temporary buffers (XLA's static memory analysis, MiB). Time: median
of repeated calls after compilation. ``--quick``: S = 500, 1500; full: S = 3000, 10000.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

NAME = "shooting_gradient"
SUBSTEPS = 5


def run(args) -> dict:
    import dataclasses

    from ecgi_jax.ep import APParams, APProblem
    from ecgi_jax.operators import SparseOperator
    from ecgi_jax.solvers.shooting import ShootingConfig, misfit, residual_and_jacobian, shoot

    horizons = (500, 1500) if args.quick else (3000, 10000)
    reps = args.repeats or (3 if args.quick else 5)
    case = (C.inverse_case("pdl", args.data, 2) if args.data.is_dir() else None) or C.inverse_case("default", n_samples=2)
    dtype = jnp.float32
    A = jnp.asarray(case["A"], dtype)
    lap = SparseOperator.from_scipy(case["laplacian"], dtype)
    verts = np.asarray(case["vertices"])
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), APParams())
    theta_true = jnp.asarray(list(verts[0]) + [np.log(3.0), 0.2, 0.0], dtype)
    theta = theta_true + jnp.asarray([2.0, -1.0, 1.0, 0.1, 0.05, 0.05], dtype)
    rows = []
    for S in horizons:
        n_samples = S // SUBSTEPS + 1  # pad = 0: the horizon is exactly S sub-steps
        cfg = ShootingConfig(n_samples=n_samples, substeps=SUBSTEPS, pad=0, fit_D=True, checkpoint=False)
        prob = APProblem(jnp.zeros((A.shape[0], n_samples), dtype), A, lap, jnp.asarray(verts, dtype), params,
                               jnp.asarray(case["dt"], dtype))
        U, _ = jax.jit(shoot, static_argnames="config")(theta_true, prob, cfg)
        prob = dataclasses.replace(prob, Y=jnp.matmul(A, U, precision="highest"))
        variants = {
            "reverse": lambda th, pr, c=cfg: jax.grad(misfit)(th, pr, c),
            "reverse+ckpt": lambda th, pr, c=dataclasses.replace(cfg, checkpoint=True): jax.grad(misfit)(th, pr, c),
            "forward": lambda th, pr, c=cfg: (lambda rJ: 2.0 * rJ[1].T @ rJ[0])(residual_and_jacobian(th, pr, c)),
            "value only": lambda th, pr, c=cfg: misfit(th, pr, c),
        }
        grads = {}
        for label, fn in variants.items():
            res = C.compile_and_time(fn, theta, prob, repeats=reps, warmup=0)
            if label != "value only":
                grads[label] = np.asarray(jax.jit(fn)(theta, prob))
            mem = res["memory"]["temp_mb"] if res["memory"] else None
            rows.append({
                "substeps": S, "samples": n_samples, "mode": label, "median_ms": 1e3 * res["median_s"],
                "iqr_ms": 1e3 * res["iqr_s"], "temp_mb": mem, "compile_s": res["compile_s"],
            })
        ref = grads["reverse"]
        for r in rows[-4:]:
            if r["mode"] in grads:
                r["grad_rel_diff"] = float(np.linalg.norm(grads[r["mode"]] - ref) / np.linalg.norm(ref))
    by = {(r["substeps"], r["mode"]): r for r in rows}
    summary = {}
    for S in horizons:
        plain, ck = by[(S, "reverse")], by[(S, "reverse+ckpt")]
        if plain["temp_mb"] and ck["temp_mb"]:
            summary[f"S={S}: memory reverse / reverse+ckpt"] = plain["temp_mb"] / ck["temp_mb"]
        summary[f"S={S}: time reverse+ckpt / reverse"] = ck["median_ms"] / plain["median_ms"]
        summary[f"S={S}: time forward / value"] = by[(S, "forward")]["median_ms"] / by[(S, "value only")]["median_ms"]
    return {
        "case": case["name"], "nodes": int(A.shape[1]), "leads": int(A.shape[0]), "params": 6, "rows": rows,
        "summary": summary,
        "columns": ["substeps", "samples", "mode", "median_ms", "iqr_ms", "temp_mb", "compile_s", "grad_rel_diff"],
        "notes": ["temp_mb: XLA static analysis of the compiled program; CPU timings on a shared machine are noisy."],
    }


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
