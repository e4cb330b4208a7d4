"""The main accuracy table: every registered inverse method vs noise, on two geometries.

    python experiments/noise_study.py [--shared ../shared] [--out results/noise_study]
        [--geometries pdl default] [--sigmas 0.05 0.1 0.2] [--snrs 30 20 10] [--seeds 0 1 2]
        [--n-pacing 2] [--rules gcv lcurve oracle] [--steps 300] [--methods ...] [--quick]

Ground truth: an Aliev–Panfilov beat paced at one node (``ecgi_jax.synthetic.make_case``), on

* ``pdl``: the P-DL heart–torso set (1094 heart nodes, 352 leads, shipped transfer matrix and
  Laplacian; ``ecgi_jax.datasets.load_pdl``), and
* ``default``: the built-in phantom (``ecgi_jax.geometry.default_heart_torso``), Huiskamp
  Laplacian, our BEM transfer matrix with ``reference="none"``.

Body potentials ``Y = A U`` plus white noise, either relative (``σ·std(AU)``,
``ecgi_jax.forward.add_noise``) or at a signal-to-noise ratio (``forward.add_noise_snr``). Each
row also records ``sigma_eff`` = (added noise std) / std(AU), so the two scales share an axis
in the figure. Pacing sites: farthest-point samples of the heart nodes (the first is node 0).

Methods are discovered from ``ecgi_jax.METHODS`` when the script runs: every registered method
gets the operators it accepts (``laplacian``, ``gradient``, ``dt``, ``vertices``, ``adjacency``
per ``ecgi_jax.method_options``); methods with a λ rule run once per rule in ``--rules``
(``oracle`` picks λ with the ground truth: a BENCHMARK-ONLY bound, not a method); neural
methods (``eand-arn`` in body and in coordinate mode, ``pdl``, ``hybrid``) train for ``--steps``
Adam steps. All seeds × noise levels of one method run as one ``ecgi_jax.solve_batch`` call
(vmapped for the Tikhonov family, TSVD and the networks; a loop of ``solve`` otherwise).
A method that raises is reported in ``results.json["failures"]`` and the table, and the study
goes on.

Scores against the truth (``ecgi_jax.metrics``): relative error RE, MSE, mean temporal
correlation CC, and activation-time error (threshold crossing of u; mean absolute error in AP
time units and correlation of the maps).

Writes ``results.json`` (rows + meta), ``results.csv``, ``table.md`` (mean ± std over seeds and
pacing sites per geometry × noise level × method) and ``error_vs_noise.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

import ecgi_jax
from ecgi_jax import forward, geometry, metrics, operators
from ecgi_jax.datasets import load_pdl
from ecgi_jax.operators import SparseOperator, edge_gradient
from ecgi_jax.synthetic import make_case

ROOT = Path(__file__).resolve().parents[1]
NEURAL = ("eand-arn", "pdl", "hybrid")
# Extra neural variants: label -> (registered method, options).
NEURAL_VARIANTS = {
    "eand-arn (coordinate)": ("eand-arn", {"mode": "coordinate", "width": 64}),
    "hybrid (eand-arn first)": ("hybrid", {"first": "eand-arn"}),
}
QUICK_METHODS = ("tikhonov-2", "spatiotemporal", "eand-arn")


# ----------------------------------------------------------------------------------------------
# set-up shared with robustness.py and utah_recordings.py


class Setup(dict):
    """One geometry: ``name, A (m, n), lap, grad, vertices, adjacency, dt, n_samples``."""

    __getattr__ = dict.__getitem__


def pdl_setup(shared: Path, n_samples: int | None = None) -> Setup:
    """The P-DL heart–torso geometry with its shipped transfer matrix and Laplacian."""
    d = load_pdl(Path(shared) / "data" / "pdl-heart-torso")
    return Setup(
        name="pdl", A=np.asarray(d.transfer, np.float32), lap=SparseOperator.from_scipy(d.laplacian),
        grad=edge_gradient(d.vertices, d.adjacency), vertices=d.vertices, adjacency=d.adjacency,
        dt=d.dt, n_samples=n_samples or len(d.times),
    )


def default_setup(sizes=(1000, 600, 352), n_samples: int = 661, shift=(0.0, 0.0, 0.0), geo=None) -> Setup:
    """The built-in phantom (``sizes`` = heart nodes, torso nodes, electrodes), Huiskamp
    Laplacian, BEM ``A`` with ``reference="none"``. ``shift`` (mm) moves the heart before the BEM
    (the returned operators are those of the shifted heart: a rigid shift leaves them unchanged)."""
    geo = geo or geometry.default_heart_torso(*sizes)
    heart = geo.heart
    if any(shift):
        heart = heart.translated(shift)
    A = forward.transfer_matrix(heart, geo.torso, electrodes=geo.electrodes, reference="none", dtype=np.float32)
    v, adj = np.asarray(heart.vertices), heart.adjacency
    return Setup(
        name="default", A=A, lap=operators.huiskamp_laplacian(v, adj), grad=edge_gradient(v, adj),
        vertices=v, adjacency=adj, dt=0.1, n_samples=n_samples, geo=geo,
    )


def farthest_nodes(vertices, k: int) -> list[int]:
    """``k`` well-separated nodes: node 0, then repeatedly the node farthest from those chosen."""
    v = np.asarray(vertices, float)
    chosen = [0]
    d = np.linalg.norm(v - v[0], axis=1)
    while len(chosen) < k:
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, np.linalg.norm(v - v[j], axis=1))
    return chosen


def operator_options(method: str, setup: Setup) -> dict:
    """The operators among laplacian/gradient/dt/vertices/adjacency that ``method`` accepts."""
    have = dict(laplacian=setup.lap, gradient=setup.grad, dt=float(setup.dt), vertices=setup.vertices,
                adjacency=setup.adjacency)
    accepted = ecgi_jax.method_options(method)
    return {k: v for k, v in have.items() if k in accepted}


def configurations(methods, rules, steps: int, pdl_steps: int) -> list[tuple[str, str, str | None, dict]]:
    """``(label, method, rule, options)`` for every run; ``methods`` are registered names or
    labels of :data:`NEURAL_VARIANTS`."""
    out = []
    for name in methods:
        if name in NEURAL_VARIANTS:
            method, extra = NEURAL_VARIANTS[name]
            out.append((name, method, None, dict(extra, steps=steps, progress=False)))
            continue
        opts = ecgi_jax.method_options(name)
        if name in NEURAL:
            n = pdl_steps if name == "pdl" else steps
            out.append((name, name, None, {"steps": n, **({"progress": False} if "progress" in opts else {})}))
        elif "lambda_rule" in opts:
            for rule in rules:
                if rule == "oracle" and "truth" not in opts:
                    continue
                if name == "spatiotemporal" and rule not in ("default", "gcv", "creso", "discrepancy", "oracle"):
                    continue  # its two-parameter grid supports these rules only
                if rule == "default":  # the method's own rule, as a user gets it
                    out.append((name, name, None, {}))
                else:
                    out.append((f"{name} [{rule}]", name, rule, {"lambda_rule": rule}))
        else:
            out.append((name, name, None, {}))
    return out


def all_methods() -> list[str]:
    """Every registered method plus the neural variants, registry order."""
    out = []
    for name in ecgi_jax.METHODS:
        out.append(name)
        out += [label for label, (m, _) in NEURAL_VARIANTS.items() if m == name]
    return out


def score(U_hat, U, dt: float) -> dict:
    """RE, MSE, temporal/spatial CC and activation-time error of ``U_hat`` against ``U``."""
    at = metrics.activation_time_error(U_hat, U, dt)
    return {
        "re": float(metrics.relative_error(U_hat, U)),
        "mse": float(metrics.mse(U_hat, U)),
        "cc": float(metrics.mean_correlation(U_hat, U, "time")),
        "cc_space": float(metrics.mean_correlation(U_hat, U, "space")),
        "at_mae": float(at.mae),
        "at_cc": float(at.correlation),
    }


def run_batch(Ys, A, method, opts, truth=None, seeds=None) -> tuple[list, float]:
    """``solve_batch`` of one method over stacked problems; ``truth (B, N, T)`` only if the rule
    is the oracle. Returns the solutions and the wall time per problem."""
    accepted = ecgi_jax.method_options(method)
    kw = dict(opts)
    if kw.get("lambda_rule") == "oracle":
        kw["truth"] = truth
    keys = [jax.random.key(s) for s in seeds] if ("key" in accepted and seeds is not None) else None
    t0 = time.perf_counter()
    sols = ecgi_jax.solve_batch(Ys, A, method=method, keys=keys, **kw)
    return sols, (time.perf_counter() - t0) / len(sols)


def meta(args) -> dict:
    """Machine, CPU count, device, JAX version, date and the arguments of the run."""
    return {
        "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "device": str(jax.devices()[0]), "jax": jax.__version__,
        "ecgi_jax": ecgi_jax.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def write_outputs(out: Path, rows: list[dict], info: dict, table: str, extra: dict | None = None, quiet: bool = False) -> None:
    """``results.json`` (meta + rows [+ extra]), ``results.csv`` and ``table.md``; prints the table
    unless ``quiet``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": info, "rows": rows, **(extra or {})}, indent=1, default=str))
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    (out / "table.md").write_text(table + "\n")
    if not quiet:
        print()
        print(table)


