"""Result files and input readers (ecgi_jax.io): round trips, XDMF read back, clear errors."""

from __future__ import annotations

import json
import os

import meshio
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from ecgi_jax import Result, Solution, geometry, io, operators
from ecgi_jax.ep import APParams


@pytest.fixture(scope="module")
def sphere():
    return geometry.icosphere(1, 10.0)  # 42 vertices, 80 triangles


def _solution(n, n_t, rng):
    U = rng.normal(size=(n, n_t)).astype(np.float32)
    return Solution(
        potentials=U,
        method="eand-arn",
        diagnostics={
            "lam": 0.25, "never": float("nan"), "curve": np.arange(5.0), "big": rng.normal(size=(200, 60)),
            "nested": {"alpha": [0.5, np.float32(0.25)]}, "flag": np.bool_(True), "count": np.int64(7),
        },
        options={"steps": 10, "weights": (1.0, 0.5), "laplacian": operators.SparseOperator.from_scipy(
            scipy.sparse.eye(n, format="csr")), "ap_params": APParams(), "start": "pacing",
            "adjacency": (np.arange(n + 1), np.arange(3))},
        recovery=(0.5 * U).astype(np.float32),
        history={"step": [10, 20], "loss": [2.0, 1.0], "data": [0.5, 0.25]},
        result=Result.DIVERGED,
    )


