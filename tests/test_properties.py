"""Property-based tests (hypothesis): operator identities on random meshes, sizes and seeds.

Each property is an identity that holds for every input (row sums of Laplacians, polynomial
exactness of stencils, the Tikhonov optimality condition, BEM invariances, equivariance under
renumbering the heart nodes), checked on inputs hypothesis draws. Examples are few and small so
that the whole file stays well under a minute.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgi_jax import forward, operators, solve
from ecgi_jax.geometry import Mesh, icosphere, sphere_mesh

FEW = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
VERY_FEW = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def x64():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


@st.composite
def star_meshes(draw, min_vertices=12, max_vertices=120):
    """Closed, outward, star-shaped random surfaces: a Fibonacci sphere with random radii
    (0.7–1.3 per vertex), random scale and centre."""
    n = draw(st.integers(min_vertices, max_vertices))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.1, 100.0))
    rng = np.random.default_rng(seed)
    base = sphere_mesh(n)
    radii = rng.uniform(0.7, 1.3, size=n)[:, None]
    centre = rng.uniform(-50, 50, size=3)
    return Mesh(base.vertices * radii * scale + centre, base.triangles)


def sp_dense(op):
    return op.toarray() if hasattr(op, "toarray") else _dense(op)


def _permuted(mesh: Mesh, perm: np.ndarray) -> Mesh:
    """The same surface with vertex ``i`` of the new mesh being vertex ``perm[i]`` of the old."""
    inv = np.argsort(perm)
    return Mesh(mesh.vertices[perm], inv[mesh.triangles])


def _dense(op) -> np.ndarray:
    # via scipy on the host: densifying with jax would compile once per random mesh size
    return op.to_scipy().toarray() if isinstance(op, operators.SparseOperator) else np.asarray(op, np.float64)


# ----------------------------------------------------------------------------------------------
# Laplacians


@FEW
@given(mesh=star_meshes())
def test_every_laplacian_annihilates_constants(mesh):
    with x64():
        ops = {
            "huiskamp": operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency, dtype=jnp.float64),
            "cotangent": operators.cotangent_laplacian(mesh, dtype=jnp.float64),
            "graph": operators.graph_laplacian(mesh.adjacency, dtype=jnp.float64),
            "graph-normalized": operators.graph_laplacian(mesh.adjacency, dtype=jnp.float64, normalized=True),
        }
        for name, op in ops.items():
            L = _dense(op)
            scale = np.abs(L).max()
            np.testing.assert_allclose(L @ np.ones(mesh.n_vertices), 0.0, atol=1e-12 * scale, err_msg=name)
            # and only constants: the mesh is connected, so the null space is one-dimensional
            assert np.sum(np.abs(np.linalg.eigvals(L)) < 1e-9 * scale) == 1, name


@FEW
@given(mesh=star_meshes(max_vertices=60), seed=st.integers(0, 2**31 - 1))
def test_laplacians_are_permutation_equivariant(mesh, seed):
    """Renumbering the nodes renumbers the operator: L' = P L Pᵀ."""
    perm = np.random.default_rng(seed).permutation(mesh.n_vertices)
    other = _permuted(mesh, perm)
    with x64():
        for build in (
            lambda m: operators.huiskamp_laplacian(m.vertices, m.adjacency, dtype=jnp.float64),
            lambda m: operators.cotangent_laplacian(m, dtype=jnp.float64),
            lambda m: operators.graph_laplacian(m.adjacency, dtype=jnp.float64),
            lambda m: operators.surface_gradient(m, dtype=jnp.float64).to_scipy().T,  # (N, 3F): rows follow nodes
        ):
            L, Lp = (np.asarray(sp_dense(build(m))) for m in (mesh, other))
            if L.shape[0] == L.shape[1]:
                np.testing.assert_allclose(Lp, L[np.ix_(perm, perm)], rtol=1e-10, atol=1e-12 * np.abs(L).max())
            else:  # the gradient's columns follow the (unchanged) triangle order
                np.testing.assert_allclose(Lp, L[perm], rtol=1e-10, atol=1e-12 * np.abs(L).max())


