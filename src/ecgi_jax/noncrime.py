"""Cases that do not commit the inverse crime: the truth comes from models the inverse does not use.

:func:`ecgi_jax.synthetic.make_case` draws its truth from the Aliev–Panfilov model on the very
mesh, Laplacian and transfer matrix that the inverse then uses, which flatters every method that
assumes that model. Here the truth differs from the inverse's model at every stage a real study
does:

* **ionic model**: Mitchell–Schaeffer (default) or Fenton–Karma, calibrated to the AP model's
  conduction velocity and APD (:mod:`ecgi_jax.ep._ionic`), with their own waveforms. Fenton–Karma's
  upstroke front is ~1 mm wide: on the default truth mesh (~3 mm spacing) its wave blocks, and
  :func:`make_noncrime_case` says so; it needs ``refine=2`` (~16× the inverse's nodes);
* **heart mesh**: the truth lives on a nested refinement of the inverse's heart (~ 4× the nodes,
  new nodes on the smooth surface), with the **cotangent** Laplacian and a finer time step (the
  ionic model's own sub-step, 0.007 AP units or less, against the inverse's 0.02); the inverse gets
  the coarse mesh and Huiskamp's 1-ring Laplacian, and the truth restricted to the coarse nodes;
* **forward model**: the truth's body potentials come from a BEM on the fine heart and a refined
  torso; the inverse gets the coarse mesh's own BEM matrix — never the truth's;
* **what real studies add**: the true heart shifted and rotated against the model's, electrodes
  displaced along the torso surface, white or spatially correlated noise given as σ or SNR, a
  few bad leads, an APD gradient along the heart (waveforms that are not one shape), and beats
  started at several sites, at once or one after another (``site=(a, b, c), onsets=(0, 1, 2)``),
  as a normal beat starts from the Purkinje system.

Build the geometry once (:func:`noncrime_geometry`, ~20 s for the fine BEM at the defaults), then
draw cases from it (:func:`make_noncrime_case`; the geometry errors through
:func:`truth_transfer`, one fine BEM each). Everything is deterministic from the keys given.

Example::

    geo = noncrime.noncrime_geometry()
    case = noncrime.make_noncrime_case(jax.random.key(0), geo, site=123, sigma=0.1)
    sol = solve(case.Y, case.A, method="tikhonov-2", laplacian=case.laplacian)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from ._types import check_key
from .ep import IONIC_MODELS, simulate_ionic
from .forward import correlated_noise, moved_heart, transfer_matrix
from .geometry import Mesh, default_heart_torso
from .operators import SparseOperator, cotangent_laplacian, huiskamp_laplacian

__all__ = ["NoncrimeGeometry", "NoncrimeCase", "noncrime_geometry", "truth_transfer", "truth_beat", "make_noncrime_case"]


class NoncrimeGeometry(NamedTuple):
    """The inverse's model (coarse) and the truth's (fine) of one anatomy.

    Attributes:
        heart, torso, electrodes: the inverse's meshes (mm) and electrode indices into ``torso``.
        A: the inverse's transfer matrix ``(m, n)`` (BEM on ``heart``/``torso``, reference "none").
        laplacian: the inverse's Huiskamp Laplacian on ``heart``.
        heart_fine, torso_fine: nested refinements (their first vertices are the coarse ones).
        laplacian_fine: the truth's cotangent Laplacian on ``heart_fine``.
        A_fine: the truth's transfer matrix from ``heart_fine`` to the nominal electrodes on
            ``torso_fine`` (no geometry error; see :func:`truth_transfer` for shifted hearts).
        shape: name of the built-in shape (:data:`ecgi_jax.geometry.SHAPES`).
    """

    heart: Mesh
    torso: Mesh
    electrodes: np.ndarray
    A: np.ndarray
    laplacian: SparseOperator
    heart_fine: Mesh
    torso_fine: Mesh
    laplacian_fine: SparseOperator
    A_fine: np.ndarray
    shape: str

    @property
    def n_nodes(self) -> int:
        return self.heart.n_vertices


@dataclasses.dataclass(frozen=True)
class NoncrimeCase:
    """One beat whose truth the inverse's model did not generate.

    Attributes:
        U: true potentials on the inverse's nodes ``(n, t)`` (the fine truth restricted).
        Y_clean, Y: the truth's body potentials without / with noise ``(m, t)``.
        A, laplacian, vertices, adjacency: what the inverse gets (coarse BEM, Huiskamp Laplacian).
        dt: sample spacing (AP time units).
        site: the pacing site (index of an inverse node; the truth excites the fine nodes within
            ``pacing_radius`` mm of the same material point), or a tuple of them for a beat
            started at several sites (at once, or at their ``info["onsets"]``), as a normal beat
            is, from the Purkinje system.
        bad_leads: indices of the leads made bad.
        info: how the case was made (ionic model, noise, geometry errors).
    """

    U: jax.Array
    Y_clean: jax.Array
    Y: jax.Array
    A: jax.Array
    laplacian: SparseOperator
    vertices: np.ndarray
    adjacency: tuple
    dt: float
    site: int | tuple[int, ...]
    bad_leads: np.ndarray
    info: dict

    @property
    def site_xyz(self) -> np.ndarray:
        """The pacing site's position ``(3,)``, or the sites' ``(k, 3)``."""
        return self.vertices[np.asarray(self.site)]


def noncrime_geometry(
    shape: str = "biventricular", *, n_heart: int = 642, n_torso: int = 600, n_electrodes: int = 352,
    refine: int = 1, torso_refine: int = 1,
) -> NoncrimeGeometry:
    """Build the coarse (inverse) and fine (truth) models of one built-in anatomy.

    ``refine`` / ``torso_refine``: nested refinements of the truth's heart / torso (each ~ 4× the
    nodes; at least 1 for the heart, so that the truth's mesh differs from the inverse's).
    """
    for name, value, least in (("n_heart", n_heart, 12), ("n_torso", n_torso, 12), ("n_electrodes", n_electrodes, 1)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}; got {value!r}.")
    if not isinstance(refine, (int, np.integer)) or refine < 1:
        raise ValueError(f"refine must be an integer >= 1 (the truth needs a finer heart mesh than the inverse); got {refine!r}.")
    coarse = default_heart_torso(n_heart, n_torso, n_electrodes, shape=shape)
    fine = default_heart_torso(n_heart, n_torso, n_electrodes, shape=shape, refine=refine, torso_refine=torso_refine)
    A = transfer_matrix(coarse.heart, coarse.torso, electrodes=coarse.electrodes, reference="none")
    A_fine = transfer_matrix(fine.heart, fine.torso, electrodes=fine.electrodes, reference="none")
    lap = huiskamp_laplacian(coarse.heart.vertices, coarse.heart.adjacency)
    return NoncrimeGeometry(
        coarse.heart, coarse.torso, coarse.electrodes, A, lap, fine.heart, fine.torso,
        cotangent_laplacian(fine.heart), A_fine, shape,
    )


def _surface_points(torso: Mesh, points: np.ndarray):
    """Closest points on ``torso`` to ``points``: ``(triangle, barycentric (k, 3))``.

    Searched over the triangles around the nearest vertices (enough for points near the surface).
    """
    tree = cKDTree(torso.vertices)
    _, near = tree.query(points, k=min(8, torso.n_vertices))
    vert_tris = [[] for _ in range(torso.n_vertices)]
    for f, tri in enumerate(torso.triangles):
        for v in tri:
            vert_tris[v].append(f)
    tris, bary = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    for i, p in enumerate(points):
        best = (np.inf, 0, None)
        for f in {f for v in near[i] for f in vert_tris[v]}:
            b = _closest_barycentric(torso.vertices[torso.triangles[f]], p)
            d = np.linalg.norm(b @ torso.vertices[torso.triangles[f]] - p)
            if d < best[0]:
                best = (d, f, b)
        tris[i], bary[i] = best[1], best[2]
    return tris, bary


def _closest_barycentric(tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Projection onto the plane, clamped into the triangle (exact enough for small jitters).
    a, b, c = tri
    m = np.stack([b - a, c - a], axis=1)
    st = np.linalg.lstsq(m, p - a, rcond=None)[0]
    s, t = np.clip(st, 0.0, 1.0)
    if s + t > 1.0:
        s, t = s / (s + t), t / (s + t)
    return np.array([1.0 - s - t, s, t])


def truth_transfer(
    geometry: NoncrimeGeometry, key=None, *, shift_mm: float = 0.0, rotation_deg: float = 0.0,
    electrode_jitter_mm: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """The truth's transfer matrix ``(m, n_fine)`` under geometry errors, and what was drawn.

    The true heart is the fine heart rotated by ``rotation_deg`` about a random axis through its
    centroid and shifted by ``shift_mm`` in a random direction; each electrode sits
    ``electrode_jitter_mm`` from its nominal torso node in a random tangential direction (its row
    interpolates the fine torso's BEM rows linearly over the triangle it lands on). Directions are
    drawn with ``key``; with no error at all this is ``geometry.A_fine`` (no BEM is run).

    Raises:
        ValueError: negative magnitudes, or a shift that pushes the heart through the torso.
    """
    for name, value in (("shift_mm", shift_mm), ("rotation_deg", rotation_deg), ("electrode_jitter_mm", electrode_jitter_mm)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite magnitude >= 0; got {value!r}.")
    if shift_mm == rotation_deg == electrode_jitter_mm == 0:
        return geometry.A_fine, {"shift": [0.0, 0.0, 0.0], "rotation_axis": None, "rotation_deg": 0.0, "electrode_jitter_mm": 0.0}
    if key is None:
        raise ValueError("truth_transfer draws directions for the geometry errors: pass key=jax.random.key(...).")
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    unit = lambda: (lambda v: v / np.linalg.norm(v))(rng.normal(size=3))  # noqa: E731
    axis, shift = unit(), shift_mm * unit()
    moved = moved_heart(geometry.heart_fine, np.concatenate([shift, np.deg2rad(rotation_deg) * axis]))
    torso = geometry.torso_fine
    full = transfer_matrix(moved, torso, reference="none")  # raises when the heart leaves the torso
    nominal = torso.vertices[geometry.electrodes]
    if electrode_jitter_mm > 0:
        normals = torso.vertex_normals[geometry.electrodes]
        d = rng.normal(size=nominal.shape)
        d -= np.einsum("ij,ij->i", d, normals)[:, None] * normals  # tangential
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        tris, bary = _surface_points(torso, nominal + electrode_jitter_mm * d)
        corners = torso.triangles[tris]
        A = np.einsum("mk,mkn->mn", bary, full[corners])
    else:
        A = full[geometry.electrodes]
    info = {"shift": shift.tolist(), "rotation_axis": axis.tolist(), "rotation_deg": float(rotation_deg),
            "electrode_jitter_mm": float(electrode_jitter_mm)}
    return A, info


def _pacing_sites(site, n: int) -> tuple[int, ...]:
    """``site`` (a node index or a non-empty sequence of them) as a tuple of distinct indices."""
    sites = (site,) if isinstance(site, (int, np.integer)) else tuple(site) if isinstance(site, (tuple, list)) else None
    if not sites or not all(isinstance(s, (int, np.integer)) and 0 <= s < n for s in sites) or len(set(sites)) < len(sites):
        raise ValueError(f"site must be a node index in [0, {n - 1}] or a tuple of distinct ones; got {site!r}.")
    return tuple(int(s) for s in sites)


def truth_beat(
    geometry: NoncrimeGeometry, site: int | tuple[int, ...], *, ionic: str = "mitchell-schaeffer", dt: float = 0.1,
    n_samples: int = 400, pacing_radius: float = 4.0, apd_dispersion: float = 0.0, onsets=None, dtype=None,
):
    """The true beat on the fine heart ``(n_fine, n_samples)``: ``ionic`` paced at ``site``.

    ``site`` is an index of the inverse's (coarse) heart, or a tuple of them (a beat started at
    several sites); the fine nodes within ``pacing_radius`` mm of any start excited (``u = 1``):
    all at t = 0, or each site at its time in ``onsets`` (one per site, AP time units ≥ 0; a
    normal beat's early sites start one after another). ``apd_dispersion``: a linear gradient of the action
    potential duration along the heart's long axis, ``APD × (1 ± apd_dispersion/2)`` from one end
    to the other (Mitchell–Schaeffer's ``tau_close``, to which its APD is proportional): real
    hearts' waveforms are not one shape everywhere.
    """
    if ionic not in IONIC_MODELS:
        raise ValueError(f"ionic must be one of {sorted(IONIC_MODELS)}; got {ionic!r}.")
    sites = _pacing_sites(site, geometry.n_nodes)
    if onsets is not None:
        onsets = np.asarray(onsets, np.float64)
        if onsets.shape != (len(sites),) or not np.all(np.isfinite(onsets)) or np.any(onsets < 0):
            raise ValueError(f"onsets must give one stimulus time >= 0 per site ({len(sites)}); got {onsets.tolist()!r}.")
    if not (np.isfinite(apd_dispersion) and 0 <= apd_dispersion < 1):
        raise ValueError(f"apd_dispersion must lie in [0, 1) (a fraction of the APD); got {apd_dispersion!r}.")
    model = IONIC_MODELS[ionic]()
    v = geometry.heart_fine.vertices
    if apd_dispersion:
        if ionic != "mitchell-schaeffer":
            raise ValueError("apd_dispersion is implemented for ionic='mitchell-schaeffer' only.")
        centred = v - v.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]  # the long axis
        x = centred @ axis
        scale = 1.0 + apd_dispersion * ((x - x.min()) / np.ptp(x) - 0.5)
        model = dataclasses.replace(model, tau_close=model.tau_close * scale)
    distance = np.linalg.norm(v[:, None, :] - v[None, sites, :], axis=2)
    excited = np.any(distance <= pacing_radius, axis=1)
    # A fine node near two sites takes the earlier stimulus.
    node_onsets = None if onsets is None else np.min(np.where(distance <= pacing_radius, onsets[None, :], np.inf), axis=1)
    return simulate_ionic(model, geometry.laplacian_fine, excited, dt=dt, n_samples=n_samples, onsets=node_onsets, dtype=dtype)


def make_noncrime_case(
    key: jax.Array,
    geometry: NoncrimeGeometry,
    site: int | tuple[int, ...],
    *,
    ionic: str = "mitchell-schaeffer",
    sigma: float | None = 0.1,
    snr_db: float | None = None,
    noise_correlation_mm: float = 0.0,
    bad_leads: int = 0,
    A_truth=None,
    truth_info: dict | None = None,
    dt: float = 0.1,
    n_samples: int = 400,
    pacing_radius: float = 4.0,
    apd_dispersion: float = 0.0,
    onsets=None,
    dtype=None,
) -> NoncrimeCase:
    """A case whose truth the inverse's model did not generate (module docstring).

    Args:
        key: PRNG key for the noise and the bad leads.
        geometry: from :func:`noncrime_geometry`.
        site: pacing site (an inverse node index), or a tuple of them; onsets: their stimulus
            times (AP units; default all at t = 0), see :func:`truth_beat`.
        ionic: the truth's ionic model (``"mitchell-schaeffer"``, ``"fenton-karma"``).
        sigma: noise std relative to the std of the clean signal (the library's convention) —
            or ``snr_db`` (power ratio ``mean(Y²)/noise variance``); give one of them.
        noise_correlation_mm: correlation length of the noise across electrodes (0: white).
        bad_leads: this many leads, drawn with ``key``, get extra white noise of the clean signal's
            own std (a poor electrode contact); their indices are in ``case.bad_leads``.
        A_truth, truth_info: the truth's transfer matrix from :func:`truth_transfer` (geometry
            errors); default ``geometry.A_fine`` (no error).
        dt, n_samples: sampling (AP time units); pacing_radius: mm; apd_dispersion: see
            :func:`truth_beat`.
    """
    dtype = dtype or jnp.result_type(float)
    check_key(key)
    if not isinstance(geometry, NoncrimeGeometry):
        raise TypeError(f"geometry must be a NoncrimeGeometry (from noncrime_geometry()); got {type(geometry).__name__}.")
    if (sigma is None) == (snr_db is None):
        raise ValueError("give exactly one noise level: sigma (relative std) or snr_db.")
    level = sigma if sigma is not None else snr_db
    if not np.isfinite(level) or (sigma is not None and sigma < 0):
        raise ValueError(f"noise level must be finite (sigma >= 0); got sigma={sigma!r}, snr_db={snr_db!r}.")
    m = len(geometry.electrodes)
    if not (isinstance(bad_leads, (int, np.integer)) and 0 <= bad_leads < m):
        raise ValueError(f"bad_leads must be an integer in [0, {m - 1}]; got {bad_leads!r}.")
    if not (np.isfinite(noise_correlation_mm) and noise_correlation_mm >= 0):
        raise ValueError(f"noise_correlation_mm must be >= 0; got {noise_correlation_mm!r}.")
    sites = _pacing_sites(site, geometry.n_nodes)
    A_truth = geometry.A_fine if A_truth is None else np.asarray(A_truth)
    if A_truth.shape != (m, geometry.heart_fine.n_vertices):
        raise ValueError(f"A_truth has shape {A_truth.shape}; expected ({m}, {geometry.heart_fine.n_vertices}) (truth_transfer).")
    U_fine = truth_beat(
        geometry, site, ionic=ionic, dt=dt, n_samples=n_samples, pacing_radius=pacing_radius,
        apd_dispersion=apd_dispersion, onsets=onsets, dtype=dtype,
    )
    reached = float(jnp.mean(jnp.max(U_fine, axis=1) >= 0.5))
    if reached < 0.5:
        raise ValueError(
            f"the {ionic} beat from site {site!r} reached only {reached:.0%} of the truth's heart within "
            f"{n_samples} samples: the wave failed to propagate on this mesh (a front narrower than the "
            f"mesh spacing blocks; Fenton–Karma's ~1 mm front needs refine >= 2) or the window is too short."
        )
    Y_clean = jnp.matmul(jnp.asarray(A_truth, dtype), U_fine, precision=jax.lax.Precision.HIGHEST)
    k_noise, k_bad, k_bad_noise = jax.random.split(key, 3)
    positions = geometry.torso.vertices[geometry.electrodes]
    z = correlated_noise(k_noise, positions, n_samples, noise_correlation_mm, dtype)
    if sigma is not None:
        noise_std = sigma * jnp.std(Y_clean)
    else:
        noise_std = jnp.sqrt(jnp.mean(Y_clean**2)) * 10.0 ** (-snr_db / 20.0)
    Y = Y_clean + noise_std * z
    bad = np.sort(np.asarray(jax.random.choice(k_bad, m, (bad_leads,), replace=False))) if bad_leads else np.zeros(0, np.int64)
    if bad_leads:
        extra = jnp.std(Y_clean) * jax.random.normal(k_bad_noise, (bad_leads, n_samples), dtype)
        Y = Y.at[bad].add(extra)
    info = {
        "ionic": ionic, "shape": geometry.shape, "sigma": sigma, "snr_db": snr_db, "apd_dispersion": float(apd_dispersion),
        "noise_std": float(noise_std), "noise_correlation_mm": float(noise_correlation_mm),
        "onsets": None if onsets is None else [float(x) for x in onsets],
        "bad_leads": bad.tolist(), "n_fine": geometry.heart_fine.n_vertices, **(truth_info or {}),
    }
    n = geometry.n_nodes
    return NoncrimeCase(
        U_fine[:n], Y_clean, Y, jnp.asarray(geometry.A, dtype), geometry.laplacian.astype(dtype),
        geometry.heart.vertices, geometry.heart.adjacency, float(dt), sites if len(sites) > 1 else sites[0], bad, info,
    )
