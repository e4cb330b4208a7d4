"""Benchmark suite of ecgi_jax: ``python -m benchmarks.run [--quick]`` (see README.md)."""
