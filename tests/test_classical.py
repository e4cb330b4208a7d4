"""Classical solvers: Tikhonov (0/1/2), TSVD, spatiotemporal, λ rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecgi_jax.operators import SparseOperator
from ecgi_jax.solvers.classical import (
    creso, discrepancy, estimate_noise, factorize, gcv, lcurve, oracle, select_lambda,
    select_spatiotemporal, spatiotemporal, spatiotemporal_path, temporal_operator, tikhonov,
    tikhonov_from_factor, tikhonov_path, tsvd, tsvd_path,
)


def _problem(m=30, n=50, t=7, seed=0, decay=0.8):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) @ np.diag(decay ** np.arange(n)) @ np.linalg.qr(rng.standard_normal((n, n)))[0]
    Y = rng.standard_normal((m, t))
    return A, Y


def _path_laplacian(n):
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0, 0] = L[-1, -1] = 1.0  # rows sum to zero: null space = constants, like a mesh Laplacian
    return L


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("lam", [1e-4, 1e-1, 10.0])
def test_tikhonov_matches_normal_equations(x64, order, lam):
    A, Y = _problem()
    n = A.shape[1]
    R = {0: None, 1: np.diff(np.eye(n), axis=0), 2: _path_laplacian(n)}[order]
    RR = np.eye(n) if R is None else R
    X_direct = np.linalg.solve(A.T @ A + lam * RR.T @ RR, A.T @ Y)
    X = tikhonov(jnp.asarray(Y), jnp.asarray(A), lam, None if R is None else jnp.asarray(R))
    assert X.dtype == jnp.float64
    np.testing.assert_allclose(X, X_direct, rtol=1e-8, atol=1e-9 * np.abs(X_direct).max())


def test_tikhonov_tall_R_and_sparse_operator(x64):
    """A (K>N)-row R goes through the QR reduction; a SparseOperator R gives the same answer."""
    A, Y = _problem()
    L = _path_laplacian(A.shape[1])
    R_tall = np.vstack([L, 2 * L])
    X1 = tikhonov(Y, A, 0.3, R_tall)
    X2 = tikhonov(Y, A, 0.3 * 5, SparseOperator.from_scipy(L))
    np.testing.assert_allclose(X1, X2, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("R_kind", [None, "lap"])
def test_path_equals_per_lambda_solves(x64, R_kind):
    A, Y = _problem()
    R = None if R_kind is None else _path_laplacian(A.shape[1])
    lams = jnp.logspace(-5, 2, 8)
    truth = np.random.default_rng(5).standard_normal((A.shape[1], Y.shape[1]))
    path = tikhonov_path(Y, A, lams, R, truth=truth)
    RR = np.eye(A.shape[1]) if R is None else R
    for i, lam in enumerate(np.asarray(lams)):
        X = np.asarray(tikhonov(Y, A, lam, R))
        np.testing.assert_allclose(path.solution(i), X, rtol=1e-8, atol=1e-10 * np.abs(X).max())
        np.testing.assert_allclose(path.residual_norm[i], np.linalg.norm(A @ X - Y), rtol=1e-8)
        np.testing.assert_allclose(path.seminorm[i], np.linalg.norm(RR @ X), rtol=1e-8)
        np.testing.assert_allclose(path.error[i], np.linalg.norm(X - truth) / np.linalg.norm(truth), rtol=1e-7)
    np.testing.assert_allclose(path.solutions()[3], path.solution(3), rtol=1e-10, atol=1e-12)


def test_tsvd_full_rank_equals_pinv(x64):
    A, Y = _problem(m=20, n=35, decay=0.9)
    X = tsvd(Y, A, 20)
    np.testing.assert_allclose(X, np.linalg.pinv(A) @ Y, rtol=1e-7, atol=1e-9)
    # path over k agrees with single truncations
    path = tsvd_path(Y, A)
    for k in (1, 7, 20):
        np.testing.assert_allclose(path.solution(k - 1), tsvd(Y, A, k), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(path.residual_norm[k - 1], np.linalg.norm(A @ tsvd(Y, A, k) - Y), rtol=1e-7, atol=1e-10)


def test_spatiotemporal_matches_kronecker_solve(x64):
    rng = np.random.default_rng(1)
    m, n, t = 6, 9, 8
    A = rng.standard_normal((m, n))
    R = _path_laplacian(n)
    D = temporal_operator(t, 0.5)
    Y = rng.standard_normal((m, t))
    ls, lt = 0.3, 0.07
    # vec(X) column-major: (I_T ⊗ K + λ_t DᵀD ⊗ I_N) vec(X) = vec(AᵀY)
    K = np.kron(np.eye(t), A.T @ A + ls * R.T @ R) + lt * np.kron(D.T @ D, np.eye(n))
    x = np.linalg.solve(K, (A.T @ Y).reshape(-1, order="F")).reshape(n, t, order="F")
    np.testing.assert_allclose(spatiotemporal(Y, A, ls, lt, R, D), x, rtol=1e-9, atol=1e-11)
    path = spatiotemporal_path(Y, A, [ls], [lt, 2 * lt], R, D, truth=x)
    np.testing.assert_allclose(path.residual_norm[0, 0], np.linalg.norm(A @ x - Y), rtol=1e-9)
    np.testing.assert_allclose(path.temporal_seminorm[0, 0], np.linalg.norm(x @ D.T), rtol=1e-9)
    assert float(path.error[0, 0]) < 1e-9
    # dof = trace of the stacked influence matrix (I⊗A) K⁻¹ (I⊗Aᵀ)
    H = np.kron(np.eye(t), A) @ np.linalg.solve(K, np.kron(np.eye(t), A.T))
    np.testing.assert_allclose(path.dof[0, 0], np.trace(H), rtol=1e-9)
    ch = select_spatiotemporal(path, "oracle")
    assert ch.benchmark_only and tuple(np.asarray(ch.index)) == (0, 0)
    # λ_t = 0 reduces to spatial Tikhonov
    np.testing.assert_allclose(spatiotemporal(Y, A, ls, 0.0, R, D), tikhonov(Y, A, ls, R), rtol=1e-8, atol=1e-10)


def _picard_problem(dtype=np.float64, noise=1e-3, seed=0, m=64, t=40):
    """Square test problem with σ_i = 0.7^i and coefficients satisfying the Picard condition
    (uᵢᵀ y_clean = σ_i^1.5), so the best λ is known to be near noise-level² territory."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((m, m)))
    s = 0.8 ** np.arange(m)
    A = U @ np.diag(s) @ V.T
    coef = rng.standard_normal((m, t)) * (s**0.5)[:, None]  # x coefficients vᵢᵀx = σ_i^0.5·N(0,1)
    X = V @ coef
    Yc = A @ X
    Y = Yc + noise * rng.standard_normal(Yc.shape)
    return A.astype(dtype), Y.astype(dtype), X.astype(dtype), noise


