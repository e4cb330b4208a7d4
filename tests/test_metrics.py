"""Metrics on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax.metrics import (
    activation_time_error, activation_times, correlation, mean_correlation, mse, relative_error,
)


def test_relative_error_and_mse():
    U = jnp.array([[3.0, 0.0], [0.0, 4.0]])  # ‖U‖ = 5
    U_hat = U + jnp.array([[1.0, 0.0], [0.0, 0.0]])
    assert float(relative_error(U_hat, U)) == pytest.approx(0.2)
    assert float(mse(U_hat, U)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shape"):
        relative_error(U, U[:1])


def test_correlation_axes_and_constant_signal():
    t = jnp.linspace(0, 1, 11)
    U = jnp.stack([t, t**2, jnp.ones_like(t)])  # node 2 is constant
    U_hat = jnp.stack([2 * t + 1, -(t**2), jnp.ones_like(t)])
    cc = correlation(U_hat, U, "time")
    assert cc.shape == (3,)
    np.testing.assert_allclose(cc, [1.0, -1.0, 0.0], atol=1e-6)  # constant → 0, not NaN
    assert float(mean_correlation(U_hat, U, "time")) == pytest.approx(0.0, abs=1e-6)
    cs = correlation(U_hat, U, "space")
    assert cs.shape == (11,) and bool(jnp.all(jnp.isfinite(cs)))
    # at t = 0 the truth map (0, 0, 1) and estimate (1, 0, 1): hand computed r = 0.5
    assert float(cs[0]) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="axis"):
        correlation(U_hat, U, "nodes")
    # jittable
    np.testing.assert_allclose(jax.jit(correlation, static_argnums=2)(U_hat, U, "time"), cc, atol=1e-6)


def _ramps(dt=0.1, n_t=200):
    """Sigmoid upstrokes with known centres; node 3 never activates (flat), node 4 starts high."""
    t = np.arange(n_t) * dt
    centres = np.array([3.0, 7.25, 12.33])
    U = [1 / (1 + np.exp(-(t - c) / 0.3)) for c in centres]
    U.append(np.zeros(n_t))
    U.append(np.ones(n_t))
    return jnp.asarray(np.stack(U)), centres, dt, n_t


def test_activation_times_threshold_and_upstroke():
    U, centres, dt, n_t = _ramps()
    at, mask = activation_times(U, dt, "threshold", 0.5, return_mask=True)
    np.testing.assert_allclose(at[:3], centres, atol=0.01)  # interpolated crossing of 0.5
    assert float(at[3]) == pytest.approx(n_t * dt)  # never activates: T·dt, not NaN
    assert list(np.asarray(mask)) == [True, True, True, False, False]
    au = activation_times(U, dt, "upstroke")
    np.testing.assert_allclose(au[:3], centres, atol=0.02)  # steepest upstroke at the centre
    # linear ramp 0→1 over samples 10..20 (dt = 1): crossing of 0.25 at 12.5 exactly
    ramp = jnp.clip((jnp.arange(40.0) - 10) / 10, 0, 1)[None]
    assert float(activation_times(ramp, 1.0, threshold=0.25)[0]) == pytest.approx(12.5, abs=1e-5)
    assert float(activation_times(ramp, 1.0, threshold=0.25, normalize=False)[0]) == pytest.approx(12.5, abs=1e-5)
    j = jax.jit(activation_times, static_argnames=("method",))(U, dt, method="upstroke")
    np.testing.assert_allclose(j, au, atol=1e-5)


def test_activation_time_error():
    U, centres, dt, _ = _ramps()
    shifted = jnp.concatenate([jnp.repeat(U[:, :1], 5, axis=1), U[:, :-5]], axis=1)  # 0.5 later
    err = activation_time_error(shifted, U, dt)
    assert int(err.n_nodes) == 3  # only nodes that activate in the truth
    assert float(err.mae) == pytest.approx(0.5, abs=0.01)
    assert float(err.correlation) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_estimate_gives_nan_scores_not_poor_ones(bad):
    """A diverged estimate must not look merely poor: NaN/Inf propagate into the scores."""
    U, _, dt, _ = _ramps()
    one_node = U.at[1, 50].set(bad)  # one non-finite sample at node 1
    cc = correlation(one_node, U, "time")
    assert bool(jnp.isnan(cc[1])) and bool(jnp.all(jnp.isfinite(cc[jnp.array([0, 2, 3, 4])])))
    assert float(cc[3]) == 0.0  # the constant, finite nodes keep CC = 0
    assert np.isnan(float(mean_correlation(one_node, U, "time")))  # was a finite mean with CC 0 at node 1
    assert np.isnan(float(mean_correlation(one_node, U, "space")))
    err = activation_time_error(one_node, U, dt)
    assert np.isnan(float(err.mae)) and np.isnan(float(err.correlation)) and int(err.n_nodes) == 3
    # An estimate that is non-finite everywhere (was: a finite MAE, every node "never activates").
    everywhere = jnp.full_like(U, bad)
    assert np.isnan(float(mean_correlation(everywhere, U)))
    err = activation_time_error(everywhere, U, dt)
    assert np.isnan(float(err.mae)) and np.isnan(float(err.correlation))
    # A non-finite value at a node the comparison leaves out (node 3 never activates in the truth)
    # still marks the estimate as diverged.
    assert np.isnan(float(activation_time_error(U.at[3, 0].set(bad), U, dt).mae))
    # jitted the same
    j = jax.jit(activation_time_error)(everywhere, U, dt)
    assert np.isnan(float(j.mae)) and np.isnan(float(jax.jit(mean_correlation, static_argnums=2)(one_node, U, "time")))


def test_finite_estimates_score_as_before():
    U, _, dt, _ = _ramps()
    assert float(activation_time_error(U, U, dt).mae) == pytest.approx(0.0, abs=1e-6)
    flat = jnp.zeros_like(U)  # constant, finite: never activates -> T*dt, CC 0, not NaN
    err = activation_time_error(flat, U, dt)
    assert np.isfinite(float(err.mae)) and float(err.correlation) == 0.0
    assert float(mean_correlation(flat, U)) == 0.0
