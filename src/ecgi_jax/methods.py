"""One typed class per method: ``methods.Tikhonov2(lambda_rule="lcurve")``, ``methods.EANDARN(steps=300)``.

Each class is a :class:`~ecgi_jax.Method` whose settings are spelled out in its signature (names,
types, defaults: ``help(methods.Spatiotemporal)``, an editor's completion) and checked when an
object is made; ``solve(Y, A, method=methods.TSVD(rank=3))`` runs it. The classes are made from the
registered methods' own signatures, so a method's defaults have one source (the function that
runs it) and a class cannot drift from the method it names. ``methods.TSVD(rank=3) ==
Method("tsvd", rank=3)``: the two spellings are one value.

:func:`method_class` gives the class of any registered method, one registered by a user included.
"""

from __future__ import annotations

import inspect
import re

from ._registry import METHODS, get_method, option_parameters
from ._solve import Method

__all__ = ["method_class", "CLASS_NAMES"]

#: Class names of the built-in methods (other names are CamelCased: ``"my-method"`` → ``MyMethod``).
CLASS_NAMES = {
    "tikhonov-0": "Tikhonov0", "tikhonov-1": "Tikhonov1", "tikhonov-2": "Tikhonov2", "tsvd": "TSVD",
    "spatiotemporal": "Spatiotemporal", "total-variation": "TotalVariation", "l1": "L1", "lp-lq": "LpLq",
    "greensite": "Greensite", "eand-arn": "EANDARN", "pdl": "PDL", "ap-shooting": "APShooting", "hybrid": "Hybrid",
    "activation-based": "ActivationBased",
}

# name -> (the registered function the class was made from, the class): a method registered anew
# under the same name gets a new class.
_CLASSES: dict[str, tuple[object, type]] = {}


def _class_name(name: str) -> str:
    if name in CLASS_NAMES:
        return CLASS_NAMES[name]
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    candidate = "".join(w[:1].upper() + w[1:] for w in words)
    return candidate if candidate.isidentifier() else "Method_" + "_".join(words)


def _settings_doc(params) -> str:
    def annotation(p):
        return "" if p.annotation is p.empty else f": {p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)}"

    return "\n".join(f"    {p.name}{annotation(p)} = {p.default!r}" for p in params)


def method_class(name: str) -> type[Method]:
    """The typed :class:`~ecgi_jax.Method` class of the registered method ``name``.

    Its constructor takes the method's options as keyword arguments, with the method's defaults
    and annotations (``inspect.signature`` shows them); an unknown or ill-typed setting is refused
    when the object is made. ``ValueError`` for a name that is not registered.
    """
    fn = get_method(name)
    cached = _CLASSES.get(name)
    if cached is not None and cached[0] is fn:
        return cached[1]
    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in option_parameters(name)
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]

    def __init__(self, **settings):
        Method.__init__(self, name, **settings)

    cls_name = _class_name(name)
    own = inspect.getdoc(fn) or ""
    doc = f"Method ``{name!r}``: {METHODS[name]}\n\n{own + chr(10) + chr(10) if own else ''}Settings (default):\n{_settings_doc(params)}\n"
    __init__.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *params])
    cls = type(cls_name, (Method,), {"__init__": __init__, "__doc__": doc, "__module__": __name__, "__qualname__": cls_name, "method_name": name})
    _CLASSES[name] = (fn, cls)
    return cls


def __getattr__(attr):
    # The built-in classes by name (``methods.Tikhonov2``), made from the registry when first asked.
    for name, cls_name in CLASS_NAMES.items():
        if attr == cls_name and name in METHODS:
            return method_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}; the method classes: {', '.join(CLASS_NAMES.values())}.")


def __dir__():
    return sorted([*globals(), *CLASS_NAMES.values()])
