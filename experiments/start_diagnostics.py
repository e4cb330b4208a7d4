"""Can the data tell when EAND-ARN's start is the worse map? Development cases only.

    python experiments/start_diagnostics.py [--sites 50 300] [--seeds 1] [--out results/start_diagnostics]

On the non-crime cases (:mod:`ecgi_jax.noncrime`, as ``noncrime_study.py`` builds them, σ = 0.1),
EAND-ARN's start (``start="auto"``: the best of the pacing beat, the shooting beat and the
waveform-template fits) is scored against the spatiotemporal maps (GCV, its previous default; and
CRESO, its default) — both by the truth (RE) and by what a user can compute, the relative data
misfit ``‖Y − A U‖² / ‖Y‖²``. A fallback "use the classical map when the physics start explains
the data worse" needs the misfit to separate the cases where the start loses.

The sites and seed are the development ones (50, 300; seed 1), never scored by
``noncrime_study.py`` (farthest-point sites, seeds 10 and 11): this asks a question about the
method, it reports no accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from ecgi_jax import noncrime, solve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import meta, write_outputs  # noqa: E402
from noncrime_study import GEOMETRY_ERRORS, SCENARIOS, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "start_diagnostics"))
    p.add_argument("--geometries", nargs="+", default=["biventricular", "dilated"])
    p.add_argument("--scenarios", nargs="+", default=["plain", "shift", "apd-dispersion", "noisy"], choices=list(SCENARIOS))
    p.add_argument("--sites", type=int, nargs="+", default=[50, 300])
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = p.parse_args(argv)
    rows = []
    for shape in args.geometries:
        geo = noncrime.noncrime_geometry(shape, n_heart=642)
        for scenario in args.scenarios:
            knobs = SCENARIOS[scenario]
            geo_err = {k: v for k, v in knobs.items() if k in GEOMETRY_ERRORS}
            other = {k: v for k, v in knobs.items() if k not in GEOMETRY_ERRORS}
            for seed in args.seeds:
                A_truth, info = noncrime.truth_transfer(geo, jax.random.key(seed + 500), **geo_err) if geo_err else (None, None)
                for site in args.sites:
                    case = noncrime.make_noncrime_case(
                        jax.random.key(seed), geo, site, A_truth=A_truth, truth_info=info, n_samples=400, sigma=0.1, **other
                    )
                    Y, A = np.asarray(case.Y, np.float64), np.asarray(case.A, np.float64)

                    def misfit(U):
                        return float(np.sum((Y - A @ np.asarray(U, np.float64)) ** 2) / np.sum(Y**2))

                    t0 = time.perf_counter()
                    start = solve(  # one training step: the start is what is asked about
                        case.Y, case.A, method="eand-arn", steps=1, chunk=1, patience=0, progress=False, key=jax.random.key(seed),
                        laplacian=case.laplacian, dt=case.dt, vertices=case.vertices, adjacency=case.adjacency,
                    )
                    elapsed = time.perf_counter() - t0
                    U0 = start.diagnostics["start_potentials"]
                    gcv = solve(case.Y, case.A, method="spatiotemporal", laplacian=case.laplacian, dt=case.dt, lambda_rule="gcv")
                    creso = solve(case.Y, case.A, method="spatiotemporal", laplacian=case.laplacian, dt=case.dt)
                    row = dict(
                        geometry=shape, scenario=scenario, site=site, seed=seed, start=start.diagnostics.get("start"),
                        start_re=score(U0, case)["re"], gcv_re=score(gcv.U, case)["re"], creso_re=score(creso.U, case)["re"],
                        start_misfit=misfit(U0), gcv_misfit=misfit(gcv.U), creso_misfit=misfit(creso.U), start_s=round(elapsed, 1),
                    )
                    print(row, flush=True)
                    rows.append(row)
    lines = [
        "| heart | scenario | site | start | start RE | spatiotemporal-gcv RE | spatiotemporal RE | start misfit | spatiotemporal-gcv misfit | spatiotemporal misfit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['geometry']} | {r['scenario']} | {r['site']} | {r['start']} | {r['start_re']:.3f} | {r['gcv_re']:.3f} | {r['creso_re']:.3f} "
        f"| {r['start_misfit']:.5f} | {r['gcv_misfit']:.5f} | {r['creso_misfit']:.5f} |"
        for r in rows
    ]
    write_outputs(Path(args.out), rows, meta(args), "\n".join(lines))


if __name__ == "__main__":
    main()
