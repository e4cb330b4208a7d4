"""The ``ecgi-jax`` command line.

User mistakes (bad paths, bad values) are reported as one line on stderr with exit status 2, not
as a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _demo(args) -> int:
    import jax
    import numpy as np

    from . import forward, geometry, metrics, operators, solve, synthetic

    out = Path(args.out)
    t0 = time.perf_counter()
    _say("1/5 building the default heart-torso geometry ...")
    geo = geometry.default_heart_torso()
    lap = operators.huiskamp_laplacian(geo.heart.vertices, geo.heart.adjacency)
    _say(f"    heart {geo.heart.n_vertices} nodes, torso {geo.torso.n_vertices} nodes, {len(geo.electrodes)} electrodes")
    _say("2/5 boundary element transfer matrix ...")
    # Heart reference: a uniform heart potential gives the same uniform body potential, so the
    # mean of u (a transmembrane-like quantity) stays observable, as with the P-DL matrix.
    A = forward.transfer_matrix(geo.heart, geo.torso, electrodes=geo.electrodes, reference="none")
    _say(f"    A {A.shape}, built in {time.perf_counter() - t0:.1f} s so far")
    _say(f"3/5 simulating an Aliev-Panfilov beat paced at node {args.pacing}, noise sigma={args.sigma} ...")
    case = synthetic.make_case(
        jax.random.key(args.seed), A, lap, [args.pacing], sigma=args.sigma, n_samples=args.samples
    )
    results = {}
    _say("4/5 2nd-order Tikhonov (L-curve) ...")
    sols = {"tikhonov-2 (L-curve)": solve(case.Y, case.A, method="tikhonov-2", laplacian=lap, lambda_rule="lcurve")}
    _say(f"5/5 EAND-ARN ({args.steps} training steps) ...")
    sols["eand-arn"] = solve(
        case.Y, case.A, method="eand-arn", laplacian=lap, dt=0.1, vertices=geo.heart.vertices,
        adjacency=geo.heart.adjacency, steps=args.steps, key=jax.random.key(args.seed), progress=not args.quiet,
    )
    dt = float(case.dt)
    for name, sol in sols.items():
        at = metrics.activation_time_error(sol.potentials, case.U, dt)
        results[name] = {
            "relative_error": float(metrics.relative_error(sol.potentials, case.U)),
            "correlation_time": float(metrics.mean_correlation(sol.potentials, case.U, "time")),
            "activation_mae": float(at.mae),
            "time_s": float(sol.diagnostics["time_s"]),
        }
    _say("")
    _say(f"{'method':24s} {'RE':>7s} {'CC':>7s} {'AT err':>8s} {'time':>8s}")
    for name, r in results.items():
        _say(
            f"{name:24s} {r['relative_error']:7.3f} {r['correlation_time']:7.3f} "
            f"{r['activation_mae']:8.2f} {r['time_s']:7.1f}s"
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": "ecgi-jax demo",
        "geometry": "default_heart_torso",
        "pacing": args.pacing,
        "sigma": args.sigma,
        "samples": args.samples,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "results": results,
        "eand_arn": {k: v for k, v in sols["eand-arn"].diagnostics.items() if isinstance(v, (int, float, str, list))},
    }
    from .geometry import atomic_write

    text = json.dumps(summary, indent=2)
    atomic_write(out / "summary.json", lambda p: p.write_text(text))
    arrays = {"truth": np.asarray(case.U), **{k.split()[0]: np.asarray(s.potentials) for k, s in sols.items()}}
    atomic_write(out / "potentials.npz", lambda p: np.savez(p, **arrays))
    _say(f"\nwrote {out / 'summary.json'} and {out / 'potentials.npz'} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


def _simulate(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from . import geometry, operators
    from .ep import APParams, simulate

    if args.mesh:
        try:
            mesh = geometry.load_mesh(args.mesh)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read mesh {args.mesh}: {e}") from e
    else:
        mesh = geometry.default_heart_torso().heart
    if not 0 <= args.pacing < mesh.n_vertices:
        raise UserError(f"--pacing must be a node index in [0, {mesh.n_vertices - 1}]; got {args.pacing}.")
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    try:
        params = APParams(D=args.D).validate()
    except ValueError as e:
        raise UserError(str(e)) from e
    U, V = simulate(lap, jnp.zeros(mesh.n_vertices).at[args.pacing].set(1.0), params=params, dt=args.dt, n_samples=args.samples)
    U, V = np.asarray(U), np.asarray(V)
    np.savez(args.out, U=U, V=V, dt=args.dt, vertices=mesh.vertices, triangles=mesh.triangles)
    at = np.argmax(U > 0.5, axis=1) * args.dt
    _say(
        f"simulated {mesh.n_vertices} nodes x {args.samples} samples: u in [{U.min():.3f}, {U.max():.3f}], "
        f"activated {np.mean(U.max(axis=1) > 0.5):.0%} of nodes by t={at.max():.1f}; wrote {args.out}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecgi-jax", description="Inverse ECG modelling in JAX.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="default geometry -> simulate -> noisy ECG -> Tikhonov and EAND-ARN")
    d.add_argument("--pacing", type=int, default=123, help="pacing node of the simulated beat (default 123)")
    d.add_argument("--sigma", type=float, default=0.1, help="relative noise level (default 0.1)")
    d.add_argument("--samples", type=int, default=400, help="time samples, dt = 0.1 (default 400)")
    d.add_argument("--steps", type=int, default=300, help="EAND-ARN training steps (default 300)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)

    s = sub.add_parser("simulate", help="simulate an Aliev-Panfilov beat on a heart mesh")
    s.add_argument("--mesh", help="heart mesh (any meshio format); default: the built-in heart")
    s.add_argument("--pacing", type=int, default=0)
    s.add_argument("--samples", type=int, default=661)
    s.add_argument("--dt", type=float, default=0.1)
    s.add_argument("--D", type=float, default=10.0, help="diffusion coefficient (mm^2 per AP time unit)")
    s.add_argument("--out", default="simulation.npz")
    s.set_defaults(func=_simulate)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "sigma", 0.0) < 0 or getattr(args, "samples", 10) < 10 or getattr(args, "steps", 1) < 1:
        parser.error("--sigma must be >= 0, --samples >= 10 and --steps >= 1.")
    try:
        return args.func(args)
    except UserError as e:
        if args.debug:
            raise
        print(f"ecgi-jax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
