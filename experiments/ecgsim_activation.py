"""Activation times on ECGSim's normal male, in physical units from start to end.

    python experiments/ecgsim_activation.py [--shared ../shared] [--out results/ecgsim_activation]
        [--sigmas 0.05] [--seeds 0 1] [--window 120] [--methods ...] [--time-scale 10] [--quick]

Data (``ecgi_jax.datasets.load_ecgsim_normal_male``; ``fwdinvtoolkit/README.md``): ECGSim's closed
ventricular surface (257 nodes, epi + endo, **metres**), its equivalent-double-layer (EDL) transfer
matrix to 300 thorax nodes (WCT-referenced: rows sum to ~0), the body potentials it simulated
(mV, 1 ms samples) and the activation times behind them (7–93 ms). Nothing here comes from the
Aliev–Panfilov model: the truth is ECGSim's own TMP waveforms, so every method is off the inverse
crime in its ionic model (the forward matrix is the one that made the data: no geometry error).

The run: the QRS window (``--window`` ms from the first sample), the first sample's potential taken
as each lead's baseline, white noise ``σ`` relative to the data's spread (``--sigmas``, seeds
``--seeds``). The heart model is built from the mesh in metres with ``length_unit="m"`` and the
recordings' spacing of 1 ms with ``time_unit="ms"`` (one AP time unit = ``--time-scale`` ms,
10 by default: ``operators.DEFAULT_MS_PER_AP``), so every reported time is in ms.

Methods, each with its defaults:

* classical: they reconstruct the TMP up to its spatial mean at each instant, which an EDL matrix
  cannot see (``A·1 = 0``); Tikhonov-1/2, Greensite and spatiotemporal take the zero-mean
  solution (``classical.pin_constant_mode``). A node's activation time is the TMP's steepest
  upstroke, which that mean, smooth in time, hardly moves (a half-range crossing would: it
  anti-correlates with the truth);
* ``activation-based``: its fitted activation times;
* ``eand-arn`` and ``ap-shooting`` with ``observation="gain-offset"``: they reconstruct a
  normalised TMP ``u``; the data are ``g·A·u + b`` with the TMP's amplitude as gain (fitted), and
  ``u``'s steepest upstrokes are scored.

Scores: activation-time mean absolute error (ms) and Pearson correlation against ``depol``; wall
time. Writes ``results.json``, ``results.csv`` and ``table.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import ecgi_jax
from ecgi_jax import ep, forward
from ecgi_jax.datasets import load_ecgsim_normal_male
from ecgi_jax.operators import HeartModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_study import apply_quick, mean_std, meta, write_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("tikhonov-0", "tikhonov-2", "tsvd", "spatiotemporal", "greensite", "activation-based", "ap-shooting", "eand-arn")
OBSERVED = ("ap-shooting", "eand-arn")  # fit a gain and offsets: they reconstruct a normalised TMP


def scores(at, truth) -> dict:
    """Activation-time MAE (ms) and Pearson correlation (0 for a constant map)."""
    cc = float(np.corrcoef(at, truth)[0, 1]) if at.std() > 0 else 0.0
    return {"at_mae_ms": float(np.mean(np.abs(at - truth))), "at_cc": cc}


def run(method: str, Y, A, heart: HeartModel, key, observation: str) -> tuple[np.ndarray, dict]:
    options = {"observation": observation} if method in OBSERVED else {}
    if method == "eand-arn":
        options.update(key=key, progress=False)
    sol = ecgi_jax.solve(Y, A, method=method, heart=heart, **options)
    if method == "activation-based":
        at = np.asarray(sol.diagnostics["activation_times"], np.float64)
    else:  # steepest upstroke, 1 ms samples: times in ms
        at = np.asarray(ep.activation_times(sol.potentials, 1.0, method="upstroke"), np.float64)
    # The start's choices too: which start, and (template) the sites its fronts left and how many refits.
    kept = ("observation_gain", "start", "pacing_node", "template_sites", "template_front_rounds")
    extra = {k: sol.diagnostics[k] for k in kept if k in sol.diagnostics}
    return at, {"result": sol.result.value, **extra}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "ecgsim_activation")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.05])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--window", type=int, default=120, help="QRS window, ms from the first sample")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--time-scale", type=float, default=None, help="ms per AP time unit (default 10)")
    p.add_argument("--observation", default="gain-offset", help="of ap-shooting and eand-arn (identity: the data are A u)")
    p.add_argument("--quick", action="store_true", help="one seed, Tikhonov-0, activation-based and EAND-ARN")
    args = p.parse_args(argv)
    if args.quick:
        apply_quick(p, args, {"seeds": [0], "methods": ["tikhonov-0", "activation-based", "eand-arn"]})

    data = load_ecgsim_normal_male(args.shared / "data" / "fwdinvtoolkit")
    heart = HeartModel.from_mesh(data.heart, dt=1.0, length_unit="m", time_unit="ms", time_scale=args.time_scale)
    A = data.transfer.astype(np.float32)
    clean = data.bsp[:, : args.window] - data.bsp[:, :1]  # each lead's first sample as its baseline
    truth = data.activation_times
    rows, info = [], meta(args)
    for sigma in args.sigmas:
        for seed in args.seeds:
            key = jax.random.key(seed)
            Y = np.asarray(forward.add_noise(jax.random.fold_in(key, 1), clean.astype(np.float32), sigma))
            for method in args.methods:
                row = {"method": method, "sigma": sigma, "seed": seed}
                t0 = time.perf_counter()
                try:
                    at, extra = run(method, Y, A, heart, key, args.observation)
                    row.update(scores(at, truth), **extra)
                except ValueError as exc:  # e.g. a penalty sharing the EDL matrix's null vector
                    row["error"] = str(exc).split(". ")[0]
                row["time_s"] = time.perf_counter() - t0
                rows.append(row)
                print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    lines = ["| method | σ | runs | AT MAE (ms) | AT CC | time s | note |", "|---|---|---|---|---|---|---|"]
    for sigma in args.sigmas:
        for method in args.methods:
            sel = [r for r in rows if r["method"] == method and r["sigma"] == sigma]
            ok = [r for r in sel if "error" not in r]
            note = sel[0]["error"] if len(ok) < len(sel) else ""
            lines.append(
                f"| {method} | {sigma:g} | {len(ok)}/{len(sel)} | {mean_std(ok, 'at_mae_ms', '.1f')} | "
                f"{mean_std(ok, 'at_cc', '.3f')} | {mean_std(sel, 'time_s', '.0f')} | {note} |"
            )
    write_outputs(args.out, rows, info, "\n".join(lines))


if __name__ == "__main__":
    main()
