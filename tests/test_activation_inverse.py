"""Activation-based inverse: closed-form Gauss-Newton vs autodiff, recovery of a known
activation map on concentric spheres through ``solve``, and bad options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecgi_jax
from ecgi_jax.forward import transfer_matrix
from ecgi_jax.geometry import icosphere
from ecgi_jax.operators import as_dense, cotangent_laplacian
from ecgi_jax.solvers.activation import activation_cost, gauss_newton_system, upstroke
from ecgi_jax.solvers.activation import _methods  # noqa: F401  (registers "activation-based")

WIDTH = 3.0


@pytest.fixture(scope="module")
def case():
    h, tor = icosphere(2, 40.0), icosphere(2, 100.0)
    A = transfer_matrix(h, tor)
    pole = np.array([0.0, 0.0, 40.0])
    tau = 40.0 * np.arccos(np.clip(h.vertices @ pole / 1600.0, -1, 1)) + 10.0  # 1 mm/ms from the pole
    t = np.arange(160.0)
    Y = A @ np.asarray(upstroke(jnp.asarray(tau), jnp.asarray(t), WIDTH))
    L = np.asarray(as_dense(cotangent_laplacian(h), np.float32))
    return h, A.astype(np.float32), tau, t, Y.astype(np.float32), L, pole


def test_gauss_newton_matches_autodiff(case, x64):
    h, A, tau, t, Y, L, _ = case
    A, Y, L, t = (jnp.asarray(a, jnp.float64) for a in (A, Y, L, t))
    x = jnp.asarray(tau, jnp.float64) + jnp.asarray(np.random.default_rng(1).normal(0, 2.0, tau.shape))
    lam = 0.3
    g, H = gauss_newton_system(x, Y, A, t, WIDTH, lam, A.T @ A, L.T @ L)
    g_ad = 0.5 * jax.grad(activation_cost)(x, Y, A, L, t, WIDTH, lam)
    np.testing.assert_allclose(g, g_ad, rtol=1e-8, atol=1e-10 * float(jnp.abs(g_ad).max()))
    J = jax.jacfwd(lambda v: (A @ upstroke(v, t, WIDTH)).ravel())(x)
    np.testing.assert_allclose(H, J.T @ J + lam * L.T @ L, rtol=1e-8, atol=1e-10 * float(jnp.abs(H).max()))


def test_recovers_activation_map_through_solve(case):
    h, A, tau, t, Y, L, pole = case
    noisy = Y + 0.01 * np.abs(Y).max() * np.random.default_rng(0).standard_normal(Y.shape).astype(np.float32)
    sol = ecgi_jax.solve(noisy, A, method="activation-based", laplacian=L, dt=1.0, upstroke_width=WIDTH)
    est = np.asarray(sol.diagnostics["activation_times"])
    # Measured (162 + 162 nodes, 1 % noise, constant start at 80 ms): MAE 1.4 ms, CC 0.997.
    assert np.abs(est - tau).mean() < 2.5
    assert np.corrcoef(est, tau)[0, 1] > 0.99
    k = int(np.argmin(est))
    assert np.linalg.norm(h.vertices[k] - pole) < 1e-9
    assert sol.potentials.shape == (h.n_vertices, t.size)
    assert float(sol.diagnostics["misfit"]) < 0.01
    assert sol.options["upstroke_width"] == WIDTH


def test_a_change_of_time_unit_changes_nothing_but_the_times(case):
    # dt and the widths scaled together (samples in ms vs in AP units): the same fit, times scaled.
    h, A, tau, t, Y, L, _ = case
    kw = dict(laplacian=L, max_iter=5, stages=2)
    one = ecgi_jax.solve(Y, A, method="activation-based", dt=1.0, upstroke_width=WIDTH, **kw)
    tenth = ecgi_jax.solve(Y, A, method="activation-based", dt=0.1, upstroke_width=0.1 * WIDTH, **kw)
    np.testing.assert_allclose(np.asarray(tenth.potentials), np.asarray(one.potentials), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(tenth.diagnostics["activation_times"]), 0.1 * np.asarray(one.diagnostics["activation_times"]), rtol=1e-4, atol=1e-4
    )
    default = ecgi_jax.solve(Y, A, method="activation-based", **kw)  # dt 0.1, width 3 samples
    assert default.options["dt"] == 0.1 and default.options["upstroke_width"] == pytest.approx(0.3)


def test_bad_options(case):
    h, A, tau, t, Y, L, _ = case
    with pytest.raises(ValueError, match="option upstroke_width must be > 0"):
        ecgi_jax.solve(Y, A, method="activation-based", upstroke_width=0.0)
    with pytest.raises(ValueError, match="option upstroke_width_start"):
        ecgi_jax.solve(Y, A, method="activation-based", upstroke_width=5.0, upstroke_width_start=1.0)
    with pytest.raises(ValueError, match="tau0"):
        ecgi_jax.solve(Y, A, method="activation-based", tau0=np.zeros(3))
    with pytest.raises(ValueError, match="laplacian"):
        ecgi_jax.solve(Y, A, method="activation-based", laplacian=np.eye(3))
