"""EAND-ARN against Tikhonov, P-DL and its own ablations on the P-DL geometry (issue 4's table).

    python experiments/eand_arn_noise_study.py [--shared ../shared] [--sigmas 0.05 0.1 0.2]
        [--pacing 500 801] [--seeds 0 1 2] [--steps 300] [--pdl-steps 1000]
        [--variants ...] [--patch 0] [--geometry pdl|phantom] [--quick]

Ground truth: an Aliev–Panfilov beat paced at one node (``--patch 1``: from the node's 1-ring,
7 nodes) on the P-DL heart, body potentials through the P-DL transfer matrix plus Gaussian
noise σ·std(AU). With ``--patch 0`` the data come from the very model EAND-ARN's loss and its
pacing-search start use — an *inverse crime* that flatters physics-based methods; ``--patch 1``
puts the truth outside the single-node search space. ``--geometry phantom``: the built-in heart-torso
phantom at a small size instead (200 heart nodes, 120 of 400 torso nodes as leads, BEM transfer
matrix; 400 samples, pacing nodes 5 and 198) — no data needed, and small enough that training
for 10⁴ steps fits on a CPU.

Variants (``--variants``; all EAND-ARN variants train for ``--steps`` Adam steps from the same
start, computed once per case, so that differences come from the variant alone):

* ``tik2-oracle`` / ``tik2-gcv`` — 2nd-order Tikhonov with the best λ (needs the truth) / GCV λ;
* ``eand-arn`` — the default: body-signal adaptive ResNet, 5-point ND, pacing-search start (on
  these inverse-crime data the exact single-site beat is what ``start="auto"`` picks);
* ``coordinate`` — coordinate-input adaptive ResNet, ND, pacing start;
* ``ad-time`` — ablation: coordinate network with ∂/∂t by autodiff (P-DL's way), pacing start;
* ``plain-res`` — ablation: plain residual blocks ``x + F(x)`` instead of adaptive ones;
* ``stencil3`` — ablation: 3-point time stencil;
* ``free-grid`` / ``free-grid-tik`` — the reference: the same loss with ``U, V`` as free
  variables (no network), from the pacing / Tikhonov-2 start;
* ``tik-start`` — EAND-ARN from the Tikhonov-2 (L-curve) start instead of the pacing search;
* ``random-init`` — EAND-ARN from a random initialisation (no start, as a plain PINN);
* ``head-init`` / ``tik-head`` — the PirateNet start: the output layer of the shallow (all α = 0)
  network least-squares-fitted to the pacing-search / Tikhonov-2 map, instead of learning a
  correction added to it;
* ``learnable-w`` — learnable uncertainty weights instead of fixed ones;
* ``tik-terms`` — with Tikhonov terms ``λ0 = λ2 = 1e-4`` added to the loss;
* ``pacing-only`` — the pacing-search start itself, untrained (what the network adds is the
  difference to ``eand-arn``);
* ``pdl`` — the P-DL baseline (5×10 tanh MLP, AD in time, learnable weights), ``--pdl-steps``.

The *training* family — where the network has to do the work: from the Tikhonov-2 (L-curve) start,
which violates the AP model, with the physics terms weighted 1e-3 (the Tikhonov map's AP residual is
large, and at weight 1 the physics term drags the map away from the data: RE 0.40 → 0.51 in 3000
steps on the phantom) and Adam at 1e-3; run them with ``--steps`` in the thousands:

* ``tik-train`` — EAND-ARN (body mode, adaptive blocks, 5-point ND);
* ``tik-train-plain`` / ``tik-train-stencil3`` — the two ablations;
* ``tik-train-coordinate`` / ``tik-train-ad`` — coordinate network, ND / ∂/∂t by autodiff;
* ``tik-train-grid`` — the free-grid reference (same loss, no network);
* ``tik-train-data-only`` — the control: physics weight 0 (does the physics term do the work?).

The *balanced* family — the same start, unit weights rebalanced by gradient norms every 100 steps
(data fit against the physics terms, ``balance_every=100``; what ``solve`` does by default), Adam at 1e-3:

* ``tik-balanced`` — EAND-ARN; ``tik-balanced-plain`` / ``-stencil3`` — the ablations;
  ``tik-balanced-grid`` — the free-grid reference; ``tik-balanced-coordinate`` / ``-ad`` — the
  coordinate network with ∂/∂t by the stencil / by autodiff (P-DL's way);
* ``random-fixed`` — ``random-init`` with fixed unit weights (the default before balancing).

Every other EAND-ARN variant follows ``solve``'s defaults, balanced weights included (results
before 2026-11-30 were produced with fixed weights).

Writes ``results.json`` (one row per case × variant, with how training ``stopped``) and
``table.md`` (mean ± std over seeds and pacing sites per σ; ``n`` says how many runs diverged —
their rows score the last finite parameters) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from ecgi_jax import forward, geometry, metrics, operators, solve
from ecgi_jax.datasets import load_pdl
from ecgi_jax.operators import SparseOperator
from ecgi_jax.solvers.neural import start_solution
from ecgi_jax.synthetic import make_case, pacing_nodes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import meta  # noqa: E402  (one definition of what a run records)

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "eand-arn": {},
    "coordinate": {"mode": "coordinate", "width": 64},
    "ad-time": {"mode": "coordinate", "width": 64, "derivative": "autodiff"},
    "plain-res": {"adaptive": False},
    "stencil3": {"stencil_order": 2},
    "free-grid": {"mode": "grid"},
    "free-grid-tik": {"mode": "grid", "start": "tikhonov"},
    "tik-start": {"start": "tikhonov"},
    "random-init": {"init": "random", "learning_rate": 1e-3},
    "head-init": {"init": "head"},
    "tik-head": {"start": "tikhonov", "init": "head"},
    "learnable-w": {"learnable_weights": True},
    "tik-terms": {"weights": (1.0, 1.0, 1.0, 1e-4, 1e-4)},
}
TIK_TRAIN = {"start": "tikhonov", "weights": (1.0, 1e-3, 1e-3, 0.0, 0.0), "balance_every": 0, "learning_rate": 1e-3}
VARIANTS.update({
    "tik-train": TIK_TRAIN,
    "tik-train-plain": {**TIK_TRAIN, "adaptive": False},
    "tik-train-stencil3": {**TIK_TRAIN, "stencil_order": 2},
    "tik-train-coordinate": {**TIK_TRAIN, "mode": "coordinate", "width": 64},
    "tik-train-ad": {**TIK_TRAIN, "mode": "coordinate", "width": 64, "derivative": "autodiff"},
    "tik-train-grid": {**TIK_TRAIN, "mode": "grid"},
    "tik-train-data-only": {**TIK_TRAIN, "weights": (1.0, 0.0, 0.0, 0.0, 0.0)},
})
# The same start with the weights balanced by gradient norms (data fit against physics, every 100
# steps) instead of hand-set to 1e-3.
TIK_BALANCED = {"start": "tikhonov", "weights": (1.0, 1.0, 1.0, 0.0, 0.0), "balance_every": 100, "learning_rate": 1e-3}
VARIANTS.update({
    "tik-balanced": TIK_BALANCED,
    "tik-balanced-plain": {**TIK_BALANCED, "adaptive": False},
    "tik-balanced-stencil3": {**TIK_BALANCED, "stencil_order": 2},
    "tik-balanced-grid": {**TIK_BALANCED, "mode": "grid"},
    "tik-balanced-coordinate": {**TIK_BALANCED, "mode": "coordinate", "width": 64},
    "tik-balanced-ad": {**TIK_BALANCED, "mode": "coordinate", "width": 64, "derivative": "autodiff"},
    "random-fixed": {"init": "random", "balance_every": 0, "learning_rate": 1e-3},
})
CLASSICAL = ("tik2-oracle", "tik2-gcv")
ALL = CLASSICAL + ("pacing-only",) + tuple(VARIANTS) + ("pdl",)


def score(U_hat, case) -> dict:
    at = metrics.activation_time_error(U_hat, case.U, float(case.dt))
    return {
        "re": float(metrics.relative_error(U_hat, case.U)),
        "mse": float(metrics.mse(U_hat, case.U)),
        "cc": float(metrics.mean_correlation(U_hat, case.U, "time")),
        "at_mae": float(at.mae),
    }


def run_case(case, data, lap, variants, args, seed) -> list[dict]:
    key = jax.random.key(seed)
    common = dict(laplacian=lap, dt=float(case.dt), vertices=data.vertices, adjacency=data.adjacency, progress=False)
    rows, start, start_info = [], None, {}
    t0 = time.perf_counter()
    if any(v in variants for v in ("pacing-only",) + tuple(v for v in VARIANTS if "start" not in VARIANTS[v])):
        U0, V0, start_info = start_solution("pacing", case.Y, case.A, lap, float(case.dt),
                                            vertices=data.vertices, adjacency=data.adjacency)
        start = (U0, V0)
    start_s = time.perf_counter() - t0
    for name in variants:
        t0 = time.perf_counter()
        try:
            U, stopped = _run_variant(name, case, data, lap, args, key, common, start)
        except Exception as exc:  # keep the sweep going; the failure is recorded, not hidden
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            print(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        row = {"variant": name, **score(U, case), "time_s": time.perf_counter() - t0}
        if stopped is not None:
            row["stopped"] = stopped  # "diverged" rows are the last finite parameters, flagged in the table
        if name == "pacing-only" or (name in VARIANTS and "start" not in VARIANTS[name] and VARIANTS[name].get("init") != "random"):
            row["time_s"] += start_s
            row["found_pacing_node"] = int(start_info["pacing_node"])
        rows.append(row)
    return rows


def _run_variant(name, case, data, lap, args, key, common, start):
    """Heart potentials ``U`` of one variant on one case, and how its training stopped (``None``
    for the untrained variants)."""
    if name == "tik2-oracle":
        return solve(case.Y, case.A, method="tikhonov-2", laplacian=lap, lambda_rule="oracle", truth=case.U).potentials, None
    if name == "tik2-gcv":
        return solve(case.Y, case.A, method="tikhonov-2", laplacian=lap).potentials, None
    if name == "pacing-only":
        return start[0], None
    if name == "pdl":
        pdl_common = {k: v for k, v in common.items() if k != "adjacency"}  # P-DL takes no adjacency
        sol = solve(case.Y, case.A, method="pdl", steps=args.pdl_steps, key=key, **pdl_common)
    else:
        opts = {"steps": args.steps, "start": start, **VARIANTS[name]}
        sol = solve(case.Y, case.A, method="eand-arn", key=key, **common, **opts)
    return sol.potentials, sol.diagnostics.get("stopped")


def table(rows, sigmas) -> str:
    lines = ["| variant | σ | RE | MSE | CC | AT err | n |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        for sigma in sigmas:
            sel = [r for r in rows if r["variant"] == name and r["sigma"] == sigma]
            failed = [r for r in sel if "error" in r]
            sel = [r for r in sel if "error" not in r]
            if failed:
                lines.append(f"| {name} | {sigma} | failed ({len(failed)}×): {failed[0]['error'][:100]} | | | | |")
            if not sel:
                continue
            # Significant digits, not fixed decimals: the physics-based rows reach RE ~ 1e-4.
            f = lambda k: f"{np.mean([r[k] for r in sel]):.3g} ± {np.std([r[k] for r in sel]):.2g}"  # noqa: E731
            diverged = sum(r.get("stopped") == "diverged" for r in sel)
            n = f"{len(sel)} ({diverged} diverged)" if diverged else f"{len(sel)}"
            lines.append(f"| {name} | {sigma} | {f('re')} | {f('mse')} | {f('cc')} | {f('at_mae')} | {n} |")
    return "\n".join(lines)


class Geometry(NamedTuple):
    vertices: np.ndarray
    adjacency: tuple
    transfer: np.ndarray


def load_geometry(args):
    """``(geometry, laplacian)`` of ``--geometry``."""
    if args.geometry == "pdl":
        data = load_pdl(Path(args.shared) / "data" / "pdl-heart-torso")
        return Geometry(data.vertices, data.adjacency, data.transfer), SparseOperator.from_scipy(data.laplacian)
    geo = geometry.default_heart_torso(n_heart=200, n_torso=400, n_electrodes=120)
    A = forward.transfer_matrix(geo.heart, geo.torso, electrodes=geo.electrodes, reference="none")
    lap = operators.huiskamp_laplacian(geo.heart.vertices, geo.heart.adjacency)
    return Geometry(geo.heart.vertices, geo.heart.adjacency, np.asarray(A)), lap


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared"))
    p.add_argument("--out", default=None, help="output folder (default results/eand_arn_noise_study[_patchK])")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--pacing", type=int, nargs="+", default=None, help="pacing nodes (default: 500 801 on pdl, 5 198 on phantom)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--pdl-steps", type=int, default=1000)
    p.add_argument("--patch", type=int, default=0, help="pace from the node's k-ring (0: the node alone)")
    p.add_argument("--variants", nargs="+", default=list(ALL), choices=ALL)
    p.add_argument("--geometry", choices=("pdl", "phantom"), default="pdl",
                   help="the P-DL heart-torso data, or the built-in phantom at a small size (no data needed)")
    p.add_argument("--samples", type=int, default=None, help="time samples (default: 661 on pdl, 400 on phantom)")
    p.add_argument("--quick", action="store_true", help="one site, one seed, σ = 0.1, 100 steps")
    p.add_argument("--table-only", action="store_true", help="rebuild table.md from <out>/results.json and exit")
    args = p.parse_args(argv)
    suffix = (f"_patch{args.patch}" if args.patch else "") + ("_phantom" if args.geometry == "phantom" else "")
    out = Path(args.out or ROOT / "results" / ("eand_arn_noise_study" + suffix))
    args.pacing = args.pacing or ([500, 801] if args.geometry == "pdl" else [5, 198])
    args.samples = args.samples or (661 if args.geometry == "pdl" else 400)
    if args.table_only:
        rows = json.loads((out / "results.json").read_text())["rows"]
        text = table(rows, sorted({r["sigma"] for r in rows}))
        (out / "table.md").write_text(text + "\n")
        print(text)
        return
    if args.quick:
        args.sigmas, args.pacing, args.seeds, args.steps, args.pdl_steps = [0.1], args.pacing[:1], [0], 100, 200

    data, lap = load_geometry(args)
    out.mkdir(parents=True, exist_ok=True)
    info = meta(args)
    rows = []
    for node in args.pacing:
        sites = pacing_nodes(data.adjacency, node, args.patch)
        for sigma in args.sigmas:
            for seed in args.seeds:
                case = make_case(jax.random.key(seed), data.transfer, lap, sites, sigma=sigma, n_samples=args.samples)
                for row in run_case(case, data, lap, args.variants, args, seed):
                    row = {"pacing": node, "patch": args.patch, "sigma": sigma, "seed": seed, **row}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                # Written after every case, so that an interrupted sweep keeps what it finished.
                (out / "results.json").write_text(json.dumps({"meta": info, "rows": rows}, indent=1))
                (out / "table.md").write_text(table(rows, args.sigmas) + "\n")
    print(table(rows, args.sigmas))


if __name__ == "__main__":
    main()
