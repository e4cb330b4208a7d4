"""Mesh and array I/O: meshio for surface meshes, scipy for MATLAB ``.mat`` files."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from ._mesh import Mesh

__all__ = ["load_mesh", "save_mesh", "load_mat", "atomic_write"]


def load_mesh(path, *, validate: bool = True) -> Mesh:
    """Read a triangle surface with meshio (.vtk, .vtu, .ply, .obj, .off, .stl, .msh, …).

    Only triangle cells are used; quads or polygons are an error (triangulate them first).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unreadable, truncated or corrupt file, a file without triangle cells, or
            a mesh that fails :meth:`Mesh.validate` (the message names the file and the problem).
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
    if points.ndim == 2 and points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    try:
        return Mesh(points, np.concatenate(tris), validate=validate)
    except ValueError as exc:
        raise ValueError(f"Mesh file {path} is not a valid triangle surface: {exc}") from exc


try:  # POSIX advisory locks: a temporary file is locked for as long as its writer lives
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# Without locks, a leftover temporary file counts as stale only when it is this old (seconds).
_STALE_AGE_S = 3600.0


def _temporary_name_pattern(path: Path) -> re.Pattern:
    # The names atomic_write gives its temporary files:
    # tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix) -> ".{stem}.XXXXXXXX{suffix}", where X is
    # one of tempfile's name characters (lower-case letters, digits, "_").
    return re.compile(re.escape(f".{path.stem}.") + r"[a-z0-9_]{8}" + re.escape(path.suffix))


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files that killed writers of ``path`` left beside it."""
    folder = path.parent
    try:
        names = os.listdir(folder)
    except OSError:  # no folder yet (atomic_write creates it) or not readable: nothing to clean
        return
    pattern = _temporary_name_pattern(path)
    for name in names:
        if not pattern.fullmatch(name):
            continue
        tmp = folder / name
        try:
            if fcntl is None:
                if time.time() - tmp.stat().st_mtime > _STALE_AGE_S:
                    tmp.unlink()
                continue
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live writer holds it
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                tmp.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


def _lock_temporary(tmp: Path) -> int | None:
    """An open, exclusively locked descriptor of ``tmp`` (recreated if a cleaner removed it first)."""
    if fcntl is None:
        return None
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # removed as stale between its creation and the lock: make it again


def atomic_write(path, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` then rename onto ``path``: no half-written file is ever left.

    Temporary files that killed writers of ``path`` left beside it are removed first; this
    writer's own temporary file stays locked (POSIX advisory lock) until it is renamed, so a
    concurrent writer's cleanup never removes a live one.
    """
    path = Path(path)
    _remove_stale_temporaries(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    lock = None
    try:
        lock = _lock_temporary(tmp)
        write_fn(tmp)
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    return path


def save_mesh(path, mesh: Mesh, point_data: dict | None = None, file_format: str | None = None) -> Path:
    """Write ``mesh`` (and optional per-vertex arrays) with meshio; format from the suffix.

    The file is written to a temporary name and renamed (:func:`atomic_write`), so a failed write
    leaves neither a partial file nor a changed old one.

    Raises:
        TypeError: ``mesh`` is not a :class:`Mesh`.
        ValueError: a ``point_data`` array whose first axis is not ``n_vertices``, or a suffix
            meshio does not know (pass ``file_format=``).
    """
    import meshio

    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh; got {type(mesh).__name__}.")
    for key, value in (point_data or {}).items():
        if np.shape(value)[:1] != (mesh.n_vertices,):
            raise ValueError(
                f"point_data[{key!r}] has shape {np.shape(value)}; expected ({mesh.n_vertices}, ...) "
                "(one value per vertex)."
            )
    if file_format is None:
        try:
            file_format = meshio._helpers._filetypes_from_path(Path(path))[0]
        except (meshio.ReadError, KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"Cannot tell the mesh format from the file name {Path(path).name!r}; use a known suffix "
                "(.vtk, .vtu, .ply, .obj, .off, .stl, .msh) or pass file_format=."
            ) from exc
    out = meshio.Mesh(
        mesh.vertices,
        [("triangle", mesh.triangles.astype(np.int32))],
        point_data={k: np.asarray(v) for k, v in (point_data or {}).items()},
    )
    return atomic_write(path, lambda tmp: meshio.write(tmp, out, file_format=file_format))


def load_mat(path) -> dict[str, np.ndarray]:
    """Variables of a MATLAB ``.mat`` file as arrays, without MATLAB's ``__`` headers.

    v4–v7.2 files are parsed by ``scipy.io.loadmat``; v7.3 files (HDF5, what MATLAB writes for
    large variables and ``save -v7.3``) by h5py (:func:`_load_mat73`): numeric and logical arrays
    in MATLAB's shape (HDF5 stores them transposed), sparse matrices as ``scipy.sparse`` CSC,
    char arrays as ``str``, structs as ``dict`` and cell arrays as object arrays. No code is
    executed either way.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an empty, truncated or corrupt file, or a v7.3 variable of a kind not read
            (MATLAB objects such as ``table`` or ``string``); the message names the file.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No .mat file at {path}.")
    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to v7.3 (HDF5) files
        return _load_mat73(path)
    except Exception as exc:
        raise ValueError(f"Could not read MATLAB file {path} (corrupt or truncated?): {type(exc).__name__}: {exc}") from exc
    return {k: v for k, v in data.items() if not k.startswith("__")}


_MAT73_NUMERIC = {
    "double": np.float64, "single": np.float32, "logical": np.bool_, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
}


def _load_mat73(path: Path) -> dict:
    """The variables of a MATLAB v7.3 (HDF5) file (see :func:`load_mat`)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            # "#refs#" holds the targets of cell and struct-array references, "#subsystem#" MATLAB objects.
            return {name: _mat73_value(f[name], f, f"{path}:{name}") for name in f if not name.startswith("#")}
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"Could not read MATLAB v7.3 file {path} (corrupt or truncated?): {type(exc).__name__}: {exc}") from exc


