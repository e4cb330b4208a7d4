"""Which λ rule holds on real signals? Every rule against the oracle, on every data set at hand.

    python experiments/lambda_rules.py [--shared ../shared] [--out results/lambda_rules]
        [--methods tikhonov-2 tikhonov-1 tikhonov-0] [--sets ...] [--snr 30] [--correlation 60] [--quick]

For each case one λ path (one generalized SVD) is computed, and every rule picks a λ on it:
``gcv``, ``lcurve``, ``creso``, ``ucurve``, ``discrepancy`` (noise estimated from the data), ``cv``
(5 lead folds); ``oracle`` picks the λ of the smallest RE against the truth (BENCHMARK-ONLY).
Greensite's method applies the rule to each temporal component (no ``cv``; its oracle is its
own ``lambda_rule="oracle"``); spatiotemporal regularization has GCV and discrepancy on its
``(λ_s, λ_t)`` grid and CRESO as the spatial CRESO λ with the balanced temporal weight (its
oracle: the grid's, centred on the spatial oracle).
Reported: each rule's RE over the oracle's (1.00 = as good as the oracle), mean and worst case per
set. A rule "holds" on a set when its worst case is within 10 % of the oracle.

Sets (the heart-surface truth and the forward model of each):

* ``noncrime-white`` / ``noncrime-correlated`` / ``noncrime-noisy``: the non-crime phantom
  (``ecgi_jax.noncrime``: Mitchell–Schaeffer on a 4× finer mesh through its own BEM; biventricular,
  the development sites 50 / 300 and seeds 1 / 2 of ``noncrime_study``), σ = 0.1 white, 60 mm
  spatially correlated, and correlated plus 4 bad leads;
* ``utah-sock-white`` / ``utah-sock-correlated``: the 17 measured paced sock beats
  (``pulse-utah-sock490``; bad leads filled from their neighbours) through our BEM to the 192 tank
  electrodes, ``--snr`` dB of white or ``--correlation`` mm correlated noise;
* ``utah-1997``: the measured 1997 sock frames (``fwdinvtoolkit``, 128 nodes × 21 frames) through
  SCIRun's own sock → tank matrix at the 192 measured tank electrodes, the same two noises.

Writes ``results.json``, ``results.csv`` and ``table.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ecgi_jax import forward, noncrime, operators
from ecgi_jax.datasets import load_utah_sock490, load_utah_sock_tank_1997
from ecgi_jax.solvers import classical

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import apply_quick, meta, write_outputs  # noqa: E402
from utah_recordings import fill_bad_leads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULES = ("gcv", "lcurve", "creso", "ucurve", "discrepancy", "cv")
SETS = ("noncrime-white", "noncrime-correlated", "noncrime-noisy", "utah-sock-white", "utah-sock-correlated",
        "utah-1997-white", "utah-1997-correlated")
DEV_SITES, DEV_SEEDS = (50, 300), (1, 2)  # noncrime_study's development cases: never its reported ones


def noisy(key, Y, positions, snr_db, correlation):
    z = forward.correlated_noise(key, positions, Y.shape[1], correlation, Y.dtype)
    return Y + jnp.sqrt(jnp.mean(Y**2)) * 10.0 ** (-snr_db / 20.0) * z


def cases(name, args, cache):
    """``(label, Y, A, mesh vertices, adjacency, truth)`` of one set."""
    if name.startswith("noncrime"):
        geo = cache.get("geo") or noncrime.noncrime_geometry()
        cache["geo"] = geo
        corr = 0.0 if name == "noncrime-white" else 60.0
        bad = 4 if name == "noncrime-noisy" else 0
        for site in DEV_SITES:
            for seed in DEV_SEEDS:
                c = noncrime.make_noncrime_case(jax.random.key(seed), geo, site, sigma=0.1, noise_correlation_mm=corr, bad_leads=bad)
                yield f"site {site} seed {seed}", c.Y, c.A, geo.heart.vertices, geo.heart.adjacency, c.U
        return
    correlation = args.correlation if name.endswith("correlated") else 0.0
    if name.startswith("utah-sock"):
        data = cache.get("sock490") or load_utah_sock490(args.shared / "data" / "pulse-utah-sock490")
        cache["sock490"] = data
        if "A_sock" not in cache:
            cache["A_sock"] = forward.transfer_matrix(data.sock, data.tank, electrodes=data.tank_electrodes, reference="none")
        A = cache["A_sock"]
        positions = data.tank.vertices[data.tank_electrodes]
        names = sorted(data.beats)[: args.beats]
        for i, beat_name in enumerate(names):
            beat = data.beats[beat_name]
            X = fill_bad_leads(beat.potentials, beat.bad_leads, data.sock.adjacency)
            Y = noisy(jax.random.key(i), jnp.asarray(A @ X), positions, args.snr, correlation)
            yield beat_name, Y, A, data.sock.vertices, data.sock.adjacency, X
        return
    d = cache.get("utah1997") or load_utah_sock_tank_1997(args.shared / "data" / "fwdinvtoolkit")
    cache["utah1997"] = d
    sock490 = cache.get("sock490") or load_utah_sock490(args.shared / "data" / "pulse-utah-sock490")
    cache["sock490"] = sock490
    electrodes = sock490.tank_electrodes  # the 192 measured tank electrodes (same tank node list)
    A = d.transfer_scirun[electrodes]
    X = d.sock_potentials / 1000.0  # µV as stored -> mV
    from ecgi_jax.geometry import adjacency_of, edges_of

    adjacency = adjacency_of(len(d.sock_vertices), edges_of(d.sock_triangles))  # the shipped faces, as a graph
    Y = noisy(jax.random.key(0), jnp.asarray(A @ X), d.tank.vertices[electrodes], args.snr, correlation)
    yield "frames 170-190", Y, A, d.sock_vertices, adjacency, X


def penalty(method, vertices, adjacency):
    if method == "tikhonov-0":
        return None
    if method == "tikhonov-1":
        return operators.edge_gradient(np.asarray(vertices), adjacency)
    return operators.huiskamp_laplacian(np.asarray(vertices), adjacency)


def evaluate_greensite(Y, A, vertices, adjacency, truth) -> dict:
    """RE of Greensite's method with each rule (its own λ per temporal component; no ``cv``)."""
    from ecgi_jax import solve

    lap = operators.huiskamp_laplacian(np.asarray(vertices), adjacency)
    Y, A, truth = (np.asarray(x, np.float32) for x in (Y, A, truth))
    err = lambda X: float(np.linalg.norm(np.asarray(X) - truth) / np.linalg.norm(truth))  # noqa: E731
    out = {"oracle": err(solve(Y, A, method="greensite", laplacian=lap, lambda_rule="oracle", truth=truth).U)}
    for rule in RULES:
        out[rule] = None if rule == "cv" else err(solve(Y, A, method="greensite", laplacian=lap, lambda_rule=rule).U)
    return out