# ----------------------------------------------------------------------------------------------
# temporal stencils


@FEW
@given(
    derivative=st.sampled_from([1, 2]),
    order=st.sampled_from([2, 4, 6]),
    extra=st.sampled_from([0, 9]),  # few distinct lengths: each new shape compiles time_derivative
    dt=st.floats(1e-2, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_stencils_are_exact_on_polynomials_up_to_their_order(derivative, order, extra, dt, seed):
    n_t = operators.min_samples(derivative, order) + extra
    t = (np.arange(n_t) - n_t / 2) * dt
    coef = np.random.default_rng(seed).standard_normal(order + 1)  # degree == order
    p = np.polynomial.Polynomial(coef)
    exact = p.deriv(derivative)(t)
    D = operators.difference_matrix(n_t, dt, derivative=derivative, order=order)
    tol = 1e-9 * np.abs(D).sum(axis=1).max() * np.abs(p(t)).max()
    np.testing.assert_allclose(D @ p(t), exact, atol=tol)
    with x64():
        td = np.asarray(operators.time_derivative(jnp.asarray(p(t)[None]), dt, derivative=derivative, order=order))[0]
    np.testing.assert_allclose(td, exact, atol=tol)
    # One degree more is NOT exact in general (the property is sharp): the error is nonzero.
    q = np.polynomial.Polynomial(np.r_[np.zeros(order + 1), 1.0])
    if derivative == 1:
        # Round-off bound of *this* polynomial (p's can be far larger: a small dt shrinks q(t) to
        # ~1e-9 while p(t) stays O(1), and the truncation error ~1e-8 then fell below p's bound).
        tol_q = 1e-9 * np.abs(D).sum(axis=1).max() * np.abs(q(t)).max()
        assert np.abs(D @ q(t) - q.deriv(1)(t)).max() > tol_q


# ----------------------------------------------------------------------------------------------
# Tikhonov


@st.composite
def tikhonov_problems(draw):
    # Under- and over-determined shapes; a few fixed ones, since each new shape compiles solve()'s
    # jitted factorization again (random data, λ and seeds are what vary).
    m, n, t = draw(st.sampled_from([(12, 8, 3), (6, 14, 2)]))
    seed = draw(st.integers(0, 2**31 - 1))
    log_lam = draw(st.floats(-4.0, 1.0))
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) * 0.8 ** np.arange(n)
    R = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)  # non-singular (Dirichlet ends)
    Y = rng.standard_normal((m, t))
    return A, R, Y, 10.0**log_lam


@FEW
@given(problem=tikhonov_problems(), order=st.sampled_from([0, 2]))
def test_tikhonov_solution_satisfies_the_normal_equations(problem, order):
    """(AᵀA + λRᵀR) X = AᵀY for the X that solve() returns (float64)."""
    A, R, Y, lam = problem
    with x64():
        kw = {"laplacian": R} if order == 2 else {}
        X = np.asarray(solve(Y, A, method=f"tikhonov-{order}", lam=lam, **kw).U)
    Rm = R if order == 2 else np.eye(A.shape[1])
    lhs = (A.T @ A + lam * Rm.T @ Rm) @ X
    rhs = A.T @ Y
    scale = np.linalg.norm(A.T @ A + lam * Rm.T @ Rm, 2) * np.linalg.norm(X) + np.linalg.norm(rhs)
    assert np.linalg.norm(lhs - rhs) <= 1e-10 * scale


