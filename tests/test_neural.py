"""EAND-ARN, its loss and training loop, the P-DL baseline and the pacing-site search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ecgi_jax import geometry, operators
from ecgi_jax.ep import APParams, APProblem, simulate
from ecgi_jax.solvers.neural import (
    EANDARNConfig,
    TrainConfig,
    eand_arn,
    evaluate_fields,
    make_inputs,
    physics_loss,
)
from ecgi_jax.solvers.neural._eand_arn import build_model, fitted_ap_params, make_eand_arn_step
from ecgi_jax.solvers.shooting import farthest_point_sample, pacing_search

from conftest import assert_gradient_matches_finite_differences, sphere_heart, zero_output_network  # tests/ is on sys.path

N_T = 48


@pytest.fixture(scope="module")
def tiny():
    """162-node sphere heart, 30 'leads' of a smooth random transfer matrix, one simulated beat."""
    mesh, lap, A = sphere_heart()
    U, V = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=N_T)
    return mesh, lap, A, U, V, A @ U


def _problem(mesh, lap, A, Y, base=None):
    inputs = make_inputs(Y, jnp.asarray(mesh.vertices, Y.dtype), 0.1, *(base or (None, None)))
    return APProblem(Y, A, lap.astype(Y.dtype), jnp.asarray(mesh.vertices, Y.dtype), APParams(), jnp.asarray(0.1, Y.dtype), inputs)


@pytest.mark.parametrize("mode", ["body", "coordinate"])
def test_alpha_zero_network_is_its_shallow_part(mode):
    cfg = EANDARNConfig(mode=mode, width=16, n_blocks=3)
    model = build_model(cfg, 5, 7, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 7 if mode == "body" else 4))
    shallow = model.head(model.act(model.embed(x)))
    np.testing.assert_allclose(model(x), shallow, rtol=1e-6, atol=1e-6)
    # Once the α's move, the blocks contribute.
    for b in model.blocks:
        b.alpha[...] = jnp.asarray(0.5)
    assert not np.allclose(model(x), shallow, atol=1e-4)


def test_physics_loss_is_small_at_the_truth(tiny):
    """The truth (as the 'start' with a zero network) has a stencil-level AP residual and a zero misfit."""
    mesh, lap, A, U, V, Y = tiny
    graphdef, (params, rest) = zero_output_network(mesh.n_vertices, A.shape[0])
    truth = _problem(mesh, lap, A, Y, (U, V))
    terms = physics_loss((params, rest), graphdef, truth, jnp.arange(N_T), mode="body", stencil_order=4, derivative="numerical")
    assert float(terms[0]) < 1e-10  # data
    assert float(terms[1]) < 1e-3 and float(terms[2]) < 1e-5  # AP residual: stencil error only
    # The same fields with the pacing site moved violate the data and the physics.
    U2, V2 = simulate(lap, jnp.zeros(mesh.n_vertices).at[90].set(1.0), n_samples=N_T)
    wrong = _problem(mesh, lap, A, Y, (U2, V2))
    terms2 = physics_loss((params, rest), graphdef, wrong, jnp.arange(N_T), mode="body", stencil_order=4, derivative="numerical")
    assert float(terms2[0]) > 1e3 * float(terms[0]) + 1e-3


@pytest.mark.parametrize("mode,derivative", [("body", "numerical"), ("coordinate", "numerical"), ("coordinate", "autodiff")])
def test_loss_gradient_matches_finite_differences(tiny, x64, mode, derivative):
    mesh, lap, A, U, V, Y = tiny
    A, Y = jnp.asarray(A, jnp.float64), jnp.asarray(Y, jnp.float64)
    problem = _problem(mesh, lap, A, Y)
    cfg = EANDARNConfig(mode=mode, width=8, n_blocks=2, derivative=derivative)
    model = build_model(cfg, mesh.n_vertices, A.shape[0], jax.random.key(2))
    for b in model.blocks:
        b.alpha[...] = jnp.asarray(0.3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
    rest = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), rest)
    t_idx = jnp.arange(N_T) if derivative == "numerical" else jnp.array([3, 10, 20, 40])
    weights = jnp.array([1.0, 1.0, 1.0, 0.1, 0.1])

    def total(p):
        terms = physics_loss((p, rest), graphdef, problem, t_idx, mode=mode, stencil_order=4, derivative=derivative)
        return jnp.sum(weights * terms)

    assert_gradient_matches_finite_differences(total, params)


@pytest.mark.parametrize("architecture", ["adaptive-resnet", "pdl-mlp"])
def test_coordinate_fields_in_chunks_equal_one_pass(tiny, x64, monkeypatch, architecture):
    """Coordinate mode evaluates the network over chunks of samples, recomputed in the backward
    pass: the loss terms and their gradient are those of one pass over every point, also when
    the last chunk is padded (48 samples in chunks of 5; 400 collocation samples in chunks of 3)."""
    from ecgi_jax.solvers.neural import _fields

    mesh, lap, A, U, V, Y = tiny
    A, Y = jnp.asarray(A, jnp.float64), jnp.asarray(Y, jnp.float64)
    problem = _problem(mesh, lap, A, Y)
    cfg = EANDARNConfig(mode="coordinate", architecture=architecture, width=8, n_blocks=2, derivative="autodiff")
    graphdef, params, rest = nnx.split(build_model(cfg, mesh.n_vertices, A.shape[0], jax.random.key(3)), nnx.Param, ...)
    params, rest = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), (params, rest))
    t_idx = jax.random.randint(jax.random.key(4), (400,), 0, N_T)

    def value_and_grad(chunk_points):
        monkeypatch.setattr(_fields, "_CHUNK_POINTS", chunk_points)  # read when traced
        terms = lambda p: physics_loss((p, rest), graphdef, problem, t_idx, mode="coordinate", stencil_order=4,  # noqa: E731
                                       derivative="autodiff")
        return terms(params), jax.grad(lambda p: jnp.sum(terms(p)))(params)

    n = mesh.n_vertices
    one_pass = value_and_grad(n * 400)
    for chunk_points in (5 * n - 1, 3 * n):  # chunks of 5 (padded) and of 3 samples (padded)
        chunked = value_and_grad(chunk_points)
        np.testing.assert_allclose(chunked[0], one_pass[0], rtol=1e-10)
        for a, b in zip(jax.tree.leaves(chunked[1]), jax.tree.leaves(one_pass[1])):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_pdl_network_is_the_plain_tanh_mlp():
    """P-DL's MLP (evaluated features-major, the slope folded into the weights) is
    ``tanh(n·a·(x W + b))`` layer by layer, then a linear head, written out row by row."""
    from ecgi_jax.solvers.neural._networks import PDLNet

    net = PDLNet(width=6, n_layers=3, rngs=nnx.Rngs(0))
    net.slope[...] = jnp.asarray(0.137)
    x = jax.random.normal(jax.random.key(1), (11, 4))
    h = np.asarray(x, np.float64)
    for layer in net.layers:
        h = np.tanh(10 * 0.137 * (h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])))
    expected = h @ np.asarray(net.head.kernel[...]) + np.asarray(net.head.bias[...])
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net(x[3]), expected[3], rtol=1e-5, atol=1e-6)  # one point, or any leading shape
    np.testing.assert_allclose(net(x[:10].reshape(2, 5, 4)), expected[:10].reshape(2, 5, 2), rtol=1e-5, atol=1e-6)


def test_free_grid_loss_is_the_loss_of_the_fields_themselves(tiny, x64):
    """mode='grid': the parameters are corrections of the start fields, and the loss and its
    gradient equal the terms written out by hand on ``U0 + dU, V0 + dV``."""
    from ecgi_jax.ep import ap_residual

    mesh, lap, A, U, V, Y = tiny
    A, Y = jnp.asarray(A, jnp.float64), jnp.asarray(Y, jnp.float64)
    U0, V0 = jnp.asarray(U, jnp.float64), jnp.asarray(V, jnp.float64)
    problem = _problem(mesh, lap, A, Y, (U0, V0))
    model = build_model(EANDARNConfig(mode="grid"), mesh.n_vertices, A.shape[0], jax.random.key(0), N_T, jnp.float64)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    assert float(jnp.abs(params["U"][...]).max()) == 0.0  # training starts exactly at the start
    dU = 0.01 * jax.random.normal(jax.random.key(1), U0.shape, jnp.float64)
    dV = 0.01 * jax.random.normal(jax.random.key(2), U0.shape, jnp.float64)
    params["U"][...], params["V"][...] = dU, dV
    lap64 = lap.astype(jnp.float64)

    def by_hand(dU, dV):
        Uh, Vh = U0 + dU, V0 + dV
        ru, rv = ap_residual(Uh, Vh, lap64, APParams(), 0.1, stencil_order=4, mode="same")
        data = jnp.mean((A @ Uh - Y) ** 2) / jnp.var(Y)
        return jnp.stack([data, jnp.mean(ru**2), jnp.mean(rv**2), jnp.mean(Uh**2), jnp.mean((lap64 @ Uh) ** 2)])

    def through_the_solver(p):
        return physics_loss((p, rest), graphdef, problem, jnp.arange(N_T), mode="grid", stencil_order=4, derivative="numerical")

    np.testing.assert_allclose(through_the_solver(params), by_hand(dU, dV), rtol=1e-12)
    g = jax.grad(lambda p: jnp.sum(through_the_solver(p)))(params)
    gu, gv = jax.grad(lambda a, b: jnp.sum(by_hand(a, b)), argnums=(0, 1))(dU, dV)
    np.testing.assert_allclose(g["U"][...], gu, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g["V"][...], gv, rtol=1e-10, atol=1e-14)


def test_loss_jit_matches_eager_and_vmap_matches_loop(tiny):
    mesh, lap, A, U, V, Y = tiny
    cfg = EANDARNConfig(width=16, n_blocks=2)
    model = build_model(cfg, mesh.n_vertices, A.shape[0], jax.random.key(0))
    # Small corrections of a physical start: keeps u + mu2 away from 0, where the v-equation's
    # division makes float32 rounding (and so jit/vmap reassociation) visible.
    model.head.kernel[...] = 0.01 * model.head.kernel[...]
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    Ys = jnp.stack([Y, 0.5 * Y, Y + 0.01])
    problems = [_problem(mesh, lap, A, y, (U, V)) for y in Ys]

    def loss(problem):
        return physics_loss((params, rest), graphdef, problem, jnp.arange(N_T), mode="body", stencil_order=4, derivative="numerical")

    eager = loss(problems[0])
    np.testing.assert_allclose(jax.jit(loss)(problems[0]), eager, rtol=1e-5)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *problems)
    batched = jax.vmap(loss)(stacked)
    np.testing.assert_allclose(batched, jnp.stack([loss(p) for p in problems]), rtol=1e-5, atol=1e-9)


def test_windows_residual_matches_full_residual_at_centres(tiny):
    """Random-window evaluation gives the same centred residual as the full-batch evaluation."""
    mesh, lap, A, U, V, Y = tiny
    from ecgi_jax.ep import ap_residual

    model = build_model(EANDARNConfig(width=16, n_blocks=1), mesh.n_vertices, A.shape[0], jax.random.key(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    problem = _problem(mesh, lap, A, Y)
    Uf, Vf = evaluate_fields(graphdef, (params, rest), problem.inputs, jnp.arange(N_T), "body")
    ru, _ = ap_residual(Uf, Vf, lap, APParams(), 0.1, stencil_order=4, mode="same")
    windows = jnp.array([[3, 4, 5, 6, 7], [20, 21, 22, 23, 24]])
    Uw, Vw = evaluate_fields(graphdef, (params, rest), problem.inputs, windows, "body")
    rw, _ = ap_residual(Uw, Vw, lap, APParams(), 0.1, stencil_order=4, mode="valid")
    np.testing.assert_allclose(rw[:, :, 0], ru[:, [5, 22]], rtol=1e-4, atol=1e-5)


def test_pacing_search_finds_the_site(tiny):
    mesh, lap, A, U, V, Y = tiny
    noisy = Y + 0.05 * jnp.std(Y) * jax.random.normal(jax.random.key(0), Y.shape)
    found = pacing_search(noisy, A, lap, vertices=mesh.vertices, adjacency=mesh.adjacency, n_candidates=8)
    assert found.node == 7
    np.testing.assert_allclose(found.U, U, atol=1e-6)
    assert len(found.visited) < mesh.n_vertices  # a search, not an exhaustive scan
    assert len(set(farthest_point_sample(mesh.vertices, 20).tolist())) == 20


def test_pacing_search_finds_an_earlier_onset(tiny):
    """A beat that started 1.5 time units before the recording: the search finds node and onset,
    and with max_advance=0 it cannot fit the data as well."""
    mesh, lap, A, _, _, _ = tiny
    lead = 15
    U_long, _ = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=N_T + lead)
    Y = A @ U_long[:, lead:]
    found = pacing_search(Y, A, lap, vertices=mesh.vertices, adjacency=mesh.adjacency, n_candidates=8, max_advance=3.0)
    assert found.node == 7 and found.onset == pytest.approx(-1.5)
    np.testing.assert_allclose(found.U, U_long[:, lead:], atol=1e-6)
    assert found.misfit < 1e-8
    fixed = pacing_search(Y, A, lap, vertices=mesh.vertices, adjacency=mesh.adjacency, n_candidates=8, max_advance=0.0)
    assert fixed.onset == 0.0 and fixed.misfit > 100 * max(found.misfit, 1e-10)


def test_training_from_the_pacing_start_stays_on_the_truth(tiny):
    """Started from the found beat, training lowers the loss and keeps the map on the truth."""
    mesh, lap, A, U, V, Y = tiny
    noisy = Y + 0.05 * jnp.std(Y) * jax.random.normal(jax.random.key(0), Y.shape)
    fit = eand_arn(
        noisy, A, laplacian=lap, dt=0.1, vertices=mesh.vertices, adjacency=mesh.adjacency,
        config=EANDARNConfig(width=32, n_blocks=2),
        train=TrainConfig(steps=200, learning_rate=1e-4, chunk=50, progress=False), key=jax.random.key(0), truth=U,
        start="pacing",
    )
    assert fit.info["start"] == "pacing" and fit.info["pacing_node"] == 7
    re = float(jnp.linalg.norm(fit.U - U) / jnp.linalg.norm(U))
    assert re < 0.02, re
    assert fit.history["rel_error"][-1] == pytest.approx(re, rel=1e-4)
    assert fit.history["loss"][-1] <= fit.history["loss"][0]
    assert fit.info["stopped"] in ("completed", "plateau")


def test_auto_start_picks_the_beat_that_fits_and_its_model(tiny):
    """Data from tissue with D = 13 (nominal 10): the shooting beat (D fitted) explains them
    better than any nominal single-site beat, so 'auto' takes it and EAND-ARN's physics term uses
    its D; without coordinates there is no shooting, and 'shooting' says what is missing."""
    from ecgi_jax.solvers.neural import start_solution

    mesh, lap, A, _, _, _ = tiny
    U, _ = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=N_T, ap_params=APParams(D=13.0))
    Y = A @ U + 0.02 * jnp.std(A @ U) * jax.random.normal(jax.random.key(0), (A.shape[0], N_T))
    kw = dict(vertices=mesh.vertices, adjacency=mesh.adjacency)
    U_auto, _, info = start_solution("auto", Y, A, lap, 0.1, **kw)
    U_pace, _, info_pace = start_solution("pacing", Y, A, lap, 0.1, **kw)
    assert info["start"] == "shooting" and abs(info["start_D"] - 13.0) < 0.5
    assert info["start_misfits"]["shooting"] < info["start_misfits"]["pacing"] == pytest.approx(info_pace["start_misfit"])
    err = lambda X: float(jnp.linalg.norm(X - U) / jnp.linalg.norm(U))  # noqa: E731
    assert err(U_auto) < 0.85 * err(U_pace)  # 0.065 vs 0.086 (the patch is not a single node)
    fit = eand_arn(Y, A, laplacian=lap, dt=0.1, config=EANDARNConfig(width=8, n_blocks=1),
                   train=TrainConfig(steps=1, progress=False), **kw)
    assert fit.info["start"] == "shooting" and fit.info["start_D"] == info["start_D"]
    assert start_solution("auto", Y, A, lap, 0.1)[2]["start"] == "pacing"  # no vertices: no shooting
    with pytest.raises(ValueError, match="vertices"):
        start_solution("shooting", Y, A, lap, 0.1)


def test_same_key_same_result(tiny):
    mesh, lap, A, U, V, Y = tiny
    kw = dict(laplacian=lap, dt=0.1, config=EANDARNConfig(width=8, n_blocks=1, init="random"),
              train=TrainConfig(steps=20, chunk=10, progress=False))
    a = eand_arn(Y, A, key=jax.random.key(5), **kw)
    b = eand_arn(Y, A, key=jax.random.key(5), **kw)
    np.testing.assert_array_equal(a.U, b.U)


def test_a_second_call_of_the_same_shape_reuses_the_compiled_training_loop(tiny):
    """Identical settings and shapes: the same step function, hence one compiled chunk program
    (it used to compile afresh on every call); other data of that shape reuse it too."""
    from ecgi_jax.solvers.neural._train import _chunk_runner

    mesh, lap, A, U, V, Y = tiny
    cfg = EANDARNConfig(width=8, n_blocks=1, init="random")
    train = TrainConfig(steps=20, chunk=10, progress=False)
    kw = dict(laplacian=lap, dt=0.1, config=cfg, train=train)
    eand_arn(Y, A, key=jax.random.key(5), **kw)
    eand_arn(0.5 * Y, A, key=jax.random.key(6), **kw)
    graphdef = eand_arn(Y, A, key=jax.random.key(7), **kw).graphdef
    runner = _chunk_runner(make_eand_arn_step(graphdef, cfg, train, Y.shape[1], Y.dtype), False)
    assert runner._cache_size() == 1


def test_nan_guard_keeps_last_good_parameters(tiny):
    mesh, lap, A, U, V, Y = tiny
    with pytest.warns(RuntimeWarning, match="diverged"):
        fit = eand_arn(
            Y, A, laplacian=lap, dt=0.1, config=EANDARNConfig(width=8, n_blocks=1, init="random"),
            train=TrainConfig(steps=200, learning_rate=1e9, grad_clip=None, chunk=10, progress=False),
            key=jax.random.key(0),
        )
    assert fit.info["stopped"] == "diverged"
    assert bool(jnp.all(jnp.isfinite(fit.U)))
    assert fit.info["steps"] < 200


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="autodiff"):
        EANDARNConfig(mode="body", derivative="autodiff").validate()
    with pytest.raises(ValueError, match="init"):
        EANDARNConfig(init="magic").validate()
    with pytest.raises(ValueError, match="order"):
        EANDARNConfig(stencil_order=3).validate()
    with pytest.raises(ValueError, match="mode='grid' has none"):
        EANDARNConfig(mode="grid", init="head").validate()


def test_lbfgs_refine_reaches_the_minimum_of_a_quadratic():
    from ecgi_jax.solvers.neural._train import lbfgs_refine

    H = jnp.asarray([[3.0, 1.0], [1.0, 2.0]])
    b = jnp.asarray([1.0, -1.0])

    def loss_fn(p, problem, t_idx):
        x = p["x"]
        total = 0.5 * x @ problem @ x - b @ x
        return total, total[None]

    params, losses = lbfgs_refine(loss_fn, {"x": jnp.zeros(2)}, H, jnp.arange(1), 30, chunk=10)
    np.testing.assert_allclose(params["x"], jnp.linalg.solve(H, b), rtol=1e-4, atol=1e-5)
    assert losses.shape == (30,) and losses[-1] <= losses[0]


def test_lbfgs_finishing_stage_lowers_the_loss(tiny):
    mesh, lap, A, U, V, Y = tiny
    kw = dict(laplacian=lap, dt=0.1, config=EANDARNConfig(width=8, n_blocks=1, init="random"), key=jax.random.key(1))
    adam = eand_arn(Y, A, train=TrainConfig(steps=40, chunk=20, progress=False), **kw)
    both = eand_arn(Y, A, train=TrainConfig(steps=40, chunk=20, progress=False, lbfgs_steps=40), **kw)
    np.testing.assert_array_equal(adam.history["loss"], both.history["loss"])  # same Adam stage
    assert len(both.history["lbfgs_loss"]) == 40
    # The full-batch loss after L-BFGS is below the last Adam iterate's (the stage keeps its best).
    assert both.info["lbfgs_final_loss"] < 0.9 * both.history["lbfgs_loss"][0]


def test_fit_D_recovers_the_tissue_from_the_true_fields():
    """Fields of a D = 13 beat as the start, nominal D = 10 in the loss: the data are already
    explained, so the physics term alone must move D to 13 (and the loss gradient in D is
    checked against finite differences)."""
    mesh = geometry.icosphere(2).scaled(20.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.normal(size=(30, mesh.n_vertices)), jnp.float32)
    U, V = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=N_T, ap_params=APParams(D=13.0))
    fit = eand_arn(
        A @ U, A, laplacian=lap, dt=0.1, start=(U, V), config=EANDARNConfig(width=8, n_blocks=1, fit_D=True),
        train=TrainConfig(steps=300, learning_rate=1e-5, progress=False),
    )
    assert abs(fit.info["D"] - 13.0) < 0.3, fit.info["D"]
    assert "a" in fit.info and fit.info["a"] == pytest.approx(0.1, rel=1e-6)  # not fitted: nominal


def test_physics_parameters_gradient_matches_finite_differences(tiny, x64):
    from ecgi_jax.ep import ap_residual

    mesh, lap, A, U, V, Y = tiny
    U, V = jnp.asarray(U, jnp.float64), jnp.asarray(V, jnp.float64)
    lap64 = lap.astype(jnp.float64)

    def residual_energy(eta):
        ap = fitted_ap_params(APParams(), {"log_D": eta[0], "logit_a": eta[1]})
        ru, rv = ap_residual(U, V, lap64, ap, 0.1, stencil_order=4, mode="same")
        return jnp.mean(ru**2) + jnp.mean(rv**2)

    eta = jnp.array([0.1, -0.2])
    g = jax.grad(residual_energy)(eta)
    for i in range(2):
        e = jnp.zeros(2).at[i].set(1e-6)
        fd = (residual_energy(eta + e) - residual_energy(eta - e)) / 2e-6
        np.testing.assert_allclose(float(g[i]), float(fd), rtol=1e-6)
    ap = fitted_ap_params(APParams(), {"log_D": jnp.log(1.3), "logit_a": jnp.zeros(())})
    assert float(ap.D) == pytest.approx(13.0) and float(ap.a) == pytest.approx(0.1)


def test_pdl_from_random_initialisation_does_not_diverge(pdl_dir):
    """On the P-DL heart a random network's u crosses −mu2, where the AP v-equation is singular;
    P-DL must train through it (regression: it stopped as 'diverged' within ten steps)."""
    from ecgi_jax import solve
    from ecgi_jax.datasets import load_pdl
    from ecgi_jax.synthetic import make_case

    data = load_pdl(pdl_dir)
    lap = operators.SparseOperator.from_scipy(data.laplacian)
    case = make_case(jax.random.key(0), data.transfer, lap, [500], sigma=0.1)
    sol = solve(case.Y, case.A, method="pdl", laplacian=lap, dt=0.1, vertices=data.vertices, steps=20, chunk=10,
                progress=False, key=jax.random.key(0))
    assert sol.diagnostics["stopped"] != "diverged", sol.diagnostics
    assert sol.history["loss"][-1] < sol.history["loss"][0]


def test_every_eand_arn_setting_is_reachable_from_solve_with_the_configs_default():
    """One source of defaults: every field of EANDARNConfig and TrainConfig is an option of
    solve(method="eand-arn") with the config's default, and reaches the config it builds."""
    import dataclasses

    from ecgi_jax import method_options
    from ecgi_jax.solvers.neural._methods import _eand_arn_settings

    options = {**method_options("eand-arn"), "laplacian": np.eye(3)}
    for cls in (EANDARNConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert f.name in options and options[f.name] == f.default, (cls.__name__, f.name)
    cfg, train, _ = _eand_arn_settings(options)
    assert cfg == EANDARNConfig() and train == TrainConfig()
    changed = dict(fourier_scale=2.0, ridge=1e-3, architecture="pdl-mlp", grad_clip=None, min_delta=0.0, decay_steps=7,
                   decay_rate=0.9, min_learning_rate=0.0, schedule="pdl")
    cfg, train = _eand_arn_settings({**options, **changed})[:2]
    for name, value in changed.items():
        assert getattr(cfg if hasattr(cfg, name) else train, name) == value, name
