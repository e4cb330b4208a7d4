"""The solve() front door: dispatch, options, validation, registry."""

import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax._solve import METHODS, Solution, method_options, methods_table, register_method, solve
from ecgi_jax.operators import SparseOperator


def _small(m=12, n=20, t=6, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) * 0.85 ** np.arange(n)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0, 0] = L[-1, -1] = 1.0
    X = np.cumsum(rng.standard_normal((n, t)), axis=0) / 5
    Y = A @ X + 1e-3 * rng.standard_normal((m, t))
    return Y.astype(np.float32), A.astype(np.float32), L.astype(np.float32), X.astype(np.float32)


def test_registry_and_table():
    for name in ("tikhonov-0", "tikhonov-1", "tikhonov-2", "tsvd", "spatiotemporal"):
        assert name in METHODS
    assert "| `tikhonov-2` |" in methods_table()
    assert "laplacian" in method_options("tikhonov-2")
    # The front door itself must not import the neural solvers (they register themselves; the
    # package __init__ may import them, so check _solve's own imports rather than sys.modules).
    import ecgi_jax._solve as front

    src = open(front.__file__).read()
    assert not any("neural" in line for line in src.splitlines() if line.lstrip().startswith(("import", "from")))


def test_register_from_elsewhere():
    def fake(Y, A, *, scale=1.0):
        return Solution(jnp.zeros((A.shape[1], Y.shape[1])) + scale, "fake", {"ok": True}, {})

    register_method("test-fake", fake, "A test method.")
    try:
        Y, A, _, _ = _small()
        sol = solve(Y, A, method="test-fake", scale=2.0)
        assert sol.method == "test-fake" and sol.options == {"scale": 2.0}
        assert float(sol.U[0, 0]) == 2.0 and "time_s" in sol.diagnostics and sol.history is None
        assert solve(Y, A, method="test-fake").options == {"scale": 1.0}
        with pytest.raises(TypeError, match="valid options: scale"):
            solve(Y, A, method="test-fake", bogus=1)
    finally:
        from ecgi_jax import _registry

        _registry._REGISTRY.pop("test-fake")
        METHODS.pop("test-fake")


def test_solve_classical_methods():
    Y, A, L, X = _small()
    s2 = solve(Y, A, method="tikhonov-2", laplacian=L, lam=1e-3)
    assert s2.U.shape == X.shape and s2.options["lam"] == 1e-3 and s2.options["lambda_rule"] == "creso"
    s2r = solve(Y, A, method="tikhonov-2", laplacian=SparseOperator.from_scipy(L), lambda_rule="gcv")
    d = s2r.diagnostics
    assert d["lambda_rule"] == "gcv" and d["lambdas"].shape == d["residual_norms"].shape == d["criterion"].shape
    assert d["lam"] == pytest.approx(float(d["lambdas"][d["lambda_index"]]))
    so = solve(Y, A, method="tikhonov-0", lambda_rule="oracle", truth=X)
    assert so.diagnostics["benchmark_only"] is True
    s1 = solve(Y, A, method="tikhonov-1", gradient=np.diff(np.eye(20), axis=0), lam=1e-2)
    assert s1.U.shape == X.shape
    st = solve(Y, A, method="tsvd", rank=5)
    assert st.diagnostics["rank"] == 5
    sp = solve(Y, A, method="spatiotemporal", laplacian=L, lam_s=1e-3, lam_t=1e-4)
    assert sp.U.shape == X.shape and sp.recovery is None


