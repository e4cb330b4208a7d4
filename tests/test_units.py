"""Units at the door: a heart mesh in any length unit gives the same operators in mm, recordings
sampled in ms give the same solution with the times back in ms, and the default time scale agrees
with the Aliev-Panfilov model's own APD and conduction velocity."""

import numpy as np
import pytest

import ecgi_jax
from ecgi_jax import ep, geometry
from ecgi_jax.forward import transfer_matrix
from ecgi_jax.operators import DEFAULT_MS_PER_AP, HeartModel
from ecgi_jax.solvers.activation import upstroke


@pytest.fixture(scope="module")
def heart_mesh():
    return geometry.icosphere(2, 40.0)  # mm: mean edge 12 mm


def test_a_mesh_in_metres_gives_the_operators_of_the_mesh_in_mm(heart_mesh):
    mm = HeartModel.from_mesh(heart_mesh)
    for unit, per_mm in (("m", 1e-3), ("cm", 0.1), ("um", 1e3)):
        other = HeartModel.from_mesh(heart_mesh.scaled(per_mm), length_unit=unit)
        np.testing.assert_allclose(other.vertices, mm.vertices, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(other.laplacian.todense()), np.asarray(mm.laplacian.todense()), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(other.gradient.todense()), np.asarray(mm.gradient.todense()), rtol=1e-9, atol=1e-12)


def test_an_implausible_spacing_names_the_unit_that_fits(heart_mesh):
    with pytest.raises(ValueError, match=r"mean edge is 0\.01\d* mm .* length_unit='m'"):
        HeartModel.from_mesh(heart_mesh.scaled(1e-3))
    with pytest.raises(ValueError, match=r"length_unit='cm'"):
        HeartModel.from_mesh(heart_mesh.scaled(0.01))  # 0.12 "mm": cm
    with pytest.raises(ValueError, match="length_unit must be one of"):
        HeartModel.from_mesh(heart_mesh, length_unit="inch")


def test_time_units_and_their_errors(heart_mesh):
    ap = HeartModel.from_mesh(heart_mesh, dt=0.1)
    assert (ap.dt, ap.time_unit, ap.time_scale) == (0.1, "ap", 1.0)
    ms = HeartModel.from_mesh(heart_mesh, dt=1.0, time_unit="ms")
    assert ms.dt == pytest.approx(1.0 / DEFAULT_MS_PER_AP) and ms.time_scale == DEFAULT_MS_PER_AP
    s = HeartModel.from_mesh(heart_mesh, dt=0.002, time_unit="s", time_scale=0.0125)
    assert s.dt == pytest.approx(0.16)
    np.testing.assert_allclose(s.to_time_unit([0.0, 8.0]), [0.0, 0.1])
    with pytest.raises(ValueError, match="time_scale converts ms or s"):
        HeartModel.from_mesh(heart_mesh, dt=0.1, time_scale=10.0)
    with pytest.raises(ValueError, match="time_unit must be one of"):
        HeartModel.from_mesh(heart_mesh, dt=1.0, time_unit="min")
    with pytest.raises(ValueError, match="dt must be a positive number of ms"):
        HeartModel.from_mesh(heart_mesh, dt=-1.0, time_unit="ms")
    with pytest.raises(ValueError, match="time_scale must be a positive number"):
        HeartModel.from_mesh(heart_mesh, dt=1.0, time_unit="ms", time_scale=0.0)


