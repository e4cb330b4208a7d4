"""Robustness of the inverse solution to noise, to a wrong transfer matrix and to lead faults.

    python experiments/robustness.py [--out results/robustness] [--default-size 1000 600 352]
        [--sigmas 0.01 0.02 0.05 0.1 0.2 0.5] [--shifts 2 5 10] [--directions x y z]
        [--missing 0.1 0.25 0.5] [--n-bad 5] [--offset 1.0] [--base-sigma 0.05]
        [--seeds 0 1 2] [--n-pacing 2] [--neural] [--steps 300] [--quick]

Geometry: the built-in phantom (``geometry.default_heart_torso``), Huiskamp Laplacian, BEM
``A`` with ``reference="none"``; truth: an Aliev–Panfilov beat paced at one node (farthest-point
sites, as in ``noise_study.py``). Methods: Tikhonov-2 and spatiotemporal, both with the GCV λ
(no oracle: robustness is about what a user would get); EAND-ARN (``--steps`` Adam steps)
with ``--neural``. Studies (column ``study``):

* ``noise``: relative noise σ·std(AU) for each ``--sigmas``.
* ``shift``: the true heart sits ``d`` mm away from where the inverse believes it is: the data
  are simulated with ``A`` rebuilt by the BEM for the heart translated by ``d`` along each of
  ``--directions`` (the torso and electrodes stay), and solved with the nominal ``A``. Noise
  ``--base-sigma``. Level 0 is the correct ``A``.
* ``missing``: a random ``--missing`` fraction of the electrodes is dropped (rows of ``Y`` and
  ``A``; a new subset per seed). Noise ``--base-sigma``.
* ``bad-noise`` / ``bad-offset``: ``--n-bad`` random leads get 10× the noise, or a constant
  offset of ``--offset``·std(AU), and are *not* removed (nothing detects them). Noise
  ``--base-sigma`` on all leads.

Scores against the truth (``noise_study.score``): RE, CC, activation-time error. Writes
``results.json``, ``results.csv``, ``table.md`` (mean ± std over seeds and pacing sites per
study × level × method), ``re_vs_sigma.png`` and ``re_vs_shift.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from ecgi_jax import forward, geometry
from ecgi_jax.synthetic import make_case

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import (  # noqa: E402
    apply_quick, configurations, default_setup, farthest_nodes, mean_std, meta, operator_options, run_batch, score, write_outputs,
)

ROOT = Path(__file__).resolve().parents[1]
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def problems(args, case, setup, shifted: dict):
    """Yield ``(study, level, seed, Y (m, t), A_inverse (m, n))`` for every perturbed problem.

    ``shifted[(direction, d)]`` is the transfer matrix of the heart moved by ``d`` mm."""
    U, A = np.asarray(case.U), np.asarray(setup.A)
    Y_clean = A @ U
    s = float(np.std(Y_clean))
    m = A.shape[0]
    for seed in args.seeds:
        key = jax.random.key(seed)
        rng = np.random.default_rng(seed)
        for i, sigma in enumerate(args.sigmas):
            yield "noise", sigma, seed, np.asarray(forward.add_noise(jax.random.fold_in(key, i), Y_clean, sigma)), A
        base = lambda Yc, j: np.asarray(forward.add_noise(jax.random.fold_in(key, 1000 + j), Yc, args.base_sigma))  # noqa: E731
        # Noise scaled to std(AU) of the nominal data, so every study shares one noise level.
        yield "shift", 0.0, seed, base(Y_clean, 0), A
        for j, ((direction, d), A_true) in enumerate(shifted.items()):
            Yc = A_true @ U
            Y = Yc + args.base_sigma * s * np.asarray(jax.random.normal(jax.random.fold_in(key, 2000 + j), Yc.shape))
            yield f"shift-{direction}", d, seed, Y.astype(np.float32), A
        for frac in args.missing:
            keep = np.sort(rng.choice(m, size=m - int(round(frac * m)), replace=False))
            yield "missing", frac, seed, base(Y_clean, 1)[keep], A[keep]
        bad = rng.choice(m, size=args.n_bad, replace=False)
        Y = base(Y_clean, 2)
        # Independent noise adds in quadrature: sqrt(1 + 99) = 10× the base std on the bad leads.
        extra = np.sqrt(99.0) * args.base_sigma * s * np.asarray(jax.random.normal(jax.random.fold_in(key, 3000), (len(bad), Y.shape[1])))
        Yn = Y.copy()
        Yn[bad] += extra
        yield "bad-noise", args.n_bad, seed, Yn, A
        Yo = Y.copy()
        Yo[bad] += args.offset * s
        yield "bad-offset", args.n_bad, seed, Yo, A


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "robustness")
    p.add_argument("--default-size", type=int, nargs=3, default=[1000, 600, 352], metavar=("HEART", "TORSO", "LEADS"))
    p.add_argument("--n-samples", type=int, default=661)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5])
    p.add_argument("--shifts", type=float, nargs="*", default=[2.0, 5.0, 10.0], help="heart shifts in mm")
    p.add_argument("--directions", nargs="*", default=["x", "y", "z"], choices=list(AXES))
    p.add_argument("--missing", type=float, nargs="*", default=[0.1, 0.25, 0.5], help="fractions of leads dropped")
    p.add_argument("--n-bad", type=int, default=5, help="number of bad leads")
    p.add_argument("--offset", type=float, default=1.0, help="bad-lead offset in units of std(AU)")
    p.add_argument("--base-sigma", type=float, default=0.05, help="noise of the shift/missing/bad-lead studies")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-pacing", type=int, default=2)
    p.add_argument("--neural", action="store_true", help="add EAND-ARN")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--quick", action="store_true",
                   help="small geometry (300/300/120), 300 samples, σ ∈ {0.01, 0.1, 0.5}, shift 5 mm along x, "
                        "25 % missing, one seed and site, 20 steps (options given explicitly are kept)")
    args = p.parse_args(argv)
    if args.quick:
        apply_quick(p, args, dict(default_size=[300, 300, 120], n_samples=300, sigmas=[0.01, 0.1, 0.5], shifts=[5.0],
                                  directions=["x"], missing=[0.25], seeds=[0], n_pacing=1, steps=20))
    for f in args.missing:
        if not 0 <= f < 1:
            p.error(f"--missing fractions must lie in [0, 1); got {f}")

    geo = geometry.default_heart_torso(*args.default_size)
    setup = default_setup(geo=geo, n_samples=args.n_samples)
    if args.n_bad > setup.A.shape[0]:
        p.error(f"--n-bad {args.n_bad} exceeds the {setup.A.shape[0]} leads")
    shifted = {}
    for direction in args.directions:
        for d in args.shifts:
            t0 = time.perf_counter()
            shift = tuple(d * c for c in AXES[direction])
            shifted[(direction, d)] = np.asarray(default_setup(geo=geo, shift=shift).A)
            print(f"BEM for heart shifted {d:g} mm along {direction}: {time.perf_counter() - t0:.1f} s", flush=True)

    methods = ["tikhonov-2", "spatiotemporal"] + (["eand-arn"] if args.neural else [])
    configs = configurations(methods, ["gcv"], args.steps, args.steps)
    rows, failures = [], []
    for pace in farthest_nodes(setup.vertices, args.n_pacing):
        case = make_case(jax.random.key(0), setup.A, setup.lap, [pace], sigma=0.0, dt=setup.dt, n_samples=setup.n_samples)
        probs = list(problems(args, case, setup, shifted))
        # One batch per group of equal shapes and one shared A (or a stack of A's of equal shape).
        groups: dict = {}
        for pr in probs:
            groups.setdefault((pr[0] in ("missing",), pr[3].shape), []).append(pr)
        for label, method, rule, opts in configs:
            all_opts = {**operator_options(method, setup), **opts}
            for (per_problem_A, _), group in groups.items():
                Ys = np.stack([g[3] for g in group])
                A = np.stack([g[4] for g in group]) if per_problem_A else setup.A
                try:
                    sols, per = run_batch(Ys, A, method, all_opts, seeds=[g[2] for g in group])
                except Exception as exc:  # reported, the study goes on
                    msg = f"{type(exc).__name__}: {exc}"
                    failures.append(dict(pacing=pace, method=label, studies=sorted({g[0] for g in group}), error=msg[:2000]))
                    print(f"pace={pace} {label}: FAILED {msg[:300]}", flush=True)
                    continue
                for (study, level, seed, _, _), sol in zip(group, sols):
                    rows.append(dict(study=study, level=level, seed=seed, pacing=pace, method=label,
                                     **score(sol.U, case.U, setup.dt), time_s=per))
            mine = [r for r in rows if r["method"] == label and r["pacing"] == pace]
            for study in dict.fromkeys(r["study"] for r in mine):
                sel = [r for r in mine if r["study"] == study]
                levels = " ".join(f"{lv:g}:{np.mean([r['re'] for r in sel if r['level'] == lv]):.3f}"
                                  for lv in dict.fromkeys(r["level"] for r in sel))
                print(f"pace={pace} {label:22s} {study:10s} RE by level {levels}", flush=True)

    info = meta(args)
    info["n_leads"], info["n_heart"] = int(setup.A.shape[0]), int(setup.A.shape[1])
    write_outputs(args.out, rows, info, table(rows, failures), {"failures": failures})
    if rows:
        figures(rows, args.out)


def table(rows, failures) -> str:
    lines = ["| study | level | method | RE | CC | AT err | AT cc | n |", "|---|---|---|---|---|---|---|---|"]
    for study in dict.fromkeys(r["study"] for r in rows):
        for level in dict.fromkeys(r["level"] for r in rows if r["study"] == study):
            for m in dict.fromkeys(r["method"] for r in rows):
                sel = [r for r in rows if r["study"] == study and r["level"] == level and r["method"] == m]
                if sel:
                    lines.append(f"| {study} | {level:g} | {m} | {mean_std(sel, 're', '.3g')} | {mean_std(sel, 'cc')} | "
                                 f"{mean_std(sel, 'at_mae', '.2f')} | {mean_std(sel, 'at_cc')} | {len(sel)} |")
    for f in failures:
        lines.append(f"| {', '.join(f['studies'])} | – | {f['method']} | failed: {f['error'][:120]} | | | | |")
    return "\n".join(lines)


def figures(rows, out: Path) -> None:
    """RE vs σ (log–log) and RE vs heart shift (one line per method × direction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))

    def curve(study, m):
        sel = [r for r in rows if r["study"] == study and r["method"] == m]
        levels = sorted({r["level"] for r in sel})
        mean = [np.mean([r["re"] for r in sel if r["level"] == lv]) for lv in levels]
        std = [np.std([r["re"] for r in sel if r["level"] == lv]) for lv in levels]
        return np.asarray(levels), np.asarray(mean), np.asarray(std)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in methods:
        x, y, e = curve("noise", m)
        ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, label=m)
    ax.set(xscale="log", yscale="log", xlabel="noise σ (× std(AU))", ylabel="relative error", title="RE vs noise")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "re_vs_sigma.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in methods:
        x0, y0, _ = curve("shift", m)  # level 0: the correct A
        for study in sorted({r["study"] for r in rows if r["study"].startswith("shift-")}):
            x, y, e = curve(study, m)
            ax.errorbar(np.concatenate([x0, x]), np.concatenate([y0, y]), yerr=np.concatenate([[0.0] * len(x0), e]),
                        marker="o", ms=3, capsize=2, label=f"{m}, {study[6:]}")
    ax.set(xlabel="heart shift (mm)", ylabel="relative error", title="RE vs transfer-matrix error (wrong heart position)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "re_vs_shift.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