def test_solve_validation_errors():
    Y, A, L, X = _small()
    with pytest.raises(ValueError, match="valid methods: .*tikhonov-2"):
        solve(Y, A, method="nope")
    with pytest.raises(TypeError, match="valid options: .*laplacian"):
        solve(Y, A, method="tikhonov-2", laplacain=L)
    with pytest.raises(ValueError, match="laplacian="):
        solve(Y, A, method="tikhonov-2")
    with pytest.raises(ValueError, match="gradient="):
        solve(Y, A, method="tikhonov-1")
    with pytest.raises(ValueError, match="Y must be 2-D"):
        solve(Y[:, 0], A, method="tikhonov-0")
    with pytest.raises(ValueError, match="A must be 2-D"):
        solve(Y, A[0], method="tikhonov-0")
    with pytest.raises(ValueError, match="M rows"):
        solve(Y[:-1], A, method="tikhonov-0")
    Ybad = Y.copy(); Ybad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Y contains NaN"):
        solve(Ybad, A, method="tikhonov-0")
    Abad = A.copy(); Abad[1, 1] = np.inf
    with pytest.raises(ValueError, match="A contains NaN"):
        solve(Y, Abad, method="tikhonov-0")
    with pytest.raises(ValueError, match="laplacian has shape"):
        solve(Y, A, method="tikhonov-2", laplacian=L[:5])
    Lbad = L.copy(); Lbad[0, 0] = np.nan
    with pytest.raises(ValueError, match="laplacian contains NaN"):
        solve(Y, A, method="tikhonov-2", laplacian=Lbad)
    with pytest.raises(ValueError, match="truth"):
        solve(Y, A, method="tikhonov-0", lambda_rule="oracle")
    with pytest.raises(ValueError, match="valid rules"):
        solve(Y, A, method="tikhonov-0", lambda_rule="magic")


def test_an_undetermined_constant_component_takes_the_zero_mean_solution():
    """Zero-mean-reference A (A·1 = 0) with a Laplacian (L·1 = 0): Tikhonov-2, greensite and
    spatiotemporal return the zero-spatial-mean member of the solution family, which equals the
    problem solved in the complement of the constants (a reference implementation); batch = loop;
    the sparse penalties, whose groups the pinning row would join, refuse it with the reason."""
    from ecgi_jax import forward, geometry, operators, solve_batch

    heart, torso = geometry.icosphere(1).scaled(30.0), geometry.icosphere(1).scaled(90.0)
    n = heart.n_vertices
    lap = operators.huiskamp_laplacian(heart.vertices, heart.adjacency)
    A = forward.transfer_matrix(heart, torso)
    assert np.abs(A.sum(axis=1)).max() < 1e-8 * np.abs(A).max()
    rng = np.random.default_rng(0)
    Y = A @ rng.normal(size=(n, 3))
    Y += 0.01 * Y.std() * rng.normal(size=Y.shape)
    lam = 0.05
    sol = solve(Y, A, method="tikhonov-2", laplacian=lap, lam=lam)
    assert sol.diagnostics["constant_mode"] == "zero-mean"
    L = np.asarray(lap.todense(), np.float64)
    Q = np.linalg.svd(np.eye(n) - 1.0 / n)[0][:, : n - 1]  # orthonormal basis of 1-perp
    z = np.linalg.solve(Q.T @ (A.T @ A + lam * L.T @ L) @ Q, Q.T @ A.T @ Y)  # lam weighs the squared seminorm
    np.testing.assert_allclose(np.asarray(sol.U), Q @ z, atol=2e-3 * np.abs(Q @ z).max())
    np.testing.assert_allclose(np.asarray(sol.U).mean(axis=0), 0.0, atol=1e-4 * np.abs(Q @ z).max())
    by_rule = solve(Y, A, method="tikhonov-2", laplacian=lap)  # the default λ rule on the pinned problem
    assert np.all(np.isfinite(np.asarray(by_rule.U))) and abs(float(np.asarray(by_rule.U).mean())) < 1e-4
    batch = solve_batch(np.stack([Y, Y]), A, method="tikhonov-2", laplacian=lap)
    np.testing.assert_allclose(np.asarray(batch[1].U), np.asarray(by_rule.U), rtol=1e-4, atol=1e-5)
    assert batch[0].diagnostics["constant_mode"] == "zero-mean"
    for method in ("greensite", "spatiotemporal"):
        other = solve(Y, A, method=method, laplacian=lap)
        assert other.diagnostics["constant_mode"] == "zero-mean"
        assert np.abs(np.asarray(other.U).mean(axis=0)).max() < 1e-3 * np.abs(np.asarray(other.U)).max()
    with pytest.raises(ValueError, match="constant component is undetermined"):
        solve(Y, A, method="lp-lq", order=2, laplacian=lap)
    A_ref = forward.transfer_matrix(heart, torso, reference="none")
    ref = solve(A_ref @ np.ones((n, 2)), A_ref, method="tikhonov-2", laplacian=lap)
    assert np.all(np.isfinite(ref.potentials)) and "constant_mode" not in ref.diagnostics