@VERY_FEW
@given(mesh=star_meshes(min_vertices=30, max_vertices=30), seed=st.integers(0, 2**31 - 1), log_lam=st.floats(-3.0, 0.0))
def test_tikhonov_is_permutation_equivariant(mesh, seed, log_lam):
    """Renumbering heart nodes (columns of A, rows/columns of L) renumbers the solution."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(mesh.n_vertices)
    A = rng.standard_normal((10, mesh.n_vertices))
    Y = rng.standard_normal((10, 3))
    with x64():
        L = _dense(operators.cotangent_laplacian(mesh, dtype=jnp.float64))
        Lp = _dense(operators.cotangent_laplacian(_permuted(mesh, perm), dtype=jnp.float64))
        X = np.asarray(solve(Y, A, method="tikhonov-2", laplacian=L + np.eye(len(L)), lam=10.0**log_lam).U)
        Xp = np.asarray(solve(Y, A[:, perm], method="tikhonov-2", laplacian=Lp + np.eye(len(L)), lam=10.0**log_lam).U)
    np.testing.assert_allclose(Xp, X[perm], rtol=1e-7, atol=1e-9 * np.abs(X).max())


# ----------------------------------------------------------------------------------------------
# BEM forward model and synthetic measurements


@st.composite
def heart_in_torso(draw):
    r_heart = draw(st.floats(10.0, 35.0))
    offset = draw(st.lists(st.floats(-15.0, 15.0), min_size=3, max_size=3))
    heart = icosphere(1, r_heart, center=offset)
    torso = icosphere(1, 100.0)
    angles = draw(st.lists(st.floats(0.0, 2 * np.pi), min_size=3, max_size=3))
    shift = np.asarray(draw(st.lists(st.floats(-100.0, 100.0), min_size=3, max_size=3)))
    return heart, torso, _rotation(*angles), shift


def _rotation(a, b, c):
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


@VERY_FEW
@given(geometry=heart_in_torso())
def test_bem_constants_and_rigid_motion_invariance(geometry):
    heart, torso, rot, shift = geometry
    a = forward.transfer_matrix(heart, torso)
    a_none = forward.transfer_matrix(heart, torso, reference="none")
    ones = np.ones(heart.n_vertices)
    np.testing.assert_allclose(a @ ones, 0.0, atol=1e-10)  # zero-mean reference
    np.testing.assert_allclose(a_none @ ones, 1.0, atol=1e-8)  # constant in, same constant out
    moved = [Mesh(m.vertices @ rot.T + shift, m.triangles) for m in (heart, torso)]
    np.testing.assert_allclose(forward.transfer_matrix(*moved), a, atol=1e-9)


@VERY_FEW
@given(seed=st.integers(0, 2**31 - 1), alpha=st.floats(-3.0, 3.0), beta=st.floats(-3.0, 3.0))
def test_noise_free_measurements_are_linear(seed, alpha, beta):
    """Noise-free synthetic measurements: ``Y == Y_clean == A @ U`` and linear in the forward
    model (``make_case`` with ``αA₁ + βA₂`` gives ``αY₁ + βY₂`` for the same beat), and the BEM
    rows at chosen electrodes equal the selected rows of the full matrix."""
    from ecgi_jax.synthetic import make_case

    heart, torso = icosphere(1, 30.0), icosphere(1, 90.0)
    rng = np.random.default_rng(seed)
    electrodes = np.sort(rng.choice(torso.n_vertices, 12, replace=False))
    A1 = forward.transfer_matrix(heart, torso, electrodes=electrodes)
    np.testing.assert_allclose(A1, forward.transfer_matrix(heart, torso)[electrodes], atol=1e-12)
    A2 = rng.standard_normal(A1.shape) * np.abs(A1).max()
    lap = operators.huiskamp_laplacian(heart.vertices, heart.adjacency)
    node = [int(rng.integers(heart.n_vertices))]
    cases = [make_case(jax.random.key(seed), A, lap, node, sigma=0.0, n_samples=4) for A in (A1, A2, alpha * A1 + beta * A2)]
    for case in cases:
        np.testing.assert_array_equal(np.asarray(case.Y), np.asarray(case.Y_clean))
    np.testing.assert_array_equal(np.asarray(cases[0].U), np.asarray(cases[2].U))
    y1, y2, y12 = (np.asarray(c.Y_clean, np.float64) for c in cases)
    scale = (abs(alpha) + abs(beta)) * max(np.abs(y1).max(), np.abs(y2).max()) + 1e-30
    np.testing.assert_allclose(y12, alpha * y1 + beta * y2, atol=1e-5 * scale)
    np.testing.assert_allclose(y1, A1 @ np.asarray(cases[0].U, np.float64), atol=1e-5 * np.abs(y1).max())
