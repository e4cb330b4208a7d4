import numpy as np
import pytest

from ecgi_jax.geometry import (
    Mesh,
    default_heart_torso,
    icosphere,
    load_mesh,
    reorient_outward,
    require_outward,
    save_mesh,
    sphere_mesh,
)


def test_icosphere_counts_area_and_volume():
    for s, nv in enumerate([12, 42, 162, 642]):
        m = icosphere(s, radius=2.0)
        assert m.n_vertices == nv and m.n_triangles == 2 * nv - 4
        assert m.is_closed and m.is_outward
    m = icosphere(4, radius=2.0)
    # Inscribed polyhedron: area and volume approach 4πr² and 4/3πr³ from below.
    assert 0.99 < m.face_areas.sum() / (16 * np.pi) < 1.0
    assert 0.985 < m.signed_volume / (32 / 3 * np.pi) < 1.0
    # Vertex normals of a sphere are radial.
    np.testing.assert_allclose(m.vertex_normals, m.vertices / 2.0, atol=1e-2)


def test_sphere_mesh_exact_count():
    m = sphere_mesh(500, radius=3.0, center=(1, 2, 3))
    assert m.n_vertices == 500 and m.is_outward and m.n_components() == 1


def test_default_geometry_is_realistic_and_deterministic():
    g = default_heart_torso()
    assert g.heart.n_vertices == 1000 and g.heart.is_outward
    assert g.torso.is_outward and 300 <= g.torso.n_vertices <= 900
    assert len(g.electrodes) == 352 and len(np.unique(g.electrodes)) == 352
    ext = np.ptp(g.heart.vertices, axis=0)
    assert np.all((ext > 60) & (ext < 130)), ext  # mm, adult heart
    assert 100e3 < g.heart.signed_volume < 400e3  # mm³ (0.1–0.4 L)
    assert 15e6 < g.torso.signed_volume < 45e6  # mm³ (15–45 L)
    # heart strictly inside the torso superellipsoid
    x, y, z = g.heart.vertices.T
    assert np.all((np.abs(x / 165) ** 4 + np.abs(y / 115) ** 4 + np.abs(z / 220) ** 4) < 0.5)
    g2 = default_heart_torso()
    np.testing.assert_array_equal(g.heart.vertices, g2.heart.vertices)
    np.testing.assert_array_equal(g.torso.triangles, g2.torso.triangles)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda v, t: (v[:, :2], t), "shape"),
        (lambda v, t: (np.where(np.arange(len(v))[:, None] == 3, np.nan, v), t), "NaN"),
        (lambda v, t: (v, t + 100), "indices"),
        (lambda v, t: (v, np.vstack([t, [[0, 0, 1]]])), "repeated vertex"),
        (lambda v, t: (v, np.vstack([t, t[:1, ::-1]])), "duplicate"),
        (lambda v, t: (v, np.vstack([t[:1], t[1:2, [1, 0, 2]], t[2:]])), "orientation is inconsistent"),
        (lambda v, t: (np.vstack([v, [[9.0, 9.0, 9.0]]]), t), "unreferenced"),
    ],
)
def test_mesh_validation_errors(mutate, message):
    m = icosphere(1)
    v, t = mutate(m.vertices.copy(), m.triangles.copy())
    with pytest.raises(ValueError, match=message):
        Mesh(v, t)


def test_zero_area_and_nonmanifold():
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], float)
    with pytest.raises(ValueError, match="zero area"):
        Mesh(v, [[0, 1, 2], [0, 1, 3]])
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    with pytest.raises(ValueError, match="non-manifold"):
        Mesh(v, [[0, 1, 2], [1, 0, 3], [0, 1, 4]])


def test_orientation_detect_and_fix():
    m = icosphere(2)
    inward = m.flipped()
    assert inward.signed_volume < 0 and not inward.is_outward
    with pytest.raises(ValueError, match="inward"):
        require_outward(inward, "torso")
    fixed = reorient_outward(inward)
    assert fixed.is_outward
    np.testing.assert_array_equal(fixed.triangles, m.triangles)
    open_mesh = Mesh(m.vertices, m.triangles[:-1], validate=False)
    with pytest.raises(ValueError, match="closed"):
        require_outward(open_mesh)


@pytest.mark.parametrize("suffix", [".vtk", ".vtu", ".ply", ".obj", ".off", ".stl"])
def test_mesh_io_roundtrip(tmp_path, suffix):
    m = icosphere(2, radius=50.0)
    path = save_mesh(tmp_path / f"sphere{suffix}", m)
    back = load_mesh(path)
    # STL stores a float32 triangle soup: meshio merges the points back, in its own order.
    def lexsorted(v):
        return v[np.lexsort(np.round(v, 3).T)]

    np.testing.assert_allclose(lexsorted(back.vertices), lexsorted(m.vertices), rtol=0, atol=1e-4 * 50)
    assert back.n_triangles == m.n_triangles
    np.testing.assert_allclose(back.signed_volume, m.signed_volume, rtol=1e-5)


def test_corrupt_mesh_file_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.vtk"
    p.write_text("# vtk DataFile Version 4.2\ngarbage\n")
    with pytest.raises(ValueError, match="Could not read mesh"):
        load_mesh(p)
    with pytest.raises(FileNotFoundError):
        load_mesh(tmp_path / "missing.ply")