def test_spatiotemporal_lam_t_alone_is_used_and_a_value_with_its_grid_is_refused():
    """lam_t given alone fixes the temporal weight (the rule picks lam_s): the result equals the
    fixed-(lam_s, lam_t) solve at the chosen lam_s. A value next to its grid is ambiguous."""
    Y, A, L = _small(t=12)[:3]
    sol = solve(Y, A, method="spatiotemporal", laplacian=L, lam_t=0.5)
    assert sol.diagnostics["lam_t"] == 0.5 and list(sol.diagnostics["lams_t"]) == [0.5]
    fixed = solve(Y, A, method="spatiotemporal", laplacian=L, lam_s=sol.diagnostics["lam_s"], lam_t=0.5)
    np.testing.assert_allclose(sol.U, fixed.U, rtol=1e-5, atol=1e-6)
    for kw in (dict(lam_s=0.1, lams_s=[0.1, 1.0]), dict(lam_t=0.1, lams_t=[0.0, 1.0])):
        with pytest.raises(ValueError, match="not both"):
            solve(Y, A, method="spatiotemporal", laplacian=L, **kw)


def test_spatiotemporal_creso_is_the_spatial_creso_lambda_with_the_balanced_temporal_weight():
    Y, A, L = _small(t=12)[:3]
    sol = solve(Y, A, method="spatiotemporal", laplacian=L, lambda_rule="creso")
    spatial = solve(Y, A, method="tikhonov-2", laplacian=L, lambda_rule="creso")
    assert sol.diagnostics["lam_s"] == pytest.approx(spatial.diagnostics["lam"], rel=1e-5)
    X0 = np.asarray(spatial.U)
    from ecgi_jax.solvers.classical import temporal_operator

    D = np.asarray(temporal_operator(12, 0.1))
    balance = spatial.diagnostics["lam"] * np.sum((np.asarray(L) @ X0) ** 2) / np.sum((X0 @ D.T) ** 2)
    assert sol.diagnostics["lam_t"] == pytest.approx(balance, rel=1e-4)
    fixed = solve(Y, A, method="spatiotemporal", laplacian=L, lam_s=sol.diagnostics["lam_s"], lam_t=sol.diagnostics["lam_t"])
    np.testing.assert_allclose(np.asarray(sol.U), np.asarray(fixed.U), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one spatial λ"):
        solve(Y, A, method="spatiotemporal", laplacian=L, lambda_rule="creso", lams_s=[0.1, 1.0])


def test_spatiotemporal_rule_does_not_depend_on_the_time_unit():
    """The λ rule balances the temporal weight against the data, so dt (the sample spacing, 0.1 by
    default as in every method) only rescales the chosen lam_t by dt²: the same map comes back."""
    Y, A, L = _small(t=12)[:3]
    one = solve(Y, A, method="spatiotemporal", laplacian=L, dt=1.0)
    default = solve(Y, A, method="spatiotemporal", laplacian=L)
    assert default.options["dt"] == 0.1
    np.testing.assert_allclose(default.U, one.U, rtol=1e-4, atol=1e-5)
    assert default.diagnostics["lam_t"] == pytest.approx(0.01 * one.diagnostics["lam_t"], rel=1e-4)


@pytest.mark.parametrize(
    "method, old, new",
    [("eand-arn", "order", "stencil_order"), ("spatiotemporal", "spatial_order", "order"), ("tsvd", "k", "rank"),
     ("greensite", "k", "n_components"), ("activation-based", "width", "upstroke_width")],
)
def test_a_renamed_option_names_its_new_name(method, old, new):
    from ecgi_jax import method_options, solve_batch

    assert new in method_options(method) and old not in method_options(method)
    Y, A = _small(t=12)[:2]
    for call in (lambda: solve(Y, A, method=method, **{old: 2}), lambda: solve_batch(Y[None], A, method=method, **{old: 2})):
        with pytest.raises(TypeError, match=f"'{old}' is now '{new}'"):
            call()


def test_an_option_name_means_one_thing_in_every_method():
    """Options shared by several methods have one default (hence one meaning) — except the few
    listed, whose meaning is the same and whose default is the method's own choice."""
    import collections

    from ecgi_jax import METHODS, method_options

    # lambda_rule: the same rules, each method's own best: CRESO for Tikhonov and spatiotemporal
    # (it holds under correlated noise), GCV where CRESO is not defined (TSVD) or no rule held
    # (Greensite's per-component λ: experiments/lambda_rules.py).
    own_default = {"lam", "order", "max_iter", "steps", "learning_rate", "progress", "fit_D", "fit_a", "start", "width", "lambda_rule"}
    defaults = collections.defaultdict(set)
    for m in METHODS:
        for name, value in method_options(m).items():
            defaults[name].add(repr(value))
    clashes = {n: v for n, v in defaults.items() if len(v) > 1 and n not in own_default}
    assert not clashes, clashes


def _tiny_ap():
    from test_checkpoint import PROBLEM  # tests/ is on sys.path; the checkpoint tests' tiny EAND-ARN problem

    namespace = {}
    exec(PROBLEM, namespace)
    return namespace["problem"]()


def test_every_way_of_ending_is_one_result_and_throw_raises_it():
    import jax

    from ecgi_jax import Result, SolveError, solve_batch

    Y, A, L, X = _small()
    ok = solve(Y, A, method="tikhonov-2", laplacian=L)
    assert ok.result is Result.SUCCESS and solve(Y, A, method="tikhonov-2", laplacian=L, throw=True).result == "success"
    # ADMM out of iterations: a warning (as before), and the result says so.
    with pytest.warns(RuntimeWarning, match="max_iter"):
        short = solve(Y, A, method="l1", max_iter=2)
    assert short.result is Result.NOT_CONVERGED and short.diagnostics["converged"] is False
    with pytest.warns(RuntimeWarning), pytest.raises(SolveError, match="'l1' ended not-converged") as e:
        solve(Y, A, method="l1", max_iter=2, throw=True)
    assert e.value.solution.result is Result.NOT_CONVERGED and e.value.solution.U.shape == X.shape
    with pytest.warns(RuntimeWarning), pytest.raises(SolveError, match="problem 0 of the batch: method 'l1'"):
        solve_batch(np.stack([Y, Y]), A, method="l1", max_iter=2, throw=True)
    # Training that meets a non-finite loss: the last finite state, marked diverged.
    Y2, A2, kw = _tiny_ap()
    with pytest.warns(RuntimeWarning, match="diverged"):
        bad = solve(Y2, A2, method="eand-arn", **{**kw, "learning_rate": 1e12, "key": jax.random.key(0)})
    assert bad.result is Result.DIVERGED and bool(np.all(np.isfinite(np.asarray(bad.U))))
    with pytest.raises(TypeError, match="throw must be True or False"):
        solve(Y, A, method="tikhonov-2", laplacian=L, throw="yes")


def test_result_of_non_finite_potentials():
    from ecgi_jax._solve import Result, result_of

    assert result_of(np.array([[1.0, np.nan]]), {}) is Result.NON_FINITE
    assert result_of(np.ones((2, 2)), {"converged": True, "stopped": "plateau"}) is Result.SUCCESS
    assert result_of(np.ones((2, 2)), {"stopped": "diverged", "converged": False}) is Result.DIVERGED


def test_one_heart_model_serves_every_method_as_its_own_operators_would():
    """solve(..., heart=HeartModel) gives each method the fields it takes and no others: the
    result equals the call with those operators passed by hand, for methods that take different
    subsets; a field given twice is refused."""
    from ecgi_jax import geometry, solve_batch
    from ecgi_jax.operators import HeartModel, huiskamp_laplacian, surface_gradient

    mesh = geometry.icosphere(1).scaled(20.0)
    heart = HeartModel.from_mesh(mesh, dt=0.1)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, mesh.n_vertices)).astype(np.float32)
    A -= A.mean(axis=0, keepdims=True)
    Y = (A @ rng.standard_normal((mesh.n_vertices, 8)) + 0.05 * rng.standard_normal((30, 8))).astype(np.float32)
    L, G = huiskamp_laplacian(mesh.vertices, mesh.adjacency), surface_gradient(mesh)
    by_hand = {
        "tikhonov-0": {}, "tikhonov-1": dict(gradient=G), "tikhonov-2": dict(laplacian=L),
        "spatiotemporal": dict(laplacian=L, dt=0.1), "greensite": dict(laplacian=L, gradient=G, vertices=mesh.vertices, adjacency=mesh.adjacency),
    }
    for method, kw in by_hand.items():
        a = solve(Y, A, method=method, heart=heart)
        b = solve(Y, A, method=method, **kw)
        np.testing.assert_array_equal(np.asarray(a.U), np.asarray(b.U))
        assert ("laplacian" in a.options) == ("laplacian" in method_options(method))
    batch = solve_batch(np.stack([Y, Y]), A, method="tikhonov-2", heart=heart)
    np.testing.assert_allclose(np.asarray(batch[0].U), np.asarray(solve(Y, A, method="tikhonov-2", laplacian=L).U), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="laplacian given both in heart= and as option"):
        solve(Y, A, method="tikhonov-2", heart=heart, laplacian=L)
    with pytest.raises(TypeError, match="heart must be an ecgi_jax.operators.HeartModel"):
        solve(Y, A, method="tikhonov-2", heart={"laplacian": L})


