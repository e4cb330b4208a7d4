"""Patients per second vs batch size with ``ecgi_jax.solve_batch`` (Tikhonov-2 and EAND-ARN).

``B`` recordings ``Y (B, 352, T)`` of the same geometry (P-DL if present, else the built-in
phantom; shared ``A``), each a different synthetic wave plus noise, solved by one
``solve_batch(Y, A, method=..., **options)`` call:

* ``tikhonov-2``: Laplacian penalty, GCV λ (shared ``A`` → one factorization).
* ``eand-arn``: body-signal mode, random initialisation (no start solution), ``steps`` Adam steps
  of every network at once (vmapped).

Each batch size is called twice: ``first_s`` includes compilation, ``s`` is the second call
(median of the repeats); throughput = ``B / s``. Batch sizes 1, 4, 16, 64 (quick: 1, 16 for Tikhonov, 1, 4 for EAND-ARN,
and 200 samples).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _common as C

NAME = "batch_throughput"


def _batch(case: dict, B: int) -> np.ndarray:
    rng = np.random.default_rng(B)
    Y = case["Y"]
    scale = Y.std()
    # Shift the wave in time per patient and add fresh noise: B distinct recordings of one geometry.
    return np.stack([np.roll(Y, 7 * b, axis=1) + 0.05 * scale * rng.standard_normal(Y.shape) for b in range(B)]).astype(np.float32)


def run(args) -> dict:
    try:
        from ecgi_jax import solve_batch
    except ImportError as e:  # written by another part of the project; skip cleanly if absent
        return {"rows": [], "columns": [], "notes": [f"[skip] ecgi_jax.solve_batch is not importable ({e})"]}
    from ecgi_jax.operators import SparseOperator

    samples = 200 if args.quick else None
    case = C.inverse_case("pdl", args.data, samples) if args.data.is_dir() else None
    case = case or C.inverse_case("default", n_samples=samples)
    A = case["A"].astype(np.float32)
    lap = SparseOperator.from_scipy(case["laplacian"], np.float32)
    steps = 10 if args.quick else 50
    methods = {
        "tikhonov-2": (dict(laplacian=lap), (1, 16) if args.quick else (1, 4, 16, 64)),
        "eand-arn": (dict(laplacian=lap, dt=case["dt"], init="random", steps=steps, patience=0, progress=False),
                     (1, 4) if args.quick else (1, 4, 16, 64)),
    }
    reps = 1 if args.quick else 3
    rows = []
    for method, (options, sizes) in methods.items():
        for B in sizes:
            Y = _batch(case, B)
            t0 = time.perf_counter()
            sols = solve_batch(Y, A, method=method, **options)
            first = time.perf_counter() - t0
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                sols = solve_batch(Y, A, method=method, **options)
                np.asarray(sols[-1].potentials)
                times.append(time.perf_counter() - t0)
            s = float(np.median(times))
            rows.append({"method": method, "batch": B, "steps": steps if method == "eand-arn" else None,
                         "first_s": first, "s": s, "patients_per_s": B / s, "ms_per_patient": 1e3 * s / B,
                         "batched": sols[0].diagnostics.get("batched", True)})
    for method in methods:
        base = [r for r in rows if r["method"] == method and r["batch"] == 1]
        for r in rows:
            if r["method"] == method and base:
                r["speedup_vs_B1"] = r["patients_per_s"] / base[0]["patients_per_s"]
    return {"case": case["name"], "samples": int(case["Y"].shape[1]), "nodes": int(A.shape[1]), "rows": rows,
            "columns": ["method", "batch", "steps", "first_s", "s", "patients_per_s", "ms_per_patient", "speedup_vs_B1",
                        "batched"]}


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
