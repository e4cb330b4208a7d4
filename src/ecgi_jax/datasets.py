"""Loaders for the public heart–torso data sets used in ECGI studies.

Every loader takes the data directory as a parameter (nothing is downloaded, nothing is
hard-coded): e.g. ``load_pdl("../shared/data/pdl-heart-torso")``. Missing files raise
``FileNotFoundError`` naming the path; corrupt or truncated files, missing variables and arrays
of the wrong shape raise ``ValueError`` naming the file and the variable. ``.npz`` files are read
with ``allow_pickle=False`` and ``.mat`` files with ``scipy.io.loadmat``: no file can run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .geometry import Mesh, load_mat, reorient_outward

__all__ = [
    "PDLData", "load_pdl", "UtahSock490", "load_utah_sock490", "UtahSockTank1997", "load_utah_sock_tank_1997",
    "ECGSimNormalMale", "load_ecgsim_normal_male",
]


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
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("it holds a single array, not a .npz archive of named arrays")
            return {k: z[k] for k in z.files}
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError (object arrays), OSError
        raise ValueError(
            f"Could not read data file {p} (corrupt, truncated or not an .npz archive; object/pickled "
            f"arrays are refused): {type(exc).__name__}: {exc}"
        ) from exc


def _var(data: dict, name: str, path, shape=None) -> np.ndarray:
    """``data[name]`` from file ``path``, with a clear error if it is missing or mis-shaped.

    ``shape`` entries that are ``None`` match any length.
    """
    if name not in data:
        have = sorted(data)
        raise ValueError(
            f"Data file {path} has no variable {name!r} (found: {have[:12]}{'...' if len(have) > 12 else ''})."
        )
    value = data[name]
    if shape is not None:
        got = np.shape(value)
        if len(got) != len(shape) or any(w is not None and w != g for w, g in zip(shape, got)):
            want = tuple("any" if w is None else w for w in shape)
            raise ValueError(f"Variable {name!r} in {path} has shape {got}; expected {want}.")
    return value


def _mat_var(path, name: str, shape=None) -> np.ndarray:
    return _var(load_mat(path), name, path, shape)


def _mesh(points, triangles, path, name) -> Mesh:
    try:
        return Mesh(points, triangles)
    except ValueError as exc:
        raise ValueError(f"The {name} surface in {path} is not a valid mesh: {exc}") from exc


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
    from .operators import adjacency_from_sparse

    d = _dir(path)
    lap = sp.csr_matrix(_mat_var(d / "laplacian.mat", "lap"))
    n = lap.shape[0]
    if lap.shape != (n, n):
        raise ValueError(f"Variable 'lap' in {d / 'laplacian.mat'} has shape {lap.shape}; expected a square matrix.")
    return PDLData(
        vertices=np.asarray(_mat_var(d / "heart_coordinates.mat", "heart_coordinates", (n, 3)), np.float64),
        normals=np.asarray(_mat_var(d / "normals.mat", "normals", (n, 3)), np.float64),
        adjacency=adjacency_from_sparse(lap),
        laplacian=lap,
        transfer=np.asarray(_mat_var(d / "Z_BH.mat", "Z_BH", (None, n)), np.float64),
        times=np.asarray(_mat_var(d / "time.mat", "time"), np.float64).ravel(),
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
    f = _dir(path) / "npz" / "utah_sock490_qrs_beats.npz"
    z = _npz(f)
    v = lambda name: _var(z, name, f)  # noqa: E731
    names = [k.split("__", 1)[1] for k in z if k.startswith("potvals__")]
    beats = {
        n: UtahBeat(v(f"potvals__{n}"), v(f"at__{n}"), int(v(f"pacing_node__{n}")), v(f"badleads__{n}").astype(np.int64))
        for n in names
    }
    return UtahSock490(
        sock=reorient_outward(_mesh(v("sock_pts_tank_frame"), v("sock_closed_tri"), f, "sock")),
        sock_open_triangles=v("sock_open_tri").astype(np.int64),
        tank=reorient_outward(_mesh(v("tank_pts"), v("tank_tri"), f, "tank")),
        tank_electrodes=v("tank_measured_idx").astype(np.int64),
        lungs=(v("lungs_pts"), v("lungs_tri").astype(np.int64)),
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
    f = _dir(path) / "npz" / "utah1997_sock_tank.npz"
    z = _npz(f)
    v = lambda name: _var(z, name, f)  # noqa: E731
    return UtahSockTank1997(
        sock_vertices=v("sock_pts"),
        sock_triangles=v("sock_tri").astype(np.int64),
        tank=reorient_outward(_mesh(v("tank_pts"), v("tank_tri"), f, "tank")),
        transfer_scirun=v("A_tank_from_sock"),
        sock_potentials=v("epi_pot"),
    )


class ECGSimNormalMale(NamedTuple):
    """ECGSim's "normal male" ventricles and thorax with a known activation map (van Oosterom &
    Oostendorp 2004), as shipped with the SCIRun Forward/Inverse Toolkit.

    The source model is the equivalent double layer: ``bsp = transfer · TMP`` with the
    transmembrane potentials (mV) at the closed ventricular surface's nodes, WCT-referenced (the
    matrix's rows sum to ~0). Units as shipped: **metres** for both meshes (give
    ``length_unit="m"`` to :meth:`~ecgi_jax.operators.HeartModel.from_mesh`), mV, 1 ms samples.
    """

    heart: Mesh  # (257 nodes) closed epi + endo surface, metres, outward normals
    thorax: Mesh  # (300 nodes) the leads are its nodes, metres
    transfer: np.ndarray  # (300, 257) EDL transfer matrix (mV of body potential per mV of TMP)
    bsp: np.ndarray  # (300, 1000) body-surface potentials simulated from activation_times, mV, 1 ms
    activation_times: np.ndarray  # (257,) ms, the truth of bsp ("depol")
    tmp_parameters: dict  # ECGSim's default TMP-shape parameters per node ("user_*": dep, rep, ampl, rest, slopes)


def load_ecgsim_normal_male(path) -> ECGSimNormalMale:
    """Load ``npz/ecgsim_normal_male.npz`` from the ``fwdinvtoolkit`` directory."""
    f = _dir(path) / "npz" / "ecgsim_normal_male.npz"
    z = _npz(f)
    heart = reorient_outward(_mesh(_var(z, "heart_pts", f, (None, 3)), _var(z, "heart_tri", f, (None, 3)), f, "heart"))
    thorax = reorient_outward(_mesh(_var(z, "thorax_pts", f, (None, 3)), _var(z, "thorax_tri", f, (None, 3)), f, "thorax"))
    n, m = heart.n_vertices, thorax.n_vertices
    params = ("dep", "rep", "ampl", "rest", "depslope", "platslope", "repslope")
    return ECGSimNormalMale(
        heart=heart,
        thorax=thorax,
        transfer=np.asarray(_var(z, "A_act", f, (m, n)), np.float64),
        bsp=np.asarray(_var(z, "bsp", f, (m, None)), np.float64),
        activation_times=np.asarray(_var(z, "depol", f, (n,)), np.float64),
        tmp_parameters={k: np.asarray(_var(z, f"user_{k}", f, (n,)), np.float64) for k in params},
    )
