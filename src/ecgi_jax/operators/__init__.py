"""Operators built once from the geometry and passed into jitted code.

Spatial: mesh Laplacians (Huiskamp 1-ring, cotangent, graph) and surface gradients, as
:class:`SparseOperator` edge lists, and distances along the mesh's edges. Temporal:
finite-difference stencils along the time axis.
"""

from ._checks import check_operator, finite_array
from ._heart import DEFAULT_MS_PER_AP, LENGTH_UNITS, PLAUSIBLE_SPACING_MM, TIME_UNITS, HeartModel, mesh_in_mm
from ._laplacian import (
    adjacency_from_sparse,
    cotangent_laplacian,
    cotangent_stiffness_mass,
    csr_adjacency,
    edge_gradient,
    geodesic_distances,
    graph_laplacian,
    huiskamp_laplacian,
    surface_gradient,
)
from ._sparse import SparseOperator, as_dense
from ._temporal import Stencil, difference_matrix, fd_weights, min_samples, stencil, time_derivative

__all__ = [
    "SparseOperator",
    "HeartModel",
    "mesh_in_mm",
    "LENGTH_UNITS",
    "TIME_UNITS",
    "PLAUSIBLE_SPACING_MM",
    "DEFAULT_MS_PER_AP",
    "finite_array",
    "check_operator",
    "as_dense",
    "adjacency_from_sparse",
    "csr_adjacency",
    "huiskamp_laplacian",
    "graph_laplacian",
    "cotangent_laplacian",
    "cotangent_stiffness_mass",
    "surface_gradient",
    "edge_gradient",
    "geodesic_distances",
    "Stencil",
    "stencil",
    "fd_weights",
    "min_samples",
    "time_derivative",
    "difference_matrix",
]
