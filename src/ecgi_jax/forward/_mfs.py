"""Method of fundamental solutions (MFS): a meshless heart -> torso forward model.

Model (Wang & Rudy 2006, Ann Biomed Eng 34:1272)
------------------------------------------------
The same homogeneous volume conductor as the BEM (:mod:`ecgi_jax.forward._bem`): Dirichlet data
on the heart surface, zero normal current on the insulated torso. The potential in the conductor
is written as a constant plus point sources placed *outside* the conductor,

    phi(x) = a_0 + sum_j a_j / (4 pi |x - y_j|),

which is harmonic between the surfaces for any coefficients. The virtual sources ``y_j`` are the
heart nodes deflated towards the heart centroid (``heart_scale < 1``: inside the heart) and the
torso nodes inflated away from the torso centroid (``torso_scale > 1``: outside the torso).

Fit (collocation at the nodes)
------------------------------
Rows: ``phi(x_i) = phi_H,i`` at every heart node and ``dphi/dn(x_k) = 0`` at every torso node
(``n``: area-weighted vertex normal). The Neumann rows are multiplied by the RMS radius of the
torso about its centroid so both row blocks have the units of a potential, and every source
column is scaled to unit 2-norm; the result is invariant to translating or uniformly scaling the
geometry. The constant ``a_0`` is *not* regularised: it is eliminated exactly (it only enters the
heart rows), so a constant heart potential is reproduced exactly (``A @ 1 = 1`` before
referencing). The remaining, severely ill-conditioned system ``B a = b`` is solved by Tikhonov
regularisation in its SVD,

    a = V diag(s / (s^2 + lam^2)) U^T b,    lam = rcond * s_max,

(``regularization="tikhonov"``), or by truncation of the singular values below ``rcond * s_max``
(``"tsvd"``). Because the data only ever enter through ``b``, this gives a linear map, and the
transfer matrix is the source field evaluated at the torso nodes times that map. Assembly and
solve are float64 numpy (host-side preprocessing, like the BEM).
"""

from __future__ import annotations

import numpy as np

from ..geometry import Mesh
from ._bem import electrode_indices, _check_geometry, winding_number

__all__ = ["mfs_transfer_matrix", "mfs_sources"]

_FOUR_PI = 4.0 * np.pi


def _scaled_about_centroid(mesh: Mesh, factor: float) -> np.ndarray:
    c = mesh.vertices.mean(axis=0)
    return c + factor * (mesh.vertices - c)


def mfs_sources(heart: Mesh, torso: Mesh, *, heart_scale: float = 0.6, torso_scale: float = 1.4, check: bool = True):
    """Virtual source positions ``(heart_sources (N_h, 3), torso_sources (N_t, 3))``.

    Heart nodes scaled by ``heart_scale`` about the heart's vertex centroid, torso nodes by
    ``torso_scale`` about the torso's. With ``check`` the heart sources must lie inside the
    heart and the torso sources outside the torso (winding numbers), otherwise ``ValueError``:
    a source inside the conductor would put a singularity into the modelled field.
    """
    if not 0.0 < heart_scale < 1.0:
        raise ValueError(f"heart_scale must lie in (0, 1) (sources inside the heart); got {heart_scale}.")
    if not torso_scale > 1.0:
        raise ValueError(f"torso_scale must be > 1 (sources outside the torso); got {torso_scale}.")
    ys_h = _scaled_about_centroid(heart, heart_scale)
    ys_t = _scaled_about_centroid(torso, torso_scale)
    if check:
        bad_h = winding_number(ys_h, heart) < 0.5
        if bad_h.any():
            raise ValueError(
                f"{int(bad_h.sum())} deflated heart sources lie outside the heart surface (the heart "
                "is not star-shaped about its centroid at this scale); use a smaller heart_scale."
            )
        bad_t = winding_number(ys_t, torso) > 0.5
        if bad_t.any():
            raise ValueError(
                f"{int(bad_t.sum())} inflated torso sources lie inside the torso surface; use a "
                "larger torso_scale."
            )
    return ys_h, ys_t


def _fields(points, sources, normals=None):
    """``1/(4 pi r)`` (or its normal derivative at ``points`` along ``normals``) for all pairs."""
    d = points[:, None, :] - sources[None, :, :]
    r = np.linalg.norm(d, axis=2)
    if normals is None:
        return 1.0 / (_FOUR_PI * r)
    return -np.einsum("ijk,ik->ij", d, normals) / (_FOUR_PI * r**3)


