"""The waveform-template inverse and EAND-ARN's template start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax import metrics, noncrime, solve
from ecgi_jax.solvers.activation import fit_template, initial_waveform, template_potentials


def _grid(n_t=120, dt=0.1):
    t = jnp.arange(n_t, dtype=jnp.float32) * dt
    s0, h = -n_t * dt, dt
    K = int(np.ceil((2 * n_t * dt + 5.0) / h)) + 1
    return t, s0, h, K


def _waveform(lags):
    # A made-up action potential: a fast upstroke at lag 0, a plateau, a slow repolarisation.
    return 0.5 * (1 + np.tanh(lags / 0.3)) * (1 - 0.8 / (1 + np.exp(-(lags - 6.0) / 1.0)))


def test_template_potentials_interpolate_linearly():
    t, s0, h, K = _grid()
    lags = s0 + h * np.arange(K)
    tau = jnp.array([0.0, 1.234, 5.5])
    U = template_potentials(tau, jnp.asarray(lags), t, s0, h)  # f(s) = s
    np.testing.assert_allclose(U, t[None, :] - tau[:, None], atol=1e-4)
    # Clamped beyond the knots.
    U = template_potentials(jnp.array([-1e3]), jnp.asarray(lags), t, s0, h)
    np.testing.assert_allclose(U, lags[-1], atol=1e-4)


def test_initial_waveform_recovers_the_shape():
    t, s0, h, K = _grid()
    lags = s0 + h * np.arange(K)
    f = _waveform(lags)
    tau = jnp.asarray(np.linspace(0.5, 6.0, 40))
    U = template_potentials(tau, jnp.asarray(f, jnp.float32), t, s0, h)
    f0 = initial_waveform(U, tau, t, s0, h, K)
    seen = (lags > -6.0) & (lags < float(t[-1]) - 0.5)
    np.testing.assert_allclose(f0[seen], f[seen], atol=0.08)  # rounding lags to knots: |f'|·h/2


def test_fit_template_recovers_times_and_waveform():
    """Y = A·f(t − τ) with a well-posed A: from times off by up to 0.4 and a blurred waveform, the
    fit returns the true times and waveform (a failing optimiser or gradient would not)."""
    rng = np.random.default_rng(0)
    n, m = 30, 60
    t, s0, h, K = _grid()
    lags = s0 + h * np.arange(K)
    tau = jnp.asarray(rng.uniform(1.0, 5.0, n), jnp.float32)
    f = jnp.asarray(_waveform(lags), jnp.float32)
    U = template_potentials(tau, f, t, s0, h)
    A = jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n), jnp.float32)
    Y = A @ U
    tau0 = tau + jnp.asarray(rng.uniform(-0.4, 0.4, n), jnp.float32)
    f0 = jnp.asarray(np.convolve(np.asarray(f), np.ones(9) / 9, mode="same"), jnp.float32)
    f0 = f0.at[:5].set(f[:5]).at[-5:].set(f[-5:])
    L = jnp.zeros((1, n))
    fit = fit_template(Y, A, L, t, tau0, f0, s0, h, 0.0, 1e-6, steps=400)
    assert float(fit.misfit) < 1e-4
    np.testing.assert_allclose(fit.tau, tau, atol=0.05)
    assert float(jnp.linalg.norm(fit.U - U) / jnp.linalg.norm(U)) < 0.02
    assert fit.losses[-1] < fit.losses[0]


@pytest.fixture(scope="module")
def two_site_case():
    """A Mitchell–Schaeffer beat from the two farthest-apart nodes at once, on a finer mesh."""
    from ecgi_jax.solvers.shooting import farthest_point_sample

    geo = noncrime.noncrime_geometry(n_heart=200, n_torso=300, n_electrodes=120)
    sites = tuple(farthest_point_sample(geo.heart.vertices, 2).tolist())
    return noncrime.make_noncrime_case(jax.random.key(7), geo, sites, sigma=0.1, n_samples=300)


def test_auto_start_takes_the_template_off_the_crime(two_site_case):
    """Mitchell–Schaeffer truth on a finer mesh, started at two sites: the AP beats cannot fit its
    waveform, the template can; 'auto' takes it by the Akaike criterion, re-shaped as fronts from
    its two early sites (which lie at the true ones), and it beats spatiotemporal regularization
    (the best classical method of the non-crime study)."""
    from ecgi_jax.solvers.neural import start_solution
    from ecgi_jax.solvers.neural._starts import FRONT_ROUNDS

    c = two_site_case
    U0, V0, info = start_solution("auto", c.Y, c.A, c.laplacian, c.dt, vertices=c.vertices, adjacency=c.adjacency)
    assert info["start"] == "template" and info["template_from"] in ("pacing", "shooting")
    misfits = info["start_misfits"]
    assert misfits["template"] < min(misfits["pacing"], misfits["shooting"])
    assert misfits["template-fronts"] < misfits["template"] and info["start_misfit"] == misfits["template-fronts"]
    assert 1 <= info["template_front_rounds"] <= FRONT_ROUNDS
    assert len(info["template_sites"]) == 2
    indptr, indices = c.adjacency
    edge = np.linalg.norm(c.vertices[indices] - c.vertices[np.repeat(np.arange(len(c.vertices)), np.diff(indptr))], axis=1)
    found = c.vertices[info["template_sites"]]
    for true in c.site_xyz:  # within 1.5 edges of each true site
        assert np.linalg.norm(found - true, axis=1).min() < 1.5 * edge.mean(), (info["template_sites"], c.site)
    assert U0.shape == V0.shape == c.U.shape and bool(jnp.all(jnp.isfinite(V0)))
    st = solve(c.Y, c.A, method="spatiotemporal", laplacian=c.laplacian, dt=c.dt)
    re_t, re_st = (float(metrics.relative_error(X, c.U)) for X in (U0, st.U))
    at_t, at_st = (float(metrics.activation_time_error(X, c.U, c.dt).mae) for X in (U0, st.U))
    assert re_t < 0.85 * re_st, (re_t, re_st)
    assert at_t < 0.85 * at_st, (at_t, at_st)


def test_fit_template_recovers_a_stretch():
    """Waveforms stretched per node (APD varying over the heart): with ``stretch=True`` the fit
    finds the stretches and explains the data; without, it cannot."""
    rng = np.random.default_rng(1)
    n, m = 30, 60
    t, s0, h, K = _grid(n_t=150)
    lags = s0 + h * np.arange(K)
    tau = jnp.asarray(rng.uniform(1.0, 3.0, n), jnp.float32)
    log_stretch = jnp.asarray(rng.uniform(-0.15, 0.15, n), jnp.float32)
    f = jnp.asarray(_waveform(lags), jnp.float32)
    U = template_potentials(tau, f, t, s0, h, log_stretch)
    A = jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n), jnp.float32)
    Y = A @ U
    L = jnp.zeros((1, n))
    plain = fit_template(Y, A, L, t, tau, f, s0, h, 0.0, 1e-6, steps=300)
    fit = fit_template(Y, A, L, t, tau, f, s0, h, 0.0, 1e-6, steps=600, stretch=True)
    assert plain.log_stretch is None and float(plain.misfit) > 10 * float(fit.misfit)
    assert float(fit.misfit) < 1e-4
    np.testing.assert_allclose(fit.log_stretch, log_stretch, atol=0.02)


def test_smooth_modes_are_the_smoothest_orthonormal_fields():
    """On a ring the smoothest modes are the constant, then cos/sin of the lowest frequency."""
    from ecgi_jax.solvers.activation import smooth_modes

    n = 24
    L = jnp.asarray(2 * np.eye(n) - np.roll(np.eye(n), 1, 1) - np.roll(np.eye(n), -1, 1), jnp.float32)
    B = smooth_modes(L, 3)
    assert B.shape == (n, 3)
    np.testing.assert_allclose(B.T @ B, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(jnp.abs(B[:, 0]), np.full(n, 1 / np.sqrt(n)), atol=2e-4)  # float32 eigh
    x = 2 * np.pi * np.arange(n) / n
    low = np.stack([np.cos(x), np.sin(x)], 1) / np.sqrt(n / 2)
    # The 2nd and 3rd modes span the lowest frequency: projecting onto them loses nothing.
    np.testing.assert_allclose(np.linalg.norm(B[:, 1:].T @ low, axis=0), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="k must be an integer"):
        smooth_modes(L, n + 1)


def test_fit_template_recovers_a_stretch_in_few_modes():
    """A stretch that is a combination of 4 smooth modes: the fit in those 4 coefficients finds it
    (and the same stretch per node); ``stretch_modes`` without ``stretch`` is refused."""
    from ecgi_jax.solvers.activation import smooth_modes

    rng = np.random.default_rng(2)
    n, m = 30, 60
    t, s0, h, K = _grid(n_t=150)
    lags = s0 + h * np.arange(K)
    ring = 2 * np.eye(n) - np.roll(np.eye(n), 1, 1) - np.roll(np.eye(n), -1, 1)
    B = smooth_modes(jnp.asarray(ring, jnp.float32), 4)
    log_stretch = B @ jnp.asarray([0.3, 0.4, -0.3, 0.2], jnp.float32)
    tau = jnp.asarray(rng.uniform(1.0, 3.0, n), jnp.float32)
    f = jnp.asarray(_waveform(lags), jnp.float32)
    A = jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n), jnp.float32)
    Y = A @ template_potentials(tau, f, t, s0, h, log_stretch)
    L = jnp.zeros((1, n))
    fit = fit_template(Y, A, L, t, tau, f, s0, h, 0.0, 1e-6, steps=300, stretch=True, stretch_modes=B)
    assert float(fit.misfit) < 1e-4
    np.testing.assert_allclose(fit.log_stretch, log_stretch, atol=0.01)
    with pytest.raises(ValueError, match="stretch=True"):
        fit_template(Y, A, L, t, tau, f, s0, h, 0.0, 1e-6, steps=3, stretch_modes=B)
    with pytest.raises(ValueError, match=r"\(n, k\) matrix"):
        fit_template(Y, A, L, t, tau, f, s0, h, 0.0, 1e-6, steps=3, stretch=True, stretch_modes=B[:5])


def test_prior_whitener_whitens_the_smoothness_penalty():
    from ecgi_jax.solvers.activation import prior_whitener

    n = 12
    L = jnp.asarray(2 * np.eye(n) - np.roll(np.eye(n), 1, 1) - np.roll(np.eye(n), -1, 1), jnp.float32)
    gram = L.T @ L
    P = prior_whitener(L, 1e-3)
    M = gram + 1e-3 * jnp.mean(jnp.diag(gram)) * jnp.eye(n)
    np.testing.assert_allclose(P, P.T, atol=1e-6)
    np.testing.assert_allclose(P @ M @ P, np.eye(n), atol=1e-3)
    # An all-zero L (no smoothness penalty) gives a finite multiple of the identity.
    np.testing.assert_allclose(prior_whitener(jnp.zeros((1, n)), 0.25), 2.0 * np.eye(n), atol=1e-5)


def test_whitened_template_fit_converges_where_plain_lbfgs_crawls():
    """Few smoothing leads (16) over many nodes (80, a ring): the misfit leaves the smooth modes of
    the times nearly free, only the weak smoothness penalty holds them. Whitened by that penalty,
    100 L-BFGS iterations recover the times to 0.05; in the times themselves they are still
    > 0.1 off (and stay so for thousands of iterations)."""
    n, m = 80, 16
    t, s0, h, K = _grid(n_t=150)
    lags = s0 + h * np.arange(K)
    x = np.arange(n) / n
    tau = jnp.asarray(3.0 + 2.0 * np.sin(2 * np.pi * x) + 0.5 * np.cos(6 * np.pi * x), jnp.float32)
    f = jnp.asarray(_waveform(lags), jnp.float32)
    U = template_potentials(tau, f, t, s0, h)
    d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    d = np.minimum(d, n - d)
    A = jnp.asarray(np.exp(-(d[np.arange(m) * (n // m)] / 4.0) ** 2), jnp.float32)
    L = jnp.asarray(2 * np.eye(n) - np.roll(np.eye(n), 1, 1) - np.roll(np.eye(n), -1, 1), jnp.float32)
    tau0 = jnp.full(n, 3.0, jnp.float32)
    args = (A @ U, A, L, t, tau0, f, s0, h, 1e-4, 1e-6)
    plain = fit_template(*args, steps=100)
    white = fit_template(*args, steps=100, whiten=1e-3)
    assert float(jnp.max(jnp.abs(white.tau - tau))) < 0.05
    assert float(jnp.max(jnp.abs(plain.tau - tau))) > 0.1
    assert float(white.losses[-1]) < float(plain.losses[-1])


def test_eikonal_projection_recovers_fronts_from_two_sites():
    """A map of fronts from two sites (their own times, one slowness, distances along the edges)
    is its own projection: sites, times and slowness come back exactly; noise on the map moves
    them little; one site gives one site; bad maps are refused."""
    from ecgi_jax.geometry import icosphere
    from ecgi_jax.operators import geodesic_distances
    from ecgi_jax.solvers.activation import eikonal_projection

    mesh = icosphere(3).scaled(30.0)
    a = 5
    b = int(np.argmax(np.linalg.norm(mesh.vertices - mesh.vertices[a], axis=1)))
    d = geodesic_distances(mesh.vertices, mesh.adjacency, [a, b])
    tau = np.minimum(1.0 + 0.2 * d[0], 2.5 + 0.2 * d[1])
    fronts = eikonal_projection(tau, mesh.vertices, mesh.adjacency)
    assert fronts.sites.tolist() == [a, b]
    np.testing.assert_allclose(fronts.site_times, [1.0, 2.5], atol=1e-12)
    np.testing.assert_allclose(fronts.slowness, 0.2, rtol=1e-9)
    np.testing.assert_allclose(fronts.times, tau, atol=1e-9)
    noisy = tau + 0.05 * np.random.default_rng(0).normal(size=tau.shape)
    fronts = eikonal_projection(noisy, mesh.vertices, mesh.adjacency)
    assert abs(fronts.slowness - 0.2) < 0.01 and fronts.rms < 0.1
    for site in (a, b):  # each true site has a found one within two edges
        assert np.linalg.norm(mesh.vertices[fronts.sites] - mesh.vertices[site], axis=1).min() < 2.5 * mesh.mean_edge_length
    assert eikonal_projection(1.0 + 0.2 * d[0], mesh.vertices, mesh.adjacency).sites.tolist() == [a]
    with pytest.raises(ValueError, match="NaN"):
        eikonal_projection(np.full_like(tau, np.nan), mesh.vertices, mesh.adjacency)
    with pytest.raises(ValueError, match="vertices"):
        eikonal_projection(tau[:-1], mesh.vertices, mesh.adjacency)
    with pytest.raises(ValueError, match="rings"):
        eikonal_projection(tau, mesh.vertices, mesh.adjacency, rings=0)


def test_template_start_from_given_times_and_waveform():
    """``times`` / ``waveform`` replace what the start beat would give: from the true times and
    waveform the fit stays at the truth (a flat start beat would say nothing); a waveform on other knots is refused."""
    from ecgi_jax.solvers.neural import template_start

    rng = np.random.default_rng(1)
    n, m, dt = 20, 50, 0.1
    t, s0, h, K = _grid()
    f = jnp.asarray(_waveform(s0 + h * np.arange(K)), jnp.float32)
    tau = jnp.asarray(rng.uniform(1.0, 5.0, n), jnp.float32)
    U = template_potentials(tau, f, t, s0, h)
    A = jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n), jnp.float32)
    flat = jnp.zeros_like(U)
    fit = template_start(A @ U, A, jnp.zeros((1, n)), dt, flat, times=tau, waveform=f)
    d = np.asarray(fit.tau - tau)  # (a common shift of the times trades against the waveform's)
    assert float(fit.misfit) < 1e-6 and np.abs(d - d.mean()).max() < 1e-3 and abs(d.mean()) < 0.01
    with pytest.raises(ValueError, match="knots"):
        template_start(A @ U, A, jnp.zeros((1, n)), dt, flat, times=tau, waveform=f[:-1])
