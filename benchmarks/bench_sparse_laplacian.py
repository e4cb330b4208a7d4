"""Mesh Laplacian apply ``L @ U`` vs mesh size: SparseOperator (segment-sum), BCOO, BCSR, dense.

``L`` is the cotangent Laplacian of an icosphere (642 … 40 962 nodes; quick: up to 10 242) and of a
100 000-node Fibonacci sphere (full runs), ``U`` a ``(n, 661)`` float32 block (one column per time
sample, as in the loss). Forms:

* ``segment_sum``: :class:`ecgi_jax.operators.SparseOperator` (gather + ``segment_sum``),
* ``bcoo`` / ``bcsr``: ``jax.experimental.sparse`` ``BCOO`` / ``BCSR`` matmul,
* ``dense``: ``jnp.matmul`` at ``precision="highest"`` (only up to ~10k nodes).

Each is passed into the jitted function as an argument (not closed over). The log-log slope of
time against ``n`` is fitted per form: ≈ 1 for the sparse forms (work ∝ nnz ∝ n), ≈ 2 for dense.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

NAME = "sparse_laplacian"
DENSE_MAX_QUICK, DENSE_MAX = 3_000, 10_500


def _meshes(quick: bool):
    from ecgi_jax.geometry import icosphere, sphere_mesh

    levels = (3, 4, 5) if quick else (3, 4, 5, 6)
    out = [(f"icosphere({k})", icosphere(k)) for k in levels]
    if not quick:
        out.append(("fibonacci sphere", sphere_mesh(100_000)))
    return out


def run(args) -> dict:
    from jax.experimental import sparse as jsparse

    from ecgi_jax.operators import cotangent_laplacian

    reps = C.repeats_of(args)
    n_cols = 661
    apply = jax.jit(lambda L, U: L @ U)
    dense_apply = jax.jit(lambda L, U: jnp.matmul(L, U, precision=jax.lax.Precision.HIGHEST))
    rows = []
    for label, mesh in _meshes(args.quick):
        L_sp = cotangent_laplacian(mesh, dtype=np.float32).to_scipy().astype(np.float32)
        op = cotangent_laplacian(mesh, dtype=jnp.float32)
        n = mesh.n_vertices
        U = jax.random.normal(jax.random.PRNGKey(0), (n, n_cols), jnp.float32)
        forms = {
            "segment_sum": (apply, op),
            "bcoo": (apply, jsparse.BCOO.from_scipy_sparse(L_sp)),
            "bcsr": (apply, jsparse.BCSR.from_scipy_sparse(L_sp)),
        }
        if n <= (DENSE_MAX_QUICK if args.quick else DENSE_MAX):
            forms["dense"] = (dense_apply, jnp.asarray(L_sp.toarray()))
        ref = np.asarray(L_sp @ np.asarray(U))
        for form, (fn, L) in forms.items():
            t = C.time_call(fn, L, U, repeats=reps)
            err = float(np.max(np.abs(np.asarray(fn(L, U)) - ref)) / np.max(np.abs(ref)))
            rows.append({"mesh": label, "nodes": n, "nnz": int(L_sp.nnz), "form": form, "ms": 1e3 * t["median_s"],
                         "iqr_ms": 1e3 * t["iqr_s"], "first_call_s": t["first_call_s"],
                         "gb_per_s": (L_sp.nnz * n_cols * 4 * 2) / t["median_s"] / 1e9, "max_rel_err": err})
    slopes = {}
    for form in ("segment_sum", "bcoo", "bcsr", "dense"):
        pts = [(r["nodes"], r["ms"]) for r in rows if r["form"] == form]
        if len(pts) >= 2:
            slopes[f"loglog_slope_{form}"] = C.loglog_slope(*zip(*pts))
    return {"columns_of_U": n_cols, "rows": rows, "summary": slopes,
            "notes": ["gb_per_s counts nnz·columns·(value + gathered operand) float32 reads: a rough bandwidth"],
            "columns": ["mesh", "nodes", "nnz", "form", "ms", "iqr_ms", "first_call_s", "gb_per_s", "max_rel_err"]}


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
