"""solve_batch: batched classical and neural solves equal a loop of solve(); sharding over devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ecgi_jax import geometry, operators, solve, solve_batch
from ecgi_jax.solvers.neural import TrainConfig, TrainState, make_step, run_training

B = 3


def _classical_batch(m=12, n=20, t=6, seed=0):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((B, m, n)) * 0.85 ** np.arange(n)).astype(np.float32)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0, 0] = L[-1, -1] = 1.0
    X = (np.cumsum(rng.standard_normal((B, n, t)), axis=1) / 5).astype(np.float32)
    Y = (np.einsum("bmn,bnt->bmt", A, X) + 1e-3 * rng.standard_normal((B, m, t))).astype(np.float32)
    return Y, A, L.astype(np.float32), X


def _assert_same_solutions(batch, loop, rtol):
    assert len(batch) == len(loop)
    for sb, sl in zip(batch, loop):
        scale = float(np.max(np.abs(np.asarray(sl.U))))
        np.testing.assert_allclose(np.asarray(sb.U), np.asarray(sl.U), rtol=0, atol=rtol * scale)
        assert sb.method == sl.method
        assert set(sb.diagnostics) - {"batch_size", "batched"} == set(sl.diagnostics)
        assert set(sb.options) == set(sl.options)


@pytest.mark.parametrize(
    "method,shared,options",
    [
        ("tikhonov-2", False, {"lambda_rule": "gcv"}),
        ("tikhonov-2", True, {"lambda_rule": "discrepancy"}),
        ("tsvd", True, {"lambda_rule": "oracle"}),
    ],
)
def test_classical_batch_matches_loop(method, shared, options):
    Y, A, L, X = _classical_batch()
    if method.startswith("tikhonov"):
        options = {**options, "laplacian": L}
    if options["lambda_rule"] == "oracle":
        options = {**options, "truth": X}
    A_arg = A[0] if shared else A
    batch = solve_batch(Y, A_arg, method=method, **options)
    per = lambda b: {k: (v[b] if k == "truth" else v) for k, v in options.items()}  # noqa: E731
    loop = [solve(Y[b], A[0] if shared else A[b], method=method, **per(b)) for b in range(B)]
    _assert_same_solutions(batch, loop, rtol=1e-5)
    for sb, sl in zip(batch, loop):
        assert sb.diagnostics["lambda_index"] == sl.diagnostics["lambda_index"]
        np.testing.assert_allclose(sb.diagnostics["lam"], sl.diagnostics["lam"], rtol=1e-5)
        res = sl.diagnostics["residual_norms"]
        np.testing.assert_allclose(sb.diagnostics["residual_norms"], res, rtol=1e-4, atol=1e-5 * float(np.max(res)))
        assert sb.diagnostics["batch_size"] == B


def test_fallback_loop_for_unbatched_methods():
    Y, A, L, _ = _classical_batch(n=10, t=5)
    batch = solve_batch(Y, A, method="spatiotemporal", laplacian=L, lam_s=1e-2, lam_t=1e-3)
    loop = [solve(Y[b], A[b], method="spatiotemporal", laplacian=L, lam_s=1e-2, lam_t=1e-3) for b in range(B)]
    _assert_same_solutions(batch, loop, rtol=1e-6)
    assert batch[0].diagnostics["batched"] is False


def test_bad_batch_inputs_are_rejected():
    Y, A, L, _ = _classical_batch()
    with pytest.raises(ValueError, match="3-D"):
        solve_batch(Y[0], A, method="tikhonov-0")
    with pytest.raises(ValueError, match="holds 2"):
        solve_batch(Y, A[:2], method="tikhonov-0")
    with pytest.raises(ValueError, match="NaN"):
        solve_batch(np.where(np.arange(Y.size).reshape(Y.shape) == 3, np.nan, Y), A, method="tikhonov-0")
    with pytest.raises(TypeError, match="keys="):
        solve_batch(Y, A, method="eand-arn", key=jax.random.key(0))
    with pytest.raises(ValueError, match="one key per problem"):
        solve_batch(Y, A, method="eand-arn", keys=[jax.random.key(0)])
    with pytest.raises(TypeError, match="valid options"):
        solve_batch(Y, A, method="tikhonov-0", bogus=1)
    with pytest.raises(ValueError, match="devices"):
        solve_batch(Y, A, method="tikhonov-0", devices="gpus")


def test_batch_options_get_solves_checks():
    """The shared options get solve()'s checks (type, sign, operator shape); per-problem truth
    is checked for its batch axis."""
    Y, A, L, X = _classical_batch()
    with pytest.raises(TypeError, match="option lam must be a real number"):
        solve_batch(Y, A, method="tikhonov-0", lam="0.1")
    with pytest.raises(ValueError, match="option lam must be a finite number"):
        solve_batch(Y, A, method="tikhonov-0", lam=-1.0)
    with pytest.raises(ValueError, match="laplacian"):
        solve_batch(Y, A, method="tikhonov-2", laplacian=L[:5, :5])
    with pytest.raises(ValueError, match=r"truth has shape \(20, 6\); expected \(B, N, T\)"):
        solve_batch(Y, A, method="tikhonov-2", laplacian=L, lambda_rule="oracle", truth=X[0])
    with pytest.raises(ValueError, match="truth contains NaN"):
        solve_batch(Y, A, method="tikhonov-2", laplacian=L, lambda_rule="oracle", truth=_with(X, (1, 0, 0), np.nan))


@pytest.mark.parametrize("method", ["tikhonov-0", "tikhonov-2", "spatiotemporal"])
def test_batch_problems_get_solves_checks_naming_the_problem(method):
    """solve()'s checks of Y (M, T) and A (M, N) for every problem: empty shapes, NaN, mismatches."""
    Y, A, L, _ = _classical_batch()
    kw = {} if method == "tikhonov-0" else {"laplacian": L}
    empty = "problem 0 of the batch: Y .* and A .* must be non-empty"
    cases = [
        ((Y[:, :, :0], A), ValueError, empty),  # T = 0 (returned empty solutions)
        ((Y[:, :0], A[:, :0]), ValueError, empty),  # M = 0 (a numpy reduction error)
        ((Y[:, :0], A[0, :0]), ValueError, empty),  # M = 0, shared A
        ((Y, A[:, :, :0]), ValueError, empty),  # N = 0
        ((Y, A[:, :5]), ValueError, "problem 0 of the batch: Y has 12 rows but A has 5"),
        ((_with(Y, (2, 1, 1), np.nan), A), ValueError, r"problem 2 of the batch: Y contains NaN or Inf values \(1 of 72"),
        ((Y, _with(A, (1, 0, 0), np.inf)), ValueError, "problem 1 of the batch: A contains NaN or Inf"),
        ((Y, _with(A[0], (0, 0), np.inf)), ValueError, "^A contains NaN or Inf"),  # shared: no one problem's
        ((Y + 1j, A), TypeError, "Y must be real"),
    ]
    for (y, a), exc, match in cases:
        with pytest.raises(exc, match=match) as e:
            solve_batch(y, a, method=method, **kw)
        assert type(e.value) is exc
    # Checks of a problem are the same as solve()'s on that problem.
    with pytest.raises(ValueError) as single:
        solve(Y[0, :, :0], A[0], method=method, **kw)
    with pytest.raises(ValueError) as batch:
        solve_batch(Y[:, :, :0], A, method=method, **kw)
    assert str(batch.value) == f"problem 0 of the batch: {single.value}"


