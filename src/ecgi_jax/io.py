"""Result files: solutions to ``.npz`` (+ a ParaView time series), and reading user inputs.

* :func:`save_solution` / :func:`load_solution`: a :class:`~ecgi_jax.Solution` (potentials,
  recovery variable, training history, method, options, diagnostics) with provenance (package
  versions, date) in one ``.npz``; with a heart mesh also a time-series ``.xdmf`` that ParaView
  opens directly (File → Open, then press play).
* :func:`load_array`: a 2-D array (``Y``, ``A``, ``U``) from ``.npy``, ``.npz`` or MATLAB ``.mat``.
* :func:`load_mesh`: a triangle surface from any meshio format, or from an ``.npz`` holding
  ``vertices`` and ``triangles`` (what :func:`save_solution` and ``ecgi-jax simulate`` write).

Everything is read with ``allow_pickle=False`` (no code runs on load), and every file is written
atomically: to a temporary name in the target folder, then renamed, so an interrupted run never
leaves a half-written file behind. A process killed mid-write leaves its temporary file; the next
write of the same target removes it (a temporary file another live writer is still filling is
locked while written and left alone).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._solve import Result, Solution
from .geometry import Mesh, atomic_write, load_mat
from .geometry import load_mesh as _load_meshio

__all__ = ["save_solution", "save_arrays", "load_solution", "LoadedSolution", "load_array", "load_mesh", "FORMAT"]

FORMAT = "ecgi_jax.solution/1"
"""Identifier stored in every solution file (bumped if the layout changes)."""

# Arrays larger than this in ``diagnostics`` are stored as npz entries, not inlined in the JSON.
_INLINE_MAX = 10_000


# ----------------------------------------------------------------------------------------------
# JSON-safe metadata


def _json_safe(x: Any, arrays: dict | None = None, prefix: str = "") -> Any:
    """``x`` as plain JSON (dict/list/str/int/float/bool/None).

    Numeric numpy/jax arrays become nested lists; a big one (more than ``_INLINE_MAX`` entries)
    becomes, when ``arrays`` is given, an npz entry named ``prefix`` referenced as
    ``{"__array__": prefix}``, else its description. Non-finite floats become ``None`` (strict
    JSON has no NaN); plain dataclasses (e.g. ``APParams``) become dicts; anything else
    (operators, PRNG keys, callables) its description ``"<TypeName shape>"``.
    """
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v, arrays, f"{prefix}.{k}") for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v, arrays, f"{prefix}.{i}") for i, v in enumerate(x)]
    arr = _as_numeric_array(x)
    if arr is not None:
        if arr.ndim == 0:
            return _json_safe(arr.item())
        if arr.size <= _INLINE_MAX:
            return _json_safe(arr.tolist())
        if arrays is not None:
            arrays[prefix] = arr
            return {"__array__": prefix}
    elif dataclasses.is_dataclass(x) and not isinstance(x, type) and not hasattr(x, "shape"):
        return {f.name: _json_safe(getattr(x, f.name), arrays, f"{prefix}.{f.name}") for f in dataclasses.fields(x)}
    shape = getattr(x, "shape", None)
    return f"<{type(x).__name__}{'' if shape is None else ' ' + str(tuple(shape))}>"


def _describe_operator(x):
    # Options hold operators (Laplacians, gradients), meshes and data arrays: record what they
    # were, not their entries (which can be megabytes and are not the method's settings).
    if isinstance(x, (list, tuple)):
        return type(x)(_describe_operator(v) for v in x)
    shape = getattr(x, "shape", None)
    if shape is not None and int(np.prod(shape)) > 16:
        return f"<{type(x).__name__} {tuple(shape)}>"
    return x


def _as_numeric_array(x) -> np.ndarray | None:
    if not (isinstance(x, np.ndarray) or type(x).__module__.startswith(("jax", "jaxlib"))):
        return None
    try:
        arr = np.asarray(x)
    except Exception:  # PRNG key arrays and other non-numeric jax values
        return None
    return arr if arr.dtype.kind in "biuf" else None


def _restore_arrays(x: Any, arrays: dict) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__array__"}:
            return arrays[x["__array__"]]
        return {k: _restore_arrays(v, arrays) for k, v in x.items()}
    if isinstance(x, list):
        return [_restore_arrays(v, arrays) for v in x]
    return x


def _versions() -> dict[str, str]:
    import jax

    from . import __version__

    return {"ecgi_jax": __version__, "jax": jax.__version__, "numpy": np.__version__}


# ----------------------------------------------------------------------------------------------
# safe .npy/.npz reading (atomic writes: geometry.atomic_write)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive with members / an empty one


def _load_numpy(path: Path, kind: str):
    """The array of an ``.npy`` (``kind=".npy"``) or the ``{name: array}`` of an ``.npz``
    (``".npz"``) at ``path``, read with ``allow_pickle=False``; a ``ValueError`` with our own
    message for anything else (never numpy's advice to load pickles)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise ValueError(f"Could not read {path}: {exc}") from exc
    if not head.startswith(_NPY_MAGIC if kind == ".npy" else _ZIP_MAGICS):
        what = "no data at all" if not head else f"it does not start like a {kind} file"
        raise ValueError(f"{path} is not a valid {kind} file ({what}): a corrupt or truncated file, or another format named {kind}.")
    try:
        if kind == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            entries = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's refusal of object (pickled) arrays
            raise ValueError(
                f"{path} holds object arrays (pickled Python objects): object arrays are refused, since "
                "loading them could run code; save plain numeric arrays."
            ) from None
        raise ValueError(f"{path} is not a valid {kind} file (corrupt or truncated): {exc}") from exc
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, OSError
        raise ValueError(f"{path} is not a valid {kind} file (corrupt or truncated): {type(exc).__name__}: {exc}") from exc
    for k, v in entries.items():
        if not isinstance(v, np.ndarray):  # numpy hands back the raw bytes of a member that is not an .npy
            raise ValueError(f"{path} is not a valid .npz file: its entry {k!r} is not a numpy array (corrupt file).")
    return entries


# ----------------------------------------------------------------------------------------------
# solutions


@dataclasses.dataclass(frozen=True)
class LoadedSolution:
    """What :func:`load_solution` read back.

    Attributes:
        solution: the :class:`~ecgi_jax.Solution` (numpy arrays; ``options`` and ``diagnostics``
            as stored, i.e. JSON-safe: non-finite floats are ``None``, non-array objects such
            as operators are ``"<TypeName shape>"`` strings).
        truth: ``(N, T)`` ground truth if it was saved, else ``None``.
        times: ``(T,)`` sample times if they were saved, else ``None``.
        mesh: the heart :class:`~ecgi_jax.geometry.Mesh` if it was saved, else ``None``.
        metadata: the whole metadata record (format, versions, date, shapes, ...).
    """

    solution: Solution
    truth: np.ndarray | None
    times: np.ndarray | None
    mesh: Mesh | None
    metadata: dict


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(mesh, Mesh):
        return np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        v, t = np.asarray(mesh[0], float), np.asarray(mesh[1])
        if t.ndim != 2 or t.shape[1] != 3 or t.dtype.kind not in "iu" or (t.size and (t.min() < 0 or t.max() >= len(v))):
            raise ValueError(f"mesh triangles must be (F, 3) integer indices into the {len(v)} vertices; got shape {t.shape}, dtype {t.dtype}.")
        return v, t.astype(np.int64)
    raise TypeError(f"mesh must be an ecgi_jax.geometry.Mesh or a (vertices, triangles) pair; got {type(mesh).__name__}.")


def _field(x, name, shape=None) -> np.ndarray | None:
    if x is None:
        return None
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {shape} like the solution's potentials.")
    return arr


def save_arrays(path, arrays: dict) -> Path:
    """``np.savez`` of ``arrays`` to exactly ``path`` (no ".npz" appended), atomically: a killed
    write leaves the old file or none, never half of one."""

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(Path(path), write)


def save_solution(path, solution: Solution, mesh=None, *, times=None, truth=None, xdmf: bool | None = None) -> list[Path]:
    """Write ``solution`` to ``path`` (``.npz``) and, given a mesh, a ParaView time series.

    The ``.npz`` holds ``potentials``, ``recovery`` (if any), ``truth``/``times`` (if given),
    ``vertices``/``triangles`` (if a mesh is given), the training history as
    ``history.<name>`` arrays, big diagnostic arrays as ``diagnostics.<name>``, and ``metadata``:
    a JSON string with the method, its options and diagnostics (JSON-safe), the format
    identifier, the versions of ecgi_jax/jax/numpy and the UTC date. Read it back with
    :func:`load_solution` (or plain ``numpy.load``).

    With a mesh, ``<path without suffix>.xdmf`` is written too: one frame per time sample with
    point data ``potential``, ``recovery`` and ``truth`` (those available). Its arrays are stored
    inline as float64 text (no HDF5 dependency; float32 values survive exactly) — about 23 bytes
    per value, e.g. 9 MB for 1000 nodes x 400 samples per field.

    Args:
        path: output ``.npz`` path (written exactly there; parent folders are created).
        solution: a :class:`~ecgi_jax.Solution` from :func:`ecgi_jax.solve`.
        mesh: optional heart mesh (:class:`~ecgi_jax.geometry.Mesh` or ``(vertices, triangles)``)
            with one vertex per row of ``solution.potentials``.
        times: optional ``(T,)`` sample times (default in the XDMF: the sample index).
        truth: optional ``(N, T)`` ground-truth potentials, stored beside the solution.
        xdmf: write the XDMF (default: whenever a mesh is given).

    Returns:
        The paths written (``.npz`` first).

    Raises:
        ValueError: shapes that do not match the potentials, or ``xdmf=True`` without a mesh.
        TypeError: a non-numeric array or a mesh of the wrong type.
    Nothing is written when the inputs are invalid.
    """
    if not isinstance(solution, Solution):
        raise TypeError(f"solution must be an ecgi_jax.Solution; got {type(solution).__name__}.")
    path = Path(path)
    if path.suffix.lower() == ".xdmf":
        raise ValueError(f"path {path} is the .npz to write (the .xdmf goes beside it, same name); give a .npz path.")
    U = _field(solution.potentials, "solution.potentials")
    if U.ndim != 2:
        raise ValueError(f"solution.potentials must be 2-D (N nodes, T samples); got shape {U.shape}.")
    n, n_t = U.shape
    arrays: dict[str, np.ndarray] = {"potentials": U}
    V = _field(solution.recovery, "solution.recovery", U.shape)
    if V is not None:
        arrays["recovery"] = V
    truth = _field(truth, "truth", U.shape)
    if truth is not None:
        arrays["truth"] = truth
    if times is not None:
        times = _field(times, "times", (n_t,))
        arrays["times"] = times
    vertices = triangles = None
    if mesh is not None:
        vertices, triangles = _mesh_arrays(mesh)
        if vertices.ndim != 2 or vertices.shape != (n, 3):
            raise ValueError(f"mesh has {vertices.shape[0]} vertices (shape {vertices.shape}); the potentials have {n} rows (nodes).")
        arrays["vertices"], arrays["triangles"] = vertices, triangles
    if xdmf is None:
        xdmf = mesh is not None
    if xdmf and mesh is None:
        raise ValueError("xdmf=True needs the heart mesh: pass mesh=.")
    history = solution.history or {}
    if not isinstance(history, dict):
        raise TypeError(f"solution.history must be a dict of lists or None; got {type(history).__name__}.")
    for k, v in history.items():
        arr = np.asarray(v)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"solution.history[{k!r}] must be numeric; got dtype {arr.dtype}.")
        arrays[f"history.{k}"] = arr
    big: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT,
        "method": solution.method,
        "result": Result(solution.result).value,
        "options": _json_safe({k: _describe_operator(v) for k, v in solution.options.items()}),
        "diagnostics": _json_safe(solution.diagnostics, big, "diagnostics"),
        "history_keys": list(history),
        "shape": [n, n_t],
        "dtype": str(U.dtype),
        "versions": _versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    arrays.update(big)
    arrays["metadata"] = np.array(json.dumps(meta, allow_nan=False))

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to other names
            np.savez(f, **arrays)

    written = [atomic_write(path, write_npz)]
    if xdmf:
        fields = {"potential": U, "recovery": V, "truth": truth}
        written.append(_write_xdmf(path.with_suffix(".xdmf"), vertices, triangles, fields, times))
    return written


