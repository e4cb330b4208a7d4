"""Classical (regularized least-squares) ECGI solvers and regularization-parameter rules.

* :mod:`._tikhonov` — Tikhonov of order 0/1/2 and truncated SVD, a whole λ grid from one (G)SVD.
* :mod:`._spatiotemporal` — spatial + temporal Tikhonov solved exactly by diagonalization.
* :mod:`._lambda` — L-curve, GCV, CRESO, discrepancy, U-curve and the benchmark-only oracle.
* :mod:`._crossval` — λ by K-fold cross-validation over leads (rule ``"cv"``).
* :mod:`._sparse_reg` — L1 / total variation by ADMM, Lp–Lq by IRLS with a fixed majorant.
* :mod:`._greensite` — Greensite's temporal-SVD (isotropy) method, per-component λ.
* :mod:`._methods` — the ``solve()`` methods built on them (registered on import).
"""

from ._crossval import crossval, crossval_curve, lead_folds
from ._greensite import GreensiteResult, greensite, greensite_rank, temporal_components
from ._lambda import (
    DEFAULT_RULE,
    RULES,
    LambdaChoice,
    creso,
    discrepancy,
    estimate_noise,
    gcv,
    lcurve,
    oracle,
    select_lambda,
    ucurve,
)
from ._sparse_reg import (
    SparseResult,
    admm_l1,
    lp_lq,
    lp_lq_objective,
    lp_lq_weight,
    normal_factor,
    shrink,
    sparse_penalty,
)
from ._spatiotemporal import (
    SpatiotemporalPath,
    select_spatiotemporal,
    spatiotemporal,
    spatiotemporal_path,
    temporal_operator,
)
from ._tikhonov import (
    RegularizationPath,
    TikhonovFactor,
    as_matrix,
    default_lambdas,
    factorize,
    tikhonov,
    tikhonov_from_factor,
    tikhonov_path,
    tsvd,
    tsvd_path,
)

__all__ = [
    "spatial_operator", "pin_constant_mode", "zero_mean", "check_tsvd_rank",
    "TikhonovFactor", "RegularizationPath", "factorize", "default_lambdas", "as_matrix",
    "tikhonov", "tikhonov_from_factor", "tikhonov_path", "tsvd", "tsvd_path",
    "SpatiotemporalPath", "temporal_operator", "spatiotemporal", "spatiotemporal_path",
    "select_spatiotemporal",
    "LambdaChoice", "DEFAULT_RULE", "RULES", "lcurve", "gcv", "creso", "discrepancy", "ucurve", "oracle",
    "estimate_noise", "select_lambda",
    "lead_folds", "crossval", "crossval_curve",
    "SparseResult", "normal_factor", "shrink", "sparse_penalty", "admm_l1", "lp_lq", "lp_lq_objective",
    "lp_lq_weight",
    "GreensiteResult", "temporal_components", "greensite_rank", "greensite",
]

from ._methods import check_tsvd_rank, pin_constant_mode, spatial_operator, zero_mean  # noqa: E402  (registers the classical methods; needs the kernels above)
