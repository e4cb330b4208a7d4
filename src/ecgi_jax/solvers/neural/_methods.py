"""``solve()`` entries of the neural methods: ``"eand-arn"`` and its predecessor ``"pdl"``."""

from __future__ import annotations

import dataclasses
import inspect

from ..._registry import Solution, register_batch_method, register_method
from ...ep import APParams
from ...forward import MovableHeart, extracellular_observation, reduce_observation
from ._eand_arn import EANDARNConfig, eand_arn, eand_arn_batch
from ._train import TrainConfig


def _require_laplacian(laplacian):
    # eand_arn converts any form (SparseOperator, scipy, dense) to the data's dtype itself.
    if laplacian is None:
        raise ValueError("the neural methods need the heart's mesh Laplacian: pass laplacian=(n, n).")
    return laplacian


def _recorded(options: dict, arrays) -> dict:
    """The options as recorded in ``Solution.options``: data arrays replaced by ``"<given>"``."""
    options = {k: v for k, v in options.items() if k not in ("Y", "A")}
    for name in arrays:
        options[name] = None if options[name] is None else "<given>"
    return options


def _defaults(fn) -> dict:
    """Keyword options of a ``solve_*`` function with their defaults."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY}


def _solution(fit, name, options):
    diagnostics = {k: v for k, v in fit.info.items()}
    diagnostics["final_loss"] = fit.history["loss"][-1] if fit.history["loss"] else float("nan")
    return Solution(fit.U, name, diagnostics, options, recovery=fit.V, history=fit.history)


def _reduced(Y, A, o: dict):
    """``(Y, A, o)`` as EAND-ARN fits them (:func:`~ecgi_jax.forward.reduce_observation`)."""
    Y, A, observation = reduce_observation(Y, A, o["observation"])
    if observation != o["observation"] and o["movable_heart"] is not None:
        raise ValueError("observation='extracellular' does not move the heart (the common mode is projected out of a "
                         "fixed A): pass movable_heart=None, or use observation='gain-offset' with movable_heart.")
    return Y, A, {**o, "observation": observation}


def _extracellular(sol: Solution, Y, A, observation: str) -> Solution:
    if observation == "extracellular":  # the gain (fixed at the start), offsets and common mode of the user's own Y
        sol.diagnostics.update(extracellular_observation(Y, A, sol.U, gain=sol.diagnostics["observation_gain"]))
    return sol


def _fields_of(config_class, o: dict) -> dict:
    return {f.name: o[f.name] for f in dataclasses.fields(config_class)}


def _eand_arn_settings(o: dict):
    """``(config, train, shared keyword arguments of eand_arn)`` from the options of :func:`solve_eand_arn`."""
    # Every field of the two configs is an option of the same name: built from the fields, so a
    # field added to a config cannot be left unreachable (nine once were).
    cfg = EANDARNConfig(**{**_fields_of(EANDARNConfig, o), "weights": tuple(float(w) for w in o["weights"])})
    train = TrainConfig(**_fields_of(TrainConfig, o))
    shared = dict(
        laplacian=_require_laplacian(o["laplacian"]), dt=o["dt"], vertices=o["vertices"], adjacency=o["adjacency"],
        ap_params=o["ap_params"], checkpoint_dir=o["checkpoint_dir"], checkpoint_every=o["checkpoint_every"],
        observation=o["observation"], movable_heart=o["movable_heart"],
    )
    return cfg, train, shared


def _record_eand_arn(o: dict) -> dict:
    options = _recorded(o, ("laplacian", "vertices", "adjacency", "truth", "key", "movable_heart"))
    start = o["start"]
    if isinstance(start, (tuple, list)) or hasattr(start, "shape"):
        options["start"] = "<given>"
    return options


# solve's defaults are the configs' (one set of EAND-ARN defaults, issue 19).
_M, _T = EANDARNConfig, TrainConfig


def solve_eand_arn(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    vertices=None,
    adjacency=None,
    mode: str = _M.mode,
    start="auto",
    init: str = _M.init,
    width: int = _M.width,
    n_blocks: int = _M.n_blocks,
    block_depth: int = _M.block_depth,
    activation: str = _M.activation,
    fourier_features: int = _M.fourier_features,
    fourier_scale: float = _M.fourier_scale,
    adaptive: bool = _M.adaptive,
    architecture: str = _M.architecture,
    ridge: float = _M.ridge,
    stencil_order: int = _M.stencil_order,
    derivative: str = _M.derivative,
    windows: int | None = _M.windows,
    weights=_M.weights,
    learnable_weights: bool = _M.learnable_weights,
    balance_every: int | None = None,
    fit_D: bool = _M.fit_D,
    fit_a: bool = _M.fit_a,
    reaction_discrepancy: int = _M.reaction_discrepancy,
    physics_learning_rate: float = _T.physics_learning_rate,
    steps: int = _T.steps,
    learning_rate: float = _T.learning_rate,
    schedule: str = _T.schedule,
    decay_rate: float = _T.decay_rate,
    decay_steps: int = _T.decay_steps,
    min_learning_rate: float = _T.min_learning_rate,
    grad_clip: float | None = _T.grad_clip,
    patience: int = _T.patience,
    min_delta: float = _T.min_delta,
    ap_params: APParams = APParams(),
    key=None,
    truth=None,
    progress: bool = _T.progress,
    chunk: int = _T.chunk,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
    lbfgs_steps: int = _T.lbfgs_steps,
    observation: str = "identity",
    movable_heart: MovableHeart | None = None,
) -> Solution:
    """EAND-ARN (see :func:`~ecgi_jax.solvers.neural.eand_arn`). ``chunk``: optimizer steps per
    jitted call; ``checkpoint_dir``: save the training state every ``checkpoint_every`` chunks
    and resume from a checkpoint of the same run found there (bit-identical to an uninterrupted
    run; a folder holding another run's checkpoint is refused); ``lbfgs_steps``: L-BFGS
    iterations on the full-batch loss after Adam (0: none; not with :func:`~ecgi_jax.solve_batch`);
    ``fit_D`` / ``fit_a``: learn the AP model's D / a with the fields (Adam at
    ``physics_learning_rate``), reported in ``diagnostics["D"]`` / ``["a"]``; ``balance_every``:
    rebalance the data fit against the other terms by gradient norms every so many steps (default
    100, 0 with ``learnable_weights``; 0 keeps ``weights`` fixed), the final weights in
    ``diagnostics["loss_weights"]``. ``steps`` is 500: off the inverse crime (Mitchell–Schaeffer
    truth, development cases only) the RE rose with every 100 steps from the template start, e.g.
    0.1254 → 0.1276 after 500 → 0.1293 after 1000; half the steps halve that and the time.
    The network and training settings are :class:`~ecgi_jax.solvers.neural.EANDARNConfig`'s and
    :class:`~ecgi_jax.solvers.neural.TrainConfig`'s fields (one source of defaults), every one of
    them reachable here. ``observation="gain-offset"``: recordings ``Y = g·A u + b`` (mV, another scale or sign of
    ``A``, per-lead references); the gain and offsets are fitted to the physics start and reported
    in ``diagnostics["observation_gain"]`` / ``["observation_offset"]``. ``observation="extracellular"``:
    ``A`` maps heart-surface extracellular potentials (a sock of electrograms) and
    ``Y ≈ −g·A u + (A·1)·c(t) + b``; fitted as ``"gain-offset"`` after projecting ``A·1`` out of
    every frame (:func:`~ecgi_jax.forward.without_common_mode`), with ``observation_gain`` (``−g``),
    ``observation_offset`` and ``observation_common_mode`` (``c(t)``) of the user's ``Y``. ``movable_heart``
    (:class:`~ecgi_jax.forward.MovableHeart`, the meshes and electrodes ``A`` was built from): the
    start also fits where the heart sits (its translation; the rotation is held), reported in
    ``diagnostics["heart_pose"]`` (a pose of :mod:`ecgi_jax.forward`: ``tx, ty, tz`` in the meshes'
    unit, then the rotation vector) where the criterion takes it; costs seven BEM solves and three
    template fits more."""
    o = dict(locals())
    options = _record_eand_arn(o)
    Y_fit, A_fit, o = _reduced(Y, A, o)
    cfg, train, shared = _eand_arn_settings(o)
    fit = eand_arn(Y_fit, A_fit, config=cfg, train=train, key=key, start=start, truth=truth, **shared)
    return _extracellular(_solution(fit, "eand-arn", options), Y, A, observation)


def _per_problem_starts(start, n_problems):
    """A shared start name, or per-problem starts: a ``(B, n, t)`` array of u or a pair of them."""
    if isinstance(start, str):
        return [start] * n_problems
    if isinstance(start, tuple):
        U0s, V0s = start
        return [(u, v) for u, v in zip(U0s, V0s, strict=True)]
    return list(start)


def batch_eand_arn(Y, A, *, keys=None, place=None, replicate=None, **options) -> list[Solution]:
    """EAND-ARN for a batch (see :func:`ecgi_jax.solve_batch`): ``Y (B, m, t)``, ``A (B, m, n)``
    or shared ``(m, n)``; ``truth`` is ``(B, n, t)``; ``start`` a name or per-problem starts."""
    o = {**_defaults(solve_eand_arn), **options}
    if o["key"] is not None:
        raise TypeError("solve_batch takes per-problem keys through keys=, not key=.")
    options = _record_eand_arn(o)
    As = [A] * len(Y) if A.ndim == 2 else list(A)
    reduced = [_reduced(y, a, o) for y, a in zip(Y, As, strict=True)]
    o = reduced[0][2]
    cfg, train, shared = _eand_arn_settings(o)
    if train.lbfgs_steps:
        raise ValueError("lbfgs_steps is not supported by solve_batch (L-BFGS runs per problem); use solve() in a loop.")
    fits = eand_arn_batch(
        [y for y, _, _ in reduced], [a for _, a, _ in reduced], config=cfg, train=train, keys=keys,
        starts=_per_problem_starts(o["start"], len(Y)), truths=o["truth"], place=place, **shared,
    )
    options = {**options, "key": None if keys is None else "<given>"}
    return [_extracellular(_solution(f, "eand-arn", options), y, a, options["observation"]) for f, y, a in zip(fits, Y, As)]


def _pdl_settings(o: dict):
    cfg = EANDARNConfig(
        mode="coordinate", architecture="pdl-mlp", width=o["width"], n_blocks=o["n_layers"], derivative="autodiff",
        windows=o["collocation"], weights=(1.0, 1.0, 1.0, 0.0, 0.0), learnable_weights=True, init="random",
        reaction_discrepancy=0,  # the predecessor's loss: the AP residuals themselves
    )
    steps = o["steps"]
    train = TrainConfig(
        steps=steps, learning_rate=o["learning_rate"], decay_rate=0.9, decay_steps=max(steps // 30, 1),
        schedule="pdl", grad_clip=None, progress=o["progress"], chunk=o["chunk"], patience=0,
    )
    if o["vertices"] is None:
        raise ValueError("method 'pdl' maps node coordinates to (u, v): pass vertices=(n, 3).")
    shared = dict(
        laplacian=_require_laplacian(o["laplacian"]), dt=o["dt"], vertices=o["vertices"], ap_params=o["ap_params"],
        checkpoint_dir=o["checkpoint_dir"], checkpoint_every=o["checkpoint_every"],
    )
    return cfg, train, shared


def solve_pdl(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    vertices=None,
    collocation: int = 400,
    width: int = 10,
    n_layers: int = 5,
    steps: int = 3000,
    learning_rate: float = 2e-3,
    ap_params: APParams = APParams(),
    key=None,
    truth=None,
    progress: bool = True,
    chunk: int = 100,
    checkpoint_dir=None,
    checkpoint_every: int = 1,
) -> Solution:
    """P-DL (Xie & Yao): coordinate MLP, autodiff in time at random collocation times."""
    o = dict(locals())
    options = _recorded(o, ("laplacian", "vertices", "truth", "key"))
    cfg, train, shared = _pdl_settings(o)
    fit = eand_arn(Y, A, config=cfg, train=train, key=key, truth=truth, **shared)
    return _solution(fit, "pdl", options)


def batch_pdl(Y, A, *, keys=None, place=None, replicate=None, **options) -> list[Solution]:
    """P-DL for a batch (see :func:`ecgi_jax.solve_batch`); ``truth`` is ``(B, n, t)``."""
    o = {**_defaults(solve_pdl), **options}
    if o["key"] is not None:
        raise TypeError("solve_batch takes per-problem keys through keys=, not key=.")
    cfg, train, shared = _pdl_settings(o)
    As = [A] * len(Y) if A.ndim == 2 else list(A)
    fits = eand_arn_batch(
        list(Y), As, config=cfg, train=train, keys=keys, truths=o["truth"], place=place, **shared,
    )
    options = _recorded(o, ("laplacian", "vertices", "truth", "key"))
    return [_solution(f, "pdl", {**options, "key": None if keys is None else "<given>"}) for f in fits]


register_method(
    "eand-arn",
    solve_eand_arn,
    "EAND-ARN: adaptive ResNet (u, v) trained on data fit + Aliev–Panfilov residual with 5-point "
    "finite-difference ∂/∂t and mesh-Laplacian Δ; starts from the best-fitting of the single-site AP "
    "beat, the shooting beat with fitted D and a (needs `vertices`) and their waveform-template refinement "
    "(one learned action potential shifted by per-node activation times), by Akaike's criterion "
    "(`start=\"auto\"`), or a Tikhonov map. Needs `laplacian`, `dt`.",
)
register_method(
    "pdl",
    solve_pdl,
    "P-DL baseline (Xie & Yao): 5×10 tanh MLP of (x, y, z, t), ∂/∂t by autodiff at 400 random "
    "collocation times, learnable loss weights, three-stage Adam. Needs `laplacian`, `vertices`.",
)
register_batch_method("eand-arn", batch_eand_arn)
register_batch_method("pdl", batch_pdl)
