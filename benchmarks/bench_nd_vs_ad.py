"""Numerical differentiation (EAND-ARN) vs autodiff in time (P-DL): cost of one loss + gradient.

Same coordinate network, same points (all heart nodes × ``K`` consecutive samples), float32:

* ``residual``: only the Aliev–Panfilov residual ``mean(r_u²) + mean(r_v²)``, with ∂/∂t by the
  5-point stencil over the network's outputs at neighbouring samples (ND) or by a forward-mode
  JVP through the network's time input (AD; :func:`fields_and_time_derivatives`).
* ``loss``: the library's whole :func:`physics_loss` (data + physics terms) with
  ``derivative="numerical"`` vs ``"autodiff"``; the AD form evaluates the network once more for
  the data term on the grid (P-DL's way), the ND form reuses the fields.

Each is ``jax.value_and_grad`` with respect to the network parameters, jitted; time is the median
of repeated runs, memory the compiled program's temporary buffers (XLA's memory analysis).
Goal: ND ≥ 5× cheaper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import _common as C

NAME = "nd_vs_ad"


def _networks(quick: bool) -> dict:
    return {
        "pdl-mlp 5x10": dict(architecture="pdl-mlp", width=10, n_blocks=5),
        "adaptive-resnet": dict(architecture="adaptive-resnet", width=32 if quick else 64, n_blocks=3, block_depth=2),
    }


def run(args) -> dict:
    from flax import nnx

    from ecgi_jax.ep import APParams, APProblem, ap_residual, ap_rhs
    from ecgi_jax.operators import SparseOperator
    from ecgi_jax.solvers.neural import (
        EANDARNConfig, build_model, evaluate_fields, make_inputs, physics_loss,
    )
    from ecgi_jax.solvers.neural._fields import fields_and_time_derivatives

    reps = C.repeats_of(args)
    n_samples = 32 if args.quick else 661
    case = C.inverse_case("pdl", args.data, n_samples) if args.data.is_dir() else None
    case = case or C.inverse_case("default", n_samples=n_samples)
    dtype = jnp.float32
    Y, A = jnp.asarray(case["Y"], dtype), jnp.asarray(case["A"], dtype)
    lap = SparseOperator.from_scipy(case["laplacian"], dtype)
    ap = jax.tree.map(lambda x: jnp.asarray(x, dtype), APParams())
    verts = jnp.asarray(case["vertices"], dtype)
    problem = APProblem(Y, A, lap, verts, ap, jnp.asarray(case["dt"], dtype), make_inputs(Y, verts, case["dt"]))
    t_idx = jnp.arange(n_samples)
    n = A.shape[1]
    rows = []
    for net_name, net_cfg in _networks(args.quick).items():
        cfg = EANDARNConfig(mode="coordinate", init="random", **net_cfg).validate()
        graphdef, params, fixed = nnx.split(build_model(cfg, n, A.shape[0], jax.random.PRNGKey(0)), nnx.Param, ...)

        def residual_nd(p, pr):
            U, V = evaluate_fields(graphdef, (p, fixed), pr.inputs, t_idx, "coordinate")
            ru, rv = ap_residual(U, V, pr.laplacian, pr.ap_params, pr.dt, stencil_order=4, mode="same")
            return jnp.mean(ru**2) + jnp.mean(rv**2)

        def residual_ad(p, pr):
            U, V, dU, dV = fields_and_time_derivatives(graphdef, (p, fixed), pr.inputs, t_idx)
            fu, fv = ap_rhs(U, V, pr.laplacian @ U, pr.ap_params)
            return jnp.mean((dU - fu) ** 2) + jnp.mean((dV - fv) ** 2)

        def loss(derivative):
            return lambda p, pr: jnp.sum(physics_loss((p, fixed), graphdef, pr, t_idx, mode="coordinate", stencil_order=4,
                                                      derivative=derivative))

        variants = {"residual": (residual_nd, residual_ad), "loss": (loss("numerical"), loss("autodiff"))}
        for what, (f_nd, f_ad) in variants.items():
            res = {}
            for label, f in (("nd", f_nd), ("ad", f_ad)):
                res[label] = C.compile_and_time(jax.value_and_grad(f), params, problem, repeats=reps)
            mem = lambda r: r["memory"]["temp_mb"] if r["memory"] else None  # noqa: E731
            rows.append({
                "network": net_name, "what": what, "points": n * n_samples,
                "nd_ms": 1e3 * res["nd"]["median_s"], "nd_iqr_ms": 1e3 * res["nd"]["iqr_s"],
                "ad_ms": 1e3 * res["ad"]["median_s"], "ad_iqr_ms": 1e3 * res["ad"]["iqr_s"],
                "speedup": res["ad"]["median_s"] / res["nd"]["median_s"],
                "nd_gflop": (res["nd"]["flops"] or 0) / 1e9, "ad_gflop": (res["ad"]["flops"] or 0) / 1e9,
                "nd_temp_mb": mem(res["nd"]), "ad_temp_mb": mem(res["ad"]),
                "nd_compile_s": res["nd"]["compile_s"], "ad_compile_s": res["ad"]["compile_s"],
            })
    return {
        "case": case["name"], "nodes": n, "samples": n_samples, "rows": rows,
        "summary": {"min_speedup": min(r["speedup"] for r in rows), "max_speedup": max(r["speedup"] for r in rows),
                    "goal_met(>=5x, every row)": all(r["speedup"] >= 5 for r in rows)},
        "columns": ["network", "what", "points", "nd_ms", "ad_ms", "speedup", "nd_gflop", "ad_gflop",
                    "nd_temp_mb", "ad_temp_mb"],
    }


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
