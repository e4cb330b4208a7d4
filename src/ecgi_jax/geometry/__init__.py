"""Geometry: triangle meshes, their checks and I/O, and code-generated phantoms."""

from ._io import atomic_write, load_mat, load_mesh, save_mesh
from ._mesh import Mesh, adjacency_of, coincident_vertices, edges_of, reorient_outward, require_connected, require_outward
from ._opencarp import OpenCARPSurface, load_opencarp, load_vtx
from ._shapes import SHAPES, HeartTorsoGeometry, default_heart_torso, icosphere, sphere_mesh

__all__ = [
    "Mesh",
    "adjacency_of",
    "edges_of",
    "reorient_outward",
    "require_outward",
    "require_connected",
    "coincident_vertices",
    "HeartTorsoGeometry",
    "default_heart_torso",
    "SHAPES",
    "icosphere",
    "sphere_mesh",
    "load_mesh",
    "save_mesh",
    "load_mat",
    "load_opencarp",
    "load_vtx",
    "OpenCARPSurface",
    "atomic_write",
]
