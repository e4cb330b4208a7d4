"""Regularization-parameter rules on a :class:`~._tikhonov.RegularizationPath`.

Each rule picks one grid point of a path (Tikhonov λ grid or TSVD truncation levels) and returns
a :class:`LambdaChoice` holding the chosen parameter, its grid index and the curve it was chosen
from, so plots and diagnostics need no recomputation. All rules are jittable (the rule name is a
static field of the result).

Conventions: ``ρ = ‖A X − Y‖_F`` (residual norm), ``η = ‖R X‖_F`` (solution seminorm), both summed
over all time samples; λ multiplies ``‖R X‖²``. Curves are evaluated on the discrete grid, so a
rule can only return a grid point: use a dense grid (the default has 81 points over the whole
generalized-singular-value range).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

__all__ = [
    "DEFAULT_RULE",
    "LambdaChoice",
    "RULES",
    "lcurve",
    "gcv",
    "creso",
    "discrepancy",
    "ucurve",
    "oracle",
    "estimate_noise",
    "select_lambda",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LambdaChoice:
    """A regularization parameter chosen on a grid.

    Attributes:
        lam: the chosen parameter (λ, or ``k`` for a TSVD path).
        index: its index in ``path.lambdas``.
        curve: ``(L,)`` the criterion over the grid (curvature, GCV function, CRESO function,
            residual − target, U function, or relative error for the oracle).
        rule: the rule's name (static).
        benchmark_only: ``True`` for :func:`oracle`, which uses the ground truth and is therefore
            not a method usable on patient data (static).
    """

    lam: jax.Array
    index: jax.Array
    curve: jax.Array
    rule: str = dataclasses.field(metadata=dict(static=True))
    benchmark_only: bool = dataclasses.field(default=False, metadata=dict(static=True))


def _log(x):
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


def _choice(path, idx, curve, rule, benchmark_only=False):
    return LambdaChoice(path.lambdas[idx], idx, curve, rule, benchmark_only)


def _interior(curve, fill):
    """Exclude the two grid ends, where finite differences are one-sided."""
    n = curve.shape[0]
    i = jnp.arange(n)
    return jnp.where((i > 0) & (i < n - 1), curve, fill)


def lcurve(path) -> LambdaChoice:
    """L-curve: the point of maximum curvature of ``(log ρ, log η)`` (Hansen & O'Leary 1993).

    Curvature ``κ = (x'y'' − x''y') / (x'² + y'²)^{3/2}`` by centred differences along the grid
    index (curvature does not depend on the parametrization); its sign is oriented so the corner
    (the curve turning from "η falls fast" to "ρ grows fast" as regularization increases) is a
    positive maximum whichever way the grid runs. Grid ends are excluded.
    """
    x = _log(path.residual_norm)
    y = _log(path.seminorm)
    dx, dy = jnp.gradient(x), jnp.gradient(y)
    ddx, ddy = jnp.gradient(dx), jnp.gradient(dy)
    kappa = (dx * ddy - ddx * dy) / jnp.maximum((dx**2 + dy**2) ** 1.5, jnp.finfo(x.dtype).tiny)
    # Regularization increases along the grid iff the residual grows along it.
    kappa = kappa * jnp.sign(x[-1] - x[0])
    kappa = jnp.where(jnp.isfinite(kappa), kappa, -jnp.inf)
    idx = jnp.argmax(_interior(kappa, -jnp.inf))
    return _choice(path, idx, kappa, "lcurve")


def gcv(path) -> LambdaChoice:
    """Generalized cross-validation: minimize ``G = ρ² / (M − dof)²``.

    With ``T`` time samples sharing one λ the stacked problem's GCV function is ``G / T`` (the
    influence matrix is ``I_T ⊗ H``), so the minimizer is the same. Points with ``M − dof`` below
    ``1e-3`` (no regularization at all when ``M ≤ N``: ``0/0``) are excluded.
    """
    denom = path.n_data - path.dof
    g = jnp.where(denom > 1e-3, path.residual_norm**2 / jnp.where(denom > 1e-3, denom, 1) ** 2, jnp.inf)
    idx = jnp.argmin(g)
    return _choice(path, idx, g, "gcv")


def creso(path) -> LambdaChoice:
    """CRESO (Colli Franzone et al. 1985): the smallest λ at which
    ``C(λ) = η² + 2 λ dη²/dλ`` has a local maximum (``η = ‖R X_λ‖``; λ multiplies ``‖RX‖²``).

    ``λ d/dλ = d/d log λ`` is taken by differences on the (log-spaced) grid. If ``C`` has no
    interior local maximum, its global maximum is returned. Meaningful for Tikhonov paths only.
    """
    order = jnp.argsort(path.lambdas)
    lam = path.lambdas[order]
    eta2 = path.seminorm[order] ** 2
    loglam = _log(lam)
    d = jnp.gradient(eta2) / jnp.gradient(loglam)
    C = eta2 + 2.0 * d
    n = C.shape[0]
    i = jnp.arange(n)
    left = jnp.concatenate([C[:1], C[:-1]])
    right = jnp.concatenate([C[1:], C[-1:]])
    is_max = (i > 0) & (i < n - 1) & (C > left) & (C >= right)
    first = jnp.argmax(is_max)  # first True (smallest λ), 0 if none
    k = jnp.where(jnp.any(is_max), first, jnp.argmax(C))
    idx = order[k]
    curve = jnp.zeros_like(C).at[order].set(C)  # back in grid order
    return _choice(path, idx, curve, "creso")


def estimate_noise(path, fraction: float = 0.25) -> jax.Array:
    """Noise standard deviation per data entry, from the data coefficients ``β = UᵀY`` of the
    components with the smallest generalized singular values (the last ``fraction`` of them).

    Rationale (discrete Picard condition): those coefficients of the clean signal are negligible,
    and ``U`` is orthonormal so white noise of variance ``σ²`` stays white with variance ``σ²``.
    A median estimator (``median(β²)/0.4549``, the median of χ²₁) resists the few components that
    still carry signal. Overestimates σ when the signal is not yet buried in those components.
    """
    beta = path.beta
    p = beta.shape[0]
    q = max(1, int(round(p * fraction)))
    tail = beta[p - q :]  # factors are ordered by decreasing generalized singular value
    return jnp.sqrt(jnp.median(tail**2) / 0.45493642311957283)


def discrepancy(path, noise_std=None, tau: float = 1.0) -> LambdaChoice:
    """Morozov's discrepancy principle: the most regularized grid point with
    ``ρ ≤ τ·σ·sqrt(M·T)``.

    Args:
        noise_std: noise standard deviation ``σ`` per data entry (absolute units). ``None`` →
            :func:`estimate_noise`.
        tau: safety factor (≥ 1 in theory; 1.0 default).

    If no grid point reaches the target the least-residual point is returned. ``curve`` is
    ``ρ − target``.
    """
    sigma = estimate_noise(path) if noise_std is None else jnp.asarray(noise_std, path.residual_norm.dtype)
    m, t = path.beta.shape[0], path.beta.shape[1]
    target = tau * sigma * jnp.sqrt(jnp.asarray(path.n_data * t, path.residual_norm.dtype))
    del m
    rho = path.residual_norm
    ok = rho <= target
    idx = jnp.where(jnp.any(ok), jnp.argmax(jnp.where(ok, rho, -jnp.inf)), jnp.argmin(rho))
    return _choice(path, idx, rho - target, "discrepancy")


def ucurve(path) -> LambdaChoice:
    """U-curve (Krawczyk-Stando & Rudnicki 2007): minimize ``U = 1/ρ² + 1/η²`` over the grid
    interior.

    Implemented as published, and it is not invariant to the scale of the regularizer relative to
    ``A`` (multiplying ``R`` by ``c`` changes which λ balances the two terms). On the P-DL data
    (``experiments/classical_noise_study.py``) it over-regularizes Tikhonov-0 (RE 0.73 against
    0.44 for the best λ) and badly under-regularizes Tikhonov-2 (RE 6–25, where ‖R x‖ ≪ ‖A x − y‖).
    Prefer GCV or the L-curve unless ``A`` and ``R`` are scaled comparably."""
    u = 1.0 / jnp.maximum(path.residual_norm**2, jnp.finfo(path.residual_norm.dtype).tiny) + 1.0 / jnp.maximum(
        path.seminorm**2, jnp.finfo(path.seminorm.dtype).tiny
    )
    idx = jnp.argmin(_interior(u, jnp.inf))
    return _choice(path, idx, u, "ucurve")


def oracle(path) -> LambdaChoice:
    """BENCHMARK-ONLY: the grid point of least relative error against the ground truth.

    Needs a path built with ``truth=``. It is an upper bound on what any rule can achieve with this
    regularizer and grid, not a method for real data; the result has ``benchmark_only=True``.
    """
    if path.error is None:
        raise ValueError("oracle needs the ground truth: build the path with truth=U_true.")
    idx = jnp.argmin(jnp.where(jnp.isfinite(path.error), path.error, jnp.inf))
    return _choice(path, idx, path.error, "oracle", benchmark_only=True)


#: The λ rule of Tikhonov-0/1/2 and spatiotemporal regularization by default. Chosen on every data
#: set at hand against the oracle (``experiments/lambda_rules.py``, RESULTS.md: the non-crime
#: phantom's development cases with white, spatially correlated and correlated-plus-bad-lead noise;
#: the 17 measured Utah sock beats and the 1997 Utah frames through a BEM, white and correlated).
#: Tikhonov: CRESO's RE stayed within 7 % of the oracle's on every set and order; GCV, the previous
#: default, is as good on white noise and fails on correlated noise by factors of 9 to 1400 (it
#: reads noise shared by neighbouring leads as signal); the L-curve missed by up to 65 %, CV by up
#: to 3x. Spatiotemporal (CRESO: the spatial CRESO λ, the balanced temporal weight): within 9 %
#: except on the phantom's white noise (up to 20 % worse than the oracle, where GCV is the oracle),
#: against GCV's 20x to 1000x under correlated noise.
DEFAULT_RULE = "creso"

RULES = {
    "lcurve": lcurve,
    "gcv": gcv,
    "creso": creso,
    "discrepancy": discrepancy,
    "ucurve": ucurve,
    "oracle": oracle,
}


def select_lambda(path, rule: str = "lcurve", **kwargs) -> LambdaChoice:
    """Apply the rule named ``rule`` (one of :data:`RULES`) to ``path``."""
    if rule not in RULES:
        raise ValueError(f"unknown lambda_rule {rule!r}; valid rules: {', '.join(RULES)}.")
    return RULES[rule](path, **kwargs)
