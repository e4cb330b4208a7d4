"""Ionic models other than AP and the non-inverse-crime case generator."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from ecgi_jax import ep, geometry, metrics, noncrime


# ------------------------------------------------------------------ ionic models, calibration


@pytest.fixture(scope="module")
def cables():
    return {name: ep.cable_properties(cls()) for name, cls in ep.IONIC_MODELS.items()}


def test_reference_cable(cables):
    ap = cables["aliev-panfilov"]
    assert ap["cv"] == pytest.approx(5.1, rel=0.03)
    assert ap["apd50"] == pytest.approx(25.0, rel=0.03)
    assert ap["upstroke"] == pytest.approx(1.4, abs=0.15)


@pytest.mark.parametrize(
    "name, cv, apd50, upstroke, peak",
    [("mitchell-schaeffer", 5.1, 25.0, 0.4, 0.94), ("fenton-karma", 4.9, 25.0, 0.2, 1.19)],
)
def test_calibrated_models_match_docstring(cables, name, cv, apd50, upstroke, peak):
    got, ref = cables[name], cables["aliev-panfilov"]
    # The values the module docstring states, and the issue's ±30 % of the reference model.
    assert got["cv"] == pytest.approx(cv, rel=0.03)
    assert got["apd50"] == pytest.approx(apd50, rel=0.03)
    assert got["upstroke"] == pytest.approx(upstroke, abs=0.15)
    assert got["peak"] == pytest.approx(peak, abs=0.02)
    assert abs(got["cv"] / ref["cv"] - 1) < 0.3 and abs(got["apd50"] / ref["apd50"] - 1) < 0.3
    # ... but not the reference model's waveform.
    assert abs(got["upstroke"] - ref["upstroke"]) > 0.5


def test_ap_through_ionic_interface_equals_simulator():
    mesh = geometry.icosphere(2, radius=40.0)
    from ecgi_jax.operators import huiskamp_laplacian

    lap = huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    u0 = jnp.zeros(mesh.n_vertices).at[0].set(1.0)
    U_ref, _ = ep.simulate(lap, u0, dt=0.1, n_samples=60)
    U = ep.simulate_ionic(ep.AlievPanfilov(), lap, np.arange(mesh.n_vertices) == 0, dt=0.1, n_samples=60)
    np.testing.assert_allclose(U, U_ref, atol=2e-5)


def test_ionic_cv_scales_as_sqrt_D():
    ms = ep.MitchellSchaeffer()
    slow = ep.cable_properties(dataclasses.replace(ms, D=ms.D / 4), n_samples=1200)
    assert slow["cv"] == pytest.approx(ep.cable_properties(ms)["cv"] / 2, rel=0.08)


def test_simulate_ionic_refuses_bad_input():
    lap = -np.eye(3) + np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="positive diagonal"):
        ep.simulate_ionic(ep.MitchellSchaeffer(), -lap, [0])
    with pytest.raises(ValueError, match="no node"):
        ep.simulate_ionic(ep.MitchellSchaeffer(), lap, np.zeros(3, bool))
    with pytest.raises(ValueError, match="mask has shape"):
        ep.simulate_ionic(ep.MitchellSchaeffer(), lap, np.zeros(2, bool))


# ------------------------------------------------------------------ nested phantoms


@pytest.mark.parametrize("shape", sorted(geometry.SHAPES))
def test_refined_phantom_is_nested(shape):
    coarse = geometry.default_heart_torso(200, 300, 100, shape=shape)
    fine = geometry.default_heart_torso(200, 300, 100, shape=shape, refine=1, torso_refine=1)
    np.testing.assert_array_equal(fine.heart.vertices[:200], coarse.heart.vertices)
    np.testing.assert_array_equal(fine.torso.vertices[:300], coarse.torso.vertices)
    np.testing.assert_array_equal(fine.electrodes, coarse.electrodes)
    assert fine.heart.n_vertices == 4 * 200 - 6 and fine.heart.is_closed and fine.heart.is_outward
    assert fine.heart.mean_edge_length == pytest.approx(coarse.heart.mean_edge_length / 2, rel=0.1)


def test_shapes_differ_and_bad_shape():
    a = geometry.default_heart_torso(200, 300, 100).heart.vertices
    b = geometry.default_heart_torso(200, 300, 100, shape="dilated").heart.vertices
    assert np.abs(a - b).max() > 5.0
    with pytest.raises(ValueError, match="shape must be one of"):
        geometry.default_heart_torso(shape="round")
    with pytest.raises(ValueError, match="refine"):
        geometry.default_heart_torso(refine=-1)


# ------------------------------------------------------------------ non-crime cases


@pytest.fixture(scope="module")
def small_geo():
    return noncrime.noncrime_geometry(n_heart=200, n_torso=300, n_electrodes=120)


def test_truth_is_not_the_inverse_model(small_geo):
    g = small_geo
    assert g.heart_fine.n_vertices > 3 * g.n_nodes
    # The truth's forward matrix, restricted to the coarse nodes, is not the inverse's matrix.
    assert not np.allclose(g.A_fine[:, : g.n_nodes], g.A)
    # ... yet both BEMs see the same physics: a uniform heart potential maps to itself.
    np.testing.assert_allclose(g.A.sum(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(g.A_fine.sum(axis=1), 1.0, atol=0.02)


def test_case_is_deterministic_and_smooth(small_geo):
    g = small_geo
    c1 = noncrime.make_noncrime_case(jax.random.key(3), g, 17, sigma=0.1, n_samples=400)
    c2 = noncrime.make_noncrime_case(jax.random.key(3), g, 17, sigma=0.1, n_samples=400)
    c3 = noncrime.make_noncrime_case(jax.random.key(4), g, 17, sigma=0.1, n_samples=400)
    np.testing.assert_array_equal(c1.Y, c2.Y)
    assert not np.allclose(c1.Y, c3.Y)
    np.testing.assert_array_equal(c1.U, c3.U)
    assert c1.U.shape == (g.n_nodes, 400) and c1.A.shape == (120, g.n_nodes)
    assert float(c1.U.min()) > -0.01 and float(c1.U.max()) <= 1.0 + 1e-6
    # The fine truth restricted to the coarse nodes is a smooth wave: activation times differ
    # between neighbours by about an edge over the conduction velocity, never by jumps.
    tau, reached = (np.asarray(x) for x in metrics.activation_times(c1.U, c1.dt, normalize=False, return_mask=True))
    assert reached.all()
    e = g.heart.edges
    lengths = np.linalg.norm(g.heart.vertices[e[:, 0]] - g.heart.vertices[e[:, 1]], axis=1)
    speed = lengths / np.maximum(np.abs(tau[e[:, 0]] - tau[e[:, 1]]), 1e-9)
    assert np.median(speed) == pytest.approx(5.1, rel=0.35)
    assert np.abs(tau[e[:, 0]] - tau[e[:, 1]]).max() < 3 * lengths.max() / 5.1
    # The site activates first.
    assert tau[17] <= np.quantile(tau, 0.02)


def test_noise_levels(small_geo):
    g = small_geo
    c = noncrime.make_noncrime_case(jax.random.key(0), g, 5, sigma=0.2, n_samples=300)
    noise = np.asarray(c.Y - c.Y_clean)
    assert noise.std() == pytest.approx(0.2 * float(np.std(c.Y_clean)), rel=0.03)
    c = noncrime.make_noncrime_case(jax.random.key(0), g, 5, sigma=None, snr_db=20.0, n_samples=300)
    noise = np.asarray(c.Y - c.Y_clean)
    snr = 10 * np.log10(np.mean(np.asarray(c.Y_clean) ** 2) / noise.var())
    assert snr == pytest.approx(20.0, abs=0.3)


def test_correlated_noise_and_bad_leads(small_geo):
    g = small_geo
    c = noncrime.make_noncrime_case(jax.random.key(1), g, 5, sigma=0.1, noise_correlation_mm=60.0, bad_leads=4, n_samples=300)
    noise = np.asarray(c.Y - c.Y_clean)
    good = np.setdiff1d(np.arange(noise.shape[0]), c.bad_leads)
    assert len(c.bad_leads) == 4
    assert noise[c.bad_leads].std() > 5 * noise[good].std()
    pos = g.torso.vertices[g.electrodes]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    R = np.corrcoef(noise[good])
    dg = d[np.ix_(good, good)]
    near = R[(dg > 0) & (dg < 30)].mean()
    far = R[dg > 250].mean()
    assert near > 0.7 and abs(far) < 0.15
    # White noise: neighbours uncorrelated.
    w = noncrime.make_noncrime_case(jax.random.key(1), g, 5, sigma=0.1, n_samples=300)
    assert abs(np.corrcoef(np.asarray(w.Y - w.Y_clean))[(d > 0) & (d < 30)].mean()) < 0.1


def test_geometry_errors(small_geo):
    g = small_geo
    A0, info0 = noncrime.truth_transfer(g)
    assert A0 is g.A_fine and info0["rotation_axis"] is None
    A1, info1 = noncrime.truth_transfer(g, jax.random.key(0), shift_mm=8.0, rotation_deg=8.0)
    assert np.linalg.norm(info1["shift"]) == pytest.approx(8.0)
    rel = np.linalg.norm(A1 - A0) / np.linalg.norm(A0)
    assert 0.02 < rel < 0.8
    # Electrode jitter interpolates the fine torso's rows; a tiny jitter barely moves them.
    A2, _ = noncrime.truth_transfer(g, jax.random.key(0), electrode_jitter_mm=1e-3)
    np.testing.assert_allclose(A2, A0, atol=1e-3 * np.abs(A0).max())
    A3, _ = noncrime.truth_transfer(g, jax.random.key(0), electrode_jitter_mm=10.0)
    assert np.linalg.norm(A3 - A0) > 1e-3 * np.linalg.norm(A0)
    case = noncrime.make_noncrime_case(jax.random.key(0), g, 5, A_truth=A1, truth_info=info1, n_samples=400)
    assert case.info["rotation_deg"] == 8.0


def test_noncrime_bad_input(small_geo):
    g = small_geo
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="ionic must be one of"):
        noncrime.make_noncrime_case(key, g, 5, ionic="hodgkin")
    with pytest.raises(ValueError, match="exactly one noise level"):
        noncrime.make_noncrime_case(key, g, 5, sigma=0.1, snr_db=20)
    with pytest.raises(ValueError, match="site must be"):
        noncrime.make_noncrime_case(key, g, 10_000)
    with pytest.raises(ValueError, match="bad_leads"):
        noncrime.make_noncrime_case(key, g, 5, bad_leads=-1)
    with pytest.raises(ValueError, match="A_truth has shape"):
        noncrime.make_noncrime_case(key, g, 5, A_truth=g.A)
    with pytest.raises(ValueError, match="pass key"):
        noncrime.truth_transfer(g, shift_mm=5.0)
    with pytest.raises(ValueError, match="refine must be an integer >= 1"):
        noncrime.noncrime_geometry(n_heart=200, refine=0)


def test_apd_dispersion_makes_waveforms_differ(small_geo):
    g = small_geo
    U0 = np.asarray(noncrime.truth_beat(g, 17, n_samples=700))
    U1 = np.asarray(noncrime.truth_beat(g, 17, n_samples=700, apd_dispersion=0.3))

    def apd(U):
        up = np.argmax(U >= 0.5, axis=1)
        down = np.array([u0 + np.argmax(u[u0:] < 0.5) for u, u0 in zip(U, up)])
        assert (down > up).all()  # every node repolarises within the window
        return (down - up) * 0.1

    a0, a1 = apd(U0), apd(U1)
    assert np.ptp(a0) < 2.0  # homogeneous tissue: nearly one APD
    assert np.ptp(a1) == pytest.approx(0.3 * np.median(a0), rel=0.35)  # the gradient asked for
    np.testing.assert_allclose(np.argmax(U1 >= 0.5, axis=1), np.argmax(U0 >= 0.5, axis=1), atol=3)  # same activation
    with pytest.raises(ValueError, match="mitchell-schaeffer.* only"):
        noncrime.truth_beat(g, 17, ionic="fenton-karma", apd_dispersion=0.2)


def test_a_beat_that_does_not_propagate_is_refused(small_geo):
    # Fenton–Karma's ~1 mm front cannot travel on the truth's ~4 mm mesh: say so, never score it.
    with pytest.raises(ValueError, match="failed to propagate"):
        noncrime.make_noncrime_case(jax.random.key(0), small_geo, 5, ionic="fenton-karma", n_samples=200)


def test_a_beat_from_several_sites_is_the_earlier_of_their_beats(small_geo):
    # Two fronts started at once meet and annihilate: each node activates when the nearer front
    # reaches it, so the two-site activation map is the pointwise minimum of the one-site maps.
    g = small_geo
    a, b = 17, int(np.argmax(np.linalg.norm(g.heart.vertices - g.heart.vertices[17], axis=1)))
    times = [np.asarray(metrics.activation_times(noncrime.truth_beat(g, s, n_samples=300)[: g.n_nodes], 0.1, normalize=False))
             for s in (a, b, (a, b))]
    np.testing.assert_allclose(times[2], np.minimum(times[0], times[1]), atol=0.35)
    assert np.mean(times[2]) < 0.8 * min(np.mean(times[0]), np.mean(times[1]))
    case = noncrime.make_noncrime_case(jax.random.key(0), g, (a, b), sigma=0.1, n_samples=300)
    assert case.site == (a, b) and case.site_xyz.shape == (2, 3)
    for bad in ((a, a), (), (a, 10_000), 1.5):
        with pytest.raises(ValueError, match="site must be"):
            noncrime.truth_beat(g, bad)


def test_sites_started_one_after_another(small_geo):
    # A site stimulated at t = s activates s later than it would at t = 0, wherever its front
    # arrives first; where the first site's front arrives first, nothing changes.
    g = small_geo
    a, b = 17, int(np.argmax(np.linalg.norm(g.heart.vertices - g.heart.vertices[17], axis=1)))

    def times(**kw):
        U = noncrime.truth_beat(g, (a, b), n_samples=300, **kw)[: g.n_nodes]
        return np.asarray(metrics.activation_times(U, 0.1, normalize=False))

    t0, t1 = times(), times(onsets=(0.0, 2.0))
    single = [np.asarray(metrics.activation_times(noncrime.truth_beat(g, s, n_samples=300)[: g.n_nodes], 0.1, normalize=False))
              for s in (a, b)]
    # (where the fronts collide they merge and speed each other up: a little earlier there)
    err = t1 - np.minimum(single[0], single[1] + 2.0)
    assert np.quantile(np.abs(err), 0.97) < 0.35 and -1.0 < err.min() and err.max() < 0.35
    assert t1[b] == pytest.approx(t0[b] + 2.0, abs=0.15) and t1[a] == pytest.approx(t0[a], abs=1e-6)
    for bad in ((0.0,), (0.0, -1.0), (0.0, np.nan)):
        with pytest.raises(ValueError, match="onsets must give"):
            noncrime.truth_beat(g, (a, b), onsets=bad)


def test_simulate_ionic_onsets_shift_a_cable_beat():
    # On a cable, a stimulus at t = 1.5 is the t = 0 beat 15 samples later.
    n, h = 120, 0.5
    L = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1]).tolil()
    L[0, 0] = L[-1, -1] = -1
    L = L.tocsr() / h**2
    model = ep.IONIC_MODELS["mitchell-schaeffer"]()
    excited = np.arange(3)
    U0 = np.asarray(ep.simulate_ionic(model, L, excited, n_samples=200))
    U1 = np.asarray(ep.simulate_ionic(model, L, excited, n_samples=200, onsets=np.full(n, 1.5)))
    np.testing.assert_allclose(U1[:, 15:], U0[:, :-15], atol=1e-5)
    assert np.abs(U1[:, :15]).max() == 0.0
    with pytest.raises(ValueError, match="onsets must be"):
        ep.simulate_ionic(model, L, excited, onsets=np.full(n - 1, 1.0))
    with pytest.raises(ValueError, match="inside the simulated window"):  # it would never fire
        ep.simulate_ionic(model, L, excited, n_samples=200, onsets=np.full(n, 20.0))
    U2 = np.asarray(ep.simulate_ionic(model, L, excited, n_samples=200, onsets=np.full(n, 19.9)))
    assert U2[:, -1].max() > 0.0 and np.abs(U2[:, :-1]).max() == 0.0  # the last sample is the stimulus
