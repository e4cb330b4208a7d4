"""The demo study behind ``ecgi-jax demo`` / ``make demo``: what a user can expect off the inverse crime."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

__all__ = ["run_demo"]


def _demo_times(U, dt, k=4):
    """``k`` sample indices spread over the truth's activation (10 % ... 95 % of activated nodes)."""
    import numpy as np

    from .metrics import activation_times

    at, active = (np.asarray(x) for x in activation_times(U, dt, return_mask=True))
    n_t = U.shape[1]
    if active.any():
        idx = np.quantile(at[active], np.linspace(0.1, 0.95, k)) / dt
    else:
        idx = np.linspace(0, n_t - 1, k)
    return sorted({int(np.clip(round(i), 0, n_t - 1)) for i in idx})


def run_demo(
    out,
    *,
    n_heart: int = 400,
    pacing: int = 123,
    sigma: float = 0.1,
    samples: int = 400,
    seed: int = 0,
    steps: int | None = None,
    figures: bool = True,
    xdmf: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict:
    """The demo study: a non-crime case on the built-in phantom, three methods, their scores and files.

    The truth is a Mitchell–Schaeffer beat paced at node ``pacing`` on a 4× finer heart mesh with
    its own Laplacian and BEM (:mod:`ecgi_jax.noncrime`), observed with noise ``sigma``; the
    inverse uses the ``n_heart``-node mesh and its own BEM. Tikhonov-2 and spatiotemporal
    regularization (CRESO) and EAND-ARN (defaults; ``steps`` overrides its training steps) are scored
    (relative error, temporal correlation, activation-time error, wall time; EAND-ARN's start
    alone too). Writes under ``out``: each solution (``.npz``, and XDMF per ``xdmf``),
    ``potentials.npz``, ``summary.json`` and, with ``figures``, four PNG figures. ``say`` receives
    the progress lines (``print`` by default).

    Returns the summary (the content of ``summary.json``).

    Raises:
        ValueError: ``sigma < 0``, ``samples < 10``, ``steps < 1``, ``n_heart < 100`` or a pacing
            node outside the mesh.
    """
    if sigma < 0 or samples < 10 or (steps is not None and steps < 1) or n_heart < 100:
        raise ValueError("--sigma must be >= 0, --samples >= 10, --steps >= 1 and --n-heart >= 100.")
    import jax
    import numpy as np

    from . import io, metrics, noncrime, solve

    out = Path(out)
    n_steps = 5 if figures else 4
    t0 = time.perf_counter()
    say(f"1/{n_steps} the built-in heart-torso phantom: the inverse's mesh and BEM, and a 4x finer truth ...")
    geo = noncrime.noncrime_geometry(n_heart=n_heart)
    if not 0 <= pacing < geo.n_nodes:
        raise ValueError(f"--pacing must be a heart node in [0, {geo.n_nodes - 1}]; got {pacing}.")
    say(f"    inverse: heart {geo.n_nodes} nodes, {len(geo.electrodes)} electrodes; truth: heart "
         f"{geo.heart_fine.n_vertices} nodes, torso {geo.torso_fine.n_vertices} ({time.perf_counter() - t0:.0f} s so far)")
    say(f"2/{n_steps} simulating a Mitchell-Schaeffer beat paced at node {pacing} on the fine mesh, noise sigma={sigma} ...")
    # Not the inverse crime: another ionic model, mesh, Laplacian and BEM than the inverse's.
    case = noncrime.make_noncrime_case(jax.random.key(seed), geo, pacing, sigma=sigma, n_samples=samples)
    say(f"3/{n_steps} 2nd-order Tikhonov and spatiotemporal regularization (CRESO) ...")
    sols = {
        "tikhonov-2": solve(case.Y, case.A, method="tikhonov-2", laplacian=case.laplacian),
        "spatiotemporal": solve(case.Y, case.A, method="spatiotemporal", laplacian=case.laplacian, dt=case.dt),
    }
    training = {} if steps is None else {"steps": steps}
    say(f"4/{n_steps} EAND-ARN (defaults{'' if steps is None else f', {steps} steps'}) ...")
    sols["eand-arn"] = solve(
        case.Y, case.A, method="eand-arn", laplacian=case.laplacian, dt=case.dt, vertices=case.vertices,
        adjacency=case.adjacency, key=jax.random.key(seed), progress=progress, **training,
    )
    dt = float(case.dt)
    labels = {"tikhonov-2": "tikhonov-2 (CRESO)", "spatiotemporal": "spatiotemporal (CRESO)", "eand-arn": "eand-arn"}
    results = {}
    for name, sol in sols.items():
        at = metrics.activation_time_error(sol.potentials, case.U, dt)
        results[labels[name]] = {
            "relative_error": float(metrics.relative_error(sol.potentials, case.U)),
            "correlation_time": float(metrics.mean_correlation(sol.potentials, case.U, "time")),
            "activation_mae": float(at.mae),
            "time_s": float(sol.diagnostics["time_s"]),
        }
    # The start EAND-ARN trained from, scored alone: what the training itself added.
    start = sols["eand-arn"].diagnostics.get("start_potentials")
    if start is not None:
        at = metrics.activation_time_error(start, case.U, dt)
        results[f"  its start ({sols['eand-arn'].diagnostics['start']})"] = {
            "relative_error": float(metrics.relative_error(start, case.U)),
            "correlation_time": float(metrics.mean_correlation(start, case.U, "time")),
            "activation_mae": float(at.mae), "time_s": None,
        }
    say("")
    say(f"{'method':24s} {'RE':>7s} {'CC':>7s} {'AT err':>8s} {'time':>8s}")
    for name, r in results.items():
        say(
            f"{name:24s} {r['relative_error']:7.3g} {r['correlation_time']:7.3f} "
            f"{r['activation_mae']:8.3g} " + ("" if r["time_s"] is None else f"{r['time_s']:7.1f}s")
        )
    say("")
    written = []
    U = np.asarray(case.U)
    times = np.arange(U.shape[1]) * dt
    for name, sol in sols.items():
        written += io.save_solution(out / f"{name}.npz", sol, geo.heart, times=times, truth=U, xdmf=xdmf)
    if figures:
        from . import plotting

        say(f"5/{n_steps} figures ...")
        fields = {"truth": U, **{labels[k]: np.asarray(s.potentials) for k, s in sols.items()}}
        # The pacing node, and the nodes activated halfway and last (among those that activate).
        at, active = (np.asarray(x) for x in metrics.activation_times(U, dt, return_mask=True))
        order = np.flatnonzero(active) if active.any() else np.arange(len(at))
        order = order[np.argsort(at[order], kind="stable")]
        nodes = list(dict.fromkeys([pacing, int(order[len(order) // 2]), int(order[-1])]))
        plotting.heart_maps(geo.heart, fields, _demo_times(U, dt), dt=dt, path=out / "heart_maps.png")
        plotting.activation_map(geo.heart, fields, dt=dt, path=out / "activation_map.png")
        plotting.time_courses(fields, nodes, dt, path=out / "time_courses.png")
        plotting.loss_curves(sols["eand-arn"].history, path=out / "loss_curves.png")
        written += [out / f for f in ("heart_maps.png", "activation_map.png", "time_courses.png", "loss_curves.png")]
    summary = {
        "command": "ecgi-jax demo",
        "geometry": "default_heart_torso (noncrime: Mitchell-Schaeffer truth, 4x finer mesh and its own BEM)",
        "truth": case.info,
        "pacing": pacing,
        "sigma": sigma,
        "samples": samples,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "results": results,
        "eand_arn": io._json_safe({k: v for k, v in sols["eand-arn"].diagnostics.items() if k != "start_potentials"}),
    }
    import json

    from .geometry import atomic_write

    text = json.dumps(summary, indent=2, allow_nan=False)
    written.append(atomic_write(out / "summary.json", lambda p: p.write_text(text)))
    arrays = {"truth": U, **{k: np.asarray(s.potentials) for k, s in sols.items()}}
    written.append(io.save_arrays(out / "potentials.npz", arrays))
    say(f"wrote {len(written)} files under {out}/ ({time.perf_counter() - t0:.0f} s in all):")
    say("    " + ", ".join(Path(p).name for p in written))
    return summary
