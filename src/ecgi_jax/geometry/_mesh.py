"""Closed and open triangle surface meshes, with the checks the BEM and the operators rely on.

Geometry is host-side preprocessing: it runs once per patient, in float64 numpy, and produces the
arrays (operators, transfer matrices) that the jitted solvers consume.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "Mesh",
    "edges_of",
    "adjacency_of",
    "reorient_outward",
    "require_outward",
    "require_connected",
    "coincident_vertices",
]


def _as_vertices(vertices) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"Mesh vertices must have shape (N, 3); got {v.shape}.")
    if v.shape[0] < 3:
        raise ValueError(f"Mesh needs at least 3 vertices; got {v.shape[0]}.")
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ValueError(
            f"Mesh vertices contain NaN/Inf at {bad.sum()} vertices (first: {idx[:5].tolist()})."
        )
    return v


def _as_triangles(triangles, n_vertices: int) -> np.ndarray:
    t = np.asarray(triangles)
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"Mesh triangles must have shape (F, 3); got {t.shape}.")
    if t.shape[0] == 0:
        raise ValueError("Mesh has no triangles.")
    if not np.issubdtype(t.dtype, np.integer):
        if not np.all(np.mod(t, 1) == 0):
            raise ValueError("Mesh triangle indices must be integers.")
    t = t.astype(np.int64)
    if t.min() < 0 or t.max() >= n_vertices:
        raise ValueError(
            f"Mesh triangle indices must lie in [0, {n_vertices - 1}]; found range "
            f"[{t.min()}, {t.max()}] (1-based indices? subtract 1)."
        )
    return t


def edges_of(triangles: np.ndarray) -> np.ndarray:
    """Unique undirected edges ``(E, 2)`` (sorted pairs, lexicographic order)."""
    t = np.asarray(triangles)
    e = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)


def adjacency_of(n_vertices: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-ring adjacency in CSR form ``(indptr, indices)`` from undirected edges.

    ``indices[indptr[i]:indptr[i+1]]`` are the neighbours of node ``i``, sorted.
    """
    e = np.asarray(edges, dtype=np.int64)
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    indptr = np.zeros(n_vertices + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), cols


