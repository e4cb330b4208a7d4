"""Hostile inputs at the front doors, generated rather than hand-listed: every registered method of
:func:`ecgi_jax.solve` against every defect of ``Y`` and ``A``, and every one of its typed options
(flags, numbers, string choices) given a value of the wrong kind. Each must be refused before any
work is done, with the exception type and a message naming the input. ``test_reliability.py``
holds the hand-written cases (meshes, files, checkpoints, operators, the simulator).

The option sweep is built from the methods' own signatures (``method_options``), so a method or
an option added later is probed without editing this file.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest

import ecgi_jax  # noqa: F401  (registers every method)
from ecgi_jax import operators, solve, solve_batch
from ecgi_jax._registry import METHODS as _REGISTRY, get_method as _get, method_options
from ecgi_jax._solve import _option_kind
from ecgi_jax.geometry import icosphere

# Options that are arrays, operators, keys, paths or structured values: the array and operator
# checks of test_reliability.py cover them.
_NOT_SCALAR = {"truth", "key", "laplacian", "vertices", "adjacency", "gradient", "temporal", "checkpoint_dir", "ap_params",
               "start", "weights", "prior_sd", "tau0", "width_start", "lambdas", "lams_s", "lams_t"}
# Where a wrong value slips through the door, a method would run in full: keep those runs tiny.
_FAST = {"steps": 2, "chunk": 1, "progress": False}


@functools.lru_cache(maxsize=None)
def _kit():
    mesh = icosphere(1, 30.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((16, mesh.n_vertices)) / np.sqrt(mesh.n_vertices)
    Y = A @ rng.standard_normal((mesh.n_vertices, 12))
    return Y, A, dict(laplacian=lap, vertices=mesh.vertices, adjacency=mesh.adjacency, dt=0.1)


def _kwargs(method):
    opts = method_options(method)
    _, _, ops = _kit()
    return {k: v for k, v in {**ops, **_FAST}.items() if k in opts}


def _wrong_value(method, name):
    """A wrong value for a scalar option (or None where the option has no scalar kind), and the
    exception type it must raise."""
    p = inspect.signature(_get(method)).parameters[name]
    kind = _option_kind(p)
    if kind == "bool":
        return "yes", TypeError
    if kind == "number":
        return "abc", (TypeError, ValueError)
    if isinstance(p.default, str):
        return "no-such-choice", ValueError
    return None, None


def _option_cases():
    cases = []
    for method in sorted(_REGISTRY):
        for name in method_options(method):
            if name in _NOT_SCALAR:
                continue
            value, exc = _wrong_value(method, name)
            if value is not None:
                cases.append(pytest.param(method, name, value, exc, id=f"{method}-{name}"))
    return cases


OPTION_CASES = _option_cases()


def _with(x, idx, value):
    out = np.array(x, dtype=np.result_type(x, type(value)))
    out[idx] = value
    return out


# name -> (Y, A) from the valid pair, exception, what the message must say
ARRAY_DEFECTS = {
    "Y-nan": (lambda Y, A: (_with(Y, (0, 0), np.nan), A), ValueError, "Y contains NaN"),
    "Y-inf": (lambda Y, A: (_with(Y, (1, 2), np.inf), A), ValueError, "Y contains NaN or Inf"),
    "A-nan": (lambda Y, A: (Y, _with(A, (0, 0), np.nan)), ValueError, "A contains NaN"),
    "Y-1d": (lambda Y, A: (Y[0], A), ValueError, "Y must be 2-D"),
    "Y-3d": (lambda Y, A: (Y[None], A), ValueError, "Y must be 2-D"),
    "A-1d": (lambda Y, A: (Y, A[0]), ValueError, "A must be 2-D"),
    "Y-no-samples": (lambda Y, A: (Y[:, :0], A), ValueError, "non-empty"),
    "A-fewer-rows": (lambda Y, A: (Y, A[:-1]), ValueError, "both must have M rows"),
    "Y-complex": (lambda Y, A: (Y + 1j, A), TypeError, "Y must be real"),
    "Y-strings": (lambda Y, A: (np.full(Y.shape, "x"), A), TypeError, "Y must be (a )?numeric"),
}
ARRAY_CASES = [
    pytest.param(method, defect, id=f"{method}-{defect}") for method in sorted(_REGISTRY) for defect in ARRAY_DEFECTS
]


def test_the_sweeps_cover_every_method_and_are_large():
    assert {c.values[0] for c in OPTION_CASES} == set(_REGISTRY)
    assert len(OPTION_CASES) >= 100 and len(ARRAY_CASES) >= 10 * len(_REGISTRY)


@pytest.mark.parametrize("method, name, value, exc", OPTION_CASES)
def test_wrong_kind_of_option_is_refused_naming_it(method, name, value, exc):
    Y, A, _ = _kit()
    with pytest.raises(exc, match=name):
        solve(Y, A, method=method, **{**_kwargs(method), name: value})


@pytest.mark.parametrize("method, defect", ARRAY_CASES)
def test_defective_data_are_refused_naming_the_array(method, defect):
    Y, A, _ = _kit()
    make, exc, match = ARRAY_DEFECTS[defect]
    Yb, Ab = make(Y, A)
    with pytest.raises(exc, match=match):
        solve(Yb, Ab, method=method, **_kwargs(method))


@pytest.mark.parametrize("name, value", [("progress", "False"), ("fit_D", 1), ("steps", 2.0), ("learning_rate", "1e-3")])
def test_solve_batch_shares_the_option_type_checks(name, value):
    Y, A, ops = _kit()
    with pytest.raises((TypeError, ValueError), match=name):
        solve_batch(np.stack([Y, Y]), A, method="eand-arn", laplacian=ops["laplacian"], dt=0.1, steps=2, chunk=1,
                    progress=False, start="tikhonov", **{name: value})


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_data_are_solved_in_float32(dtype):
    """XLA's linear algebra has no half-precision kernels: such inputs are computed in float32,
    and the answer matches the float32 solve of the same (rounded) numbers."""
    import jax.numpy as jnp

    Y, A, _ = _kit()
    Yh, Ah = jnp.asarray(Y, dtype), jnp.asarray(A, dtype)
    half = solve(Yh, Ah, method="tikhonov-0", lam=1e-2)
    single = solve(np.asarray(Yh, np.float32), np.asarray(Ah, np.float32), method="tikhonov-0", lam=1e-2)
    assert half.potentials.dtype == jnp.float32
    np.testing.assert_allclose(half.potentials, single.potentials, rtol=1e-5, atol=1e-6)
