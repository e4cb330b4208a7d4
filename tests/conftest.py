"""Shared fixtures. Real-data tests skip, with the reason, when ../shared is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("ECGI_SHARED", REPO.parent / "shared"))


def _data(name: str) -> Path:
    d = shared_dir() / "data" / name
    if not d.is_dir():
        pytest.skip(f"real data set {name!r} not found at {d} (set ECGI_SHARED to the shared/ folder)")
    return d


@pytest.fixture(scope="session")
def pdl_dir() -> Path:
    return _data("pdl-heart-torso")


@pytest.fixture(scope="session")
def sock490_dir() -> Path:
    return _data("pulse-utah-sock490")


@pytest.fixture(scope="session")
def fwdinv_dir() -> Path:
    return _data("fwdinvtoolkit")


@pytest.fixture
def x64():
    """Run a test with float64 enabled, restoring the previous setting afterwards."""
    import jax

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def sphere_heart(zero_mean_leads: bool = True):
    """A 162-node sphere 'heart' (radius 20), its Huiskamp Laplacian and a smooth 30-lead transfer
    matrix (1/distance to leads on a sphere of radius 60; zero mean over the heart nodes per lead
    with ``zero_mean_leads``, like a referenced torso; else constants stay visible)."""
    import jax.numpy as jnp

    from ecgi_jax import geometry, operators

    mesh = geometry.icosphere(2).scaled(20.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    rng = np.random.default_rng(0)
    leads = rng.normal(size=(30, 3))
    leads = 60.0 * leads / np.linalg.norm(leads, axis=1, keepdims=True)
    inv = 1.0 / np.linalg.norm(leads[:, None, :] - mesh.vertices[None], axis=-1)
    if zero_mean_leads:
        inv = inv - inv.mean(axis=1, keepdims=True)
    return mesh, lap, jnp.asarray(40.0 * inv, jnp.float32)


def assert_gradient_matches_finite_differences(f, params, *, key: int = 3, eps: float = 1e-6, rtol: float = 1e-6):
    """``jax.grad(f)`` against a central difference of ``f`` along one random unit direction of
    the flattened ``params`` (float64: call under the ``x64`` fixture)."""
    import jax
    import jax.flatten_util

    flat, unravel = jax.flatten_util.ravel_pytree(params)
    g = jax.flatten_util.ravel_pytree(jax.grad(f)(params))[0]
    direction = jax.random.normal(jax.random.key(key), flat.shape, flat.dtype)
    direction = direction / jax.numpy.linalg.norm(direction)
    fd = (f(unravel(flat + eps * direction)) - f(unravel(flat - eps * direction))) / (2 * eps)
    np.testing.assert_allclose(float(g @ direction), float(fd), rtol=rtol, atol=1e-12)


def zero_output_network(n_nodes: int, n_leads: int):
    """``(graphdef, (params, rest))`` of a small EAND-ARN network whose head outputs zero: the fields
    it gives are its start's exactly (training's first step), to score a start with the loss."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from ecgi_jax.solvers.neural import EANDARNConfig
    from ecgi_jax.solvers.neural._eand_arn import build_model

    model = build_model(EANDARNConfig(width=8, n_blocks=1), n_nodes, n_leads, jax.random.key(0))
    model.head.kernel[...] = jnp.zeros_like(model.head.kernel[...])
    model.head.bias[...] = jnp.zeros_like(model.head.bias[...])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, (params, rest)


_SESSION_COMPILATION_CACHE: list[str] = []  # the folder this session made, to remove at its end


def _share_compiled_programs(jax) -> None:
    """One XLA compilation cache for the session's processes: both xdist workers and the tests'
    subprocesses compile many of the same programs, and the suite's time is mostly compilation
    (measured on 2 cores: 607 s without, 481 s with). Set in the environment before the workers
    start, so they and every child inherit it; a cache the user configured is left alone."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import tempfile

    folder = tempfile.mkdtemp(prefix="ecgi_jax_test_xla_cache_")
    _SESSION_COMPILATION_CACHE.append(folder)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=folder, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    # jax is already imported here (it reads these variables at import): configure it as well.
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    import shutil

    for folder in _SESSION_COMPILATION_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config):
    import jax

    _share_compiled_programs(jax)
    # As diffrax's conftest: broadcasting must be written out ([:, None]), never implied by
    # mismatched ranks, so a shape slip fails loudly instead of broadcasting silently.
    jax.config.update("jax_numpy_rank_promotion", "raise")
    # And dtypes are never mixed implicitly (an int32 index times a float, float32 with float64):
    # a silent promotion to float64 or a weak-typed surprise fails here instead. optax's updates
    # are let off (solvers/_optax.py); the front door promotes inputs on purpose (_working_precision).
    jax.config.update("jax_numpy_dtype_promotion", "strict")