def test_every_method_has_a_typed_class_made_from_its_own_signature():
    import inspect
    import pickle

    from ecgi_jax import METHODS, Method, method_options, methods

    for name in METHODS:
        cls = methods.method_class(name)
        assert issubclass(cls, Method) and cls.method_name == name and methods.method_class(name) is cls
        params = inspect.signature(cls).parameters
        assert {k: p.default for k, p in params.items()} == method_options(name), name
        assert all(p.kind is p.KEYWORD_ONLY for p in params.values()), name
        assert cls().name == name and cls() == Method(name)
    assert methods.Tikhonov2 is methods.method_class("tikhonov-2") and methods.EANDARN.method_name == "eand-arn"
    # Typed: the annotations of the method's options, and the checks of Method when an object is made.
    assert inspect.signature(methods.Tikhonov2).parameters["lam"].annotation == "float | None"
    with pytest.raises(TypeError, match="'k' is now 'rank'"):
        methods.TSVD(k=3)
    with pytest.raises(TypeError, match="option rank must be a real number"):
        methods.TSVD(rank="3")
    with pytest.raises(TypeError):
        methods.TSVD(3)  # settings are keywords
    m = methods.TSVD(rank=3)
    assert m.rank == 3 and m.lambda_rule == "gcv" and m == Method("tsvd", rank=3) and hash(m) == hash(Method("tsvd", rank=3))
    assert repr(m) == "TSVD(rank=3)" and type(m.replace(rank=4)) is methods.TSVD and m.replace(rank=4).rank == 4
    assert type(pickle.loads(pickle.dumps(m))) is methods.TSVD and pickle.loads(pickle.dumps(m)) == m
    with pytest.raises(AttributeError, match="no setting 'bogus'"):
        m.bogus
    Y, A, L, _ = _small()
    np.testing.assert_array_equal(
        np.asarray(solve(Y, A, method=methods.Tikhonov2(lambda_rule="lcurve"), laplacian=L).U),
        np.asarray(solve(Y, A, method="tikhonov-2", lambda_rule="lcurve", laplacian=L).U),
    )


