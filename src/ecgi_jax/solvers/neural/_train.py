"""Training loop shared by the neural solvers: optax, fused steps, NaN guard, early stopping.

The step is a pure function ``step(state, problem, key) -> (state, terms)``; ``lax.scan`` fuses
``chunk`` steps into one jitted call with the problem (operators, data) passed as an argument, and
``jax.vmap`` of the same step trains many patients at once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["TrainConfig", "TrainState", "make_optimizer", "make_step", "run_training"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop settings.

    Adam with an exponential learning-rate decay (``learning_rate · decay_rate^(step/decay_steps)``,
    floored at ``min_learning_rate``), or with ``schedule="pdl"`` P-DL's three stages (the first
    third of the steps decaying from ``learning_rate``, then 2e-4, then 1e-4); ``chunk`` steps per jitted call; early stopping when the
    total loss has not improved by a relative ``min_delta`` for ``patience`` chunks
    (``patience=0`` disables it).
    """

    steps: int = 3000
    learning_rate: float = 1e-3
    decay_rate: float = 0.5
    decay_steps: int = 2000
    min_learning_rate: float = 1e-5
    chunk: int = 100
    patience: int = 0
    min_delta: float = 1e-4
    grad_clip: float | None = 1.0
    progress: bool = True
    schedule: str = "exponential"

    def validate(self) -> "TrainConfig":
        if self.steps < 1 or self.chunk < 1:
            raise ValueError(f"steps and chunk must be >= 1; got steps={self.steps}, chunk={self.chunk}.")
        if not self.learning_rate > 0 or not 0 < self.decay_rate <= 1:
            raise ValueError(
                f"learning_rate must be > 0 and decay_rate in (0, 1]; got {self.learning_rate}, {self.decay_rate}."
            )
        if self.schedule not in ("exponential", "pdl"):
            raise ValueError(f"schedule must be 'exponential' or 'pdl'; got {self.schedule!r}.")
        return self


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    schedule = optax.exponential_decay(
        cfg.learning_rate, cfg.decay_steps, cfg.decay_rate, end_value=cfg.min_learning_rate
    )
    if cfg.schedule == "pdl":
        third = max(cfg.steps // 3, 1)
        schedule = optax.join_schedules(
            [schedule, optax.constant_schedule(2e-4), optax.constant_schedule(1e-4)], [third, 2 * third]
        )
    parts = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip else []
    return optax.chain(*parts, optax.adam(schedule))


class TrainState(NamedTuple):
    params: dict  # trainable pytree
    opt_state: optax.OptState
    step: jax.Array
    diverged: jax.Array  # set (and updates frozen) at the first non-finite loss or gradient
    loss: jax.Array  # total loss at the last good step


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation, sample_fn: Callable):
    """``step(state, problem, key)``: one guarded optimiser step.

    ``loss_fn(params, problem, t_idx) -> (total, terms)``; ``sample_fn(key) -> t_idx``. If the loss or
    a gradient is not finite the update is skipped and ``diverged`` is set: the state keeps the
    last good parameters and every later step is a no-op.
    """

    def step(state: TrainState, problem, key):
        t_idx = sample_fn(key)
        (total, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, problem, t_idx)
        finite = jnp.isfinite(total) & jax.tree.reduce(
            lambda acc, g: acc & jnp.all(jnp.isfinite(g)), grads, jnp.array(True)
        )
        ok = finite & ~state.diverged
        updates, new_opt = optimizer.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        new_state = TrainState(
            params=keep(new_params, state.params),
            opt_state=keep(new_opt, state.opt_state),
            step=state.step + ok.astype(state.step.dtype),
            diverged=state.diverged | ~finite,
            loss=jnp.where(ok, total, state.loss),
        )
        return new_state, jnp.concatenate([total[None], terms])

    return step


def run_training(step, state: TrainState, problem, key, cfg: TrainConfig, *, names=(), monitor: Callable | None = None):
    """Run ``cfg.steps`` steps in fused chunks; returns ``(state, history, info)``.

    ``history`` is a dict of per-chunk means of the total and each term (``names``), plus
    ``step``; ``info`` says why training stopped (``"completed"``, ``"plateau"`` or ``"diverged"``)
    and the wall time. ``monitor(state) -> dict`` adds host-side values per chunk (e.g. the error
    against a known truth in benchmarks).
    """

    @jax.jit
    def run_chunk(state, problem, keys):
        return jax.lax.scan(lambda s, k: step(s, problem, k), state, keys)

    n_chunks = math.ceil(cfg.steps / cfg.chunk)
    history: dict[str, list] = {"step": [], "loss": [], **{n: [] for n in names}}
    best, since_best, reason = np.inf, 0, "completed"
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="training", unit="step", leave=False)
    t0 = time.perf_counter()
    compile_s = None
    for c in range(n_chunks):
        n = min(cfg.chunk, cfg.steps - c * cfg.chunk)
        key, sub = jax.random.split(key)
        tc = time.perf_counter()
        state, terms = run_chunk(state, problem, jax.random.split(sub, n))
        terms = np.asarray(terms)
        if compile_s is None:
            compile_s = time.perf_counter() - tc
        good = np.all(np.isfinite(terms), axis=1)
        mean = terms[good].mean(axis=0) if good.any() else np.full(terms.shape[1], np.nan)
        history["step"].append(int(state.step))
        history["loss"].append(float(mean[0]))
        for i, name in enumerate(names):
            history[name].append(float(mean[i + 1]))
        if monitor is not None:
            for k, v in monitor(state).items():
                history.setdefault(k, []).append(float(v))
        if bar is not None:
            bar.update(n)
            bar.set_postfix({"loss": f"{mean[0]:.3e}", **{k: f"{history[k][-1]:.2e}" for k in list(history)[3:6]}})
        if bool(state.diverged):
            reason = "diverged"
            break
        if cfg.patience:
            if mean[0] < best * (1 - cfg.min_delta):
                best, since_best = mean[0], 0
            else:
                since_best += 1
                if since_best >= cfg.patience:
                    reason = "plateau"
                    break
    if bar is not None:
        bar.close()
    info = {"stopped": reason, "steps": int(state.step), "wall_s": time.perf_counter() - t0, "first_chunk_s": compile_s}
    return state, history, info