def _with(arr, idx, value):
    out = np.array(arr, dtype=np.result_type(arr, type(value)))
    out[idx] = value
    return out


# ----------------------------------------------------------------------------------------------
# training: a toy problem where every stopping path is exercised


def _toy(n_problems=4, d=6):
    """Fit w to targets c with Adam on random coordinate subsets; problem 1 has a NaN target
    (diverges at once), the targets differ in scale so the problems plateau at different chunks."""
    rng = np.random.default_rng(1)
    c = rng.normal(size=(n_problems, d)).astype(np.float32) * np.array([1.0, 1.0, 10.0, 0.1])[:n_problems, None]
    c[1, 2] = np.nan

    def loss_fn(p, problem, idx):
        fit = jnp.mean((p["w"][idx] - problem["c"][idx]) ** 2)
        return fit, fit[None]

    optimizer = optax.adam(0.05)
    step = make_step(loss_fn, optimizer, lambda key: jax.random.randint(key, (3,), 0, d))
    states = [
        TrainState.create({"w": jnp.zeros(d)}, optimizer)
        for _ in range(n_problems)
    ]
    problems = [{"c": jnp.asarray(ci)} for ci in c]
    keys = [jax.random.key(10 + i) for i in range(n_problems)]
    return step, states, problems, keys


