"""Gradient-norm balancing of the loss weights (``GradNormBalance``, ``balance_every``)."""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ecgi_jax import solve
from ecgi_jax.ep import simulate
from ecgi_jax.solvers.neural import EANDARNConfig, GradNormBalance, TrainState, grad_norm_weights, make_step

from conftest import sphere_heart  # tests/ is on sys.path


def _terms(p):
    x = p["x"]
    return jnp.stack([jnp.sum(x**2), 3.0 * x[0], 0.5 * x[1] ** 2, 7.0 * x[0]])


X0 = {"x": jnp.array([1.0, 2.0])}
BASE = jnp.array([1.0, 2.0, 1.0, 0.0])


def _weighted(p, problem, t_idx, w):
    """The loss of a balanced step: ``(Σ w·L, L)``."""
    return jnp.sum(w * _terms(p)), _terms(p)


def test_grad_norm_weights_by_hand():
    # Gradients of b_k L_k at x = (1, 2): (2, 4), (6, 0), (0, 2); the fourth term is off.
    w = grad_norm_weights(_terms, X0, BASE)
    total = np.sqrt(20) + 6 + 2
    np.testing.assert_allclose(w, [total / np.sqrt(20), 2 * total / 6, total / 2, 0.0], rtol=1e-6)
    # Groups: term 0 against terms 1-3 together, ∇(6 x0 + 0.5 x1²) = (6, 2); ratios kept inside.
    w = grad_norm_weights(_terms, X0, BASE, groups=(0, 1, 1, 1))
    total = np.sqrt(20) + np.sqrt(40)
    np.testing.assert_allclose(w, [total / np.sqrt(20), 2 * total / np.sqrt(40), total / np.sqrt(40), 0.0], rtol=1e-6)


@pytest.mark.parametrize("groups", [None, (0, 1, 1, 1)])
def test_balanced_groups_pull_with_equal_gradient_norms(groups):
    """The defining property, on random parameters: every active group's weighted gradient has
    the same norm."""
    x = {"x": jax.random.normal(jax.random.key(3), (2,))}
    w = grad_norm_weights(_terms, x, BASE, groups)
    member = np.eye(4) if groups is None else np.array([[1, 0, 0, 0], [0, 1, 1, 1]])
    norms = [
        float(jnp.linalg.norm(jax.grad(lambda p: jnp.sum(jnp.asarray(row, w.dtype) * w * _terms(p)))(x)["x"]))
        for row in member
        if np.any(np.asarray(BASE)[row > 0] > 0)
    ]
    np.testing.assert_allclose(norms, norms[0], rtol=1e-5)


def test_a_term_at_its_minimum_gets_a_large_finite_weight():
    w = grad_norm_weights(lambda p: jnp.stack([jnp.sum(p["x"] ** 2), jnp.asarray(5.0)]), X0, jnp.ones(2))
    np.testing.assert_allclose(w, [1.0, 1e6], rtol=1e-5)  # Σg / max(0, 1e-6 Σg)


def test_balanced_step_is_a_fixed_weight_step_with_the_balanced_weights():
    """Step 0 sets the weights to the balance; steps between updates keep them; at step ``every``
    they move by the moving average; the reported total is the base-weighted one."""
    balance = GradNormBalance(BASE, (0, 1, 1, 1), every=3, momentum=0.5)
    opt = optax.adam(0.1)
    step = jax.jit(make_step(_weighted, opt, lambda key: jnp.zeros(()), balance))
    state = TrainState.create(X0, opt, weights=BASE)
    target0 = grad_norm_weights(_terms, X0, BASE, balance.groups)

    fixed = jax.jit(make_step(lambda p, prob, t: _weighted(p, prob, t, target0), opt, lambda key: jnp.zeros(())))
    ref, _ = fixed(TrainState.create(X0, opt), None, jax.random.key(0))
    state, out = step(state, None, jax.random.key(0))
    np.testing.assert_allclose(state.weights, target0, rtol=1e-6)
    np.testing.assert_allclose(state.params["x"], ref.params["x"], rtol=1e-6)
    np.testing.assert_allclose(out[0], jnp.sum(BASE * _terms(X0)), rtol=1e-6)  # Σ base·L, not the balanced total

    for _ in range(2):
        state, _ = step(state, None, jax.random.key(0))
        np.testing.assert_allclose(state.weights, target0, rtol=1e-6)
    before = state.weights
    target3 = grad_norm_weights(_terms, state.params, BASE, balance.groups)
    state, _ = step(state, None, jax.random.key(0))
    np.testing.assert_allclose(state.weights, 0.5 * before + 0.5 * target3, rtol=1e-6)


@pytest.fixture(scope="module")
def sphere():
    mesh, lap, A = sphere_heart(zero_mean_leads=False)  # Tikhonov-2 needs the constants seen
    U, _ = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=120)  # long enough for the Tikhonov start to be a fair one
    Y = A @ U
    Y = Y + 0.05 * jnp.std(Y) * jax.random.normal(jax.random.key(1), Y.shape)
    return mesh, lap, A, U, Y


