"""The ``ecgi-jax`` command line.

Commands: ``demo`` (the whole pipeline on the built-in geometry, with figures), ``simulate`` (an
Aliev-Panfilov beat on a heart mesh), ``forward`` (BEM transfer matrix from heart + torso mesh
files), ``solve`` (any registered inverse method on arrays from .npy/.npz/.mat files),
``experiment`` (a script of the repository's ``experiments/`` folder) and ``bench`` (the
repository's benchmarks).

User mistakes (bad paths, bad values, unknown methods or options, mismatched shapes) are reported
as one line ``ecgi-jax: error: ...`` on stderr with exit status 2, not as a traceback;
``--debug`` shows the traceback. A command never writes over one of its own input files: an
``--out`` (or the ``.xdmf`` that ``solve`` writes beside it) that is the same file as an input,
however spelled (relative path, symlink, hard link), is such a user error.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

# src/ecgi_jax/cli.py -> the repository root (holds experiments/ and benchmarks/ in a checkout).
REPO = Path(__file__).resolve().parents[2]


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line."""


def _say(msg: str = "") -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# helpers shared by the commands


def _split_source(spec: str) -> tuple[str, str | None]:
    """``PATH[:NAME]`` -> ``(PATH, NAME)``; a path that exists as given is never split."""
    if Path(spec).exists() or ":" not in spec:
        return spec, None
    path, name = spec.rsplit(":", 1)
    return path, (name or None)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():  # symlinks, "..", relative vs absolute
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)  # hard links, case-insensitive names
    except OSError:
        return False


def _refuse_overwriting_inputs(outputs, inputs) -> None:
    """Raise :class:`UserError` if a file the command writes is one of its input files.

    ``outputs``: ``(what, path)`` pairs, e.g. ``("--out", args.out)`` and the ``.xdmf`` that
    ``solve`` writes beside it. ``inputs``: ``(flag, spec)`` pairs; ``None`` specs are skipped and
    ``PATH:NAME`` specs stand for their file. Called by every command that writes ``--out``
    before it reads or computes anything.
    """
    for what, out in outputs:
        out = Path(out)
        for flag, spec in inputs:
            if spec is None:
                continue
            path = Path(_split_source(str(spec))[0])
            if _same_file(out, path):
                shown = "" if str(spec) == str(out) else f" ({spec})"
                raise UserError(
                    f"{what} ({out}) is the {flag} input file{shown}; writing it would destroy the input. "
                    "Choose another --out."
                )


def _read_array(spec: str, what: str):
    from . import io

    path, name = _split_source(spec)
    try:
        return io.load_array(path, name)
    except (OSError, ValueError) as e:
        raise UserError(f"{what}: {e}") from e


def _read_mesh(path: str, what: str):
    from . import io

    try:
        return io.load_mesh(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{what}: {e}") from e


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(KEY, value)``; VALUE via ``ast.literal_eval``, else kept as a string.

    ``lam=0.1`` -> 0.1, ``weights=(1, 1, 0)`` -> a tuple, ``lambda_rule=gcv`` -> ``"gcv"``,
    ``adaptive=False`` -> False, ``windows=None`` -> None.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"--option expects KEY=VALUE with KEY a Python name (e.g. lam=0.01); got {text!r}.")
    try:
        return key, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key, value.strip()


def _experiments_dir() -> Path | None:
    for d in (REPO / "experiments", Path.cwd() / "experiments"):
        if d.is_dir():
            return d
    return None


def _experiment_names() -> list[str]:
    d = _experiments_dir()
    return sorted(p.stem for p in d.glob("*.py") if not p.stem.startswith("_")) if d else []


