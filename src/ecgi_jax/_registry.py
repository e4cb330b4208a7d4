"""The method registry: :class:`Solution`, :class:`Result` and the table of registered methods.

A leaf module (it imports no other part of the package): every solver module registers its
methods here, and the front door (:mod:`ecgi_jax._solve`, :mod:`ecgi_jax._batch`) looks them up,
so solvers never import the front door.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Any, Callable

import jax.numpy as jnp

__all__ = [
    "Result", "SolveError", "Solution", "result_of", "register_method", "get_method", "option_parameters",
    "method_options", "methods_table", "METHODS", "register_batch_method", "batch_method", "TIME_DIAGNOSTICS",
]

#: Diagnostics that are times (AP units as the methods report them): ``solve`` gives them in the
#: recordings' unit when its ``heart`` says they were sampled in ms or s.
TIME_DIAGNOSTICS = ("pacing_onset", "pacing_onset_std", "activation_times", "template_activation_times")


class Result(str, enum.Enum):
    """How a method ended, the same for every method (``Solution.result``).

    ``SUCCESS``: it ran to its own end (a classical solve, a stopping rule met, the training
    budget or a plateau). ``NOT_CONVERGED``: an iterative method (ADMM, IRLS, Levenberg–Marquardt)
    used up ``max_iter`` before its stopping rule held; the last iterate is returned.
    ``DIVERGED``: training met a non-finite loss or gradient; the last finite state is returned.
    ``NON_FINITE``: the returned potentials hold NaN or Inf.
    """

    SUCCESS = "success"
    NOT_CONVERGED = "not-converged"
    DIVERGED = "diverged"
    NON_FINITE = "non-finite"


class SolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when the result is not :attr:`Result.SUCCESS`; the
    solution is in ``.solution``."""

    def __init__(self, message: str, solution: "Solution"):
        super().__init__(message)
        self.solution = solution


def result_of(potentials, diagnostics: dict) -> Result:
    """The :class:`Result` of a method's output, from its potentials and the diagnostics every
    iterative method reports (``"stopped"``: training; ``"converged"``: ADMM, IRLS, LM)."""
    if not bool(jnp.all(jnp.isfinite(jnp.asarray(potentials)))):
        return Result.NON_FINITE
    if diagnostics.get("stopped") == "diverged":
        return Result.DIVERGED
    if diagnostics.get("converged") is False:
        return Result.NOT_CONVERGED
    return Result.SUCCESS


@dataclasses.dataclass(frozen=True)
class Solution:
    """Result of :func:`solve`.

    Attributes:
        potentials: ``(N, T)`` reconstructed heart potentials (alias :attr:`U`).
        method: the registered method name.
        diagnostics: method-specific facts: for classical methods the chosen λ (``"lam"``), the
            rule and the curves it was chosen from, residual norm, and ``"time_s"`` (wall-clock
            seconds of the whole call, added by :func:`solve`).
        options: every option the method ran with, defaults included.
        recovery: ``(N, T)`` recovery variable for methods that estimate it (alias :attr:`V`),
            ``None`` for classical methods.
        history: training history for iterative/neural methods, ``None`` for classical methods.
        result: how the method ended (:class:`Result`; set by :func:`solve`), the one field to
            check in every method instead of its own diagnostics.
    """

    potentials: Any
    method: str
    diagnostics: dict
    options: dict
    recovery: Any = None
    history: Any = None
    result: Result = Result.SUCCESS

    @property
    def U(self):
        return self.potentials

    @property
    def V(self):
        return self.recovery


_REGISTRY: dict[str, tuple[Callable[..., Solution], str]] = {}
METHODS: dict[str, str] = {}
"""Registered method names → one-line descriptions (updated by :func:`register_method`)."""


def register_method(name: str, fn: Callable[..., Solution], description: str, *, overwrite: bool = True) -> None:
    """Register ``fn(Y, A, **options) -> Solution`` under ``name`` for :func:`solve`.

    Options are checked against ``fn``'s keyword parameters (a ``**kwargs`` parameter disables the
    check). Re-registering a name replaces it unless ``overwrite=False``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("method name must be a non-empty string.")
    if not callable(fn):
        raise TypeError(f"fn for method {name!r} must be callable.")
    if not overwrite and name in _REGISTRY:
        raise ValueError(f"method {name!r} is already registered.")
    _REGISTRY[name] = (fn, str(description))
    METHODS[name] = str(description)


def option_parameters(name: str) -> list[inspect.Parameter]:
    """A registered method's parameters after ``(Y, A)``: its options."""
    return list(inspect.signature(get_method(name)).parameters.values())[2:]


def method_options(name: str) -> dict[str, Any]:
    """The options of a registered method and their defaults (``inspect.Parameter.empty`` if none)."""
    return {p.name: p.default for p in option_parameters(name) if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def methods_table() -> str:
    """Markdown table of the registered methods (for the README)."""
    lines = ["| method | description |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in METHODS.items()]
    return "\n".join(lines)


def get_method(name: str) -> Callable[..., Solution]:
    """The registered function of method ``name`` (``ValueError`` naming the valid ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name][0]


_BATCHED: dict[str, Callable[..., list[Solution]]] = {}


def register_batch_method(name: str, fn: Callable[..., list[Solution]]) -> None:
    """Register a batched implementation of the method ``name`` for :func:`~ecgi_jax.solve_batch`:
    ``fn(Y, A, *, keys, place, replicate, **options) -> list[Solution]`` with ``Y (B, m, t)``,
    ``A (B, m, n)`` or ``(m, n)``, ``keys`` ``None`` or ``B`` keys, ``place(tree)`` putting a
    stacked pytree on the devices (padded: see :func:`~ecgi_jax._batch.shard_batch`; results
    beyond ``B`` are to be dropped) and ``replicate(tree)`` putting shared arrays on every device."""
    _BATCHED[name] = fn


def batch_method(name: str) -> Callable[..., list[Solution]] | None:
    """The batched implementation registered for ``name``, or ``None`` (solve one at a time)."""
    return _BATCHED.get(name)