def test_lambda_rules_near_oracle(x64):
    A, Y, X, noise = _picard_problem()
    path = tikhonov_path(Y, A, jnp.logspace(-12, 1, 131), truth=X)
    lam_opt = float(oracle(path).lam)
    assert oracle(path).benchmark_only
    e_opt = float(path.error[oracle(path).index])
    for name, ch in {
        "gcv": gcv(path), "lcurve": lcurve(path), "creso": creso(path),
        "discrepancy": discrepancy(path, noise_std=noise), "disc-est": discrepancy(path),
    }.items():
        ratio = float(ch.lam) / lam_opt
        assert 0.099 <= ratio <= 10.1 or float(path.error[ch.index]) < 1.5 * e_opt, (name, ratio)
    np.testing.assert_allclose(float(estimate_noise(path)), noise, rtol=0.3)
    with pytest.raises(ValueError, match="ground truth"):
        oracle(tikhonov_path(Y, A, jnp.logspace(-6, 0, 5)))
    with pytest.raises(ValueError, match="valid rules"):
        select_lambda(path, "bogus")


def test_jit_vmap_consistency():
    A, Y = _problem()
    A, Y = jnp.asarray(A, jnp.float32), jnp.asarray(Y, jnp.float32)
    R = jnp.asarray(_path_laplacian(A.shape[1]), jnp.float32)
    eager = tikhonov(Y, A, 0.1, R)
    jitted = jax.jit(tikhonov)(Y, A, 0.1, R)
    np.testing.assert_allclose(jitted, eager, rtol=1e-4, atol=1e-5 * float(jnp.abs(eager).max()))
    lams = jnp.array([1e-2, 1e-1, 1.0])
    fac = factorize(A, R)
    batched = jax.vmap(lambda l: tikhonov_from_factor(fac, Y, l))(lams)
    for i, l in enumerate(lams):
        np.testing.assert_allclose(batched[i], tikhonov_from_factor(fac, Y, l), rtol=1e-5, atol=1e-6)
    # vmap over data sets (patients/time windows) sharing A
    Ys = jnp.stack([Y, 2 * Y])
    out = jax.vmap(lambda y: tikhonov(y, A, 0.1, R))(Ys)
    np.testing.assert_allclose(out[1], 2 * eager, rtol=1e-4, atol=1e-5 * float(jnp.abs(eager).max()))
    # the whole path and the rules under jit
    p = jax.jit(lambda y: tikhonov_path(y, A, None, R))(Y)
    ch = jax.jit(lcurve)(p)
    assert ch.rule == "lcurve" and np.isfinite(float(ch.lam))


def test_float32_matches_float64(x64):
    A, Y = _problem(decay=0.95)  # well-posed enough for float32
    R = _path_laplacian(A.shape[1])
    X64 = tikhonov(Y, A, 1e-2, R)
    X32 = tikhonov(Y.astype(np.float32), A.astype(np.float32), 1e-2, R.astype(np.float32))
    assert X32.dtype == jnp.float32 and X64.dtype == jnp.float64
    np.testing.assert_allclose(X32, X64, rtol=1e-3, atol=1e-4 * float(jnp.abs(X64).max()))
    p32 = tikhonov_path(Y.astype(np.float32), A.astype(np.float32), jnp.logspace(-4, 1, 6), R.astype(np.float32))
    p64 = tikhonov_path(Y, A, jnp.logspace(-4, 1, 6), R)
    np.testing.assert_allclose(p32.residual_norm, p64.residual_norm, rtol=1e-3)
    np.testing.assert_allclose(p32.seminorm, p64.seminorm, rtol=1e-3)
