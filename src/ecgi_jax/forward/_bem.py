"""Potential-based boundary element method: heart-surface potentials -> torso potentials.

Model
-----
A homogeneous volume conductor fills the region between a closed heart (epicardial) surface
``S_H`` and a closed, insulated torso surface ``S_T`` (Barr, Ramsey & Spach 1977). Given the
potentials on ``S_H`` (Dirichlet) and zero normal current on ``S_T`` (Neumann), Green's second
identity gives, for a collocation point ``x`` on either surface,

    c(x) phi(x) = 1/(4 pi) \\oint [ (1/r) dphi/dnu  +  phi dOmega_nu(x) ]

where ``nu`` is the normal pointing *out of the conductor* (``+n_T`` on the torso, ``-n_H`` on
the heart, with ``n`` the surfaces' outward normals) and ``dOmega_nu`` the solid angle element.

Discretisation
--------------
* Linear (piecewise-linear, vertex based) elements for both the potential and the heart normal
  current ``Gamma = dphi/dn_H``; collocation at the vertices.
* Double-layer (solid angle) integrals of the linear shape functions over flat triangles are
  evaluated *analytically*: the solid angle by van Oosterom & Strackee (1983) and the linear
  weights by reducing ``\\int psi_k h / r^3`` to the solid angle plus edge line integrals
  ``\\int_edge dl / r`` (the same reduction as de Munck 1992). No quadrature is used, so near-field
  pairs (heart close to torso, neighbouring triangles) are exact for flat triangles.
* Single-layer integrals ``\\int psi_k / r`` are analytic as well (Wilton et al. 1984 in the
  form ``\\int 1/r = sum_i t_i gamma_i - h Omega``), including the weakly singular self terms where
  the collocation vertex is a corner of the triangle.
* The auto solid angle ``c(x)`` at each vertex is not computed geometrically: it follows from the
  row-sum property (a constant potential with zero current solves the problem), i.e. the rows of
  the full system sum to zero. This handles corners/edges of the polyhedral surfaces exactly and
  makes ``A @ 1 == 1`` hold to round-off before referencing.

With ``P`` the double-layer and ``G`` the single-layer blocks, eliminating ``Gamma_H`` gives

    A = -(P_TT - G_TH G_HH^{-1} P_HT)^{-1} (P_TH - G_TH G_HH^{-1} P_HH).

``P_TT`` alone is singular (its rows sum to zero: the Neumann problem defines torso potentials
only up to a constant), but the Dirichlet data on the heart fix that constant, and the Schur
complement ``M = P_TT - G_TH G_HH^{-1} P_HT`` is non-singular (``M @ 1 = G_TH G_HH^{-1} 1 != 0``),
so no Lynn & Timlake deflation is needed to *solve* (measured: cond(M) = 1.24 for a 40 mm heart
sphere in a 100 mm torso sphere, 642 + 642 nodes, while P_TT's smallest singular value is 1e-18;
see experiments/bem_validation.py). The output reference is then chosen explicitly (``reference``).

All assembly is float64 numpy, vectorised over (collocation point, triangle) pairs in chunks,
the chunks on one thread per usable core.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..geometry import Mesh, require_connected, require_outward

__all__ = [
    "transfer_matrix",
    "edl_transfer_matrix",
    "select_electrodes",
    "nearest_vertex_electrodes",
    "layer_integrals",
    "winding_number",
]

_FOUR_PI = 4.0 * np.pi


# --------------------------------------------------------------------------- triangle integrals
def _triangle_frames(mesh: Mesh):
    """Per-triangle constants shared by all collocation points."""
    c = mesh.corners  # (F, 3 corners, 3)
    cross = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    twice_area = np.linalg.norm(cross, axis=1)
    n = cross / twice_area[:, None]
    # Edge i runs from corner i to corner i+1 (counter-clockwise seen from +n).
    e = np.roll(c, -1, axis=1) - c  # (F, 3, 3)
    length = np.linalg.norm(e, axis=2)
    tangent = e / length[..., None]
    m_out = np.cross(tangent, n[:, None, :])  # in-plane outward edge normals
    # Gradient of the linear shape function of corner k: n x (y_{k+2} - y_{k+1}) / (2A).
    opp = np.roll(c, -2, axis=1) - np.roll(c, -1, axis=1)
    beta = np.cross(n[:, None, :], opp) / twice_area[:, None, None]
    return c, n, length, tangent, m_out, beta


def _dot(a, b):
    """Dot product of vectors stored as 3-tuples of component arrays (broadcasting)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _comp(v, shape_prefix=()):
    """Split ``(..., 3)`` into a 3-tuple of component arrays with ``shape_prefix`` broadcast axes."""
    return tuple(v[..., i].reshape(shape_prefix + v.shape[:-1]) for i in range(3))


