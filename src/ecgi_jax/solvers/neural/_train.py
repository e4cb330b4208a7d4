"""Training loop shared by the neural solvers: optax, fused steps, NaN guard, early stopping,
batching and checkpoints.

The step is a pure function ``step(state, problem, key) -> (state, terms)``; ``lax.scan`` fuses
``chunk`` steps into one jitted call with the problem (operators, data) passed as an argument, and
``jax.vmap`` of the same chunk trains many patients at once (``run_training(..., batched=True)``
over stacked states and problems). ``checkpoint_dir=`` saves the loop with orbax every few
chunks and resumes it bit-identically (:mod:`ecgi_jax._checkpoint`).
"""

from __future__ import annotations

import functools

import dataclasses
import math
import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._optax import optax_update

__all__ = [
    "TrainConfig", "TrainState", "GradNormBalance", "grad_norm_weights", "make_optimizer", "make_step", "run_training",
    "lbfgs_refine",
]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop settings.

    Adam with an exponential learning-rate decay (``learning_rate · decay_rate^(step/decay_steps)``,
    floored at ``min_learning_rate``), or with ``schedule="pdl"`` P-DL's three stages (the first
    third of the steps decaying from ``learning_rate``, then 2e-4, then 1e-4); ``chunk`` steps per jitted call; early stopping when the
    total loss has not improved by a relative ``min_delta`` for ``patience`` chunks
    (``patience=0`` disables it). ``lbfgs_steps > 0`` adds an L-BFGS finishing stage on the
    full-batch loss after Adam (:func:`lbfgs_refine`; single problems only).
    ``physics_learning_rate``: Adam's (constant) rate for the learnable model parameters under the
    ``"physics"`` key of the parameters (EAND-ARN's ``fit_D`` / ``fit_a``): a handful of
    log-scale numbers that must move by ~0.1–0.3, where the network's weights move by ~1e-4 a step.

    The defaults are ``solve(method="eand-arn")``'s (one set: ``solve`` reads them from here and
    from :class:`~ecgi_jax.solvers.neural.EANDARNConfig`); P-DL's entry sets its own schedule.
    """

    steps: int = 500
    learning_rate: float = 2e-4
    decay_rate: float = 0.5
    decay_steps: int = 2000
    min_learning_rate: float = 1e-5
    chunk: int = 100
    patience: int = 3
    min_delta: float = 1e-4
    grad_clip: float | None = 1.0
    progress: bool = True
    schedule: str = "exponential"
    lbfgs_steps: int = 0
    physics_learning_rate: float = 1e-2

    def validate(self) -> "TrainConfig":
        if self.steps < 1 or self.chunk < 1:
            raise ValueError(f"steps and chunk must be >= 1; got steps={self.steps}, chunk={self.chunk}.")
        if not self.learning_rate > 0 or not 0 < self.decay_rate <= 1:
            raise ValueError(
                f"learning_rate must be > 0 and decay_rate in (0, 1]; got {self.learning_rate}, {self.decay_rate}."
            )
        if not isinstance(self.lbfgs_steps, int) or self.lbfgs_steps < 0:
            raise ValueError(f"lbfgs_steps must be an integer >= 0; got {self.lbfgs_steps!r}.")
        if not self.physics_learning_rate > 0:
            raise ValueError(f"physics_learning_rate must be > 0; got {self.physics_learning_rate}.")
        if self.schedule not in ("exponential", "pdl"):
            raise ValueError(f"schedule must be 'exponential' or 'pdl'; got {self.schedule!r}.")
        return self


def make_optimizer(cfg: TrainConfig, physics: bool = False) -> optax.GradientTransformation:
    """Adam with ``cfg``'s schedule and gradient clipping; with ``physics``, the parameters under the
    top-level ``"physics"`` key get their own constant-rate Adam (see :class:`TrainConfig`)."""
    if physics:
        labels = lambda params: {k: ("physics" if k == "physics" else "main") for k in params}  # noqa: E731
        return optax.multi_transform(
            {"main": make_optimizer(cfg), "physics": optax.adam(cfg.physics_learning_rate)}, labels
        )
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
    good_params: dict  # the parameters at which the loss was last finite (restored on divergence)
    weights: jax.Array | None = None  # current loss-term weights (only with a GradNormBalance)

    @classmethod
    def create(cls, params, optimizer: optax.GradientTransformation, dtype=None, weights=None) -> "TrainState":
        """The state before the first step; ``weights``: the term weights a balanced step starts from."""
        loss = jnp.asarray(jnp.inf, dtype or jnp.result_type(float))
        weights = None if weights is None else jnp.asarray(weights, loss.dtype)
        return cls(params, optimizer.init(params), jnp.zeros((), jnp.int32), jnp.array(False), loss, params, weights)


class GradNormBalance(NamedTuple):
    """Loss-term weights balanced by gradient norms (Wang, Wang & Perdikaris 2023, as in jaxpi),
    by groups of terms.

    Every ``every`` steps the weights move towards :func:`grad_norm_weights` — each active group of
    terms then pulls on the parameters with the same gradient norm; within a group the terms keep
    their ``base`` ratios — by an exponential moving average with ``momentum`` (the first update,
    at step 0, sets them). Terms with ``base == 0`` stay off. ``groups[k]`` is term k's group
    (``None``: every term its own group, jaxpi's form).
    """

    base: jax.Array  # (k,) base weights
    groups: tuple[int, ...] | None = None
    every: int = 100
    momentum: float = 0.9


def grad_norm_weights(terms_fn: Callable, params, base, groups=None, eps: float = 1e-6):
    """Weights ``w_k = b_k · Σ_h g_h / g_{G(k)}``: ``g_h = ‖∇_θ Σ_{k∈h} b_k L_k‖`` the gradient norm of
    group h, the sum over the groups with an active term (``b_k > 0``); ``terms_fn(params) -> (k,)``,
    ``groups``: group index per term (``None``: one group per term). A group's norm is floored at
    ``eps · Σ_h g_h``, so a group already at its minimum gets a large, finite weight."""
    base = jnp.asarray(base)
    groups = tuple(range(base.shape[0])) if groups is None else tuple(groups)
    member = jax.nn.one_hot(jnp.asarray(groups), max(groups) + 1, dtype=base.dtype).T  # (h, k)
    jac = jax.jacrev(lambda p: member @ (base * terms_fn(p)))(params)
    g = jnp.sqrt(sum(jnp.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=1) for leaf in jax.tree.leaves(jac)))
    active = member @ (base > 0).astype(base.dtype) > 0
    total = jnp.sum(jnp.where(active, g, 0.0))
    group_w = jnp.where(active, total / jnp.maximum(g, eps * total), 0.0)
    return base * (group_w @ member)


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation, sample_fn: Callable, balance=None):
    """``step(state, problem, key, it=None)``: one guarded optimiser step.

    ``loss_fn(params, problem, t_idx) -> (total, terms)``; ``sample_fn(key) -> t_idx``. If the loss or
    a gradient is not finite the update is skipped, ``diverged`` is set and the parameters go back
    to the last ones at which the loss was finite (an update can itself overflow, so the current
    parameters are not necessarily good); every later step is a no-op.

    With a :class:`GradNormBalance`, ``loss_fn(params, problem, t_idx, weights)`` takes the term
    weights, which live in ``state.weights`` and are rebalanced every ``balance.every`` steps (on
    that step's sample). The total the step reports (and the plateau rule compares) is then
    ``Σ base_k · L_k``: comparable from step to step, unlike the balanced total. ``it``: the training
    loop's step number (default ``state.step``), which :func:`run_training` passes unbatched, so
    that under ``vmap`` the rebalancing stays a branch taken every ``every`` steps instead of a
    select that computes it at every step.
    """

    def step(state: TrainState, problem, key, it=None):
        t_idx = sample_fn(key)
        weights = state.weights
        if balance is None:
            objective = lambda p: loss_fn(p, problem, t_idx)  # noqa: E731
        else:
            it = state.step if it is None else it
            weights = _rebalance(state, it, lambda p: loss_fn(p, problem, t_idx, state.weights)[1])
            objective = lambda p: loss_fn(p, problem, t_idx, weights)  # noqa: E731
        (total, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        if balance is not None:
            total = jnp.sum(balance.base * terms)
        finite = jnp.isfinite(total) & jax.tree.reduce(
            lambda acc, g: acc & jnp.all(jnp.isfinite(g)), grads, jnp.array(True)
        )
        ok = finite & ~state.diverged
        updates, new_opt = optax_update(optimizer, grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        revert = ~finite & ~state.diverged
        current = jax.tree.map(lambda g, p: jnp.where(revert, g, p), state.good_params, state.params)
        new_state = TrainState(
            params=keep(new_params, current),
            opt_state=keep(new_opt, state.opt_state),
            step=state.step + ok.astype(state.step.dtype),
            diverged=state.diverged | ~finite,
            loss=jnp.where(ok, total, state.loss).astype(state.loss.dtype),  # e.g. float64 params, float32 data
            good_params=keep(state.params, state.good_params),
            weights=keep(weights, state.weights),
        )
        return new_state, jnp.concatenate([total[None], terms])

    def _rebalance(state: TrainState, it, terms_fn):
        def update(w):
            target = grad_norm_weights(terms_fn, state.params, balance.base.astype(w.dtype), balance.groups).astype(w.dtype)
            mixed = jnp.where(it == 0, target, balance.momentum * w + (1 - balance.momentum) * target)
            # A failed balance (non-finite gradient norms) or a diverged problem keeps its weights.
            return jnp.where(jnp.all(jnp.isfinite(mixed)) & ~state.diverged, mixed, w)

        return jax.lax.cond(it % balance.every == 0, update, lambda w: w, state.weights)

    return step


@functools.lru_cache(maxsize=32)
def _chunk_runner(step, batched: bool):
    """Jitted ``(state, problem, keys, frozen, first) -> (state, terms)``: ``len(keys)`` fused steps
    numbered from ``first``; with ``batched``, one vmapped program over stacked states, problems and
    per-problem keys (the step numbers are shared). A ``frozen`` problem keeps its state (it has
    stopped: plateau or divergence)."""

    def chunk(state, problem, keys, frozen, first):
        its = first + jnp.arange(keys.shape[0], dtype=jnp.int32)
        new, terms = jax.lax.scan(lambda s, x: step(s, problem, x[0], x[1]), state, (keys, its))
        return jax.tree.map(lambda a, b: jnp.where(frozen, b, a), new, state), terms

    return jax.jit(jax.vmap(chunk, in_axes=(0, 0, 0, 0, None)) if batched else chunk)


def _split(key, n, batched):
    """``(next_key, chunk_keys)``: the loop key advances by one split per chunk, per problem."""
    if batched:
        pair = jax.vmap(jax.random.split)(key)
        key, sub = pair[:, 0], pair[:, 1]
        return key, jax.vmap(lambda s: jax.random.split(s, n))(sub)
    key, sub = jax.random.split(key)
    return key, jax.random.split(sub, n)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ecgi_jax")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def run_training(
    step,
    state: TrainState,
    problem,
    key,
    cfg: TrainConfig,
    *,
    names=(),
    monitor: Callable | None = None,
    batched: bool = False,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    step_settings=None,
):
    """Run ``cfg.steps`` steps in fused chunks; returns ``(state, history, info)``.

    ``history`` is a dict of per-chunk means of the total and each term (``names``), plus
    ``step``; ``info`` says why training stopped (``"completed"``, ``"plateau"`` or ``"diverged"``)
    and the wall time. ``monitor(state) -> dict`` adds host-side values per chunk (e.g. the error
    against a known truth in benchmarks).

    Args:
        step: ``step(state, problem, key, it) -> (state, terms)`` for ONE problem (:func:`make_step`;
            ``it`` is the loop's step number, unbatched).
        state, problem, key: the initial state, the problem pytree and the loop's PRNG key; with
            ``batched=True`` all three are stacked along a leading batch axis (``jax.tree.map``
            of ``np.stack``), one entry per problem, and may be sharded over devices.
        batched: train every problem at once with one ``jax.vmap``-ed step. Each problem follows
            exactly the key sequence of its own unbatched run; a problem that diverges or
            plateaus is frozen (its state no longer changes) while the others continue, and the
            loop ends when every problem has stopped. ``history`` and ``info`` are then lists
            (one dict per problem) and ``monitor(state)`` returns ``(B,)`` values.
        checkpoint_dir: folder to save ``(state, key, chunks done, history, stopping
            bookkeeping)`` to every ``checkpoint_every`` chunks and when training ends (orbax,
            :mod:`ecgi_jax._checkpoint`). If it already holds a checkpoint of this same run
            (same problem, initial state, key and settings) training resumes from it and ends
            with bit-identical results to an uninterrupted run; a checkpoint of another run is
            refused (``ValueError``), and so, before anything is trained, is a path that is a file
            or a folder holding anything but this library's checkpoints (nothing there is deleted).
        checkpoint_every: chunks between checkpoints.
        step_settings: a JSON-serializable description of what ``step`` computes (the model
            and loss settings, the method's name). It is part of the checkpoint's fingerprint,
            so a run whose network or loss differ from the checkpoint's is refused instead of
            resuming into weights the new step would read differently. The data, initial state,
            key, ``cfg`` and the package version are always part of it.

    Raises:
        ValueError: ``checkpoint_every < 1``; a ``checkpoint_dir`` that is a file or holds other
            files; a checkpoint of another run, or an unreadable (damaged) one, in ``checkpoint_dir``.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 (chunks); got {checkpoint_every}.")
    run_chunk = _chunk_runner(step, batched)
    n_chunks = math.ceil(cfg.steps / cfg.chunk)
    n_problems = jax.tree.leaves(state)[0].shape[0] if batched else 1
    histories = [{"step": [], "loss": [], **{n: [] for n in names}} for _ in range(n_problems)]
    best = [math.inf] * n_problems
    since_best = [0] * n_problems
    reasons: list[str | None] = [None] * n_problems  # None while a problem is still training
    start = 0

    ckpt = None
    if checkpoint_dir is not None:
        from ..._checkpoint import TrainingCheckpoint, fingerprint

        settings = {
            "train": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"},
            "step": step_settings, "names": list(names), "batched": batched, "version": _package_version(),
        }
        ckpt = TrainingCheckpoint(checkpoint_dir, fingerprint(state, problem, key, extra=settings))
        found = ckpt.restore(state, key)
        if found is not None:
            state, key, meta = found
            start = meta["chunks_done"]
            histories, since_best, reasons = meta["histories"], meta["since_best"], meta["reasons"]
            loss_dtype = np.asarray(state.loss).dtype  # compare in the dtype of the losses, as before saving
            best = [math.inf if b is None else loss_dtype.type(b) for b in meta["best"]]

    def save(chunks_done):
        meta = {
            "histories": histories, "since_best": since_best, "reasons": reasons,
            "best": [None if math.isinf(b) else float(b) for b in best],
        }
        ckpt.save(chunks_done, state, key, meta)

    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=min(start * cfg.chunk, cfg.steps), desc="training", unit="step", leave=False)
    t0 = time.perf_counter()
    compile_s = None
    c = start
    while c < n_chunks and any(r is None for r in reasons):
        n = min(cfg.chunk, cfg.steps - c * cfg.chunk)
        key, keys = _split(key, n, batched)
        frozen = np.array([r is not None for r in reasons]) if batched else np.array(False)
        tc = time.perf_counter()
        state, terms = run_chunk(state, problem, keys, frozen, jnp.int32(c * cfg.chunk))
        terms = np.asarray(terms).reshape(n_problems, n, -1)
        if compile_s is None:
            compile_s = time.perf_counter() - tc
        steps = np.asarray(state.step).reshape(-1)
        diverged = np.asarray(state.diverged).reshape(-1)
        extra = {} if monitor is None else {k: np.asarray(v).reshape(-1) for k, v in monitor(state).items()}
        for b in range(n_problems):
            if reasons[b] is not None:
                continue
            good = np.all(np.isfinite(terms[b]), axis=1)
            mean = terms[b][good].mean(axis=0) if good.any() else np.full(terms.shape[2], np.nan)
            h = histories[b]
            h["step"].append(int(steps[b]))
            h["loss"].append(float(mean[0]))
            for i, name in enumerate(names):
                h[name].append(float(mean[i + 1]))
            for k, v in extra.items():
                h.setdefault(k, []).append(float(v[b]))
            if diverged[b]:
                reasons[b] = "diverged"
                # Loud, not only in ``info``: a silently diverged run looks like a result.
                who = f"problem {b} of the batch" if batched else "training"
                warnings.warn(
                    f"{who} diverged (non-finite loss or gradient) after {int(steps[b])} good steps; "
                    "returning the last parameters with a finite loss (info['stopped'] == 'diverged').",
                    RuntimeWarning, stacklevel=2,
                )
            elif cfg.patience:
                if mean[0] < best[b] * (1 - cfg.min_delta):
                    best[b], since_best[b] = mean[0], 0
                else:
                    since_best[b] += 1
                    if since_best[b] >= cfg.patience:
                        reasons[b] = "plateau"
        c += 1
        if bar is not None:
            h = histories[0]
            bar.update(n)
            bar.set_postfix({"loss": f"{h['loss'][-1]:.3e}", **{k: f"{h[k][-1]:.2e}" for k in list(h)[3:6]}})
        if ckpt is not None and c % checkpoint_every == 0 and c < n_chunks and any(r is None for r in reasons):
            save(c)
    if ckpt is not None:
        if ckpt.latest() != c:
            save(c)
        ckpt.close()
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    steps = np.asarray(state.step).reshape(-1)
    infos = [
        {"stopped": reasons[b] or "completed", "steps": int(steps[b]), "wall_s": wall, "first_chunk_s": compile_s}
        for b in range(n_problems)
    ]
    if start:
        for info in infos:
            info["resumed_at_chunk"] = start
    if batched:
        return state, histories, infos
    return state, histories[0], infos[0]


def lbfgs_refine(loss_fn: Callable, params, problem, t_idx, steps: int, *, chunk: int = 50):
    """Refine ``params`` by ``steps`` iterations of optax L-BFGS (zoom line search) on the
    deterministic loss ``loss_fn(params, problem, t_idx)[0]``.

    The iterations run in jitted ``lax.scan`` chunks with ``problem`` passed as an argument. Returns
    ``(params, losses)``: the iterate with the lowest finite loss seen (the start included, so the
    result is never worse than the start and a non-finite iterate is never returned) and the loss
    per iteration.
    """
    if steps < 1:
        return params, np.zeros(0)
    opt = optax.lbfgs()

    @jax.jit
    def run(carry, problem, t_idx):
        value = lambda p: loss_fn(p, problem, t_idx)[0]  # noqa: E731
        value_and_grad = optax.value_and_grad_from_state(value)

        def body(carry, _):
            p, s, best, best_loss = carry
            v, g = value_and_grad(p, state=s)
            better = jnp.isfinite(v) & (v < best_loss)
            best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
            best_loss = jnp.where(better, v, best_loss)
            updates, s = optax_update(opt, g, s, p, value=v, grad=g, value_fn=value)
            return (optax.apply_updates(p, updates), s, best, best_loss), v

        return jax.lax.scan(body, carry, None, length=chunk)

    carry = (params, opt.init(params), params, jnp.asarray(jnp.inf, jnp.result_type(*jax.tree.leaves(params))))
    losses = []
    for _ in range(math.ceil(steps / chunk)):
        carry, v = run(carry, problem, t_idx)
        losses.append(np.asarray(v))
        if not np.all(np.isfinite(losses[-1])):
            break
    p, _, best, best_loss = carry
    # The last iterate has not been evaluated inside the scan: compare it once more.
    last = float(loss_fn(p, problem, t_idx)[0])
    if np.isfinite(last) and last < float(best_loss):
        best = p
    return best, np.concatenate(losses)[:steps]