def test_recordings_in_ms_give_the_same_solution_with_times_in_ms(heart_mesh):
    """An activation map in ms on a heart in metres: the same fit as in AP units and mm, its
    activation times back in ms (x time_scale), for solve and solve_batch."""
    A = transfer_matrix(heart_mesh, geometry.icosphere(2, 100.0)).astype(np.float32)
    pole = np.array([0.0, 0.0, 40.0])
    tau_ms = 40.0 * np.arccos(np.clip(heart_mesh.vertices @ pole / 1600.0, -1, 1)) + 10.0
    Y = (A @ np.asarray(upstroke(tau_ms, np.arange(160.0), 3.0))).astype(np.float32)  # 1 ms samples
    kw = dict(method="activation-based", upstroke_width=0.3)  # 3 ms
    in_ms = HeartModel.from_mesh(heart_mesh.scaled(1e-3), dt=1.0, length_unit="m", time_unit="ms")
    in_ap = HeartModel.from_mesh(heart_mesh, dt=0.1)
    a, b = ecgi_jax.solve(Y, A, heart=in_ms, **kw), ecgi_jax.solve(Y, A, heart=in_ap, **kw)
    np.testing.assert_allclose(np.asarray(a.potentials), np.asarray(b.potentials), atol=1e-5)
    at_ms, at_ap = np.asarray(a.diagnostics["activation_times"]), np.asarray(b.diagnostics["activation_times"])
    np.testing.assert_allclose(at_ms, DEFAULT_MS_PER_AP * at_ap, rtol=1e-6)
    assert a.diagnostics["time_unit"] == "ms" and "time_unit" not in b.diagnostics
    assert np.abs(at_ms - tau_ms).mean() < 1.0  # the fit itself, in ms (measured: 0.33)
    batch = ecgi_jax.solve_batch(np.stack([Y, Y]), A, heart=in_ms, **kw)
    np.testing.assert_allclose(np.asarray(batch[1].diagnostics["activation_times"]), at_ms, rtol=1e-4, atol=1e-3)


def test_the_default_time_scale_agrees_with_the_models_apd_and_cv():
    # The reference model's APD50 is 25 AP units and its CV 5.1 mm per AP unit (cable, 0.25 mm):
    # a human ventricle's ~250 ms and ~0.5 mm/ms both give ~10 ms per AP unit.
    from_apd = ep.time_scale(apd50=250.0)
    from_cv = ep.time_scale(conduction_velocity=0.5)
    assert from_apd == pytest.approx(10.0, rel=0.02)
    assert from_cv == pytest.approx(10.0, rel=0.05)
    assert DEFAULT_MS_PER_AP == pytest.approx(from_apd, rel=0.05) == pytest.approx(from_cv, rel=0.05)
    # A slower tissue (smaller D) reads a shorter AP time unit from the same measured CV.
    assert ep.time_scale(conduction_velocity=0.5, ap_params=ep.APParams(D=2.5)) == pytest.approx(from_cv / 2, rel=0.1)
    with pytest.raises(ValueError, match="exactly one of apd50"):
        ep.time_scale(apd50=250.0, conduction_velocity=0.5)
    with pytest.raises(ValueError, match="apd50 must be a positive number"):
        ep.time_scale(apd50=-1.0)


def _write_ecgsim_like(folder, n_t=30):
    """A small file in the layout of fwdinvtoolkit's npz/ecgsim_normal_male.npz (metres, mV)."""
    heart, thorax = geometry.icosphere(2, 0.04), geometry.icosphere(1, 0.15)
    A = np.random.default_rng(0).normal(size=(thorax.n_vertices, heart.n_vertices))
    A -= A.mean(axis=1, keepdims=True)  # rows sum to 0, as an EDL matrix's
    z = dict(heart_pts=heart.vertices, heart_tri=heart.triangles, thorax_pts=thorax.vertices, thorax_tri=thorax.triangles,
             A_act=A, bsp=np.zeros((thorax.n_vertices, n_t)), depol=np.linspace(5.0, 90.0, heart.n_vertices))
    z.update({f"user_{k}": np.ones(heart.n_vertices) for k in ("dep", "rep", "ampl", "rest", "depslope", "platslope", "repslope")})
    (folder / "npz").mkdir()
    np.savez(folder / "npz" / "ecgsim_normal_male.npz", **z)
    return z


