"""Reliability: bad inputs at every public entry, numerical faults, reproducibility, files.

``BAD_INPUTS`` is one table of (call, exception type, message pattern) cases: every case must raise
exactly that type with a message naming the problem. The table is the list quoted in the
project's reliability notes; its length is the count of bad-input cases tested.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from ecgi_jax import datasets, forward, metrics, operators, solve
from ecgi_jax.ep import APParams, Stimulus, simulate
from ecgi_jax.geometry import Mesh, atomic_write, icosphere, load_mat, load_mesh, save_mesh
from ecgi_jax.synthetic import make_case


# ----------------------------------------------------------------------------------------------
# small shared inputs (cached: built on first use, so collection stays fast)


@functools.lru_cache(maxsize=None)
def _problem(m=12, n=20, t=6, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) * 0.85 ** np.arange(n)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    L[0, 0] = L[-1, -1] = 1.0
    X = np.cumsum(rng.standard_normal((n, t)), axis=0) / 5
    Y = A @ X + 1e-3 * rng.standard_normal((m, t))
    return Y, A, L, X


@functools.lru_cache(maxsize=None)
def _spheres():
    return icosphere(1, 30.0), icosphere(1, 90.0)


def _with(arr, idx, value):
    out = np.array(arr, dtype=np.result_type(arr, type(value)))
    out[idx] = value
    return out


def _bowtie():
    """Two tetrahedra sharing only vertex 0: every edge is manifold, vertex 0 is not."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1]], float)
    t = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3], [0, 4, 5], [0, 6, 4], [0, 5, 6], [4, 6, 5]]
    return Mesh(v, t)


def _two_spheres_torso():
    big, far = icosphere(1, 90.0), icosphere(1, 10.0, center=(500.0, 0, 0))
    return Mesh(np.vstack([big.vertices, far.vertices]), np.vstack([big.triangles, far.triangles + big.n_vertices]))


def _cracked_torso():
    """Torso whose triangles around vertex 0 use a duplicated copy of it: closed-looking but cracked."""
    t = icosphere(1, 90.0)
    v = np.vstack([t.vertices, t.vertices[:1]])
    tri = t.triangles.copy()
    first = np.flatnonzero((tri == 0).any(axis=1))[:2]
    tri[first] = np.where(tri[first] == 0, t.n_vertices, tri[first])
    return Mesh(v, tri)


def _disconnected_laplacian_problem():
    """Two separate chains of nodes (a Laplacian with two constant null vectors) and an A whose
    columns sum to zero on each part: A and L share the null vector (1 on part 1, -1 on part 2)."""
    n, m = 10, 8
    lap = np.zeros((n, n))
    for part in (range(0, 5), range(5, 10)):
        idx = list(part)
        for a, b in zip(idx[:-1], idx[1:]):
            lap[[a, b], [b, a]] = 1.0
    lap -= np.diag(lap.sum(axis=1))
    rng = np.random.default_rng(1)
    A = rng.standard_normal((m, n))
    A[:, :5] -= A[:, :5].mean(axis=1, keepdims=True)
    A[:, 5:] -= A[:, 5:].mean(axis=1, keepdims=True)  # now A @ 1_part = 0 on both parts
    return A @ rng.standard_normal((n, 3)), A, lap


def _tiny_lap():
    m = icosphere(1)
    return operators.huiskamp_laplacian(m.vertices, m.adjacency)


# ----------------------------------------------------------------------------------------------
# the table


def _solve(**kw):
    Y, A, L, X = _problem()
    Y, A = kw.pop("Y", Y), kw.pop("A", A)
    return solve(Y, A, **kw)


def _bad_adjacency(kind):
    m = icosphere(1)
    indptr, indices = (a.copy() for a in m.adjacency)
    if kind == "range":
        indices[3] = m.n_vertices + 5
    elif kind == "self":
        indices[0] = 0
    return indptr, indices


def _write(tmp, name, data: bytes):
    p = tmp / name
    p.write_bytes(data)
    return p


