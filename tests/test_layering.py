"""The folder layout is the architecture: nothing imports upward.

geometry -> operators -> forward -> ep -> solvers -> metrics -> the front door and applications
(``_solve``, ``_batch``, ``io``, ``cli``, ...). Below them all sit the leaf modules ``_types``,
``_registry`` (methods register there, so solvers never import the front door) and
``_checkpoint``. The test reads every module's imports (without importing it) and fails on an
import from a higher layer, naming both modules.
"""

import ast
from pathlib import Path

import ecgi_jax

ROOT = Path(ecgi_jax.__file__).parent
LAYERS = {
    "_types": 0, "_registry": 0, "_checkpoint": 0,
    "geometry": 1, "operators": 2, "forward": 3, "ep": 4, "solvers": 5, "metrics": 6,
}
TOP = 7  # everything else: _solve, _batch, io, cli, synthetic, noncrime, datasets, plotting, ...


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            yield from (n for n in names if n.startswith("ecgi_jax"))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("ecgi_jax"))


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP + 1  # the package itself: the very top


def test_nothing_imports_from_a_higher_layer():
    upward = [
        f"{_module(p)} (layer {_layer(_module(p))}) imports {t} (layer {_layer(t)})"
        for p in sorted(ROOT.rglob("*.py"))
        for t in _imports(p)
        if _layer(t) > _layer(_module(p))
    ]
    assert not upward, "\n".join(upward)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_other_packages_are_used_through_their_public_names():
    # ``from ..geometry import Mesh``, not ``from ..geometry._mesh import Mesh``: a package's private
    # modules are its own business (one may be split or renamed without touching the others).
    private = [
        f"{_module(p)} imports {t}"
        for p in sorted(ROOT.rglob("*.py"))
        for t in _imports(p)
        if _package(t) != _package(_module(p)) and any(part.startswith("_") for part in t.split(".")[2:])
    ]
    assert not private, "\n".join(private)


def test_the_layer_map_covers_the_package():
    # A new top-level folder must be given its place, not fall into the application layer unseen.
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - set(LAYERS) == {"validation"}, folders - set(LAYERS)


def test_readme_lists_the_registered_methods():
    readme = ROOT.parent.parent / "README.md"
    if not readme.exists():  # an installed package without its source tree
        import pytest

        pytest.skip("README.md is not beside the package (installed without the source tree)")
    assert ecgi_jax.methods_table() in readme.read_text()
