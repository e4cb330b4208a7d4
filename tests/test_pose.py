"""The heart's rigid pose: rotations, moved meshes, the pose Jacobian of the BEM matrix, the
Gauss–Newton pose step, and the template start that moves the heart."""

import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax.forward import MovableHeart, fit_pose_step, moved_heart, rotation_matrix, transfer_matrix
from ecgi_jax.geometry import Mesh, icosphere

POSE = np.array([2.0, -1.5, 1.0, 0.03, -0.02, 0.04])  # mm and radians


@pytest.fixture(scope="module")
def geometry():
    ball = icosphere(2, 1.0)
    heart = Mesh(ball.vertices * np.array([30.0, 40.0, 50.0]) + np.array([5.0, -3.0, 2.0]), ball.triangles)
    torso = icosphere(2, 150.0)
    return MovableHeart(heart, torso, electrodes=np.arange(0, torso.vertices.shape[0], 2), reference="none")


def test_rotation_matrix_is_rodrigues():
    R = rotation_matrix([0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    w = np.array([0.3, -0.2, 0.5])
    R = rotation_matrix(w)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    np.testing.assert_allclose(R @ w, w, atol=1e-12)  # the axis stays
    np.testing.assert_array_equal(rotation_matrix(np.zeros(3)), np.eye(3))
    with pytest.raises(ValueError, match="rotation vector"):
        rotation_matrix([1.0, 2.0])


def test_moved_heart_is_rigid_about_the_centroid(geometry):
    heart = geometry.heart
    moved = moved_heart(heart, POSE)
    np.testing.assert_allclose(moved.vertices.mean(0), heart.vertices.mean(0) + POSE[:3], atol=1e-9)
    d = lambda v: np.linalg.norm(v[:, None] - v[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(moved.vertices), d(heart.vertices), atol=1e-9)
    with pytest.raises(ValueError, match="a pose is 6 finite numbers"):
        moved_heart(heart, [1.0, 2.0, 3.0])


def test_pose_jacobian_predicts_the_moved_matrix(geometry):
    """A(pose) ≈ A + Σ J_k pose_k to second order: halving the pose quarters the error."""
    A = geometry.transfer_matrix()
    np.testing.assert_allclose(A, transfer_matrix(geometry.heart, geometry.torso, electrodes=geometry.electrodes, reference="none"))
    J = geometry.pose_jacobian()
    assert J.shape == (6, *A.shape)
    errors = []
    for scale in (0.5, 0.25):
        p = scale * POSE
        exact = geometry.transfer_matrix(p)
        errors.append(np.linalg.norm(exact - A - np.tensordot(p, J, 1)) / np.linalg.norm(exact - A))
    assert errors[0] < 0.1 and errors[1] < 0.6 * errors[0], errors


def test_fit_pose_step_recovers_a_pose(geometry):
    """Potentials known, the heart moved: Gauss–Newton steps with the nominal Jacobian find the
    pose; with only the translation free, the rotation stays at its start."""
    rng = np.random.default_rng(0)
    n = geometry.heart.vertices.shape[0]
    U = rng.normal(size=(n, 8)) + geometry.heart.vertices[:, 2:3] / 20.0
    Y = geometry.transfer_matrix(POSE) @ U
    J = geometry.pose_jacobian()
    pose = np.zeros(6)
    for _ in range(4):
        pose = fit_pose_step(Y, U, geometry.transfer_matrix(pose), J, pose)
    np.testing.assert_allclose(pose, POSE, atol=2e-3)
    shifted = fit_pose_step(Y, U, geometry.transfer_matrix(), J, np.zeros(6), free=[True] * 3 + [False] * 3)
    np.testing.assert_array_equal(shifted[3:], 0.0)
    assert np.all(np.abs(shifted[:3]) > 0)
    with pytest.raises(ValueError, match="free must be 6 booleans"):
        fit_pose_step(Y, U, geometry.transfer_matrix(), J, np.zeros(6), free=[False] * 6)
    with pytest.raises(ValueError, match="shapes disagree"):
        fit_pose_step(Y[:-1], U, geometry.transfer_matrix(), J, np.zeros(6))


def test_matching_matrix_names_the_mismatch(geometry):
    A = geometry.transfer_matrix()
    np.testing.assert_array_equal(geometry.matching_matrix(A.astype(np.float32)), A)
    with pytest.raises(ValueError, match="does not reproduce A"):
        geometry.matching_matrix(transfer_matrix(geometry.heart, geometry.torso, electrodes=geometry.electrodes))  # "mean"
    with pytest.raises(ValueError, match="check its electrodes"):
        geometry.matching_matrix(A[:-1])


def test_posed_template_finds_the_heart_where_the_data_put_it(geometry):
    """Waveform-template potentials on the ellipsoid, recorded with the heart moved: the posed
    template fit recovers the translation and explains the data, which the template fit for the
    heart where the model puts it cannot."""
    from ecgi_jax.operators import huiskamp_laplacian
    from ecgi_jax.solvers.activation import template_potentials
    from ecgi_jax.solvers.neural import posed_template, template_start

    heart = geometry.heart
    edges = np.concatenate([heart.triangles[:, [0, 1]], heart.triangles[:, [1, 2]], heart.triangles[:, [2, 0]]])
    neighbours = [sorted(set(edges[edges[:, 0] == i, 1]) | set(edges[edges[:, 1] == i, 0])) for i in range(len(heart.vertices))]
    L = jnp.asarray(huiskamp_laplacian(heart.vertices, neighbours).todense(), jnp.float32)
    dt, n_t = 0.5, 120
    t = np.arange(n_t) * dt
    site = heart.vertices[np.argmax(heart.vertices[:, 2])]
    tau = np.linalg.norm(heart.vertices - site, axis=1) / 5.0 + 2.0  # 5 mm per time unit
    lags = -n_t * dt + dt * np.arange(int(np.ceil((2 * n_t * dt + 5.0) / dt)) + 1)
    f = 0.5 * (1 + np.tanh(lags / 0.5)) * (1 - 1 / (1 + np.exp(-(lags - 30.0) / 3.0)))
    U_true = template_potentials(jnp.asarray(tau, jnp.float32), jnp.asarray(f, jnp.float32), jnp.asarray(t, jnp.float32), lags[0], dt)
    pose_true = np.array([4.0, -3.0, 2.0, 0.0, 0.0, 0.0])
    Y = jnp.asarray(geometry.transfer_matrix(pose_true) @ np.asarray(U_true, np.float64), jnp.float32)
    A = jnp.asarray(geometry.transfer_matrix(), jnp.float32)
    # The start: the true beat's activation times off by a smooth error (as a physics beat's are).
    U0 = template_potentials(jnp.asarray(tau * 1.1 - 0.5, jnp.float32), jnp.asarray(f, jnp.float32), jnp.asarray(t, jnp.float32), lags[0], dt)
    nominal = template_start(Y, A, L, dt, U0)
    fit, pose, A_pose = posed_template(Y, A, L, dt, U0, geometry, fit=nominal)
    re = lambda U: float(jnp.linalg.norm(U - U_true) / jnp.linalg.norm(U_true))  # noqa: E731
    np.testing.assert_allclose(pose[:3], pose_true[:3], atol=0.5)
    np.testing.assert_array_equal(pose[3:], 0.0)  # the rotation is held
    # On this smooth toy the nominal heart's template is not much worse in RE (the potentials are
    # the template's own), but it cannot explain the data the moved heart's can.
    assert re(fit.U) <= re(nominal.U) + 1e-3, (re(fit.U), re(nominal.U))
    assert float(fit.misfit) < 0.5 * float(nominal.misfit), (float(fit.misfit), float(nominal.misfit))
    np.testing.assert_allclose(A_pose, geometry.transfer_matrix(pose), rtol=1e-5, atol=1e-9)


def test_pose_jacobian_solves_only_the_free_components(geometry):
    full = geometry.pose_jacobian()
    part = geometry.pose_jacobian(free=[True, False, True, False, False, False])
    np.testing.assert_array_equal(part[[0, 2]], full[[0, 2]])
    np.testing.assert_array_equal(part[[1, 3, 4, 5]], 0.0)
    with pytest.raises(ValueError, match="free must be 6 booleans"):
        geometry.pose_jacobian(free=[1, 0, 0, 0, 0, 0])


def test_eand_arn_refuses_a_movable_heart_it_cannot_use(geometry):
    from ecgi_jax import solve
    from ecgi_jax.operators import huiskamp_laplacian

    heart = geometry.heart
    A = geometry.transfer_matrix().astype(np.float32)
    Y = np.zeros((A.shape[0], 20), np.float32)
    Y[:, 5:] = 1e-3 * A.sum(1, keepdims=True)
    edges = np.concatenate([heart.triangles[:, [0, 1]], heart.triangles[:, [1, 2]], heart.triangles[:, [2, 0]]])
    neighbours = [sorted(set(edges[edges[:, 0] == i, 1]) | set(edges[edges[:, 1] == i, 0])) for i in range(len(heart.vertices))]
    L = huiskamp_laplacian(heart.vertices, neighbours)
    common = dict(laplacian=L, dt=0.1, vertices=heart.vertices, steps=1, progress=False)
    with pytest.raises(ValueError, match="movable_heart moves the heart for the template start"):
        solve(Y, A, method="eand-arn", start="pacing", movable_heart=geometry, **common)
    no_vertices = {k: v for k, v in common.items() if k != "vertices"}
    with pytest.raises(ValueError, match="pass vertices"):  # without them the template is never fitted
        solve(Y, A, method="eand-arn", movable_heart=geometry, **no_vertices)
    with pytest.raises(ValueError, match="not a given start"):
        solve(Y, A, method="eand-arn", start=np.zeros((A.shape[1], Y.shape[1]), np.float32), movable_heart=geometry, **common)
    with pytest.raises(ValueError, match="does not reproduce A"):
        solve(Y, 2 * A, method="eand-arn", movable_heart=geometry, **common)
    # Through the heart model, which passes it to the methods that take it (and only to them).
    from ecgi_jax.operators import HeartModel

    model = HeartModel(laplacian=L, vertices=heart.vertices, dt=0.1, movable_heart=geometry)
    with pytest.raises(ValueError, match="does not reproduce A"):
        solve(Y, 2 * A, method="eand-arn", heart=model, steps=1, progress=False)
    assert solve(Y, A, method="tikhonov-2", heart=model).U.shape == (A.shape[1], Y.shape[1])
