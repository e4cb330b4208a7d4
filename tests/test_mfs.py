"""Method of fundamental solutions: concentric spheres, references, agreement with the BEM, checks."""

import numpy as np
import pytest

from ecgi_jax.forward import mfs_sources, mfs_transfer_matrix, transfer_matrix
from ecgi_jax.geometry import icosphere
from ecgi_jax.validation import concentric_spheres_gain, real_sph_harm

A_RAD, B_RAD = 40.0, 100.0


@pytest.fixture(scope="module")
def spheres():
    out = {}
    for sub in (2, 3):
        h, t = icosphere(sub, A_RAD), icosphere(sub, B_RAD)
        out[sub] = (h, t, mfs_transfer_matrix(h, t, reference="none"))
    return out


def _sphere_error(h, t, a, l, m):
    yh = real_sph_harm(l, m, h.vertices)
    want = concentric_spheres_gain(l, A_RAD, B_RAD) * real_sph_harm(l, m, t.vertices)
    got = a @ yh
    got, want = got - got.mean(), want - want.mean()
    return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize("l", [1, 2, 3])
def test_mfs_spheres_harmonics(spheres, l):
    errs = {sub: max(_sphere_error(*spheres[sub], l, m) for m in (-l, 0, l)) for sub in (2, 3)}
    # Measured (40/100 mm, defaults): 162 nodes l=1..3: 3.2e-3, 4.7e-3, 7.8e-3;
    # 642 nodes: 5.6e-4, 1.0e-3, 1.6e-3 (BEM at 642: 4.9e-4, 1.2e-3, 4.4e-3).
    assert errs[3] < 0.005, errs
    assert errs[2] < 0.02, errs
    assert errs[3] < errs[2], errs


def test_mfs_constant_mode_each_reference(spheres):
    h, t, a = spheres[2]
    # The unregularised constant term reproduces a constant heart potential exactly.
    np.testing.assert_allclose(a @ np.ones(h.n_vertices), 1.0, atol=1e-8)
    am = mfs_transfer_matrix(h, t)  # reference="mean"
    np.testing.assert_allclose(am @ np.ones(h.n_vertices), 0.0, atol=1e-8)
    np.testing.assert_allclose(am.mean(0), 0.0, atol=1e-12)
    # "mean" is "none" with the column means removed.
    np.testing.assert_allclose(am, a - a.mean(0), atol=1e-12)


def test_mfs_tsvd_agrees_and_regularisation_matters(spheres):
    h, t, a = spheres[2]
    at = mfs_transfer_matrix(h, t, reference="none", regularization="tsvd")
    assert max(_sphere_error(h, t, at, 2, m) for m in (-2, 0, 2)) < 0.02
    # Heavy damping visibly attenuates degree 3 (the rule is not a no-op).
    ad = mfs_transfer_matrix(h, t, reference="none", rcond=0.1)
    assert max(_sphere_error(h, t, ad, 3, m) for m in (-3, 0, 3)) > 0.1


def test_mfs_vs_bem_off_centre_smooth_data():
    # Off-centre heart: no analytic solution, but the two discretisations must agree on smooth
    # heart data (an infinite-medium dipole) to well below a percent.
    h, t = icosphere(2, 30.0, center=(8.0, -5.0, 4.0)), icosphere(2, 90.0)
    am = mfs_transfer_matrix(h, t)
    ab = transfer_matrix(h, t)
    r = h.vertices - np.array([6.0, -4.0, 5.0])
    phi = r @ np.array([1.0, 0.5, -0.3]) / np.linalg.norm(r, axis=1) ** 3
    rel = np.linalg.norm(am @ phi - ab @ phi) / np.linalg.norm(ab @ phi)
    assert rel < 0.02, rel


def test_mfs_electrodes_dtype_and_invariances():
    h, t = icosphere(1, 30.0, center=(5.0, -3.0, 2.0)), icosphere(2, 90.0)
    a = mfs_transfer_matrix(h, t)
    assert a.shape == (t.n_vertices, h.n_vertices) and a.dtype == np.float64
    e = np.array([3, 7, 100, 11])
    ae = mfs_transfer_matrix(h, t, electrodes=e, dtype=np.float32)
    assert ae.shape == (4, h.n_vertices) and ae.dtype == np.float32
    np.testing.assert_allclose(ae, a[e], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mfs_transfer_matrix(h.translated([10, 20, -5]), t.translated([10, 20, -5])), a, atol=1e-8)
    np.testing.assert_allclose(mfs_transfer_matrix(h.scaled(1e-3), t.scaled(1e-3)), a, atol=1e-8)


def test_mfs_sources_placement():
    h, t = icosphere(1, 30.0), icosphere(1, 90.0)
    ys_h, ys_t = mfs_sources(h, t, heart_scale=0.5, torso_scale=2.0)
    np.testing.assert_allclose(np.linalg.norm(ys_h, axis=1), 15.0)
    np.testing.assert_allclose(np.linalg.norm(ys_t, axis=1), 180.0)


def test_mfs_rejects_bad_input():
    h, t = icosphere(1, 1.0), icosphere(1, 2.5)
    with pytest.raises(ValueError, match="reference"):
        mfs_transfer_matrix(h, t, reference="wct")
    with pytest.raises(ValueError, match="heart_scale"):
        mfs_transfer_matrix(h, t, heart_scale=1.2)
    with pytest.raises(ValueError, match="torso_scale"):
        mfs_transfer_matrix(h, t, torso_scale=0.9)
    with pytest.raises(ValueError, match="rcond"):
        mfs_transfer_matrix(h, t, rcond=0.0)
    with pytest.raises(ValueError, match="regularization"):
        mfs_transfer_matrix(h, t, regularization="lasso")
    with pytest.raises(ValueError, match="electrode"):
        mfs_transfer_matrix(h, t, electrodes=[0, t.n_vertices])
    with pytest.raises(ValueError, match="orient"):
        mfs_transfer_matrix(h, t.flipped())
    with pytest.raises(ValueError, match="inside the torso"):
        mfs_transfer_matrix(icosphere(1, 1.0, center=(10.0, 0, 0)), t)
    # A banana (a prolate ellipsoid bent along z) is not star-shaped about its vertex centroid,
    # which lies outside it: deflated sources leave the heart, inflated ones enter the torso.
    e = icosphere(2, 1.0)
    v = e.vertices * np.array([4.0, 1.0, 1.0])
    v[:, 2] += 0.5 * v[:, 0] ** 2
    banana = type(e)(v, e.triangles)
    with pytest.raises(ValueError, match="outside the heart"):
        mfs_sources(banana, icosphere(1, 50.0))
    with pytest.raises(ValueError, match="inside the torso surface"):
        mfs_sources(icosphere(1, 0.1, center=(0.0, 0.0, 0.3)), banana)
