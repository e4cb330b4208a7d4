"""``solve()`` entries of the shooting methods: ``"ap-shooting"`` and ``"hybrid"``.

``"hybrid"`` chains shooting and EAND-ARN in either order:

* ``first="ap-shooting"`` (default): the shooting beat ``(U, V)`` is EAND-ARN's start
  (``solve(..., method="eand-arn", start=(U, V))``) — the network then corrects what the
  few-parameter beat cannot express (model mismatch). EAND-ARN's physics loss uses the AP
  parameters shooting fitted (``D`` and ``a``), not the nominal ones: otherwise the
  loss would pull the beat back towards the very model the fit rejected;
* ``first="eand-arn"``: EAND-ARN's map starts the shooting fit — the earliest-activating nodes of
  its ``U`` are the start centres and their activation times the start onsets
  (``solve(..., method="ap-shooting", start=(U, V))``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..._registry import Solution, get_method, register_method
from ...ep import APParams
from ...forward import extracellular_observation, misfit_scale, reduce_observation
from ._shooting import shooting_fit


def _recorded(options: dict) -> dict:
    options = {k: v for k, v in options.items() if k not in ("Y", "A")}
    for name in ("laplacian", "vertices", "adjacency"):
        options[name] = None if options[name] is None else "<given>"
    if not isinstance(options.get("start"), str):
        options["start"] = "<given>"
    return options


def solve_ap_shooting(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    vertices=None,
    adjacency=None,
    start="search",
    n_starts: int = 4,
    fit_D: bool = True,
    fit_a: bool = True,
    max_iter: int = 20,
    screen_iter: int = 8,
    tol: float = 1e-4,
    max_advance: float = 2.0,
    n_candidates: int = 64,
    substeps: int | None = None,
    prior_sd=None,
    refine: int = 2,
    ap_params: APParams = APParams(),
    observation: str = "identity",
) -> Solution:
    """Shooting through the Aliev–Panfilov simulator (see :func:`~ecgi_jax.solvers.shooting.shooting_fit`).

    Diagnostics: ``parameters`` / ``std`` (name → value, Laplace sds), ``covariance`` ``(p, p)``,
    ``names``, ``at_bounds`` (physics parameters left at an edge of their box; a warning says so),
    ``sigma2`` (residual variance), ``misfit`` (``‖Y − AU‖²/‖Y‖²``), ``pacing_node``
    (pacing site), ``pacing_onset``/``pacing_onset_std``, ``width``, ``D``/``D_std`` and ``a``/``a_std`` (delta method),
    ``iterations``/``converged`` of the best start, ``start_nodes``, ``start_misfits``.

    ``observation="gain-offset"``: recordings ``Y = g·A u + b`` (mV, another scale or sign of
    ``A``, per-lead references), the gain and offsets projected out of every residual (misfits are
    over the leads' centred ``‖Y‖²``); the best beat's are ``observation_gain`` /
    ``observation_offset``. ``observation="extracellular"``: ``A`` maps heart-surface
    extracellular potentials and ``Y ≈ −g·A u + (A·1)·c(t) + b``, fitted as ``"gain-offset"``
    after projecting ``A·1`` out of every frame (misfits are of the projected data), with
    ``observation_gain`` (``−g``), ``observation_offset`` and ``observation_common_mode`` of ``Y``.
    """
    options = _recorded(locals())
    Y_fit, A_fit, fitted_as = reduce_observation(Y, A, observation)
    fit = shooting_fit(
        Y_fit, A_fit, laplacian, vertices=vertices, adjacency=adjacency, dt=dt, ap_params=ap_params, start=start,
        n_starts=n_starts, fit_D=fit_D, fit_a=fit_a, max_iter=max_iter, screen_iter=screen_iter, tol=tol, max_advance=max_advance,
        n_candidates=n_candidates, substeps=substeps, prior_sd=prior_sd, refine=refine, observation=fitted_as,
    )
    names = list(fit.names)
    best = fit.best
    y2 = float(misfit_scale(Y_fit, fitted_as))
    diag = dict(
        names=names,
        parameters=dict(zip(names, fit.theta.tolist())),
        std=dict(zip(names, fit.std.tolist())),
        covariance=fit.cov,
        sigma2=fit.sigma2,
        misfit=fit.misfit,
        pacing_node=fit.node,
        pacing_onset=fit.onset,
        pacing_onset_std=float(fit.std[names.index("onset")]),
        width=fit.width,
        D=np.asarray(fit.ap_params.D).tolist(),
        a=float(fit.ap_params.a),
        iterations=int(fit.lm.iterations[best]),
        converged=bool(fit.lm.converged[best]),
        start_nodes=fit.start_nodes.tolist(),
        start_misfits=(np.asarray(fit.lm.cost, np.float64) / y2).tolist(),
        substeps=fit.config.substeps,
        at_bounds=list(fit.at_bounds),
    )
    if fitted_as != "identity":
        diag.update(fit.observation.diagnostics())
    if observation == "extracellular":  # the gain, offsets and common mode of the user's own Y
        diag.update(extracellular_observation(Y, A, fit.U, gain=diag["observation_gain"]))
    # Delta method: D = D0·exp(η) → sd(D) ≈ D·sd(η); a = sigmoid(·) → sd(a) ≈ a(1 − a)·sd(η).
    if fit_D:
        diag["D_std"] = (np.asarray(fit.ap_params.D) * fit.std[names.index("log_D")]).tolist()
    if fit_a:
        a = diag["a"]
        diag["a_std"] = float(a * (1 - a) * fit.std[names.index("logit_a")])
    return Solution(fit.U, "ap-shooting", diag, options, recovery=fit.V)


def solve_hybrid(
    Y,
    A,
    *,
    laplacian=None,
    dt: float = 0.1,
    vertices=None,
    adjacency=None,
    first: str = "ap-shooting",
    steps: int = 300,
    n_starts: int = 4,
    fit_D: bool = True,
    fit_a: bool = True,
    ap_params: APParams = APParams(),
    key=None,
    progress: bool = False,
) -> Solution:
    """Shooting and EAND-ARN chained (module docstring); ``steps`` are EAND-ARN's Adam steps.

    Diagnostics: ``first``, the two stages' diagnostics under ``"ap-shooting"`` and
    ``"eand-arn"``, and ``eand_arn_D`` / ``eand_arn_a``: the AP parameters of EAND-ARN's loss.
    """
    if first not in ("ap-shooting", "eand-arn"):
        raise ValueError(f"first must be 'ap-shooting' or 'eand-arn'; got {first!r}.")
    options = _recorded(locals())
    common = dict(laplacian=laplacian, dt=dt, vertices=vertices, adjacency=adjacency)

    def shoot(start):
        return solve_ap_shooting(Y, A, start=start, n_starts=n_starts, fit_D=fit_D, fit_a=fit_a, ap_params=ap_params, **common)

    def eand(start, params):
        return get_method("eand-arn")(Y, A, start=start, steps=steps, key=key, progress=progress, ap_params=params, **common)

    if first == "ap-shooting":
        a = shoot("search")
        eand_params = dataclasses.replace(ap_params, D=np.asarray(a.diagnostics["D"]), a=a.diagnostics["a"])
        b = eand((a.U, a.V), eand_params)
    else:
        eand_params = ap_params
        a = eand("pacing", eand_params)
        b = shoot((a.U, a.V))
    diag = {"first": first, a.method: a.diagnostics, b.method: b.diagnostics,
            "eand_arn_D": np.asarray(eand_params.D).tolist(), "eand_arn_a": float(eand_params.a)}
    # The returned beat is the second stage's: so is how the call ended (Solution.result).
    diag.update({k: b.diagnostics[k] for k in ("stopped", "converged") if k in b.diagnostics})
    return Solution(b.U, "hybrid", diag, options, recovery=b.V, history=b.history)


register_method(
    "ap-shooting",
    solve_ap_shooting,
    "Shooting: fits a Gaussian initial-activation patch (centre, width), onset time, D and a of an "
    "Aliev–Panfilov beat to the body potentials by Levenberg–Marquardt with forward-mode "
    "Jacobians, multi-start from the pacing search, then a local site refinement; Laplace covariance "
    "of the parameters. Needs `laplacian`, `vertices`, `adjacency`, `dt`.",
)
register_method(
    "hybrid",
    solve_hybrid,
    "Shooting then EAND-ARN from its beat (`first=\"ap-shooting\"`), or EAND-ARN then shooting from "
    "its earliest activation (`first=\"eand-arn\"`). Needs `laplacian`, `vertices`, `adjacency`, `dt`.",
)