@dataclasses.dataclass(frozen=True, eq=False)
class Mesh:
    """A triangulated surface: ``vertices (N, 3)`` float64 (mm) and ``triangles (F, 3)`` int64.

    Construction validates the mesh and raises ``ValueError`` naming the problem for: wrong shapes,
    NaN/Inf coordinates, out-of-range indices, degenerate triangles (repeated vertex or zero area),
    duplicate triangles, edges shared by more than two triangles (non-manifold edges), vertices
    where two separate fans of triangles touch (non-manifold "bow-tie" vertices), inconsistent
    orientation (two neighbouring triangles traverse their shared edge in the same direction) and
    vertices no triangle uses. Orientation *direction* (inward/outward) is not enforced here, so that
    inward-facing meshes (e.g. SCIRun's tank) can be loaded and then fixed with
    :func:`reorient_outward`; the BEM refuses them via :func:`require_outward`.

    Several connected components are allowed here (e.g. two lungs in one file); the BEM refuses
    them via :func:`require_connected`.

    Pass ``validate=False`` only for meshes you are about to repair.
    """

    vertices: np.ndarray
    triangles: np.ndarray

    def __init__(self, vertices, triangles, *, validate: bool = True):
        v = _as_vertices(vertices)
        t = _as_triangles(triangles, v.shape[0])
        v.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "triangles", t)
        if validate:
            self.validate()

    # ------------------------------------------------------------------ basic quantities
    @property
    def n_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def n_triangles(self) -> int:
        return self.triangles.shape[0]

    @property
    def corners(self) -> np.ndarray:
        """Triangle corner coordinates ``(F, 3, 3)``."""
        return self.vertices[self.triangles]

    @property
    def face_cross(self) -> np.ndarray:
        """``(v1 - v0) x (v2 - v0)`` per triangle: twice the area times the unit normal."""
        c = self.corners
        return np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])

    @property
    def face_areas(self) -> np.ndarray:
        return 0.5 * np.linalg.norm(self.face_cross, axis=1)

    @property
    def face_normals(self) -> np.ndarray:
        fc = self.face_cross
        return fc / np.linalg.norm(fc, axis=1, keepdims=True)

    @property
    def face_centroids(self) -> np.ndarray:
        return self.corners.mean(axis=1)

    @property
    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals ``(N, 3)``."""
        acc = np.zeros_like(self.vertices)
        fc = self.face_cross
        for k in range(3):
            np.add.at(acc, self.triangles[:, k], fc)
        return acc / np.linalg.norm(acc, axis=1, keepdims=True)

    @property
    def edges(self) -> np.ndarray:
        return edges_of(self.triangles)

    @property
    def adjacency(self) -> tuple[np.ndarray, np.ndarray]:
        return adjacency_of(self.n_vertices, self.edges)

    @property
    def boundary_edges(self) -> np.ndarray:
        """Edges used by exactly one triangle ``(B, 2)``; empty for a closed surface."""
        t = self.triangles
        e = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
        uniq, counts = np.unique(e, axis=0, return_counts=True)
        return uniq[counts == 1]

    @property
    def is_closed(self) -> bool:
        return self.boundary_edges.shape[0] == 0

    @property
    def signed_volume(self) -> float:
        """Enclosed volume (mm^3); positive for outward-facing closed surfaces."""
        c = self.corners
        return float(np.einsum("ij,ij->i", c[:, 0], np.cross(c[:, 1], c[:, 2])).sum() / 6.0)

    @property
    def is_outward(self) -> bool:
        return self.is_closed and self.signed_volume > 0

    @property
    def mean_edge_length(self) -> float:
        e = self.edges
        return float(np.linalg.norm(self.vertices[e[:, 0]] - self.vertices[e[:, 1]], axis=1).mean())

    def n_components(self) -> int:
        """Number of connected components (through shared edges)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        e = self.edges
        g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(self.n_vertices,) * 2)
        return int(connected_components(g, directed=False)[0])

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Mesh":
        t = self.triangles
        same = (t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2])
        if same.any():
            raise ValueError(
                f"Mesh has {same.sum()} degenerate triangle(s) with a repeated vertex "
                f"(first at index {int(np.flatnonzero(same)[0])})."
            )
        scale = max(self.mean_edge_length, np.finfo(float).tiny)
        tiny = self.face_areas <= 1e-12 * scale**2
        if tiny.any():
            raise ValueError(
                f"Mesh has {tiny.sum()} degenerate triangle(s) of zero area (collinear vertices; "
                f"first at index {int(np.flatnonzero(tiny)[0])})."
            )
        key = np.sort(t, axis=1)
        _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"Mesh has {int((counts - 1).sum())} duplicate triangle(s) (same three vertices; "
                f"e.g. triangle {int(first[counts > 1][0])}). Remove the duplicates."
            )
        e_und = key[:, [0, 1, 1, 2, 0, 2]].reshape(-1, 2)
        _, ecount = np.unique(e_und, axis=0, return_counts=True)
        if (ecount > 2).any():
            raise ValueError(
                f"Mesh is non-manifold: {int((ecount > 2).sum())} edge(s) are shared by more than "
                "two triangles."
            )
        directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
        _, dcount = np.unique(directed, axis=0, return_counts=True)
        if (dcount > 1).any():
            raise ValueError(
                f"Mesh orientation is inconsistent: {int((dcount > 1).sum())} edge(s) are traversed "
                "in the same direction by both neighbouring triangles (some normals are flipped)."
            )
        bowtie = _nonmanifold_vertices(t, self.n_vertices)
        if bowtie.size:
            raise ValueError(
                f"Mesh is non-manifold at {bowtie.size} vertex/vertices where separate fans of "
                f"triangles touch only at the vertex (first: {bowtie[:5].tolist()}). Split those "
                "vertices (one copy per fan) or remove the extra sheet."
            )
        used = np.zeros(self.n_vertices, dtype=bool)
        used[t.ravel()] = True
        if not used.all():
            raise ValueError(
                f"Mesh has {int((~used).sum())} unreferenced vertex/vertices (used by no triangle; "
                f"first: {np.flatnonzero(~used)[:5].tolist()})."
            )
        return self

    # ------------------------------------------------------------------ transforms
    def flipped(self) -> "Mesh":
        """The same surface with every triangle's orientation reversed."""
        return Mesh(self.vertices, self.triangles[:, ::-1], validate=False)

    def translated(self, offset) -> "Mesh":
        return Mesh(self.vertices + np.asarray(offset, float), self.triangles, validate=False)

    def scaled(self, factor: float) -> "Mesh":
        return Mesh(self.vertices * float(factor), self.triangles, validate=False)

    def __repr__(self) -> str:
        kind = "closed" if self.is_closed else "open"
        return f"Mesh({self.n_vertices} vertices, {self.n_triangles} triangles, {kind})"


