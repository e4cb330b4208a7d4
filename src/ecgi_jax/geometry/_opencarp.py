"""openCARP meshes: ``.pts`` (points), ``.elem`` (elements) and ``.vtx`` (vertex sets).

openCARP writes plain text. ``.pts``: the point count, then ``x y z`` per line, in **µm** (the
simulator's length unit). ``.elem``: the element count, then one element per line, its type code
(``Tr`` triangle, ``Qd`` quad, ``Tt`` tetrahedron, ``Hx``, ``Py``, ``Pr``, ``Ln``) followed by its
0-based node indices and an optional region tag. ``.vtx``: the count, a domain line (``intra`` or
``extra``), then one 0-based node index per line. The inverse works on a heart *surface*: a
triangle mesh is read as it is, and a tetrahedral one gives its boundary (the faces that belong
to one tetrahedron only, wound outward), with the map back to the volume's node numbering.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._mesh import Mesh

__all__ = ["OpenCARPSurface", "load_opencarp", "load_vtx"]

_NODES = {"Ln": 2, "Tr": 3, "Qd": 4, "Tt": 4, "Py": 5, "Pr": 6, "Hx": 8}


class OpenCARPSurface(NamedTuple):
    """A heart surface read from an openCARP mesh.

    Attributes:
        mesh: the triangle surface, coordinates in the file's unit (µm for openCARP meshes:
            ``HeartModel.from_mesh(mesh, length_unit="um")``).
        nodes: ``(n,)`` the surface nodes' indices in the ``.pts`` file (map data given on the
            volume's nodes, e.g. an activation map, with ``data[nodes]``).
        tags: ``(n_triangles,)`` region tag of each triangle (of its tetrahedron for a boundary),
            ``-1`` where the file gives none.
    """

    mesh: Mesh
    nodes: np.ndarray
    tags: np.ndarray


def _lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"No openCARP {what} file at {path}.")
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except (UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"Could not read openCARP {what} file {path}: {type(exc).__name__}: {exc}") from exc
    if not lines or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise ValueError(f"openCARP {what} file {path} must start with its entry count on a line of its own.")
    return lines


def _count(lines, path, what, per_entry_lines) -> int:
    n = int(lines[0][0])
    if len(lines) - per_entry_lines != n:
        raise ValueError(f"openCARP {what} file {path} announces {n} entries but holds {len(lines) - per_entry_lines}.")
    return n


def _points(path: Path) -> np.ndarray:
    lines = _lines(path, ".pts")
    _count(lines, path, ".pts", 1)
    try:
        pts = np.array([[float(v) for v in ln] for ln in lines[1:]])
    except ValueError as exc:
        raise ValueError(f"openCARP .pts file {path} has a non-numeric coordinate: {exc}") from exc
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise ValueError(f"openCARP .pts file {path} must hold 3 finite coordinates per point.")
    return pts


def _elements(path: Path, n_points: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    lines = _lines(path, ".elem")
    _count(lines, path, ".elem", 1)
    by_type: dict[str, list] = {}
    for i, ln in enumerate(lines[1:], start=2):
        kind = ln[0]
        if kind not in _NODES:
            raise ValueError(f"openCARP .elem file {path}, line {i}: unknown element type {kind!r} (known: {sorted(_NODES)}).")
        k = _NODES[kind]
        if len(ln) not in (k + 1, k + 2):
            raise ValueError(f"openCARP .elem file {path}, line {i}: a {kind} element has {k} nodes and an optional tag; got {ln[1:]}.")
        try:
            idx, tag = [int(v) for v in ln[1 : k + 1]], int(ln[k + 1]) if len(ln) == k + 2 else -1
        except ValueError as exc:
            raise ValueError(f"openCARP .elem file {path}, line {i}: non-integer node index or tag ({exc}).") from exc
        by_type.setdefault(kind, []).append((idx, tag))
    out = {}
    for kind, items in by_type.items():
        idx = np.array([it[0] for it in items], np.int64)
        if idx.min() < 0 or idx.max() >= n_points:
            raise ValueError(f"openCARP .elem file {path}: {kind} node indices must lie in [0, {n_points - 1}] (0-based).")
        out[kind] = (idx, np.array([it[1] for it in items], np.int64))
    return out


def _boundary(points, tets, tags):
    """Faces of exactly one tetrahedron, wound outward, and their tetrahedra's tags."""
    t = tets.copy()
    vol = np.einsum("ij,ij->i", np.cross(points[t[:, 1]] - points[t[:, 0]], points[t[:, 2]] - points[t[:, 0]]),
                    points[t[:, 3]] - points[t[:, 0]])
    t[vol < 0] = t[vol < 0][:, [0, 2, 1, 3]]  # positive orientation: then these faces point outward
    faces = np.concatenate([t[:, [1, 2, 3]], t[:, [0, 3, 2]], t[:, [0, 1, 3]], t[:, [0, 2, 1]]])
    owner = np.tile(tags, 4)
    _, first, counts = np.unique(np.sort(faces, axis=1), axis=0, return_index=True, return_counts=True)
    keep = np.sort(first[counts == 1])
    return faces[keep], owner[keep]


def load_opencarp(pts, elem=None, *, validate: bool = True) -> OpenCARPSurface:
    """The heart surface of an openCARP mesh (module docstring).

    Args:
        pts: the ``.pts`` file, or the mesh's path prefix (``heart`` for ``heart.pts`` and
            ``heart.elem``).
        elem: the ``.elem`` file (default: beside ``pts``, same stem).
        validate: check the surface (:meth:`Mesh.validate`).

    Raises:
        FileNotFoundError: a missing file.
        ValueError: a malformed file (naming the file, and the line where it applies), an element
            file with neither triangles nor tetrahedra, or an invalid surface.
    """
    pts = Path(pts)
    if pts.suffix != ".pts":
        pts = pts.with_name(pts.name + ".pts")
    elem = pts.with_suffix(".elem") if elem is None else Path(elem)
    points = _points(pts)
    elements = _elements(elem, len(points))
    if "Tr" in elements:
        triangles, tags = elements["Tr"]
    elif "Tt" in elements:
        triangles, tags = _boundary(points, *elements["Tt"])
    else:
        raise ValueError(f"openCARP .elem file {elem} holds no triangles (Tr) or tetrahedra (Tt): found {sorted(elements)}.")
    nodes, local = np.unique(triangles, return_inverse=True)
    try:
        mesh = Mesh(points[nodes], local.reshape(triangles.shape), validate=validate)
    except ValueError as exc:
        raise ValueError(f"openCARP mesh {pts} / {elem} is not a valid triangle surface: {exc}") from exc
    return OpenCARPSurface(mesh, nodes, tags)


def load_vtx(path) -> np.ndarray:
    """The 0-based node indices of an openCARP ``.vtx`` file (count, domain line, indices)."""
    path = Path(path)
    lines = _lines(path, ".vtx")
    if len(lines) < 2 or lines[1] not in (["intra"], ["extra"]):
        raise ValueError(f"openCARP .vtx file {path}: the second line must be 'intra' or 'extra'.")
    _count(lines, path, ".vtx", 2)
    try:
        idx = np.array([int(ln[0]) for ln in lines[2:]], np.int64)
    except ValueError as exc:
        raise ValueError(f"openCARP .vtx file {path} has a non-integer index: {exc}") from exc
    if idx.size and idx.min() < 0:
        raise ValueError(f"openCARP .vtx file {path} has negative node indices (they are 0-based).")
    return idx
