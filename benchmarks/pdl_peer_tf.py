"""The P-DL baseline's training iteration in TensorFlow: the peer that ``bench_pdl_peer`` times
side by side with ecgi_jax's ``pdl`` step.

Written for this benchmark (not P-DL's own code, which is not public): the same work per
iteration as ``benchmarks.bench_training_step``'s ``pdl`` row, in the way a Keras user would write
it. A 5 × 10 tanh MLP with the trainable slope ``tanh(10·a·z)``, ``(x, y, z, t) -> (u, v)``; the
data fit ``mean((A·U − Y)²) / var(Y)`` on every node × sample; the Aliev–Panfilov residuals of
both equations at 400 random collocation samples × every node, ∂/∂t by forward-mode autodiff
(``tf.autodiff.ForwardAccumulator``), Δ by the sparse Laplacian; P-DL's learnable uncertainty
weights over the three terms; Adam. float32.

Needs only numpy and TensorFlow (never a dependency of ecgi_jax). Run by ``bench_pdl_peer``::

    python benchmarks/pdl_peer_tf.py --case case.npz --iters 20 [--xla]

and prints one JSON line: the per-iteration times (s) and the peak RSS (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def build(case: dict, *, xla: bool, collocation: int, seed: int):
    import tensorflow as tf

    f32 = tf.float32
    A = tf.constant(case["A"], f32)
    Y = tf.constant(case["Y"], f32)
    n, n_t = case["A"].shape[1], case["Y"].shape[1]
    rows, cols, vals = case["lap_row"], case["lap_col"], case["lap_val"].astype(np.float32)
    if xla:  # XLA (jit_compile) has no kernel for tf.sparse products: a gather and a segment sum
        gather_cols, segment_rows, weights_nz = tf.constant(cols, tf.int32), tf.constant(rows, tf.int32), tf.constant(vals[:, None])
        laplacian = lambda u: tf.math.unsorted_segment_sum(weights_nz * tf.gather(u, gather_cols), segment_rows, n)  # noqa: E731
    else:  # the faster of the two in graph mode (measured)
        lap = tf.sparse.reorder(tf.sparse.SparseTensor(np.stack([rows, cols], axis=1).astype(np.int64), vals, (n, n)))
        laplacian = lambda u: tf.sparse.sparse_dense_matmul(lap, u)  # noqa: E731
    v = case["vertices"]
    coords = 2.0 * (v - v.min(0)) / (v.max(0) - v.min(0)) - 1.0
    dt = float(case["dt"])
    t_end = (n_t - 1) * dt
    times = tf.constant(2.0 * np.arange(n_t) * dt / t_end - 1.0, f32)
    t_scale = 2.0 / t_end
    coords = tf.constant(coords, f32)
    node_xyz = tf.repeat(coords, n_t, axis=0)  # (n·T, 3), node-major like ecgi_jax
    grid = tf.concat([node_xyz, tf.reshape(tf.tile(times[None, :], [n, 1]), (-1, 1))], axis=1)
    var_y = tf.math.reduce_variance(Y)
    k, a, e0, mu1, mu2, D = 8.0, 0.1, 0.002, 0.3, 0.3, 10.0

    init = tf.keras.initializers.GlorotUniform(seed=seed)
    sizes = [4] + [10] * 5
    weights = [tf.Variable(init((i, o)), dtype=f32) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [tf.Variable(tf.zeros((o,), f32)) for o in sizes[1:]]
    head_w, head_b = tf.Variable(init((10, 2)), dtype=f32), tf.Variable(tf.zeros((2,), f32))
    slope = tf.Variable(0.1, dtype=f32)
    log_sigma = tf.Variable(tf.zeros((3,), f32))
    variables = weights + biases + [head_w, head_b, slope, log_sigma]
    optimizer = tf.keras.optimizers.Adam(2e-3)
    counter = tf.Variable(0, dtype=tf.int32)

    def net(x):
        h = x
        for w, b in zip(weights, biases):
            h = tf.tanh(10.0 * slope * (h @ w + b))
        return h @ head_w + head_b

    def loss():
        out = net(grid)
        U = tf.reshape(out[:, 0], (n, n_t))
        data = tf.reduce_mean(tf.square(A @ U - Y)) / var_y
        idx = tf.random.stateless_uniform((collocation,), [seed, counter], 0, n_t, dtype=tf.int32)
        tc = tf.gather(times, idx)
        xc = tf.concat([tf.repeat(coords, collocation, axis=0), tf.reshape(tf.tile(tc[None, :], [n, 1]), (-1, 1))], axis=1)
        tangent = tf.concat([tf.zeros_like(xc[:, :3]), tf.fill((n * collocation, 1), tf.constant(t_scale, f32))], axis=1)
        with tf.autodiff.ForwardAccumulator(xc, tangent) as acc:
            oc = net(xc)
        doc = acc.jvp(oc)
        u, vv = tf.reshape(oc[:, 0], (n, collocation)), tf.reshape(oc[:, 1], (n, collocation))
        du, dv = tf.reshape(doc[:, 0], (n, collocation)), tf.reshape(doc[:, 1], (n, collocation))
        fu = D * laplacian(u) + k * u * (1.0 - u) * (u - a) - u * vv
        fv = (e0 + mu1 * vv / tf.maximum(u + mu2, 0.5 * mu2)) * (-vv - k * u * (u - a - 1.0))
        terms = tf.stack([data, tf.reduce_mean(tf.square(du - fu)), tf.reduce_mean(tf.square(dv - fv))])
        s2 = tf.exp(2.0 * log_sigma)
        return tf.reduce_sum(terms / s2 + tf.math.log1p(s2))

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        counter.assign_add(1)
        return value

    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", required=True, help=".npz written by bench_pdl_peer (A, Y, vertices, dt, lap_*)")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--collocation", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--xla", action="store_true", help="tf.function(jit_compile=True)")
    args = p.parse_args()
    import tensorflow as tf

    with np.load(args.case) as f:
        case = {key: f[key] for key in f.files}
    step = build(case, xla=args.xla, collocation=args.collocation, seed=args.seed)
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        value = step()
        float(value)  # wait for the result
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "times_s": times, "first_call_s": first_s, "first_loss": first, "last_loss": float(value),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tensorflow": tf.__version__, "xla": args.xla,
    }))


if __name__ == "__main__":
    main()
