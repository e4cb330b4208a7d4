"""P-DL baseline side by side with a TensorFlow peer: ms per training iteration and peak RSS,
measured in one interleaved run.

The same work per iteration on the P-DL heart (1094 nodes, 352 leads, 661 samples): a 5 × 10
tanh MLP with a trainable slope, the data fit on all 723k node × sample points, both AP residuals
at 400 random collocation samples with ∂/∂t by forward-mode autodiff, learnable term weights,
Adam; float32. Ours is ``bench_training_step``'s ``pdl`` row (the library's ``physics_loss`` and
guarded Adam step). The peer is ``benchmarks/pdl_peer_tf.py``, as a plain ``tf.function`` graph and
as ``tf.function(jit_compile=True)`` (XLA). Every implementation runs as it comes and with glibc's
allocator told to keep freed memory (``GLIBC_TUNABLES``, "keep freed"), which spares large buffers
that are allocated and freed every step a page fault per 4 kB page when they are touched again
(the operating system hands out freed-and-returned memory zero-filled, page by page).

Every block is a fresh process (compile, 2 warm-up iterations, then the timed ones); the blocks
of the three configurations alternate, in reversed order every other round, so that a slow spell
of a shared machine falls on all of them. ``peer_best_over_ours_median``: the peer's best
configuration's time over our best one, per round, then the median; ``as_they_come`` the same
without the allocator setting.

TensorFlow is never a dependency of ecgi_jax: it is taken from this interpreter if importable,
else from the interpreter named by ``ECGI_TF_PYTHON`` (e.g. a venv with ``pip install
tensorflow-cpu``); without either the benchmark is skipped with that message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _common as C

NAME = "pdl_peer"
PEER = Path(__file__).with_name("pdl_peer_tf.py")
KEEP_FREED = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def measure_ours(data: str, iters: int) -> dict:
    """One block of ours, run in a subprocess by :func:`run`."""
    import jax

    from benchmarks.bench_training_step import _configs, build_step

    step, state, problem, _ = build_step(C.inverse_case("pdl", data), _configs(False)["pdl"])
    return C.time_call(jax.jit(step), state, problem, jax.random.PRNGKey(0), repeats=iters, warmup=2)


def _peer_python() -> str | None:
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    return os.environ.get("ECGI_TF_PYTHON") or None


def _peer_block(python: str, case: Path, iters: int, xla: bool, keep_freed: bool) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if keep_freed:
        env["GLIBC_TUNABLES"] = KEEP_FREED
    cmd = [python, str(PEER), "--case", str(case), "--iters", str(iters)] + (["--xla"] if xla else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"the TensorFlow peer failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**out, "median_s": float(np.median(out["times_s"]))}


def run(args) -> dict:
    python = _peer_python()
    notes = []
    if python is None:
        notes.append("[skip] TensorFlow not found: install it in another environment (pip install tensorflow-cpu) "
                     "and set ECGI_TF_PYTHON to that environment's python")
    case = C.inverse_case("pdl", args.data) if args.data.is_dir() else None
    if case is None:
        notes.append(f"[skip] no P-DL data at {args.data} (pass --data DIR)")
    if python is None or case is None:
        return {"rows": [], "notes": notes, "columns": []}
    import scipy.sparse as sp

    peak = C.matmul_peak(2048 if args.quick else 4096)
    notes.append(f"measured matmul peak: {peak['flop_per_s'] / 1e9:.1f} GFLOP/s (float32, same run)")
    rounds, iters = (2, 8) if args.quick else (5, 20)

    def ours(keep_freed):
        return C.run_isolated("benchmarks.bench_pdl_peer", "measure_ours", dict(data=str(args.data), iters=iters),
                              env={"GLIBC_TUNABLES": KEEP_FREED} if keep_freed else None)

    configs = {
        "ecgi_jax pdl": lambda: ours(False),
        "ecgi_jax pdl (keep freed)": lambda: ours(True),
        "tf graph": lambda: _peer_block(python, path, iters, xla=False, keep_freed=False),
        "tf graph (keep freed)": lambda: _peer_block(python, path, iters, xla=False, keep_freed=True),
        "tf xla (keep freed)": lambda: _peer_block(python, path, iters, xla=True, keep_freed=True),
    }
    blocks = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pdl_case.npz"
        lap = sp.coo_matrix(case["laplacian"])
        np.savez(path, A=case["A"], Y=case["Y"], vertices=case["vertices"], dt=case["dt"],
                 lap_row=lap.row, lap_col=lap.col, lap_val=lap.data)
        for r in range(rounds):
            order = list(configs) if r % 2 == 0 else list(configs)[::-1]
            for name in order:
                out = configs[name]()
                blocks[name].append(out)
                print(f"  round {r + 1}/{rounds} {name}: {1e3 * out['median_s']:.0f} ms/iteration", flush=True)
    tensorflow = blocks["tf graph"][0].get("tensorflow")
    rows = []
    for name, outs in blocks.items():
        per_block = [o["median_s"] for o in outs]
        rows.append({"implementation": name, "ms_per_iter": 1e3 * float(np.median(per_block)),
                     "block_ms": [round(1e3 * b, 1) for b in per_block],
                     "first_call_s": float(np.median([o["first_call_s"] for o in outs])),
                     "peak_rss_mb": float(max(o["peak_rss_mb"] for o in outs))})
    def best_per_round(names):
        return [min(blocks[k][i]["median_s"] for k in names) for i in range(rounds)]

    ours_best = best_per_round(["ecgi_jax pdl", "ecgi_jax pdl (keep freed)"])
    peer_best = best_per_round(["tf graph", "tf graph (keep freed)", "tf xla (keep freed)"])
    ratios = [p / o for p, o in zip(peer_best, ours_best)]
    as_they_come = [p / o for p, o in zip(best_per_round(["tf graph"]), best_per_round(["ecgi_jax pdl"]))]
    for row in rows:
        row["vs_ours"] = row["ms_per_iter"] / rows[0]["ms_per_iter"]
    return {
        "matmul_peak": peak, "rows": rows, "notes": notes + [f"tensorflow {tensorflow}; {rounds} rounds × {iters} iterations"],
        "summary": {"peer_best_over_ours_median": float(np.median(ratios)), "per_round": [round(x, 2) for x in ratios],
                    "as_they_come_median": float(np.median(as_they_come)),
                    "goal_met(>=3x)": bool(np.median(ratios) >= 3.0),
                    "ours_peak_rss_mb": max(rows[0]["peak_rss_mb"], rows[1]["peak_rss_mb"]),
                    "goal_met_rss(<=1GB)": max(rows[0]["peak_rss_mb"], rows[1]["peak_rss_mb"]) <= 1024},
        "columns": ["implementation", "ms_per_iter", "block_ms", "first_call_s", "peak_rss_mb", "vs_ours"],
    }


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
