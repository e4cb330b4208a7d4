"""The start solutions EAND-ARN trains from (and ``hybrid`` chains): the single-site AP beat, the
shooting beat, their waveform-template refinement, the Akaike choice among them, or a Tikhonov map;
and the recovery variable integrated from a potential."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...ep import APParams, ap_rhs
from ...forward import MovableHeart, Observation, check_observation, fit_observation, fit_pose_step, relative_misfit
from ...operators import SparseOperator, adjacency_from_sparse

__all__ = ["STARTS", "start_solution", "template_start", "posed_template", "recovery_from_potential", "start_ap_params", "observation_of"]

STARTS = ("auto", "pacing", "shooting", "template", "tikhonov")
# The waveform-template start (chosen on development cases only, sites 50 / 300 with seeds 1 / 2 of
# the non-crime phantom, homogeneous and with an APD gradient; never on a reported case): L-BFGS
# iterations, the weight of ||L tau||^2 / n (and of the stretch's), the waveform curvature penalty
# and the whitening of the times (by the Laplacian) and of the waveform (by its first difference) that
# fit_template's whiten applies. From the shooting beat, RE of 3000 plain iterations -> 500 whitened:
# homogeneous 0.131 / 0.130 -> 0.126 / 0.117; APD gradient (stretched) 0.198 / ... -> 0.142 / ...;
# heart 8 mm / 8 deg off 0.224 / 0.208 -> 0.242 / 0.217 (worse: converged further, the fit follows the
# geometry error). 6x fewer iterations. (Whitening the waveform by its second difference instead:
# 0.134 / 0.121, shift 0.286 / 0.234.)
TEMPLATE_STEPS, TEMPLATE_LAM, TEMPLATE_MU, TEMPLATE_WHITEN = 500, 1e-2, 1e-3, 1e-3
# The stretch of the waveform (APD varying over the heart) lives in the smoothest STRETCH_MODES modes
# of the heart, not one per node: the criterion then charges STRETCH_MODES parameters, not n, and
# takes the stretch wherever it explains the data at all. Per node it was charged 642 and left
# out in some cases whose APD varied (the reported APD losses of noncrime_study's run I), while on
# development cases (sites 50 / 150 / 450, seed 1, APD gradient ±15 %) the stretched fit gave RE
# 0.14–0.23 against 0.33–0.43 unstretched; without an APD gradient the modes stretch by < 4 % and
# change RE by < 0.004. 25 modes on those cases: mean RE 0.176 (10 modes 0.186, 4 modes 0.203,
# per node 0.182).
STRETCH_MODES = 25
# The heart's pose (movable_heart): Gauss–Newton rounds, each a pose step for the current template
# and a template refit for the moved heart, with the pose Jacobian at the nominal pose (a BEM solve
# per component, once). Only the translation is fitted: on development cases (seed 1, heart 8 mm and
# 8 deg off) the rotation came out wrong (up to 11 deg about another axis) and fitting it too was
# worse, site 150: RE 0.171 / 0.203 (biventricular / dilated) with rotation, 0.163 / 0.193 without,
# 0.238 / 0.379 for the heart left where A puts it; site 50, two rounds with the rotation: 0.242 ->
# 0.162, 0.367 -> 0.211; with the true pose 0.126 / 0.158.
POSE_ROUNDS, POSE_FREE = 3, (True, True, True, False, False, False)
POSE_PARAMS = sum(POSE_FREE)
# At most this many refits of the template as fronts from its own early sites (start_solution).
FRONT_ROUNDS = 5


def recovery_from_potential(U, dt, ap_params: APParams = APParams(), substeps: int = 4):
    """Integrate the v-equation of the AP model node by node for a given ``u(t)``, from v = 0.

    v has no diffusion, so it is a causal functional of u at each node: this gives the recovery
    variable that goes with a reconstructed u (used to start the network's v output). u is
    clipped to ``[0, 1]`` first so that ``u + mu2`` stays positive for a classical estimate.
    """
    U = jnp.clip(jnp.asarray(U), 0.0, 1.0)
    h = dt / substeps
    zero = jnp.zeros(U.shape[0], U.dtype)

    def interval(v, u_pair):
        u0, u1 = u_pair

        def sub(v, s):
            u = u0 + (u1 - u0) * s / substeps  # linear in time between samples
            return v + h * ap_rhs(u, v, zero, ap_params)[1], None

        v, _ = jax.lax.scan(sub, v, jnp.arange(substeps, dtype=U.dtype))
        return v, v

    _, vs = jax.lax.scan(interval, zero, (U[:, :-1].T, U[:, 1:].T))
    return jnp.concatenate([zero[:, None], vs.T], axis=1)

def start_solution(
    kind: str, Y, A, lap: SparseOperator, dt, *, vertices=None, adjacency=None, ap_params=APParams(),
    observation: str = "identity", movable_heart: MovableHeart | None = None,
):
    """A start ``(U0, V0, info)`` for EAND-ARN.

    * ``"pacing"``: the best single-site Aliev–Panfilov beat
      (:func:`~ecgi_jax.solvers.shooting.pacing_search`) — a trajectory of the nominal model;
    * ``"shooting"``: the beat of :func:`~ecgi_jax.solvers.shooting.shooting_fit` (patch centre,
      width, onset, D and a fitted, started from that pacing search; needs ``vertices``) — a trajectory
      of the *fitted* model, whose ``D`` and ``a`` are returned in ``info["start_D"]`` /
      ``["start_a"]`` for EAND-ARN's physics term;
    * ``"auto"``: both (shooting only when ``vertices`` are given), and the one with the lower
      Akaike criterion ``N·log(‖A U₀ − Y‖²) + 2p`` (``N = m·t`` data, ``p`` = 2 parameters for the
      single-site beat — node, onset — and shooting's 6–7). Shooting's extra parameters always
      shave a little noise off the misfit; the criterion takes them only when they explain more
      than noise. On data from the nominal model the single-site beat is exact and wins; on
      anything else (other tissue, a larger stimulus) shooting wins by far
      (``experiments/model_mismatch.py``);
    * ``"template"``: the physics start above (the better of the two by the criterion), refined
      by the waveform-template fit (:func:`~ecgi_jax.solvers.activation.fit_template`: one
      learned action-potential shape shifted by each node's activation time, started from the
      physics beat's activation times and waveform), with and without a smooth stretch of the
      waveform (APD that varies over the heart), the better by the criterion
      (``info["template_stretch"]``). It holds whatever the true ionic model, where the AP beats
      carry AP's own waveform; v is integrated from u. Where the fitted times have more than one
      early site (local minimum), the fit is started again from fronts leaving those sites at one
      speed (:func:`~ecgi_jax.solvers.activation.eikonal_projection`) with its waveform, and the
      refit kept when it explains the data better (a beat from several sites, whose fronts a
      one-site start keeps in the wrong place), then again from the refit's own sites while the
      misfit falls, ``FRONT_ROUNDS`` times at most (``info["template_sites"]`` /
      ``["template_site_times"]`` / ``["template_front_rounds"]``);
    * ``"auto"`` also weighs the template (``p = n + K``: a time per node and the waveform's
      knots; stretched ``n + K + STRETCH_MODES``) against the physics starts by the same criterion: it wins on data the AP model did
      not generate (Mitchell–Schaeffer truth on a finer mesh: misfit 0.0031 → 0.0024 at σ = 0.1,
      ``experiments/noncrime_study.py``) and loses on the AP model's own beats, where the
      shooting beat is exact;
    * ``"tikhonov"``: 2nd-order Tikhonov with the L-curve λ, with v integrated from the clipped u
      (:func:`recovery_from_potential`).

    ``movable_heart`` (a :class:`~ecgi_jax.forward.MovableHeart` that reproduces ``A``): the
    template is also fitted with the heart moved rigidly (:func:`posed_template`), and taken when
    the criterion prefers it (``POSE_PARAMS`` more parameters: the translation); its pose is in
    ``info["heart_pose"]`` and the caller's data term should use
    ``movable_heart.transfer_matrix(pose)``.

    ``info["start"]`` names the start used, ``info["start_misfit"]`` its misfit and
    ``info["start_potentials"]`` its u ``(n, t)`` (to score the start against the trained fields).

    ``observation="gain-offset"`` (physics starts only): every start is scored after its best gain
    and per-lead offsets (:mod:`ecgi_jax.forward` observation model; the pacing search and
    shooting project them out of every residual, the template fits the data mapped back by its
    physics beat's, ``(Y − b)/g``); the chosen start's are in ``info["observation_gain"]`` /
    ``["observation_offset"]`` (:func:`observation_of`).
    """
    if kind not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, an (n, t) array of u or a (U, V) pair; got {kind!r}.")
    if check_observation(observation) != "identity" and kind == "tikhonov":
        raise ValueError("observation='gain-offset' fits the gain and offsets to a physics start: use start 'auto', "
                         "'pacing', 'shooting' or 'template', not 'tikhonov'.")
    if movable_heart is not None and (kind not in ("auto", "template") or vertices is None):
        raise ValueError("movable_heart moves the heart for the template start: use start 'auto' or 'template' and "
                         "pass vertices=(n, 3) (the template refines the shooting beat), or leave it out.")
    if kind == "tikhonov":
        from .. import classical

        path = classical.tikhonov_path(Y, factor=classical.factorize(A, lap.astype(Y.dtype)))
        choice = classical.select_lambda(path, "lcurve")
        U0 = jnp.asarray(path.solution(choice.index), Y.dtype)
        return U0, recovery_from_potential(U0, dt, ap_params), {"start": "tikhonov", "start_lambda": float(choice.lam)}
    from ..shooting import pacing_search, shooting_fit

    if kind == "shooting" and vertices is None:
        raise ValueError("start='shooting' fits a patch centre in space: pass vertices=(n, 3) (or use start='pacing').")
    # Checked before the searches, and solved once: the Jacobian of the pose fit starts from it.
    A_nominal = None if movable_heart is None else movable_heart.matching_matrix(A)
    if adjacency is None:
        adjacency = adjacency_from_sparse(lap.to_scipy())
    search_vertices = vertices
    if vertices is None:
        # No coordinates: spread candidates evenly over the node numbering instead.
        search_vertices = np.zeros((A.shape[1], 3))
        search_vertices[:, 0] = np.arange(A.shape[1])
    found = pacing_search(
        Y, A, lap, vertices=search_vertices, adjacency=adjacency, dt=dt, ap_params=ap_params, observation=observation
    )

    def misfit(U, A=A):
        return float(relative_misfit(Y, jnp.matmul(A, U, precision="highest"), observation))

    def observed(obs: Observation) -> dict:  # a start's gain and offsets, for its info
        return {} if observation == "identity" else obs.diagnostics()

    pacing = (found.U, found.V, {"start": "pacing", "pacing_node": found.node, "pacing_onset": found.onset,
                                 "start_misfit": misfit(found.U), **observed(found.observation)})
    if kind == "pacing" or vertices is None:
        return pacing
    fit = shooting_fit(
        Y, A, lap, vertices=vertices, adjacency=adjacency, dt=dt, ap_params=ap_params, start=found, observation=observation
    )
    shooting = (fit.U, fit.V, {
        "start": "shooting", "pacing_node": fit.node, "pacing_onset": fit.onset, "start_misfit": misfit(fit.U), **observed(fit.observation),
        "start_D": np.asarray(fit.ap_params.D).tolist(), "start_a": float(fit.ap_params.a),
    })
    if kind == "shooting":
        return shooting
    n_obs = Y.size
    aic = {
        "pacing": n_obs * np.log(pacing[2]["start_misfit"]) + 2 * 2,
        "shooting": n_obs * np.log(shooting[2]["start_misfit"]) + 2 * len(fit.names),
    }
    best = shooting if aic["shooting"] < aic["pacing"] else pacing
    misfits = {"pacing": pacing[2]["start_misfit"], "shooting": shooting[2]["start_misfit"]}
    if kind == "template" or kind == "auto":
        from ..activation import eikonal_projection

        # One waveform everywhere, and the same with a smooth stretch (hearts whose APD varies),
        # both from the physics beat; the criterion charges a time per node, the waveform's knots
        # and, stretched, the stretch's modes.
        beat, fits, L = best, {}, lap.todense()
        Y_model = observation_of(beat[2]).normalize(Y) if observation != "identity" else Y  # the template fits A u
        for name, stretch in (("template", False), ("template-stretch", True)):
            fits[name] = template_start(Y_model, A, L, dt, beat[0], stretch=stretch)
            misfits[name] = misfit(fits[name].U)
            n_params = A.shape[1] + (min(STRETCH_MODES, A.shape[1]) if stretch else 0) + fits[name].waveform.shape[0]
            aic[name] = n_obs * np.log(misfits[name]) + 2 * n_params
        name = min(fits, key=aic.get)
        # Fronts from the template's own early sites, refitted: where a beat starts at several
        # sites, the fit from a one-site beat keeps that beat's front between them, though its
        # earliest times already lie at the true sites (0-16 mm). The same parameters, so the
        # misfit alone decides. Development cases (Mitchell-Schaeffer, sites 50/300, 150/450 and
        # 50/150/450 at once with seeds 1-2, and 10 ms apart with seed 1): RE 0.154-0.178 ->
        # 0.127-0.159, every refit with the lower misfit; four single-site cases had one minimum.
        # Then again from the refit's own sites, while the misfit falls (FRONT_ROUNDS at most): a
        # one-site fit can have a spurious early site that the first refit drops. Three sites far
        # apart (development: 50/635/256 biventricular seed 1, 300/50/571 dilated seed 2): RE
        # 0.204 -> 0.153 after 4 refits and 0.158 -> 0.144 after 2; on the held-out cases of
        # noncrime_study (run X) multi-site beats stayed at 0.225, staggered 0.198 -> 0.196.
        fronts_name, sites = f"{name}-fronts", {}
        current, rounds = name, 0
        while rounds < FRONT_ROUNDS:
            fronts = eikonal_projection(np.asarray(fits[current].tau), vertices, adjacency)
            if len(fronts.sites) < 2:
                break
            refit = template_start(Y_model, A, L, dt, beat[0], stretch=fits[name].log_stretch is not None,
                                   times=jnp.asarray(fronts.times, Y.dtype), waveform=fits[current].waveform)
            m = misfit(refit.U)
            if not m < misfits[current]:
                break
            fits[fronts_name], misfits[fronts_name], current, rounds = refit, m, fronts_name, rounds + 1
            sites = {"template_sites": fronts.sites.tolist(), "template_site_times": fronts.site_times.tolist(),
                     "template_front_rounds": rounds}
        if rounds:
            aic[fronts_name] = aic[name] + n_obs * np.log(misfits[fronts_name] / misfits[name])
        name = current
        A_t, posed = A, {}
        if movable_heart is not None:
            # The heart's position too (three more parameters): where the model puts the heart wrongly,
            # the moved heart's template explains the data better, and the criterion takes it.
            fit, pose, A_pose = posed_template(
                Y_model, A, L, dt, beat[0], movable_heart, stretch=fits[name].log_stretch is not None, fit=fits[name],
                A_nominal=A_nominal,
            )
            misfits["template-pose"] = misfit(fit.U, A_pose)
            aic["template-pose"] = aic[name] + n_obs * np.log(misfits["template-pose"] / misfits[name]) + 2 * POSE_PARAMS
            if aic["template-pose"] < aic[name]:
                fits["template-pose"], A_t, name = fit, A_pose, "template-pose"
                posed, sites = {"heart_pose": pose.tolist()}, {}  # (refitted from the physics beat)
        if kind == "template" or aic[name] < aic[beat[2]["start"]]:
            U_t = fits[name].U
            best = (U_t, recovery_from_potential(U_t, dt, start_ap_params(ap_params, beat[2])), {
                **beat[2], "start": "template", "template_from": beat[2]["start"],
                "template_stretch": fits[name].log_stretch is not None, "start_misfit": misfits[name],
                "template_activation_times": np.asarray(fits[name].tau).tolist(), **posed, **sites,
                **observed(fit_observation(Y, jnp.matmul(A_t, U_t, precision="highest"), observation)),
            })
    gain = aic["pacing"] - min(aic.values())
    return best[0], best[1], {**best[2], "start_misfits": misfits, "start_aic_gain": float(gain)}

def template_start(Y, A, L, dt, U0, *, stretch: bool = False, times=None, waveform=None):
    """The waveform-template fit (:class:`~ecgi_jax.solvers.activation.TemplateFit`) started from
    the beat ``U0``, with a stretch of the waveform (in the ``STRETCH_MODES`` smoothest modes of
    the heart) or without; ``L``: the dense Laplacian. ``times (n,)`` / ``waveform``: start from
    these activation times / this waveform (on the same knots, e.g. an earlier fit's) instead of
    ``U0``'s."""
    from ...ep import activation_times
    from ..activation import fit_template, initial_waveform, smooth_modes

    n_t = Y.shape[1]
    t = jnp.arange(n_t, dtype=Y.dtype) * dt
    # Knots every sample over every lag a node activated anywhere in the window can see.
    s0, h = -(n_t * dt), dt
    n_knots = int(np.ceil((2 * n_t * dt + 5.0) / h)) + 1
    tau0 = activation_times(U0, dt) if times is None else jnp.asarray(times)
    if waveform is None:
        f0 = jnp.asarray(initial_waveform(U0, tau0, t, s0, h, n_knots), Y.dtype)
    elif jnp.shape(waveform) != (n_knots,):
        raise ValueError(f"waveform has shape {jnp.shape(waveform)}; the template's knots want ({n_knots},) (an earlier fit's).")
    else:
        f0 = jnp.asarray(waveform, Y.dtype)
    return fit_template(
        Y, A, L, t, jnp.asarray(tau0, Y.dtype), f0, jnp.asarray(s0, Y.dtype), jnp.asarray(h, Y.dtype),
        jnp.asarray(TEMPLATE_LAM, Y.dtype), jnp.asarray(TEMPLATE_MU, Y.dtype), steps=TEMPLATE_STEPS, stretch=stretch,
        stretch_modes=smooth_modes(jnp.asarray(L, Y.dtype), min(STRETCH_MODES, L.shape[1])) if stretch else None,
        whiten=None if TEMPLATE_WHITEN is None else jnp.asarray(TEMPLATE_WHITEN, Y.dtype),
    )

def posed_template(Y, A, L, dt, U0, movable_heart: MovableHeart, *, stretch: bool = False, fit=None, A_nominal=None):
    """The template fit with the heart moved: ``(fit, pose, A(pose))`` after ``POSE_ROUNDS``
    rounds of a Gauss–Newton step in the pose (:func:`~ecgi_jax.forward.fit_pose_step`, the current
    template's potentials held) and a template refit from ``U0`` for the moved heart. ``fit``: the
    template fit at the nominal pose, ``A_nominal``: the movable heart's own float64 matrix there,
    when the caller has them."""
    J = movable_heart.pose_jacobian(A=A_nominal, free=POSE_FREE)
    pose, A_pose = np.zeros(6), A
    fit = template_start(Y, A, L, dt, U0, stretch=stretch) if fit is None else fit
    for _ in range(POSE_ROUNDS):
        pose = fit_pose_step(Y, fit.U, A_pose, J, pose, free=POSE_FREE)
        A_pose = jnp.asarray(movable_heart.transfer_matrix(pose), Y.dtype)
        fit = template_start(Y, A_pose, L, dt, U0, stretch=stretch)
    return fit, pose, A_pose


def observation_of(info: dict) -> Observation:
    """The observation model a start was fitted with (the identity unless ``"gain-offset"``)."""
    if "observation_gain" not in info:
        return Observation()
    return Observation(info["observation_gain"], np.asarray(info["observation_offset"]))


def start_ap_params(ap_params: APParams, info: dict) -> APParams:
    """The AP parameters of the start's model: fitted ones for a shooting start, else nominal."""
    if "start_D" not in info:
        return ap_params
    return dataclasses.replace(ap_params, D=np.asarray(info["start_D"]), a=info["start_a"])
