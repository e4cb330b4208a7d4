import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from ecgi_jax.datasets import load_pdl
from ecgi_jax.ep import APParams, Stimulus, ap_residual, ap_rhs, integrate, simulate, stable_substeps
from ecgi_jax.geometry import icosphere
from ecgi_jax.operators import SparseOperator, cotangent_laplacian, huiskamp_laplacian


def test_rhs_hand_computed():
    p = APParams()
    du, dv = ap_rhs(jnp.array(0.5), jnp.array(0.2), jnp.array(0.01), p)
    # 10·0.01 + 8·0.5·0.5·0.4 − 0.5·0.2 = 0.1 + 0.8 − 0.1
    np.testing.assert_allclose(du, 0.8, rtol=1e-6)
    # (0.002 + 0.3·0.2/0.8)·(−0.2 − 8·0.5·(0.5−1.1)) = 0.077·2.2
    np.testing.assert_allclose(dv, 0.077 * 2.2, rtol=1e-6)
    # resting state is an equilibrium
    z = jnp.zeros(3)
    assert all(float(jnp.abs(r).max()) == 0 for r in ap_rhs(z, z, z, p))


def test_v_equation_singularity_is_floored_outside_the_physical_range():
    """At u = −mu2 the v-equation divides by zero; the floor (mu2/2) keeps it finite, by hand:
    (0.002 + 0.3·0.2/0.15)·(−0.2 − 8·(−0.3)·(−0.3 − 1.1)) = 0.402·(−3.56). Simulated beats never
    reach the floored range, so the simulator is unchanged."""
    p = APParams()
    _, dv = ap_rhs(jnp.array(-0.3), jnp.array(0.2), jnp.array(0.0), p)
    np.testing.assert_allclose(dv, 0.402 * -3.56, rtol=1e-5)
    mesh = icosphere(2, radius=30.0)
    U, _ = simulate(cotangent_laplacian(mesh), jnp.zeros(mesh.n_vertices).at[0].set(1.0), n_samples=300)
    assert float(U.min()) > -0.5 * p.mu2 + 0.1


def test_params_validation():
    APParams().validate()
    for bad in [dict(D=0.0), dict(k=-1.0), dict(a=1.5), dict(mu2=float("nan"))]:
        with pytest.raises(ValueError, match="Aliev"):
            APParams(**bad).validate()


def test_per_node_diffusion_broadcasts():
    D = jnp.array([1.0, 2.0, 3.0])
    du, _ = ap_rhs(jnp.zeros((3, 4)), jnp.zeros((3, 4)), jnp.ones((3, 4)), APParams(D=D))
    np.testing.assert_allclose(du, np.repeat(D[:, None], 4, 1))


@pytest.fixture(scope="module")
def pdl(pdl_dir):
    return load_pdl(pdl_dir)


def test_pdl_full_depolarisation_repolarisation_and_substep_convergence(pdl):
    L = SparseOperator.from_scipy(pdl.laplacian)
    u0 = jnp.zeros(1094).at[jnp.array([0])].set(1.0)
    U, V = simulate(L, u0, dt=0.1, n_samples=661)
    assert U.shape == V.shape == (1094, 661)
    assert float(U.min()) >= -1e-3 and float(U.max()) <= 1.0 + 1e-3
    assert bool(jnp.all(U.max(axis=1) > 0.9))  # every node depolarises
    assert float((U[:, -1] > 0.5).mean()) < 0.05  # ... and has repolarised by t = 66
    assert 0.2 < float((U[:, 300] > 0.5).mean()) < 1.0  # a travelling wave, not a global flash
    U2, _ = simulate(L, u0, dt=0.1, n_samples=661, substeps=2 * stable_substeps(L, APParams(), 0.1))
    assert float(jnp.linalg.norm(U2 - U) / jnp.linalg.norm(U)) < 0.01


def test_heun_is_second_order_euler_first_order():
    m = icosphere(2, radius=30.0)
    L = cotangent_laplacian(m)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    ref, _ = simulate(L, u0, n_samples=80, substeps=64)

    def err(s, scheme):
        U, _ = simulate(L, u0, n_samples=80, substeps=s, scheme=scheme)
        return float(jnp.linalg.norm(U - ref))

    assert err(4, "heun") / err(8, "heun") > 3.0  # ≈ 4 for second order
    assert 1.6 < err(4, "euler") / err(8, "euler") < 2.5  # ≈ 2 for first order