def _chunk_integrals(x, frames, single: bool):
    """Double (and single) layer integrals of the 3 linear shape functions of every triangle.

    Returns ``dl (p, F, 3)`` = int psi_k (y-x).n / r^3 dS and, if ``single``, ``sl (p, F, 3)``
    = int psi_k / r dS, both *without* the 1/(4 pi). Vectors are kept as tuples of component
    arrays: numpy is much faster on that layout than on einsum over a trailing axis of size 3.
    """
    c, n, length, tangent, m_out, beta = frames
    one = (1,)
    # z_k = corner_k - x, shape (p, F, 3 corners) per component.
    z = tuple(c[None, :, :, i] - x[:, i][:, None, None] for i in range(3))
    r = np.sqrt(_dot(z, z))
    zb = tuple(np.roll(zi, -1, axis=2) for zi in z)  # z_{k+1}
    rb = np.roll(r, -1, axis=2)
    z0 = tuple(zi[..., 0] for zi in z)
    z1 = tuple(zi[..., 1] for zi in z)
    z2 = tuple(zi[..., 2] for zi in z)
    r0, r1, r2 = r[..., 0], r[..., 1], r[..., 2]
    zz = _dot(z, zb)  # (z0.z1, z1.z2, z2.z0)
    triple = _dot(z0, _cross(z1, z2))
    # van Oosterom & Strackee (1983). At a corner of the triangle both arguments are 0 -> 0.
    omega = 2.0 * np.arctan2(triple, r0 * r1 * r2 + zz[..., 0] * r2 + zz[..., 2] * r1 + zz[..., 1] * r0)
    nn = _comp(n, one)  # (1, F)
    h = _dot(z0, nn)  # signed distance of the plane from x, along n

    # gamma_i = int_edge_i dl / r = log((ra + rb + L) / (ra + rb - L)); the difference is
    # rewritten as 2 (ra rb + za.zb) / (ra + rb + L) to avoid cancellation far from the edge.
    s_plus = r + rb + length[None]
    q = 2.0 * (r * rb + zz)
    on_edge = q <= 1e-14 * s_plus**2  # x is an end point (or on the segment): contribution is 0
    gamma = np.log(s_plus**2 / np.where(on_edge, 1.0, q))
    gamma[on_edge] = 0.0

    bt = _comp(beta, one)  # (1, F, 3)
    mo = _comp(m_out, one)
    # Linear shape functions extended to x: psi_k(x) = -beta_k . z_{k+1}.
    psi_x = -_dot(bt, zb)
    v = tuple((gamma * mi).sum(axis=2, keepdims=True) for mi in mo)  # sum_i m_i gamma_i
    # int psi_k h/r^3 = psi_k(x) Omega + h beta_k . int rho/r^3, int rho/r^3 = -sum_i m_i gamma_i.
    dl = psi_x * omega[..., None] - h[..., None] * _dot(bt, v)
    if not single:
        return dl, None
    tg = _comp(tangent, one)
    t = _dot(z, mo)  # signed distance of x's projection to each edge line
    la = _dot(z, tg)
    lb = _dot(zb, tg)
    r0sq = t**2 + h[..., None] ** 2
    # int 1/r dS = sum_i t_i gamma_i - h Omega   (h Omega >= 0)
    i_inv = (t * gamma).sum(axis=2) - h * omega
    # int rho/r dS = sum_i m_i int_edge r dl = 1/2 sum_i m_i (lb rb - la ra + R0_i^2 gamma_i)
    edge_r = 0.5 * (lb * rb - la * r + r0sq * gamma)
    i_rho = tuple((edge_r * mi).sum(axis=2, keepdims=True) for mi in mo)
    sl = psi_x * i_inv[..., None] + _dot(bt, i_rho)
    return dl, sl