def _nonmanifold_vertices(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """Vertices whose incident triangles form more than one edge-connected fan (sorted).

    Corners ``(triangle, k)`` are graph nodes; the two corners of a vertex in two triangles that
    share an edge through it are linked. A manifold vertex has all its corners in one component.
    Assumes every edge has at most two triangles (checked before).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = triangles
    f = t.shape[0]
    k = np.tile(np.arange(3), f)
    face = np.repeat(np.arange(f), 3)
    a, b = t[face, k], t[face, (k + 1) % 3]  # half-edge a -> b of triangle `face`
    key = np.sort(np.stack([a, b], axis=1), axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    ks = key[order]
    pair = np.flatnonzero((ks[1:] == ks[:-1]).all(axis=1))
    h1, h2 = order[pair], order[pair + 1]  # half-edges of the same undirected edge
    same = a[h1] == a[h2]
    c1a, c1b = 3 * face[h1] + k[h1], 3 * face[h1] + (k[h1] + 1) % 3
    c2a = np.where(same, 3 * face[h2] + k[h2], 3 * face[h2] + (k[h2] + 1) % 3)
    c2b = np.where(same, 3 * face[h2] + (k[h2] + 1) % 3, 3 * face[h2] + k[h2])
    rows, cols = np.concatenate([c1a, c1b]), np.concatenate([c2a, c2b])
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * f, 3 * f))
    _, comp = connected_components(g, directed=False)
    vert = t.reshape(-1)
    fans = np.unique(np.stack([vert, comp], axis=1), axis=0)[:, 0]
    counts = np.bincount(fans, minlength=n_vertices)
    return np.flatnonzero(counts > 1)


def coincident_vertices(mesh: Mesh, tol: float = 1e-9) -> np.ndarray:
    """Pairs ``(P, 2)`` of distinct vertices closer than ``tol`` times the mean edge length.

    Duplicated vertices (e.g. from a triangle-soup format) leave cracks: the surface looks closed
    but has boundary edges. Merge them before building operators.
    """
    from scipy.spatial import cKDTree

    r = tol * max(mesh.mean_edge_length, np.finfo(float).tiny)
    pairs = cKDTree(mesh.vertices).query_pairs(r, output_type="ndarray")
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def require_connected(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Raise ``ValueError`` unless ``mesh`` is a single connected surface.

    The BEM models one heart surface and one torso surface; a second component (a stray shell, a
    second organ in the same file) would silently become part of the boundary.
    """
    n = mesh.n_components()
    if n != 1:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        e = mesh.edges
        g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(mesh.n_vertices,) * 2)
        sizes = np.bincount(connected_components(g, directed=False)[1])
        raise ValueError(
            f"{name} has {n} disconnected components (vertex counts {sorted(sizes.tolist(), reverse=True)[:8]}); "
            "expected one connected surface. Keep the component you mean (or pass each surface "
            "separately)."
        )
    return mesh


def reorient_outward(mesh: Mesh) -> Mesh:
    """Return ``mesh`` with outward normals (flips it if its signed volume is negative).

    Requires a closed, consistently oriented surface.
    """
    if not mesh.is_closed:
        raise ValueError("reorient_outward needs a closed surface; this mesh has boundary edges.")
    return mesh if mesh.signed_volume > 0 else mesh.flipped()


def require_outward(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Raise ``ValueError`` unless ``mesh`` is closed with outward-facing normals."""
    if not mesh.is_closed:
        dup = coincident_vertices(mesh)
        hint = (
            f" It has {len(dup)} pair(s) of coincident vertices (first: {dup[0].tolist()}): merge "
            "duplicated vertices to close the cracks."
            if len(dup)
            else " Fill the holes (or close the open rim) first."
        )
        raise ValueError(
            f"{name} must be a closed surface; it has {mesh.boundary_edges.shape[0]} boundary edges.{hint}"
        )
    if mesh.signed_volume <= 0:
        raise ValueError(
            f"{name} faces inward (signed volume {mesh.signed_volume:.4g} < 0). "
            "Call ecgi_jax.geometry.reorient_outward(mesh) to flip it."
        )
    return mesh
