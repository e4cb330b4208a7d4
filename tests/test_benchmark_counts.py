"""The counts the benchmarks divide by: XLA's FLOPs and bytes of hand-countable programs."""

import jax
import jax.numpy as jnp

from benchmarks import _common as C


def test_cost_analysis_counts_a_triad_and_a_matmul():
    n = 1000
    triad = jax.jit(lambda a, b: a + 3.0 * b).lower(jnp.ones(n), jnp.ones(n)).compile()
    assert C.cost_bytes(triad) == 12 * n  # two float32 reads and one write per element
    assert C.cost_flops(triad) == 2 * n
    m = 64
    matmul = jax.jit(jnp.matmul).lower(jnp.ones((m, m)), jnp.ones((m, m))).compile()
    assert C.cost_flops(matmul) == 2 * m**3
    assert C.cost_bytes(matmul) == 3 * m * m * 4


def test_stream_bandwidth_reports_both_measures():
    sb = C.stream_bandwidth(1 << 20, repeats=2)
    assert sb["n_bytes"] == 1 << 20
    assert sb["bytes_per_s"] > 0 and sb["fresh_output_bytes_per_s"] > 0
    assert abs(sb["bytes_per_s"] - 3 * sb["n_bytes"] / sb["median_s"]) <= 1e-6 * sb["bytes_per_s"]