def _write_xdmf(path: Path, vertices, triangles, fields: dict, times) -> Path:
    import meshio

    fields = {k: np.asarray(v, np.float64) for k, v in fields.items() if v is not None}
    n_t = next(iter(fields.values())).shape[1]
    t = np.arange(n_t, dtype=float) if times is None else np.asarray(times, float)

    def write(tmp: Path) -> None:
        # "XML": data inline in the one .xdmf file (no h5py needed, nothing beside it to move).
        with meshio.xdmf.TimeSeriesWriter(tmp, data_format="XML") as w:
            w.write_points_cells(np.asarray(vertices, np.float64), [("triangle", np.asarray(triangles, np.int64))])
            for k in range(n_t):
                w.write_data(float(t[k]), point_data={name: f[:, k] for name, f in fields.items()})

    return atomic_write(path, write)


def load_solution(path) -> LoadedSolution:
    """Read a file written by :func:`save_solution`.

    Returns:
        A :class:`LoadedSolution` (solution, truth, times, mesh, metadata); arrays are equal to
        those saved, ``options``/``diagnostics`` are the stored JSON-safe versions.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an ecgi_jax solution file (or an unreadable one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No solution file at {path}.")
    data = _load_numpy(path, ".npz")  # whatever its name: save_solution writes exactly the path given
    if "metadata" not in data or "potentials" not in data:
        raise ValueError(f"{path} is not an ecgi_jax solution file (no 'metadata'/'potentials' entries; it has {sorted(data)}).")
    meta = _read_metadata(path, data)
    try:
        history = {k: data[f"history.{k}"].tolist() for k in meta["history_keys"]} or None
    except KeyError as exc:
        raise ValueError(f"{path} is damaged: its metadata lists a training history entry whose array {exc.args[0]!r} is missing.") from None
    try:
        diagnostics = _restore_arrays(meta["diagnostics"], data)
    except KeyError as exc:
        raise ValueError(f"{path} is damaged: its metadata refers to a diagnostics array {exc.args[0]!r} that is missing.") from None
    except TypeError as exc:  # an "__array__" reference that is not a name
        raise ValueError(f"{path} has damaged metadata: a diagnostics array reference is not a name ({exc}).") from None
    U = data["potentials"]
    if U.ndim != 2 or U.dtype.kind not in "biuf":
        raise ValueError(f"{path} is damaged: 'potentials' must be a 2-D numeric array (N, T); got shape {U.shape}, dtype {U.dtype}.")
    for name in ("recovery", "truth"):
        if name in data and data[name].shape != U.shape:
            raise ValueError(f"{path} is damaged: {name!r} has shape {data[name].shape}, the potentials {U.shape}.")
    try:
        result = Result(meta.get("result", "success"))  # files written before results existed: success
    except ValueError:
        raise ValueError(f"{path} has damaged metadata: result {meta.get('result')!r} is not one of {[r.value for r in Result]}.") from None
    sol = Solution(
        potentials=U, method=meta["method"], diagnostics=diagnostics,
        options=meta["options"], recovery=data.get("recovery"), history=history, result=result,
    )
    mesh = None
    if "vertices" in data or "triangles" in data:
        if "vertices" not in data or "triangles" not in data:
            raise ValueError(f"{path} is damaged: it holds {'vertices' if 'vertices' in data else 'triangles'} but not {'triangles' if 'vertices' in data else 'vertices'} of the mesh.")
        try:
            mesh = Mesh(data["vertices"], data["triangles"], validate=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is damaged: its mesh cannot be read back ({exc}).") from exc
    return LoadedSolution(sol, data.get("truth"), data.get("times"), mesh, meta)


def _read_metadata(path: Path, data: dict) -> dict:
    """The metadata record of a solution file, checked: a ``ValueError`` naming the file and the
    damage for anything :func:`load_solution` could not use."""
    raw = data["metadata"]
    if raw.ndim != 0 or raw.dtype.kind not in "US":
        raise ValueError(
            f"{path} has damaged metadata: the 'metadata' entry must be one JSON string; got shape {raw.shape}, dtype {raw.dtype}."
        )
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} has damaged metadata: it is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has damaged metadata: expected a JSON object, got a {type(meta).__name__}.")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}; this version reads {FORMAT!r}.")
    expected = {"method": str, "options": dict, "diagnostics": object, "history_keys": list}
    missing = [k for k in expected if k not in meta]
    if missing:
        raise ValueError(f"{path} has damaged metadata: the field(s) {', '.join(map(repr, missing))} are missing.")
    for k, kind in expected.items():
        if not isinstance(meta[k], kind):
            raise ValueError(f"{path} has damaged metadata: {k!r} should be a {kind.__name__}, not a {type(meta[k]).__name__}.")
    if not all(isinstance(k, str) for k in meta["history_keys"]):
        raise ValueError(f"{path} has damaged metadata: 'history_keys' must list names (strings).")
    return meta


# ----------------------------------------------------------------------------------------------
# inputs


def _pick(entries: dict[str, np.ndarray], name: str | None, path: Path) -> np.ndarray:
    listing = ", ".join(f"{k} {tuple(v.shape)}" for k, v in entries.items()) or "nothing"
    if name is not None:
        if name not in entries:
            raise ValueError(f"{path} has no array named {name!r}; it holds: {listing}.")
        return entries[name]
    # A matrix has both dimensions > 1: MATLAB stores scalars and vectors as 1 x n arrays too.
    two_d = [k for k, v in entries.items() if v.ndim == 2 and min(v.shape) > 1]
    if len(two_d) != 1:
        which = "no 2-D matrix" if not two_d else f"{len(two_d)} 2-D matrices"
        raise ValueError(f"{path} holds {which} ({listing}); name the one to use (e.g. {path}:NAME on the command line, or name= in load_array).")
    return entries[two_d[0]]


def load_array(path, name: str | None = None) -> np.ndarray:
    """Read one numeric array from ``.npy``, ``.npz`` or MATLAB ``.mat`` (v4–v7.2).

    Args:
        path: the file.
        name: the variable to read from an ``.npz``/``.mat``; if ``None`` the file must hold
            exactly one 2-D matrix (both dimensions > 1; MATLAB stores vectors and scalars as
            ``1 x n`` arrays), which is returned. Not allowed for ``.npy`` (one array).

    Returns:
        The array, unchanged (dtype and shape as stored).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unknown suffix, an unreadable file, a missing ``name``, no/several 2-D
            arrays without ``name`` (the message lists what the file holds), or a non-numeric
            array (object arrays are never unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if name is not None:
            raise ValueError(f"{path} is a .npy file holding one array; drop the name {name!r}.")
        arr = _load_numpy(path, ".npy")
    elif suffix == ".npz":
        arr = _pick(_load_numpy(path, ".npz"), name, path)
    elif suffix == ".mat":
        entries = {k: v for k, v in load_mat(path).items() if isinstance(v, np.ndarray)}
        arr = _pick(entries, name, path)
    else:
        raise ValueError(f"Cannot read arrays from {path}: the suffix must be .npy, .npz or .mat (got {suffix or 'none'!r}).")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"The array {name or ''} in {path} is not numeric (dtype {arr.dtype}); expected numbers.")
    return arr


def load_mesh(path, *, validate: bool = True) -> Mesh:
    """Read a heart/torso triangle surface.

    ``.npz`` files must hold ``vertices`` ``(n, 3)`` and ``triangles`` ``(f, 3)`` (0-based), as
    written by :func:`save_solution` and ``ecgi-jax simulate``; every other suffix is read with
    meshio (:func:`ecgi_jax.geometry.load_mesh`: .vtk, .vtu, .ply, .obj, .off, .stl, .msh, …).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unreadable file, no triangles, or a mesh that fails validation.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        return _load_meshio(path, validate=validate)
    if not path.is_file():
        raise FileNotFoundError(f"No mesh file at {path}.")
    v, t = load_array(path, "vertices"), load_array(path, "triangles")
    return Mesh(np.asarray(v, np.float64), np.asarray(t, np.int64), validate=validate)

