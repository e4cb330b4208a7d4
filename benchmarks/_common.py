"""Shared helpers of the benchmark suite: timing, machine facts, memory, JSON and tables.

Every benchmark module exposes ``run(args) -> dict`` (a result with at least ``"rows"``, a list of
flat dicts, and ``"columns"``, the keys shown in the table) and a ``main()`` that parses the common
command line, runs, writes ``<out>/<name>.json`` and prints the table. :mod:`benchmarks.run` calls
every benchmark the same way, each in its own process (clean peak RSS, no shared JIT caches).

Timing rule: a function is called once to compile (reported separately as ``compile_s``), then
``warmup`` more times, then ``repeats`` times with ``jax.block_until_ready`` on the output; the
median and the inter-quartile range of those repeats are reported.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pdl-heart-torso"

__all__ = [
    "ROOT", "DEFAULT_DATA", "parser", "machine_info", "time_call", "compile_and_time", "cost_flops",
    "memory_analysis", "peak_rss_mb", "device_memory", "run_isolated", "matmul_peak", "loglog_slope",
    "default_out_dir", "write_result", "format_table", "finish", "load_pdl_or_none",
]


# ----------------------------------------------------------------------------------------------
# command line


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark (and :mod:`benchmarks.run`) accepts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: the whole suite in < 3 min on 2 cores")
    p.add_argument("--out", type=Path, default=None, help="result folder (default benchmarks/results/<date>_<machine>)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="P-DL data folder (skipped if absent)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5 quick, 10 full)")
    return p


def repeats_of(args) -> int:
    return args.repeats or (5 if args.quick else 10)


# ----------------------------------------------------------------------------------------------
# machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Where a number was measured: CPU, cores, accelerator, versions, backend and float dtype."""
    import jax
    import jaxlib

    devices = jax.devices()
    gpu = [d.device_kind for d in devices if d.platform != "cpu"]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu": gpu[0] if gpu else None,
        "device_count": len(devices),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "float_dtype": "float64" if jax.config.jax_enable_x64 else "float32",
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40]


def default_out_dir() -> Path:
    """``benchmarks/results/<YYYY-MM-DD>_<machine>`` (machine: GPU name, else CPU model + cores)."""
    import jax

    devices = jax.devices()
    kind = devices[0].device_kind if devices[0].platform != "cpu" else f"{_cpu_model()}-{os.cpu_count()}c"
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    return ROOT / "benchmarks" / "results" / f"{date}_{_slug(kind)}"


# ----------------------------------------------------------------------------------------------
# timing


def _stats(times) -> dict:
    t = np.asarray(times, float)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "min_s": float(t.min()), "n": int(t.size)}


def time_call(fn: Callable, *args, repeats: int = 10, warmup: int = 1) -> dict:
    """Median / IQR wall time of ``fn(*args)`` (outputs blocked on); the first call is timed
    separately as ``first_call_s`` (compilation + one run for a jitted ``fn``)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return {**_stats(times), "first_call_s": first}


def compile_and_time(fn: Callable, *args, repeats: int = 10, warmup: int = 1) -> dict:
    """``jax.jit(fn)`` lowered and compiled ahead of time (``compile_s``), then timed as
    :func:`time_call`; also the compiled program's FLOPs, bytes accessed and memory analysis."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    out = time_call(compiled, *args, repeats=repeats, warmup=warmup)
    out.pop("first_call_s")
    out["compile_s"] = compile_s
    out["flops"] = cost_flops(compiled)
    out["bytes"] = cost_bytes(compiled)
    out["memory"] = memory_analysis(compiled)
    return out


def _cost_analysis(compiled) -> dict:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return {}
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return cost or {}


def cost_flops(compiled) -> float | None:
    """FLOPs of a compiled program from XLA's HLO cost analysis (``None`` if unavailable)."""
    flops = _cost_analysis(compiled).get("flops")
    return None if flops is None else float(flops)


def cost_bytes(compiled) -> float | None:
    """Bytes the compiled program's kernels read and write, from XLA's HLO cost analysis
    (``"bytes accessed"``: every fused kernel's operands and results, whether they come from
    memory or from cache; ``None`` if unavailable). A loop's body is counted once."""
    n = _cost_analysis(compiled).get("bytes accessed")
    return None if n is None else float(n)


