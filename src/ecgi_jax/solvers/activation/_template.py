"""Waveform-template inverse: one action-potential shape, shifted by each node's activation time.

    u_i(t) = f(t − tau_i)

``f`` (a piecewise-linear waveform on knots ``s0 + k·h``, held constant beyond them) and the
activation times ``tau (n,)`` are fitted together to ``||Y − A U||² / ||Y||²`` by L-BFGS
(optax), with a small curvature penalty on ``f`` (``mu · Σ (Δ² f)²``) and, optionally,
``lam · ||L tau||² / n``.

Why: a propagating beat is, to first order, one waveform arriving at different times. That model
has ``n + K`` unknowns against ``m·t`` data and holds whatever the ionic model (its waveform is
learned, not assumed), where a physics model with the wrong waveform cannot fit the data
(``experiments/noncrime_study.py``). The fit is non-convex in ``tau``: start it from a good map
of activation times (a fitted beat's, or a classical solution's).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._optax import optax_update

__all__ = ["TemplateFit", "template_potentials", "initial_waveform", "fit_template", "prior_whitener", "smooth_modes"]


class TemplateFit(NamedTuple):
    """Result of :func:`fit_template`: potentials ``U (n, t)``, activation times ``tau (n,)``,
    the waveform on its knots ``lags (K,)``, ``waveform (K,)``, the relative misfit, the loss
    after each L-BFGS iteration and the per-node ``log_stretch`` (``None`` without ``stretch``)."""

    U: jax.Array
    tau: jax.Array
    lags: jax.Array
    waveform: jax.Array
    misfit: jax.Array
    losses: jax.Array
    log_stretch: jax.Array | None = None


def template_potentials(tau, waveform, t, s0, h, log_stretch=None):
    """``U[i, j] = f((t_j − tau_i) / exp(log_stretch_i))`` with ``f`` linear between knots
    ``s0 + k·h`` (clamped outside); ``log_stretch=None``: no stretch, ``f(t_j − tau_i)``."""
    K = waveform.shape[0]
    lag = t[None, :] - tau[:, None]
    if log_stretch is not None:
        lag = lag * jnp.exp(-log_stretch)[:, None]
    s = (lag - s0) / h
    i0 = jnp.clip(jnp.floor(s), 0, K - 2).astype(jnp.int32)
    w = jnp.clip(s - i0.astype(s.dtype), 0.0, 1.0)
    return waveform[i0] * (1.0 - w) + waveform[i0 + 1] * w


def initial_waveform(U0, tau0, t, s0, h, K) -> np.ndarray:
    """The waveform that best explains ``U0`` given ``tau0``: the mean of ``U0`` over the samples
    whose lag ``t − tau_i`` falls at each knot; empty knots take their nearest filled neighbour's
    value (rest before the earliest lag, the last value after the latest)."""
    U0, tau0, t = (np.asarray(x, np.float64) for x in (U0, tau0, t))
    if U0.ndim != 2 or tau0.shape != (U0.shape[0],) or t.shape != (U0.shape[1],):
        raise ValueError(
            f"U0 (n, t), tau0 (n,) and t (t,) must agree; got U0 {U0.shape}, tau0 {tau0.shape}, t {t.shape}."
        )
    k = np.rint((t[None, :] - tau0[:, None] - s0) / h).astype(np.int64)
    ok = (k >= 0) & (k < K)
    total = np.bincount(k[ok], U0[ok], K)
    count = np.bincount(k[ok], minlength=K)
    filled = np.flatnonzero(count)
    if filled.size == 0:
        raise ValueError("no sample of the start falls on the waveform's knots; check tau0 against the time window.")
    return np.interp(np.arange(K), filled, total[filled] / count[filled])


def _loss(params, Y, A, L, t, s0, h, lam, mu, y2):
    tau, f, log_stretch = params
    U = template_potentials(tau, f, t, s0, h, log_stretch)
    r = Y - jnp.matmul(A, U, precision="highest")
    d2 = f[2:] - 2.0 * f[1:-1] + f[:-2]
    n = tau.shape[0]
    smooth = lam * jnp.sum(jnp.matmul(L, tau, precision="highest") ** 2) / n
    if log_stretch is not None:
        # Smooth in space like the times, and near 1 (the mean stretch trades off against f's).
        smooth += lam * jnp.sum(jnp.matmul(L, log_stretch, precision="highest") ** 2) / n + mu * jnp.mean(log_stretch**2)
    return jnp.sum(r**2) / y2 + mu * jnp.sum(d2**2) + smooth


def prior_whitener(L, eps):
    """``P = (LᵀL + eps·c·I)^(-1/2)``, ``c = mean(diag LᵀL)`` (1 for an all-zero ``L``): in
    ``z = P⁻¹(tau − tau0)`` the smoothness penalty ``||L tau||²`` is (up to ``eps``) the plain
    ``||z||²``. Symmetric positive definite for ``eps > 0``."""
    if not isinstance(eps, jax.core.Tracer) and not float(eps) > 0:
        raise ValueError(f"eps must be > 0 (it keeps the whitener finite on L's null space); got {eps!r}.")
    gram = jnp.matmul(L.T, L, precision="highest")
    c = jnp.mean(jnp.diag(gram))
    c = jnp.where(c > 0, c, jnp.ones_like(c))
    s, V = jnp.linalg.eigh(gram + eps * c * jnp.eye(gram.shape[0], dtype=gram.dtype))
    return (V * jax.lax.rsqrt(s)[None, :]) @ V.T


def smooth_modes(L, k: int) -> jax.Array:
    """The ``k`` smoothest fields on the heart: the eigenvectors of ``LᵀL`` with the ``k`` smallest
    eigenvalues (for a Laplacian the constant comes first), as the orthonormal columns of an
    ``(n, k)`` matrix. A smooth map in ``k`` numbers, e.g. the stretch of :func:`fit_template`."""
    n = jnp.shape(L)[-1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}] (the number of modes of {n} nodes); got {k!r}.")
    _, V = jnp.linalg.eigh(jnp.matmul(L.T, L, precision="highest"))
    return V[:, :k]


def fit_template(
    Y, A, L, t, tau0, f0, s0, h, lam, mu, *, steps: int = 300, stretch: bool = False, stretch_modes=None, whiten=None
) -> TemplateFit:
    """Fit ``tau`` and ``f`` jointly by ``steps`` L-BFGS iterations (module docstring).

    Args:
        Y ``(m, t)``, A ``(m, n)``; L: ``(k, n)`` dense regulariser on ``tau``; t ``(t,)`` sample
        times; tau0 ``(n,)``, f0 ``(K,)`` starts; s0, h: first knot and knot spacing; lam, mu:
        penalty weights (above). Jittable; vmaps over problems of equal shapes.
        stretch: also fit a per-node time stretch of the waveform (``log_stretch``, penalised like
            ``tau`` plus ``mu·mean(log_stretch²)``), for hearts whose action potential duration
            varies in space; the result's ``U`` uses it, ``TemplateFit.log_stretch`` holds it.
        whiten: ``None`` — L-BFGS in ``tau`` and ``f`` themselves; ``eps > 0`` — in variables
            whitened by smoothness priors, ``tau = tau0 + P z`` and ``f = f0 + P_f g``, with
            :func:`prior_whitener` of ``(L, eps)`` and of ``f``'s first difference. The misfit
            leaves the smooth modes of ``tau`` nearly free (``m`` leads see ``n > m`` times
            through a smoothing ``A``), so in ``tau`` itself the fit crawls along a long flat
            valley (the misfit moves in its 4th digit while the times still move by samples:
            ~10 000 iterations on the 642-node phantom); whitened, a few hundred iterations get
            there, from different starts alike. Converging further is not always better: where
            the model is wrong (heart 8 mm off) the plain iteration's slowness regularises, and the
            whitened fit follows the model error further (``experiments/noncrime_study.py``).
            ``log_stretch`` stays unwhitened (whitened, its large smooth moves traded off against
            ``f`` and the fit went astray).
        stretch_modes: with ``stretch``, ``None`` — a stretch per node; an ``(n, k)`` matrix ``B``
            — ``log_stretch = B c`` with ``k`` coefficients ``c`` (e.g. :func:`smooth_modes`): a
            smooth APD map in a few numbers, which the data determine where ``n`` free stretches
            are only held by the penalty (and a model-selection criterion charges ``k``, not ``n``).
    """
    shapes = {name: jnp.shape(x) for name, x in (("Y", Y), ("A", A), ("L", L), ("t", t), ("tau0", tau0), ("f0", f0))}
    if len(shapes["Y"]) != 2 or len(shapes["A"]) != 2 or shapes["A"][0] != shapes["Y"][0]:
        raise ValueError(f"Y (m, t) and A (m, n) must share m; got Y {shapes['Y']}, A {shapes['A']}.")
    m, n_t = shapes["Y"]
    n = shapes["A"][1]
    for name, want in (("t", (n_t,)), ("tau0", (n,))):
        if shapes[name] != want:
            raise ValueError(f"{name} has shape {shapes[name]}; expected {want} for Y {shapes['Y']} and A {shapes['A']}.")
    if len(shapes["L"]) != 2 or shapes["L"][1] != n:
        raise ValueError(f"L has shape {shapes['L']}; expected (k, {n}) (a regulariser on the {n} times).")
    if len(shapes["f0"]) != 1 or shapes["f0"][0] < 3:
        raise ValueError(f"f0 must be 1-D with at least 3 knots; got shape {shapes['f0']}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}.")
    if whiten is not None and not isinstance(whiten, jax.core.Tracer) and not float(whiten) > 0:
        raise ValueError(f"whiten must be None or a number > 0; got {whiten!r}.")
    if stretch_modes is not None:
        if not stretch:
            raise ValueError("stretch_modes shapes the stretch: pass stretch=True with it (or drop it).")
        if jnp.ndim(stretch_modes) != 2 or jnp.shape(stretch_modes)[0] != n:
            raise ValueError(f"stretch_modes must be an (n, k) matrix with n = {n} nodes; got shape {jnp.shape(stretch_modes)}.")
    return _fit_template(
        Y, A, L, t, tau0, f0, s0, h, lam, mu, stretch_modes, steps=int(steps), stretch=bool(stretch), whiten=whiten
    )


@partial(jax.jit, static_argnames=("steps", "stretch"))
def _fit_template(Y, A, L, t, tau0, f0, s0, h, lam, mu, B, *, steps, stretch, whiten):
    y2 = jnp.sum(Y**2)
    fun = lambda p: _loss(p, Y, A, L, t, s0, h, lam, mu, y2)  # noqa: E731
    c0 = (jnp.zeros_like(tau0) if B is None else jnp.zeros(B.shape[1], tau0.dtype)) if stretch else None
    log_stretch = lambda c: c if B is None or c is None else B @ c  # noqa: E731
    if whiten is None:
        lift = lambda q: (q[0], q[1], log_stretch(q[2]))  # noqa: E731
        q0 = (tau0, f0, c0)
    else:
        K = f0.shape[0]
        first_difference = jnp.eye(K - 1, K, 1, dtype=f0.dtype) - jnp.eye(K - 1, K, dtype=f0.dtype)
        P, P_f = prior_whitener(L, whiten), prior_whitener(first_difference, whiten)
        lift = lambda q: (tau0 + P @ q[0], f0 + P_f @ q[1], log_stretch(q[2]))  # noqa: E731
        q0 = (jnp.zeros_like(tau0), jnp.zeros_like(f0), c0)
    opt = optax.lbfgs()
    objective = lambda q: fun(lift(q))  # noqa: E731
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry, _):
        q, state = carry
        value, grad = value_and_grad(q, state=state)
        updates, state = optax_update(opt, grad, state, q, value=value, grad=grad, value_fn=objective)
        return (optax.apply_updates(q, updates), state), value

    (q, _), losses = jax.lax.scan(step, (q0, opt.init(q0)), None, length=steps)
    tau, f, log_stretch = lift(q)
    U = template_potentials(tau, f, t, s0, h, log_stretch)
    misfit = jnp.sum((Y - jnp.matmul(A, U, precision="highest")) ** 2) / y2
    lags = s0 + h * jnp.arange(f.shape[0], dtype=f.dtype)
    return TemplateFit(U, tau, lags, f, misfit, losses, log_stretch)
