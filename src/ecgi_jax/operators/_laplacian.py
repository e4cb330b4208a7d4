"""Surface Laplacians and gradients on triangle meshes and node graphs.

All builders run once per geometry on the host (numpy, float64) and return a
:class:`~ecgi_jax.operators.SparseOperator` (float32 unless ``dtype`` is given, or the
``jax_enable_x64`` default float), to be passed into jitted code.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..geometry import Mesh, adjacency_of
from ._sparse import SparseOperator

__all__ = [
    "adjacency_from_sparse",
    "csr_adjacency",
    "huiskamp_laplacian",
    "graph_laplacian",
    "cotangent_laplacian",
    "cotangent_stiffness_mass",
    "surface_gradient",
    "edge_gradient",
    "geodesic_distances",
]


_ADJACENCY_FORMS = (
    "adjacency must be either a CSR pair (indptr, indices) of integer arrays, e.g. mesh.adjacency, "
    "or a sequence of per-node neighbour lists [[j, k, ...], ...] (one list of 0-based integer "
    "node indices per node)"
)


def _looks_like_csr(parts) -> bool:
    """A pair whose first part can be CSR row pointers (1-D, starting at 0). A neighbour-list form
    never looks like that: node 0's list cannot contain 0 (a self-loop)."""
    if len(parts) != 2:
        return False
    try:
        first = np.asarray(parts[0])
    except (TypeError, ValueError):
        return False
    return first.ndim == 1 and first.size > 0 and first.dtype != object and first[0] == 0


def _neighbour_lists_to_csr(parts) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for i, nbrs in enumerate(parts):
        try:
            a = np.asarray(nbrs)
        except (TypeError, ValueError):
            a = None
        if a is None or a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            got = "" if a is None else f" (shape {a.shape}, dtype {a.dtype})"
            raise ValueError(f"{_ADJACENCY_FORMS}; entry {i} is not a 1-D list of integers{got}.") from None
        rows.append(a.astype(np.int64))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return indptr, indices


