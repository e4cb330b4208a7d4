import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from ecgi_jax.datasets import load_pdl
from ecgi_jax.geometry import icosphere
from ecgi_jax.operators import (
    SparseOperator,
    adjacency_from_sparse,
    cotangent_laplacian,
    edge_gradient,
    graph_laplacian,
    huiskamp_laplacian,
    surface_gradient,
)

R = 50.0
# Homogeneous harmonic polynomials restricted to a sphere are spherical harmonics of degree l:
# Δ_S p = −l(l+1)/r² p.
HARMONICS = [
    (1, lambda x, y, z: z),
    (1, lambda x, y, z: x),
    (2, lambda x, y, z: 2 * z**2 - x**2 - y**2),
    (2, lambda x, y, z: x * y),
    (3, lambda x, y, z: z * (2 * z**2 - 3 * x**2 - 3 * y**2)),
]


def _lap_error(op_builder, subdiv, l, f):
    m = icosphere(subdiv, radius=R)
    u = f(*m.vertices.T)
    lu = np.asarray(op_builder(m).to_scipy() @ u)
    expected = -l * (l + 1) / R**2 * u
    return np.linalg.norm(lu - expected) / np.linalg.norm(expected)


def _huiskamp(m):
    return huiskamp_laplacian(m.vertices, m.adjacency, dtype=np.float64)


def _cot(m):
    return cotangent_laplacian(m, dtype=np.float64)


@pytest.mark.parametrize("l, f", HARMONICS)
def test_cotangent_laplacian_converges_to_laplace_beltrami_on_sphere(x64, l, f):
    errs = [_lap_error(_cot, s, l, f) for s in (2, 3, 4)]
    assert errs[2] < 0.02, errs
    # first order in h: each subdivision halves h and (about) the error
    assert errs[1] < 0.6 * errs[0] and errs[2] < 0.6 * errs[1], errs


def test_huiskamp_exact_for_quadratics_on_regular_rings(x64):
    # Triangular lattice (every interior node has 6 neighbours at distance h): the 1-ring formula
    # is exact for quadratics there. On irregular rings it is not consistent (first-order terms do
    # not cancel, error ~ 1/h): that is a property of the formula, documented in its docstring.
    h = 2.5
    ii, jj = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    xy = np.stack([h * (ii + 0.5 * jj), h * jj * np.sqrt(3) / 2], -1).reshape(-1, 2)
    v = np.column_stack([xy, np.zeros(len(xy))])
    d = np.linalg.norm(v[:, None] - v[None], axis=-1)
    L = huiskamp_laplacian(v, adjacency_from_sparse(sp.csr_matrix(np.isclose(d, h))), dtype=np.float64)
    x, y = v[:, 0], v[:, 1]
    interior = (ii.ravel() > 0) & (ii.ravel() < 8) & (jj.ravel() > 0) & (jj.ravel() < 8)
    for u, lap in [(x**2, 2.0), (x * y, 0.0), (3 * x**2 + 2 * y**2 - x, 10.0)]:
        np.testing.assert_allclose(np.asarray(L @ u)[interior], lap, atol=1e-9)


@pytest.mark.parametrize(
    "op",
    [
        lambda m: huiskamp_laplacian(m.vertices, m.adjacency),
        lambda m: cotangent_laplacian(m),
        lambda m: graph_laplacian(m.adjacency),
        lambda m: graph_laplacian(m.adjacency, normalized=True),
    ],
)
def test_laplacian_rows_sum_to_zero(op):
    m = icosphere(2, radius=R)
    L = op(m).to_scipy()
    np.testing.assert_allclose(np.asarray(L.sum(axis=1)).ravel(), 0.0, atol=1e-6 * abs(L).max())


def test_huiskamp_reproduces_shipped_pdl_laplacian(x64, pdl_dir):
    data = load_pdl(pdl_dir)
    L = huiskamp_laplacian(data.vertices, data.adjacency, dtype=np.float64).to_scipy()
    diff = sp.linalg.norm(L - data.laplacian) / sp.linalg.norm(data.laplacian)
    assert diff < 1e-10
    assert (L != 0).sum() == data.laplacian.nnz


def test_surface_gradient_of_linear_function_is_tangential_projection(x64):
    m = icosphere(3, radius=R)
    c = np.array([0.3, -1.2, 0.7])
    G = surface_gradient(m, area_weighted=False, dtype=np.float64)
    g = np.asarray(G @ jnp.asarray(m.vertices @ c)).reshape(-1, 3)
    n = m.face_normals
    np.testing.assert_allclose(g, c - (n @ c)[:, None] * n, atol=1e-10)
    # Area weighted: ‖G z‖² = ∫|∇_S z|² dA = 8πr²/3 on a sphere.
    Gw = surface_gradient(m, dtype=np.float64)
    energy = float(jnp.sum((Gw @ jnp.asarray(m.vertices[:, 2])) ** 2))
    assert abs(energy / (8 * np.pi * R**2 / 3) - 1) < 0.01


def test_edge_gradient_exact_on_linear_functions(x64):
    m = icosphere(2, radius=R)
    c = np.array([1.0, 2.0, -0.5])
    E = edge_gradient(m.vertices, m.adjacency, dtype=np.float64)
    d = np.asarray(E @ jnp.asarray(m.vertices @ c))
    edges = m.edges
    t = m.vertices[edges[:, 1]] - m.vertices[edges[:, 0]]
    np.testing.assert_allclose(d, t @ c / np.linalg.norm(t, axis=1), atol=1e-10)
    assert E.shape == (len(edges), m.n_vertices)