def memory_analysis(compiled) -> dict | None:
    """Argument / output / temporary bytes of a compiled program (XLA's static analysis)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "generated_code_size_in_bytes")
    return {k.replace("_size_in_bytes", "_mb"): getattr(m, k, 0) / 2**20 for k in keys}


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Measured dense float32 matmul throughput of this machine (FLOP/s), the MFU denominator."""
    import jax
    import jax.numpy as jnp

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k1, (n, n), jnp.float32)
    b = jax.random.normal(k2, (n, n), jnp.float32)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))
    t = time_call(f, a, b, repeats=repeats)
    flops = 2.0 * n**3
    return {"n": n, "median_s": t["median_s"], "flop_per_s": flops / t["median_s"], "best_flop_per_s": flops / t["min_s"]}


def stream_bandwidth(n_bytes: int = 1 << 28, repeats: int = 7) -> dict:
    """Measured memory bandwidth of this machine (bytes/s), the bandwidth fraction's denominator.

    A STREAM triad ``a ← a + 3 b`` on float32 arrays of ``n_bytes`` each, jitted, 12 bytes moved
    per element (two reads, one write). ``bytes_per_s``: with ``a`` donated, so the result is
    written in place (what the hardware sustains); ``fresh_output_bytes_per_s``: the same with a
    new output buffer every call, which the OS maps and zero-fills page by page (what a program
    that allocates its temporaries anew each call gets: 6x slower on a 2-core EPYC VM).
    """
    import jax
    import jax.numpy as jnp

    n = n_bytes // 4
    b = jnp.ones((n,), jnp.float32)
    in_place = jax.jit(lambda a, b: a + 3.0 * b, donate_argnums=0)
    fresh = jax.jit(lambda a, b: a + 3.0 * b)
    a = in_place(jnp.zeros((n,), jnp.float32), b).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = in_place(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    t_fresh = time_call(fresh, a, b, repeats=repeats)
    moved = 3.0 * n * 4
    return {"n_bytes": n * 4, "median_s": float(np.median(times)), "bytes_per_s": moved / float(np.median(times)),
            "fresh_output_bytes_per_s": moved / t_fresh["median_s"]}


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# ----------------------------------------------------------------------------------------------
# memory


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def device_memory() -> dict | None:
    """Peak / in-use bytes of the first accelerator (``None`` on CPU, where XLA keeps no stats)."""
    import jax

    d = jax.devices()[0]
    if d.platform == "cpu":
        return None
    try:
        s = d.memory_stats() or {}
    except Exception:  # noqa: BLE001
        return None
    return {"peak_mb": s.get("peak_bytes_in_use", 0) / 2**20, "in_use_mb": s.get("bytes_in_use", 0) / 2**20}


def run_isolated(module: str, function: str, kwargs: dict, timeout: float = 900, env: dict | None = None) -> dict:
    """Call ``module.function(**kwargs)`` (JSON-able in and out) in a fresh Python process, so that
    its peak RSS (``peak_rss_mb``, added here from the child) belongs to that call alone. The child's
    ``device_memory`` is added too (GPU). ``env``: variables added to the child's environment.
    Raises ``RuntimeError`` with the child's stderr on failure."""
    code = (
        "import json, sys; from importlib import import_module; from benchmarks import _common as c; "
        f"r = getattr(import_module({module!r}), {function!r})(**json.loads(sys.argv[1])); "
        "r['peak_rss_mb'] = c.peak_rss_mb(); r['device_memory'] = c.device_memory(); "
        "print('@@RESULT@@' + json.dumps(r))"
    )
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), child_env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, cwd=ROOT, env=child_env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{function}({kwargs}) failed in its subprocess:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@"):])


# ----------------------------------------------------------------------------------------------
# data


def load_pdl_or_none(path):
    """The P-DL data set, or ``None`` with a printed reason when the folder is absent."""
    from ecgi_jax.datasets import load_pdl

    path = Path(path)
    if not path.is_dir():
        print(f"[skip] P-DL data not found at {path} (pass --data DIR): P-DL rows skipped.")
        return None
    return load_pdl(path)


# ----------------------------------------------------------------------------------------------
# output


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "dtype") and hasattr(x, "shape") and x.shape == ():
        return x.item()
    return x


