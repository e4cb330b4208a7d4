"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only NAME ...] [--out DIR]``.

Each benchmark runs in its own Python process (clean peak memory, no shared compilation caches),
writes ``<out>/<name>.json`` and prints its table; a failing benchmark is reported and the others
still run. ``--quick`` sizes keep the whole suite within a few minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as C  # noqa: E402

BENCHMARKS = ("training_step", "nd_vs_ad", "sparse_laplacian", "tikhonov_sweep", "batch_throughput", "bem", "memory")
# Other bench_*.py files in this folder (same interface) run only when named with --only.
EXTRAS = tuple(sorted(p.stem[len("bench_"):] for p in Path(__file__).resolve().parent.glob("bench_*.py")
                      if p.stem[len("bench_"):] not in BENCHMARKS))


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=BENCHMARKS + EXTRAS, metavar="NAME",
                   help=f"run only these: {', '.join(BENCHMARKS)} (the default suite) or {', '.join(EXTRAS) or '-'}")
    args = p.parse_args(argv)
    out = args.out or C.default_out_dir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(C.ROOT), env.get("PYTHONPATH", "")])
    failed, t_all = [], time.perf_counter()
    for name in args.only or BENCHMARKS:
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", "--out", str(out), "--data", str(args.data)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--repeats", str(args.repeats)] if args.repeats else []
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=C.ROOT, env=env)
        print(f"  [{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.1f} s]", flush=True)
        if rc:
            failed.append(name)
    print(f"\nsuite: {time.perf_counter() - t_all:.1f} s; results in {out}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
