"""The front door: ``solve(Y, A, method=..., **options) -> Solution``.

Every inverse method, classical or neural, is a function ``fn(Y, A, **options) -> Solution``
registered under a name in :mod:`ecgi_jax._registry` (a leaf module, so solvers never import this
one). :func:`solve` validates the inputs, checks the options against ``fn``'s signature, times the
call, fills ``Solution.options`` with the options actually used (defaults included) and sets
``Solution.result``.

Importing this module imports only the classical solvers; neural methods register themselves from
their own module (``register_method("eand-arn", fn, "...")``) when that module is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
import time

import jax
import jax.numpy as jnp
import numpy as np

from ._registry import (
    METHODS,
    TIME_DIAGNOSTICS,
    Result,
    Solution,
    SolveError,
    get_method,
    method_options,
    methods_table,
    option_parameters,
    register_method,
    result_of,
)
from ._types import check_key
from .operators import HeartModel, check_operator, finite_array
from .solvers import classical as _classical  # noqa: F401  (registers the classical methods)

__all__ = ["Method", "Result", "SolveError", "Solution", "solve", "register_method", "METHODS", "methods_table", "method_options"]


# ----------------------------------------------------------------------------------------------
# validation


def _validate(Y, A):
    Y = finite_array(Y, "Y")
    A = finite_array(A, "A")
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (M leads, T samples); got shape {Y.shape}.")
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (M leads, N heart nodes); got shape {A.shape}.")
    if Y.shape[0] != A.shape[0]:
        if Y.shape[1] == A.shape[0]:
            hint = " Y looks transposed: pass Y as (M leads, T samples)."
        else:
            hint = ""
        raise ValueError(f"Y has {Y.shape[0]} rows but A has {A.shape[0]}: both must have M rows (leads).{hint}")
    if 0 in Y.shape or 0 in A.shape:
        raise ValueError(f"Y {Y.shape} and A {A.shape} must be non-empty (at least one lead, sample and heart node).")
    Y, A = _working_precision(Y, A)
    for x, name in ((Y, "Y"), (A, "A")):
        _check_magnitude(x, name)
    return Y, A


def _check_magnitude(x, name: str):
    """Refuse values whose squares the working precision cannot sum: every method forms norms
    and normal equations of ``Y`` and ``A`` (in float32 a ``Y`` scaled by 1e30 overflowed them and
    came back 10× off without a word; scaled by 1e-30, they underflow)."""
    big = float(jnp.max(jnp.abs(x)))
    if big == 0.0:
        return
    fi = jnp.finfo(x.dtype)
    hi = float(np.sqrt(float(fi.max) / x.size)) / 10
    lo = float(np.sqrt(float(fi.tiny))) * 1e3
    if big > hi or big < lo:
        raise ValueError(
            f"{name}'s largest magnitude is {big:.3g}: outside [{lo:.1g}, {hi:.1g}], the range in which "
            f"{x.dtype} can sum the squares of its {x.size} entries. Rescale {name} (e.g. potentials to mV, "
            "distances to mm) or enable float64 (jax.config.update('jax_enable_x64', True))."
        )


def _working_precision(Y, A):
    """``Y`` and ``A`` in their common floating dtype, at least float32: XLA's linear algebra has
    no half-precision kernels (float16/bfloat16 inputs ended in a jaxlib ``NotImplementedError``),
    so those are solved in float32 and the solution comes back in float32."""
    # The one place where inputs of mixed precision are promoted on purpose, so also under
    # jax_numpy_dtype_promotion="strict" (which refuses float16 with float32, int with float).
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(Y, A, float)
        if jnp.finfo(dtype).bits < 32:
            dtype = jnp.promote_types(dtype, jnp.float32)
    return Y.astype(dtype), A.astype(dtype)


# Options shared by several methods, checked once here whatever the method: name -> (lower bound,
# whether the bound itself is allowed). λ multiplies a squared seminorm, so it must be > 0; a zero
# temporal weight (no temporal penalty) is allowed.
_POSITIVE_SCALARS = {
    "lam": (0.0, False), "lam_s": (0.0, False), "lam_t": (0.0, True), "dt": (0.0, False),
    "tau": (0.0, False), "noise_std": (0.0, True), "learning_rate": (0.0, False),
}
_POSITIVE_GRIDS = {"lambdas": (0.0, False), "lams_s": (0.0, False), "lams_t": (0.0, True)}
# Counts (integers, not bools or floats that happen to be whole): name -> smallest allowed value.
_COUNTS = {
    "steps": 1, "chunk": 1, "patience": 0, "lbfgs_steps": 0, "n_blocks": 1, "block_depth": 1,
    "n_layers": 1, "collocation": 1, "checkpoint_every": 1, "fourier_features": 0, "max_iter": 1, "screen_iter": 0, "n_starts": 1,
}


def _option_kind(p: inspect.Parameter) -> str | None:
    """``"bool"``, ``"number"`` or ``None`` (anything else) for a method's option, from its default
    or, for a ``None`` default, its annotation (``int | None`` is a number) or the shared tables."""
    if p.name in _POSITIVE_SCALARS or p.name in _COUNTS:
        return "number"
    d = p.default
    if isinstance(d, (bool, np.bool_)):
        return "bool"
    if isinstance(d, (int, float, np.integer, np.floating)):
        return "number"
    ann = p.annotation if isinstance(p.annotation, str) else ("" if p.annotation is p.empty else str(p.annotation))
    tokens = {t.strip().removeprefix("<class '").removesuffix("'>") for t in ann.split("|")} - {"None", "NoneType", ""}
    if tokens == {"bool"}:
        return "bool"
    if tokens and tokens <= {"int", "float"}:
        return "number"
    return None


#: Options renamed so that a name means one thing in every method: method -> {old: new}.
RENAMED_OPTIONS: dict[str, dict[str, str]] = {
    "eand-arn": {"order": "stencil_order"},
    "spatiotemporal": {"spatial_order": "order"},
    "tsvd": {"k": "rank"},
    "greensite": {"k": "n_components"},
    "activation-based": {"width": "upstroke_width", "width_start": "upstroke_width_start"},
}


def check_option_names(method: str, options) -> None:
    """Refuse an option ``method`` does not take, naming the valid ones (and the new name of a
    renamed one)."""
    params = option_parameters(method)
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params]
    bad = sorted(set(options) - set(valid))
    if not bad:
        return
    renamed = RENAMED_OPTIONS.get(method, {})
    hints = [f"{old!r} is now {renamed[old]!r}" for old in bad if old in renamed]
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise TypeError(f"method {method!r} got unknown option(s) {bad}{hint}; valid options: {', '.join(valid)}.")


def check_option_types(method: str, options) -> None:
    """The type of every option given to ``method`` against what its signature says: a flag must
    be ``True``/``False`` (a string ``"yes"`` or ``"False"`` is not), a number must not be a string
    or a bool. One layer for every method, run before any work is done; ranges are checked by
    :func:`_check_options` and by the methods themselves."""
    kinds = {p.name: _option_kind(p) for p in option_parameters(method)}
    for name, value in options.items():
        kind = kinds.get(name)
        if value is None or kind is None or isinstance(value, jax.core.Tracer) or name in _COUNTS or name in _POSITIVE_SCALARS:
            continue  # counts and positive numbers: _check_options, with the bounds in the message
        if kind == "bool" and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"option {name} must be True or False; got {type(value).__name__} {value!r} (method {method!r}).")
        if kind == "number":
            if isinstance(value, (str, bytes, bool, np.bool_)) or not (
                isinstance(value, (int, float, np.integer, np.floating)) or (hasattr(value, "shape") and np.ndim(value) == 0)
            ):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__} {value!r} (method {method!r}).")


def _check_options(options, n, n_t):
    """Method-independent checks of the options given to :func:`solve` (defaults are trusted).

    Numbers that must be positive (λ's, ``dt``, ``tau``, ``learning_rate``), λ grids, and the
    array options whose shape follows from ``Y (M, T)`` and ``A (M, N)``: ``truth (N, T)``,
    ``laplacian (N, N)``, ``gradient (K, N)``, ``temporal (T, T)``, ``vertices (N, 3)``.
    Nothing is converted: the method receives the options exactly as given.
    """
    for name, value in options.items():
        if value is None:
            continue
        if name in _POSITIVE_SCALARS:
            lo, closed = _POSITIVE_SCALARS[name]
            if isinstance(value, jax.core.Tracer):
                continue
            if isinstance(value, (str, bytes, bool, np.bool_)):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__} {value!r}.")
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"option {name} must be a real number; got {type(value).__name__}.") from None
            if not np.isfinite(v) or v < lo or (v == lo and not closed):
                rel = ">=" if closed else ">"
                raise ValueError(f"option {name} must be a finite number {rel} {lo:g}; got {value!r}.")
        elif name in _POSITIVE_GRIDS:
            lo, closed = _POSITIVE_GRIDS[name]
            g = np.asarray(finite_array(value, name))
            if g.ndim != 1 or g.size == 0:
                raise ValueError(f"option {name} must be a non-empty 1-D grid of values; got shape {g.shape}.")
            if (g < lo).any() or (not closed and (g <= lo).any()):
                rel = ">=" if closed else ">"
                raise ValueError(f"option {name} must contain only values {rel} {lo:g}; got min {g.min():g}.")
        elif name in _COUNTS:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"option {name} must be an integer; got {type(value).__name__} {value!r}.")
            if value < _COUNTS[name]:
                raise ValueError(f"option {name} must be an integer >= {_COUNTS[name]}; got {value}.")
        elif name == "key":
            check_key(value, "option key")
        elif name == "truth":
            t = finite_array(value, "truth")
            if t.shape != (n, n_t):
                raise ValueError(f"truth has shape {t.shape}; expected (N, T) = {(n, n_t)} to match A and Y.")
        elif name == "laplacian":
            check_operator(value, "laplacian", n, square=True)
        elif name == "gradient":
            check_operator(value, "gradient", n)
        elif name == "temporal":
            t = finite_array(value, "temporal")
            if t.shape != (n_t, n_t):
                raise ValueError(f"temporal has shape {t.shape}; expected (T, T) = {(n_t, n_t)} for T = {n_t} samples.")
        elif name == "ap_params" and hasattr(value, "validate"):
            value.validate()  # Aliev–Panfilov parameters: finite, positive D, k, …; 0 < a < 1
        elif name == "vertices":
            v = finite_array(value, "vertices")
            if v.shape != (n, 3):
                raise ValueError(f"vertices has shape {v.shape}; expected (N, 3) = {(n, 3)} heart-node coordinates.")


def _check_time_samples(params, options, n_t, method):
    """Physics-informed methods (options ``stencil_order``, ``dt`` and ``ap_params``) need at
    least as many samples as the time stencil of their AP residual spans."""
    from .operators import min_samples

    declared = {p.name: p.default for p in params}
    if not {"stencil_order", "dt", "ap_params"} <= set(declared):
        return
    order = options.get("stencil_order", declared["stencil_order"])
    if not isinstance(order, int) or isinstance(order, bool) or order < 2 or order % 2:
        raise ValueError(f"option stencil_order must be an even integer >= 2; got {order!r}.")
    need = min_samples(1, order)
    if n_t < need:
        raise ValueError(
            f"method {method!r} with stencil_order={order} needs at least {need} time samples; Y has {n_t}. "
            "Pass more samples or a lower stencil_order (2 needs 3)."
        )


@dataclasses.dataclass(frozen=True, init=False, eq=False)
class Method:
    """A method and its settings as one immutable value: ``Method("tikhonov-2", lambda_rule="lcurve")``.

    The names and types of the settings are checked when the object is made (as :func:`solve`
    checks them), so a sweep's configurations fail at once, not hours into the sweep. Give it to
    :func:`solve` or :func:`~ecgi_jax.solve_batch` as ``method=``; extra keyword options there are
    added to (and may not repeat) its own. A setting reads as an attribute (``m.lambda_rule``; a
    setting not given reads as the method's default), ``defaults`` lists every setting the method
    runs with and ``replace(**changes)`` gives a changed copy. :mod:`ecgi_jax.methods` has one
    typed class per method (``methods.Tikhonov2(lambda_rule="lcurve")``: the same value, with the
    settings in its signature); the string names remain the short form (the CLI and config files
    use them).
    """

    name: str
    options: tuple

    def __init__(self, name: str, **options):
        if not isinstance(name, str):
            raise TypeError(f"method must be a string; got {type(name).__name__}. Valid methods: {', '.join(sorted(METHODS))}.")
        get_method(name)
        check_option_names(name, options)
        check_option_types(name, options)
        # The checks that need no data: numbers, counts and λ grids (shapes wait for Y and A).
        _check_options({k: v for k, v in options.items() if k in _POSITIVE_SCALARS or k in _COUNTS or k in _POSITIVE_GRIDS}, None, None)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def settings(self) -> dict:
        """The settings given (the rest take the method's defaults)."""
        return dict(self.options)

    @property
    def defaults(self) -> dict:
        """Every setting the method runs with: its defaults updated by the given ones."""
        return {**method_options(self.name), **self.settings}

    def __getattr__(self, item):
        # Only for names that are not attributes: a setting, given or default. Dunder lookups (pickle,
        # copy) and a half-built object (no ``options`` yet) are plain misses.
        if item.startswith("__") or "options" not in self.__dict__:
            raise AttributeError(item)
        defaults = self.defaults
        if item not in defaults:
            raise AttributeError(f"{type(self).__name__} has no setting {item!r}; its settings: {', '.join(defaults)}.")
        return defaults[item]

    def replace(self, **changes) -> "Method":
        """A copy with ``changes`` to the settings (checked as when made), of the same class."""
        settings = {**self.settings, **changes}
        return Method(self.name, **settings) if type(self) is Method else type(self)(**settings)

    # One value whichever way it is written: ``Method("tsvd", rank=3) == methods.TSVD(rank=3)``.
    def __eq__(self, other):
        if not isinstance(other, Method):
            return NotImplemented
        return (self.name, self.options) == (other.name, other.options)

    def __hash__(self):
        return hash((self.name, self.options))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options)
        if type(self) is Method:
            return f"Method({self.name!r}{', ' if args else ''}{args})"
        return f"{type(self).__name__}({args})"


def method_and_options(method, options: dict) -> tuple[str, dict]:
    """``(name, options)`` from ``method=`` (a name or a :class:`Method`) and the call's options."""
    if isinstance(method, Method):
        both = sorted(set(method.settings) & set(options))
        if both:
            raise ValueError(f"{', '.join(both)} set both in the Method and in the call: give each once.")
        return method.name, {**method.settings, **options}
    if not isinstance(method, str):
        raise TypeError(
            f"method must be a name or an ecgi_jax.Method; got {type(method).__name__}. Valid methods: {', '.join(sorted(METHODS))}."
        )
    return method, options


def with_heart(method: str, heart, options: dict) -> dict:
    """``options`` plus the fields of ``heart`` (a :class:`~ecgi_jax.operators.HeartModel`) that
    ``method`` takes. A field also given as an option is refused: which one was meant is unclear."""
    if heart is None:
        return options
    if not isinstance(heart, HeartModel):
        raise TypeError(
            f"heart must be an ecgi_jax.operators.HeartModel (e.g. HeartModel.from_mesh(mesh)); got {type(heart).__name__}."
        )
    fields = heart.options_for({p.name for p in option_parameters(method)})
    both = sorted(set(fields) & set(options))
    if both:
        raise ValueError(f"{', '.join(both)} given both in heart= and as option(s): give each once.")
    return {**fields, **options}


def in_time_unit(sol: Solution, heart: HeartModel | None) -> Solution:
    """``sol`` with its time-valued diagnostics (:data:`TIME_DIAGNOSTICS`) in ``heart``'s time
    unit, and that unit recorded as ``diagnostics["time_unit"]``; unchanged for AP units."""
    if heart is None or heart.time_unit == "ap":
        return sol
    diagnostics = dict(sol.diagnostics)
    for key in TIME_DIAGNOSTICS:
        if diagnostics.get(key) is not None:
            t = heart.to_time_unit(diagnostics[key])
            diagnostics[key] = float(t) if t.ndim == 0 else t.tolist()
    diagnostics["time_unit"] = heart.time_unit
    return dataclasses.replace(sol, diagnostics=diagnostics)


def solve(Y, A, *, method: "str | Method" = "tikhonov-2", heart: HeartModel | None = None, throw: bool = False, **options) -> Solution:
    """Reconstruct heart potentials from body-surface potentials.

    Args:
        Y: ``(M, T)`` body-surface potentials (M leads, T samples).
        A: ``(M, N)`` transfer matrix.
        method: a name in :data:`METHODS` (``methods_table()`` lists them), or a :class:`Method`
            (a name with its settings).
        heart: a :class:`~ecgi_jax.operators.HeartModel` (Laplacian, gradient, vertices,
            adjacency, dt): each method gets the fields it takes, so one call serves every method.
            A heart whose recordings are in ms or s (``HeartModel.from_mesh(mesh, dt=1.0,
            time_unit="ms")``) gets the reported times (activation times, pacing onsets) back in
            that unit, ``diagnostics["time_unit"]`` naming it; ``options["dt"]`` stays in AP units.
        throw: raise :class:`SolveError` (holding the solution) when the result is not
            :attr:`Result.SUCCESS`; by default the solution comes back with ``result`` saying how
            it ended (and a ``RuntimeWarning`` where the method gives one).
        **options: method options; ``method_options(name)`` lists them with defaults.

    Raises:
        ValueError: bad shapes (``Y (M, T)``, ``A (M, N)``, ``truth (N, T)``, ``laplacian (N, N)``,
            ``gradient (K, N)``, ``temporal (T, T)``), empty or NaN/Inf inputs (naming the input),
            non-positive ``lam``/``lam_s``/``dt``/``tau``/``learning_rate`` or λ grids, an unknown
            method (listing the valid ones), an option set twice (in ``heart`` or a
            :class:`Method` and in the call), and for the classical solvers a regularized problem
            without a unique solution (A and a penalty on a disconnected mesh share null vectors;
            the one constant a zero-row-sum A cannot see is pinned to zero mean instead:
            ``diagnostics["constant_mode"]``).
        TypeError: an option the method does not take (listing the valid ones; a renamed one
            names its new name), an option of the wrong type, a method that is neither a name
            nor a :class:`Method`, a ``heart`` that is not a HeartModel, complex or non-numeric
            arrays.
        SolveError: with ``throw=True``, a result other than :attr:`Result.SUCCESS`.
    """
    method, options = method_and_options(method, options)
    fn = get_method(method)
    check_result(None, throw)  # the flag's type, before any work
    params = option_parameters(method)
    options = with_heart(method, heart, options)
    check_option_names(method, options)
    check_option_types(method, options)
    Y, A = _validate(Y, A)
    _check_options(options, A.shape[1], Y.shape[1])
    _check_time_samples(params, options, Y.shape[1], method)
    t0 = time.perf_counter()
    sol = fn(Y, A, **options)
    jax.block_until_ready(sol.potentials)
    elapsed = time.perf_counter() - t0
    used = {p.name: p.default for p in params if p.default is not p.empty}
    used.update(sol.options)
    used.update(options)
    sol = dataclasses.replace(
        sol, method=method, options=used, diagnostics={**sol.diagnostics, "time_s": elapsed},
        result=result_of(sol.potentials, sol.diagnostics),
    )
    sol = in_time_unit(sol, heart)
    check_result(sol, throw)
    return sol


def check_result(sol: Solution | None, throw: bool, where: str = "") -> None:
    """Raise :class:`SolveError` for a failed ``sol`` when ``throw`` (``where`` prefixes the
    message); ``TypeError`` for a ``throw`` that is not a bool. ``sol=None`` checks the flag only."""
    if not isinstance(throw, (bool, np.bool_)):
        raise TypeError(f"throw must be True or False; got {type(throw).__name__} {throw!r}.")
    if throw and sol is not None and sol.result is not Result.SUCCESS:
        raise SolveError(f"{where}method {sol.method!r} ended {sol.result.value} (Solution.result); the solution is in .solution.", sol)