def test_a_method_registered_anew_gets_a_new_class():
    from ecgi_jax import methods, register_method
    from ecgi_jax._registry import _REGISTRY, METHODS

    def first(Y, A, *, scale: float = 1.0):
        return Solution(scale * (A.T @ Y), "scaled-adjoint", {}, {})

    def second(Y, A, *, scale: float = 2.0, shift: float = 0.0):
        return Solution(scale * (A.T @ Y) + shift, "scaled-adjoint", {}, {})

    try:
        register_method("scaled-adjoint", first, "A scaled adjoint (test).")
        old = methods.method_class("scaled-adjoint")
        assert old.__name__ == "ScaledAdjoint" and old().scale == 1.0
        register_method("scaled-adjoint", second, "A scaled adjoint (test).")
        new = methods.method_class("scaled-adjoint")
        assert new is not old and new().scale == 2.0 and new(shift=1.0).shift == 1.0
        Y, A, _, _ = _small()
        np.testing.assert_allclose(np.asarray(solve(Y, A, method=new(shift=1.0)).U), np.asarray(2.0 * (A.T @ Y) + 1.0), rtol=1e-5, atol=1e-5)
    finally:
        _REGISTRY.pop("scaled-adjoint", None)
        METHODS.pop("scaled-adjoint", None)


