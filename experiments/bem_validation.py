"""Validate the potential-based BEM (ecgi_jax.forward.transfer_matrix).

1. Concentric spheres (heart radius a = 40 mm inside an insulated torso sphere b = 100 mm): the
   heart potential Y_lm maps to T_l Y_lm on the torso. Relative errors (zero-mean reference,
   worst over m in {-l, 0, l}) over icosphere refinements.
2. Utah 1997 sock -> tank: our matrix vs SCIRun's shipped ``A_tank_from_sock`` (relative Frobenius
   differences, overall and on the 192 recording electrodes of the tank, and for the predicted tank
   potentials of the 21 shipped sock frames).

Usage: python experiments/bem_validation.py [--shared ../shared] [--out results/bem_validation]
Writes ``<out>/bem_validation.json`` and prints tables. Runtime ~2 min on 2 cores (--quick: ~15 s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ecgi_jax.forward import bem_blocks, transfer_matrix
from ecgi_jax.geometry import icosphere
from ecgi_jax.validation import compare_utah1997, concentric_spheres_gain, real_sph_harm

REPO = Path(__file__).resolve().parents[1]
A_RAD, B_RAD = 40.0, 100.0
# (heart subdivisions, torso subdivisions). The diagonal (same level) is the convergence study:
# 162/162, 642/642, 2562/2562 nodes. Mixed levels show that the error is then dominated by the
# *geometric* error of the coarser inscribed polyhedron (it is a smaller sphere), see "vol-eq".
LEVELS = [(2, 2), (3, 3), (4, 4), (3, 2), (4, 3)]


def _volume_radius(mesh):
    return (3.0 * mesh.signed_volume / (4.0 * np.pi)) ** (1.0 / 3.0)


def sphere_errors(h, t, a, lmax=3, radii=(A_RAD, B_RAD)):
    """Worst relative error over m in {-l, 0, l} against T_l(radii) Y_lm, per degree l."""
    out = {}
    for l in range(lmax + 1):
        worst = 0.0
        for m in sorted({-l, 0, l}):
            got = a @ real_sph_harm(l, m, h.vertices)
            want = concentric_spheres_gain(l, *radii) * real_sph_harm(l, m, t.vertices)
            if l == 0:
                # Constant mode (T_0 = 1): check it in the heart reference, where it survives.
                err = np.abs(got - want).max() / np.abs(want).max()
            else:
                # Zero-mean reference: the node mean of Y_lm on an icosphere is not exactly 0.
                got, want = got - got.mean(), want - want.mean()
                err = np.linalg.norm(got - want) / np.linalg.norm(want)
            worst = max(worst, float(err))
        out[l] = worst
    return out


def run_spheres(levels):
    rows = []
    for hs, ts in levels:
        h, t = icosphere(hs, A_RAD), icosphere(ts, B_RAD)
        t0 = time.perf_counter()
        a = transfer_matrix(h, t, reference="none")
        dt = time.perf_counter() - t0
        errs = sphere_errors(h, t, a)
        # Same, against the gains of spheres with the polyhedra's volumes (removes the
        # geometric error of approximating the spheres, leaving the BEM discretisation error).
        radii = (_volume_radius(h), _volume_radius(t))
        errs_v = sphere_errors(h, t, a, radii=radii)
        rows.append(dict(n_heart=h.n_vertices, n_torso=t.n_vertices, seconds=round(dt, 2),
                         rel_err={str(k): v for k, v in errs.items()},
                         volume_radii_mm=[float(r) for r in radii],
                         rel_err_volume_radii={str(k): v for k, v in errs_v.items()}))
        print(f"  {h.n_vertices:5d} {t.n_vertices:5d} {dt:6.1f}  "
              + "  ".join(f"{v:.2e}" for v in errs.values()) + "  |  "
              + "  ".join(f"{v:.2e}" for k, v in errs_v.items() if k > 0), flush=True)
    return rows


def conditioning(hs=3, ts=3):
    """Condition numbers: P_TT alone is singular (Neumann), the Schur complement is not."""
    h, t = icosphere(hs, A_RAD), icosphere(ts, B_RAD)
    b = bem_blocks(h, t)
    schur = b["P_TT"] - b["G_TH"] @ np.linalg.solve(b["G_HH"], b["P_HT"])
    sv_p = np.linalg.svd(b["P_TT"], compute_uv=False)
    return dict(
        n_heart=h.n_vertices,
        n_torso=t.n_vertices,
        P_TT_smallest_singular_values=[float(x) for x in sv_p[-2:]],
        cond_schur=float(np.linalg.cond(schur)),
        cond_G_HH=float(np.linalg.cond(b["G_HH"])),
        c_T_range=[float(b["c_T"].min()), float(b["c_T"].max())],
        c_H_range=[float(b["c_H"].min()), float(b["c_H"].max())],
    )


def _flat_subdivide(mesh):
    """Split each triangle in 4 at edge midpoints *without* moving them (same polyhedron).

    Returns the finer mesh and the sparse (n_fine, n_coarse) linear interpolation, so that
    ``A_fine @ I`` acts on the same piecewise-linear heart potentials as ``A_coarse``.
    """
    import scipy.sparse as sp

    from ecgi_jax.geometry import Mesh

    f, v = mesh.triangles, mesh.vertices
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, inv = np.unique(e, axis=0, return_inverse=True)
    n, k = len(v), len(uniq)
    mm = inv.reshape(3, -1).T + n
    a, b, c = f.T
    ab, bc, ca = mm.T
    nf = np.concatenate([np.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    rows = np.concatenate([np.arange(n), n + np.arange(k), n + np.arange(k)])
    cols = np.concatenate([np.arange(n), uniq[:, 0], uniq[:, 1]])
    vals = np.concatenate([np.ones(n), np.full(2 * k, 0.5)])
    interp = sp.csr_matrix((vals, (rows, cols)), shape=(n + k, n))
    return Mesh(np.vstack([v, (v[uniq[:, 0]] + v[uniq[:, 1]]) / 2]), nf), interp


def utah_refinement(fwd):
    """Self-convergence of our sock->tank matrix under flat refinement of the sock.

    The heart data stay the same piecewise-linear functions on the same polyhedron; only the
    heart normal current (and collocation) gets finer, so the change measures the discretisation
    error that a 128-node sock carries (shared by any linear-element BEM on that mesh, SCIRun's
    included).
    """
    from ecgi_jax.datasets import load_utah_sock_tank_1997
    from ecgi_jax.validation import utah1997_sock_mesh

    d = load_utah_sock_tank_1997(fwd)
    sock, _ = utah1997_sock_mesh(d.sock_vertices, d.sock_triangles)
    s = d.transfer_scirun
    rel = lambda x, y: float(np.linalg.norm(x - y) / np.linalg.norm(y))  # noqa: E731
    prev = transfer_matrix(sock, d.tank, reference="none")
    out, mesh, interp = [], sock, None
    for level in (1, 2):
        mesh, step = _flat_subdivide(mesh)
        interp = step if interp is None else step @ interp
        a = transfer_matrix(mesh, d.tank, reference="none") @ interp
        out.append(dict(level=level, n_sock=mesh.n_vertices, rel_change_vs_previous=rel(a, prev),
                        rel_fro_vs_scirun=rel(a, s)))
        print(f"  sock refined x{level} ({mesh.n_vertices} nodes): change vs previous "
              f"{out[-1]['rel_change_vs_previous']:.4f}, vs SCIRun {out[-1]['rel_fro_vs_scirun']:.4f}", flush=True)
        prev = a
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="shared/ folder with data/")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bem_validation")
    ap.add_argument("--quick", action="store_true", help="skip the 2562-node sphere levels")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"a_mm": A_RAD, "b_mm": B_RAD,
              "gains": {str(l): float(concentric_spheres_gain(l, A_RAD, B_RAD)) for l in range(4)}}

    print(f"Concentric spheres a={A_RAD} mm, b={B_RAD} mm; T_l = "
          + ", ".join(f"{v:.4f}" for v in result["gains"].values()))
    print("  relative error vs analytic (l=0: max abs, heart reference; l>=1: L2, zero mean; worst m)")
    print("  heart torso   sec   l=0       l=1       l=2       l=3       |  vol-eq radii: l=1  l=2  l=3")
    result["spheres"] = run_spheres([lv for lv in LEVELS if not (args.quick and 4 in lv)])
    result["conditioning"] = conditioning()
    c = result["conditioning"]
    print(f"Conditioning (642/642): P_TT smallest singular values {c['P_TT_smallest_singular_values']}, "
          f"cond(Schur) {c['cond_schur']:.3g}, cond(G_HH) {c['cond_G_HH']:.3g}")

    fwd = args.shared / "data" / "fwdinvtoolkit"
    if (fwd / "npz" / "utah1997_sock_tank.npz").is_file():
        sock490 = args.shared / "data" / "pulse-utah-sock490" / "npz" / "utah_sock490_qrs_beats.npz"
        e = None
        if sock490.is_file():
            # Same 771-node tank (identical node coordinates); its README names the 192 electrodes.
            with np.load(sock490, allow_pickle=False) as z:
                e = z["tank_measured_idx"].astype(np.int64)
        t0 = time.perf_counter()
        r = compare_utah1997(fwd, electrodes=e)
        r["seconds"] = round(time.perf_counter() - t0, 2)
        result["utah1997"] = r
        print("Utah 1997 sock (128) -> tank (771) vs SCIRun A_tank_from_sock:")
        print(f"  dropped duplicate sock triangle rows {r['dropped_sock_triangles']}")
        print(f"  row sums - 1: SCIRun {r['scirun_row_sum_max_dev']:.1e}, ours {r['ours_row_sum_max_dev']:.1e}")
        print(f"  rel Frobenius, all nodes (heart ref.)      {r['rel_fro_all']:.4f}")
        print(f"  rel Frobenius, all nodes (zero-mean ref.)  {r['rel_fro_all_zero_mean']:.4f}")
        if e is not None:
            print(f"  rel Frobenius, 192 electrodes (heart ref.) {r['rel_fro_electrodes']:.4f}")
            print(f"  rel Frobenius, 192 electrodes (zero mean)  {r['rel_fro_electrodes_zero_mean']:.4f}")
        print(f"  per-row rel diff: median {r['rel_row_median']:.4f}, 95th pct {r['rel_row_p95']:.4f}")
        print(f"  best scalar SCIRun ~ s * ours: s = {r['best_scale_scirun_over_ours']:.4f}")
        print(f"  predicted tank potentials (21 frames), zero mean: {r['rel_pred_all_zero_mean']:.4f}"
              + (f"; electrodes {r['rel_pred_electrodes_zero_mean']:.4f}" if e is not None else ""))
        if not args.quick:
            print("  discretisation check (flat sock refinement, same piecewise-linear sock data):")
            result["utah1997_sock_refinement"] = utah_refinement(fwd)
    else:
        print(f"Utah 1997 data not found under {fwd}: comparison skipped.")
        result["utah1997"] = None

    path = args.out / "bem_validation.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
