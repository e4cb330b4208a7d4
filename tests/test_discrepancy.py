"""EAND-ARN's model discrepancy in the reaction term (``reaction_discrepancy=d``): the AP residual
less its best fit by a polynomial of degree ``d`` in (u, v)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ecgi_jax.ep import APParams, APProblem, simulate
from ecgi_jax.solvers.neural import EANDARNConfig, make_inputs, physics_loss, without_reaction_discrepancy
from ecgi_jax.solvers.neural._eand_arn import build_model

from conftest import assert_gradient_matches_finite_differences, sphere_heart, zero_output_network  # tests/ is on sys.path

N_T = 48


@pytest.fixture(scope="module")
def beat():
    """A sphere heart's AP beat, paced at one node (the nominal model, k = 8)."""
    mesh, lap, A = sphere_heart()
    U, V = simulate(lap, jnp.zeros(mesh.n_vertices).at[7].set(1.0), n_samples=N_T)
    return mesh, lap, A, U, V


def _zero_network_loss(mesh, lap, A, U, V, ap: APParams, degree: int, t_idx=None):
    """The loss terms of a start (U, V) under a zero-output network (training's first step)."""
    graphdef, (params, rest) = zero_output_network(mesh.n_vertices, A.shape[0])
    Y = A @ U
    verts = jnp.asarray(mesh.vertices, Y.dtype)
    problem = APProblem(Y, A, lap.astype(Y.dtype), verts, ap, jnp.asarray(0.1, Y.dtype), make_inputs(Y, verts, 0.1, U, V))
    t_idx = jnp.arange(N_T) if t_idx is None else t_idx
    return physics_loss((params, rest), graphdef, problem, t_idx, mode="body", stencil_order=4, derivative="numerical",
                        reaction_discrepancy=degree)


def test_projection_removes_exactly_the_polynomials_of_the_state(x64):
    """r = P(u, v) + s with P of degree 3 and s orthogonal to every such polynomial: s is what is left."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    U = jax.random.uniform(k1, (40, 25), jnp.float64)
    V = 2.0 * jax.random.uniform(k2, (40, 25), jnp.float64)
    u, v = U.ravel(), V.ravel()
    poly = 0.3 - 1.2 * u + 0.7 * v + 2.0 * u * v - 4.0 * u**3 + 0.5 * v**2 * u
    Phi = jnp.stack([u**i * v**j for i in range(4) for j in range(4 - i)], axis=1)
    s = 0.01 * jax.random.normal(k3, u.shape, jnp.float64)
    s = s - Phi @ jnp.linalg.lstsq(Phi, s)[0]
    r = (poly + s).reshape(U.shape)
    left, left_v = without_reaction_discrepancy((r, 2.0 * r), U, V, 3)
    np.testing.assert_allclose(left, s.reshape(U.shape), atol=1e-10)
    np.testing.assert_allclose(left_v, 2.0 * s.reshape(U.shape), atol=1e-10)  # each residual its own fit
    # A quadratic cannot take the cubic part: degree 2 leaves more than s.
    assert float(jnp.sum(without_reaction_discrepancy((r,), U, V, 2)[0] ** 2)) > 10 * float(jnp.sum(s**2))


@pytest.mark.parametrize("windows", [False, True])
def test_another_reaction_strength_is_absorbed(beat, windows):
    """A beat of k = 8 judged by a model with k = 6: the u-residual differs by the cubic
    2·u(1 − u)(u − a), which degree 3 absorbs (left: stencil error, as at the true k), and degree 0
    (the paper's loss) does not."""
    mesh, lap, A, U, V = beat
    t_idx = None
    if windows:  # residuals at window centres only: the basis must be taken at those states too
        t_idx = jnp.array([[c - 2, c - 1, c, c + 1, c + 2] for c in (5, 12, 20, 30, 41)])
    wrong_k = dataclasses.replace(APParams(), k=6.0)
    plain = _zero_network_loss(mesh, lap, A, U, V, wrong_k, 0, t_idx)
    absorbed = _zero_network_loss(mesh, lap, A, U, V, wrong_k, 3, t_idx)
    nominal = _zero_network_loss(mesh, lap, A, U, V, APParams(), 0, t_idx)
    assert float(absorbed[1]) <= 1.01 * float(nominal[1]) + 1e-6
    assert float(plain[1]) > 20 * float(absorbed[1])
    np.testing.assert_allclose(absorbed[0], plain[0])  # the data term is untouched


def test_gradient_through_the_projection_matches_finite_differences(beat, x64):
    mesh, lap, A, U, V = beat
    A, U, V = (jnp.asarray(x, jnp.float64) for x in (A, U, V))
    Y = A @ U
    verts = jnp.asarray(mesh.vertices, jnp.float64)
    problem = APProblem(Y, A, lap.astype(jnp.float64), verts, APParams(), jnp.asarray(0.1, jnp.float64),
                        make_inputs(Y, verts, 0.1, U, V))
    model = build_model(EANDARNConfig(width=8, n_blocks=2), mesh.n_vertices, A.shape[0], jax.random.key(2))
    for b in model.blocks:
        b.alpha[...] = jnp.asarray(0.3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
    rest = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), rest)

    def total(p):
        terms = physics_loss((p, rest), graphdef, problem, jnp.arange(N_T), mode="body", stencil_order=4,
                             derivative="numerical", reaction_discrepancy=2)
        return terms[0] + terms[1] + terms[2]

    assert_gradient_matches_finite_differences(total, params)


@pytest.mark.parametrize("bad", [-1, 5, 1.5, True, "3"])
def test_bad_degree_is_refused(bad):
    with pytest.raises(ValueError, match="discrepancy"):
        EANDARNConfig(reaction_discrepancy=bad).validate()