def evaluate_spatiotemporal(Y, A, vertices, adjacency, truth) -> dict:
    """RE of spatiotemporal regularization with the rules it has (GCV and discrepancy on its 2-D
    grid; CRESO: the spatial problem's CRESO λ with the balanced temporal weight)."""
    from ecgi_jax import solve

    lap = operators.huiskamp_laplacian(np.asarray(vertices), adjacency)
    Y, A, truth = (np.asarray(x, np.float32) for x in (Y, A, truth))
    err = lambda X: float(np.linalg.norm(np.asarray(X) - truth) / np.linalg.norm(truth))  # noqa: E731
    run = lambda rule, **kw: err(solve(Y, A, method="spatiotemporal", laplacian=lap, dt=1.0, lambda_rule=rule, **kw).U)  # noqa: E731
    out = {"oracle": run("oracle", truth=truth)}
    for rule in RULES:
        out[rule] = run(rule) if rule in ("gcv", "creso", "discrepancy") else None
    return out


def evaluate(Y, A, R, truth) -> dict:
    """RE of each rule's λ and of the oracle's on one path."""
    Y, A, truth = (jnp.asarray(x, jnp.float32) for x in (Y, A, truth))
    if R is not None:
        R, _ = classical.pin_constant_mode(A, R)
        R = R.astype(jnp.float32) if isinstance(R, operators.SparseOperator) else classical.as_matrix(R, jnp.float32)
    path = classical.tikhonov_path(Y, factor=classical.factorize(A, R), truth=truth)
    err = np.asarray(path.error, np.float64)
    out = {"oracle": float(np.min(err))}
    for rule in RULES:
        if rule == "cv":
            choice = classical.crossval(Y, A, R, path.lambdas)
        else:
            choice = classical.select_lambda(path, rule)
        out[rule] = float(err[int(choice.index)])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "lambda_rules")
    p.add_argument("--methods", nargs="+", default=["tikhonov-2", "tikhonov-1", "tikhonov-0", "greensite"])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--snr", type=float, default=30.0, help="dB, the Utah sets")
    p.add_argument("--correlation", type=float, default=60.0, help="mm, the correlated Utah sets")
    p.add_argument("--beats", type=int, default=17, help="how many of the 17 sock beats")
    p.add_argument("--quick", action="store_true", help="tikhonov-2; noncrime-white and utah-sock-correlated; 2 beats")
    args = p.parse_args(argv)
    if args.quick:
        apply_quick(p, args, {"methods": ["tikhonov-2"], "sets": ["noncrime-white", "utah-sock-correlated"], "beats": 2})

    rows, cache = [], {}
    for name in args.sets:
        for label, Y, A, vertices, adjacency, truth in cases(name, args, cache):
            for method in args.methods:
                t0 = time.perf_counter()
                if method == "greensite":
                    res = evaluate_greensite(Y, A, vertices, adjacency, truth)
                elif method == "spatiotemporal":
                    res = evaluate_spatiotemporal(Y, A, vertices, adjacency, truth)
                else:
                    res = evaluate(Y, A, penalty(method, vertices, adjacency), truth)
                row = {"set": name, "case": label, "method": method, **res, "time_s": time.perf_counter() - t0}
                rows.append(row)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    head = "| set | method | cases | oracle RE | " + " | ".join(f"{r} (mean / worst)" for r in RULES) + " |"
    lines = [head, "|" + "---|" * (4 + len(RULES))]
    for name in args.sets:
        for method in args.methods:
            sel = [r for r in rows if r["set"] == name and r["method"] == method]
            if not sel:
                continue
            cells = []
            for rule in RULES:
                ratio = np.array([r[rule] / r["oracle"] for r in sel if r[rule] is not None])
                cells.append("–" if ratio.size == 0 else f"{ratio.mean():.2f} / {ratio.max():.2f}" + (" ✓" if ratio.max() <= 1.10 else ""))
            lines.append(f"| {name} | {method} | {len(sel)} | {np.mean([r['oracle'] for r in sel]):.3f} | " + " | ".join(cells) + " |")
    write_outputs(args.out, rows, meta(args), "\n".join(lines))


if __name__ == "__main__":
    main()