def apply_quick(parser, args, settings: dict) -> None:
    """``--quick``: set each of ``settings`` unless the user gave that option a non-default value."""
    for name, value in settings.items():
        if getattr(args, name) == parser.get_default(name):
            setattr(args, name, value)


def mean_std(sel: list[dict], key: str, fmt: str = ".3f") -> str:
    vals = [r[key] for r in sel if r.get(key) is not None]
    return f"{np.mean(vals):{fmt}} ± {np.std(vals):{fmt}}" if vals else "–"


# ----------------------------------------------------------------------------------------------
# the study


def noise_levels(args) -> list[tuple[str, float]]:
    return [("sigma", s) for s in args.sigmas] + [("snr_db", s) for s in args.snrs]


def noisy(key, Y_clean, kind: str, level: float):
    if kind == "sigma":
        return forward.add_noise(key, Y_clean, level)
    return forward.add_noise_snr(key, Y_clean, level)


def noise_label(kind: str, level: float) -> str:
    return f"σ={level:g}" if kind == "sigma" else f"{level:g} dB"


def run_geometry(setup: Setup, args, configs, on_method=None) -> tuple[list[dict], list[dict]]:
    """Rows and failures of every method on one geometry; ``on_method(rows, failures)`` is called
    after each method (the caller saves partial results, so a long sweep that is stopped keeps them)."""
    rows, failures = [], []
    levels = noise_levels(args)
    for pace in farthest_nodes(setup.vertices, args.n_pacing):
        case = make_case(jax.random.key(0), setup.A, setup.lap, [pace], sigma=0.0, dt=setup.dt, n_samples=setup.n_samples)
        Y_clean = np.asarray(case.Y_clean)
        problems, Ys = [], []
        for i, (kind, level) in enumerate(levels):
            for seed in args.seeds:
                Y = np.asarray(noisy(jax.random.fold_in(jax.random.key(seed), i), case.Y_clean, kind, level))
                problems.append(dict(kind=kind, level=level, seed=seed,
                                     sigma_eff=float(np.std(Y - Y_clean) / np.std(Y_clean))))
                Ys.append(Y)
        Ys = np.stack(Ys)
        truth = np.broadcast_to(np.asarray(case.U), (len(Ys),) + case.U.shape)
        for label, method, rule, opts in configs:
            all_opts = {**operator_options(method, setup), **opts}
            try:
                sols, per = run_batch(Ys, setup.A, method, all_opts, truth, [p["seed"] for p in problems])
            except Exception as exc:  # keep the study going; the failure is reported, not hidden
                msg = f"{type(exc).__name__}: {exc}"
                failures.append(dict(geometry=setup.name, pacing=pace, method=label, error=msg[:2000]))
                print(f"[{setup.name}] pace={pace} {label}: FAILED {msg[:300]}", flush=True)
                if on_method:
                    on_method(rows, failures)
                continue
            for p, sol in zip(problems, sols):
                d = sol.diagnostics
                row = dict(geometry=setup.name, pacing=pace, noise=noise_label(p["kind"], p["level"]), **p,
                           method=label, base_method=method, rule=rule, benchmark_only=rule == "oracle",
                           **score(sol.U, case.U, setup.dt), lam=d.get("lam", d.get("lam_s")),
                           time_s=per, batched=d.get("batched", True))
                rows.append(row)
            last = rows[-len(sols):]
            print(f"[{setup.name}] pace={pace} {label:32s} RE={np.mean([r['re'] for r in last]):.3f} "
                  f"CC={np.mean([r['cc'] for r in last]):.3f} ({per:.1f} s/problem)", flush=True)
            if on_method:
                on_method(rows, failures)
    return rows, failures


