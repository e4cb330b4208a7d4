"""Comparison of our BEM with SCIRun's sock->tank matrix for the 1997 Utah torso-tank experiment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry import Mesh, reorient_outward

__all__ = ["utah1997_sock_mesh", "compare_utah1997"]


def utah1997_sock_mesh(sock_vertices, sock_triangles) -> tuple[Mesh, np.ndarray]:
    """The closed 128-node sock surface, with the shipped triangulation repaired.

    The shipped ``sock_tri`` has 253 faces instead of 2V - 4 = 252 because one face,
    (6, 118, 121), is listed twice *with the same orientation* (rows 194 and 246, 0-based), which
    makes its three edges appear three times. Dropping the repeated copy leaves a valid closed,
    consistently oriented surface of 252 faces; this changes no geometry (the repeated face would
    only double-count its own integrals). The result is re-oriented outward (the BEM needs it).

    Returns ``(mesh, dropped_rows)``.
    """
    t = np.asarray(sock_triangles, dtype=np.int64)
    _, first = np.unique(np.sort(t, axis=1), axis=0, return_index=True)
    keep = np.zeros(len(t), dtype=bool)
    keep[first] = True
    return reorient_outward(Mesh(sock_vertices, t[keep])), np.flatnonzero(~keep)


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def compare_utah1997(fwdinv_dir, *, electrodes=None, transfer=None) -> dict:
    """Relative Frobenius differences between our BEM and SCIRun's ``A_tank_from_sock``.

    Both matrices are compared (i) as they are: both are referenced like the heart (rows sum to
    1 = a constant sock potential reappears on the tank; SCIRun's rows sum to 1 within 1.5e-5)
    and (ii) after a common zero-mean-over-all-tank-nodes reference. ``electrodes`` (e.g. the 192
    Utah recording electrodes, from the pulse-utah-sock490 set) adds the same metrics on those
    rows. The 21 shipped sock potential frames are pushed through both matrices, and the predicted
    tank potentials are compared too. ``transfer`` lets a caller pass a precomputed matrix
    (``reference='none'``).
    """
    from ..datasets import load_utah_sock_tank_1997
    from ..forward import electrode_indices, transfer_matrix

    d = load_utah_sock_tank_1997(Path(fwdinv_dir))
    sock, dropped = utah1997_sock_mesh(d.sock_vertices, d.sock_triangles)
    a = transfer_matrix(sock, d.tank, reference="none") if transfer is None else np.asarray(transfer)
    s = np.asarray(d.transfer_scirun, dtype=np.float64)
    am, sm = a - a.mean(axis=0), s - s.mean(axis=0)
    p = np.asarray(d.sock_potentials, dtype=np.float64)
    out = {
        "n_sock": sock.n_vertices,
        "n_tank": d.tank.n_vertices,
        "dropped_sock_triangles": dropped.tolist(),
        "scirun_row_sum_max_dev": float(np.abs(s.sum(axis=1) - 1).max()),
        "ours_row_sum_max_dev": float(np.abs(a.sum(axis=1) - 1).max()),
        "rel_fro_all": _rel(a, s),
        "rel_fro_all_zero_mean": _rel(am, sm),
        "best_scale_scirun_over_ours": float((am * sm).sum() / (am * am).sum()),
        "rel_pred_all_zero_mean": _rel(am @ p, sm @ p),
        "rel_pred_all": _rel(a @ p, s @ p),
    }
    if electrodes is not None:
        e = electrode_indices(electrodes, d.tank.n_vertices)  # indices or a tank-node mask
        out.update(
            n_electrodes=int(e.size),
            rel_fro_electrodes=_rel(a[e], s[e]),
            rel_fro_electrodes_zero_mean=_rel(am[e], sm[e]),
            rel_pred_electrodes_zero_mean=_rel(am[e] @ p, sm[e] @ p),
        )
    # Per-row (per-tank-node) relative difference: where do the two disagree most?
    row = np.linalg.norm(am - sm, axis=1) / np.maximum(np.linalg.norm(sm, axis=1), 1e-300)
    out["rel_row_median"] = float(np.median(row))
    out["rel_row_p95"] = float(np.quantile(row, 0.95))
    return out
