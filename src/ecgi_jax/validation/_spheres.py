"""Analytic reference solutions for validating the BEM: concentric spheres.

A heart sphere of radius ``a`` sits at the centre of an insulated torso sphere of radius ``b``
(homogeneous conductor in between). If the heart potential is a spherical harmonic
``Y_lm(direction)``, the solution is ``(A r^l + B r^{-(l+1)}) Y_lm`` and the zero normal current at
``r = b`` gives the torso potential ``T_l Y_lm`` with

    T_l = (2l + 1) a^(l+1) b^l / ((l + 1) a^(2l+1) + l b^(2l+1)),   T_0 = 1.
"""

from __future__ import annotations

import numpy as np
from scipy.special import sph_harm_y

__all__ = ["real_sph_harm", "concentric_spheres_gain", "concentric_spheres_transfer"]


def _angles(points):
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    r = np.linalg.norm(p, axis=1)
    if np.any(r == 0):
        raise ValueError("real_sph_harm: points must be non-zero (directions from the centre).")
    theta = np.arccos(np.clip(p[:, 2] / r, -1.0, 1.0))  # polar
    phi = np.mod(np.arctan2(p[:, 1], p[:, 0]), 2.0 * np.pi)  # azimuth in [0, 2 pi)
    return theta, phi


def real_sph_harm(l: int, m: int, points) -> np.ndarray:
    """Orthonormal real spherical harmonic ``Y_lm`` at the directions of ``points (N, 3)``.

    ``m > 0``: sqrt(2) (-1)^m Re Y_l^m; ``m < 0``: sqrt(2) (-1)^m Im Y_l^|m|; ``m = 0``: Y_l^0,
    with scipy's complex ``sph_harm_y`` (Condon-Shortley phase). Points need not be unit length:
    only their direction from the origin is used. Integral of ``Y_lm^2`` over the unit sphere is 1.
    """
    l, m = int(l), int(m)
    if l < 0 or abs(m) > l:
        raise ValueError(f"need l >= 0 and |m| <= l; got l={l}, m={m}.")
    theta, phi = _angles(points)
    y = sph_harm_y(l, abs(m), theta, phi)
    if m == 0:
        return np.real(y)
    sign = (-1.0) ** abs(m)
    return np.sqrt(2.0) * sign * (np.real(y) if m > 0 else np.imag(y))


def concentric_spheres_gain(l, a: float, b: float):
    """Gain ``T_l`` from a degree-``l`` harmonic on the heart sphere (radius ``a``) to the
    insulated torso sphere (radius ``b > a``). Works elementwise on array ``l``."""
    if not (0 < a < b):
        raise ValueError(f"need 0 < a < b; got a={a}, b={b}.")
    l = np.asarray(l, dtype=np.float64)
    return (2 * l + 1) * a ** (l + 1) * b**l / ((l + 1) * a ** (2 * l + 1) + l * b ** (2 * l + 1))


def concentric_spheres_transfer(heart_vertices, torso_vertices, a: float, b: float, lmax: int, *, weights=None):
    """Analytic heart->torso transfer matrix truncated at degree ``lmax`` (centred spheres).

    Projects heart nodal potentials on real harmonics up to ``lmax`` by weighted least squares
    (``weights``: heart nodal areas; uniform by default), scales degree ``l`` by ``T_l`` and
    evaluates on the torso directions. Returns ``(n_torso, n_heart)``; it is exact for heart
    potentials that are band-limited to ``lmax`` (and needs ``(lmax+1)^2 <= n_heart``).
    """
    xh = np.asarray(heart_vertices, dtype=np.float64)
    xt = np.asarray(torso_vertices, dtype=np.float64)
    lm = [(l, m) for l in range(lmax + 1) for m in range(-l, l + 1)]
    if len(lm) > xh.shape[0]:
        raise ValueError(f"lmax={lmax} needs {len(lm)} harmonics but the heart has {xh.shape[0]} nodes.")
    yh = np.stack([real_sph_harm(l, m, xh) for l, m in lm], axis=1)
    yt = np.stack([real_sph_harm(l, m, xt) for l, m in lm], axis=1)
    gains = concentric_spheres_gain(np.array([l for l, _ in lm]), a, b)
    w = np.ones(xh.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = np.sqrt(w)[:, None]
    proj = np.linalg.pinv(yh * sw) * sw.T  # (K, n_heart) weighted LS projector
    return (yt * gains) @ proj