def csr_adjacency(adjacency, n_vertices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated CSR adjacency ``(indptr, indices)``; ``n_vertices`` (if given) must match.

    Accepts a CSR pair ``(indptr, indices)`` or a sequence of per-node neighbour index lists
    (converted to CSR, row ``i`` = the list of node ``i``). The two forms cannot be confused: a
    pair is CSR when its first part starts at 0, which node 0's neighbour list cannot (no
    self-loops).
    """
    if isinstance(adjacency, (str, bytes, dict)) or sp.issparse(adjacency):
        hint = " (for a sparse matrix use operators.adjacency_from_sparse)" if sp.issparse(adjacency) else ""
        raise ValueError(f"{_ADJACENCY_FORMS}; got {type(adjacency).__name__}{hint}.")
    try:
        parts = list(adjacency)
    except TypeError:
        raise ValueError(f"{_ADJACENCY_FORMS}; got {type(adjacency).__name__}.") from None
    if _looks_like_csr(parts):
        return _checked_csr(*parts, n_vertices)
    try:
        lists = _neighbour_lists_to_csr(parts)
        return _checked_csr(*lists, n_vertices)
    except ValueError as err:
        if len(parts) != 2:
            raise
        # A pair that is not valid neighbour lists either: most likely a broken CSR pair (indptr
        # not starting at 0, 1-based, ...): report the CSR problem.
        try:
            _checked_csr(*parts, n_vertices)
        except ValueError as csr_err:
            raise csr_err from None
        raise err from None


def _checked_csr(indptr, indices, n_vertices) -> tuple[np.ndarray, np.ndarray]:
    try:
        indptr, indices = np.asarray(indptr), np.asarray(indices)
    except (TypeError, ValueError):
        raise ValueError(f"{_ADJACENCY_FORMS}.") from None
    for arr, name in ((indptr, "indptr"), (indices, "indices")):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"adjacency {name} must be integers; got dtype {arr.dtype}.")
    indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.size == 0 or indptr[-1] != indices.size:
        raise ValueError("adjacency must be CSR arrays (indptr, indices) with indptr[-1] == len(indices).")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise ValueError("adjacency indptr must start at 0 and be non-decreasing (CSR row pointers).")
    n = indptr.size - 1
    if n_vertices is not None and n != n_vertices:
        raise ValueError(f"adjacency describes {n} nodes but there are {n_vertices} vertices; build both from the same mesh.")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(
            f"adjacency indices must lie in [0, {n - 1}]; found range [{indices.min()}, {indices.max()}] "
            "(1-based indices? subtract 1)."
        )
    if (indices == np.repeat(np.arange(n), np.diff(indptr))).any():
        raise ValueError("adjacency lists a node as its own neighbour (self-loop); remove the diagonal.")
    return indptr, indices


def adjacency_from_sparse(matrix) -> tuple[np.ndarray, np.ndarray]:
    """1-ring adjacency ``(indptr, indices)`` from the off-diagonal sparsity of a sparse matrix.

    The pattern is symmetrised, so a non-symmetric operator (e.g. a shipped Laplacian) gives the
    undirected node graph.
    """
    m = sp.csr_matrix(matrix)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"adjacency_from_sparse needs a square matrix; got {m.shape}.")
    pattern = (abs(m) + abs(m).T).tocoo()
    keep = pattern.row != pattern.col
    e = np.stack([pattern.row[keep], pattern.col[keep]], axis=1)
    e = np.unique(np.sort(e, axis=1), axis=0)
    return adjacency_of(m.shape[0], e)


def _rows_of(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _with_diagonal(rows, cols, weights, n) -> sp.csr_matrix:
    """Off-diagonal weights plus the diagonal that makes every row sum to zero."""
    off = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))
    return (off - sp.diags(np.asarray(off.sum(axis=1)).ravel())).tocsr()


def _check_vertices(vertices) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise ValueError(f"vertices must be a finite (N, 3) array; got shape {v.shape}.")
    return v


def huiskamp_laplacian(vertices, adjacency, dtype=None) -> SparseOperator:
    """Huiskamp's (1991) 1-ring difference Laplacian.

    ``(Δu)_i = (4 / h̄_i) (1 / n_i) Σ_{j ∈ N(i)} (u_j − u_i) / h_ij``

    with ``h_ij`` the edge length, ``n_i`` the 1-ring size and ``h̄_i`` the mean edge length at
    node ``i``. It needs only node positions and the 1-ring graph (no triangles), is exact for
    quadratics over a regular ring (six equidistant neighbours in a plane), and is the operator
    shipped with the P-DL data. Rows sum to zero; the matrix is not symmetric.

    Caveat: on irregular rings the first-order Taylor terms do not cancel, so the formula is not
    a consistent discretisation of Δ_S: under refinement of an icosphere its error on Y_1m grows
    (≈ 0.28, 0.52, 0.82, 1.21 relative at 162…10242 nodes) while the cotangent Laplacian's halves.
    Use it to reproduce the P-DL setting; prefer :func:`cotangent_laplacian` for new meshes.

    ``adjacency``: the 1-ring as a CSR pair ``(indptr, indices)`` (``mesh.adjacency``) or as a
    sequence of per-node neighbour index lists ``[[j, ...], ...]`` (0-based).

    Reference: Huiskamp G., "Difference formulas for the surface Laplacian on a triangulated
    surface", J. Comput. Phys. 95:477–496 (1991).
    """
    v = _check_vertices(vertices)
    indptr, indices = csr_adjacency(adjacency, len(v))
    n_ring = np.diff(indptr)
    if (n_ring == 0).any():
        raise ValueError(f"huiskamp_laplacian: node(s) {np.flatnonzero(n_ring == 0)[:5].tolist()} have no neighbours.")
    rows = _rows_of(indptr)
    h = np.linalg.norm(v[indices] - v[rows], axis=1)
    if (h <= 0).any():
        raise ValueError("huiskamp_laplacian: coincident neighbouring nodes (zero edge length).")
    h_mean = np.bincount(rows, weights=h, minlength=len(v)) / n_ring
    w = 4.0 / (h_mean[rows] * n_ring[rows] * h)
    return SparseOperator.from_scipy(_with_diagonal(rows, indices, w, len(v)), dtype=dtype)


def graph_laplacian(adjacency, dtype=None, normalized: bool = False) -> SparseOperator:
    """Combinatorial graph Laplacian ``(Lu)_i = Σ_j (u_j − u_i)`` (``/ n_i`` if ``normalized``).

    Unitless (ignores edge lengths): a smoothness prior, not a discretisation of Δ.
    """
    indptr, indices = csr_adjacency(adjacency)
    rows = _rows_of(indptr)
    w = np.ones(len(indices))
    if normalized and (np.diff(indptr) == 0).any():
        raise ValueError(
            f"graph_laplacian(normalized=True): node(s) {np.flatnonzero(np.diff(indptr) == 0)[:5].tolist()} "
            "have no neighbours (division by a zero degree); remove isolated nodes or use normalized=False."
        )
    if normalized:
        w = w / np.diff(indptr)[rows]
    return SparseOperator.from_scipy(_with_diagonal(rows, indices, w, len(indptr) - 1), dtype=dtype)


def _check_mesh(mesh) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh (triangles are needed); got {type(mesh).__name__}.")
    return mesh


def cotangent_stiffness_mass(mesh: Mesh) -> tuple[sp.csr_matrix, np.ndarray]:
    """Cotangent stiffness matrix ``C`` (symmetric, rows sum to 0) and lumped (barycentric) masses.

    ``C_ij = (cot α_ij + cot β_ij) / 2`` for each edge, so that ``uᵀ(−C)u = ∫|∇u|²`` for the
    piecewise-linear interpolant. Masses are one third of the areas of the incident triangles.
    """
    t = _check_mesh(mesh).triangles
    c = mesh.corners
    rows, cols, w = [], [], []
    for k in range(3):
        i, j, o = k, (k + 1) % 3, (k + 2) % 3  # edge (i, j) opposite corner o
        a = c[:, i] - c[:, o]
        b = c[:, j] - c[:, o]
        cot = np.einsum("ij,ij->i", a, b) / np.linalg.norm(np.cross(a, b), axis=1)
        rows += [t[:, i], t[:, j]]
        cols += [t[:, j], t[:, i]]
        w += [0.5 * cot, 0.5 * cot]
    stiffness = _with_diagonal(np.concatenate(rows), np.concatenate(cols), np.concatenate(w), mesh.n_vertices)
    mass = np.zeros(mesh.n_vertices)
    np.add.at(mass, t.ravel(), np.repeat(mesh.face_areas / 3.0, 3))
    return stiffness, mass


def cotangent_laplacian(mesh: Mesh, dtype=None) -> SparseOperator:
    """Cotangent Laplace–Beltrami operator ``M⁻¹ C`` (lumped mass; units 1/mm²).

    Converges to Δ_S on smooth surfaces (e.g. ``Δ Y_lm = −l(l+1)/r² Y_lm`` on a sphere).
    Use :func:`cotangent_stiffness_mass` for the symmetric pair.
    """
    stiffness, mass = cotangent_stiffness_mass(mesh)
    if (mass <= 0).any():
        raise ValueError(
            f"cotangent_laplacian: {int((mass <= 0).sum())} vertices belong to no triangle (zero mass); "
            "remove unreferenced vertices (Mesh(...) with validate=True reports them)."
        )
    return SparseOperator.from_scipy(sp.diags(1.0 / mass) @ stiffness, dtype=dtype)


def surface_gradient(mesh: Mesh, area_weighted: bool = True, dtype=None) -> SparseOperator:
    """Piecewise-constant surface gradient of the linear interpolant, ``(3F, N)``.

    Row ``3f + d`` is component ``d`` of ``∇u`` on triangle ``f``. With ``area_weighted`` each row
    is scaled by ``sqrt(area_f)`` so that ``‖G u‖² = ∫_S |∇u|² dA`` — the first-order Tikhonov
    seminorm.
    """
    t = _check_mesh(mesh).triangles
    c = mesh.corners
    n = mesh.face_cross
    two_area = np.linalg.norm(n, axis=1)
    nhat = n / two_area[:, None]
    rows, cols, w = [], [], []
    scale = np.sqrt(0.5 * two_area) if area_weighted else np.ones(len(t))
    for k in range(3):
        # ∇φ_k = n̂ × e_k / (2A), with e_k the edge opposite vertex k (counter-clockwise).
        e = c[:, (k + 2) % 3] - c[:, (k + 1) % 3]
        g = np.cross(nhat, e) / two_area[:, None] * scale[:, None]
        for d in range(3):
            rows.append(3 * np.arange(len(t)) + d)
            cols.append(t[:, k])
            w.append(g[:, d])
    m = sp.csr_matrix(
        (np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(3 * len(t), mesh.n_vertices)
    )
    return SparseOperator.from_scipy(m, dtype=dtype)


def edge_gradient(vertices, adjacency, dtype=None) -> SparseOperator:
    """Directional differences along edges, ``(E, N)``: row ``e = (i, j)`` is ``(u_j − u_i)/h_ij``.

    A first-order operator needing no triangles (e.g. for the P-DL geometry, shipped without them).
    """
    v = _check_vertices(vertices)
    indptr, indices = csr_adjacency(adjacency, len(v))
    rows = _rows_of(indptr)
    keep = rows < indices
    i, j = rows[keep], indices[keep]
    h = np.linalg.norm(v[j] - v[i], axis=1)
    if (h <= 0).any():
        raise ValueError("edge_gradient: coincident neighbouring nodes (zero edge length); merge duplicated vertices.")
    e = np.arange(len(i))
    m = sp.csr_matrix(
        (np.concatenate([-1.0 / h, 1.0 / h]), (np.concatenate([e, e]), np.concatenate([i, j]))),
        shape=(len(i), len(v)),
    )
    return SparseOperator.from_scipy(m, dtype=dtype)


def geodesic_distances(vertices, adjacency, sources=None) -> np.ndarray:
    """Shortest-path distances along the mesh's edges (Dijkstra), ``(k, N)`` from the ``k``
    ``sources`` (default: every node, ``(N, N)``), in the vertices' length unit, float64.

    A path along edges zig-zags, so it overestimates the distance over the surface (on an
    icosphere by 0–18 %, 8 % typically): enough to say which of a few sites a front reaches first,
    not an eikonal solver. Nodes not connected to a source are ``inf``.
    """
    from scipy.sparse.csgraph import dijkstra

    v = _check_vertices(vertices)
    n = len(v)
    indptr, indices = csr_adjacency(adjacency, n)
    rows = _rows_of(indptr)
    h = np.linalg.norm(v[indices] - v[rows], axis=1)
    if (h <= 0).any():
        raise ValueError("geodesic_distances: coincident neighbouring nodes (zero edge length); merge duplicated vertices.")
    if sources is None:
        sources = np.arange(n)
    sources = np.atleast_1d(np.asarray(sources))
    if sources.ndim != 1 or not np.issubdtype(sources.dtype, np.integer) or (sources.size and not 0 <= sources.min() <= sources.max() < n):
        raise ValueError(f"sources must be node indices in [0, {n - 1}]; got {sources.tolist()}.")
    graph = sp.csr_matrix((h, indices, indptr), shape=(n, n))
    return dijkstra(graph, directed=False, indices=sources)