BAD_INPUTS = [
    # ---- solve(): arrays
    pytest.param(lambda: _solve(Y=_problem()[0].T), ValueError, "Y looks transposed", id="solve-Y-transposed"),
    pytest.param(lambda: _solve(Y=np.zeros((12, 0))), ValueError, "non-empty", id="solve-Y-empty"),
    pytest.param(lambda: _solve(Y=_problem()[0] + 1j), TypeError, "must be real", id="solve-Y-complex"),
    pytest.param(lambda: _solve(Y=np.full((12, 6), "x")), TypeError, "numeric", id="solve-Y-strings"),
    pytest.param(lambda: _solve(Y=_with(_problem()[0], (0, 0), np.nan)), ValueError, "Y contains NaN", id="solve-Y-nan"),
    pytest.param(lambda: _solve(A=_with(_problem()[1], (1, 1), np.inf)), ValueError, "A contains NaN", id="solve-A-inf"),
    pytest.param(lambda: _solve(A=_problem()[1][0]), ValueError, "A must be 2-D", id="solve-A-1d"),
    # ---- solve(): method and options
    pytest.param(lambda: _solve(method="tikhonov-3"), ValueError, "unknown method .*valid methods: .*tikhonov-2", id="solve-unknown-method"),
    pytest.param(lambda: _solve(method=["tsvd"]), TypeError, "method must be a name or an ecgi_jax.Method", id="solve-method-not-str"),
    pytest.param(lambda: _solve(method="tikhonov-0", lamda=1.0), TypeError, "valid options: lam", id="solve-unknown-option"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam=0.0), ValueError, "option lam must be a finite number > 0", id="solve-lam-zero"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam=-1.0), ValueError, "option lam must", id="solve-lam-negative"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam=float("nan")), ValueError, "option lam must", id="solve-lam-nan"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam="big"), TypeError, "option lam must be a real number", id="solve-lam-string"),
    pytest.param(lambda: _solve(method="tikhonov-0", lambdas=[1e-3, 0.0]), ValueError, "lambdas must contain only values > 0", id="solve-lambdas-zero"),
    pytest.param(lambda: _solve(method="tikhonov-0", lambdas=np.ones((2, 2))), ValueError, "1-D grid", id="solve-lambdas-2d"),
    pytest.param(lambda: _solve(method="spatiotemporal", laplacian=_problem()[2], dt=0.0), ValueError, "option dt must", id="solve-dt-zero"),
    pytest.param(lambda: _solve(method="spatiotemporal", laplacian=_problem()[2], lam_s=1.0, lam_t=-1.0), ValueError, "option lam_t must be a finite number >= 0", id="solve-lam_t-negative"),
    pytest.param(lambda: _solve(method="spatiotemporal", laplacian=_problem()[2], lams_s=[-1.0, 1.0]), ValueError, "lams_s must contain only values > 0", id="solve-lams_s-negative"),
    pytest.param(lambda: _solve(method="tikhonov-0", tau=0.0, lambda_rule="discrepancy"), ValueError, "option tau must", id="solve-tau-zero"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam=1.0, truth=np.zeros((6, 20))), ValueError, "truth has shape", id="solve-truth-transposed"),
    pytest.param(lambda: _solve(method="tikhonov-2", laplacian=_problem()[2][:5]), ValueError, "laplacian has shape", id="solve-laplacian-shape"),
    pytest.param(lambda: _solve(method="tikhonov-2", laplacian=_with(_problem()[2], (0, 0), np.nan)), ValueError, "laplacian contains NaN", id="solve-laplacian-nan"),
    pytest.param(lambda: _solve(method="tikhonov-1", gradient=np.ones((5, 7))), ValueError, "gradient has shape", id="solve-gradient-shape"),
    pytest.param(lambda: _solve(method="spatiotemporal", laplacian=_problem()[2], temporal=np.eye(5)), ValueError, "temporal has shape", id="solve-temporal-shape"),
    pytest.param(lambda: _solve(Y=_problem()[0][:, :2], method="spatiotemporal", laplacian=_problem()[2]), ValueError, "needs at least 3 time samples", id="solve-too-few-samples"),
    pytest.param(lambda: _solve(method="tsvd", rank=0), ValueError, "option rank must be an integer in", id="solve-tsvd-k-zero"),
    pytest.param(lambda: _solve(method="tikhonov-0", lambda_rule="magic"), ValueError, "valid rules", id="solve-unknown-rule"),
    pytest.param(lambda: _solve(method="tikhonov-2"), ValueError, "laplacian=", id="solve-missing-laplacian"),
    pytest.param(
        lambda: solve(*_disconnected_laplacian_problem()[:2], method="tikhonov-2", laplacian=_disconnected_laplacian_problem()[2]),
        ValueError, "disconnected parts", id="solve-shared-null-space-2-components",
    ),
    pytest.param(lambda: _solve(Y=_problem()[0][:, :4], method="eand-arn"), ValueError, "stencil_order=4 needs at least 5 time samples", id="solve-neural-too-few-samples"),
    pytest.param(lambda: _solve(method="eand-arn", stencil_order=3), ValueError, "stencil_order must be an even integer", id="solve-neural-odd-order"),
    pytest.param(lambda: _solve(method="eand-arn", learning_rate=0.0), ValueError, "option learning_rate must", id="solve-neural-zero-learning-rate"),
    pytest.param(lambda: _solve(method="eand-arn", vertices=np.zeros((20, 2))), ValueError, "vertices has shape", id="solve-vertices-shape"),
    pytest.param(lambda: _solve(method="eand-arn", ap_params=APParams(D=0.0)), ValueError, "parameter D must be finite and positive", id="solve-neural-zero-D"),
    # ---- Mesh
    pytest.param(lambda: Mesh(icosphere(1).vertices[:, :2], icosphere(1).triangles), ValueError, "shape \\(N, 3\\)", id="mesh-2d-vertices"),
    pytest.param(lambda: Mesh(_with(icosphere(1).vertices, (3, 0), np.nan), icosphere(1).triangles), ValueError, "NaN", id="mesh-nan-vertex"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, icosphere(1).triangles + 1), ValueError, "1-based", id="mesh-index-out-of-range"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, icosphere(1).triangles + 0.5), ValueError, "must be integers", id="mesh-float-indices"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, np.zeros((0, 3), int)), ValueError, "no triangles", id="mesh-no-triangles"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, np.vstack([icosphere(1).triangles, [[0, 0, 1]]])), ValueError, "repeated vertex", id="mesh-degenerate-repeated"),
    pytest.param(lambda: Mesh([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], [[0, 1, 2], [0, 1, 3]]), ValueError, "zero area", id="mesh-degenerate-collinear"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, np.vstack([icosphere(1).triangles, icosphere(1).triangles[:1, ::-1]])), ValueError, "duplicate triangle", id="mesh-duplicate-triangle"),
    pytest.param(lambda: Mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], [[0, 1, 2], [1, 0, 3], [0, 1, 4]]), ValueError, "non-manifold: 1 edge", id="mesh-nonmanifold-edge"),
    pytest.param(_bowtie, ValueError, "non-manifold at 1 vertex", id="mesh-nonmanifold-vertex"),
    pytest.param(lambda: Mesh(icosphere(1).vertices, np.vstack([icosphere(1).triangles[:1], icosphere(1).triangles[1:2, [1, 0, 2]], icosphere(1).triangles[2:]])), ValueError, "orientation is inconsistent", id="mesh-flipped-triangle"),
    pytest.param(lambda: Mesh(np.vstack([icosphere(1).vertices, [[9.0, 9, 9]]]), icosphere(1).triangles), ValueError, "unreferenced", id="mesh-unreferenced-vertex"),
    # ---- BEM transfer matrix
    pytest.param(lambda: forward.transfer_matrix(icosphere(1, 30.0, center=(200.0, 0, 0)), _spheres()[1]), ValueError, "heart must lie entirely inside the torso", id="bem-heart-outside"),
    pytest.param(lambda: forward.transfer_matrix(icosphere(1, 30.0, center=(75.0, 0, 0)), _spheres()[1]), ValueError, "inside the torso", id="bem-heart-pokes-through"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0].flipped(), _spheres()[1]), ValueError, "heart faces inward.*reorient_outward", id="bem-heart-inverted-normals"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0], _spheres()[1].flipped()), ValueError, "torso faces inward", id="bem-torso-inverted-normals"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0], _two_spheres_torso()), ValueError, "torso has 2 disconnected components", id="bem-torso-two-components"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0], _cracked_torso()), ValueError, "coincident vertices", id="bem-torso-duplicated-vertex"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0], Mesh(_spheres()[1].vertices, _spheres()[1].triangles[:-1])), ValueError, "must be a closed surface", id="bem-torso-open"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=[0, 10_000]), ValueError, "electrode indices must lie in", id="bem-electrode-out-of-range"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=[0.5, 2]), ValueError, "integer torso vertex", id="bem-electrode-float"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=[[0, 1]]), ValueError, "1-D array", id="bem-electrode-2d"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=[]), ValueError, "at least one electrode is needed", id="bem-electrodes-empty"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=np.zeros(42, bool)), ValueError, "at least one electrode is needed", id="bem-electrode-mask-empty"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), electrodes=[True, False, True]), ValueError, "got length 3, the torso has 42 vertices", id="bem-electrode-mask-length"),
    pytest.param(lambda: forward.mfs_transfer_matrix(*_spheres(), electrodes=np.ones(41, bool)), ValueError, "got length 41, the torso has 42", id="mfs-electrode-mask-length"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), reference="wct"), ValueError, "reference must be", id="bem-unknown-reference"),
    pytest.param(lambda: forward.transfer_matrix(*_spheres(), dtype=np.int32), ValueError, "floating dtype", id="bem-int-dtype"),
    pytest.param(lambda: forward.transfer_matrix(_spheres()[0].vertices, _spheres()[1]), TypeError, "heart must be an ecgi_jax.geometry.Mesh", id="bem-heart-not-mesh"),
    pytest.param(lambda: forward.winding_number(np.zeros((4, 2)), _spheres()[1]), ValueError, "shape \\(P, 3\\)", id="winding-points-shape"),
    pytest.param(lambda: forward.nearest_vertex_electrodes(_spheres()[1], [[np.nan, 0, 0]]), ValueError, "NaN", id="electrode-positions-nan"),
    pytest.param(lambda: forward.nearest_vertex_electrodes(_spheres()[1], [[0, 0, 0]], max_distance=5.0), ValueError, "farther than 5.0", id="electrode-too-far"),
    pytest.param(lambda: forward.select_electrodes(np.ones(5), [0]), ValueError, "2-D", id="select-electrodes-1d"),
    pytest.param(lambda: forward.select_electrodes(np.ones((5, 3)), []), ValueError, "at least one electrode is needed", id="select-electrodes-empty"),
    pytest.param(lambda: forward.select_electrodes(np.ones((5, 3)), np.ones(3, bool)), ValueError, "got length 3, the torso has 5 vertices", id="select-electrodes-mask-length"),
    # ---- noise
    pytest.param(lambda: forward.add_noise(jax.random.key(0), jnp.ones((3, 4)), -0.1), ValueError, "sigma must be a finite number >= 0", id="noise-negative-sigma"),
    pytest.param(lambda: forward.add_noise(jax.random.key(0), jnp.array([[1.0, jnp.nan]]), 0.1), ValueError, "Y contains NaN", id="noise-nan-signal"),
    pytest.param(lambda: forward.add_noise(jax.random.key(0), jnp.ones((3, 4), jnp.int32), 0.1), TypeError, "floating", id="noise-int-signal"),
    pytest.param(lambda: forward.add_noise_snr(jax.random.key(0), jnp.ones((3, 4)), float("inf")), ValueError, "snr_db must be a finite", id="noise-inf-snr"),
    # ---- operators
    pytest.param(lambda: operators.huiskamp_laplacian(icosphere(1).vertices[:-1], icosphere(1).adjacency), ValueError, "adjacency describes 42 nodes but there are 41", id="lap-adjacency-size"),
    pytest.param(lambda: operators.huiskamp_laplacian(icosphere(1).vertices, _bad_adjacency("range")), ValueError, "adjacency indices must lie", id="lap-adjacency-range"),
    pytest.param(lambda: operators.graph_laplacian(_bad_adjacency("self")), ValueError, "self-loop", id="lap-adjacency-self-loop"),
    pytest.param(lambda: operators.graph_laplacian((np.array([0, 1, 1, 2]), np.array([2, 0])), normalized=True), ValueError, "no neighbours", id="lap-normalized-isolated"),
    pytest.param(lambda: operators.huiskamp_laplacian(np.zeros((3, 3)), (np.array([0, 1, 2, 2]), np.array([1, 0]))), ValueError, "no neighbours", id="lap-huiskamp-isolated"),
    pytest.param(lambda: operators.edge_gradient(np.zeros((2, 3)), (np.array([0, 1, 2]), np.array([1, 0]))), ValueError, "zero edge length", id="grad-coincident-nodes"),
    pytest.param(lambda: operators.cotangent_laplacian(icosphere(1).vertices), TypeError, "must be an ecgi_jax.geometry.Mesh", id="cot-not-mesh"),
    pytest.param(lambda: operators.huiskamp_laplacian(icosphere(1).vertices, (np.zeros(3),)), ValueError, "pair \\(indptr, indices\\)", id="lap-adjacency-not-pair"),
    pytest.param(lambda: operators.time_derivative(jnp.ones((3, 4)), 0.1, order=4), ValueError, "needs at least 5 time samples", id="dt-too-few-samples"),
    pytest.param(lambda: operators.time_derivative(jnp.ones((3, 8)), -0.1), ValueError, "dt must be positive", id="dt-negative"),
    pytest.param(lambda: operators.difference_matrix(8, float("inf")), ValueError, "dt must be positive and finite", id="diffmat-dt-inf"),
    pytest.param(lambda: operators.difference_matrix(8.0, 0.1), TypeError, "n_samples must be an integer", id="diffmat-float-n"),
    pytest.param(lambda: operators.fd_weights([0, 1, 1], 1), ValueError, "distinct", id="fd-repeated-offsets"),
    pytest.param(lambda: operators.fd_weights([0, 1], 2), ValueError, "need more points", id="fd-derivative-too-high"),
    pytest.param(lambda: operators.stencil(1, 3), ValueError, "even integer", id="stencil-odd-order"),
    pytest.param(lambda: operators.stencil(3, 4), ValueError, "derivative must be 1 or 2", id="stencil-third-derivative"),
    # ---- electrophysiology
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), dt=float("nan")), ValueError, "dt must be positive", id="sim-dt-nan"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), n_samples=2.5), ValueError, "n_samples must be an integer", id="sim-float-samples"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), substeps=0), ValueError, "substeps must be an integer >= 1", id="sim-zero-substeps"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(41)), ValueError, "laplacian has shape", id="sim-size-mismatch"),
    pytest.param(lambda: simulate(jnp.full((42, 42), jnp.nan), jnp.zeros(42)), ValueError, "laplacian contains NaN", id="sim-nan-laplacian"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42, jnp.int32)), ValueError, "floating", id="sim-int-u0"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), stimulus=Stimulus(jnp.ones(5), jnp.zeros(1))), ValueError, "stimulus.mask has shape", id="sim-stimulus-shape"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), ap_params=APParams(D=-1.0)), ValueError, "D must be finite and positive", id="sim-negative-D"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), ap_params=APParams(a=1.5)), ValueError, "must lie in \\(0, 1\\)", id="sim-threshold-a"),
    pytest.param(lambda: simulate(_tiny_lap(), jnp.zeros(42), scheme="rk4"), ValueError, "scheme must be one of", id="sim-unknown-scheme"),
    # ---- synthetic cases
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 42)), _tiny_lap(), [2.5], n_samples=3), ValueError, "integer node indices", id="case-float-pacing"),
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 42)), _tiny_lap(), [42], n_samples=3), ValueError, "pacing nodes must be", id="case-pacing-out-of-range"),
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 41)), _tiny_lap(), [0], n_samples=3), ValueError, "A has shape", id="case-A-shape"),
    pytest.param(lambda: make_case(jax.random.key(0), _with(np.ones((4, 42)), (0, 0), np.inf), _tiny_lap(), [0], n_samples=3), ValueError, "A contains NaN", id="case-A-inf"),
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 42)), _tiny_lap(), [0], n_samples=3, sigma=-1.0), ValueError, "sigma must be", id="case-negative-sigma"),
    # ---- metrics
    pytest.param(lambda: metrics.relative_error(jnp.ones((3, 4)), jnp.ones((4, 3))), ValueError, "estimate has shape", id="metric-shape-mismatch"),
    pytest.param(lambda: metrics.activation_times(jnp.ones((3, 4)), 1.0, threshold=1.5), ValueError, "must lie in \\(0, 1\\)", id="metric-threshold"),
    pytest.param(lambda: metrics.activation_times(jnp.ones(4)), ValueError, "U must be \\(N nodes, T samples\\)", id="metric-1d-signal"),
    pytest.param(lambda: metrics.activation_times(jnp.ones((3, 4)), 0.0), ValueError, "dt must be positive", id="metric-dt-zero"),
    pytest.param(lambda: metrics.activation_times(jnp.ones((3, 4)), method="peak"), ValueError, "method must be", id="metric-unknown-method"),
    pytest.param(lambda: metrics.correlation(jnp.ones((3, 4)), jnp.ones((3, 4)), axis="nodes"), ValueError, "axis must be", id="metric-unknown-axis"),
    # ---- solve_batch: solve()'s checks for every problem, naming it; checkpoint folders
    pytest.param(lambda: __import__("ecgi_jax").solve_batch(np.zeros((2, 12, 0)), _problem()[1], method="tikhonov-0"), ValueError, "problem 0 of the batch: Y \\(12, 0\\) .* must be non-empty", id="batch-Y-no-samples"),
    pytest.param(lambda: __import__("ecgi_jax").solve_batch(np.zeros((2, 0, 6)), np.zeros((0, 20)), method="tikhonov-2", laplacian=_problem()[2]), ValueError, "problem 0 of the batch: .* must be non-empty", id="batch-no-leads"),
    pytest.param(lambda: __import__("ecgi_jax").solve_batch(np.stack([_problem()[0], _with(_problem()[0], (3, 2), np.nan)]), _problem()[1], method="tikhonov-0"), ValueError, "problem 1 of the batch: Y contains NaN", id="batch-Y-nan-names-problem"),
    pytest.param(lambda: _solve(method="eand-arn", laplacian=_problem()[2], init="random", steps=2, chunk=1, progress=False, checkpoint_dir=__file__), ValueError, "checkpoint_dir .*test_reliability.py is an existing file", id="solve-checkpoint-dir-is-a-file"),
    # ---- simulator: units slip, sign convention, divergence; neighbour-list adjacency (issue 20)
    pytest.param(lambda: simulate(operators.huiskamp_laplacian(icosphere(2, 0.02).vertices, icosphere(2).adjacency), jnp.zeros(162)), ValueError, "spacing of about 0.006 mm.*mesh.scaled\\(1000\\)", id="sim-mesh-in-metres"),
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 162)), operators.huiskamp_laplacian(icosphere(2, 0.02).vertices, icosphere(2).adjacency), [0], n_samples=3), ValueError, "spacing of about 0.006 mm.*millimetres", id="case-mesh-in-metres"),
    pytest.param(lambda: solve(np.ones((4, 6)), np.ones((4, 162)), method="ap-shooting", laplacian=operators.huiskamp_laplacian(icosphere(2, 0.02).vertices, icosphere(2).adjacency), vertices=icosphere(2, 0.02).vertices, adjacency=icosphere(2).adjacency), ValueError, "sub-steps per output sample.*spacing of about 0.006 mm", id="shooting-mesh-in-metres"),
    pytest.param(lambda: simulate(-_tiny_lap().todense(), jnp.zeros(42)), ValueError, "D - W .*negate it", id="sim-laplacian-d-minus-w"),
    pytest.param(lambda: make_case(jax.random.key(0), np.ones((4, 42)), -_tiny_lap().todense(), [0], n_samples=3), ValueError, "D - W .*negate it", id="case-laplacian-d-minus-w"),
    pytest.param(lambda: simulate(operators.huiskamp_laplacian(icosphere(1, 30.0).vertices, icosphere(1).adjacency), jnp.zeros(42).at[0].set(1.0), dt=1.0, n_samples=100, substeps=1), ValueError, "explicit integration diverged: sub-step h=1 .*substeps >= 50", id="sim-diverged"),
    pytest.param(lambda: operators.huiskamp_laplacian(icosphere(1).vertices, [[1.5, 2.0]] * 42), ValueError, "per-node neighbour lists .*entry 0", id="lap-neighbour-list-floats"),
    # ---- magnitudes float32 cannot square, penalties that regularize nothing (issue 20, items 4 and 6)
    pytest.param(lambda: _solve(Y=_problem()[0] * 1e30, method="tikhonov-0"), ValueError, "Y's largest magnitude is .*e\\+30.*Rescale Y", id="solve-Y-1e30"),
    pytest.param(lambda: _solve(Y=_problem()[0] * 1e-30, method="tikhonov-0"), ValueError, "Y's largest magnitude is .*e-30.*Rescale Y", id="solve-Y-1e-30"),
    pytest.param(lambda: _solve(A=_problem()[1] * 1e25, method="tikhonov-0"), ValueError, "A's largest magnitude", id="solve-A-1e25"),
    pytest.param(lambda: _solve(method="tikhonov-2", laplacian=np.zeros((20, 20))), ValueError, "laplacian has no nonzero entry", id="solve-laplacian-all-zero"),
    pytest.param(lambda: _solve(method="tikhonov-2", laplacian=operators.SparseOperator.from_scipy(scipy.sparse.csr_matrix((20, 20)))), ValueError, "laplacian has no nonzero entry", id="solve-laplacian-no-edges"),
    pytest.param(lambda: _solve(method="tikhonov-1", gradient=np.zeros((30, 20))), ValueError, "gradient has no nonzero entry", id="solve-gradient-all-zero"),
    pytest.param(lambda: solve(*_problem(n=40)[:2], method="tikhonov-2", laplacian=np.kron(np.eye(20), [[1.0, -1.0], [-1.0, 1.0]])), ValueError, "20 disconnected parts .*constant-blind on 20", id="solve-more-blind-parts-than-leads"),
    # ---- wrong-typed options: named, never coerced (issue 20, item 6)
    pytest.param(lambda: _solve(method="tikhonov-0", lam="0.1"), TypeError, "option lam must be a real number; got str", id="solve-lam-string"),
    pytest.param(lambda: _solve(method="tikhonov-0", lam=True), TypeError, "option lam must be a real number; got bool", id="solve-lam-bool"),
    pytest.param(lambda: _solve(method="eand-arn", laplacian=_problem()[2], steps="100"), TypeError, "option steps must be an integer; got str", id="solve-steps-string"),
    pytest.param(lambda: _solve(method="eand-arn", laplacian=_problem()[2], steps=1.5), TypeError, "option steps must be an integer; got float", id="solve-steps-float"),
    pytest.param(lambda: _solve(method="eand-arn", laplacian=_problem()[2], patience=-1), ValueError, "option patience must be an integer >= 0", id="solve-negative-patience"),
    pytest.param(lambda: _solve(method="eand-arn", laplacian=_problem()[2], key=0), TypeError, "option key must be a PRNG key", id="solve-int-key"),
    pytest.param(lambda: _solve(method="spatiotemporal", laplacian=_problem()[2], order=5), ValueError, "option order must be 0, 1 or 2", id="solve-spatial-order-5"),
    pytest.param(lambda: __import__("ecgi_jax").solve_batch(np.stack([_problem()[0]] * 2), _problem()[1], method="tikhonov-0", lam="0.1"), TypeError, "option lam must be a real number", id="batch-lam-string"),
    # ---- the non-crime generator, the waveform template, the other ionic models
    pytest.param(lambda: _noncrime().make_noncrime_case(0, None, 0), TypeError, "key must be a PRNG key.*got int", id="noncrime-int-key"),
    pytest.param(lambda: _noncrime().make_noncrime_case(jax.random.key(0), None, 0), TypeError, "geometry must be a NoncrimeGeometry", id="noncrime-no-geometry"),
    pytest.param(lambda: _noncrime().noncrime_geometry(n_heart=0), ValueError, "n_heart must be an integer >= 12; got 0", id="noncrime-zero-nodes"),
    pytest.param(lambda: _noncrime().noncrime_geometry(n_heart=200.5), ValueError, "n_heart must be an integer", id="noncrime-float-nodes"),
    pytest.param(lambda: _noncrime().noncrime_geometry(refine=0), ValueError, "refine must be an integer >= 1", id="noncrime-no-refinement"),
    pytest.param(lambda: _template_fit(tau0=jnp.zeros(5)), ValueError, "tau0 has shape \\(5,\\); expected \\(6,\\)", id="template-tau-shape"),
    pytest.param(lambda: _template_fit(A=jnp.ones((3, 6))), ValueError, "Y \\(m, t\\) and A \\(m, n\\) must share m", id="template-Y-A-mismatch"),
    pytest.param(lambda: _template_fit(L=jnp.zeros((1, 5))), ValueError, "L has shape \\(1, 5\\); expected \\(k, 6\\)", id="template-L-shape"),
    pytest.param(lambda: _template_fit(steps=0), ValueError, "steps must be an integer >= 1; got 0", id="template-zero-steps"),
    pytest.param(lambda: _template_fit(whiten=-1.0), ValueError, "whiten must be None or a number > 0", id="template-negative-whiten"),
    pytest.param(lambda: __import__("ecgi_jax.solvers.activation", fromlist=["x"]).initial_waveform(np.ones((6, 50)), np.zeros(5), np.arange(50) * 0.1, -5.0, 0.1, 20), ValueError, "U0 \\(n, t\\), tau0 \\(n,\\) and t \\(t,\\) must agree", id="template-initial-waveform-shapes"),
    pytest.param(lambda: __import__("ecgi_jax.solvers.activation", fromlist=["x"]).prior_whitener(jnp.eye(3), 0.0), ValueError, "eps must be > 0", id="template-whitener-zero-eps"),
    pytest.param(lambda: __import__("ecgi_jax.ep", fromlist=["x"]).cable_properties("mitchell-schaeffer"), TypeError, "model must be an ionic model instance .*IONIC_MODELS\\['mitchell-schaeffer'\\]", id="ionic-model-as-name"),
    pytest.param(lambda: __import__("ecgi_jax.ep", fromlist=["x"]).simulate_ionic(None, _tiny_lap(), [0]), TypeError, "model must be an ionic model instance", id="ionic-no-model"),
]


