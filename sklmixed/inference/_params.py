"""The parameters that intervals and bootstrap replicates are reported for.

One row per parameter, in a fixed order shared by every ``confint`` method and by
the bootstrap's replicate table: the fixed effects (``coef_names_``), then for each
random-effects term (in the order of the summary's variance components) its
standard deviations ``sd(g: col)`` and its correlations ``corr(g: col1, col2)``,
then the residual standard deviation ``sigma`` where the model has one (for the
GLMM families with a parameter: the negative binomial's ``shape`` or the Gamma and
inverse Gaussian ``dispersion``). These are
lme4's ``confint`` parameters (``sd_(Intercept)|subj``, ``cor_days.(Intercept)|subj``,
``sigma``) and MixedModels.jl's (sigma_i, rho_i, sigma), under readable names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sklmixed.exceptions import InferenceError


def _corr_pairs(structural_zero: np.ndarray) -> list[tuple[int, int]]:
    """Column pairs (a < b) whose correlation is a parameter (not zero by construction)."""
    k = structural_zero.shape[0]
    return [(a, b) for a in range(k) for b in range(a + 1, k) if not structural_zero[a, b]]


def variance_names(groups: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> list[str]:
    """``sd(g: col)`` and ``corr(g: col1, col2)`` rows for terms given as
    (grouping factor, column names, structural-zero mask)."""
    names: list[str] = []
    for group, columns, zero in groups:
        names.extend(f"sd({group}: {c})" for c in columns)
        names.extend(
            f"corr({group}: {columns[a]}, {columns[b]})" for a, b in _corr_pairs(np.asarray(zero))
        )
    return names


def parameter_names(model) -> list[str]:
    """Row names of ``model.confint()``: coefficients, variance parameters, sigma."""
    result = model.result_
    groups = [(vc.group, vc.columns, vc.structural_zero) for vc in result.varcomps]
    names = list(result.coef_names) + variance_names(groups)
    if result.sigma is not None:
        names.append("sigma")
    elif result.dispersion is not None:  # the GLMM families with a parameter
        names.append("shape" if result.family == "negative_binomial" else "dispersion")
    return names


def variance_parameters(terms, theta_slices, thetas: np.ndarray, sigmas: np.ndarray | None):
    """The sd and corr values of :func:`variance_names` for many thetas at once.

    Parameters
    ----------
    terms : list of ReTerm
        The core's terms (the order of the variance components).
    theta_slices : list of slice
        Each term's part of theta.
    thetas : ndarray of shape (n, ntheta)
    sigmas : ndarray of shape (n,), optional
        Residual standard deviations (None for families without dispersion: the
        lambdas are then on the scale of the linear predictor).

    Returns
    -------
    ndarray of shape (n, n_variance_parameters)
        NaN correlations where a standard deviation is zero.
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    n = thetas.shape[0]
    cols = []
    for t, s in zip(terms, theta_slices):
        lam = np.zeros((n, t.k, t.k))
        lam[:, t.inds[:, 0], t.inds[:, 1]] = thetas[:, s]
        if sigmas is not None:
            lam *= np.asarray(sigmas, dtype=float)[:, None, None]
        cov = lam @ lam.transpose(0, 2, 1)
        sd = np.sqrt(np.einsum("nkk->nk", cov))
        cols.append(sd)
        pairs = _corr_pairs(t.structural_zero)
        if pairs:
            a, b = np.array(pairs).T
            denom = sd[:, a] * sd[:, b]
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.where(denom > 0, cov[:, a, b] / denom, np.nan)
            cols.append(corr)
    return np.hstack(cols) if cols else np.zeros((n, 0))


def check_level(level) -> float:
    """A confidence level strictly between 0 and 1, or a clear error."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise InferenceError(f"level must be a number in (0, 1); got {level!r}") from None
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise InferenceError(f"level must lie strictly between 0 and 1; got {level!r}")
    return value
