"""Checkpoint and resume of training: a resumed run equals an uninterrupted one bit for bit."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from ecgi_jax import solve
from ecgi_jax.solvers.neural import TrainConfig, run_training

from test_batch import _stack, _toy  # tests/ is on sys.path (pytest rootdir-relative import)

CFG = TrainConfig(steps=200, chunk=20, patience=2, min_delta=0.05, progress=False)


def _checkpoints(directory):
    return sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit())


def test_batched_resume_from_an_earlier_checkpoint_is_identical(tmp_path):
    step, states, problems, keys = _toy()
    args = (step, _stack(states), _stack(problems), _stack(keys), CFG)
    ref_state, ref_hist, ref_info = run_training(*args, names=("fit",), batched=True)
    d = tmp_path / "ckpt"
    state, hist, info = run_training(*args, names=("fit",), batched=True, checkpoint_dir=d, checkpoint_every=1)
    np.testing.assert_array_equal(state.params["w"], ref_state.params["w"])
    # Throw away the final checkpoint: the run resumes from the one before and replays the rest.
    done = _checkpoints(d)
    assert len(done) == 2, done
    shutil.rmtree(d / str(done[-1]))
    state2, hist2, info2 = run_training(*args, names=("fit",), batched=True, checkpoint_dir=d)
    assert info2[0]["resumed_at_chunk"] == done[0]
    np.testing.assert_array_equal(state2.params["w"], ref_state.params["w"])
    np.testing.assert_array_equal(state2.opt_state[0].mu["w"], ref_state.opt_state[0].mu["w"])
    assert hist2 == ref_hist
    assert [i["stopped"] for i in info2] == [i["stopped"] for i in ref_info]
    # A finished run in the folder: nothing left to do, the same result again.
    state3, hist3, _ = run_training(*args, names=("fit",), batched=True, checkpoint_dir=d)
    np.testing.assert_array_equal(state3.params["w"], ref_state.params["w"])
    assert hist3 == ref_hist


def test_checkpoint_of_another_run_is_refused(tmp_path):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different training run"):
        run_training(step, states[0], problems[0], jax.random.key(99), cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path, checkpoint_every=0)


PROBLEM = """
import jax, numpy as np
from ecgi_jax import geometry, operators, solve

def problem():
    mesh = geometry.icosphere(1).scaled(20.0)
    lap = operators.huiskamp_laplacian(mesh.vertices, mesh.adjacency)
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((10, mesh.n_vertices)) / 5).astype(np.float32)
    Y = (A @ rng.random((mesh.n_vertices, 16))).astype(np.float32)
    return Y, A, dict(laplacian=lap, dt=0.1, init="random", width=8, n_blocks=1, steps=40, chunk=2,
                      patience=0, progress=False, key=jax.random.key(3))