def _noncrime():
    from ecgi_jax import noncrime

    return noncrime


def _template_fit(**changes):
    from ecgi_jax.solvers.activation import fit_template

    t = jnp.arange(50, dtype=jnp.float32) * 0.1
    args = dict(Y=jnp.ones((4, 50)), A=jnp.ones((4, 6)), L=jnp.zeros((1, 6)), t=t, tau0=jnp.zeros(6), f0=jnp.zeros(20),
                s0=-5.0, h=0.1, lam=0.0, mu=1e-3)
    options = {k: changes.pop(k) for k in ("steps", "whiten") if k in changes}
    args.update(changes)
    return fit_template(*args.values(), **options)


@pytest.mark.parametrize("call, exc, match", BAD_INPUTS)
def test_bad_input_is_refused_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is exc  # exactly this type, not a subclass standing in for it


def test_null_space_check_does_not_refuse_solvable_problems():
    """The generalized null-space check must not fire when A separates the parts' constants."""
    Y, A, lap = _disconnected_laplacian_problem()
    A_ok = A + np.random.default_rng(2).standard_normal(A.shape)  # columns no longer sum to 0 per part
    sol = solve(A_ok @ np.ones((10, 2)), A_ok, method="tikhonov-2", laplacian=lap, lam=1e-3)
    np.testing.assert_allclose(sol.U, np.ones((10, 2)), atol=1e-2)
    # A node that no row of R touches is its own part: refused only if A cannot see it either.
    lap_iso = lap.copy()
    lap_iso[4, :] = lap_iso[:, 4] = 0.0
    A_blind = A_ok.copy()
    A_blind[:, 4] = 0.0
    with pytest.raises(ValueError, match="disconnected parts"):
        solve(A_ok @ np.ones((10, 2)), A_blind, method="tikhonov-2", laplacian=lap_iso, lam=1e-3)
    solve(A_ok @ np.ones((10, 2)), A_ok, method="tikhonov-2", laplacian=lap_iso, lam=1e-3)


