"""The solvers' one Levenberg–Marquardt: solutions, each stopping rule, the box, and the system
asked for at accepted points only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax.solvers import levenberg_marquardt


def _least_squares(residual):
    cost = lambda x: jnp.sum(residual(x) ** 2)  # noqa: E731

    def system(x):
        r, J = residual(x), jax.jacfwd(residual)(x)
        return J.T @ r, J.T @ J

    return cost, system


def _rosenbrock(x):
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def test_linear_least_squares_reach_the_normal_equations_solution(x64):
    rng = np.random.default_rng(0)
    M, b = rng.standard_normal((20, 4)), rng.standard_normal(20)
    cost, system = _least_squares(lambda x: jnp.asarray(M) @ x - jnp.asarray(b))
    fit = jax.jit(lambda x0: levenberg_marquardt(cost, system, x0, max_iter=50, tol=1e-12))(jnp.zeros(4))
    np.testing.assert_allclose(fit.x, np.linalg.lstsq(M, b, rcond=None)[0], rtol=1e-8)
    assert bool(fit.converged) and float(fit.cost) <= float(fit.cost0)


def test_rosenbrock_from_the_classical_start(x64):
    cost, system = _least_squares(_rosenbrock)
    fit = levenberg_marquardt(cost, system, jnp.asarray([-1.2, 1.0]), max_iter=200, tol=1e-14)
    np.testing.assert_allclose(fit.x, [1.0, 1.0], atol=1e-6)
    # A zero residual: every step after the last accepted one is rejected until λ passes 1e8.
    assert float(fit.cost) < 1e-20 and int(fit.iterations) < 200 and 0 < int(fit.accepted) < int(fit.iterations)


def test_each_stopping_rule():
    cost, system = _least_squares(_rosenbrock)
    x0 = jnp.asarray([-1.2, 1.0])
    # max_iter (traced too): exactly that many iterations, not converged.
    for max_iter in (3, jnp.asarray(3)):
        fit = jax.jit(lambda m: levenberg_marquardt(cost, system, x0, max_iter=m))(max_iter)
        assert int(fit.iterations) == 3 and not bool(fit.converged)
    assert int(levenberg_marquardt(cost, system, x0, max_iter=0).iterations) == 0
    # tol = 0: never stopped by the decrease rule.
    fit = levenberg_marquardt(cost, system, x0, max_iter=40, tol=0.0)
    assert int(fit.iterations) == 40 and not bool(fit.converged)
    # No descent direction (the system points uphill): every trial rejected, λ grows ×5 from 1e-2
    # until it passes 1e8: ceil(log5(1e10)) = 15 iterations.
    uphill = lambda x: tuple(-a if k == 0 else a for k, a in enumerate(system(x)))  # noqa: E731
    fit = levenberg_marquardt(cost, uphill, x0, max_iter=100)
    assert int(fit.iterations) == 15 and int(fit.accepted) == 0 and not bool(fit.converged)
    np.testing.assert_array_equal(fit.x, x0)
    assert float(fit.lam) >= 1e8


def test_the_box_holds_and_the_system_is_asked_for_at_accepted_points_only():
    calls = []

    def residual(x):
        return _rosenbrock(x)

    cost, system = _least_squares(residual)

    def counted(x):
        jax.debug.callback(lambda: calls.append(1))
        return system(x)

    lower, upper = jnp.asarray([-2.0, -2.0]), jnp.asarray([0.5, 2.0])
    fit = jax.jit(lambda x0: levenberg_marquardt(cost, counted, x0, max_iter=60, lower=lower, upper=upper))(jnp.asarray([-1.2, 1.0]))
    jax.effects_barrier()
    assert float(fit.x[0]) <= 0.5 and float(fit.x[0]) == pytest.approx(0.5, abs=1e-3)  # the optimum (1, 1) lies outside
    assert len(calls) == 1 + int(fit.accepted) < 1 + int(fit.iterations)  # the start, then accepted points
