"""Synthetic cases and measurement noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax import geometry, operators
from ecgi_jax.forward import add_noise, add_noise_snr
from ecgi_jax.synthetic import SyntheticCase, make_case, pacing_nodes


@pytest.fixture(scope="module")
def small_heart():
    mesh = geometry.icosphere(3).scaled(30.0)  # 642 nodes, ~ 4.7 mm edges
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    return mesh, lap


def test_noise_level_matches_convention():
    Y = jnp.sin(jnp.linspace(0, 20, 200 * 300)).reshape(200, 300) * 3.0
    noisy = add_noise(jax.random.key(0), Y, 0.1)
    ratio = float(jnp.std(noisy - Y) / jnp.std(Y))
    assert abs(ratio - 0.1) < 0.002
    snr = add_noise_snr(jax.random.key(1), Y, 20.0)
    measured_db = 10 * np.log10(float(jnp.mean(Y**2) / jnp.mean((snr - Y) ** 2)))
    assert abs(measured_db - 20.0) < 0.1


def test_noise_is_keyed_and_vmappable():
    Y = jnp.ones((5, 7))
    a = add_noise(jax.random.key(3), Y + jnp.arange(7.0)[None, :], 0.2)
    b = add_noise(jax.random.key(3), Y + jnp.arange(7.0)[None, :], 0.2)
    np.testing.assert_array_equal(a, b)
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.vmap(add_noise, in_axes=(0, None, None))(keys, Y + jnp.arange(7.0)[None, :], 0.2)
    looped = jnp.stack([add_noise(k, Y + jnp.arange(7.0)[None, :], 0.2) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_noise_rejects_bad_level(bad):
    with pytest.raises(ValueError, match="sigma"):
        add_noise(jax.random.key(0), jnp.ones((2, 2)), bad)


def test_pacing_nodes_rings(small_heart):
    mesh, _ = small_heart
    assert pacing_nodes(mesh.adjacency, 5).tolist() == [5]
    ring1 = pacing_nodes(mesh.adjacency, 5, rings=1)
    indptr, indices = mesh.adjacency
    assert set(ring1.tolist()) == {5, *indices[indptr[5] : indptr[6]].tolist()}
    assert len(pacing_nodes(mesh.adjacency, 5, rings=2)) > len(ring1)
    with pytest.raises(ValueError, match="out of range"):
        pacing_nodes(mesh.adjacency, 10_000)


def test_make_case_is_consistent_and_stackable(small_heart):
    mesh, lap = small_heart
    A = np.random.default_rng(0).normal(size=(40, mesh.n_vertices)) / 30
    cases = [
        make_case(jax.random.key(s), A, lap, [0], sigma=0.1, n_samples=200) for s in range(2)
    ]
    c = cases[0]
    assert isinstance(c, SyntheticCase)
    assert c.U.shape == c.V.shape == (mesh.n_vertices, 200) and c.Y.shape == (40, 200)
    np.testing.assert_allclose(c.Y_clean, np.asarray(A, np.float32) @ np.asarray(c.U), rtol=1e-4, atol=1e-5)
    assert abs(float(jnp.std(c.Y - c.Y_clean) / jnp.std(c.Y_clean)) - 0.1) < 0.01
    assert float(c.U[0, 0]) == 1.0 and float(c.pacing.sum()) == 1.0
    # Same truth, different noise draws; stacked along a leading axis for vmap.
    np.testing.assert_array_equal(cases[0].U, cases[1].U)
    assert not np.allclose(cases[0].Y, cases[1].Y)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *cases)
    assert stacked.Y.shape == (2, 40, 200)
    rel = jax.vmap(lambda case: jnp.linalg.norm(case.Y - case.Y_clean) / jnp.linalg.norm(case.Y_clean))(stacked)
    assert rel.shape == (2,) and bool(jnp.all(rel > 0))


def test_make_case_rejects_bad_input(small_heart):
    mesh, lap = small_heart
    with pytest.raises(ValueError, match="expected"):
        make_case(jax.random.key(0), np.ones((4, 3)), lap, [0])
    with pytest.raises(ValueError, match="pacing"):
        make_case(jax.random.key(0), np.ones((4, mesh.n_vertices)), lap, [mesh.n_vertices])


def test_make_case_refuses_a_mesh_in_metres():
    mesh = geometry.icosphere(2).scaled(20.0 / 1000.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    with pytest.warns(UserWarning, match="spacing of about 0.006 mm"):
        with pytest.raises(ValueError, match=r"(?s)sub-steps per output sample.*about 0.006 mm.*mesh.scaled\(1000\)"):
            make_case(jax.random.key(0), np.ones((4, mesh.n_vertices)), lap, [0], n_samples=3)


def test_make_case_reports_a_diverged_simulation_not_nan_data():
    mesh = geometry.icosphere(1, 30.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    with pytest.warns(UserWarning, match="reaction terms"):
        with pytest.raises(ValueError, match="explicit integration diverged.*substeps >= 50"):
            make_case(jax.random.key(0), np.ones((4, mesh.n_vertices)), lap, [0], dt=1.0, n_samples=100, substeps=1)


def test_make_case_refuses_the_d_minus_w_sign_convention(small_heart):
    mesh, lap = small_heart
    flipped = operators.SparseOperator(lap.rows, lap.cols, -lap.weights, lap.shape)
    with pytest.raises(ValueError, match="D - W.*negate it"):
        make_case(jax.random.key(0), np.ones((4, mesh.n_vertices)), flipped, [0], n_samples=3)


def test_make_case_accepts_a_scipy_sparse_laplacian(small_heart):
    mesh, lap = small_heart
    A = np.ones((4, mesh.n_vertices)) / mesh.n_vertices
    ref = make_case(jax.random.key(0), A, lap, [0], n_samples=20)
    case = make_case(jax.random.key(0), A, lap.to_scipy(), [0], n_samples=20)
    np.testing.assert_allclose(case.U, ref.U, rtol=1e-5, atol=1e-6)