# ----------------------------------------------------------------------------------------------
# files: corrupt / truncated inputs, atomic writes


def test_corrupt_and_truncated_files_are_clear_errors(tmp_path):
    good = save_mesh(tmp_path / "s.ply", icosphere(1, 10.0))
    raw = good.read_bytes()
    cases = [
        (lambda: load_mesh(_write(tmp_path, "trunc.ply", raw[: len(raw) // 2])), ValueError, "Could not read mesh .*trunc.ply"),
        (lambda: load_mesh(_write(tmp_path, "empty.obj", b"")), ValueError, "empty.obj"),
        (lambda: load_mesh(_write(tmp_path, "junk.stl", bytes(range(50)))), ValueError, "Could not read mesh .*junk.stl"),
        (lambda: load_mesh(_write(tmp_path, "lines.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\n")), ValueError, "no triangle cells"),
        (lambda: load_mesh(_write(tmp_path, "dup.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 3\n")), ValueError, "dup.obj is not a valid triangle surface: Mesh has 1 duplicate"),
        (lambda: load_mesh(tmp_path / "missing.ply"), FileNotFoundError, "No mesh file"),
        (lambda: load_mat(_write(tmp_path, "trunc.mat", _mat_bytes(tmp_path)[:100])), ValueError, "Could not read MATLAB file .*trunc.mat"),
        (lambda: load_mat(_write(tmp_path, "junk.mat", b"not a mat file at all" * 10)), ValueError, "Could not read MATLAB file"),
        (lambda: load_mat(tmp_path / "missing.mat"), FileNotFoundError, "No .mat file"),
        (lambda: datasets._npz(_write(tmp_path, "trunc.npz", _npz_bytes(tmp_path)[:60])), ValueError, "Could not read data file .*trunc.npz"),
        (lambda: datasets._npz(_pickled_npz(tmp_path)), ValueError, "pickled arrays are refused"),
        (lambda: datasets._npz(tmp_path / "missing.npz"), FileNotFoundError, "No data file"),
        (lambda: datasets.load_utah_sock490(tmp_path / "nowhere"), FileNotFoundError, "does not exist"),
        (lambda: save_mesh(tmp_path / "s.xyz", icosphere(1)), ValueError, "Cannot tell the mesh format"),
        (lambda: save_mesh(tmp_path / "s.vtk", icosphere(1), point_data={"u": np.ones(5)}), ValueError, "one value per vertex"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


def _mat_bytes(tmp_path):
    p = tmp_path / "ok.mat"
    scipy.io.savemat(p, {"x": np.arange(200.0)})
    return p.read_bytes()


def _npz_bytes(tmp_path):
    p = tmp_path / "ok.npz"
    np.savez(p, x=np.arange(200.0))
    return p.read_bytes()


def _pickled_npz(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))  # loading this needs pickle
    return p


def _write_pdl(d, n=6, rename=None, bad_shape=None):
    lap = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    files = {
        "laplacian.mat": {"lap": lap},
        "heart_coordinates.mat": {"heart_coordinates": np.random.default_rng(0).normal(size=(n, 3))},
        "normals.mat": {"normals": np.ones((n, 3))},
        "Z_BH.mat": {"Z_BH": np.ones((4, n))},
        "time.mat": {"time": np.arange(5.0)},
    }
    if rename:
        f, old, new = rename
        files[f] = {new: files[f].pop(old)}
    if bad_shape:
        f, var, value = bad_shape
        files[f] = {var: value}
    d.mkdir()
    for name, data in files.items():
        scipy.io.savemat(d / name, data)
    return d


def test_pdl_loader_names_the_file_and_the_problem(tmp_path):
    ok = datasets.load_pdl(_write_pdl(tmp_path / "ok"))
    assert ok.transfer.shape == (4, 6) and ok.laplacian.shape == (6, 6)
    with pytest.raises(ValueError, match="Z_BH.mat has no variable 'Z_BH' \\(found: \\['ZBH'\\]\\)"):
        datasets.load_pdl(_write_pdl(tmp_path / "renamed", rename=("Z_BH.mat", "Z_BH", "ZBH")))
    with pytest.raises(ValueError, match="'normals' in .*normals.mat has shape \\(6, 2\\); expected \\(6, 3\\)"):
        datasets.load_pdl(_write_pdl(tmp_path / "shape", bad_shape=("normals.mat", "normals", np.ones((6, 2)))))
    with pytest.raises(ValueError, match="'Z_BH' in .*has shape \\(4, 5\\); expected \\('any', 6\\)"):
        datasets.load_pdl(_write_pdl(tmp_path / "zbh", bad_shape=("Z_BH.mat", "Z_BH", np.ones((4, 5)))))
    d = _write_pdl(tmp_path / "trunc")
    (d / "time.mat").write_bytes((d / "time.mat").read_bytes()[:40])
    with pytest.raises(ValueError, match="time.mat"):
        datasets.load_pdl(d)


def test_npz_mesh_errors_name_the_surface(tmp_path):
    t = icosphere(1)
    tri = np.vstack([t.triangles, t.triangles[:1]])  # a duplicate triangle in the tank
    np.savez(tmp_path / "z.npz", tank_pts=t.vertices, tank_tri=tri)
    with pytest.raises(ValueError, match="tank surface in .*z.npz is not a valid mesh: Mesh has 1 duplicate"):
        datasets._mesh(datasets._npz(tmp_path / "z.npz")["tank_pts"], tri, tmp_path / "z.npz", "tank")


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out" / "mesh.vtk"
    save_mesh(target, icosphere(1, 5.0))
    before = target.read_bytes()

    def half_then_fail(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["mesh.vtk"]  # no temp file left
    # save_mesh goes through the same path: a writer that dies half-way leaves nothing behind.
    import meshio

    def dying_write(path, *args, **kwargs):
        open(path, "wb").write(b"# vtk DataFile Version 4.2\nhalf")
        raise OSError("disk full")

    real = meshio.write
    meshio.write = dying_write
    try:
        with pytest.raises(OSError, match="disk full"):
            save_mesh(tmp_path / "out" / "new.vtk", icosphere(1, 5.0))
        with pytest.raises(OSError, match="disk full"):
            save_mesh(target, icosphere(2, 5.0))
    finally:
        meshio.write = real
    assert sorted(p.name for p in target.parent.iterdir()) == ["mesh.vtk"]
    assert target.read_bytes() == before
    assert load_mesh(target).n_vertices == 42


# ----------------------------------------------------------------------------------------------
# numerical faults


def _classical_runs(Y, A, L):
    return {
        "tikhonov-0": solve(Y, A, method="tikhonov-0", lam=1e-2).U,
        "tikhonov-2": solve(Y, A, method="tikhonov-2", laplacian=L, lam=1e-2).U,
        "tsvd": solve(Y, A, method="tsvd", rank=8).U,
        "spatiotemporal": solve(Y, A, method="spatiotemporal", laplacian=L, lam_s=1e-2, lam_t=1e-3).U,
    }


def test_float32_and_float64_agree_on_classical_solvers(x64):
    """Same small problem (M=12, N=20, T=6; A's singular values decay ~0.85^k) in both precisions.

    Tolerance: relative Frobenius difference < 2e-4 — float32 round-off amplified by the
    regularized inverse (condition number of the regularized operators here is ~1e3).
    """
    Y, A, L, _ = _problem()
    out64 = _classical_runs(Y, A, L)
    out32 = _classical_runs(*(np.asarray(x, np.float32) for x in (Y, A, L)))
    for name in out64:
        assert out64[name].dtype == jnp.float64 and out32[name].dtype == jnp.float32, name
        rel = float(jnp.linalg.norm(out32[name].astype(jnp.float64) - out64[name]) / jnp.linalg.norm(out64[name]))
        assert rel < 2e-4, (name, rel)


def _ill_conditioned(m=30, n=25, cond=1e8, seed=0):
    """A with singular values log-spaced from 1 to 1/cond (built from random orthogonal factors)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.logspace(0, -np.log10(cond), n)
    A = U[:, :n] @ np.diag(s) @ V.T
    X = np.sin(np.linspace(0, 3, n))[:, None] * np.cos(np.linspace(0, 2, 8))[None]
    Y = A @ X + 1e-4 * rng.standard_normal((m, 8))
    return Y, A, X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ill_conditioned_transfer_matrix_gives_finite_solutions(dtype, x64):
    Y, A, X = _ill_conditioned()
    assert np.linalg.cond(A) == pytest.approx(1e8, rel=1e-3)
    Y, A = Y.astype(dtype), A.astype(dtype)
    L = 2 * np.eye(25) - np.eye(25, k=1) - np.eye(25, k=-1)
    for method, kw in [
        ("tikhonov-0", {}), ("tikhonov-2", {"laplacian": L.astype(dtype)}), ("tsvd", {}),
        ("tikhonov-0", {"lam": 1e-12}), ("spatiotemporal", {"laplacian": L.astype(dtype)}),
    ]:
        sol = solve(Y, A, method=method, **kw)
        assert sol.U.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(sol.U))), (method, kw)
        if "lam" not in kw:
            # A λ rule picked the regularization: no noise blow-up (the solution is not larger
            # than the truth) and the data are fitted to about the noise level (‖noise‖ ≈ 1.5e-3).
            U = np.asarray(sol.U, np.float64)
            assert np.linalg.norm(U) < 1.5 * np.linalg.norm(X), (method, dtype)
            assert np.linalg.norm(A.astype(np.float64) @ U - Y) < 0.05, (method, dtype)


def test_training_guard_skips_non_finite_steps():
    """make_step: a non-finite loss freezes the state (no update applied) and sets ``diverged``."""
    import optax

    from ecgi_jax.solvers.neural._train import TrainState, make_step

    def loss_fn(params, problem, t_idx):
        total = jnp.sum((params["w"] - problem) ** 2)
        return total, total[None]

    opt = optax.sgd(0.1)
    step = make_step(loss_fn, opt, lambda key: jnp.zeros((), jnp.int32))
    params = {"w": jnp.ones(3)}
    state = TrainState.create(params, opt)
    good = state.params  # the loss is finite here; the step below moves on to new parameters
    state, _ = step(state, jnp.zeros(3), jax.random.key(0))
    assert int(state.step) == 1 and not bool(state.diverged)
    state, terms = step(state, jnp.array([jnp.inf, 0.0, 0.0]), jax.random.key(1))  # data making the loss inf
    assert bool(state.diverged) and int(state.step) == 1 and not np.isfinite(terms[0])
    np.testing.assert_array_equal(state.params["w"], good["w"])
    state, _ = step(state, jnp.zeros(3), jax.random.key(2))  # stays stopped even on good data
    assert int(state.step) == 1
    np.testing.assert_array_equal(state.params["w"], good["w"])


def test_training_guard_keeps_parameters_with_a_finite_loss():
    import optax

    from ecgi_jax.solvers.neural._train import TrainState, make_step

    def loss_fn(params, problem, t_idx):
        total = jnp.sum(params["w"] ** 2)  # finite at w = 1; 1e60 (inf in float32) after one step
        return total, total[None]

    opt = optax.sgd(1e30)
    step = make_step(loss_fn, opt, lambda key: jnp.zeros((), jnp.int32))
    params = {"w": jnp.ones(3)}
    state = TrainState.create(params, opt)
    for i in range(3):
        state, _ = step(state, None, jax.random.key(i))
    assert bool(state.diverged)
    assert np.isfinite(float(loss_fn(state.params, None, 0)[0]))


# ----------------------------------------------------------------------------------------------
# reproducibility and a neural run fed non-finite-loss data


def test_classical_solvers_are_bit_reproducible():
    Y, A, L, _ = _problem()
    first = _classical_runs(*(np.asarray(x, np.float32) for x in (Y, A, L)))
    again = _classical_runs(*(np.asarray(x, np.float32) for x in (Y, A, L)))
    gcv1 = solve(Y, A, method="tikhonov-2", laplacian=L)
    gcv2 = solve(Y, A, method="tikhonov-2", laplacian=L)
    for name in first:
        np.testing.assert_array_equal(np.asarray(first[name]), np.asarray(again[name]), err_msg=name)
    np.testing.assert_array_equal(np.asarray(gcv1.U), np.asarray(gcv2.U))
    assert gcv1.diagnostics["lam"] == gcv2.diagnostics["lam"]


@functools.lru_cache(maxsize=None)
def _tiny_neural():
    mesh = icosphere(1).scaled(20.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    A = np.random.default_rng(0).normal(size=(10, mesh.n_vertices)).astype(np.float32)
    U, _ = simulate(lap, jnp.zeros(mesh.n_vertices).at[3].set(1.0), n_samples=12)
    return np.asarray(A @ np.asarray(U)), A, lap


_NEURAL = dict(init="random", width=8, n_blocks=1, steps=10, chunk=5, patience=0, progress=False)


@pytest.mark.slow
def test_eand_arn_is_bit_reproducible_and_stops_on_a_non_finite_loss():
    Y, A, lap = _tiny_neural()
    runs = [solve(Y, A, method="eand-arn", laplacian=lap, key=jax.random.key(7), **_NEURAL) for _ in range(2)]
    assert runs[0].diagnostics["stopped"] == "completed" and runs[0].diagnostics["steps"] == 10
    np.testing.assert_array_equal(np.asarray(runs[0].U), np.asarray(runs[1].U))
    np.testing.assert_array_equal(np.asarray(runs[0].V), np.asarray(runs[1].V))
    assert runs[0].history["loss"] == runs[1].history["loss"]
    # A step of 1e30 blows the network up after its first update: training stops there, the last
    # finite fields come back and the diagnostics say why. (Data of 1e30, which used to provoke
    # this, are now refused at the door: solve-Y-1e30.)
    with pytest.warns(RuntimeWarning, match="diverged"):
        blown = solve(Y, A, method="eand-arn", laplacian=lap, key=jax.random.key(7), **{**_NEURAL, "learning_rate": 1e30})
    assert blown.diagnostics["stopped"] == "diverged" and blown.diagnostics["steps"] == 1
    assert bool(jnp.all(jnp.isfinite(blown.U)))


def test_atomic_write_gives_ordinary_file_permissions(tmp_path):
    import os

    from ecgi_jax.geometry import atomic_write

    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "x.txt", lambda p: p.write_text("hi"))
    finally:
        os.umask(umask)
    assert path.read_text() == "hi" and (path.stat().st_mode & 0o777) == 0o644