def test_nd_residual_small_on_simulated_trajectory_and_shrinks_with_dt(x64, pdl):
    """The numerically differentiated residual vanishes on an AP trajectory up to stencil error."""
    L = SparseOperator.from_scipy(pdl.laplacian, dtype=jnp.float64)
    u0 = jnp.zeros(1094, jnp.float64).at[0].set(1.0)
    res = {}
    for dt, n in [(0.1, 201), (0.05, 401)]:
        U, V = simulate(L, u0, dt=dt, n_samples=n, substeps=int(round(dt / 0.001)))
        ru, rv = ap_residual(U, V, L, APParams(), dt, stencil_order=4)
        # compare on the common time window [1, 19]
        sl = slice(int(round(1 / dt)), int(round(19 / dt)) + 1)
        res[dt] = float(jnp.sqrt(jnp.mean(ru[:, sl] ** 2)))
        du = (U[:, 2:] - U[:, :-2]) / (2 * dt)
        assert res[dt] < 0.01 * float(jnp.sqrt(jnp.mean(du**2)))
    # fourth-order stencil: halving dt divides the residual by ~16 (allow 8)
    assert res[0.1] / res[0.05] > 8.0, res


def test_residual_detects_wrong_physics(pdl):
    L = SparseOperator.from_scipy(pdl.laplacian)
    u0 = jnp.zeros(1094).at[0].set(1.0)
    U, V = simulate(L, u0, n_samples=200)
    ru_ok, _ = ap_residual(U, V, L, APParams(), 0.1)
    ru_bad, _ = ap_residual(U, V, L, APParams(D=20.0), 0.1)
    assert float(jnp.abs(ru_bad).mean()) > 10 * float(jnp.abs(ru_ok).mean())


def test_stimulus_paces_repeatedly():
    m = icosphere(2, radius=20.0)
    L = cotangent_laplacian(m)
    mask = jnp.zeros(m.n_vertices).at[0].set(1.0)
    stim = Stimulus(mask=mask, onsets=jnp.array([0.0, 40.0]), duration=1.0, amplitude=2.0)
    U, _ = simulate(L, jnp.zeros(m.n_vertices), n_samples=800, stimulus=stim)
    u0t = np.asarray(U[0])
    upstrokes = np.flatnonzero((u0t[1:] > 0.5) & (u0t[:-1] <= 0.5))
    assert len(upstrokes) == 2 and abs(upstrokes[1] - 400) < 20, upstrokes


def test_simulate_jit_vmap_over_pacing_sites():
    m = icosphere(1, radius=10.0)
    L = cotangent_laplacian(m)
    u0s = jnp.eye(m.n_vertices)[:3]
    f = lambda u0: simulate(L, u0, n_samples=20)[0]
    batched = jnp.stack([f(u) for u in u0s])
    vm = jax.vmap(lambda u0: integrate(L, APParams(), u0, jnp.zeros_like(u0), None, jnp.float32(0.1),
                                       n_samples=20, substeps=stable_substeps(L, APParams(), 0.1), scheme="heun")[0])(u0s)
    np.testing.assert_allclose(vm, batched, rtol=1e-5, atol=1e-6)


