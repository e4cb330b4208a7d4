"""BEM transfer-matrix assembly (:func:`ecgi_jax.forward.transfer_matrix`): time and peak memory vs
mesh size.

Geometry: an icosphere heart (radius 40) centred inside an icosphere torso (radius 150) with the
same number of nodes each, 162, 642 (quick) and 2562 (full) nodes. Each size runs in its own
process: ``peak_rss_mb`` is that process's peak resident memory (Python + JAX + the assembly),
``s`` the wall time of ``transfer_matrix`` (median of the repeats). The assembly is float64 numpy
(dense ``(n_h + n_t)²`` blocks and two dense solves): time should grow like ``n³`` at large ``n``,
memory like ``n²``.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _common as C

NAME = "bem"


def assemble(level: int, repeats: int) -> dict:
    """One size, run in a subprocess by :func:`run`."""
    from ecgi_jax.forward import transfer_matrix
    from ecgi_jax.geometry import icosphere

    heart, torso = icosphere(level, radius=40.0), icosphere(level, radius=150.0)
    base = C.peak_rss_mb()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        A = transfer_matrix(heart, torso)
        times.append(time.perf_counter() - t0)
    return {"level": level, "heart_nodes": heart.n_vertices, "torso_nodes": torso.n_vertices,
            "s": float(np.median(times)), "iqr_s": float(np.subtract(*np.percentile(times, [75, 25]))),
            "rss_before_mb": base, "finite": bool(np.isfinite(A).all())}


def run(args) -> dict:
    levels = (2, 3) if args.quick else (2, 3, 4)
    reps = 1 if args.quick else 3
    rows = []
    for level in levels:
        r = C.run_isolated("benchmarks.bench_bem", "assemble", dict(level=level, repeats=reps))
        r["assembly_rss_mb"] = r["peak_rss_mb"] - r["rss_before_mb"]
        rows.append(r)
    summary = {}
    if len(rows) >= 2:
        summary["loglog_slope_time"] = C.loglog_slope([r["heart_nodes"] for r in rows], [r["s"] for r in rows])
    return {"rows": rows, "summary": summary,
            "notes": ["assembly_rss_mb: peak RSS minus the RSS after imports and mesh building"],
            "columns": ["heart_nodes", "torso_nodes", "s", "iqr_s", "peak_rss_mb", "assembly_rss_mb", "finite"]}


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