def _methods_epilog() -> str:
    import textwrap

    from . import METHODS

    lines = ["methods (--method):"]
    for name, desc in METHODS.items():
        lines += textwrap.wrap(desc, 96, initial_indent=f"  {name:16s} ", subsequent_indent=" " * 19)
    lines += [
        "",
        "Method options are given as --option KEY=VALUE (repeatable); VALUE is a Python literal",
        "(0.1, (1, 1, 0), None, True) or else a plain string (gcv). The options of a method and",
        "their defaults: python -c \"import ecgi_jax; print(ecgi_jax.method_options('tikhonov-2'))\".",
        "",
        "Options filled in from the other flags when the method takes them (an explicit --option",
        "wins): laplacian (--laplacian), vertices/adjacency (--mesh), dt (--dt), truth (--truth),",
        "key (--seed), progress (not --quiet).",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# demo


def _demo(args) -> int:
    from .demo import run_demo

    try:
        run_demo(
            args.out, n_heart=args.n_heart, pacing=args.pacing, sigma=args.sigma, samples=args.samples, seed=args.seed,
            steps=args.steps, figures=not args.no_figures, xdmf=args.xdmf, progress=not args.quiet, say=_say,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    return 0


# ----------------------------------------------------------------------------------------------
# simulate


def _simulate(args) -> int:
    import jax.numpy as jnp
    import numpy as np

    from . import geometry, io, operators
    from .ep import APParams, simulate

    _refuse_overwriting_inputs([("--out", args.out)], [("--mesh", args.mesh)])
    if args.samples < 2 or not args.dt > 0:
        raise UserError(f"--samples must be >= 2 and --dt > 0; got {args.samples} and {args.dt}.")
    mesh = _read_mesh(args.mesh, "--mesh") if args.mesh else geometry.default_heart_torso().heart
    if not 0 <= args.pacing < mesh.n_vertices:
        raise UserError(f"--pacing must be a node index in [0, {mesh.n_vertices - 1}]; got {args.pacing}.")
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    try:
        params = APParams(D=args.D).validate()
    except ValueError as e:
        raise UserError(str(e)) from e
    _say(f"simulating {mesh.n_vertices} nodes x {args.samples} samples (dt={args.dt}) paced at node {args.pacing} ...")
    U, V = simulate(lap, jnp.zeros(mesh.n_vertices).at[args.pacing].set(1.0), ap_params=params, dt=args.dt, n_samples=args.samples)
    U, V = np.asarray(U), np.asarray(V)
    arrays = dict(U=U, V=V, dt=np.float64(args.dt), vertices=mesh.vertices, triangles=mesh.triangles)
    io.save_arrays(args.out, arrays)
    at = np.argmax(U > 0.5, axis=1) * args.dt
    _say(
        f"u in [{U.min():.3f}, {U.max():.3f}], activated {np.mean(U.max(axis=1) > 0.5):.0%} of nodes "
        f"by t={at.max():.1f}; wrote {args.out} (arrays U, V (nodes x samples), dt, vertices, triangles)"
    )
    return 0


# ----------------------------------------------------------------------------------------------
# forward


def _parse_electrodes(spec: str | None, n_torso: int):
    import numpy as np

    from . import io

    if spec is None:
        return None
    if Path(spec).is_file():
        path = Path(spec)
        try:
            # io's reader checks the file itself (never numpy's allow_pickle advice for a corrupt one).
            e = io.load_array(path) if path.suffix == ".npy" else np.loadtxt(path, dtype=np.int64, ndmin=1)
        except (OSError, ValueError) as exc:
            raise UserError(f"--electrodes: could not read {path} (.npy or a text file of integers): {exc}") from exc
    else:
        try:
            e = [int(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--electrodes must be a file (.npy or text) or a comma-separated list of torso node indices; got {spec!r}.") from None
    e = np.asarray(e).ravel()
    if e.dtype == bool:  # a mask over the torso nodes, as forward.transfer_matrix accepts
        if e.size != n_torso:
            raise UserError(f"--electrodes: a boolean mask needs one entry per torso node ({n_torso}); got {e.size}.")
        e = np.flatnonzero(e)
    if e.dtype.kind not in "iu" or e.size == 0 or e.min() < 0 or e.max() >= n_torso:
        raise UserError(f"--electrodes must be integer torso node indices in [0, {n_torso}); got {e.size} values of dtype {e.dtype}.")
    return e.astype(np.int64)


def _forward(args) -> int:
    import numpy as np

    from . import forward, io

    electrode_file = args.electrodes if args.electrodes and Path(args.electrodes).is_file() else None
    _refuse_overwriting_inputs(
        [("--out", args.out)],
        [("--heart", args.heart), ("--torso", args.torso), ("--potentials", args.potentials), ("--electrodes", electrode_file)],
    )
    if args.sigma < 0:
        raise UserError(f"--sigma must be >= 0; got {args.sigma}.")
    heart = _read_mesh(args.heart, "--heart")
    torso = _read_mesh(args.torso, "--torso")
    electrodes = _parse_electrodes(args.electrodes, torso.n_vertices)
    U = None
    if args.potentials:
        U = _read_array(args.potentials, "--potentials")
        if U.ndim != 2 or U.shape[0] != heart.n_vertices:
            raise UserError(f"--potentials has shape {U.shape}; expected ({heart.n_vertices}, T) for the {heart.n_vertices} heart nodes.")
    _say(f"BEM transfer matrix: heart {heart.n_vertices} nodes, torso {torso.n_vertices} nodes, reference={args.reference} ...")
    t0 = time.perf_counter()
    A = forward.transfer_matrix(heart, torso, electrodes=electrodes, reference=args.reference)
    _say(f"    A {A.shape} in {time.perf_counter() - t0:.1f} s")
    arrays = {"A": A}
    if electrodes is not None:
        arrays["electrodes"] = electrodes
    if U is not None:
        Y = A @ np.asarray(U, np.float64)
        if args.sigma > 0:
            import jax

            Y = np.asarray(forward.add_noise(jax.random.key(args.seed), Y, args.sigma), np.float64)
        arrays.update(Y=Y, sigma=np.float64(args.sigma), seed=np.int64(args.seed))
        _say(f"    Y = A U{' + noise' if args.sigma > 0 else ''}: {Y.shape}")
    io.save_arrays(args.out, arrays)
    _say(f"wrote {args.out} (arrays {', '.join(arrays)})")
    return 0


# ----------------------------------------------------------------------------------------------
# solve


def _takes_any_keyword(method: str) -> bool:
    import inspect

    from ._registry import get_method

    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(get_method(method)).parameters.values())


def _solve(args) -> int:
    import numpy as np

    from . import io, method_options, metrics, operators, solve

    outputs = [("--out", args.out)]
    if args.mesh:  # io.save_solution writes the ParaView file beside the .npz
        outputs.append(("the .xdmf beside --out", Path(args.out).with_suffix(".xdmf")))
    _refuse_overwriting_inputs(
        outputs,
        [("--Y", args.Y), ("--A", args.A), ("--laplacian", args.laplacian), ("--mesh", args.mesh), ("--truth", args.truth)],
    )
    try:
        accepted = method_options(args.method)
    except ValueError as e:
        raise UserError(str(e)) from e
    options = dict(parse_option(o) for o in args.option)
    bad = sorted(set(options) - set(accepted))
    if bad and not _takes_any_keyword(args.method):
        raise UserError(f"method {args.method!r} takes no option(s) {bad}; its options: {', '.join(accepted)}.")
    if args.laplacian and "laplacian" not in accepted:
        raise UserError(f"method {args.method!r} does not use --laplacian; its options: {', '.join(accepted)}.")
    Y = _read_array(args.Y, "--Y")
    A = _read_array(args.A, "--A")
    if Y.ndim != 2 or A.ndim != 2 or Y.shape[0] != A.shape[0]:
        raise UserError(f"Y {Y.shape} and A {A.shape} must be 2-D with the same number of rows (leads).")
    n, n_t = A.shape[1], Y.shape[1]
    truth = _read_array(args.truth, "--truth") if args.truth else None
    if truth is not None and truth.shape != (n, n_t):
        raise UserError(f"--truth has shape {truth.shape}; expected ({n}, {n_t}) (heart nodes of A x samples of Y).")
    mesh = _read_mesh(args.mesh, "--mesh") if args.mesh else None
    if mesh is not None and mesh.n_vertices != n:
        raise UserError(f"--mesh has {mesh.n_vertices} vertices but A has {n} columns (heart nodes).")

    lap_mesh = _read_mesh(args.laplacian, "--laplacian") if args.laplacian else None
    if lap_mesh is not None and lap_mesh.n_vertices != n:
        raise UserError(f"--laplacian mesh has {lap_mesh.n_vertices} vertices but A has {n} columns (heart nodes).")
    # The operators are built in mm; --mesh itself is written out (.xdmf) as given.
    op_mesh, op_lap_mesh = mesh, lap_mesh
    if args.length_unit is not None:
        try:
            op_mesh, op_lap_mesh = (None if m is None else operators.mesh_in_mm(m, args.length_unit) for m in (mesh, lap_mesh))
        except ValueError as e:
            raise UserError(str(e)) from e
    if op_lap_mesh is not None:
        options.setdefault("laplacian", operators.huiskamp_laplacian(op_lap_mesh.vertices, op_lap_mesh.adjacency))
    if op_mesh is not None:
        for name, value in (("vertices", op_mesh.vertices), ("adjacency", op_mesh.adjacency)):
            if name in accepted:
                options.setdefault(name, value)
    heart = None  # carries the time unit, so that solve reports times in it
    if args.dt is not None and not args.dt > 0:
        raise UserError(f"--dt must be > 0; got {args.dt}.")
    if args.time_unit != "ap" or args.time_scale is not None:
        if args.dt is None:
            raise UserError(f"--time-unit {args.time_unit} gives the unit of --dt: pass --dt (the sample spacing in {args.time_unit}).")
        try:
            heart = operators.HeartModel.sampled(args.dt, time_unit=args.time_unit, time_scale=args.time_scale)
        except ValueError as e:
            raise UserError(str(e)) from e
        if "dt" in options:  # an --option wins
            heart = heart._replace(dt=None)
    elif args.dt is not None and "dt" in accepted:
        options.setdefault("dt", args.dt)
    if truth is not None and "truth" in accepted:
        options.setdefault("truth", truth)
    if "key" in accepted:
        import jax

        options.setdefault("key", jax.random.key(args.seed))
    if "progress" in accepted:
        options.setdefault("progress", not args.quiet)

    _say(f"solving with {args.method}: {A.shape[0]} leads, {n} heart nodes, {n_t} samples ...")
    sol = solve(Y, A, method=args.method, heart=heart, **options)
    facts = [f"{sol.diagnostics['time_s']:.2f} s", f"result {sol.result.value}"]
    for key in ("lam", "lam_s", "lam_t", "rank", "n_components", "final_loss", "pacing_node"):
        value = sol.diagnostics.get(key)
        if isinstance(value, (int, float, np.number)):
            facts.append(f"{key}={value:.4g}")
    if truth is not None:
        facts.append(f"relative error vs --truth {float(metrics.relative_error(sol.potentials, truth)):.4f}")
    _say("    " + ", ".join(facts))
    times = None if args.dt is None else np.arange(n_t) * args.dt
    written = io.save_solution(args.out, sol, mesh, times=times, truth=truth)
    _say("wrote " + " and ".join(str(p) for p in written))
    return 0


# ----------------------------------------------------------------------------------------------
# experiment, bench


def _experiment(args) -> int:
    d = _experiments_dir()
    if d is None:
        raise UserError(f"no experiments/ folder found (looked in {REPO} and {Path.cwd()}); run from a checkout of the repository.")
    names = _experiment_names()
    if args.name not in names:
        raise UserError(f"unknown experiment {args.name!r}; available: {', '.join(names) or 'none'}.")
    path = d / f"{args.name}.py"
    spec = importlib.util.spec_from_file_location(f"ecgi_jax_experiments.{args.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise UserError(f"{path} has no main(argv) function to run.")
    _say(f"running experiment {args.name} ({path}) ...")
    status = module.main(list(args.args))
    # An int is an exit status; anything else (a main that returns its rows, or None) means success.
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _bench(args) -> int:
    runner = REPO / "benchmarks" / "run.py"
    if not runner.is_file():
        raise UserError(f"no benchmark runner at {runner}; run from a checkout of the repository.")
    cmd = [sys.executable, "-m", "benchmarks.run", *args.args]
    _say("running " + " ".join(cmd[1:]) + f" in {REPO} ...")
    return subprocess.call(cmd, cwd=REPO)


# ----------------------------------------------------------------------------------------------
# parser


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors and help text that can be computed when asked for."""

    epilog_fn = None

    def format_help(self):
        if self.epilog_fn is not None:
            self.epilog = self.epilog_fn()  # e.g. the method list: imports jax only for --help
        return super().format_help()

    def error(self, message):
        self.exit(2, f"ecgi-jax: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ecgi-jax`` argument parser (all subcommands)."""
    raw = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="ecgi-jax", description="Inverse ECG modelling (ECGI) in JAX.", formatter_class=raw,
                epilog="Run 'ecgi-jax COMMAND --help' for the options of a command.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    cache_help = ("do not keep compiled programs on disk (by default demo, simulate, forward and solve keep them in "
                  "$ECGI_JAX_CACHE/xla or ~/.cache/ecgi_jax/xla, so a later run loads instead of compiling them)")
    p.add_argument("--no-compile-cache", action="store_true", help=cache_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    common.add_argument("--no-compile-cache", action="store_true", default=argparse.SUPPRESS, help=cache_help)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "demo", parents=[common], formatter_class=raw,
        help="built-in geometry -> a beat the inverse's model did not generate -> noisy ECG -> Tikhonov, spatiotemporal and EAND-ARN, with figures",
        description="The whole pipeline on the built-in heart-torso phantom, off the inverse crime: the truth is a "
        "Mitchell-Schaeffer beat on a 4x finer heart mesh (cotangent Laplacian) with its own BEM; the methods get the "
        "coarse mesh, its own BEM and Huiskamp's Laplacian (ecgi_jax.noncrime). Writes summary.json, "
        "potentials.npz, one solution file per method (load with ecgi_jax.io.load_solution) and "
        "figures (heart_maps.png, activation_map.png, time_courses.png, loss_curves.png) to --out.",
    )
    d.add_argument("--pacing", type=int, default=123, help="pacing node of the simulated beat (default 123)")
    d.add_argument("--n-heart", type=int, default=400, help="nodes of the inverse's heart mesh (default 400; the truth's ~4x)")
    d.add_argument("--sigma", type=float, default=0.1, help="relative noise level (default 0.1)")
    d.add_argument("--samples", type=int, default=400, help="time samples, dt = 0.1 (default 400)")
    d.add_argument("--steps", type=int, default=None, help="EAND-ARN training steps (default: the library's)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    d.add_argument("--xdmf", action="store_true", help="also write ParaView time series (.xdmf, ~10 MB each)")
    d.add_argument("--no-figures", action="store_true", help="skip the figures")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)

    s = sub.add_parser("simulate", parents=[common], help="simulate an Aliev-Panfilov beat on a heart mesh",
                       description="Simulate one paced Aliev-Panfilov beat; writes U, V (nodes x samples), dt, "
                       "vertices, triangles to an .npz.")
    s.add_argument("--mesh", help="heart mesh (any meshio format, or .npz with vertices/triangles); default: the built-in heart")
    s.add_argument("--pacing", type=int, default=0, help="pacing node (default 0)")
    s.add_argument("--samples", type=int, default=661, help="time samples (default 661)")
    s.add_argument("--dt", type=float, default=0.1, help="sample spacing in AP time units (default 0.1)")
    s.add_argument("--D", type=float, default=10.0, help="diffusion coefficient (mm^2 per AP time unit)")
    s.add_argument("--out", default="simulation.npz", help="output .npz (default simulation.npz)")
    s.set_defaults(func=_simulate)

    f = sub.add_parser(
        "forward", parents=[common], formatter_class=raw, help="BEM transfer matrix A from heart and torso mesh files",
        description="Build the boundary-element transfer matrix A (torso potentials = A @ heart potentials)\n"
        "from closed heart and torso surfaces (same frame and units, outward normals). Writes A\n"
        "(and, with --potentials, the body potentials Y = A U [+ noise]) to an .npz.",
    )
    f.add_argument("--heart", required=True, help="heart surface (any meshio format, or .npz with vertices/triangles)")
    f.add_argument("--torso", required=True, help="torso surface (same)")
    f.add_argument("--electrodes", help="torso node indices to keep as rows: a .npy/text file or a list 1,5,9 (default: all nodes)")
    f.add_argument("--reference", choices=["none", "mean"], default="none",
                   help="'none' (default): constant heart potential -> the same constant on the torso, needed "
                   "by tikhonov-2 to determine the mean; 'mean': zero-mean torso potentials")
    f.add_argument("--potentials", metavar="PATH[:NAME]", help="heart potentials U (nodes x samples) to map to Y, e.g. sim.npz:U")
    f.add_argument("--sigma", type=float, default=0.0, help="noise added to Y: sigma * std(AU) * N(0,1) (default 0)")
    f.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    f.add_argument("--out", default="forward.npz", help="output .npz (default forward.npz)")
    f.set_defaults(func=_forward)

    v = sub.add_parser(
        "solve", parents=[common], formatter_class=raw, help="reconstruct heart potentials from body potentials",
        description="Solve the inverse problem Y = A U for U with any registered method. Arrays are\n"
        "read from .npy, .npz or .mat files; PATH:NAME picks an array from an .npz/.mat holding\n"
        "several. Writes the solution (.npz, see ecgi_jax.io.load_solution) and, with --mesh, a\n"
        "ParaView time series beside it (.xdmf).",
    )
    v.epilog_fn = _methods_epilog
    v.add_argument("--Y", required=True, metavar="PATH[:NAME]", help="body-surface potentials (leads x samples)")
    v.add_argument("--A", required=True, metavar="PATH[:NAME]", help="transfer matrix (leads x heart nodes)")
    v.add_argument("--method", default="tikhonov-2", help="inverse method (default tikhonov-2; list below)")
    v.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="method option (repeatable)")
    v.add_argument("--laplacian", metavar="MESH", help="heart mesh file to build the surface Laplacian from")
    v.add_argument("--mesh", metavar="MESH", help="heart mesh file: writes the .xdmf and gives vertices/adjacency to methods that use them")
    v.add_argument("--truth", metavar="PATH[:NAME]", help="ground-truth potentials (nodes x samples): stored, and the error is reported")
    v.add_argument("--dt", type=float, help="sample spacing: time axis of the output, and dt of methods that take it")
    v.add_argument("--length-unit", choices=["um", "mm", "cm", "m"], default=None,
                   help="unit of the --mesh/--laplacian coordinates: converted to mm, an implausible spacing refused")
    v.add_argument("--time-unit", choices=["ap", "ms", "s"], default="ap",
                   help="unit of --dt (default ap: the Aliev-Panfilov model's); reported times come back in it")
    v.add_argument("--time-scale", type=float, default=None,
                   help="one AP time unit in --time-unit (default 10 ms; ecgi_jax.ep.time_scale reads it from an APD or CV)")
    v.add_argument("--seed", type=int, default=0, help="PRNG seed for methods that take a key (default 0)")
    v.add_argument("--out", default="solution.npz", help="output .npz (default solution.npz)")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=_solve)

    names = _experiment_names()
    e = sub.add_parser(
        "experiment", parents=[common], formatter_class=raw, help="run experiments/NAME.py" + (f" (NAME: {', '.join(names)})" if names else ""),
        description="Run experiments/NAME.py's main(ARGS). 'ecgi-jax experiment NAME --help' shows its options.",
        epilog="experiments: " + (", ".join(names) if names else "none found (run from a checkout of the repository)"),
    )
    e.add_argument("name", metavar="NAME", help="experiment name (file name without .py)")
    e.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the experiment")
    e.set_defaults(func=_experiment)

    b = sub.add_parser("bench", parents=[common], help="run the benchmarks (python -m benchmarks.run ARGS)",
                       description="Run the repository's benchmarks: python -m benchmarks.run ARGS, from the repository root. "
                       "'ecgi-jax bench --help' shows this help; 'ecgi-jax bench -- --help' the runner's.")
    b.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to benchmarks.run")
    b.set_defaults(func=_bench)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "bench" belongs to the benchmark runner (argparse would claim its flags).
    i = next((k for k, a in enumerate(argv) if not a.startswith("-")), None)
    passthrough = None
    if i is not None and argv[i] == "bench" and argv[i + 1:] not in (["-h"], ["--help"]):
        argv, passthrough = argv[: i + 1], argv[i + 1:]
        if passthrough[:1] == ["--"]:
            passthrough = passthrough[1:]
    args = parser.parse_args(argv)
    if passthrough is not None:
        args.args = passthrough
    try:
        # experiment and bench start their own processes: benchmarks time fresh compilations.
        if args.command in ("demo", "simulate", "forward", "solve") and not args.no_compile_cache:
            from ._compilation_cache import use_compilation_cache

            use_compilation_cache()
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as e:
        # UserError: the CLI's own checks. ValueError / FileNotFoundError / OSError: the library's
        # messages about bad inputs (shapes, NaNs, unknown names, unreadable or unwritable files).
        if args.debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"ecgi-jax: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecgi-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
