"""Figures for ECGI results (matplotlib; works headless).

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``, so no GUI
backend and no global figure state is involved), returns it, and also saves it when ``path`` is
given (format from the suffix: .png, .pdf, .svg, ...; written atomically).

* :func:`heart_maps`: potentials on the heart surface, one row per field (truth, methods), one
  column per time.
* :func:`activation_map`: activation times on the heart surface, one panel per field.
* :func:`time_courses`: potentials against time at a few nodes, all fields overlaid.
* :func:`loss_curves`: a training history (``Solution.history``).
* :func:`error_vs_noise`: an error metric against the noise level, one line per method.

This module is imported on demand (``import ecgi_jax.plotting``), not by ``import ecgi_jax``:
importing matplotlib takes a while.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["heart_maps", "activation_map", "time_courses", "loss_curves", "error_vs_noise"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path):
    if path is not None:
        from .geometry import atomic_write

        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=fig.dpi))
    return fig


def _surface(mesh_or_vertices):
    """``(vertices (n, 3), triangles (f, 3) or None)`` from a Mesh, a pair, or bare vertices."""
    if hasattr(mesh_or_vertices, "vertices") and hasattr(mesh_or_vertices, "triangles"):
        v, t = mesh_or_vertices.vertices, mesh_or_vertices.triangles
    elif isinstance(mesh_or_vertices, (tuple, list)) and len(mesh_or_vertices) == 2:
        v, t = mesh_or_vertices
    else:
        v, t = mesh_or_vertices, None
    v = np.asarray(v, float)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (n, 3); got {v.shape}.")
    if t is not None:
        t = np.asarray(t, np.int64)
        if t.ndim != 2 or t.shape[1] != 3 or (t.size and (t.min() < 0 or t.max() >= len(v))):
            raise ValueError(f"triangles must be (f, 3) indices into the {len(v)} vertices; got shape {t.shape}.")
    return v, t


def _fields(fields: Mapping, n: int | None = None) -> dict[str, np.ndarray]:
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError("fields must be a non-empty dict {name: (n_nodes, n_samples) array}.")
    out = {}
    for name, f in fields.items():
        f = np.asarray(f, float)
        if f.ndim != 2:
            raise ValueError(f"field {name!r} must be 2-D (n_nodes, n_samples); got shape {f.shape}.")
        if n is not None and f.shape[0] != n:
            raise ValueError(f"field {name!r} has {f.shape[0]} nodes; the mesh has {n} vertices.")
        out[str(name)] = f
    shapes = {f.shape for f in out.values()}
    if len(shapes) != 1:
        raise ValueError(f"all fields must have the same shape; got {sorted(shapes)}.")
    return out


def _draw_surface(ax, v, t, values, cmap, norm, view):
    """One 3-D panel: triangles coloured by the mean of their corner values (or a scatter)."""
    import matplotlib as mpl

    if t is None:
        art = ax.scatter(v[:, 0], v[:, 1], v[:, 2], c=values, cmap=cmap, norm=norm, s=8, depthshade=False)
    else:
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection

        cm = (mpl.colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad="lightgrey")
        art = Poly3DCollection(v[t], cmap=cm, norm=norm, linewidths=0)
        art.set_array(values[t].mean(axis=1))
        ax.add_collection3d(art)
    lo, hi = v.min(axis=0), v.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo).max() / 2
    ax.set(xlim=(mid[0] - half, mid[0] + half), ylim=(mid[1] - half, mid[1] + half), zlim=(mid[2] - half, mid[2] + half))
    ax.set_box_aspect((1, 1, 1), zoom=1.3)
    ax.view_init(*view)
    ax.set_axis_off()
    return art


def heart_maps(
    mesh_or_vertices,
    fields: Mapping[str, np.ndarray],
    times: Sequence[int],
    *,
    dt: float | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    view: tuple[float, float] = (20.0, -60.0),
    path=None,
):
    """Heart-surface maps: one row per field (e.g. truth, then each method), one column per time.

    All panels share one colour scale, by default the range of the *first* field (put the
    truth first): a reconstruction is judged on the truth's scale, and values outside it
    saturate.

    Args:
        mesh_or_vertices: a :class:`~ecgi_jax.geometry.Mesh`, a ``(vertices, triangles)`` pair,
            or ``(n, 3)`` vertices alone (then a scatter plot is drawn).
        fields: ``{name: (n, T) array}``, all the same shape.
        times: sample indices to show (columns).
        dt: sample spacing; if given, column titles show ``t = index·dt``.
        vmin, vmax: colour limits (default: min/max of the first field).
        cmap: matplotlib colour map name.
        view: ``(elevation, azimuth)`` of the 3-D view in degrees.
        path: if given, the figure is saved there.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Raises:
        ValueError: bad shapes, or a time index outside ``[0, T)``.
    """
    from matplotlib.colors import Normalize

    v, t = _surface(mesh_or_vertices)
    fields = _fields(fields, len(v))
    n_t = next(iter(fields.values())).shape[1]
    times = [int(k) for k in np.atleast_1d(times)]
    if not times or min(times) < -n_t or max(times) >= n_t:
        raise ValueError(f"times must be sample indices in [0, {n_t}); got {times}.")
    first = next(iter(fields.values()))
    norm = Normalize(first.min() if vmin is None else vmin, first.max() if vmax is None else vmax)
    fig = _figure(2.6 * len(times) + 0.8, 2.6 * len(fields))
    art = None
    for i, (name, f) in enumerate(fields.items()):
        for j, k in enumerate(times):
            ax = fig.add_subplot(len(fields), len(times), i * len(times) + j + 1, projection="3d")
            art = _draw_surface(ax, v, t, f[:, k], cmap, norm, view)
            if i == 0:
                ax.set_title(f"t = {k * dt:g}" if dt is not None else f"sample {k}")
            if j == 0:
                ax.text2D(-0.05, 0.5, name, transform=ax.transAxes, rotation=90, va="center", ha="right")
    fig.colorbar(art, ax=fig.axes, shrink=0.6, label="potential")
    return _save(fig, path)


def activation_map(
    mesh_or_vertices,
    fields: Mapping[str, np.ndarray],
    *,
    dt: float = 1.0,
    threshold: float = 0.5,
    cmap: str = "plasma",
    view: tuple[float, float] = (20.0, -60.0),
    path=None,
):
    """Activation-time maps (:func:`ecgi_jax.metrics.activation_times`, threshold method), one
    panel per field, on the colour scale of the first field's activation times. Nodes that never
    activate are grey (a triangle is grey if any of its corners is).

    Args:
        mesh_or_vertices: as in :func:`heart_maps`.
        fields: ``{name: (n, T) potentials}``.
        dt: sample spacing (times are in its units).
        threshold: normalized activation level (see ``activation_times``).
        cmap, view, path: as in :func:`heart_maps`.

    Returns:
        The Figure; each panel's title shows the field name.
    """
    from matplotlib.colors import Normalize

    from .metrics import activation_times

    v, t = _surface(mesh_or_vertices)
    fields = _fields(fields, len(v))
    at = {}
    for name, f in fields.items():
        times, active = (np.asarray(x) for x in activation_times(f, dt, threshold=threshold, return_mask=True))
        at[name] = np.where(active, times, np.nan)  # never activated: drawn grey
    first = next(iter(at.values()))
    lo, hi = (np.nanmin(first), np.nanmax(first)) if np.isfinite(first).any() else (0.0, 1.0)
    norm = Normalize(lo, max(hi, lo + 1e-12))
    fig = _figure(2.8 * len(at) + 0.8, 3.0)
    art = None
    for j, (name, a) in enumerate(at.items()):
        ax = fig.add_subplot(1, len(at), j + 1, projection="3d")
        art = _draw_surface(ax, v, t, a, cmap, norm, view)
        ax.set_title(name)
    fig.colorbar(art, ax=fig.axes, shrink=0.7, label="activation time")
    return _save(fig, path)


def time_courses(fields: Mapping[str, np.ndarray], nodes: Sequence[int], dt: float = 1.0, *, path=None):
    """Potentials against time at ``nodes``: one panel per node, one line per field.

    Args:
        fields: ``{name: (n, T) array}``.
        nodes: node indices (one panel each).
        dt: sample spacing (x axis is ``index·dt``).
        path: if given, the figure is saved there.

    Returns:
        The Figure (panel ``i`` holds node ``nodes[i]``, lines in the order of ``fields``).

    Raises:
        ValueError: bad shapes or a node index out of range.
    """
    fields = _fields(fields)
    n, n_t = next(iter(fields.values())).shape
    nodes = [int(k) for k in np.atleast_1d(nodes)]
    if not nodes or min(nodes) < 0 or max(nodes) >= n:
        raise ValueError(f"nodes must be indices in [0, {n}); got {nodes}.")
    time = np.arange(n_t) * dt
    fig = _figure(4.0 * min(len(nodes), 3), 2.6 * -(-len(nodes) // 3))
    for i, node in enumerate(nodes):
        ax = fig.add_subplot(-(-len(nodes) // 3), min(len(nodes), 3), i + 1)
        for name, f in fields.items():
            ax.plot(time, f[node], label=name, lw=1.2)
        ax.set(title=f"node {node}", xlabel="time", ylabel="potential")
        if i == 0:
            ax.legend(fontsize="small")
    return _save(fig, path)


def loss_curves(history: Mapping[str, Sequence[float]], *, path=None):
    """Training curves from ``Solution.history`` (``{"step": [...], "loss": [...], term: [...]}``).

    Every key other than ``"step"`` with as many entries as ``"step"`` is drawn against the step,
    on a log scale when all drawn values are positive.

    Raises:
        ValueError: no ``"step"`` entry, or nothing to draw.
    """
    if not isinstance(history, Mapping) or "step" not in history:
        raise ValueError("history must be a dict with a 'step' list (Solution.history of an iterative method).")
    step = np.asarray(history["step"], float)
    curves = {k: np.asarray(v, float) for k, v in history.items() if k != "step" and len(v) == len(step) and len(v)}
    if not curves:
        raise ValueError(f"history has no curve with {len(step)} entries to draw (keys: {sorted(history)}).")
    fig = _figure(5.5, 3.5)
    ax = fig.add_subplot()
    for name, c in curves.items():
        ax.plot(step, c, label=name, lw=2.0 if name == "loss" else 1.0)
    if all(np.all(c[np.isfinite(c)] > 0) for c in curves.values()):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss")
    ax.legend(fontsize="small")
    return _save(fig, path)


def error_vs_noise(table, *, x: str = "sigma", y: str = "re", group: str = "method", path=None):
    """Mean (± standard deviation over repeats) of metric ``y`` against ``x``, one line per ``group``.

    Args:
        table: rows as dicts (a list, e.g. the ``rows`` of an experiment's results JSON), or a
            dict of columns ``{column: list}``.
        x, y, group: column names (defaults: ``sigma``, ``re``, ``method``).
        path: if given, the figure is saved there.

    Returns:
        The Figure; line ``i`` is the ``i``-th group in order of first appearance.

    Raises:
        ValueError: a missing column or an empty table.
    """
    if isinstance(table, Mapping):
        cols = {k: list(v) for k, v in table.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) != 1:
            raise ValueError("all columns of the table must have the same length.")
        rows = [dict(zip(cols, vals)) for vals in zip(*cols.values())]
    else:
        rows = list(table)
    if not rows:
        raise ValueError("the table is empty.")
    missing = [c for c in (x, y, group) if c not in rows[0]]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}; it has {sorted(rows[0])}.")
    fig = _figure(5.0, 3.5)
    ax = fig.add_subplot()
    groups: dict = {}
    for r in rows:
        groups.setdefault(r[group], {}).setdefault(float(r[x]), []).append(float(r[y]))
    for name, by_x in groups.items():
        xs = np.array(sorted(by_x), float)
        mean = np.array([np.mean(by_x[v]) for v in xs])
        std = np.array([np.std(by_x[v]) for v in xs])
        ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=str(name))
    ax.set(xlabel=x, ylabel=y)
    ax.legend(fontsize="small")
    return _save(fig, path)