def _scatter(mesh: Mesh) -> sp.csr_matrix:
    """Sparse ``(3F, N)`` map from (triangle, corner) contributions to vertex columns."""
    f = mesh.n_triangles
    rows = np.arange(3 * f)
    return sp.csr_matrix((np.ones(3 * f), (rows, mesh.triangles.reshape(-1))), shape=(3 * f, mesh.n_vertices))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _over_row_chunks(fill, n_rows: int, rows_per_chunk: int) -> None:
    """Call ``fill(rows)`` for consecutive slices of ``n_rows`` rows, on one thread per core.

    numpy's elementwise kernels release the GIL, so the chunks of the (point, triangle) integrals
    run in parallel; each chunk writes only its own rows, so the result does not depend on the
    number of threads. Chunks of ~10^5 (point, triangle) pairs keep the temporaries in cache
    (400 000 pairs: 7.0 s, 100 000: 5.1 s single-threaded for a 1594-node heart seen from 3988 points).
    """
    slices = [slice(s, min(s + rows_per_chunk, n_rows)) for s in range(0, n_rows, rows_per_chunk)]
    workers = min(_usable_cores(), len(slices))
    if workers <= 1:
        for rows in slices:
            fill(rows)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, slices))  # re-raises a chunk's exception here


def layer_integrals(points, mesh: Mesh, *, single: bool = True, chunk_elements: int = 100_000):
    """Vertex-based double- and single-layer matrices of ``mesh`` seen from ``points``.

    ``D[i, j] = 1/(4 pi) int_S psi_j(y) (y - x_i).n(y) / |y - x_i|^3 dS`` (the solid angle
    weighted by the linear hat function of vertex ``j``; rows sum to the solid angle / 4 pi of
    the surface: 1 inside, 0 outside a closed outward surface) and
    ``S[i, j] = 1/(4 pi) int_S psi_j(y) / |y - x_i| dS``. Exact for flat triangles; a point that
    is a vertex of ``mesh`` gets the correct weakly singular single-layer value and zero
    double-layer contribution from the triangles it belongs to. ``chunk_elements``: (point,
    triangle) pairs per chunk; chunks run on one thread per usable core.

    Returns ``(D, S)`` (``S`` is ``None`` when ``single=False``), shape ``(len(points), N)``.
    """
    x = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    frames = _triangle_frames(mesh)
    scatter_t = _scatter(mesh).T.tocsr()  # (N, 3F)
    n_p, f = x.shape[0], mesh.n_triangles
    d_out = np.empty((n_p, mesh.n_vertices))
    s_out = np.empty((n_p, mesh.n_vertices)) if single else None

    def fill(rows):
        dl, sgl = _chunk_integrals(x[rows], frames, single)
        d_out[rows] = (scatter_t @ dl.reshape(dl.shape[0], 3 * f).T).T / _FOUR_PI
        if single:
            s_out[rows] = (scatter_t @ sgl.reshape(sgl.shape[0], 3 * f).T).T / _FOUR_PI

    _over_row_chunks(fill, n_p, max(1, chunk_elements // max(f, 1)))
    return d_out, s_out


def _solid_angle_sum(points, mesh: Mesh, chunk_elements: int = 100_000) -> np.ndarray:
    """Total solid angle / 4 pi of ``mesh`` seen from each point (no shape functions)."""
    x = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    c = mesh.corners
    out = np.empty(x.shape[0])

    def fill(rows):
        # van Oosterom & Strackee, on the component-tuple layout of _chunk_integrals.
        z0, z1, z2 = (tuple(c[None, :, k, i] - x[rows, i][:, None] for i in range(3)) for k in range(3))
        r0, r1, r2 = (np.sqrt(_dot(z, z)) for z in (z0, z1, z2))
        num = _dot(z0, _cross(z1, z2))
        den = r0 * r1 * r2 + _dot(z0, z1) * r2 + _dot(z0, z2) * r1 + _dot(z1, z2) * r0
        out[rows] = 2.0 * np.arctan2(num, den).sum(axis=1) / _FOUR_PI

    _over_row_chunks(fill, x.shape[0], max(1, chunk_elements // max(mesh.n_triangles, 1)))
    return out


def _check_points(points, name: str = "points") -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (P, 3) (or (3,)); got {p.shape}.")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contain NaN or Inf coordinates.")
    return p.reshape(-1, 3)


def winding_number(points, mesh: Mesh) -> np.ndarray:
    """Winding number of a closed outward ``mesh`` around each point: ~1 inside, ~0 outside.

    Args:
        points: ``(P, 3)`` finite coordinates (same frame and units as ``mesh``).
        mesh: a closed surface (an inward-facing one gives ~-1 inside).

    Returns ``(P,)`` float64. Raises ``ValueError`` for bad shapes or NaN/Inf points.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh; got {type(mesh).__name__}.")
    return _solid_angle_sum(_check_points(points), mesh)


# --------------------------------------------------------------------------- checks
def _check_geometry(heart: Mesh, torso: Mesh) -> None:
    for mesh, name in ((heart, "heart"), (torso, "torso")):
        if not isinstance(mesh, Mesh):
            raise TypeError(f"{name} must be an ecgi_jax.geometry.Mesh; got {type(mesh).__name__}.")
        require_connected(mesh, name)
        try:
            require_outward(mesh, name)
        except ValueError as err:
            raise ValueError(
                f"BEM needs closed, outward-oriented surfaces (orientation check failed): {err} "
                "Use ecgi_jax.geometry.reorient_outward(mesh)."
            ) from None
    w_heart = winding_number(heart.vertices, torso)
    outside = w_heart < 0.5
    if outside.any():
        raise ValueError(
            f"The heart must lie entirely inside the torso: {int(outside.sum())} of "
            f"{heart.n_vertices} heart vertices are outside the torso surface (first: "
            f"{np.flatnonzero(outside)[:5].tolist()}). Check units/frames (mm vs m) and placement."
        )
    w_torso = winding_number(torso.vertices, heart)
    inside = w_torso > 0.5
    if inside.any():
        raise ValueError(
            f"Heart and torso surfaces intersect: {int(inside.sum())} torso vertices lie inside "
            "the heart surface."
        )


def electrode_indices(electrodes, n_torso: int) -> np.ndarray:
    """Torso vertex indices (int64) from indices or a boolean mask over the torso vertices."""
    e = np.asarray(electrodes)
    if e.ndim != 1:
        raise ValueError(f"electrodes must be a 1-D array of torso vertex indices; got shape {e.shape}.")
    if e.dtype.kind == "b":
        # A mask, not indices: True/False must not be read as the indices 1/0.
        if e.size != n_torso:
            raise ValueError(
                f"a boolean electrode mask needs one entry per torso vertex: got length {e.size}, "
                f"the torso has {n_torso} vertices."
            )
        e = np.flatnonzero(e)
    if e.size == 0:
        raise ValueError(
            "at least one electrode is needed; got an empty electrode selection "
            "(no indices, or a mask with no True entry)."
        )
    if not np.issubdtype(e.dtype, np.integer):
        if not np.all(np.mod(e, 1) == 0):
            raise ValueError("electrodes must be integer torso vertex indices.")
    e = e.astype(np.int64)
    if e.min() < 0 or e.max() >= n_torso:
        raise ValueError(
            f"electrode indices must lie in [0, {n_torso - 1}] (torso vertices); found range "
            f"[{e.min()}, {e.max()}]."
        )
    return e


# --------------------------------------------------------------------------- BEM
def bem_blocks(heart: Mesh, torso: Mesh) -> dict:
    """Assemble the BEM blocks (no checks). Returns a dict of float64 arrays and diagnostics.

    Keys: ``P_TT, P_TH, P_HT, P_HH`` (double-layer operators with auto solid angles on the
    diagonal), ``G_TH, G_HH`` (single-layer), ``c_T, c_H`` (auto solid angles / 4 pi, ~1/2 on
    smooth parts).
    """
    xt, xh = torso.vertices, heart.vertices
    om_tt, _ = layer_integrals(xt, torso, single=False)
    om_th, g_th = layer_integrals(xt, heart, single=True)
    om_ht, _ = layer_integrals(xh, torso, single=False)
    om_hh, g_hh = layer_integrals(xh, heart, single=True)
    # Row-sum property: phi = 1, Gamma = 0 solves the problem, which fixes the auto solid angles.
    # Torso rows: c_T phi_T = Om_TT phi_T - Om_TH phi_H - G_TH Gamma
    # Heart rows: c_H phi_H = Om_HT phi_T - Om_HH phi_H - G_HH Gamma    (nu = -n_H on the heart)
    c_t = om_tt.sum(axis=1) - om_th.sum(axis=1)
    c_h = om_ht.sum(axis=1) - om_hh.sum(axis=1)
    p_tt = np.diag(c_t) - om_tt
    p_th = om_th
    p_ht = -om_ht
    p_hh = np.diag(c_h) + om_hh
    return dict(P_TT=p_tt, P_TH=p_th, P_HT=p_ht, P_HH=p_hh, G_TH=g_th, G_HH=g_hh, c_T=c_t, c_H=c_h)


def _checked_inputs(heart, torso, electrodes, dtype, check: bool):
    """The electrode rows (or ``None``) of a transfer matrix, after the checks both BEMs share."""
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"dtype must be a floating dtype (float32 or float64); got {np.dtype(dtype)}.")
    if check:
        _check_geometry(heart, torso)
    return None if electrodes is None else electrode_indices(electrodes, torso.n_vertices)


def transfer_matrix(
    heart: Mesh,
    torso: Mesh,
    *,
    electrodes=None,
    reference: str = "mean",
    dtype=np.float64,
    check: bool = True,
) -> np.ndarray:
    """Potential-based BEM transfer matrix ``A`` with ``phi_torso = A @ phi_heart``.

    Homogeneous conductor between the closed heart surface and the closed, insulated torso surface
    (Barr et al. 1977), linear elements, vertex collocation, analytic integrals (module docstring).

    Parameters
    ----------
    heart, torso : Mesh
        Closed surfaces with outward normals (``ecgi_jax.geometry.reorient_outward`` fixes
        inward ones), in the same frame and units. The heart must lie strictly inside the torso.
    electrodes : int array or bool mask, optional
        Torso vertex indices, or a boolean mask with one entry per torso vertex; if given, only
        those rows are returned (after referencing). At least one electrode.
    reference : {"mean", "none"}
        ``"mean"`` (default): torso potentials have **zero mean over all torso nodes** (column
        means of the full ``A`` removed), so ``A @ 1 = 0``. ``"none"``: the natural BEM
        reference, i.e. potentials share the (arbitrary) reference of the heart potentials; a
        constant on the heart then reappears unchanged on the torso (``A @ 1 = 1``).
    dtype : output dtype (assembly is always float64).
    check : validate orientation / containment / electrode indices (default True).

    Returns
    -------
    ``(n_torso, n_heart)`` or ``(n_electrodes, n_heart)`` array.

    Raises
    ------
    ValueError for open or inward-facing meshes (message mentions orientation and
    ``reorient_outward``), a surface with several disconnected components, a heart not inside the
    torso (checked with :func:`winding_number` at every heart vertex), intersecting surfaces, bad
    electrodes (out of range, non-integer, empty, or a mask of the wrong length), an unknown
    ``reference`` or a non-floating ``dtype``. TypeError for non-Mesh
    surfaces.
    """
    if reference not in ("mean", "none"):
        raise ValueError(f"reference must be 'mean' or 'none'; got {reference!r}.")
    e = _checked_inputs(heart, torso, electrodes, dtype, check)
    b = bem_blocks(heart, torso)
    # Eliminate the heart normal current: Gamma_H = -G_HH^{-1} (P_HH phi_H + P_HT phi_T).
    x = np.linalg.solve(b["G_HH"], np.concatenate([b["P_HH"], b["P_HT"]], axis=1))
    n_h = heart.n_vertices
    schur = b["P_TT"] - b["G_TH"] @ x[:, n_h:]
    rhs = b["P_TH"] - b["G_TH"] @ x[:, :n_h]
    a = -np.linalg.solve(schur, rhs)
    if reference == "mean":
        a = a - a.mean(axis=0, keepdims=True)
    if e is not None:
        a = a[e]
    return np.ascontiguousarray(a, dtype=dtype)


def select_electrodes(a_full, electrodes) -> np.ndarray:
    """Rows of a full torso transfer matrix at torso-vertex ``electrodes`` (validated indices).

    ``electrodes``: torso vertex indices, or a boolean mask of length ``n_torso`` (the rows of
    ``a_full``); at least one electrode. Raises ``ValueError`` otherwise.

    Note: the reference of ``a_full`` is kept (e.g. zero mean over *all* torso nodes), which is
    why selecting after referencing differs from re-referencing the electrode rows.
    """
    a = np.asarray(a_full)
    if a.ndim != 2:
        raise ValueError(f"a_full must be a 2-D (n_torso, n_heart) transfer matrix; got shape {a.shape}.")
    return a[electrode_indices(electrodes, a.shape[0])]


def nearest_vertex_electrodes(torso: Mesh, positions, *, max_distance: float | None = None) -> np.ndarray:
    """Indices of the torso vertices nearest to electrode ``positions (m, 3)`` (same frame).

    Raises ``ValueError`` if any electrode is farther than ``max_distance`` from every vertex.
    """
    from scipy.spatial import cKDTree

    p = _check_points(positions, "electrode positions")
    if max_distance is not None and not (np.isfinite(max_distance) and max_distance > 0):
        raise ValueError(f"max_distance must be a finite positive distance; got {max_distance!r}.")
    dist, idx = cKDTree(torso.vertices).query(p)
    if max_distance is not None and (dist > max_distance).any():
        bad = np.flatnonzero(dist > max_distance)
        raise ValueError(
            f"{bad.size} electrode(s) are farther than {max_distance} from the torso surface "
            f"(first: {bad[:5].tolist()}, distance {dist[bad[0]]:.3g})."
        )
    return idx.astype(np.int64)


def edl_transfer_matrix(
    heart: Mesh, torso: Mesh, *, electrodes=None, conductivity_ratio: float = 1.0, dtype=np.float64, check: bool = True
) -> np.ndarray:
    """Equivalent-double-layer (EDL) transfer matrix: transmembrane potentials on the closed
    myocardial surface -> torso potentials (the source model of ECGSim and SCIRun's
    activation-based inverse).

    Model (Geselowitz 1989; van Oosterom 2004): in a homogeneous conductor filling the insulated
    torso (myocardium and blood alike), the myocardium's currents equal a double layer on its
    closed surface ``S_v`` (epicardium and endocardium as one closed, outward surface) whose
    strength is proportional to the local TMP. Its potential in an infinite medium is
    ``Φ_∞(x) = κ ∫ V_m(y) (y − x)·n(y) / (4π |y − x|³) dS`` (``κ``: ``conductivity_ratio``,
    intracellular over bulk conductivity; negative over activated tissue, as electrograms are),
    and on the torso ``c(x) Φ(x) = Φ_∞(x) + (1/4π) ∮_{S_T} Φ dΩ``. Discretised with the linear
    elements and analytic solid angles of :func:`transfer_matrix`; the Neumann problem fixes
    ``Φ`` up to a constant, and the torso mean is taken zero (so ``A·1 = 0``: a uniform TMP
    produces no body potential, as a closed uniform double layer does not).

    Validated on concentric spheres against the analytic solution (``tests/test_bem.py``: for
    ``V_m = cos θ`` on a sphere of radius ``a`` inside an insulated sphere of radius ``b``,
    ``Φ = −κ (a/b)² cos θ`` on the torso) and compared with ECGSim's own matrix on its geometry
    (``test_edl_matrix_against_ecgsims_own``: entry correlation 0.96, 29 % apart after one scale;
    ECGSim's thorax is inhomogeneous).

    Args:
        heart: the closed myocardial surface (outward normals), inside ``torso``.
        torso: the closed torso surface (outward normals).
        electrodes: torso vertex indices or a boolean mask: only those rows are returned.
        conductivity_ratio: ``κ``, which only scales the matrix (a fitted gain absorbs it).
        dtype, check: as :func:`transfer_matrix`.

    Returns:
        ``(n_torso, n_heart)`` (or ``(n_electrodes, n_heart)``), mean-referenced over the torso.
    """
    if not (np.isfinite(conductivity_ratio) and conductivity_ratio > 0):
        raise ValueError(f"conductivity_ratio must be a positive number; got {conductivity_ratio!r}.")
    e = _checked_inputs(heart, torso, electrodes, dtype, check)
    xt = torso.vertices
    om_tt, _ = layer_integrals(xt, torso, single=False)
    d_th, _ = layer_integrals(xt, heart, single=False)
    # The torso alone bounds the conductor: a constant potential solves the source-free problem,
    # which fixes the auto solid angles c_T (rows of P sum to zero).
    p = np.diag(om_tt.sum(axis=1)) - om_tt
    n_t = torso.n_vertices
    # P is singular along the constant (Neumann); the rank-one deflation picks one solution and
    # the mean reference below removes whatever constant it carries.
    a = np.linalg.solve(p + np.full((n_t, n_t), 1.0 / n_t), conductivity_ratio * d_th)
    a = a - a.mean(axis=0, keepdims=True)
    if e is not None:
        a = a[e]
    return np.ascontiguousarray(a, dtype=dtype)
