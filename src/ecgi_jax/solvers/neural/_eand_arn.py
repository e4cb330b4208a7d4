"""EAND-ARN: the electrophysiology-aware, numerically differentiated adaptive ResNet.

Zhu, Bilchick & Xie (2025), "Numerical Differentiation-based Electrophysiology-Aware Adaptive
ResNet for Inverse ECG Modeling". A network with adaptive residual blocks predicts u and v on the
heart; the loss is the body-potential misfit plus the Aliev–Panfilov residual of both equations,
with ∂/∂t by a finite-difference stencil over neighbouring samples and Δ by the mesh Laplacian.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ...ep import APParams, APProblem
from ...forward import check_observation
from ...operators import SparseOperator, stencil
from ._fields import MODES, FieldInputs, evaluate_fields, make_inputs
from ._loss import TERMS, combine_terms, physics_loss
from ._networks import ACTIVATIONS, AdaptiveResNet, FreeGrid, PDLNet
from ._starts import observation_of, recovery_from_potential, start_ap_params, start_solution
from ._train import GradNormBalance, TrainConfig, TrainState, lbfgs_refine, make_optimizer, make_step, run_training

__all__ = [
    "EANDARNConfig", "NeuralFit", "EANDARNSetup", "recovery_from_potential", "build_model", "start_solution",
    "setup_eand_arn", "make_eand_arn_step", "make_fields", "eand_arn", "eand_arn_batch", "fitted_ap_params",
]


INITS = ("residual", "head", "random")
# Gradient-norm balancing groups of the loss terms: the data fit against everything else. Balancing
# the two AP equations against each other (jaxpi's per-term form) drove the easy v-residual to 0
# and stalled (phantom, Tikhonov start: RE 0.34 vs 0.23 after 3000 steps).
BALANCE_GROUPS = tuple(0 if name == "data" else 1 for name in TERMS)
ARCHITECTURES = ("adaptive-resnet", "pdl-mlp")


@dataclasses.dataclass(frozen=True)
class EANDARNConfig:
    """Model and loss settings of EAND-ARN (static: hashable, part of the compiled program).

    Attributes:
        mode: ``"body"`` (network input: body potentials at one time), ``"coordinate"``
            (network input: node position and time) or ``"grid"`` (no network: ``U, V`` are
            free variables — the reference; the network settings are then unused).
        width, n_blocks, block_depth, activation, fourier_features, fourier_scale: network shape.
        adaptive: adaptive residual blocks (``False``: plain residual blocks, an ablation).
        architecture: ``"adaptive-resnet"``, or ``"pdl-mlp"`` (P-DL's plain ``n_blocks × width``
            tanh MLP with a trainable slope; the baseline).
        stencil_order: accuracy order of the time stencil (4 → 5-point ``t−2 … t+2``; 2 → 3-point).
        derivative: ``"numerical"`` (stencil) or ``"autodiff"`` (coordinate mode only; ablation).
        windows: ``None`` for the full batch (every sample each step), or the number of random
            time windows (all nodes × ``2r+1`` consecutive samples each) per step.
        weights: fixed weights of ``(data, phys_u, phys_v, tik0, tik2)``; with
            ``learnable_weights`` or ``balance_every`` they switch terms on (``> 0``) and scale them.
        balance_every: ``k > 0`` rebalances the weights every ``k`` steps so that the data fit
            and the other terms together (physics, Tikhonov; their ratios as in ``weights``) pull
            with equal gradient norms (:class:`~ecgi_jax.solvers.neural.GradNormBalance`) — the
            physics can then no longer swamp the data fit of a start that violates it; 0: fixed
            weights (the paper's method); ``None`` (default): every 100 steps, or 0 with
            ``learnable_weights``. The final weights are in ``info["loss_weights"]``.
        init: how the start solution enters (see :func:`eand_arn`'s ``start``):
            ``"residual"`` (default) — the network learns a correction added to the start fields
            (output layer zeroed, so training begins exactly at the start);
            ``"head"`` — the output layer of the shallow (α = 0) network is fitted by least
            squares to the start (the PirateNet physics-informed initialisation);
            ``"random"`` — no start, random initialisation.
        fit_D, fit_a: learn the AP model's ``D`` (``D₀·exp(η)``; a per-node ``D₀`` is scaled as a
            whole) and ``a`` (``sigmoid(logit(a₀) + η)``) with the fields, through the physics
            term (η starts at 0; Adam at ``TrainConfig.physics_learning_rate``). For data whose
            tissue differs from the nominal model; the fitted values are in ``info["D"]``/``["a"]``.
        reaction_discrepancy: ``d > 0`` — the physics term penalizes the AP residuals less their best
            fit by one polynomial of total degree ``d`` in (u, v) over the heart, fitted in closed
            form at every step (:func:`~ecgi_jax.solvers.neural.without_reaction_discrepancy`): a
            model discrepancy in the reaction term, so that the physics constrains how the wave
            travels (reaction–diffusion with the model's ``D``) but not the waveform of another
            ionic model. Default 3, chosen off the inverse crime (Mitchell–Schaeffer truth) on
            development cases: training from the template start changed RE by +0.0007…+0.0105
            with the AP residuals, by −0.0002…+0.0002 with a cubic discrepancy (held out, 36
            cases: better than the AP residuals in 31); on the AP model's own beats the residual
            is zero either way. 0: the AP residuals themselves (the paper's loss).
    """

    mode: str = "body"
    width: int = 128
    n_blocks: int = 3
    block_depth: int = 2
    activation: str = "tanh"
    fourier_features: int = 0
    fourier_scale: float = 1.0
    adaptive: bool = True
    stencil_order: int = 4
    derivative: str = "numerical"
    windows: int | None = None
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 0.0, 0.0)
    learnable_weights: bool = False
    balance_every: int | None = None
    init: str = "residual"
    architecture: str = "adaptive-resnet"
    ridge: float = 1e-6
    fit_D: bool = False
    fit_a: bool = False
    reaction_discrepancy: int = 3

    def __post_init__(self):
        # None: rebalance every 100 steps, unless the weights are learnable (two ways to set them).
        if self.balance_every is None:
            object.__setattr__(self, "balance_every", 0 if self.learnable_weights else 100)

    @property
    def fits_physics(self) -> bool:
        return self.fit_D or self.fit_a

    def validate(self) -> "EANDARNConfig":
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}.")
        if self.activation not in ACTIVATIONS:  # before the start solution, not after it
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}.")
        if self.derivative not in ("numerical", "autodiff"):
            raise ValueError(f"derivative must be 'numerical' or 'autodiff'; got {self.derivative!r}.")
        if self.derivative == "autodiff" and self.mode != "coordinate":
            raise ValueError("derivative='autodiff' needs mode='coordinate' (time must be a network input).")
        if len(self.weights) != len(TERMS) or any(w < 0 for w in self.weights):
            raise ValueError(f"weights must be {len(TERMS)} non-negative numbers for {TERMS}; got {self.weights}.")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}; got {self.architecture!r}.")
        if self.architecture == "pdl-mlp" and self.mode != "coordinate":
            raise ValueError("architecture='pdl-mlp' is P-DL's coordinate network: it needs mode='coordinate'.")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}.")
        if self.mode == "grid" and self.init == "head":
            raise ValueError("init='head' fits a network's output layer; mode='grid' has none (use init='residual').")
        if not isinstance(self.balance_every, int) or self.balance_every < 0:
            raise ValueError(f"balance_every must be an integer >= 0 (steps; 0 = fixed weights); got {self.balance_every!r}.")
        if self.balance_every and self.learnable_weights:
            raise ValueError("balance_every and learnable_weights are two ways to set the weights: choose one.")
        d = self.reaction_discrepancy
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 4:
            raise ValueError(f"reaction_discrepancy must be a polynomial degree, an integer 0–4 (0: none); got {d!r}.")
        if self.windows is not None and self.windows < 1:
            raise ValueError(f"windows must be None or >= 1; got {self.windows}.")
        if not isinstance(self.stencil_order, int) or self.stencil_order < 2 or self.stencil_order % 2:
            raise ValueError(f"stencil_order must be an even integer >= 2; got {self.stencil_order!r}.")
        return self


class NeuralFit(NamedTuple):
    U: jax.Array  # (n, t)
    V: jax.Array  # (n, t)
    params: dict
    graphdef: object
    history: dict
    info: dict


def build_model(cfg: EANDARNConfig, n_nodes: int, n_leads: int, key, n_samples: int | None = None, dtype=jnp.float32):
    """The network of ``cfg`` (``n_samples`` and ``dtype`` are used by ``mode="grid"`` only)."""
    if cfg.mode == "grid":
        if n_samples is None:
            raise ValueError("mode='grid' needs n_samples: the free fields are (n_nodes, n_samples).")
        return FreeGrid(n_nodes, n_samples, dtype)
    in_f, out_f = (n_leads, 2 * n_nodes) if cfg.mode == "body" else (4, 2)
    if cfg.architecture == "pdl-mlp":
        return PDLNet(in_f, out_f, width=cfg.width, n_layers=cfg.n_blocks, rngs=nnx.Rngs(params=key))
    return AdaptiveResNet(
        in_f, out_f, width=cfg.width, n_blocks=cfg.n_blocks, activation=cfg.activation,
        block_depth=cfg.block_depth, fourier_features=cfg.fourier_features,
        fourier_scale=cfg.fourier_scale, adaptive=cfg.adaptive, rngs=nnx.Rngs(params=key),
    )


def _fit_head(model: AdaptiveResNet, inputs: FieldInputs, U0, V0, cfg: EANDARNConfig, key):
    """Least-squares fit of the head so that the (α = 0, shallow) network reproduces (U0, V0)."""
    n, t = U0.shape
    if cfg.mode == "body":
        H = model.features(inputs.body)  # (t, w)
        Z = jnp.concatenate([U0, V0], axis=0).T  # (t, 2n)
    else:
        k = min(n * t, 60_000)  # a random subset of grid points is plenty for w unknowns per output
        flat = jax.random.choice(key, n * t, (k,), replace=False)
        i, j = flat // t, flat % t
        x = jnp.concatenate([inputs.coords[i], inputs.times[j][:, None]], axis=1)
        H = model.features(x)
        Z = jnp.stack([U0[i, j], V0[i, j]], axis=1)
    H1 = jnp.concatenate([H, jnp.ones((H.shape[0], 1), H.dtype)], axis=1)
    gram = H1.T @ H1
    reg = cfg.ridge * jnp.trace(gram) / gram.shape[0]
    W = jnp.linalg.solve(gram + reg * jnp.eye(gram.shape[0], dtype=gram.dtype), H1.T @ Z)
    model.head.kernel[...] = W[:-1].astype(model.head.kernel.dtype)
    model.head.bias[...] = W[-1].astype(model.head.bias.dtype)


def _sampler(cfg: EANDARNConfig, n_t: int):
    r = stencil(1, cfg.stencil_order).radius
    if cfg.derivative == "autodiff":
        k = cfg.windows or n_t
        return (lambda key: jnp.arange(n_t)) if cfg.windows is None else (lambda key: jax.random.randint(key, (k,), 0, n_t))
    if cfg.windows is None:
        return lambda key: jnp.arange(n_t)
    offsets = jnp.arange(-r, r + 1)
    return lambda key: jax.random.randint(key, (cfg.windows, 1), r, n_t - r) + offsets


class EANDARNSetup(NamedTuple):
    """One problem ready to train (:func:`setup_eand_arn`); the arrays form pytrees that
    :func:`eand_arn_batch` stacks along a batch axis."""

    state: TrainState
    problem: APProblem
    key: jax.Array  # the training loop's key
    graphdef: object  # static network structure (equal for problems of equal shapes and config)
    info: dict  # how the start solution was obtained


def setup_eand_arn(
    Y, A, *, laplacian: SparseOperator, dt: float, vertices=None, adjacency=None,
    config: EANDARNConfig = EANDARNConfig(), train: TrainConfig = TrainConfig(),
    ap_params: APParams = APParams(), key=None, start="auto", observation: str = "identity", movable_heart=None,
) -> EANDARNSetup:
    """Everything before training, for one problem: inputs, start solution, network initialisation
    and optimizer state. Arguments as :func:`eand_arn`."""
    cfg = config.validate()
    train.validate()
    ap_params.validate()
    key = jax.random.PRNGKey(0) if key is None else key
    Y = jnp.asarray(Y)
    dtype = Y.dtype if jnp.issubdtype(Y.dtype, jnp.floating) else jnp.result_type(float)
    Y = Y.astype(dtype)
    A = jnp.asarray(A, dtype)
    m, n_t = Y.shape
    n = A.shape[1]
    if cfg.mode == "coordinate" and vertices is None:
        raise ValueError("mode='coordinate' needs the heart node coordinates: pass vertices=(n, 3).")
    verts = jnp.zeros((n, 3), dtype) if vertices is None else jnp.asarray(vertices, dtype)
    lap = laplacian.astype(dtype) if isinstance(laplacian, SparseOperator) else SparseOperator.from_scipy(laplacian, dtype)
    ap = jax.tree.map(lambda x: jnp.asarray(x, dtype), ap_params)

    if check_observation(observation) != "identity" and (cfg.init == "random" or not isinstance(start, str)):
        raise ValueError("observation='gain-offset' fits the gain and offsets to a physics start: use start 'auto', "
                         "'pacing', 'shooting' or 'template' (not a given start or init='random').")
    if movable_heart is not None and (cfg.init == "random" or not isinstance(start, str)):
        # The start names are checked with the start (start_solution).
        raise ValueError("movable_heart moves the heart for the template start: use start 'auto' or 'template' "
                         "(not a given start or init='random'), or leave it out.")
    info_start: dict = {"start": None}
    U0 = V0 = None
    if cfg.init != "random":
        if isinstance(start, str):
            U0, V0, info_start = start_solution(
                start, Y, A, lap, dt, vertices=vertices, adjacency=adjacency, ap_params=ap_params, observation=observation,
                movable_heart=movable_heart,
            )
            if "heart_pose" in info_start:  # the data term sees the heart where the start put it
                A = jnp.asarray(movable_heart.transfer_matrix(info_start["heart_pose"]), dtype)
            if observation != "identity":
                Y = observation_of(info_start).normalize(Y)  # the data term in the model's units
            # A fitted start (shooting) comes with its model: the physics term uses that model.
            ap = jax.tree.map(lambda x: jnp.asarray(x, dtype), start_ap_params(ap_params, info_start))
        elif isinstance(start, tuple):
            U0, V0 = (jnp.asarray(x, dtype) for x in start)
            info_start = {"start": "given"}
        else:
            U0 = jnp.asarray(start, dtype)
            V0 = recovery_from_potential(U0, dt, ap)
            info_start = {"start": "given"}
        if U0.shape != (n, n_t) or V0.shape != (n, n_t):
            raise ValueError(f"start fields have shape {U0.shape}/{V0.shape}; expected ({n}, {n_t}).")
        info_start = {**info_start, "start_potentials": U0}
    residual = cfg.init == "residual"
    inputs = make_inputs(Y, verts, dt, U0 if residual else None, V0 if residual else None)
    problem = APProblem(Y, A, lap, verts, ap, jnp.asarray(dt, dtype), inputs)

    k_model, k_fit, k_train = jax.random.split(key, 3)
    model = build_model(cfg, n, m, k_model, n_samples=n_t, dtype=dtype)
    if cfg.mode == "grid":
        pass  # the free fields start at zero: training begins exactly at the start solution
    elif cfg.init == "head":
        _fit_head(model, inputs, U0, V0, cfg, k_fit)
    elif residual:
        model.head.kernel[...] = jnp.zeros_like(model.head.kernel[...])
        model.head.bias[...] = jnp.zeros_like(model.head.bias[...])
    graphdef, net_params, fixed = nnx.split(model, nnx.Param, ...)

    params = {"net": net_params, "fixed": fixed}
    if cfg.learnable_weights:
        params["log_sigma"] = jnp.zeros(len(TERMS), dtype)
    if cfg.fits_physics:
        params["physics"] = {name: jnp.zeros((), dtype) for name, on in (("log_D", cfg.fit_D), ("logit_a", cfg.fit_a)) if on}
    optimizer = make_optimizer(train, physics=cfg.fits_physics)
    state = TrainState.create(params, optimizer, dtype, weights=cfg.weights if cfg.balance_every else None)
    return EANDARNSetup(state, problem, k_train, graphdef, info_start)


def fitted_ap_params(ap: APParams, physics: dict | None) -> APParams:
    """The AP parameters with EAND-ARN's learnable shifts applied (``physics``: ``log_D``,
    ``logit_a``; absent entries leave the nominal value)."""
    if not physics:
        return ap
    changes = {}
    if "log_D" in physics:
        changes["D"] = ap.D * jnp.exp(physics["log_D"])
    if "logit_a" in physics:
        changes["a"] = jax.nn.sigmoid(jnp.log(ap.a) - jnp.log1p(-ap.a) + physics["logit_a"])
    return dataclasses.replace(ap, **changes)


def make_eand_arn_loss(graphdef, config: EANDARNConfig, dtype):
    """``loss_fn(params, problem, t_idx, w=config.weights) -> (total, terms)`` of EAND-ARN (pure)."""
    cfg = config
    weights = jnp.asarray(cfg.weights, dtype)

    def loss_fn(p, problem, t_idx, w=weights):
        problem = dataclasses.replace(problem, ap_params=fitted_ap_params(problem.ap_params, p.get("physics")))
        net = (p["net"], jax.lax.stop_gradient(p["fixed"]))
        terms = physics_loss(net, graphdef, problem, t_idx, mode=cfg.mode, stencil_order=cfg.stencil_order, derivative=cfg.derivative,
                             reaction_discrepancy=cfg.reaction_discrepancy)
        return combine_terms(terms, w, p.get("log_sigma")), terms

    return loss_fn


@functools.lru_cache(maxsize=32)
def make_eand_arn_step(graphdef, config: EANDARNConfig, train: TrainConfig, n_t: int, dtype):
    """The pure training step ``step(state, problem, key)`` of one problem (see :func:`make_step`);
    only the static network structure and settings are closed over, so it vmaps over problems.

    Cached on its (hashable, static) arguments: a later call with the same network shape and
    settings gets the same function, and so the training loop's compiled program (jax's cache is
    keyed on the function), instead of compiling again."""
    balance = None
    if config.balance_every:
        balance = GradNormBalance(jnp.asarray(config.weights, dtype), BALANCE_GROUPS, config.balance_every)
    return make_step(
        make_eand_arn_loss(graphdef, config, dtype), make_optimizer(train, physics=config.fits_physics),
        _sampler(config, n_t), balance,
    )


@functools.lru_cache(maxsize=32)
def make_fields(graphdef, config: EANDARNConfig, n_t: int):
    """``fields(params, problem) -> (U, V)`` on every time sample (pure; jit or vmap it; cached
    like :func:`make_eand_arn_step`)."""
    full_idx = jnp.arange(n_t)

    def fields(p, problem):
        return evaluate_fields(graphdef, (p["net"], p["fixed"]), problem.inputs, full_idx, config.mode)

    return fields


@functools.lru_cache(maxsize=32)
def _jit_fields(graphdef, config: EANDARNConfig, n_t: int, batched: bool):
    fields = make_fields(graphdef, config, n_t)
    return jax.jit(jax.vmap(fields) if batched else fields)


def _neural_fit(U, V, params, graphdef, history, info, info_start, ap: APParams, weights=None) -> NeuralFit:
    model = nnx.merge(graphdef, params["net"], params["fixed"])
    if weights is not None:
        info["loss_weights"] = np.asarray(weights).tolist()  # where gradient-norm balancing ended
    info["alpha"] = [float(b.alpha[...]) for b in getattr(model, "blocks", ()) if b.adaptive]
    if params.get("physics"):
        fitted = fitted_ap_params(ap, params["physics"])
        info["D"] = np.asarray(fitted.D).tolist()
        info["a"] = float(fitted.a)
    info.update(info_start)
    return NeuralFit(U, V, params, graphdef, history, info)


def eand_arn(
    Y,
    A,
    *,
    laplacian: SparseOperator,
    dt: float,
    vertices=None,
    adjacency=None,
    config: EANDARNConfig = EANDARNConfig(),
    train: TrainConfig = TrainConfig(),
    ap_params: APParams = APParams(),
    key=None,
    start="auto",
    truth=None,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    observation: str = "identity",
    movable_heart=None,
) -> NeuralFit:
    """Fit EAND-ARN to one recording. See :func:`ecgi_jax.solve` (``method="eand-arn"``).

    Args:
        Y: body potentials ``(m, t)``; A: transfer matrix ``(m, n)``; laplacian: ``(n, n)``.
        dt: sample spacing (AP time units).
        vertices: node coordinates ``(n, 3)`` (coordinate mode; spreads pacing candidates).
        adjacency: CSR ``(indptr, indices)`` or per-node neighbour lists; default: the Laplacian's sparsity pattern.
        start: ``"auto"`` (default: the single-site AP beat, the shooting beat or the
            waveform-template refinement of the better one, whichever the Akaike criterion
            prefers; shooting needs ``vertices``), ``"pacing"``, ``"shooting"``, ``"template"``,
            ``"tikhonov"`` (2nd-order Tikhonov, L-curve λ) — see :func:`start_solution` — an
            ``(n, t)`` array of u (v is integrated from it), or a ``(U0, V0)`` pair. Ignored with
            ``config.init="random"``. With a shooting start the physics term uses the fitted
            ``D`` and ``a`` (``info["start_D"]``, ``["start_a"]``).
        truth: optional ground truth ``(n, t)``, only to log the relative error per chunk.
        observation: ``"identity"`` (``Y = A u``) or ``"gain-offset"`` (``Y = g·A u + b``, fitted
            to the physics start and then held: the network trains on ``(Y − b)/g``; see
            :func:`start_solution`).
        movable_heart: a :class:`~ecgi_jax.forward.MovableHeart` that reproduces ``A`` (the heart
            and torso meshes and electrodes it was built from): the template start also fits the
            heart's rigid pose and, where the criterion takes it, the network trains on the moved
            heart's transfer matrix (``info["heart_pose"]``). ``None``: the heart stays where ``A``
            puts it.
        checkpoint_dir, checkpoint_every: save the training state every ``checkpoint_every``
            chunks and resume from an existing checkpoint of the same run (see
            :func:`~ecgi_jax.solvers.neural.run_training`); ``None``: no checkpoints.
    """
    setup = setup_eand_arn(
        Y, A, laplacian=laplacian, dt=dt, vertices=vertices, adjacency=adjacency, config=config, train=train,
        ap_params=ap_params, key=key, start=start, observation=observation, movable_heart=movable_heart,
    )
    problem, graphdef = setup.problem, setup.graphdef
    n_t, dtype = problem.Y.shape[1], problem.Y.dtype
    step = make_eand_arn_step(graphdef, config, train, n_t, dtype)
    fields = _jit_fields(graphdef, config, n_t, batched=False)

    monitor = None
    if truth is not None:
        truth = jnp.asarray(truth, dtype)
        monitor = lambda s: {"rel_error": jnp.linalg.norm(fields(s.params, problem)[0] - truth) / jnp.linalg.norm(truth)}
    state, history, info = run_training(
        step, setup.state, problem, setup.key, train, names=TERMS, monitor=monitor,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, step_settings=_step_settings(config),
    )
    params = state.params
    if train.lbfgs_steps and info["stopped"] != "diverged":
        # Finishing stage on the full-batch loss (every sample; P-DL-style collocation: all samples).
        loss_fn = make_eand_arn_loss(graphdef, config, dtype)
        if state.weights is not None:
            loss_fn = functools.partial(loss_fn, w=state.weights)  # the balanced weights training ended with
        t0 = time.perf_counter()
        params, lbfgs_losses = lbfgs_refine(loss_fn, params, problem, jnp.arange(n_t), train.lbfgs_steps)
        history["lbfgs_loss"] = [float(v) for v in lbfgs_losses]
        info["lbfgs_s"] = time.perf_counter() - t0
        info["lbfgs_final_loss"] = float(loss_fn(params, problem, jnp.arange(n_t))[0])
    U, V = fields(params, problem)
    return _neural_fit(U, V, params, graphdef, history, info, setup.info, problem.ap_params, state.weights)


def _step_settings(config: EANDARNConfig) -> dict:
    # Everything that changes what the training step computes from the same parameter arrays
    # (an activation or stencil order resumed from another run's checkpoint would be wrong silently).
    return {"method": "eand-arn", "config": dataclasses.asdict(config)}


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def eand_arn_batch(
    Ys,
    As,
    *,
    laplacian: SparseOperator,
    dt: float,
    vertices=None,
    adjacency=None,
    config: EANDARNConfig = EANDARNConfig(),
    train: TrainConfig = TrainConfig(),
    ap_params: APParams = APParams(),
    keys=None,
    starts=None,
    truths=None,
    place=None,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    observation: str = "identity",
    movable_heart=None,
) -> list[NeuralFit]:
    """Fit EAND-ARN to ``B`` recordings at once: one ``jax.vmap``-ed training step over the stacked
    parameters, optimizer states and problems (see ``run_training(..., batched=True)``).

    Each result equals ``eand_arn(Ys[b], As[b], key=keys[b], start=starts[b], truth=truths[b], ...)``
    up to float rounding (batched matrix products may round differently).

    Args:
        Ys: ``B`` body-potential arrays ``(m, t)`` (a sequence or a ``(B, m, t)`` array).
        As: ``B`` transfer matrices ``(m, n)`` (the same matrix may repeat).
        keys: ``B`` PRNG keys, or ``None`` (every problem uses :func:`eand_arn`'s default key).
        starts: ``B`` start specifications (see :func:`eand_arn`), or ``None`` (``"auto"``);
            start solutions are computed problem by problem (the pacing search is a host loop).
        truths: ``B`` ground truths ``(n, t)`` for the per-chunk error, or ``None``.
        place: optional ``place(tree) -> tree`` applied to every stacked pytree before training
            (e.g. pad the batch and shard it over devices); results beyond ``B`` are dropped.
        Other arguments as :func:`eand_arn` (shared by every problem).
    """
    n_problems = len(Ys)
    keys = [None] * n_problems if keys is None else list(keys)
    starts = ["auto"] * n_problems if starts is None else list(starts)
    if len(As) != n_problems or len(keys) != n_problems or len(starts) != n_problems:
        raise ValueError(
            f"got {n_problems} Y's but {len(As)} A's, {len(keys)} keys and {len(starts)} starts: give one per problem."
        )
    setups = [
        setup_eand_arn(
            y, a, laplacian=laplacian, dt=dt, vertices=vertices, adjacency=adjacency, config=config, train=train,
            ap_params=ap_params, key=k, start=s, observation=observation, movable_heart=movable_heart,
        )
        for y, a, k, s in zip(Ys, As, keys, starts)
    ]
    graphdef = setups[0].graphdef
    if any(s.graphdef != graphdef for s in setups[1:]):
        raise ValueError("all problems of a batch must have the same shapes (m, n, t) and network settings.")
    place = (lambda tree: tree) if place is None else place
    state, problem, key = place((_stack([s.state for s in setups]), _stack([s.problem for s in setups]), _stack([s.key for s in setups])))
    n_t, dtype = setups[0].problem.Y.shape[1], setups[0].problem.Y.dtype
    step = make_eand_arn_step(graphdef, config, train, n_t, dtype)
    fields = _jit_fields(graphdef, config, n_t, batched=True)

    monitor = None
    if truths is not None:
        if len(truths) != n_problems:
            raise ValueError(f"got {len(truths)} truths for {n_problems} problems.")
        truth = place(jnp.stack([jnp.asarray(t, dtype) for t in truths]))

        def monitor(s):
            err = jnp.linalg.norm(fields(s.params, problem)[0] - truth, axis=(1, 2)) / jnp.linalg.norm(truth, axis=(1, 2))
            return {"rel_error": err}

    state, histories, infos = run_training(
        step, state, problem, key, train, names=TERMS, monitor=monitor, batched=True,
        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, step_settings=_step_settings(config),
    )
    U, V = fields(state.params, problem)
    fits = []
    for b in range(n_problems):
        params = jax.tree.map(lambda x: x[b], state.params)
        weights = None if state.weights is None else state.weights[b]
        fits.append(
            _neural_fit(U[b], V[b], params, graphdef, histories[b], infos[b], setups[b].info, setups[b].problem.ap_params, weights)
        )
    return fits
