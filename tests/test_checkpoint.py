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
