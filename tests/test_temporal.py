import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax.operators import difference_matrix, fd_weights, min_samples, stencil, time_derivative


def test_five_point_stencil_weights():
    st = stencil(1, 4)
    np.testing.assert_allclose(st.weights, np.array([1, -8, 0, 8, -1]) / 12, atol=1e-14)
    np.testing.assert_allclose(stencil(2, 2).weights, [1, -2, 1], atol=1e-14)
    np.testing.assert_allclose(stencil(1, 4).left[0], np.array([-25, 48, -36, 16, -3]) / 12, atol=1e-12)
    np.testing.assert_allclose(fd_weights([-1, 0, 1], 1), [-0.5, 0, 0.5], atol=1e-15)


@pytest.mark.parametrize("derivative, order", [(1, 2), (1, 4), (1, 6), (2, 2), (2, 4)])
def test_exact_on_polynomials_of_their_order(x64, derivative, order):
    dt = 0.1
    t = np.arange(12) * dt + 0.3
    rng = np.random.default_rng(order)
    c = rng.standard_normal(order + 1)  # degree == order: still exact (stencils have order+1 points or more)
    p = np.polynomial.Polynomial(c)
    x = np.stack([p(t), 2 * p(t)])
    got = time_derivative(jnp.asarray(x), dt, derivative=derivative, order=order)
    expected = np.stack([p.deriv(derivative)(t), 2 * p.deriv(derivative)(t)])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    # a polynomial one degree higher is not differentiated exactly: the test can fail
    q = np.polynomial.Polynomial(np.r_[c, 1.0] if derivative == 1 else np.r_[c, 0, 1.0])
    bad = time_derivative(jnp.asarray(q(t)), dt, derivative=derivative, order=order)
    assert np.abs(bad - q.deriv(derivative)(t)).max() > 1e-10


@pytest.mark.parametrize("derivative, order", [(1, 2), (1, 4), (2, 2), (2, 4)])
def test_convergence_order(x64, derivative, order):
    errs, dts = [], [0.1, 0.05, 0.025, 0.0125]
    for dt in dts:
        t = np.arange(0, 2.0 + dt / 2, dt)
        x = np.sin(3 * t)
        exact = (3 * np.cos(3 * t) if derivative == 1 else -9 * np.sin(3 * t))
        errs.append(np.abs(np.asarray(time_derivative(jnp.asarray(x), dt, derivative=derivative, order=order)) - exact).max())
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert order - 0.3 < slope < order + 0.6, (slope, errs)  # boundary stencils converge a bit faster pre-asymptotically


def test_matrix_form_matches_array_form(x64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 20))
    for d, o in [(1, 2), (1, 4), (2, 4)]:
        D = difference_matrix(20, 0.2, derivative=d, order=o)
        np.testing.assert_allclose(x @ D.T, time_derivative(x, 0.2, derivative=d, order=o), rtol=1e-10, atol=1e-10)


def test_valid_mode_is_the_interior(x64):
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 15)))
    same = time_derivative(x, 0.1)
    valid = time_derivative(x, 0.1, mode="valid")
    np.testing.assert_allclose(valid, same[:, 2:-2], rtol=1e-12)
    # a single 5-sample window gives the derivative at its centre
    np.testing.assert_allclose(time_derivative(x[:, 3:8], 0.1, mode="valid")[:, 0], same[:, 5], rtol=1e-12)


def test_jit_vmap_dtype():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((5, 30)), jnp.float32)
    f = jax.jit(lambda x, dt: time_derivative(x, dt))
    np.testing.assert_allclose(f(x, 0.1), time_derivative(x, 0.1), rtol=1e-5, atol=1e-4)
    assert f(x, 0.1).dtype == jnp.float32
    v = jax.vmap(lambda row: time_derivative(row, 0.1))(x)
    np.testing.assert_allclose(v, time_derivative(x, 0.1), rtol=1e-5, atol=1e-4)


def test_too_few_samples_and_bad_arguments():
    assert min_samples(1, 4) == 5 and min_samples(2, 4) == 6
    with pytest.raises(ValueError, match="at least 5 time samples"):
        time_derivative(jnp.zeros((3, 4)), 0.1)
    with pytest.raises(ValueError, match="dt must be positive"):
        time_derivative(jnp.zeros((3, 10)), -0.1)
    with pytest.raises(ValueError, match="even integer"):
        stencil(1, 3)
    with pytest.raises(ValueError, match="at least 6"):
        difference_matrix(5, 0.1, derivative=2, order=4)