def test_simulate_input_errors():
    m = icosphere(1)
    L = cotangent_laplacian(m)
    with pytest.raises(ValueError, match="laplacian has shape"):
        simulate(L, jnp.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        simulate(L, jnp.full(m.n_vertices, jnp.nan))
    with pytest.raises(ValueError, match="dt must be positive"):
        simulate(L, jnp.zeros(m.n_vertices), dt=0.0)
    with pytest.raises(ValueError, match="scheme"):
        simulate(L, jnp.zeros(m.n_vertices), scheme="rk9")
    with pytest.warns(UserWarning, match="stability"), pytest.warns(UserWarning, match="reaction terms"):
        simulate(L, jnp.zeros(m.n_vertices), dt=50.0, n_samples=3, substeps=1)


def test_mesh_in_metres_is_refused_not_simulated_for_hours():
    """A units slip (heart mesh in metres, edges ~0.006) would ask for ~10⁵ sub-steps per sample."""
    m = icosphere(2).scaled(20.0 / 1000.0)  # the 20 mm sphere, in metres
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    for call in (lambda: simulate(L, u0, n_samples=3), lambda: stable_substeps(L, APParams(), 0.1),
                 lambda: simulate(L, u0, n_samples=3, substeps=4)):
        with pytest.warns(UserWarning, match="spacing of about 0.006 mm"):
            with pytest.raises(ValueError, match=r"(?s)sub-steps per output sample.*spacing of about 0.006 mm.*millimetres.*mesh.scaled\(1000\)"):
                call()
    # in millimetres it runs, with a handful of sub-steps
    L_mm = huiskamp_laplacian(m.scaled(1000.0).vertices, m.adjacency)
    assert stable_substeps(L_mm, APParams(), 0.1) == 5


def test_unusual_mesh_spacing_warns_and_huge_requests_are_refused():
    m = icosphere(3)  # unit sphere: 0.15 "mm" edges, plausible only as a units slip
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    with pytest.warns(UserWarning, match=r"spacing of about 0.148 mm.*mesh.scaled\(10\)"):
        U, _ = simulate(L, jnp.zeros(m.n_vertices), n_samples=2)
    assert U.shape == (m.n_vertices, 2)
    L_mm = huiskamp_laplacian(m.scaled(20.0).vertices, m.adjacency)
    with pytest.raises(ValueError, match="substeps=20000 sub-steps per output sample.*about 2.96 mm, plausible.*fewer substeps"):
        simulate(L_mm, jnp.zeros(m.n_vertices), n_samples=2, substeps=20_000)
    with pytest.raises(ValueError, match="would need 50000 sub-steps.*shorter sample spacing dt"):
        stable_substeps(L_mm, APParams(), 1000.0)


def test_pacing_search_and_shooting_refuse_a_mesh_in_metres():
    """The inverse entry points compute their sub-steps with the same check as simulate."""
    from ecgi_jax.solvers.shooting import pacing_search, shooting_fit

    m = icosphere(2).scaled(20.0 / 1000.0)
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    Y, A = np.ones((4, 6), np.float32), np.ones((4, m.n_vertices), np.float32)
    for fit in (pacing_search, shooting_fit):
        with pytest.warns(UserWarning, match="spacing of about 0.006 mm"):
            with pytest.raises(ValueError, match=r"(?s)spacing of about 0.006 mm.*mesh.scaled\(1000\)"):
                fit(Y, A, L, vertices=m.vertices, adjacency=m.adjacency)


def test_too_long_substep_warns_about_the_reaction_and_divergence_raises():
    """On a coarse mesh diffusion is stable at h = 1, but the stiff reaction terms blow up: that
    used to return Inf/NaN without a word."""
    m = icosphere(1, 30.0)  # ~17 mm spacing: diffusion limit ~6 AP units
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    with pytest.warns(UserWarning, match="reaction terms") as record:
        with pytest.raises(ValueError, match=r"diverged.*sub-step h=1 .*use substeps >= 50"):
            simulate(L, u0, dt=1.0, n_samples=100, substeps=1)
    assert not any("beyond the diffusion stability" in str(w.message) for w in record)
    # a moderately long sub-step is warned about but runs
    with pytest.warns(UserWarning, match="reaction terms"):
        U, V = simulate(L, u0, dt=0.5, n_samples=20, substeps=1)
    assert bool(jnp.all(jnp.isfinite(U)))
    U, _ = simulate(L, u0, dt=1.0, n_samples=100)  # the default rule: finite
    assert bool(jnp.all(jnp.isfinite(U)))


def test_graph_laplacian_sign_convention_is_refused():
    """scipy.sparse.csgraph.laplacian / networkx give D − W (positive diagonal): with it the model
    simulated anti-diffusion."""
    import scipy.sparse.csgraph as csgraph

    m = icosphere(2, 20.0)
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    flipped = SparseOperator(L.rows, L.cols, -L.weights, L.shape)
    for bad in (flipped, -L.todense(), SparseOperator.from_scipy(csgraph.laplacian((L.to_scipy() != 0).astype(float)))):
        with pytest.raises(ValueError, match=r"(?s)D - W.*scipy.sparse.csgraph.laplacian and networkx.*negate it"):
            simulate(bad, u0, n_samples=3)
    with pytest.raises(ValueError, match="positive diagonal"):
        stable_substeps(flipped, APParams(), 0.1)
    shifted = np.asarray(L.todense()) + 2 * np.eye(m.n_vertices) * float(-L.todense()[0, 0])
    with pytest.raises(ValueError, match="positive diagonal entries.*non-positive diagonal"):
        simulate(shifted, u0, n_samples=3)


def test_simulate_accepts_a_scipy_sparse_laplacian():
    """What the P-DL .mat gives: it failed with "ufunc 'isfinite' not supported"."""
    m = icosphere(2, 20.0)
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    ref, _ = simulate(L, u0, n_samples=30)
    for mat in (L.to_scipy(), L.to_scipy().tocoo(), sp.csc_array(L.to_scipy())):
        U, _ = simulate(mat, u0, n_samples=30)
        np.testing.assert_allclose(U, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="laplacian has shape"):
        simulate(L.to_scipy()[:-1], u0)


def test_simulate_traces_over_D_with_given_substeps():
    """jax.vmap and jax.grad over APParams(D=...) (the docstring's promise): vmap equals the loop,
    the gradient equals a central difference; without substeps= a traced D gets a clear error."""
    m = icosphere(2, 30.0)
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[0].set(1.0)
    sub = stable_substeps(L, APParams(D=20.0), 0.1)

    def run(D):
        return simulate(L, u0, ap_params=APParams(D=D), n_samples=60, substeps=sub)[0]

    Ds = jnp.array([5.0, 10.0, 15.0])
    np.testing.assert_allclose(jax.vmap(run)(Ds), jnp.stack([run(float(D)) for D in Ds]), atol=1e-6)
    total = lambda D: jnp.sum(run(D)[:, -1])  # noqa: E731
    fd = (total(10.01) - total(9.99)) / 0.02
    np.testing.assert_allclose(jax.grad(total)(10.0), fd, rtol=2e-3)
    with pytest.raises(ValueError, match="traced over ap_params.D .*pass substeps="):
        jax.vmap(lambda D: simulate(L, u0, ap_params=APParams(D=D), n_samples=10)[0])(Ds)


def test_integrate_is_simulate_without_its_checks_and_traces_over_every_parameter(x64):
    """ep.integrate (what the pacing search and shooting call) returns exactly simulate's
    trajectory, and a jvp over all of APParams at once matches a central difference."""
    m = icosphere(1, 20.0)
    L = huiskamp_laplacian(m.vertices, m.adjacency)
    u0 = jnp.zeros(m.n_vertices).at[3].set(1.0)
    sub = stable_substeps(L, APParams(), 0.1)
    U_ref, V_ref = simulate(L, u0, n_samples=30, substeps=sub)
    ap = jax.tree.map(lambda x: jnp.asarray(x, u0.dtype), APParams())
    U, V = integrate(L.astype(u0.dtype), ap, u0, jnp.zeros_like(u0), None, jnp.asarray(0.1, u0.dtype), n_samples=30, substeps=sub)
    np.testing.assert_array_equal(U, U_ref)
    np.testing.assert_array_equal(V, V_ref)

    direction = APParams(a=0.01, k=0.5, e0=0.0002, mu1=0.03, mu2=0.03, D=1.0)
    f = lambda p: jnp.sum(integrate(L, p, u0, jnp.zeros_like(u0), None, 0.1, n_samples=30, substeps=sub)[0] ** 2)  # noqa: E731
    _, tangent = jax.jvp(f, (ap,), (jax.tree.map(jnp.asarray, direction),))
    eps = 1e-4
    shifted = lambda s: jax.tree.map(lambda b, d: b + s * eps * d, ap, direction)  # noqa: E731
    fd = (f(shifted(1.0)) - f(shifted(-1.0))) / (2 * eps)
    np.testing.assert_allclose(tangent, fd, rtol=1e-5)
