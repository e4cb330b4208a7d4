"""Classical ECGI solvers vs noise level on the P-DL heart–torso geometry.

Ground truth: an Aliev–Panfilov beat paced at a node (``make_case``), measured through the P-DL
transfer matrix with white noise ``σ·std(AU)``. For every noise level, seed and pacing site, each
classical method × λ rule is run through :func:`ecgi_jax._solve.solve`, and the relative error
(RE) and mean temporal correlation (CC) against the truth are tabulated. ``oracle`` rows use the
ground truth to pick λ: BENCHMARK-ONLY upper bounds, not methods.

Usage::

    python experiments/classical_noise_study.py [--shared ../shared] [--out results/classical_noise_study]
        [--seeds 0 1] [--sigmas 0.05 0.1 0.2] [--pacing 0 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from ecgi_jax._solve import solve
from ecgi_jax.datasets import load_pdl
from ecgi_jax.metrics import activation_time_error, mean_correlation, relative_error
from ecgi_jax.operators import SparseOperator, edge_gradient
from ecgi_jax.synthetic import make_case

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import meta  # noqa: E402  (one definition of what a run records)

REPO = Path(__file__).resolve().parents[1]

TIKHONOV_RULES = ["lcurve", "gcv", "creso", "discrepancy", "ucurve", "oracle"]
TSVD_RULES = ["lcurve", "gcv", "discrepancy", "oracle"]
ST_RULES = ["gcv", "oracle"]


def runs(lap, grad):
    """(label, method, rule, options) for every configuration."""
    out = []
    for order, extra in ((0, {}), (1, {"gradient": grad}), (2, {"laplacian": lap})):
        for rule in TIKHONOV_RULES:
            out.append((f"tikhonov-{order}", rule, extra))
    for rule in TSVD_RULES:
        out.append(("tsvd", rule, {}))
    for rule in ST_RULES:
        out.append(("spatiotemporal", rule, {"laplacian": lap}))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "classical_noise_study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--pacing", type=int, nargs="+", default=[0], help="pacing node(s); one case per node")
    ap.add_argument("--known-noise", action="store_true", help="give the true noise std to the discrepancy rule")
    args = ap.parse_args(argv)

    pdl = load_pdl(args.shared / "data" / "pdl-heart-torso")
    lap = SparseOperator.from_scipy(pdl.laplacian)
    grad = edge_gradient(pdl.vertices, pdl.adjacency)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for pace in args.pacing:
        for sigma in args.sigmas:
            for seed in args.seeds:
                key = jax.random.PRNGKey(seed)
                case = make_case(key, pdl.transfer, lap, [pace], sigma=sigma, dt=pdl.dt, n_samples=len(pdl.times))
                noise_std = float(sigma * np.std(np.asarray(case.Y_clean)))
                for method, rule, extra in runs(lap, grad):
                    opts = dict(extra, lambda_rule=rule, truth=case.U)
                    if method == "spatiotemporal":
                        opts["dt"] = pdl.dt
                    if rule == "discrepancy" and args.known_noise:
                        opts["noise_std"] = noise_std
                    t0 = time.perf_counter()
                    sol = solve(case.Y, case.A, method=method, **opts)
                    d = sol.diagnostics
                    at = activation_time_error(sol.U, case.U, pdl.dt)
                    row = dict(
                        pacing=pace, sigma=sigma, seed=seed, method=method, rule=rule,
                        benchmark_only=bool(d.get("benchmark_only", False)),
                        re=float(relative_error(sol.U, case.U)),
                        cc=float(mean_correlation(sol.U, case.U, "time")),
                        cc_space=float(mean_correlation(sol.U, case.U, "space")),
                        at_mae=float(at.mae), at_cc=float(at.correlation),
                        lam=d.get("lam", d.get("lam_s")), lam_t=d.get("lam_t"), rank=d.get("rank"),
                        noise_std_true=noise_std, noise_std_used=d.get("noise_std"),
                        time_s=time.perf_counter() - t0,
                    )
                    rows.append(row)
                    lam_t_str = "" if row["lam_t"] is None else f"λt={row['lam_t']:.3g} "
                    print(
                        f"pace={pace} σ={sigma:<5} seed={seed} {method:15s} {rule:12s} RE={row['re']:.3f} "
                        f"CC={row['cc']:.3f} ATmae={row['at_mae']:.2f} λ={row['lam']} "
                        f"{lam_t_str}({row['time_s']:.1f}s)",
                        flush=True,
                    )

    with open(args.out / "results.json", "w") as f:
        json.dump(dict(meta=meta(args), rows=rows), f, indent=1)
    with open(args.out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # Summary: mean over seeds and pacing sites, RE / CC per method × rule and σ.
    sigmas = args.sigmas
    keys = []
    for r in rows:
        if (r["method"], r["rule"]) not in keys:
            keys.append((r["method"], r["rule"]))
    head = "| method | rule | " + " | ".join(f"RE σ={s} | CC σ={s}" for s in sigmas) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(sigmas))]
    for m, rule in keys:
        cells = []
        for s in sigmas:
            sel = [r for r in rows if r["method"] == m and r["rule"] == rule and r["sigma"] == s]
            cells += [f"{np.mean([r['re'] for r in sel]):.3f}", f"{np.mean([r['cc'] for r in sel]):.3f}"]
        label = rule + (" (benchmark-only)" if rule == "oracle" else "")
        lines.append(f"| {m} | {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
