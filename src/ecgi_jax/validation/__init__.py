"""Analytic and published reference solutions used to validate the forward model."""

from ._spheres import concentric_spheres_gain, concentric_spheres_transfer, real_sph_harm
from ._utah import compare_utah1997, utah1997_sock_mesh

__all__ = [
    "real_sph_harm",
    "concentric_spheres_gain",
    "concentric_spheres_transfer",
    "utah1997_sock_mesh",
    "compare_utah1997",
]