def test_balanced_training_from_a_tikhonov_start(sphere):
    """From the Tikhonov map (which violates the AP model) fixed unit weights let the physics
    drag the fields away from the data; balanced weights improve on the start. The paper's
    physics term (the AP residuals, ``reaction_discrepancy=0``), whose pull the balancing was
    made for (with the default cubic discrepancy, measured: fixed 0.37, balanced 0.33)."""
    mesh, lap, A, U, Y = sphere
    kw = dict(laplacian=lap, dt=0.1, start="tikhonov", width=32, steps=300, learning_rate=1e-3, patience=0,
              progress=False, truth=U, key=jax.random.key(0), reaction_discrepancy=0)
    fixed = solve(Y, A, method="eand-arn", balance_every=0, **kw)
    balanced = solve(Y, A, method="eand-arn", balance_every=50, **kw)
    tik = solve(Y, A, method="tikhonov-2", laplacian=lap, lambda_rule="lcurve").potentials
    start = float(jnp.linalg.norm(tik - U) / jnp.linalg.norm(U))
    re_fixed, re_bal = fixed.history["rel_error"][-1], balanced.history["rel_error"][-1]
    w = balanced.diagnostics["loss_weights"]
    assert w[1] == pytest.approx(w[2]) and w[3] == w[4] == 0.0  # physics ratios kept, Tikhonov off
    assert w[0] > 100 * w[1]  # the data fit is weighted up against the physics here
    # Measured: start 0.38, fixed weights 0.50, balanced 0.31.
    assert re_fixed > start and re_bal < 0.85 * start and re_bal < 0.7 * re_fixed, (start, re_fixed, re_bal)


def test_balanced_checkpoint_resumes_bit_identically(sphere, tmp_path):
    mesh, lap, A, U, Y = sphere
    kw = dict(laplacian=lap, dt=0.1, init="random", width=8, steps=40, chunk=10, balance_every=15, progress=False,
              key=jax.random.key(2))
    ref = solve(Y, A, method="eand-arn", **kw)
    d = tmp_path / "ckpt"
    solve(Y, A, method="eand-arn", checkpoint_dir=d, checkpoint_every=2, **kw)
    done = sorted(int(p.name) for p in Path(d).iterdir() if p.name.isdigit())
    shutil.rmtree(d / str(done[-1]))  # resume from the checkpoint before the last
    again = solve(Y, A, method="eand-arn", checkpoint_dir=d, **kw)
    assert again.diagnostics["resumed_at_chunk"] == done[-2]
    np.testing.assert_array_equal(again.U, ref.U)
    assert again.diagnostics["loss_weights"] == ref.diagnostics["loss_weights"]


def test_bad_balance_settings_are_rejected():
    with pytest.raises(ValueError, match="balance_every"):
        EANDARNConfig(balance_every=-1).validate()
    with pytest.raises(ValueError, match="choose one"):
        EANDARNConfig(balance_every=10, learnable_weights=True).validate()


def test_batched_rebalancing_stays_a_branch():
    """The loop's step number reaches the vmapped step unbatched, so the rebalancing remains a
    ``cond`` taken every ``every`` steps — not a select that computes the gradient norms at every
    step (3× the cost of a batched step, measured)."""
    from ecgi_jax.solvers.neural._train import _chunk_runner

    balance = GradNormBalance(BASE, (0, 1, 1, 1), every=3)
    opt = optax.adam(0.1)
    step = make_step(_weighted, opt, lambda key: jnp.zeros(()), balance)
    states = jax.tree.map(lambda x: jnp.stack([x, x]), TrainState.create(X0, opt, weights=BASE))
    keys = jax.random.split(jax.random.key(0), (2, 4))
    run = _chunk_runner(step, batched=True)
    text = str(jax.make_jaxpr(run)(states, None, keys, jnp.zeros(2, bool), jnp.int32(0)))
    assert "cond[" in text
    # And the batched chunk equals two single ones.
    out, _ = run(states, None, keys, jnp.zeros(2, bool), jnp.int32(0))
    single, _ = _chunk_runner(step, batched=False)(TrainState.create(X0, opt, weights=BASE), None, keys[1], jnp.array(False), jnp.int32(0))
    np.testing.assert_allclose(out.weights[1], single.weights, rtol=1e-6)
    np.testing.assert_allclose(out.params["x"][1], single.params["x"], rtol=1e-6)


def test_solve_balances_by_default_except_with_learnable_weights(sphere):
    mesh, lap, A, U, Y = sphere
    kw = dict(laplacian=lap, dt=0.1, init="random", width=8, steps=20, chunk=10, progress=False)
    assert "loss_weights" in solve(Y, A, method="eand-arn", **kw).diagnostics
    assert "loss_weights" not in solve(Y, A, method="eand-arn", balance_every=0, **kw).diagnostics
    learnable = solve(Y, A, method="eand-arn", learnable_weights=True, **kw)
    assert "loss_weights" not in learnable.diagnostics and learnable.options["balance_every"] is None
    with pytest.raises(ValueError, match="choose one"):
        solve(Y, A, method="eand-arn", learnable_weights=True, balance_every=10, **kw)