def test_the_heart_model_carries_the_observation_model_to_the_methods_that_take_it():
    from ecgi_jax import geometry
    from ecgi_jax._solve import with_heart
    from ecgi_jax.operators import HeartModel

    mesh = geometry.icosphere(1).scaled(20.0)
    heart = HeartModel.from_mesh(mesh, dt=0.1, observation="gain-offset")
    for method in ("ap-shooting", "eand-arn"):
        assert with_heart(method, heart, {})["observation"] == "gain-offset"
    assert "observation" not in with_heart("tikhonov-2", heart, {}) and "observation" not in with_heart("hybrid", heart, {})
    assert "observation" not in with_heart("ap-shooting", HeartModel.from_mesh(mesh, dt=0.1), {})  # None: the method's default
    with pytest.raises(ValueError, match="observation given both in heart= and as option"):
        with_heart("ap-shooting", heart, {"observation": "identity"})
    with pytest.raises(TypeError, match="observation must be None or a name"):
        HeartModel.from_mesh(mesh, dt=0.1, observation=True)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, mesh.n_vertices)).astype(np.float32)
    with pytest.raises(ValueError, match="observation"):  # the name is checked by the method that uses it
        solve(A @ np.zeros((mesh.n_vertices, 8), np.float32), A, method="ap-shooting", heart=heart._replace(observation="gain"))


def test_a_method_object_is_the_name_and_settings_checked_once():
    from ecgi_jax import Method, solve_batch

    Y, A, L, _ = _small()
    m = Method("tikhonov-2", lambda_rule="lcurve", laplacian=L)
    np.testing.assert_array_equal(np.asarray(solve(Y, A, method=m).U), np.asarray(solve(Y, A, method="tikhonov-2", lambda_rule="lcurve", laplacian=L).U))
    assert m.defaults["lambda_rule"] == "lcurve" and m.defaults["tau"] == 1.0
    assert m.replace(lambda_rule="gcv").settings["lambda_rule"] == "gcv" and m.settings["lambda_rule"] == "lcurve"
    assert Method("tsvd", rank=3) == Method("tsvd", rank=3) and hash(Method("tsvd", rank=3)) == hash(Method("tsvd", rank=3))
    assert repr(Method("tsvd", rank=3)) == "Method('tsvd', rank=3)"
    batch = solve_batch(np.stack([Y, Y]), A, method=Method("tsvd", rank=3))
    assert batch[0].diagnostics["rank"] == 3 and batch[0].method == "tsvd"
    # Refused when made, before any data is seen.
    with pytest.raises(TypeError, match="'k' is now 'rank'"):
        Method("tsvd", k=3)
    with pytest.raises(TypeError, match="option learning_rate must be a real number"):
        Method("eand-arn", learning_rate="1e-3")
    with pytest.raises(ValueError, match="unknown method 'tikhonov-3'"):
        Method("tikhonov-3")
    with pytest.raises(ValueError, match="lambda_rule set both in the Method and in the call"):
        solve(Y, A, method=m, lambda_rule="gcv")