def mfs_transfer_matrix(
    heart: Mesh,
    torso: Mesh,
    *,
    electrodes=None,
    reference: str = "mean",
    heart_scale: float = 0.6,
    torso_scale: float = 1.4,
    regularization: str = "tikhonov",
    rcond: float = 1e-3,
    dtype=np.float64,
    check: bool = True,
) -> np.ndarray:
    """MFS transfer matrix ``A`` with ``phi_torso = A @ phi_heart`` (module docstring).

    Same conventions as :func:`ecgi_jax.forward.transfer_matrix` (the BEM), so the two are
    interchangeable.

    Parameters
    ----------
    heart, torso : Mesh
        Closed, outward-oriented surfaces in one frame; the heart strictly inside the torso.
    electrodes : int array or bool mask, optional
        Torso vertex indices, or a boolean mask with one entry per torso vertex; only those rows
        are returned (after referencing). At least one electrode.
    reference : {"mean", "none"}
        ``"mean"``: zero mean over all torso nodes (``A @ 1 = 0``); ``"none"``: the heart's
        reference (``A @ 1 = 1``, exact because the constant term is not regularised).
    heart_scale : float in (0, 1)
        Heart sources = heart nodes scaled by this factor about the heart centroid.
    torso_scale : float > 1
        Torso sources = torso nodes scaled by this factor about the torso centroid.
    regularization : {"tikhonov", "tsvd"}
        How the ill-conditioned collocation system is solved (module docstring).
    rcond : float > 0
        Relative regularisation: ``lam = rcond * s_max`` (Tikhonov) or the truncation level
        (TSVD). Default ``1e-3``: on the built-in heart-torso phantom ``rcond <= 1e-5`` lets
        the nodal fit blow up (``max_i sum_j |A_ij|`` > 0.6 vs 0.40 for the BEM, and ~ 1e4
        at 1e-10), while on concentric spheres ``1e-3`` still gives < 0.2 % error for degrees
        l <= 3 (642 nodes) and 2 % at l = 6; ``1e-2`` damps degree 3 by ~ 2 %.
    dtype : output dtype (assembly is float64).
    check : validate orientation, containment, source placement and electrodes.

    Returns
    -------
    ``(n_torso, n_heart)`` or ``(n_electrodes, n_heart)`` array.

    Raises
    ------
    ValueError for bad meshes (as the BEM), sources on the wrong side of a surface, bad
    ``heart_scale``/``torso_scale``/``rcond``/``regularization``/``reference``/electrodes.
    """
    if reference not in ("mean", "none"):
        raise ValueError(f"reference must be 'mean' or 'none'; got {reference!r}.")
    if regularization not in ("tikhonov", "tsvd"):
        raise ValueError(f"regularization must be 'tikhonov' or 'tsvd'; got {regularization!r}.")
    if not (np.isfinite(rcond) and 0.0 < rcond < 1.0):
        raise ValueError(f"rcond must lie in (0, 1); got {rcond}.")
    if check:
        _check_geometry(heart, torso)
    e = None if electrodes is None else electrode_indices(electrodes, torso.n_vertices)
    ys_h, ys_t = mfs_sources(heart, torso, heart_scale=heart_scale, torso_scale=torso_scale, check=check)
    sources = np.concatenate([ys_h, ys_t])
    xh, xt = heart.vertices, torso.vertices
    n_h = heart.n_vertices

    length = np.sqrt(np.mean(np.sum((xt - xt.mean(axis=0)) ** 2, axis=1)))
    b_src = np.concatenate([_fields(xh, sources), length * _fields(xt, sources, torso.vertex_normals)])
    col = np.linalg.norm(b_src, axis=0)
    b_src = b_src / col
    # Eliminate the (unregularised) constant a_0, which appears in the heart rows only:
    # a_0 = mean over heart rows of (phi_H - B_src a). Projecting the heart rows onto zero mean
    # removes it from the least-squares problem exactly.
    proj_rows = b_src.copy()
    proj_rows[:n_h] -= proj_rows[:n_h].mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(proj_rows, full_matrices=False)
    lam = rcond * s[0]
    if regularization == "tikhonov":
        filt = s / (s**2 + lam**2)
    else:
        filt = np.where(s > lam, 1.0 / np.where(s > lam, s, 1.0), 0.0)
    # Right-hand side b = [phi_H - mean(phi_H); 0]: only the heart columns of U^T matter, after the
    # same centring.
    uh = u[:n_h] - u[:n_h].mean(axis=0, keepdims=True)
    coef = vt.T @ (filt[:, None] * uh.T)  # (n_sources, n_h): scaled source strengths per unit phi_H
    # a_0 = mean(phi_H - B_src,heart a), row vector over phi_H.
    a0 = np.full((1, n_h), 1.0 / n_h) - b_src[:n_h].mean(axis=0, keepdims=True) @ coef
    a = (_fields(xt, sources) / col) @ coef + a0
    if reference == "mean":
        a = a - a.mean(axis=0, keepdims=True)
    if e is not None:
        a = a[e]
    return np.ascontiguousarray(a, dtype=dtype)
