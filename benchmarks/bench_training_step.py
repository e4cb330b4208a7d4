"""EAND-ARN training-step time, FLOPs, bytes, MFU and bandwidth fraction; the P-DL baseline at the predecessor's settings.

Rows (each measured in its own process, so its peak RSS is its own):

* EAND-ARN, body-signal mode and coordinate mode, on the P-DL geometry (1094 nodes × 661
  samples, 352 leads) and on ``default_heart_torso()`` (1000 nodes × 661 samples).
* P-DL baseline at the predecessor's exact settings: 5×10 tanh MLP of (x, y, z, t), ∂/∂t by
  forward-mode autodiff at 400 random collocation times × all 1094 nodes, data term on the whole
  1094 × 661 grid every step, learnable loss weights, Adam; float32. Its comparison with a
  TensorFlow peer is ``bench_pdl_peer`` (both measured in one interleaved run: a time quoted
  from another day says nothing on a machine whose matmul rate varies 7× between days).

One training step is the library's own guarded optimiser step (:func:`make_step`) around
:func:`physics_loss`, built here from the public pieces (the same as ``eand_arn`` does), timed as a
single jitted call and fused ``lax.scan`` of ``fuse`` steps (how ``run_training`` runs them).
FLOPs and bytes accessed come from XLA's cost analysis of the compiled step; MFU = achieved FLOP/s
÷ the float32 dense-matmul throughput, and the bandwidth fraction = achieved bytes/s ÷ the STREAM
triad bandwidth (:func:`~benchmarks._common.stream_bandwidth`), both measured on the same machine
in the same run. A row whose FLOP per byte lies below the machine's balance (peak ÷ bandwidth) is
bound by memory traffic (``bound``): read its bandwidth fraction, else its MFU.

The profile table splits one step of the P-DL-geometry rows into its parts (network forward,
``A @ U``, Laplacian apply, the whole loss, loss + gradient, optimiser step), each jitted alone,
and times the loss-weight rebalance that ``solve``'s default runs every 100 steps (gradient norms of
the data term and of the rest: ≈ 2 steps' worth, so ≈ 2 % amortised).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as C

NAME = "training_step"


def _configs(quick: bool) -> dict:
    """EAND-ARN settings per mode (``solve(method="eand-arn")`` defaults in full runs)."""
    return {
        "body": dict(mode="body", width=128, n_blocks=3, block_depth=2, windows=None),
        # Full batch in coordinate mode evaluates the network at every node × sample (723k points
        # on P-DL): the default, but seconds per step on 2 cores; quick runs use windows.
        "coordinate": dict(mode="coordinate", width=64 if quick else 128, n_blocks=3, block_depth=2,
                           windows=8 if quick else None),
        "pdl": dict(mode="coordinate", architecture="pdl-mlp", width=10, n_blocks=5, derivative="autodiff",
                    windows=400, learnable_weights=True, init="random", reaction_discrepancy=0),
    }


def build_step(case: dict, config: dict, *, steps: int = 1000, key=0):
    """One EAND-ARN / P-DL training step from the library's pieces.

    Returns ``(step, state, problem, parts)``: ``step(state, problem, key) -> (state, terms)`` (the
    library's guarded Adam step), its initial state, the :class:`~ecgi_jax.ep.APProblem` pytree, and
    ``parts`` (``graphdef``, ``loss_fn``, ``sample``) for the profile.
    """
    from flax import nnx

    from ecgi_jax.ep import APParams, APProblem
    from ecgi_jax.operators import SparseOperator, stencil
    from ecgi_jax.solvers.neural import (
        TERMS, EANDARNConfig, TrainConfig, TrainState, build_model, combine_terms, make_inputs,
        make_optimizer, make_step, physics_loss,
    )

    dtype = jnp.result_type(float)
    cfg = EANDARNConfig(**{"init": "random", **config}).validate()
    Y = jnp.asarray(case["Y"], dtype)
    A = jnp.asarray(case["A"], dtype)
    m, n_t = Y.shape
    n = A.shape[1]
    lap = SparseOperator.from_scipy(case["laplacian"], dtype)
    ap = jax.tree.map(lambda x: jnp.asarray(x, dtype), APParams())
    verts = jnp.asarray(case["vertices"], dtype)
    problem = APProblem(Y, A, lap, verts, ap, jnp.asarray(case["dt"], dtype), make_inputs(Y, verts, case["dt"]))
    model = build_model(cfg, n, m, jax.random.PRNGKey(key))
    graphdef, net, fixed = nnx.split(model, nnx.Param, ...)
    params = {"net": net, "fixed": fixed}
    if cfg.learnable_weights:
        params["log_sigma"] = jnp.zeros(len(TERMS), dtype)
    weights = jnp.asarray(cfg.weights, dtype)

    def loss_fn(p, problem, t_idx):
        net = (p["net"], jax.lax.stop_gradient(p["fixed"]))
        terms = physics_loss(net, graphdef, problem, t_idx, mode=cfg.mode, stencil_order=cfg.stencil_order, derivative=cfg.derivative,
                             reaction_discrepancy=cfg.reaction_discrepancy)
        return combine_terms(terms, weights, p.get("log_sigma")), terms

    r = stencil(1, cfg.stencil_order).radius
    if cfg.derivative == "autodiff":
        sample = lambda k: jax.random.randint(k, (cfg.windows,), 0, n_t)  # noqa: E731 collocation times
    elif cfg.windows is None:
        sample = lambda k: jnp.arange(n_t)  # noqa: E731 full batch
    else:
        offsets = jnp.arange(-r, r + 1)
        sample = lambda k: jax.random.randint(k, (cfg.windows, 1), r, n_t - r) + offsets  # noqa: E731

    pdl = cfg.architecture == "pdl-mlp"
    train = TrainConfig(steps=steps, learning_rate=2e-3 if pdl else 2e-4, schedule="pdl" if pdl else "exponential",
                        grad_clip=None if pdl else 1.0, progress=False)
    optimizer = make_optimizer(train)
    step = make_step(loss_fn, optimizer, sample)
    state = TrainState.create(params, optimizer, dtype)
    return step, state, problem, {"graphdef": graphdef, "loss_fn": loss_fn, "sample": sample, "cfg": cfg}


def one_pass_cost(fn, *args) -> tuple[float | None, float | None]:
    """FLOPs and bytes accessed of ``fn(*args)`` evaluated in one pass. Coordinate mode runs the
    network in a loop over chunks of points, and XLA's cost analysis counts a loop's body once:
    the chunked program's counts would be one chunk's. These are the model's counts (the chunked
    program also recomputes each chunk's forward pass in the backward one, not counted; its
    bytes are the one-pass kernels' operands, most of which the chunked program keeps in cache)."""
    from ecgi_jax.solvers.neural import _fields

    chunk_points, _fields._CHUNK_POINTS = _fields._CHUNK_POINTS, 1 << 62
    try:
        compiled = jax.jit(lambda *a: fn(*a)).lower(*args).compile()  # a new function: traced anew
        return C.cost_flops(compiled), C.cost_bytes(compiled)
    finally:
        _fields._CHUNK_POINTS = chunk_points


def _fused(step, k: int):
    def run(state, problem, key):
        return jax.lax.scan(lambda s, kk: step(s, problem, kk), state, jax.random.split(key, k))

    return run


def _profile(step, state, problem, parts, repeats: int) -> list[dict]:
    """Time and FLOPs of the parts of one step, each jitted alone (full-batch index set)."""
    from ecgi_jax.solvers.neural import evaluate_fields

    cfg, graphdef, loss_fn = parts["cfg"], parts["graphdef"], parts["loss_fn"]
    key = jax.random.PRNGKey(1)
    t_idx = parts["sample"](key)
    net = (state.params["net"], state.params["fixed"])
    flat = t_idx.reshape(-1) if cfg.derivative != "autodiff" else jnp.arange(problem.Y.shape[1])
    U = jnp.ones((problem.A.shape[1], flat.shape[0]), problem.Y.dtype)
    hi = jax.lax.Precision.HIGHEST
    pieces = {
        "network forward (u, v)": (lambda p, pr: evaluate_fields(graphdef, p, pr.inputs, t_idx, cfg.mode), (net, problem)),
        "A @ U (data term)": (lambda A, U: jnp.matmul(A, U, precision=hi), (problem.A, U)),
        "Laplacian L @ U": (lambda L, U: L @ U, (problem.laplacian, U)),
        "loss forward": (lambda p, pr: loss_fn(p, pr, t_idx)[0], (state.params, problem)),
        "loss + gradient": (lambda p, pr: jax.value_and_grad(lambda q: loss_fn(q, pr, t_idx), has_aux=True)(p), (state.params, problem)),
        "full step (+ Adam, guard)": (step, (state, problem, key)),
    }
    if not cfg.learnable_weights:
        # solve()'s default rebalances the weights every 100 steps: gradient norms of the data
        # term and of the rest (two backward passes); its cost per step is this ÷ 100.
        from ecgi_jax.solvers.neural import grad_norm_weights
        from ecgi_jax.solvers.neural._eand_arn import BALANCE_GROUPS

        weights = jnp.asarray(cfg.weights)
        rebalance = lambda p, pr: grad_norm_weights(lambda q: loss_fn(q, pr, t_idx)[1], p, weights, BALANCE_GROUPS)  # noqa: E731
        pieces = {**pieces, "weight rebalance (every 100 steps)": (rebalance, (state.params, problem))}
        pieces["full step (+ Adam, guard)"] = pieces.pop("full step (+ Adam, guard)")  # the step stays last
    rows = []
    for name, (fn, args) in pieces.items():
        r = C.compile_and_time(fn, *args, repeats=repeats)
        flops, n_bytes = one_pass_cost(fn, *args) if cfg.mode == "coordinate" else (r["flops"], r["bytes"])
        rows.append({"part": name, "ms": 1e3 * r["median_s"], "iqr_ms": 1e3 * r["iqr_s"], "gflop": (flops or 0) / 1e9,
                     "gbyte": (n_bytes or 0) / 1e9, "compile_s": r["compile_s"]})
    rows[-1]["compile_s"] = None  # the step was compiled (and cached) for the main row: see its compile_s
    total = rows[-1]["ms"]
    for row in rows:
        row["share_of_step"] = row["ms"] / total
    return rows


def measure(case: str, kind: str, quick: bool, data: str, repeats: int, fuse: int, profile: bool) -> dict:
    """One row, run in a subprocess by :func:`run` (JSON in, JSON out)."""
    prob = C.inverse_case(case, data)
    config = _configs(quick)[kind]
    step, state, problem, parts = build_step(prob, config)
    key = jax.random.PRNGKey(0)
    single = C.compile_and_time(step, state, problem, key, repeats=repeats)
    fused = None
    if fuse > 1:
        fused = C.compile_and_time(_fused(step, fuse), state, problem, key, repeats=max(2, repeats // 2))
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params["net"]))
    flops, n_bytes = (one_pass_cost(step, state, problem, key) if config["mode"] == "coordinate"
                      else (single["flops"], single["bytes"]))
    out = {
        "case": case, "model": kind, "config": {k: v for k, v in config.items()},
        "nodes": int(prob["A"].shape[1]), "samples": int(prob["Y"].shape[1]), "leads": int(prob["A"].shape[0]),
        "params": n_params, "step_ms": 1e3 * single["median_s"], "step_iqr_ms": 1e3 * single["iqr_s"],
        "fused_step_ms": fused and 1e3 * fused["median_s"] / fuse, "fused_iqr_ms": fused and 1e3 * fused["iqr_s"] / fuse,
        "fuse": fuse, "compile_s": single["compile_s"], "fused_compile_s": fused and fused["compile_s"],
        "gflop_per_step": (flops or 0) / 1e9, "gbyte_per_step": (n_bytes or 0) / 1e9,
        "xla_memory": single["memory"],
    }
    if profile:
        out["profile"] = _profile(step, state, problem, parts, repeats)
    return out


def run(args) -> dict:
    reps = C.repeats_of(args)
    peak = C.matmul_peak(2048 if args.quick else 4096)
    stream = C.stream_bandwidth(1 << 26 if args.quick else 1 << 28)
    balance = peak["flop_per_s"] / stream["bytes_per_s"]  # FLOP per byte at which both limits meet
    fuse = 1 if args.quick else 20  # quick: single jitted steps only (fused chunks cost a second compile)
    jobs = [("pdl", "body", True), ("pdl", "coordinate", True), ("default", "body", False),
            ("default", "coordinate", False), ("pdl", "pdl", True)]
    if args.quick:  # the default-geometry rows cost as much as the P-DL ones and add little
        jobs = [j for j in jobs if j[0] == "pdl"] if args.data.is_dir() else jobs[2:4]
    notes = [f"measured matmul peak: {peak['flop_per_s'] / 1e9:.1f} GFLOP/s (float32 {peak['n']}², HIGHEST)",
             f"measured stream bandwidth: {stream['bytes_per_s'] / 1e9:.1f} GB/s (triad in place; "
             f"{stream['fresh_output_bytes_per_s'] / 1e9:.1f} GB/s with a fresh output buffer per call); "
             f"machine balance {balance:.1f} FLOP/byte",
             "bw_fraction: the cost analysis' bytes per step / time / stream bandwidth; a row is 'memory' bound "
             "when its FLOP per byte is below the machine balance (then bw_fraction is the fraction to read, "
             "else mfu). Coordinate rows count the one-pass program's bytes: the chunked step keeps most "
             "in cache, so their bw_fraction can exceed 1"]
    if args.quick:
        notes.append("quick: coordinate mode uses width 64 and 8 random 5-sample windows (full: width 128, full batch)")
    C._default_transfer(1000, 600, 352)  # build the BEM cache once, outside the timed children
    rows, profiles = [], []
    for case, kind, prof in jobs:
        if case == "pdl" and not args.data.is_dir():
            notes.append(f"[skip] {case}/{kind}: no P-DL data at {args.data}")
            continue
        r = C.run_isolated("benchmarks.bench_training_step", "measure",
                           dict(case=case, kind=kind, quick=args.quick, data=str(args.data), repeats=reps, fuse=fuse,
                                profile=prof and (kind == "body" or not args.quick)))
        best_ms = min(r["step_ms"], r["fused_step_ms"] or np.inf)
        r["gflop_per_s"] = r["gflop_per_step"] / (best_ms / 1e3)
        r["mfu"] = r["gflop_per_s"] * 1e9 / peak["flop_per_s"]
        r["gbyte_per_s"] = r["gbyte_per_step"] / (best_ms / 1e3)
        r["bw_fraction"] = r["gbyte_per_s"] * 1e9 / stream["bytes_per_s"]
        if r["gbyte_per_step"] > 0:
            r["bound"] = "memory" if r["gflop_per_step"] / r["gbyte_per_step"] < balance else "compute"
        for p in r.pop("profile", []):
            profiles.append({"case": f"{case}/{kind}", **p})
        rows.append(r)
    summary = {}
    pdl = [r for r in rows if r["model"] == "pdl"]
    if pdl:
        r = pdl[0]
        best = min(r["step_ms"], r["fused_step_ms"] or np.inf)
        summary = {
            "pdl_baseline_ms_per_iter": best, "pdl_peak_rss_mb": r["peak_rss_mb"],
            "pdl_goal_met_rss(<=1GB)": r["peak_rss_mb"] <= 1024,
        }
    tables = [{"title": "profile of one step (parts jitted alone)", "rows": profiles,
               "columns": ["case", "part", "ms", "iqr_ms", "gflop", "gbyte", "share_of_step", "compile_s"]}] if profiles else []
    return {
        "matmul_peak": peak, "stream_bandwidth": stream, "rows": rows, "tables": tables, "summary": summary, "notes": notes,
        "columns": ["case", "model", "nodes", "samples", "params", "step_ms", "step_iqr_ms", "fused_step_ms",
                    "compile_s", "gflop_per_step", "gflop_per_s", "mfu", "gbyte_per_step", "bw_fraction", "bound",
                    "peak_rss_mb"],
    }


def main():
    C.main_of(NAME, run, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
