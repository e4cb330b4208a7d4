"""``solve()`` entries of the neural methods: ``"eand-arn"`` and its predecessor ``"pdl"``."""

from __future__ import annotations

from ..._solve import Solution, register_method
from ...ep import APParams
from ._eand_arn import EANDARNConfig, eand_arn
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


def _solution(fit, name, options):
    diagnostics = {k: v for k, v in fit.info.items()}
    diagnostics["final_loss"] = fit.history["loss"][-1] if fit.history["loss"] else float("nan")
    return Solution(fit.U, name, diagnostics, options, recovery=fit.V, history=fit.history)


def solve_eand_arn(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    vertices=None,
    adjacency=None,
    mode: str = "body",
    start="pacing",
    init: str = "residual",
    width: int = 128,
    n_blocks: int = 3,
    block_depth: int = 2,
    activation: str = "tanh",
    fourier_features: int = 0,
    adaptive: bool = True,
    order: int = 4,
    derivative: str = "numerical",
    windows: int | None = None,
    weights=(1.0, 1.0, 1.0, 0.0, 0.0),
    learnable_weights: bool = False,
    steps: int = 1000,
    learning_rate: float = 2e-4,
    patience: int = 3,
    ap_params: APParams = APParams(),
    key=None,
    truth=None,
    progress: bool = True,
) -> Solution:
    options = _recorded(locals(), ("laplacian", "vertices", "adjacency", "truth", "key"))
    if isinstance(start, (tuple, list)) or hasattr(start, "shape"):
        options["start"] = "<given>"
    cfg = EANDARNConfig(
        mode=mode, width=width, n_blocks=n_blocks, block_depth=block_depth, activation=activation,
        fourier_features=fourier_features, adaptive=adaptive, order=order, derivative=derivative,
        windows=windows, weights=tuple(float(w) for w in weights), learnable_weights=learnable_weights, init=init,
    )
    train = TrainConfig(steps=steps, learning_rate=learning_rate, patience=patience, progress=progress)
    lap = _require_laplacian(laplacian)
    fit = eand_arn(
        Y, A, laplacian=lap, dt=dt, vertices=vertices, adjacency=adjacency, config=cfg, train=train,
        ap_params=ap_params, key=key, start=start, truth=truth,
    )
    return _solution(fit, "eand-arn", options)


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
) -> Solution:
    """P-DL (Xie & Yao): coordinate MLP, autodiff in time at random collocation times."""
    options = _recorded(locals(), ("laplacian", "vertices", "truth", "key"))
    if vertices is None:
        raise ValueError("method 'pdl' maps node coordinates to (u, v): pass vertices=(n, 3).")
    cfg = EANDARNConfig(
        mode="coordinate", architecture="pdl-mlp", width=width, n_blocks=n_layers, derivative="autodiff",
        windows=collocation, weights=(1.0, 1.0, 1.0, 0.0, 0.0), learnable_weights=True, init="random",
    )
    train = TrainConfig(
        steps=steps, learning_rate=learning_rate, decay_rate=0.9, decay_steps=max(steps // 30, 1),
        schedule="pdl", grad_clip=None, progress=progress,
    )
    lap = _require_laplacian(laplacian)
    fit = eand_arn(
        Y, A, laplacian=lap, dt=dt, vertices=vertices, config=cfg, train=train, ap_params=ap_params,
        key=key, truth=truth,
    )
    return _solution(fit, "pdl", options)


register_method(
    "eand-arn",
    solve_eand_arn,
    "EAND-ARN: adaptive ResNet (u, v) trained on data fit + Aliev–Panfilov residual with 5-point "
    "finite-difference ∂/∂t and mesh-Laplacian Δ; starts from the best single-site AP beat "
    "(`start=\"pacing\"`) or a Tikhonov map. Needs `laplacian`, `dt`.",
)
register_method(
    "pdl",
    solve_pdl,
    "P-DL baseline (Xie & Yao): 5×10 tanh MLP of (x, y, z, t), ∂/∂t by autodiff at 400 random "
    "collocation times, learnable loss weights, three-stage Adam. Needs `laplacian`, `vertices`.",
)