def test_adjacency_from_sparse_matches_mesh_adjacency():
    m = icosphere(2)
    L = cotangent_laplacian(m).to_scipy()
    ip, ix = adjacency_from_sparse(L)
    ip2, ix2 = m.adjacency
    np.testing.assert_array_equal(ip, ip2)
    np.testing.assert_array_equal(ix, ix2)


def test_sparse_operator_apply_transpose_jit_vmap_grad():
    rng = np.random.default_rng(0)
    M = sp.random(30, 20, density=0.2, random_state=1, format="csr")
    op = SparseOperator.from_scipy(M)
    dense = np.asarray(M.todense(), np.float32)
    x = rng.standard_normal((20, 7)).astype(np.float32)
    np.testing.assert_allclose(op @ x, dense @ x, rtol=1e-5, atol=1e-5)
    y = rng.standard_normal((30,)).astype(np.float32)
    np.testing.assert_allclose(op.T @ y, dense.T @ y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(op.todense(), dense, atol=0)
    f = jax.jit(lambda o, v: o @ v)
    np.testing.assert_allclose(f(op, x), op @ x, rtol=1e-6)
    xs = rng.standard_normal((4, 20)).astype(np.float32)
    np.testing.assert_allclose(jax.vmap(lambda v: op @ v)(xs), xs @ dense.T, rtol=1e-5, atol=1e-5)
    # Gradient of ½‖Op x‖² is Opᵀ Op x.
    g = jax.grad(lambda v: 0.5 * jnp.sum((op @ v) ** 2))(x[:, 0])
    np.testing.assert_allclose(g, dense.T @ (dense @ x[:, 0]), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="cannot apply"):
        op @ np.zeros(21)


def test_huiskamp_rejects_isolated_nodes():
    ip = np.array([0, 1, 2, 2])
    ix = np.array([1, 0])
    with pytest.raises(ValueError, match="no neighbours"):
        huiskamp_laplacian(np.eye(3), (ip, ix))


def test_neighbour_lists_are_accepted_as_adjacency():
    """A list of per-node neighbour lists (what many mesh tools give) used to be refused."""
    m = icosphere(2, radius=R)
    indptr, indices = m.adjacency
    lists = [indices[indptr[i] : indptr[i + 1]].tolist() for i in range(m.n_vertices)]
    ref = huiskamp_laplacian(m.vertices, m.adjacency).to_scipy()
    for adj in (lists, tuple(lists), [np.asarray(x) for x in lists]):
        L = huiskamp_laplacian(m.vertices, adj).to_scipy()
        assert abs(L - ref).max() == 0
    np.testing.assert_array_equal(graph_laplacian(lists).to_scipy().toarray(), graph_laplacian(m.adjacency).to_scipy().toarray())
    assert edge_gradient(m.vertices, lists).shape == edge_gradient(m.vertices, m.adjacency).shape
    # two nodes: unambiguous (a CSR indptr starts at 0, node 0's list cannot contain 0)
    L2 = graph_laplacian([[1], [0]]).to_scipy().toarray()
    np.testing.assert_array_equal(L2, [[-1, 1], [1, -1]])


def test_bad_neighbour_lists_say_what_to_pass():
    m = icosphere(1)
    indptr, indices = m.adjacency
    lists = [indices[indptr[i] : indptr[i + 1]].tolist() for i in range(m.n_vertices)]
    with pytest.raises(ValueError, match=r"CSR pair \(indptr, indices\).*per-node neighbour lists.*entry 3"):
        huiskamp_laplacian(m.vertices, lists[:3] + [[0.5, 2.0]] + lists[4:])
    with pytest.raises(ValueError, match="1-based indices"):
        huiskamp_laplacian(m.vertices, [[j + 1 for j in x] for x in lists])
    with pytest.raises(ValueError, match="adjacency describes 41 nodes but there are 42"):
        huiskamp_laplacian(m.vertices, lists[:-1])
    with pytest.raises(ValueError, match=r"must be CSR arrays \(indptr, indices\)"):  # a broken CSR pair stays a CSR error
        huiskamp_laplacian(m.vertices, (indptr + 1, indices))
    with pytest.raises(ValueError, match="adjacency_from_sparse"):
        huiskamp_laplacian(m.vertices, sp.csr_matrix(np.eye(42)))


def test_geodesic_distances_follow_the_edges():
    """A unit square split along 1–2: 0→3 is two unit edges (no edge joins them), 1→2 the
    diagonal; on a sphere the edge paths are symmetric and at most 20 % longer than the great
    circle (and no shorter, but for chords 0.1 % shorter than their arcs)."""
    from ecgi_jax.geometry import Mesh
    from ecgi_jax.operators import geodesic_distances

    square = Mesh(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]), np.array([[0, 1, 2], [1, 3, 2]]), validate=False)
    d = geodesic_distances(square.vertices, square.adjacency)
    np.testing.assert_allclose(d[0], [0.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(d[1, 2], np.sqrt(2.0))
    np.testing.assert_allclose(geodesic_distances(square.vertices, square.adjacency, [3]), d[[3]])
    sphere = icosphere(3)
    d = geodesic_distances(sphere.vertices, sphere.adjacency)
    np.testing.assert_allclose(d, d.T, atol=1e-12)
    x = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    arc = np.arccos(np.clip(x @ x.T, -1.0, 1.0)) * np.linalg.norm(sphere.vertices[0])
    far = arc > 0.5
    ratio = d[far] / arc[far]
    assert ratio.min() > 0.998 and ratio.max() < 1.2 and np.median(ratio) < 1.1, (ratio.min(), ratio.max())
    with pytest.raises(ValueError, match="sources"):
        geodesic_distances(square.vertices, square.adjacency, [4])