def _stack(trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


TOY_CFG = TrainConfig(steps=400, chunk=20, patience=2, min_delta=0.05, progress=False)


def test_batched_training_matches_loop_with_divergence_and_plateaus():
    step, states, problems, keys = _toy()
    with pytest.warns(RuntimeWarning, match="training diverged"):
        loop = [run_training(step, s, p, k, TOY_CFG, names=("fit",)) for s, p, k in zip(states, problems, keys)]
    with pytest.warns(RuntimeWarning, match="problem 1 of the batch diverged"):
        state, histories, infos = run_training(
            step, _stack(states), _stack(problems), _stack(keys), TOY_CFG, names=("fit",), batched=True
        )
    reasons = [info["stopped"] for _, _, info in loop]
    assert reasons[1] == "diverged" and "plateau" in reasons  # the paths under test are taken
    assert len({len(h["loss"]) for _, h, _ in loop}) > 1  # problems stop at different chunks
    for b, (s, h, info) in enumerate(loop):
        np.testing.assert_allclose(state.params["w"][b], s.params["w"], rtol=1e-6, atol=1e-7)
        assert infos[b]["stopped"] == info["stopped"] and infos[b]["steps"] == info["steps"]
        assert histories[b]["step"] == h["step"]
        np.testing.assert_allclose(histories[b]["loss"], h["loss"], rtol=1e-5)
    assert bool(jnp.all(jnp.isfinite(state.params["w"])))  # the diverged problem kept its last good state


# ----------------------------------------------------------------------------------------------
# neural methods


@pytest.fixture(scope="module")
def sphere_batch():
    mesh = geometry.icosphere(1).scaled(20.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    rng = np.random.default_rng(0)
    n, m, t = mesh.n_vertices, 10, 16
    A = (rng.standard_normal((B, m, n)) / 5).astype(np.float32)
    X = rng.random((B, n, t)).astype(np.float32)
    return mesh, lap, A, X, np.einsum("bmn,bnt->bmt", A, X)


@pytest.mark.parametrize("extra", [{"balance_every": 0}, {"balance_every": 10}], ids=["fixed-weights", "balanced-weights"])
def test_eand_arn_batch_matches_loop(sphere_batch, extra):
    mesh, lap, A, X, Y = sphere_batch
    kw = dict(laplacian=lap, dt=0.1, init="random", width=8, n_blocks=1, steps=30, chunk=10, progress=False, **extra)
    keys = [jax.random.key(i) for i in range(B)]
    batch = solve_batch(Y, A, method="eand-arn", keys=keys, truth=X, **kw)
    loop = [solve(Y[b], A[b], method="eand-arn", key=keys[b], truth=X[b], **kw) for b in range(B)]
    _assert_same_solutions(batch, loop, rtol=1e-5)
    for sb, sl in zip(batch, loop):
        np.testing.assert_allclose(sb.history["rel_error"], sl.history["rel_error"], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(sb.V), np.asarray(sl.V), atol=1e-5 * float(np.max(np.abs(sl.V))))
    if extra["balance_every"]:  # one shared branch, but each problem rebalanced from its own gradients
        for sb, sl in zip(batch, loop):
            np.testing.assert_allclose(sb.diagnostics["loss_weights"], sl.diagnostics["loss_weights"], rtol=1e-4)
        assert batch[0].diagnostics["loss_weights"] != batch[1].diagnostics["loss_weights"]
    # Different keys give different networks: the batch did not share one model.
    assert not np.allclose(np.asarray(batch[0].U), np.asarray(batch[1].U))


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    from ecgi_jax import geometry, operators, solve_batch
    from ecgi_jax._batch import batch_mesh, shard_batch, _classical_core
    from ecgi_jax.solvers import classical as C

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    out = {}
    # classical: 6 problems over 4 devices (padded to 8), shared and per-problem A
    m, n, t, b = 12, 20, 6, 6
    A = (rng.standard_normal((b, m, n)) * 0.85 ** np.arange(n)).astype(np.float32)
    Y = (A @ rng.standard_normal((b, n, t)) / 5).astype(np.float32)
    L = (2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)).astype(np.float32)
    for shared in (True, False):
        a = A[0] if shared else A
        ref = solve_batch(Y, a, method="tikhonov-2", laplacian=L)
        sh = solve_batch(Y, a, method="tikhonov-2", laplacian=L, devices="all")
        out[f"classical_shared_{shared}"] = max(float(np.max(np.abs(np.asarray(x.U) - np.asarray(y.U)))) / float(np.max(np.abs(np.asarray(y.U)))) for x, y in zip(sh, ref))
    mesh = batch_mesh("all")
    Ys = shard_batch(jnp.asarray(Y), mesh)
    out["placed_shape"] = list(Ys.shape)
    out["placed_devices"] = len(Ys.sharding.device_set)
    out["placed_shard_shapes"] = sorted({tuple(s.data.shape) for s in Ys.addressable_shards})
    X, _ = _classical_core(Ys, shard_batch(jnp.asarray(A), mesh), jnp.asarray(L), None, None, None, 1.0, None, kind="tikhonov", rule="gcv", shared=False)
    out["output_devices"] = len(X.sharding.device_set)
    out["output_spec"] = str(X.sharding.spec)
    # neural: 3 problems over 4 devices (padded to 4)
    sph = geometry.icosphere(1).scaled(20.0)
    lap = operators.huiskamp_laplacian(sph.vertices, sph.adjacency)
    An = (rng.standard_normal((3, 10, sph.n_vertices)) / 5).astype(np.float32)
    Yn = (An @ rng.random((3, sph.n_vertices, 16))).astype(np.float32)
    kw = dict(laplacian=lap, dt=0.1, init="random", width=8, n_blocks=1, steps=20, chunk=10, progress=False)
    keys = [jax.random.key(i) for i in range(3)]
    ref = solve_batch(Yn, An, method="eand-arn", keys=keys, **kw)
    sh = solve_batch(Yn, An, method="eand-arn", keys=keys, devices="all", **kw)
    out["neural"] = max(float(np.max(np.abs(np.asarray(x.U) - np.asarray(y.U)))) / float(np.max(np.abs(np.asarray(y.U)))) for x, y in zip(sh, ref))
    out["neural_n"] = len(sh)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_sharded_batch_matches_unsharded(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["placed_shape"] == [8, 12, 6]  # 6 problems padded to 8
    assert out["placed_devices"] == 4 and out["placed_shard_shapes"] == [[2, 12, 6]]
    assert out["output_devices"] == 4 and "batch" in out["output_spec"]  # jit kept the batch sharding
    assert out["classical_shared_True"] < 1e-5 and out["classical_shared_False"] < 1e-5
    assert out["neural_n"] == 3 and out["neural"] < 1e-5