def test_the_ecgsim_loader_reads_its_layout_and_names_what_is_wrong(tmp_path):
    from ecgi_jax.datasets import load_ecgsim_normal_male

    z = _write_ecgsim_like(tmp_path)
    d = load_ecgsim_normal_male(tmp_path)
    assert d.heart.is_outward and d.thorax.n_vertices == z["A_act"].shape[0]
    np.testing.assert_array_equal(d.transfer, z["A_act"])
    np.testing.assert_array_equal(d.activation_times, z["depol"])
    assert set(d.tmp_parameters) == {"dep", "rep", "ampl", "rest", "depslope", "platslope", "repslope"}
    HeartModel.from_mesh(d.heart, length_unit="m")  # metres, as shipped
    del z["depol"]
    np.savez(tmp_path / "npz" / "ecgsim_normal_male.npz", **z)
    with pytest.raises(ValueError, match="no variable 'depol'"):
        load_ecgsim_normal_male(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_ecgsim_normal_male(tmp_path / "absent")


def test_the_shipped_ecgsim_case_is_in_metres_with_an_edl_matrix(fwdinv_dir):
    from ecgi_jax.datasets import load_ecgsim_normal_male

    d = load_ecgsim_normal_male(fwdinv_dir)
    assert d.transfer.shape == (300, 257) and d.bsp.shape == (300, 1000)
    assert np.abs(d.transfer.sum(axis=1)).max() < 1e-4 * np.abs(d.transfer).max()  # EDL, WCT-referenced
    with pytest.raises(ValueError, match="length_unit='m'"):
        HeartModel.from_mesh(d.heart)
    heart = HeartModel.from_mesh(d.heart, dt=1.0, length_unit="m", time_unit="ms")
    assert 5.0 < d.heart.mean_edge_length * 1000 < 30.0 and heart.dt == pytest.approx(0.1)


def test_rereference_keeps_data_and_matrix_consistent():
    from ecgi_jax.forward import rereference

    rng = np.random.default_rng(2)
    A, X = rng.normal(size=(6, 4)), rng.normal(size=(4, 5))
    Y = A @ X
    for reference in ("mean", 2, [0, 1, 5]):
        A_ref, Y_ref = rereference(A, Y, reference=reference)
        np.testing.assert_allclose(A_ref @ X, Y_ref, atol=1e-12)
    # Hand-computed: Wilson's terminal from leads 0, 1, 5 is the mean of those rows.
    A_wct, _ = rereference(A, Y, reference=[0, 1, 5])
    np.testing.assert_allclose(A_wct, A - (A[0] + A[1] + A[5]) / 3.0)
    assert np.abs(rereference(A, reference="mean").sum(axis=0)).max() < 1e-12  # leads average to 0
    assert np.all(rereference(A, reference=2)[2] == 0.0)
    # A potential-based matrix (A 1 = 1) loses the heart's level: A_ref 1 = 0.
    P = rng.random((6, 4))
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(rereference(P, reference=[0, 1]) @ np.ones(4), 0.0, atol=1e-12)
    for bad, match in (("wct", "reference must be 'mean'"), ([1, 1], "distinct"), ([9], r"in \[0, 5\]"),
                       ([True, False], "integer lead"), ([], "non-empty")):
        with pytest.raises(ValueError, match=match):
            rereference(A, reference=bad)
    with pytest.raises(ValueError, match="m=6 leads"):
        rereference(A, Y[:3])


def _kuhn_cube_tets(n=2, h=1000.0):
    """A cube of n^3 cells of side h (µm), each split into 6 tetrahedra (Kuhn), some reversed."""
    g = np.arange(n + 1) * h
    pts = np.array([[x, y, z] for x in g for y in g for z in g])
    node = lambda i, j, k: (i * (n + 1) + j) * (n + 1) + k  # noqa: E731
    paths = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    tets = []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                for p in paths:
                    c, t = [0, 0, 0], [node(i, j, k)]
                    for axis in p:
                        c[axis] += 1
                        t.append(node(i + c[0], j + c[1], k + c[2]))
                    tets.append(t)
    tets = np.array(tets)
    tets[::3] = tets[::3][:, [1, 0, 2, 3]]  # the file's winding is not to be trusted
    return pts, tets


def _write_carp(folder, name, pts, cells, kind, tags=True):
    (folder / f"{name}.pts").write_text(f"{len(pts)}\n" + "".join(f"{x} {y} {z}\n" for x, y, z in pts))
    rows = [" ".join([kind, *map(str, c)] + ([str(i % 3)] if tags else [])) for i, c in enumerate(cells)]
    (folder / f"{name}.elem").write_text(f"{len(cells)}\n" + "\n".join(rows) + "\n")


def test_opencarp_tetrahedra_give_their_outward_boundary_in_micrometres(tmp_path):
    pts, tets = _kuhn_cube_tets()
    _write_carp(tmp_path, "cube", pts, tets, "Tt")
    surf = geometry.load_opencarp(tmp_path / "cube")
    m = surf.mesh
    assert m.is_closed and m.is_outward and m.n_triangles == 6 * 4 * 2  # 6 faces x 4 squares x 2
    np.testing.assert_allclose(m.signed_volume, 2000.0**3)
    centre = 13  # the 3x3x3 grid's middle node is inside
    assert m.n_vertices == 26 and centre not in surf.nodes
    np.testing.assert_array_equal(m.vertices, pts[surf.nodes])
    assert set(np.unique(surf.tags)) <= {0, 1, 2}
    heart = HeartModel.from_mesh(m.scaled(10.0), length_unit="um")  # 10 mm cells: plausible in mm
    assert heart.vertices.max() == pytest.approx(20.0)


def test_opencarp_triangles_and_vertex_sets_round_trip(tmp_path):
    sphere = geometry.icosphere(2, 40_000.0)  # µm
    _write_carp(tmp_path, "epi", sphere.vertices, sphere.triangles, "Tr", tags=False)
    surf = geometry.load_opencarp(tmp_path / "epi.pts", tmp_path / "epi.elem")
    np.testing.assert_allclose(surf.mesh.vertices, sphere.vertices)
    np.testing.assert_array_equal(surf.mesh.triangles, sphere.triangles)
    assert np.all(surf.tags == -1)
    (tmp_path / "stim.vtx").write_text("3\nintra\n4\n7\n11\n")
    np.testing.assert_array_equal(geometry.load_vtx(tmp_path / "stim.vtx"), [4, 7, 11])


@pytest.mark.parametrize("pts_text, elem_text, match", [
    ("3\n0 0 0\n1 1 1\n", None, "announces 3 entries but holds 2"),
    (None, "1\nXx 0 1 2\n", "line 2: unknown element type 'Xx'"),
    (None, "1\nTr 0 1 99\n", r"node indices must lie in \[0, 2\]"),
    (None, "1\nTr 0 1\n", "a Tr element has 3 nodes"),
    (None, "1\nLn 0 1\n", "holds no triangles"),
    ("three\n", None, "must start with its entry count"),
])
def test_malformed_opencarp_files_are_named(tmp_path, pts_text, elem_text, match):
    (tmp_path / "m.pts").write_text(pts_text or "3\n0 0 0\n1000 0 0\n0 1000 0\n")
    (tmp_path / "m.elem").write_text(elem_text or "1\nTr 0 1 2\n")
    with pytest.raises(ValueError, match=match):
        geometry.load_opencarp(tmp_path / "m", validate=False)


def test_missing_and_malformed_vtx(tmp_path):
    with pytest.raises(FileNotFoundError, match="openCARP .elem"):
        (tmp_path / "a.pts").write_text("1\n0 0 0\n")
        geometry.load_opencarp(tmp_path / "a")
    (tmp_path / "b.vtx").write_text("2\nboth\n1\n2\n")
    with pytest.raises(ValueError, match="'intra' or 'extra'"):
        geometry.load_vtx(tmp_path / "b.vtx")