def _mat73_complex(a: np.ndarray) -> np.ndarray:
    # MATLAB writes complex data as a compound of two fields.
    return a["real"] + 1j * a["imag"] if a.dtype.names == ("real", "imag") else a


def _mat73_value(node, f, where: str):
    import h5py
    import scipy.sparse as sp

    cls = node.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if isinstance(node, h5py.Group):
        if "MATLAB_sparse" in node.attrs:
            n_rows = int(node.attrs["MATLAB_sparse"])
            jc = np.asarray(node["jc"], np.int64)
            data = _mat73_complex(np.asarray(node["data"])) if "data" in node else np.zeros(0)
            ir = np.asarray(node["ir"], np.int64) if "ir" in node else np.zeros(0, np.int64)
            dtype = np.bool_ if cls == "logical" else data.dtype
            return sp.csc_matrix((data.astype(dtype), ir, jc), shape=(n_rows, len(jc) - 1))
        if cls == "struct" or not cls:
            return {k: _mat73_value(node[k], f, f"{where}.{k}") for k in node}
        raise ValueError(f"{where}: a MATLAB {cls!r} object is not read; convert it to plain arrays (or save with -v7).")
    if node.attrs.get("MATLAB_empty", 0):
        # The data of an empty variable is its MATLAB size vector (a 1-D array: nothing to reverse).
        dims = tuple(int(d) for d in np.asarray(node).ravel()) if node.ndim else (0, 0)
        return "" if cls == "char" else np.zeros(dims, _MAT73_NUMERIC.get(cls, np.float64))
    raw = node[()]
    if cls == "cell" or h5py.check_dtype(ref=node.dtype) is not None:  # a cell, or a field of a struct array
        refs = np.asarray(raw).T
        out = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            out[idx] = _mat73_value(f[refs[idx]], f, f"{where}{{{','.join(str(i + 1) for i in idx)}}}")
        return out
    if cls == "char":
        codes = np.asarray(raw, np.uint16).T
        rows = ["".join(map(chr, row)) for row in np.atleast_2d(codes)]
        return rows[0] if len(rows) == 1 else rows
    if cls not in _MAT73_NUMERIC:
        raise ValueError(f"{where}: a MATLAB {cls or 'unlabelled'!r} variable is not read; convert it to plain arrays (or save with -v7).")
    arr = _mat73_complex(np.asarray(raw))
    if not np.iscomplexobj(arr):
        arr = arr.astype(_MAT73_NUMERIC[cls], copy=False)
    return arr.T  # HDF5 holds MATLAB's column-major arrays with the dimensions reversed