def table(rows: list[dict], failures: list[dict]) -> str:
    lines = ["| geometry | noise | method | RE | CC | AT err | AT cc | s/problem | n |", "|---|---|---|---|---|---|---|---|---|"]
    for geo in dict.fromkeys(r["geometry"] for r in rows):
        for noise in dict.fromkeys(r["noise"] for r in rows if r["geometry"] == geo):
            for m in dict.fromkeys(r["method"] for r in rows):
                sel = [r for r in rows if r["geometry"] == geo and r["noise"] == noise and r["method"] == m]
                if not sel:
                    continue
                name = m + (" (benchmark-only)" if sel[0]["benchmark_only"] else "")
                lines.append(
                    f"| {geo} | {noise} | {name} | {mean_std(sel, 're', '.3g')} | {mean_std(sel, 'cc')} | "
                    f"{mean_std(sel, 'at_mae', '.3g')} | {mean_std(sel, 'at_cc')} | {np.mean([r['time_s'] for r in sel]):.2f} | {len(sel)} |"
                )
    for f in failures:
        lines.append(f"| {f['geometry']} | – | {f['method']} | failed: {f['error'][:120]} | | | | | |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    """RE and CC against the effective noise level, one line per method, one row per geometry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geos = list(dict.fromkeys(r["geometry"] for r in rows))
    fig, axes = plt.subplots(len(geos), 2, figsize=(11, 4 * len(geos)), squeeze=False)
    for gi, geo in enumerate(geos):
        sub = [r for r in rows if r["geometry"] == geo]
        for m in dict.fromkeys(r["method"] for r in sub):
            pts = {}
            for r in sub:
                if r["method"] == m:
                    pts.setdefault(r["noise"], []).append(r)
            x = [np.mean([r["sigma_eff"] for r in v]) for v in pts.values()]
            order = np.argsort(x)
            for ax, key in zip(axes[gi], ("re", "cc")):
                y = [np.mean([r[key] for r in v]) for v in pts.values()]
                ax.plot(np.asarray(x)[order], np.asarray(y)[order], marker="o", label=m, ms=3,
                        ls="--" if sub and "oracle" in m else "-")
        for ax, key in zip(axes[gi], ("relative error", "mean temporal CC")):
            ax.set_xscale("log")
            ax.set_xlabel("noise std / std(AU)")
            ax.set_ylabel(key)
            ax.set_title(f"{geo} geometry")
            ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "noise_study")
    p.add_argument("--geometries", nargs="+", default=["pdl", "default"], choices=["pdl", "default"])
    p.add_argument("--default-size", type=int, nargs=3, default=[1000, 600, 352], metavar=("HEART", "TORSO", "LEADS"))
    p.add_argument("--n-samples", type=int, default=661, help="samples per beat (dt = 0.1)")
    p.add_argument("--sigmas", type=float, nargs="*", default=[0.05, 0.1, 0.2])
    p.add_argument("--snrs", type=float, nargs="*", default=[30.0, 20.0, 10.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-pacing", type=int, default=2)
    p.add_argument("--rules", nargs="+", default=["gcv", "lcurve", "oracle"])
    p.add_argument("--methods", nargs="+", default=None, help="registered names / variant labels (default: all)")
    p.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    p.add_argument("--steps", type=int, default=300, help="Adam steps of the neural methods")
    p.add_argument("--pdl-steps", type=int, default=None, help="steps of the P-DL baseline (default --steps)")
    p.add_argument("--quick", action="store_true",
                   help="small default geometry only, 300 samples, σ=0.1 and 20 dB, one seed and site, "
                        f"gcv + oracle, methods {', '.join(QUICK_METHODS)}, 20 steps (options given explicitly are kept)")
    args = p.parse_args(argv)
    if args.quick:
        apply_quick(p, args, dict(geometries=["default"], default_size=[300, 300, 120], n_samples=300, sigmas=[0.1],
                                  snrs=[20.0], seeds=[0], n_pacing=1, rules=["gcv", "oracle"], steps=20,
                                  methods=list(QUICK_METHODS)))
    methods = [m for m in (args.methods or all_methods()) if m not in args.skip]
    unknown = [m for m in methods if m not in ecgi_jax.METHODS and m not in NEURAL_VARIANTS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; registered: {', '.join(all_methods())}")
    configs = configurations(methods, args.rules, args.steps, args.pdl_steps or args.steps)

    rows, failures = [], []
    info = meta(args)
    info["methods_registered"] = list(ecgi_jax.METHODS)

    def save_partial(r, f):
        all_rows, all_failures = rows + r, failures + f
        info["complete"] = False
        write_outputs(args.out, all_rows, info, table(all_rows, all_failures), {"failures": all_failures}, quiet=True)

    for name in args.geometries:
        if name == "pdl":
            setup = pdl_setup(args.shared, args.n_samples)
        else:
            setup = default_setup(tuple(args.default_size), args.n_samples)
        r, f = run_geometry(setup, args, configs, on_method=save_partial)
        rows += r
        failures += f
    info["complete"] = True
    write_outputs(args.out, rows, info, table(rows, failures), {"failures": failures})
    if rows:
        figure(rows, args.out / "error_vs_noise.png")


if __name__ == "__main__":
    main()
