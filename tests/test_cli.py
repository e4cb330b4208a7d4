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
