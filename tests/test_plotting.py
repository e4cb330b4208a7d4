"""Figures (ecgi_jax.plotting): the drawn data are the given data, and files are written."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ecgi_jax import geometry, metrics, plotting  # noqa: E402


@pytest.fixture(scope="module")
def case():
    mesh = geometry.icosphere(1, 10.0)  # 42 vertices, 80 triangles
    rng = np.random.default_rng(0)
    # A travelling wave from the +z pole (activation times grow with the polar angle), and a noisy copy.
    theta = np.arccos(mesh.vertices[:, 2] / 10.0)
    t = np.arange(30) * 0.1
    truth = 1.0 / (1.0 + np.exp(-(t[None, :] - theta[:, None]) * 20))
    truth[theta > 2.6] = 0.0  # not reached by the wave: these nodes never activate
    return mesh, {"truth": truth, "estimate": truth + 0.05 * rng.normal(size=truth.shape)}


def _is_png(path):
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heart_maps_colours_faces_by_the_field(tmp_path, case):
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    mesh, fields = case
    times = [0, 10, 20]
    fig = plotting.heart_maps(mesh, fields, times, dt=0.1, path=tmp_path / "maps.png")
    assert _is_png(tmp_path / "maps.png")
    panels = [ax for ax in fig.axes if ax.name == "3d"]
    assert len(panels) == len(fields) * len(times)
    lo, hi = fields["truth"].min(), fields["truth"].max()
    for i, f in enumerate(fields.values()):
        for j, k in enumerate(times):
            (coll,) = [c for c in panels[i * len(times) + j].collections if isinstance(c, Poly3DCollection)]
            np.testing.assert_allclose(coll.get_array(), f[mesh.triangles, k].mean(axis=1))
            assert coll.norm.vmin == lo and coll.norm.vmax == hi  # the truth's scale everywhere
    assert panels[1].get_title() == "t = 1"


def test_heart_maps_scatter_without_faces(case):
    mesh, fields = case
    fig = plotting.heart_maps(mesh.vertices, {"truth": fields["truth"]}, [5], vmin=0.0, vmax=2.0)
    (coll,) = fig.axes[0].collections
    np.testing.assert_allclose(coll.get_array(), fields["truth"][:, 5])
    assert (coll.norm.vmin, coll.norm.vmax) == (0.0, 2.0)


def test_activation_map_shows_activation_times(tmp_path, case):
    mesh, fields = case
    fig = plotting.activation_map(mesh, fields, dt=0.1, path=tmp_path / "at.png")
    assert _is_png(tmp_path / "at.png")
    panels = [ax for ax in fig.axes if ax.name == "3d"]
    assert [ax.get_title() for ax in panels] == list(fields)
    for ax, f in zip(panels, fields.values()):
        at, active = (np.asarray(x) for x in metrics.activation_times(f, 0.1, return_mask=True))
        at = np.where(active, at, np.nan)
        drawn = np.ma.filled(np.ma.asarray(ax.collections[0].get_array(), float), np.nan)
        np.testing.assert_allclose(drawn, at[mesh.triangles].mean(axis=1), rtol=1e-6)
    # Nodes around the -z pole never activate: their triangles are masked (drawn grey).
    masked = np.ma.getmaskarray(panels[0].collections[0].get_array())
    grey = (np.asarray(fields["truth"]).max(axis=1) == 0)[mesh.triangles].any(axis=1)
    assert grey.any() and np.array_equal(masked, grey)


def test_time_courses_lines_are_the_signals(tmp_path, case):
    _, fields = case
    fig = plotting.time_courses(fields, [0, 7], dt=0.1, path=tmp_path / "tc.png")
    assert _is_png(tmp_path / "tc.png")
    assert len(fig.axes) == 2
    for ax, node in zip(fig.axes, [0, 7]):
        assert ax.get_title() == f"node {node}"
        for line, f in zip(ax.get_lines(), fields.values()):
            np.testing.assert_allclose(line.get_xdata(), np.arange(30) * 0.1)
            np.testing.assert_allclose(line.get_ydata(), f[node])


def test_loss_curves_and_error_vs_noise(tmp_path):
    history = {"step": [10, 20, 30], "loss": [3.0, 2.0, 1.0], "data": [1.0, 0.5, 0.2], "alpha": [0.1]}
    fig = plotting.loss_curves(history, path=tmp_path / "loss.png")
    assert _is_png(tmp_path / "loss.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "data"]  # "alpha" has the wrong length
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1.0, 0.5, 0.2])
    assert ax.get_yscale() == "log"

    rows = [
        {"method": "a", "sigma": 0.1, "re": 0.2}, {"method": "a", "sigma": 0.1, "re": 0.4},
        {"method": "a", "sigma": 0.2, "re": 0.5}, {"method": "b", "sigma": 0.1, "re": 0.3},
    ]
    fig = plotting.error_vs_noise(rows, path=tmp_path / "noise.pdf")
    assert (tmp_path / "noise.pdf").read_bytes()[:5] == b"%PDF-"
    lines = fig.axes[0].get_lines()
    a = [line for line in lines if line.get_marker() == "o"]
    np.testing.assert_allclose(a[0].get_xdata(), [0.1, 0.2])
    np.testing.assert_allclose(a[0].get_ydata(), [0.3, 0.5])  # mean over repeats
    np.testing.assert_allclose(a[1].get_ydata(), [0.3])
    # The same table given as columns draws the same lines.
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    b = [line for line in plotting.error_vs_noise(cols).axes[0].get_lines() if line.get_marker() == "o"]
    np.testing.assert_allclose(b[0].get_ydata(), [0.3, 0.5])


def test_bad_inputs_raise_clear_errors(case):
    mesh, fields = case
    with pytest.raises(ValueError, match=r"sample indices in \[0, 30\)"):
        plotting.heart_maps(mesh, fields, [30])
    with pytest.raises(ValueError, match="has 41 nodes; the mesh has 42"):
        plotting.heart_maps(mesh, {"x": fields["truth"][1:]}, [0])
    with pytest.raises(ValueError, match="nodes must be indices"):
        plotting.time_courses(fields, [42])
    with pytest.raises(ValueError, match="'step'"):
        plotting.loss_curves({"loss": [1.0]})
    with pytest.raises(ValueError, match=r"no column\(s\) \['re'\]"):
        plotting.error_vs_noise([{"method": "a", "sigma": 0.1}])