"""

CHILD = PROBLEM + textwrap.dedent(
    """
    import sys, time
    from ecgi_jax import _checkpoint

    save = _checkpoint.TrainingCheckpoint.save

    def slow_save(self, *args, **kwargs):  # slow training down so that the parent kills it mid-run
        save(self, *args, **kwargs)
        time.sleep(0.5)

    _checkpoint.TrainingCheckpoint.save = slow_save
    Y, A, kw = problem()
    solve(Y, A, method="eand-arn", checkpoint_dir=sys.argv[1], checkpoint_every=1, **kw)
    print("FINISHED")
    """
)


@pytest.mark.slow
def test_killed_training_resumes_bit_identically(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    d = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, str(script), str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (d.is_dir() and _checkpoints(d)):
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _checkpoints(d)[-1]
    assert 1 <= killed_at < 20  # 40 steps in chunks of 2: killed before the end

    namespace = {}
    exec(PROBLEM, namespace)
    Y, A, kw = namespace["problem"]()
    reference = solve(Y, A, method="eand-arn", **kw)
    resumed = solve(Y, A, method="eand-arn", checkpoint_dir=d, checkpoint_every=100, **kw)
    assert resumed.diagnostics["resumed_at_chunk"] >= killed_at
    np.testing.assert_array_equal(np.asarray(resumed.U), np.asarray(reference.U))
    np.testing.assert_array_equal(np.asarray(resumed.V), np.asarray(reference.V))
    assert resumed.history == reference.history
    assert resumed.diagnostics["steps"] == reference.diagnostics["steps"] == 40


def _counting_monitor():
    calls = []

    def monitor(state):
        calls.append(1)
        return {}

    return monitor, calls


def test_checkpoint_dir_that_is_a_file_is_refused_before_training(tmp_path):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    f = tmp_path / "ckpt.txt"
    f.write_text("my notes")
    monitor, calls = _counting_monitor()
    with pytest.raises(ValueError, match="is an existing file") as e:
        run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=f, monitor=monitor)
    assert str(f) in str(e.value)
    assert calls == []  # refused before the first chunk was trained
    assert f.read_text() == "my notes"


@pytest.mark.parametrize("entries", [("1", "3", "7"), ("notes.txt",), ("2/state",)])
def test_checkpoint_dir_holding_other_files_is_refused_and_left_alone(tmp_path, entries):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    for name in entries:  # the user's own numbered folders look like orbax steps to orbax
        if name.endswith(".txt"):
            (tmp_path / name).write_text("keep me")
        else:
            (tmp_path / name).mkdir(parents=True)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    monitor, calls = _counting_monitor()
    with pytest.raises(ValueError, match="holds other files.*empty or new folder") as e:
        run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path, monitor=monitor)
    assert str(tmp_path) in str(e.value)
    assert calls == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing deleted or added


def test_checkpoint_dir_with_our_checkpoints_and_a_stray_file_is_refused(tmp_path):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    (tmp_path / "README").write_text("mine")
    with pytest.raises(ValueError, match="holds other files \\('README'\\)"):
        run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)


def test_leftover_temporary_folder_of_a_killed_write_is_accepted(tmp_path):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    ref, _, _ = run_training(step, states[0], problems[0], keys[0], cfg)
    run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    shutil.rmtree(tmp_path / "2")
    (tmp_path / "2.orbax-checkpoint-tmp-1234567").mkdir()  # what a SIGKILL mid-save leaves
    state, _, info = run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    assert info["resumed_at_chunk"] == 1
    np.testing.assert_array_equal(state.params["w"], ref.params["w"])


def _damage_meta(d):
    (d / "2" / "meta" / "metadata").write_bytes(np.random.default_rng(0).bytes(200))


def _damage_state(d):
    for f in (d / "2" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(np.random.default_rng(1).bytes(100))


def _drop_meta(d):
    shutil.rmtree(d / "2" / "meta")


def _meta_not_an_object(d):
    (d / "2" / "meta" / "metadata").write_text("[1, 2, 3]")


@pytest.mark.parametrize("damage", [_damage_meta, _damage_state, _drop_meta, _meta_not_an_object])
def test_damaged_checkpoint_gives_a_clear_error(tmp_path, damage):
    step, states, problems, keys = _toy()
    cfg = TrainConfig(steps=40, chunk=20, progress=False)
    run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match="is unreadable.*Delete that folder.*another checkpoint_dir") as e:
        run_training(step, states[0], problems[0], keys[0], cfg, checkpoint_dir=tmp_path)
    assert str(tmp_path) in str(e.value)


def test_solve_refuses_a_bad_checkpoint_dir_before_training(tmp_path):
    namespace = {}
    exec(PROBLEM, namespace)
    Y, A, kw = namespace["problem"]()
    f = tmp_path / "results.npz"
    f.write_bytes(b"not a folder")
    with pytest.raises(ValueError, match="results.npz is an existing file"):
        solve(Y, A, method="eand-arn", checkpoint_dir=f, **kw)
    for n in ("1", "3", "7"):
        (tmp_path / "runs" / n).mkdir(parents=True)
    with pytest.raises(ValueError, match="runs holds other files \\('1', '3', '7'\\)"):
        solve(Y, A, method="eand-arn", checkpoint_dir=tmp_path / "runs", **kw)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["1", "3", "7"]


@pytest.mark.parametrize("change", [{"activation": "sin"}, {"stencil_order": 2}, {"balance_every": 7}])
def test_resume_with_other_model_or_loss_settings_is_refused(tmp_path, change):
    # Same data, key, initial weights and training loop: only what the step computes differs, so
    # without the model settings in the fingerprint the run would resume into the wrong network.
    namespace = {}
    exec(PROBLEM, namespace)
    Y, A, kw = namespace["problem"]()
    kw["steps"] = 4
    solve(Y, A, method="eand-arn", checkpoint_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="different training run"):
        solve(Y, A, method="eand-arn", checkpoint_dir=tmp_path, **{**kw, **change})
    again = solve(Y, A, method="eand-arn", checkpoint_dir=tmp_path, **kw)  # the same run still resumes
    assert again.diagnostics["resumed_at_chunk"] == 2
