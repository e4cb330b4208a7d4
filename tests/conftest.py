"""Shared fixtures. Real-data tests skip, with the reason, when ../shared is absent."""

from __future__ import annotations

import os
from pathlib import Path

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