def test_npz_round_trip_arrays_and_metadata(tmp_path, sphere):
    rng = np.random.default_rng(0)
    sol = _solution(sphere.n_vertices, 6, rng)
    truth = rng.normal(size=(sphere.n_vertices, 6))
    times = np.arange(6) * 0.1
    written = io.save_solution(tmp_path / "s.npz", sol, sphere, times=times, truth=truth, xdmf=False)
    assert written == [tmp_path / "s.npz"]
    got = io.load_solution(tmp_path / "s.npz")
    s = got.solution
    for a, b in ((s.potentials, sol.potentials), (s.recovery, sol.recovery), (got.truth, truth), (got.times, times)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(got.mesh.vertices, sphere.vertices)
    np.testing.assert_array_equal(got.mesh.triangles, sphere.triangles)
    assert s.method == "eand-arn" and s.history == sol.history and s.result is Result.DIVERGED
    d = s.diagnostics
    assert d["lam"] == 0.25 and d["never"] is None and d["curve"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert d["nested"] == {"alpha": [0.5, 0.25]} and d["flag"] is True and d["count"] == 7
    np.testing.assert_array_equal(d["big"], sol.diagnostics["big"])  # stored as an npz entry
    o = s.options
    assert o["steps"] == 10 and o["weights"] == [1.0, 0.5] and o["start"] == "pacing"
    assert o["laplacian"] == f"<SparseOperator ({sphere.n_vertices}, {sphere.n_vertices})>"
    assert o["ap_params"]["D"] == APParams().D
    assert o["adjacency"] == [f"<ndarray ({sphere.n_vertices + 1},)>", [0, 1, 2]]  # big arrays described
    meta = got.metadata
    assert meta["format"] == io.FORMAT and set(meta["versions"]) == {"ecgi_jax", "jax", "numpy"}
    assert meta["date"].endswith("+00:00")
    # The metadata is strict JSON (no NaN), readable by any JSON parser.
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        json.loads(str(z["metadata"]), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_xdmf_time_series_reads_back_exactly(tmp_path, sphere):
    rng = np.random.default_rng(2)
    sol = _solution(sphere.n_vertices, 4, rng)
    truth = rng.normal(size=(sphere.n_vertices, 4)).astype(np.float32)
    times = np.array([0.0, 0.5, 1.0, 1.5])
    npz, xdmf = io.save_solution(tmp_path / "run.npz", sol, sphere, times=times, truth=truth)
    assert xdmf == tmp_path / "run.xdmf"
    with meshio.xdmf.TimeSeriesReader(xdmf) as reader:
        points, cells = reader.read_points_cells()
        np.testing.assert_array_equal(points, sphere.vertices)
        np.testing.assert_array_equal(cells[0].data, sphere.triangles)
        assert reader.num_steps == 4
        for k in range(4):
            t, point_data, _ = reader.read_data(k)
            assert t == times[k]
            # float32 values written as float64 text come back bit-exact.
            assert np.array_equal(point_data["potential"].astype(np.float32), sol.potentials[:, k])
            assert np.array_equal(point_data["recovery"].astype(np.float32), sol.recovery[:, k])
            assert np.array_equal(point_data["truth"].astype(np.float32), truth[:, k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz", "run.xdmf"]  # no temporary left


def test_save_solution_checks_before_writing(tmp_path, sphere):
    sol = _solution(sphere.n_vertices, 3, np.random.default_rng(3))
    with pytest.raises(ValueError, match="mesh has 12 vertices"):
        io.save_solution(tmp_path / "x.npz", sol, geometry.icosphere(0))
    with pytest.raises(ValueError, match=r"truth has shape \(5, 3\)"):
        io.save_solution(tmp_path / "x.npz", sol, truth=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="needs the heart mesh"):
        io.save_solution(tmp_path / "x.npz", sol, xdmf=True)
    with pytest.raises(ValueError, match="give a .npz path"):
        io.save_solution(tmp_path / "x.xdmf", sol, sphere)
    with pytest.raises(ValueError, match="integer indices into the 42 vertices"):
        io.save_solution(tmp_path / "x.npz", sol, (sphere.vertices, sphere.triangles + 1))
    assert list(tmp_path.iterdir()) == []


def test_load_solution_rejects_other_files(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an ecgi_jax solution file"):
        io.load_solution(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        io.load_solution(tmp_path / "missing.npz")


def test_load_array_formats_and_errors(tmp_path):
    Y = np.arange(12.0).reshape(3, 4)
    A = np.ones((3, 5), np.float32)
    np.save(tmp_path / "y.npy", Y)
    np.savez(tmp_path / "one.npz", Y=Y, dt=0.1)
    np.savez(tmp_path / "two.npz", Y=Y, A=A)
    scipy.io.savemat(tmp_path / "m.mat", {"Y": Y, "A": A})
    scipy.io.savemat(tmp_path / "single.mat", {"A": A, "label": np.array([1.0, 2.0])})
    assert np.array_equal(io.load_array(tmp_path / "y.npy"), Y)
    assert np.array_equal(io.load_array(tmp_path / "one.npz"), Y)  # the single 2-D array
    assert io.load_array(tmp_path / "two.npz", "A").dtype == np.float32
    assert np.array_equal(io.load_array(tmp_path / "m.mat", "Y"), Y)
    assert np.array_equal(io.load_array(tmp_path / "single.mat"), A)
    with pytest.raises(ValueError, match=r"2 2-D matrices \(Y \(3, 4\), A \(3, 5\)\)"):
        io.load_array(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="no array named 'B'; it holds: Y"):
        io.load_array(tmp_path / "m.mat", "B")
    with pytest.raises(ValueError, match="drop the name"):
        io.load_array(tmp_path / "y.npy", "Y")
    with pytest.raises(FileNotFoundError):
        io.load_array(tmp_path / "nothing.npy")
    (tmp_path / "y.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.npy, \.npz or \.mat"):
        io.load_array(tmp_path / "y.csv")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays are refused"):
        io.load_array(tmp_path / "obj.npy")


def test_load_mesh_meshio_and_npz(tmp_path, sphere):
    geometry.save_mesh(tmp_path / "h.vtk", sphere)
    np.savez(tmp_path / "h.npz", vertices=sphere.vertices, triangles=sphere.triangles)
    for name in ("h.vtk", "h.npz"):
        m = io.load_mesh(tmp_path / name)
        np.testing.assert_allclose(m.vertices, sphere.vertices)
        np.testing.assert_array_equal(m.triangles, sphere.triangles)
    np.savez(tmp_path / "bad.npz", points=sphere.vertices)
    with pytest.raises(ValueError, match="no array named 'vertices'"):
        io.load_mesh(tmp_path / "bad.npz")


def _resave(src, dst, **changes):
    """Copy of the solution file ``src`` at ``dst`` with entries replaced (None: removed)."""
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(dst, **data)
    return dst


def test_load_solution_names_the_file_and_the_damage_in_its_metadata(tmp_path, sphere):
    good = io.save_solution(tmp_path / "good.npz", _solution(sphere.n_vertices, 4, np.random.default_rng(5)), sphere, xdmf=False)[0]
    with np.load(good, allow_pickle=False) as z:
        meta = json.loads(str(z["metadata"]))
    without = lambda key: json.dumps({k: v for k, v in meta.items() if k != key})  # noqa: E731
    cases = [
        ({"metadata": np.array('{"format": "ecgi_jax.solution/1", "method": ')}, "damaged metadata: it is not valid JSON"),
        ({"metadata": np.array("[1, 2, 3]")}, "damaged metadata: expected a JSON object, got a list"),
        ({"metadata": np.arange(3.0)}, "damaged metadata: the 'metadata' entry must be one JSON string"),
        ({"metadata": np.array(without("history_keys"))}, "damaged metadata: the field\\(s\\) 'history_keys' are missing"),
        ({"metadata": np.array(json.dumps({**meta, "options": [1]}))}, "damaged metadata: 'options' should be a dict"),
        ({"history.loss": None}, "history entry whose array 'history.loss' is missing"),
        ({"diagnostics.big": None}, "diagnostics array 'diagnostics.big' that is missing"),
        ({"triangles": None}, "holds vertices but not triangles"),
        ({"recovery": np.zeros(3)}, "'recovery' has shape \\(3,\\)"),
    ]
    for i, (changes, match) in enumerate(cases):
        bad = _resave(good, tmp_path / f"bad{i}.npz", **changes)
        with pytest.raises(ValueError, match=match) as e:
            io.load_solution(bad)
        assert type(e.value) is ValueError and str(bad) in str(e.value), (changes.keys(), e.value)


def test_random_bytes_named_npz_or_npy_are_refused_with_our_message(tmp_path, sphere):
    rng = np.random.default_rng(0)
    good = io.save_solution(tmp_path / "good.npz", _solution(sphere.n_vertices, 4, rng), xdmf=False)[0]
    junk = tmp_path / "junk.npz"
    junk.write_bytes(rng.bytes(300))
    junk_npy = tmp_path / "junk.npy"
    junk_npy.write_bytes(rng.bytes(300))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:400])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = [
        (lambda: io.load_solution(junk), junk, "is not a valid .npz file \\(it does not start like a .npz file\\)"),
        (lambda: io.load_array(junk), junk, "is not a valid .npz file"),
        (lambda: io.load_mesh(junk), junk, "is not a valid .npz file"),
        (lambda: io.load_array(junk_npy), junk_npy, "is not a valid .npy file"),
        (lambda: io.load_solution(empty), empty, "is not a valid .npz file \\(no data at all\\)"),
        (lambda: io.load_solution(truncated), truncated, "is not a valid .npz file \\(corrupt or truncated\\)"),
        (lambda: io.load_array(tmp_path / "obj.npy"), tmp_path / "obj.npy", "object arrays are refused"),
    ]
    for call, path, match in cases:
        with pytest.raises(ValueError, match=match) as e:
            call()
        assert str(path) in str(e.value)
        assert "allow_pickle" not in str(e.value) and "unsafely" not in str(e.value), e.value


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_next_write_removes_temporaries_left_by_a_killed_writer(tmp_path, sphere):
    import tempfile

    sol = _solution(sphere.n_vertices, 4, np.random.default_rng(6))
    io.save_solution(tmp_path / "s.npz", sol, sphere)
    # What SIGKILL in the middle of geometry.atomic_write leaves: ".<stem>.<8 random>.<suffix>".
    for suffix in (".npz", ".npz", ".xdmf"):
        fd, _ = tempfile.mkstemp(prefix=".s.", suffix=suffix, dir=tmp_path)
        os.write(fd, b"half written")
        os.close(fd)
    keep = [".s.npz", ".s.12345678.npy", ".other.abcdefgh.npz", ".s.abc.npz"]  # not temporaries of s.npz / s.xdmf
    for name in keep:
        (tmp_path / name).write_bytes(b"user file")
    assert len(_temporaries(tmp_path)) == 3 + len(keep)
    io.save_solution(tmp_path / "s.npz", sol, sphere)
    assert _temporaries(tmp_path) == sorted(keep)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["s.npz", "s.xdmf"]
    assert io.load_solution(tmp_path / "s.npz").solution.method == "eand-arn"


def test_every_atomic_writer_removes_a_killed_writers_temporaries(tmp_path, sphere):
    """Not only save_solution: a mesh written by geometry.save_mesh (and so the CLI's outputs,
    which go through the same atomic_write) cleans up what a killed writer of it left."""
    import tempfile

    from ecgi_jax.geometry import save_mesh

    fd, orphan = tempfile.mkstemp(prefix=".heart.", suffix=".vtk", dir=tmp_path)
    os.write(fd, b"half written")
    os.close(fd)
    save_mesh(tmp_path / "heart.vtk", sphere)
    assert not os.path.exists(orphan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heart.vtk"]


def test_a_live_writers_temporary_is_left_alone(tmp_path, sphere):
    fcntl = pytest.importorskip("fcntl")
    tmp = tmp_path / ".s.abcd1234.npz"
    with open(tmp, "wb") as f:  # another process still writing s.npz holds its temporary file locked
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(b"in progress")
        f.flush()
        io.save_solution(tmp_path / "s.npz", _solution(sphere.n_vertices, 4, np.random.default_rng(7)), xdmf=False)
        assert tmp.read_bytes() == b"in progress"
    io.save_solution(tmp_path / "s.npz", _solution(sphere.n_vertices, 4, np.random.default_rng(7)), xdmf=False)
    assert not tmp.exists()  # its writer gone, it is stale


KILLED_WRITER = """
import sys, time
import numpy as np
from ecgi_jax import Solution, io

def stuck(f, **arrays):  # np.savez that writes half the file, then hangs until killed
    f.write(b"PK half")
    f.flush()
    print("WRITING", flush=True)
    time.sleep(600)

np.savez = stuck
io.save_solution(sys.argv[1], Solution(np.ones((3, 4), np.float32), "tikhonov-0", {}, {}))
"""


def test_sigkill_during_save_solution_leaves_no_orphan_after_the_next_save(tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "child.py"
    script.write_text(KILLED_WRITER)
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(2):  # each kill leaves one temporary file
        proc = subprocess.Popen([sys.executable, str(script), str(out / "s.npz")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout.readline().strip() == b"WRITING", proc.stderr.read().decode()[-2000:]
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert _temporaries(out) and not (out / "s.npz").exists()  # killed mid-write: an orphan (the second run removed the first)
    io.save_solution(out / "s.npz", Solution(np.ones((3, 4), np.float32), "tikhonov-0", {}, {}))
    assert sorted(p.name for p in out.iterdir()) == ["s.npz"]
