"""Peak memory of a short EAND-ARN training run vs problem size (nodes × samples).

Each size runs ``ecgi_jax.solve(Y, A, method="eand-arn", ...)`` (body-signal mode, width 128,
random initialisation so that no start solution is computed, ``steps`` Adam steps, full batch) in
its own process on a synthetic problem: a Fibonacci-sphere heart of ``n`` nodes (cotangent
Laplacian), a Gaussian ``(352, n)`` transfer matrix, and body potentials of a smooth activation
wave. Reported: the process's peak RSS (CPU), the accelerator's peak bytes in use (GPU), and the
time of the whole call.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _common as C

NAME = "memory"
LEADS = 352


def train(nodes: int, samples: int, steps: int) -> dict:
    """One size, run in a subprocess by :func:`run`."""
    import ecgi_jax
    from ecgi_jax.geometry import sphere_mesh
    from ecgi_jax.operators import cotangent_laplacian

    mesh = sphere_mesh(nodes, radius=40.0)
    lap = cotangent_laplacian(mesh, dtype=np.float32)
    A = np.random.default_rng(0).standard_normal((LEADS, nodes)).astype(np.float32) / np.sqrt(nodes)
    U = C.wave_potentials(mesh.vertices, samples, 0.1)
    Y = (A @ U).astype(np.float32)
    base = C.peak_rss_mb()
    t0 = time.perf_counter()
    sol = ecgi_jax.solve(Y, A, method="eand-arn", laplacian=lap, dt=0.1, init="random", steps=steps, patience=0,
                         progress=False)
    wall = time.perf_counter() - t0
    return {"nodes": nodes, "samples": samples, "steps": steps, "s": wall, "rss_before_mb": base,
            "final_loss": float(sol.diagnostics["final_loss"])}


def run(args) -> dict:
    sizes = [(500, 200), (1000, 661)] if args.quick else [(500, 200), (1000, 661), (2000, 661), (5000, 661), (10000, 661)]
    steps = 10 if args.quick else 50
    rows = []
    for nodes, samples in sizes:
        r = C.run_isolated("benchmarks.bench_memory", "train", dict(nodes=nodes, samples=samples, steps=steps))
        r["training_rss_mb"] = r["peak_rss_mb"] - r["rss_before_mb"]
        dm = r.pop("device_memory", None)
        r["device_peak_mb"] = dm["peak_mb"] if dm else None
        rows.append(r)
    return {"rows": rows, "notes": ["training_rss_mb: peak RSS minus the RSS after imports and data set-up"],
            "columns": ["nodes", "samples", "steps", "s", "peak_rss_mb", "training_rss_mb", "device_peak_mb", "final_loss"]}


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
