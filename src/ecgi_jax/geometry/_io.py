"""Mesh and array I/O: meshio for surface meshes, scipy for MATLAB ``.mat`` files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ._mesh import Mesh

__all__ = ["load_mesh", "save_mesh", "load_mat", "atomic_write"]


def load_mesh(path, *, validate: bool = True) -> Mesh:
    """Read a triangle surface with meshio (.vtk, .vtu, .ply, .obj, .off, .stl, .msh, …).

    Only triangle cells are used; quads or polygons are an error (triangulate them first).
    Raises ``ValueError`` for unreadable files or files without triangles.
    """
    import meshio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No mesh file at {path}.")
    try:
        m = meshio.read(path)
    except (Exception, SystemExit) as exc:  # meshio raises many kinds (even SystemExit) on corrupt files
        raise ValueError(f"Could not read mesh {path}: {type(exc).__name__}: {exc}") from exc
    tris = [c.data for c in m.cells if c.type == "triangle"]
    if not tris:
        kinds = sorted({c.type for c in m.cells})
        raise ValueError(f"Mesh file {path} has no triangle cells (found: {kinds or 'none'}).")
    points = np.asarray(m.points, dtype=np.float64)
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    return Mesh(points, np.concatenate(tris), validate=validate)


def atomic_write(path, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` then rename onto ``path``: no half-written file is ever left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write_fn(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_mesh(path, mesh: Mesh, point_data: dict | None = None, file_format: str | None = None) -> Path:
    """Write ``mesh`` (and optional per-vertex arrays) with meshio; format from the suffix."""
    import meshio

    out = meshio.Mesh(
        mesh.vertices,
        [("triangle", mesh.triangles.astype(np.int32))],
        point_data={k: np.asarray(v) for k, v in (point_data or {}).items()},
    )
    fmt = file_format or meshio._helpers._filetypes_from_path(Path(path))[0]
    return atomic_write(path, lambda tmp: meshio.write(tmp, out, file_format=fmt))


def load_mat(path) -> dict[str, np.ndarray]:
    """Variables of a MATLAB ``.mat`` file (v4–v7.2) as arrays, without MATLAB's ``__`` headers."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No .mat file at {path}.")
    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:
        raise ValueError(f"Could not read MATLAB file {path}: {type(exc).__name__}: {exc}") from exc
    return {k: v for k, v in data.items() if not k.startswith("__")}