def write_result(name: str, result: dict, out_dir: Path | None) -> Path:
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(_jsonable(result), indent=1))
    return path


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v != v:
            return "nan"
        if v == 0:
            return "0"
        a = abs(v)
        return f"{v:.3g}" if 1e-3 <= a < 1e5 else f"{v:.2e}"
    return str(v)


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table of ``rows`` restricted to ``columns`` (missing values shown as ``-``)."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def finish(name: str, result: dict, args) -> Path:
    """Add the machine facts and options, write ``<out>/<name>.json`` and print the table(s).

    A result with rows always carries the machine's matmul peak measured in the same process
    (measured here, after the run, if the benchmark did not): this VM's rate has read 62 to 465
    GFLOP/s on different days, so only fractions of it compare across days."""
    if result.get("rows") and "matmul_peak" not in result:
        result = {**result, "matmul_peak": matmul_peak(2048 if args.quick else 4096)}
        result["notes"] = [*result.get("notes", []),
                           f"measured matmul peak: {result['matmul_peak']['flop_per_s'] / 1e9:.1f} GFLOP/s "
                           "(float32, same process, after the run)"]
    result = {"benchmark": name, "quick": bool(args.quick), "machine": machine_info(), **result}
    path = write_result(name, result, args.out)
    print(f"\n== {name} ({'quick' if args.quick else 'full'}) ==")
    for line in result.get("notes", []):
        print(f"  {line}")
    if result.get("rows"):
        print(format_table(result["rows"], result["columns"]))
    for extra in result.get("tables", []):
        print(f"\n  {extra['title']}")
        print(format_table(extra["rows"], extra["columns"]))
    for k, v in result.get("summary", {}).items():
        print(f"  {k}: {_fmt(v)}")
    print(f"  -> {path}")
    return path


def main_of(name: str, run: Callable, description: str) -> None:
    """Standard ``main()``: parse the common options, run, write and print."""
    args = parser(description).parse_args()
    finish(name, run(args), args)


# ----------------------------------------------------------------------------------------------
# problems shared by several benchmarks


def wave_potentials(vertices, n_samples: int, dt: float, speed: float | None = None) -> np.ndarray:
    """A smooth activation wave ``U (n, t)`` in ``[0, 1]``: every node depolarises (a steep
    sigmoid) when a front started at node 0 reaches it, and repolarises 25 time units later. Enough
    like a beat for timing and memory (the numbers do not depend on the values)."""
    v = np.asarray(vertices, float)
    dist = np.linalg.norm(v - v[0], axis=1)
    t = np.arange(n_samples) * dt
    speed = speed or (dist.max() / (0.4 * t[-1] if t[-1] > 0 else 1.0))
    arrival = dist / speed
    rise = 1.0 / (1.0 + np.exp(-(t[None, :] - arrival[:, None]) / 0.5))
    fall = 1.0 / (1.0 + np.exp((t[None, :] - arrival[:, None] - 25.0) / 2.0))
    return rise * fall


def _default_transfer(n_heart: int, n_torso: int, n_electrodes: int):
    """Transfer matrix of the built-in phantom, cached on disk (the BEM takes seconds)."""
    from ecgi_jax.forward import transfer_matrix
    from ecgi_jax.geometry import default_heart_torso

    g = default_heart_torso(n_heart, n_torso, n_electrodes)
    cache = ROOT / "benchmarks" / "results" / ".cache" / f"default_A_{n_heart}_{n_torso}_{n_electrodes}.npy"
    if cache.is_file():
        A = np.load(cache, allow_pickle=False)
    else:
        A = transfer_matrix(g.heart, g.torso, electrodes=g.electrodes)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, A)
    return g, A


def inverse_case(name: str, data=DEFAULT_DATA, n_samples: int | None = None) -> dict | None:
    """One heart-torso problem with synthetic body potentials, as plain numpy / scipy objects.

    ``name``: ``"pdl"`` (the P-DL geometry, 1094 nodes, 352 leads, 661 samples, its shipped
    Laplacian; ``None`` if ``data`` is absent) or ``"default"`` (``default_heart_torso()``: 1000
    nodes, 352 leads, BEM transfer matrix, cotangent Laplacian, 661 samples). Returns a dict with
    ``vertices, A, laplacian (scipy), dt, U, Y, adjacency``.
    """
    import scipy.sparse as sp

    if name == "pdl":
        d = load_pdl_or_none(data)
        if d is None:
            return None
        vertices, A, lap, dt, adjacency = d.vertices, d.transfer, sp.csr_matrix(d.laplacian), d.dt, d.adjacency
        n_t = len(d.times)
    elif name == "default":
        from ecgi_jax.operators import cotangent_laplacian

        g, A = _default_transfer(1000, 600, 352)
        vertices, dt, n_t = g.heart.vertices, 0.1, 661
        lap = cotangent_laplacian(g.heart, dtype=np.float64).to_scipy()
        adjacency = g.heart.adjacency
    else:
        raise ValueError(f"unknown case {name!r}; use 'pdl' or 'default'.")
    n_t = n_samples or n_t
    U = wave_potentials(vertices, n_t, dt)
    Y = A @ U
    Y = Y + 0.01 * Y.std() * np.random.default_rng(0).standard_normal(Y.shape)
    return {"name": name, "vertices": vertices, "A": A, "laplacian": lap, "dt": float(dt), "U": U, "Y": Y,
            "adjacency": adjacency}
