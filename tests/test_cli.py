"""The ``ecgi-jax`` command line: an end-to-end run in subprocesses, the rest in-process.

Subprocesses are few (each pays for importing jax): simulate -> forward -> solve on tiny
icospheres, and one user error. Everything else calls ``cli.main([...])`` directly.
"""

from __future__ import annotations

import os
import subprocess
import sys

import meshio
import numpy as np
import pytest

from ecgi_jax import METHODS, cli, forward, geometry, io, operators, solve


def _run(*args, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "ecgi_jax.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    d = tmp_path_factory.mktemp("meshes")
    heart, torso = geometry.icosphere(1, 30.0), geometry.icosphere(1, 80.0)  # 42 nodes each
    geometry.save_mesh(d / "heart.vtk", heart)
    geometry.save_mesh(d / "torso.obj", torso)
    return d, heart, torso


def test_simulate_forward_solve_end_to_end(meshes):
    d, heart, torso = meshes
    r = _run("simulate", "--mesh", "heart.vtk", "--samples", "30", "--pacing", "3", "--out", "sim.npz", cwd=d)
    assert r.returncode == 0, r.stderr
    r = _run("forward", "--heart", "heart.vtk", "--torso", "torso.obj", "--potentials", "sim.npz:U", "--out", "fwd.npz", cwd=d)
    assert r.returncode == 0, r.stderr
    r = _run(
        "solve", "--Y", "fwd.npz:Y", "--A", "fwd.npz:A", "--method", "tikhonov-2", "--laplacian", "heart.vtk",
        "--mesh", "heart.vtk", "--truth", "sim.npz:U", "--dt", "0.1", "--option", "lambda_rule=lcurve", "--out", "sol.npz", cwd=d,
    )
    assert r.returncode == 0, r.stderr
    assert "relative error vs --truth" in r.stdout

    sim = np.load(d / "sim.npz")
    U = sim["U"]
    assert U.shape == (heart.n_vertices, 30) and U[3, 0] == 1.0  # paced node starts excited
    # forward: the BEM matrix of the same meshes, and noiseless Y = A U.
    fwd = np.load(d / "fwd.npz")
    A = forward.transfer_matrix(io.load_mesh(d / "heart.vtk"), io.load_mesh(d / "torso.obj"), reference="none")
    np.testing.assert_allclose(fwd["A"], A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fwd["Y"], A @ U, rtol=1e-12, atol=1e-12)
    # solve: the same answer as the library called directly with the same options.
    got = io.load_solution(d / "sol.npz")
    lap = operators.huiskamp_laplacian(heart.vertices, heart.adjacency)
    want = solve(fwd["Y"], fwd["A"], method="tikhonov-2", laplacian=lap, lambda_rule="lcurve", truth=U)
    np.testing.assert_allclose(got.solution.potentials, np.asarray(want.potentials), rtol=1e-5, atol=1e-6)
    assert got.solution.method == "tikhonov-2" and got.solution.options["lambda_rule"] == "lcurve"
    assert got.solution.diagnostics["lam"] == pytest.approx(want.diagnostics["lam"], rel=1e-5)
    np.testing.assert_array_equal(got.truth, U)
    np.testing.assert_allclose(got.times, np.arange(30) * 0.1)
    # The ParaView time series holds the same potentials.
    with meshio.xdmf.TimeSeriesReader(d / "sol.xdmf") as reader:
        reader.read_points_cells()
        assert reader.num_steps == 30
        t, point_data, _ = reader.read_data(12)
    assert t == pytest.approx(1.2)
    np.testing.assert_array_equal(point_data["potential"].astype(got.solution.potentials.dtype), got.solution.potentials[:, 12])


def test_user_error_in_a_subprocess_is_one_line(tmp_path):
    r = _run("solve", "--Y", "missing.npy", "--A", "missing.npy", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["ecgi-jax: error: --Y: No file at missing.npy."]
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    d = tmp_path_factory.mktemp("arrays")
    rng = np.random.default_rng(0)
    A = rng.normal(size=(10, 12)).astype(np.float32)
    np.save(d / "A.npy", A)
    np.save(d / "Y.npy", A @ rng.normal(size=(12, 5)).astype(np.float32))
    np.save(d / "Y_bad.npy", np.zeros((9, 5), np.float32))
    return d


def _error(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("ecgi-jax: error: "), err
    return err[0]


def test_user_mistakes_are_one_line_errors(capsys, arrays):
    d = str(arrays)
    base = ["solve", "--Y", f"{d}/Y.npy", "--A", f"{d}/A.npy"]
    assert "unknown method 'nope'" in _error(capsys, [*base, "--method", "nope"])
    assert "expects KEY=VALUE" in _error(capsys, [*base, "--option", "lam"])
    assert "takes no option(s) ['bogus']" in _error(capsys, [*base, "--option", "bogus=1"])
    assert "does not use --laplacian" in _error(capsys, [*base, "--method", "tikhonov-0", "--laplacian", f"{d}/h.vtk"])
    assert "same number of rows" in _error(capsys, ["solve", "--Y", f"{d}/Y_bad.npy", "--A", f"{d}/A.npy"])
    assert "No mesh file at" in _error(capsys, ["forward", "--heart", f"{d}/none.vtk", "--torso", f"{d}/none.vtk"])
    assert "unknown experiment 'nope'" in _error(capsys, ["experiment", "nope"])
    # A ValueError from the library itself (tikhonov-0 refuses a negative lam) is reported the same way.
    assert "lam" in _error(capsys, [*base, "--method", "tikhonov-0", "--option", "lam=-1.0"])
    # argparse's own errors: one line, status 2.
    with pytest.raises(SystemExit) as e:
        cli.main(["solve", "--Y", f"{d}/Y.npy"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "ecgi-jax: error: the following arguments are required: --A (see 'ecgi-jax solve --help')"
    ]


def test_debug_shows_the_exception(arrays):
    with pytest.raises(cli.UserError, match="unknown method"):
        cli.main(["--debug", "solve", "--Y", f"{arrays}/Y.npy", "--A", f"{arrays}/A.npy", "--method", "nope"])
    with pytest.raises(cli.UserError, match="unknown method"):
        cli.main(["solve", "--debug", "--Y", f"{arrays}/Y.npy", "--A", f"{arrays}/A.npy", "--method", "nope"])


def test_parse_option():
    assert cli.parse_option("lam=0.1") == ("lam", 0.1)
    assert cli.parse_option("weights=(1, 0.5, 0)") == ("weights", (1, 0.5, 0))
    assert cli.parse_option("lambda_rule=gcv") == ("lambda_rule", "gcv")
    assert cli.parse_option("windows=None") == ("windows", None)
    assert cli.parse_option("adaptive = False") == ("adaptive", False)
    for bad in ("lam", "=1", "2x=1"):
        with pytest.raises(cli.UserError, match="KEY=VALUE"):
            cli.parse_option(bad)


def test_help_lists_methods_and_experiments(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["solve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in METHODS)
    with pytest.raises(SystemExit):
        cli.main(["experiment", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in cli._experiment_names())
    for command in ("demo", "simulate", "forward", "bench"):
        with pytest.raises(SystemExit) as e:
            cli.main([command, "--help"])
        assert e.value.code == 0 and f"usage: ecgi-jax {command}" in capsys.readouterr().out


def test_experiment_runs_main_with_the_arguments(tmp_path, monkeypatch, capsys):
    exp = tmp_path / "experiments"
    exp.mkdir()
    (exp / "hello.py").write_text(
        "import json, pathlib\n"
        "def main(argv=None):\n"
        f"    pathlib.Path({str(tmp_path / 'argv.json')!r}).write_text(json.dumps(argv))\n"
        "    return 3\n"
    )
    (exp / "rows.py").write_text("def main(argv=None):\n    return [{'re': 0.1}]\n")  # returns its results
    (exp / "nomain.py").write_text("x = 1\n")
    monkeypatch.setattr(cli, "_experiments_dir", lambda: exp)
    assert cli.main(["experiment", "hello", "--sigmas", "0.1", "--quick"]) == 3
    assert (tmp_path / "argv.json").read_text() == '["--sigmas", "0.1", "--quick"]'
    assert cli.main(["experiment", "rows"]) == 0
    assert "has no main(argv)" in _error(capsys, ["experiment", "nomain"])


def test_bench_passes_arguments_through(tmp_path, monkeypatch, capsys):
    (tmp_path / "benchmarks").mkdir()
    monkeypatch.setattr(cli, "REPO", tmp_path)
    assert "no benchmark runner" in _error(capsys, ["bench"])
    (tmp_path / "benchmarks" / "run.py").write_text("")
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd: calls.append((cmd, cwd)) or 5)
    assert cli.main(["bench", "--quick", "-k", "solve"]) == 5
    assert cli.main(["bench", "--", "--help"]) == 5
    assert calls == [
        ([sys.executable, "-m", "benchmarks.run", "--quick", "-k", "solve"], tmp_path),
        ([sys.executable, "-m", "benchmarks.run", "--help"], tmp_path),
    ]


# ----------------------------------------------------------------------------------------------
# --out never replaces an input of the same command


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study folder (the working directory): study.npz (Y, A, U), a heart mesh, electrodes."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(10, 42))
    U = rng.normal(size=(42, 5))
    np.savez(tmp_path / "study.npz", Y=A @ U, A=A, U=U)
    heart = geometry.icosphere(1, 30.0)
    np.savez(tmp_path / "heart.npz", vertices=heart.vertices, triangles=heart.triangles)
    geometry.save_mesh(tmp_path / "torso.obj", geometry.icosphere(1, 80.0))
    (tmp_path / "heart.xdmf").write_text("<Xdmf/>")  # stands for a ParaView heart mesh
    np.savetxt(tmp_path / "electrodes.txt", [0, 3, 7], fmt="%d")
    return tmp_path


def _refused(capsys, argv, flag, path):
    before = path.read_bytes()
    msg = _error(capsys, argv)
    assert "input file" in msg and flag in msg and "Choose another --out" in msg, msg
    assert path.read_bytes() == before  # the input is intact
    return msg


def test_out_that_is_an_input_is_refused(study, capsys):
    solve_args = ["solve", "--Y", "study.npz:Y", "--A", "study.npz:A", "--method", "tikhonov-0", "--option", "lam=0.1"]
    # Was: exit 0 and study.npz replaced by the solution.
    msg = _refused(capsys, [*solve_args, "--out", "study.npz"], "--Y", study / "study.npz")
    assert msg == (
        "ecgi-jax: error: --out (study.npz) is the --Y input file (study.npz:Y); writing it would "
        "destroy the input. Choose another --out."
    )
    # The same file reached by another spelling: relative with "..", absolute, through a symlink,
    # a hard link.
    (study / "sub").mkdir()
    (study / "link.npz").symlink_to(study / "study.npz")
    os.link(study / "study.npz", study / "hard.npz")
    for out in ("sub/../study.npz", str(study / "study.npz"), "link.npz", "hard.npz"):
        _refused(capsys, [*solve_args, "--out", out], "--Y", study / "study.npz")
    _refused(capsys, ["solve", "--Y", "link.npz:Y", "--A", "link.npz:A", "--out", "study.npz"], "--Y", study / "study.npz")
    # Every input of solve: --A, --truth, --laplacian, --mesh, and the .xdmf written beside --out.
    np.save(study / "Y.npy", np.load(study / "study.npz")["Y"])
    only_y = ["solve", "--Y", "Y.npy", "--A", "study.npz:A"]
    _refused(capsys, [*only_y, "--out", "./study.npz"], "--A", study / "study.npz")
    _refused(capsys, ["solve", "--Y", "Y.npy", "--A", "Y.npy", "--truth", "study.npz:U", "--out", "study.npz"], "--truth", study / "study.npz")
    _refused(capsys, [*only_y, "--laplacian", "heart.npz", "--out", "heart.npz"], "--laplacian", study / "heart.npz")
    msg = _refused(capsys, [*only_y, "--mesh", "heart.xdmf", "--out", "sub/../heart.npz"], "--mesh", study / "heart.xdmf")
    assert "the .xdmf beside --out (sub/../heart.xdmf)" in msg
    # forward: --heart, --torso, --potentials, an --electrodes file.
    fwd = ["forward", "--heart", "heart.npz", "--torso", "torso.obj"]
    _refused(capsys, [*fwd, "--out", "heart.npz"], "--heart", study / "heart.npz")
    _refused(capsys, [*fwd, "--out", "torso.obj"], "--torso", study / "torso.obj")
    _refused(capsys, [*fwd, "--potentials", "study.npz:U", "--out", "study.npz"], "--potentials", study / "study.npz")
    _refused(capsys, [*fwd, "--electrodes", "electrodes.txt", "--out", "electrodes.txt"], "--electrodes", study / "electrodes.txt")
    # simulate: --mesh.
    _refused(capsys, ["simulate", "--mesh", "heart.npz", "--samples", "3", "--out", "heart.npz"], "--mesh", study / "heart.npz")


def test_out_beside_the_inputs_is_written(study, capsys):
    """The check refuses only real collisions: another name in the same folder is fine."""
    argv = ["solve", "--Y", "study.npz:Y", "--A", "study.npz:A", "--method", "tikhonov-0", "--option", "lam=0.1"]
    assert cli.main([*argv, "--out", "study_solution.npz"]) == 0
    assert io.load_solution(study / "study_solution.npz").solution.potentials.shape == (42, 5)
    assert cli.main([*argv, "--truth", "study.npz:U", "--out", "sub/study.npz"]) == 0, capsys.readouterr().err
    assert io.load_solution(study / "sub" / "study.npz").truth.shape == (42, 5)
    assert sorted(np.load(study / "study.npz").files) == ["A", "U", "Y"]


def test_electrodes_file_forms(tmp_path):
    """--electrodes: a boolean mask .npy selects its True nodes; a corrupt .npy is refused with our
    message (never numpy's allow_pickle advice); a mask of the wrong length names both lengths."""
    from ecgi_jax.cli import UserError, _parse_electrodes

    mask = np.zeros(10, bool)
    mask[[1, 4]] = True
    np.save(tmp_path / "mask.npy", mask)
    np.testing.assert_array_equal(_parse_electrodes(str(tmp_path / "mask.npy"), 10), [1, 4])
    with pytest.raises(UserError, match="one entry per torso node \\(12\\); got 10"):
        _parse_electrodes(str(tmp_path / "mask.npy"), 12)
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    with pytest.raises(UserError, match="--electrodes: could not read") as info:
        _parse_electrodes(str(tmp_path / "junk.npy"), 10)
    assert "allow_pickle" not in str(info.value)


def test_demo_is_a_library_call_and_refuses_bad_settings_before_work(tmp_path, capsys):
    from ecgi_jax.demo import run_demo

    for kw in (dict(sigma=-0.1), dict(samples=5), dict(n_heart=50)):
        with pytest.raises(ValueError, match="--sigma must be >= 0, --samples >= 10"):
            run_demo(tmp_path / "d", say=lambda m: None, **kw)
    assert cli.main(["demo", "--sigma", "-1", "--out", str(tmp_path / "d")]) == 2
    assert "ecgi-jax: error: --sigma must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # nothing written before the settings were checked


def test_solve_in_physical_units(tmp_path, capsys):
    """A heart mesh in metres and samples in ms through the command line: the same fit as in mm
    and AP units, the activation times and the time axis back in ms; a unit that does not fit the
    mesh is a one-line error naming the one that does."""
    from ecgi_jax.solvers.activation import upstroke

    heart, torso = geometry.icosphere(2, 40.0), geometry.icosphere(2, 100.0)
    A = forward.transfer_matrix(heart, torso).astype(np.float32)
    tau = 40.0 * np.arccos(np.clip(heart.vertices[:, 2] / 40.0, -1, 1)) + 10.0  # ms
    np.save(tmp_path / "Y.npy", (A @ np.asarray(upstroke(tau, np.arange(160.0), 3.0))).astype(np.float32))
    np.save(tmp_path / "A.npy", A)
    geometry.save_mesh(tmp_path / "heart_m.vtk", heart.scaled(1e-3))
    geometry.save_mesh(tmp_path / "heart_mm.vtk", heart)
    base = ["solve", "--Y", f"{tmp_path}/Y.npy", "--A", f"{tmp_path}/A.npy", "--method", "activation-based", "--quiet"]
    ms = [*base, "--laplacian", f"{tmp_path}/heart_m.vtk", "--length-unit", "m", "--dt", "1", "--time-unit", "ms",
          "--option", "upstroke_width=0.3", "--out", f"{tmp_path}/ms.npz"]
    ap = [*base, "--laplacian", f"{tmp_path}/heart_mm.vtk", "--dt", "0.1", "--option", "upstroke_width=0.3", "--out", f"{tmp_path}/ap.npz"]
    assert cli.main(ms) == 0 and cli.main(ap) == 0
    got_ms, got_ap = io.load_solution(tmp_path / "ms.npz"), io.load_solution(tmp_path / "ap.npz")
    np.testing.assert_allclose(got_ms.solution.potentials, got_ap.solution.potentials, atol=1e-5)
    np.testing.assert_allclose(got_ms.solution.diagnostics["activation_times"],
                               10.0 * np.asarray(got_ap.solution.diagnostics["activation_times"]), rtol=1e-5)
    assert got_ms.solution.diagnostics["time_unit"] == "ms"
    np.testing.assert_allclose(got_ms.times, np.arange(160.0))
    capsys.readouterr()
    assert "length_unit='m'" in _error(capsys, [*base, "--laplacian", f"{tmp_path}/heart_m.vtk", "--length-unit", "mm"])
    assert "pass --dt" in _error(capsys, [*base, "--time-unit", "ms"])


CACHE_SCRIPT = """
import sys, jax, jax.numpy as jnp
from ecgi_jax import use_compilation_cache
folder = sys.argv[1]
open(folder + "-file", "w").close()
assert use_compilation_cache(folder + "-file/xla") is None  # cannot be made: nothing cached, nothing configured
assert use_compilation_cache(folder) is not None
assert use_compilation_cache(folder + "-other") == __import__("pathlib").Path(folder)  # configured: left alone
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("/cache_hits") else None)
f = lambda x: jnp.sin(x) @ x  # noqa: E731
first = float(jax.jit(f)(jnp.ones((3, 3))).sum())
n_before = len(hits)
jax.clear_caches()  # the next compilation must come from the folder
again = float(jax.jit(f)(jnp.ones((3, 3))).sum())
print(first == again, len(hits) > n_before)
"""


def test_compiled_programs_are_kept_on_disk_and_a_configured_cache_is_left_alone(tmp_path):
    import os
    import subprocess
    import sys

    from ecgi_jax import use_compilation_cache

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE") and not k.startswith("JAX_PERSISTENT")}
    folder = tmp_path / "xla"
    # One process: the test session's own jax has its cache configured already (tests/conftest.py).
    r = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, str(folder)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["True", "True"]  # the same result, loaded from the folder
    assert any(f.name.startswith("jit_") for f in folder.iterdir())
    assert not (tmp_path / "xla-other").exists()
    for bad in (0, True, 1.5e9):
        with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
            use_compilation_cache(tmp_path / "x", max_bytes=bad)
