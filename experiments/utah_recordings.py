"""Inverse methods on real measured epicardial electrograms (Utah 490-lead sock, 17 paced beats).

    python experiments/utah_recordings.py [--shared ../shared] [--out results/utah_recordings]
        [--beats NAME ...] [--snrs 30 20] [--seeds 0] [--rules gcv lcurve oracle]
        [--methods ...] [--ap-methods ap-shooting eand-arn] [--steps N] [--time-scale 10]
        [--ap-observation extracellular] [--quick]

Data (``ecgi_jax.datasets.load_utah_sock490``; ``pulse-utah-sock490/README.md``): measured sock
electrograms (490 leads, 1 kHz, mV, the QRS of 17 paced beats), the authors' activation times,
the pacing node, bad leads, and the closed sock and the Utah tank (192 recording electrodes) in
one frame.

What is simulated and what is measured:

* The **heart-surface truth is measured**: the sock electrograms. Bad leads are replaced, before
  the forward step only, by the mean of their good 1-ring neighbours (so they do not inject
  artefacts into the body potentials); every score is computed on the good leads alone.
* The **body potentials are simulated** from them: ``Y = A X`` with our BEM ``A`` from the
  closed sock to the 192 measured tank electrodes (``forward.transfer_matrix``, homogeneous,
  ``reference="none"``), plus white noise at ``--snrs`` dB (``forward.add_noise_snr``). The
  authors' own simulated BSPs are not used (their forward matrix is sign-flipped and from an
  unknown sock placement; see the data README). So forward-model error is absent here; what is
  tested is the inverse on real, not model-generated, heart signals.

Comparisons:

* Classical methods (every registered method that is not Aliev–Panfilov based, λ rules
  ``--rules``; ``oracle`` picks λ with the measured electrograms: BENCHMARK-ONLY) reconstruct
  extracellular electrograms and are scored against the measured ones: RE, mean temporal CC;
  activation times by steepest downslope (``argmin dX/dt``) against the measured activation
  times (mean absolute error in ms, correlation); pacing-site localisation error (mm) between
  the earliest reconstructed activation and the measured pacing node.
* Aliev–Panfilov based methods (``--ap-methods``: ``ap-shooting``, ``eand-arn``, ``hybrid``, ``pdl``)
  reconstruct a normalised *transmembrane* potential u, not an electrogram, so their
  potentials are **not** compared with the electrograms: only u's activation times (steepest
  upstroke, as in ``ecgsim_activation.py``) and the localisation error are scored. They get the
  sock in physical units, ``HeartModel.from_mesh(sock, dt=1.0, length_unit="mm",
  time_unit="ms", time_scale=--time-scale)``: one AP time unit is ``--time-scale`` ms (default
  ``operators.DEFAULT_MS_PER_AP`` = 10: the model's front speed ``c = √(D·k/2)·(1 − 2a) ≈ 5.1`` mm
  per AP unit then reads ≈ 0.5 mm/ms, an epicardial conduction velocity; the AP-duration scale,
  12.9 ms per unit, would make the front about 4× too slow to cover the sock within the QRS).
  One fixed scale for every beat: an assumption, not a fit to the measured activation; shooting
  fits ``D`` within ``[D₀/16, 16·D₀]`` and took 67–98 on the development beats (the apparent
  epicardial spread of a paced beat is faster than surface conduction). The
  data are ``A`` times electrograms in mV, not ``A·u`` with ``u ∈ [0, 1]``. ``--ap-observation``
  says how the methods relate them (each with its other defaults; ``--steps`` only where given):
  ``"extracellular"`` (default): an electrogram falls as the tissue under it depolarises,
  ``φ ≈ −g·u + c(t) + b`` with a far field ``c(t)`` common to the sock, so ``Y ≈ −g·A·u +
  (A·1)·c(t) + b`` (``forward.without_common_mode``); ``"gain-offset"``: ``Y = g·A·u + b`` with
  ``g > 0``, the model of a TMP-based transfer matrix, which on these data took the complement
  of the beat or found no positive gain at all (7 of 17 beats). Column ``activated``: the
  fraction of good nodes whose u activates at all.
  (Before 2026-12-04 they ran at AP units with the identity observation and 300 steps, scored at
  u's half-range crossing: ``utah_recordings_ap`` in ``RESULTS.md``.)
* ``activation-based`` explains the data by a tanh *upstroke* per node (activation times as the
  unknowns), so it is scored the same way: upstroke times of its reconstruction, no RE/CC.
* Row ``measured (downslope)``: our downslope estimator applied to the measured electrograms,
  i.e. how far the authors' activation times and our estimator disagree before any inverse.

Electrogram activation times: ``ecgi_jax.activation.steepest_downslope`` (default) or
``spatially_coherent`` (``--at-method coherent``); pacing site = earliest good node
(``activation.pacing_site``), error by ``activation.localization_error_mm``. Without that module the
downslope is ``metrics.activation_times(-X, method="upstroke")``, the same rule.

Writes ``results.json``, ``results.csv``, ``table.md`` (mean ± std over beats and seeds per
noise level × method) and ``activation_maps.png`` (measured vs reconstructed activation map of
the first beat) under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import ecgi_jax
from ecgi_jax import ep, forward, metrics, operators
from ecgi_jax.datasets import load_utah_sock490
from ecgi_jax.operators import HeartModel, edge_gradient

try:  # activation-time estimators for extracellular electrograms
    from ecgi_jax import activation as _activation
except ImportError:
    _activation = None

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import NEURAL, Setup, apply_quick, configurations, mean_std, meta, operator_options, write_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AP_METHODS = ("ap-shooting", "eand-arn", "hybrid", "pdl")
# Classical methods whose potentials are a parametrized upstroke (not an electrogram): scored like
# the AP methods, through the upstroke times of their reconstruction.
UPSTROKE_METHODS = ("activation-based",)
QUICK_METHODS = ("tikhonov-2", "spatiotemporal")


def downslope_times(X, adjacency=None, good=None, method: str = "downslope") -> np.ndarray:
    """Activation time (ms, 1 kHz samples) of every electrogram of ``X (N, T)``.

    ``"downslope"``: steepest downslope per node; ``"coherent"``: the spatially coherent
    estimate (neighbour delays by cross-correlation, Erem et al. 2014), bad leads excluded."""
    if _activation is None:  # the library module is missing: the same rule through metrics
        if method != "downslope":
            raise RuntimeError("--at-method coherent needs ecgi_jax.activation, which is not importable.")
        return np.asarray(metrics.activation_times(-np.asarray(X), 1.0, method="upstroke"))
    if method == "coherent":
        return np.asarray(_activation.spatially_coherent(X, 1.0, adjacency, valid=good))
    return np.asarray(_activation.steepest_downslope(X, 1.0))


def upstroke_times(U) -> np.ndarray:
    """Activation time (ms, 1 kHz samples) of a transmembrane potential: its steepest upstroke."""
    return np.asarray(ep.activation_times(U, 1.0, method="upstroke"))


def localization_mm(at: np.ndarray, vertices: np.ndarray, pacing_node: int, good: np.ndarray) -> float:
    """Distance (mm) from the measured pacing node to the earliest-activating good node."""
    if _activation is not None:
        _, xyz = _activation.pacing_site(at, vertices, valid=good)
        return float(_activation.localization_error_mm(xyz, vertices[pacing_node]))
    idx = np.flatnonzero(good)
    j = idx[int(np.argmin(at[idx]))]
    return float(np.linalg.norm(vertices[j] - vertices[pacing_node]))


def at_scores(at_hat, at_true, good, n_samples: int) -> dict:
    """AT mean absolute error (ms), correlation (0 if either map is constant) and the fraction
    of good nodes that activate at all (a node that never activates has the time ``T``)."""
    a, b = at_hat[good], at_true[good]
    cc = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    return {"at_mae_ms": float(np.mean(np.abs(a - b))), "at_cc": cc, "activated": float(np.mean(a < n_samples))}


def fill_bad_leads(X: np.ndarray, bad: np.ndarray, adjacency) -> np.ndarray:
    """Copy of ``X`` with each bad lead replaced by the mean of its good 1-ring neighbours
    (repeated outward if a bad lead has only bad neighbours)."""
    indptr, indices = adjacency
    X = np.array(X, dtype=np.float64)
    todo = set(int(b) for b in bad)
    good = np.ones(len(X), bool)
    good[list(todo)] = False
    while todo:
        done = []
        for i in todo:
            nb = [j for j in indices[indptr[i]:indptr[i + 1]] if good[j]]
            if nb:
                X[i] = X[nb].mean(axis=0)
                done.append(i)
        if not done:
            raise ValueError(f"bad leads {sorted(todo)} have no good neighbours to interpolate from.")
        for i in done:
            good[i] = True
            todo.discard(i)
    return X


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "utah_recordings")
    p.add_argument("--beats", nargs="+", default=None, help="beat names (default: all 17)")
    p.add_argument("--snrs", type=float, nargs="+", default=[30.0, 20.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--rules", nargs="+", default=["gcv", "lcurve", "oracle"])
    p.add_argument("--methods", nargs="+", default=None, help="classical methods (default: all registered non-AP ones)")
    p.add_argument("--ap-methods", nargs="*", default=None, choices=AP_METHODS,
                   help="Aliev–Panfilov based methods (default: ap-shooting eand-arn; none with --quick)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps of the neural methods (default: each method's)")
    p.add_argument("--time-scale", type=float, default=None,
                   help="ms per AP time unit of the AP methods (default operators.DEFAULT_MS_PER_AP; docstring)")
    p.add_argument("--ap-observation", default="extracellular", choices=["gain-offset", "extracellular", "identity"],
                   help="observation model of the AP methods that take one (docstring)")
    p.add_argument("--at-method", default="downslope", choices=["downslope", "coherent"],
                   help="activation times of electrograms: steepest downslope or spatially coherent")
    p.add_argument("--quick", action="store_true",
                   help=f"first beat, 30 dB, gcv + oracle, methods {', '.join(QUICK_METHODS)}, no AP methods, 20 steps (options given explicitly are kept)")
    args = p.parse_args(argv)

    data = load_utah_sock490(Path(args.shared) / "data" / "pulse-utah-sock490")
    names = args.beats or sorted(data.beats)
    if args.quick:
        names = names if args.beats else names[:1]
        apply_quick(p, args, dict(snrs=[30.0], seeds=[0], rules=["gcv", "oracle"], methods=list(QUICK_METHODS),
                                  ap_methods=[], steps=20))
    if args.ap_methods is None:
        args.ap_methods = ["ap-shooting", "eand-arn"]
    unknown = [b for b in names if b not in data.beats]
    if unknown:
        p.error(f"unknown beat(s) {unknown}; available: {', '.join(sorted(data.beats))}")
    classical = args.methods or [m for m in ecgi_jax.METHODS if m not in NEURAL and m not in AP_METHODS]
    configs = configurations(classical, args.rules, args.steps, args.steps)
    steps = {} if args.steps is None else {"steps": args.steps}
    configs += [(m, m, None, {**steps, "progress": False, "observation": args.ap_observation}) for m in args.ap_methods]
    configs = [(lab, m, r, {k: v for k, v in o.items() if k in ecgi_jax.method_options(m)}) for lab, m, r, o in configs]

    sock = data.sock
    vertices, adj = np.asarray(sock.vertices), sock.adjacency
    t0 = time.perf_counter()
    A = forward.transfer_matrix(sock, data.tank, electrodes=data.tank_electrodes, reference="none", dtype=np.float32)
    print(f"BEM sock ({sock.n_vertices}) → tank ({data.tank.n_vertices}, {len(data.tank_electrodes)} leads): "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    setup = Setup(name="utah", A=A, lap=operators.huiskamp_laplacian(vertices, adj), grad=edge_gradient(vertices, adj),
                  vertices=vertices, adjacency=adj, dt=1.0, n_samples=None)
    heart = HeartModel.from_mesh(sock, dt=1.0, length_unit="mm", time_unit="ms", time_scale=args.time_scale)

    rows, failures, maps = [], [], {}
    for bi, name in enumerate(names):
        beat = data.beats[name]
        good = np.ones(sock.n_vertices, bool)
        good[beat.bad_leads] = False
        X_true = np.asarray(beat.potentials, np.float64)
        at_true = np.asarray(beat.activation_times, np.float64)
        X_filled = fill_bad_leads(X_true, beat.bad_leads, adj)
        Y_clean = (A.astype(np.float64) @ X_filled).astype(np.float32)
        problems, Ys = [], []
        for i, snr in enumerate(args.snrs):
            for seed in args.seeds:
                problems.append(dict(snr_db=snr, seed=seed))
                Ys.append(np.asarray(forward.add_noise_snr(jax.random.fold_in(jax.random.key(seed), i), Y_clean, snr)))
        Ys = np.stack(Ys)
        base = dict(beat=name, n_samples=X_true.shape[1], n_bad=int((~good).sum()), pacing_node=beat.pacing_node)
        at_ds = downslope_times(X_true, adj, good, args.at_method)
        loc = localization_mm(at_ds, vertices, beat.pacing_node, good)
        for pr in problems:  # the estimator on the measured data, no inverse: one reference row per problem
            rows.append(dict(base, **pr, method=f"measured ({args.at_method})", compared="activation", re=None, cc=None,
                             **at_scores(at_ds, at_true, good, X_true.shape[1]), loc_mm=loc, time_s=0.0))
        if bi == 0:
            maps["measured AT (authors)"] = at_true
            maps[f"measured, {args.at_method}"] = at_ds
        truth = np.broadcast_to(X_filled.astype(np.float32), (len(Ys),) + X_true.shape)
        for label, method, rule, opts in configs:
            ap = method in AP_METHODS
            try:
                t0 = time.perf_counter()
                keys = [jax.random.key(pr["seed"]) for pr in problems] if "key" in ecgi_jax.method_options(method) else None
                if ap:  # physical units through the heart model; one call per problem (each its own start)
                    sols = [ecgi_jax.solve(Y, A, method=method, heart=heart, **({"key": k} if keys else {}), **opts)
                            for Y, k in zip(Ys, keys or [None] * len(Ys))]
                else:
                    all_opts = {**operator_options(method, setup), **opts}
                    kw = dict(all_opts, truth=truth) if rule == "oracle" else all_opts
                    sols = ecgi_jax.solve_batch(Ys, A, method=method, keys=keys, **kw)
                per = (time.perf_counter() - t0) / len(sols)
            except Exception as exc:  # reported in the table and results.json, the study goes on
                msg = f"{type(exc).__name__}: {exc}"
                failures.append(dict(beat=name, method=label, error=msg[:2000]))
                print(f"[{name}] {label}: FAILED {msg[:300]}", flush=True)
                continue
            for pr, sol in zip(problems, sols):
                U = np.asarray(sol.U, np.float64)
                if ap or method in UPSTROKE_METHODS:  # transmembrane-like upstrokes: activation times only
                    at_hat = upstroke_times(U)
                    row = dict(re=None, cc=None, compared="activation (u upstroke)")
                else:
                    at_hat = downslope_times(U, adj, good, args.at_method)
                    row = dict(re=float(metrics.relative_error(U[good], X_true[good])),
                               cc=float(metrics.mean_correlation(U[good], X_true[good], "time")),
                               compared=f"electrograms + activation ({args.at_method})")
                ats = at_scores(at_hat, at_true, good, X_true.shape[1])
                if ap:  # the start the method chose, and the gain it fitted
                    row.update({k: sol.diagnostics[k] for k in ("start", "observation_gain", "result") if k in sol.diagnostics})
                # No activated node: no earliest node either, so no localisation.
                loc_hat = localization_mm(at_hat, vertices, beat.pacing_node, good) if ats["activated"] > 0 else None
                row = dict(base, **pr, method=label, base_method=method, rule=rule, benchmark_only=rule == "oracle",
                           **row, **ats, loc_mm=loc_hat, time_s=per)
                rows.append(row)
                if bi == 0 and pr is problems[0]:
                    maps[label] = at_hat
            last = rows[-len(sols):]
            re = [r["re"] for r in last if r["re"] is not None]
            print(f"[{name}] {label:30s} RE={np.mean(re) if re else float('nan'):.3f} "
                  f"ATmae={np.mean([r['at_mae_ms'] for r in last]):.1f} ms "
                  f"loc={mean_std(last, 'loc_mm', '.1f')} mm ({per:.1f} s/problem)", flush=True)

    info = meta(args)
    info.update(beats=names, bem="homogeneous BEM, closed sock -> Utah tank, reference='none'",
                compared=(
                    "classical: reconstructed vs measured sock electrograms (good leads) and downslope activation "
                    "times vs measured activation times; AP methods (u = transmembrane): activation times only"))
    write_outputs(args.out, rows, info, table(rows, failures), {"failures": failures})
    if maps:
        figure(maps, vertices, data.beats[names[0]], good_mask(data.beats[names[0]], sock.n_vertices),
               args.out / "activation_maps.png", names[0])


def good_mask(beat, n):
    good = np.ones(n, bool)
    good[beat.bad_leads] = False
    return good


def table(rows, failures) -> str:
    lines = ["| SNR | method | compared | RE | CC | AT err (ms) | AT cc | activated | loc (mm) | s/problem | n |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for snr in dict.fromkeys(r["snr_db"] for r in rows):
        for m in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["snr_db"] == snr and r["method"] == m]
            if not sel:
                continue
            name = m + (" (benchmark-only)" if sel[0].get("benchmark_only") else "")
            lines.append(
                f"| {snr:g} dB | {name} | {sel[0]['compared']} | {mean_std(sel, 're')} | {mean_std(sel, 'cc')} | "
                f"{mean_std(sel, 'at_mae_ms', '.1f')} | {mean_std(sel, 'at_cc')} | {mean_std(sel, 'activated', '.2f')} | "
                f"{mean_std(sel, 'loc_mm', '.1f')} | "
                f"{np.mean([r['time_s'] for r in sel]):.2f} | {len(sel)} |"
            )
    for f in failures:
        lines.append(f"| – | {f['method']} | failed on {f['beat']}: {f['error'][:120]} | | | | | | | | |")
    return "\n".join(lines)


def figure(maps: dict, vertices, beat, good, path: Path, name: str) -> None:
    """Activation maps (ms) on the sock nodes, anterior view, one panel per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(maps)[:6]
    fig = plt.figure(figsize=(4 * len(keys), 4.2))
    lo, hi = np.percentile(maps[keys[0]][good], [1, 99])
    for i, k in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1, projection="3d")
        at = maps[k]
        rng = (lo, hi) if i < 2 else tuple(np.percentile(at[good], [1, 99]))
        sc = ax.scatter(*vertices[good].T, c=at[good], cmap="jet", s=9, vmin=rng[0], vmax=rng[1])
        ax.scatter(*vertices[beat.pacing_node], c="k", marker="*", s=120)
        ax.set_title(k, fontsize=8)
        ax.set_axis_off()
        fig.colorbar(sc, ax=ax, shrink=0.6, label="ms")
    fig.suptitle(f"{name}: activation maps (★ measured pacing site)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
