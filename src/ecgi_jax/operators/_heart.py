"""One heart model for every method: the operators and geometry the inverse methods use."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..geometry import Mesh
from ._laplacian import huiskamp_laplacian, surface_gradient

__all__ = ["HeartModel"]


class HeartModel(NamedTuple):
    """What the inverse knows about the heart, built once and given to any method.

    ``solve(Y, A, method=..., heart=model)`` passes each field to the methods that take it
    (``laplacian`` to Tikhonov-2, spatiotemporal, EAND-ARN, ...; ``gradient`` to Tikhonov-1 and
    total variation; ``vertices``/``adjacency`` to the pacing search and shooting; ``dt`` to the
    time-aware methods) and leaves out what a method does not use, so one call shape serves every
    method. A field left ``None`` is not passed.

    Attributes:
        laplacian: ``(n, n)`` surface Laplacian (``Δ``; negative semi-definite, ``L·1 = 0``).
        gradient: ``(K, n)`` surface gradient, or ``None``.
        vertices: ``(n, 3)`` node coordinates in mm, or ``None``.
        adjacency: the 1-ring, CSR ``(indptr, indices)``, or ``None``.
        dt: sample spacing of the recordings (AP time units for the physics-based methods), or
            ``None`` (each method's default).
    """

    laplacian: Any = None
    gradient: Any = None
    vertices: Any = None
    adjacency: Any = None
    dt: float | None = None

    @classmethod
    def from_mesh(cls, mesh: Mesh, *, dt: float | None = None) -> "HeartModel":
        """The Huiskamp 1-ring Laplacian, the area-weighted surface gradient, the vertices and
        the 1-ring of a validated heart ``mesh`` (coordinates in mm)."""
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh; got {type(mesh).__name__}.")
        return cls(
            laplacian=huiskamp_laplacian(mesh.vertices, mesh.adjacency),
            gradient=surface_gradient(mesh),
            vertices=np.asarray(mesh.vertices),
            adjacency=mesh.adjacency,
            dt=dt,
        )

    def options_for(self, accepted) -> dict:
        """The fields a method taking the options ``accepted`` uses, as keyword options."""
        return {k: v for k, v in self._asdict().items() if v is not None and k in accepted}
