"""Loaders for the public heart–torso data sets used in ECGI studies.

Every loader takes the data directory as a parameter (nothing is downloaded, nothing is
hard-coded): e.g. ``load_pdl("../shared/data/pdl-heart-torso")``. Missing files raise
``FileNotFoundError`` naming the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .geometry._io import load_mat
from .geometry._mesh import Mesh, reorient_outward

__all__ = ["PDLData", "load_pdl", "UtahSock490", "load_utah_sock490", "UtahSockTank1997", "load_utah_sock_tank_1997"]


def _dir(path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"Data directory {p} does not exist.")
    return p


def _npz(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No data file at {p}.")
    # allow_pickle=False: a data file must never be able to run code.
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class PDLData(NamedTuple):
    """The P-DL heart–torso set (Xie & Yao; MIT licence)."""

    vertices: np.ndarray  # (1094, 3) heart nodes, mm
    normals: np.ndarray  # (1094, 3) unit outward normals
    adjacency: tuple[np.ndarray, np.ndarray]  # 1-ring CSR (indptr, indices) from lap's sparsity
    laplacian: sp.csr_matrix  # (1094, 1094) shipped Huiskamp Laplacian
    transfer: np.ndarray  # (352, 1094) heart -> body transfer matrix
    times: np.ndarray  # (661,) sample times 0, 0.1, ..., 66 (AP units)

    @property
    def dt(self) -> float:
        return float(np.median(np.diff(self.times)))


def load_pdl(path) -> PDLData:
    """Load ``heart_coordinates.mat``, ``normals.mat``, ``laplacian.mat``, ``Z_BH.mat``, ``time.mat``."""
    from .operators._laplacian import adjacency_from_sparse

    d = _dir(path)
    lap = sp.csr_matrix(load_mat(d / "laplacian.mat")["lap"])
    return PDLData(
        vertices=np.asarray(load_mat(d / "heart_coordinates.mat")["heart_coordinates"], np.float64),
        normals=np.asarray(load_mat(d / "normals.mat")["normals"], np.float64),
        adjacency=adjacency_from_sparse(lap),
        laplacian=lap,
        transfer=np.asarray(load_mat(d / "Z_BH.mat")["Z_BH"], np.float64),
        times=np.asarray(load_mat(d / "time.mat")["time"], np.float64).ravel(),
    )


class UtahBeat(NamedTuple):
    potentials: np.ndarray  # (490, T) measured sock electrograms, mV, 1 kHz
    activation_times: np.ndarray  # (490,) ms on the same axis
    pacing_node: int  # 0-based sock node
    bad_leads: np.ndarray  # (k,) 0-based


class UtahSock490(NamedTuple):
    """Utah 490-lead sock (closed, tank frame), the tank, lungs and 17 measured paced QRS beats."""

    sock: Mesh  # closed sock in the tank frame, outward normals
    sock_open_triangles: np.ndarray  # (939, 3) the sock's open triangulation
    tank: Mesh  # outward normals
    tank_electrodes: np.ndarray  # (192,) recording electrodes, indices into tank nodes
    lungs: tuple[np.ndarray, np.ndarray]  # (points, triangles)
    beats: dict[str, UtahBeat]


def load_utah_sock490(path) -> UtahSock490:
    """Load ``npz/utah_sock490_qrs_beats.npz`` from the ``pulse-utah-sock490`` directory."""
    z = _npz(_dir(path) / "npz" / "utah_sock490_qrs_beats.npz")
    names = [k.split("__", 1)[1] for k in z if k.startswith("potvals__")]
    beats = {
        n: UtahBeat(z[f"potvals__{n}"], z[f"at__{n}"], int(z[f"pacing_node__{n}"]), z[f"badleads__{n}"].astype(np.int64))
        for n in names
    }
    return UtahSock490(
        sock=reorient_outward(Mesh(z["sock_pts_tank_frame"], z["sock_closed_tri"])),
        sock_open_triangles=z["sock_open_tri"].astype(np.int64),
        tank=reorient_outward(Mesh(z["tank_pts"], z["tank_tri"])),
        tank_electrodes=z["tank_measured_idx"].astype(np.int64),
        lungs=(z["lungs_pts"], z["lungs_tri"].astype(np.int64)),
        beats=beats,
    )


class UtahSockTank1997(NamedTuple):
    """The 1997 Utah sock (128 nodes), tank, SCIRun's sock→tank matrix and measured sock potentials."""

    sock_vertices: np.ndarray  # (128, 3); the shipped 253-face triangulation is not a valid surface
    sock_triangles: np.ndarray  # (253, 3) as shipped (see the data README: one odd face)
    tank: Mesh  # re-oriented outward (shipped inward)
    transfer_scirun: np.ndarray  # (771, 128)
    sock_potentials: np.ndarray  # (128, 21)


def load_utah_sock_tank_1997(path) -> UtahSockTank1997:
    """Load ``npz/utah1997_sock_tank.npz`` from the ``fwdinvtoolkit`` directory."""
    z = _npz(_dir(path) / "npz" / "utah1997_sock_tank.npz")
    return UtahSockTank1997(
        sock_vertices=z["sock_pts"],
        sock_triangles=z["sock_tri"].astype(np.int64),
        tank=reorient_outward(Mesh(z["tank_pts"], z["tank_tri"])),
        transfer_scirun=z["A_tank_from_sock"],
        sock_potentials=z["epi_pot"],
    )
