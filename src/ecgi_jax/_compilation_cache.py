"""Compiled programs kept on disk between processes (jax's persistent compilation cache).

Most of a first ``solve(method="eand-arn")`` on a CPU is XLA compiling the start's fits and the
training loop (about 17 of 50 s at 642 nodes x 400 samples); a later process with the same
shapes and settings compiles the very same programs. With the cache it loads them instead.
Nothing here runs on import: the command line turns the cache on (``ecgi-jax --no-compile-cache``
turns it off), and a Python user calls :func:`use_compilation_cache` once, before the first solve.
"""

from __future__ import annotations

import os
from pathlib import Path

def default_cache_folder() -> Path:
    """``$ECGI_JAX_CACHE/xla``, else ``$XDG_CACHE_HOME/ecgi_jax/xla``, else ``~/.cache/ecgi_jax/xla``."""
    if os.environ.get("ECGI_JAX_CACHE"):
        return Path(os.environ["ECGI_JAX_CACHE"]) / "xla"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ecgi_jax" / "xla"


def use_compilation_cache(folder=None, *, max_bytes: int | None = None) -> Path | None:
    """Keep every compiled XLA program in ``folder`` (default :func:`default_cache_folder`) and load
    it from there in later processes; call it before the first computation.

    A cache the user configured already (``JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.jax_compilation_cache_dir``) is left as it is, and its folder returned. Returns
    the folder in use, or ``None`` when ``folder`` cannot be created (nothing is cached then: the
    results are the same, only compiled again). The cache's keys hold the program, the jax and
    XLA versions, the device and the compiler flags, so a stale entry is never loaded.

    ``max_bytes``: a bound on the folder's size, beyond which jax evicts the least recently used
    programs (it needs the ``filelock`` package). By default there is none: the demo leaves about
    360 programs, 3 MB in all; deleting the folder is always safe.
    """
    import jax

    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not (isinstance(max_bytes, int) and max_bytes > 0):
            raise ValueError(f"max_bytes must be a positive integer (bytes on disk) or None; got {max_bytes!r}.")
        try:
            import filelock  # noqa: F401  (jax's eviction locks the folder with it)
        except ImportError:
            raise ValueError("max_bytes needs the 'filelock' package (pip install filelock); or pass max_bytes=None.") from None
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    folder = Path(folder) if folder is not None else default_cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Every program, not only those over jax's default 1 s: the start stages compile dozens of
    # small ones (0.05-0.7 s each), which add up to several seconds.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if max_bytes is not None:
        jax.config.update("jax_compilation_cache_max_size", max_bytes)
    return folder
