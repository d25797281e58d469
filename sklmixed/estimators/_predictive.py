"""Log-likelihoods of new rows under a fitted mixed model (what the scorers compute).

Two predictive distributions of held-out rows:

- conditional: the random effects fixed at their conditional modes (zero for
  levels not seen in fit), rows independent given them: what ``predict`` uses;
- marginal: the random effects integrated out, under the fitted prior covariance
  for levels not seen in fit and under their conditional distribution given the
  training data, N(mode, condvar), for levels seen in fit. Simplifications: the
  fixed effects and covariance parameters are plugged in (their estimation
  uncertainty is ignored), and the seen levels' random effects are taken as
  independent across levels and terms, each with its own condvar block (the
  posterior correlations between levels of crossed terms, and with beta, are
  left out). For an LMM the rest is exact (a multivariate normal density); for
  a GLMM the integral is approximated as the model was fitted: Laplace, or
  adaptive Gauss-Hermite quadrature with the fit's ``nagq`` nodes (the families
  with a dispersion at its fitted value, with the observed information).

The held-out rows' offsets are part of their linear predictor: the formula's
``offset(expr)`` terms evaluated on them, plus the ``offset`` given (required when
the model was fitted with the ``offset`` parameter).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sklmixed._core._glmm import gauss_hermite_normal
from sklmixed._core._lmm import order_terms
from sklmixed._core._predictive import (
    agq_loglik,
    effect_matrix,
    gaussian_logpdf,
    laplace_loglik,
    psd_factor,
)
from sklmixed.estimators._base import validate_sample_weight
from sklmixed.estimators._glmm import MixedGLMClassifier, _validate_glm_response
from sklmixed.estimators._lmm import MixedLMRegressor, _numeric_response
from sklmixed.estimators._offset import validate_offset
from sklmixed.exceptions import DataError

_LOG_2PI = float(np.log(2.0 * np.pi))


def _response(est, y) -> np.ndarray:
    """The held-out response on the model's scale (0/1 for the classifier)."""
    if isinstance(est, MixedLMRegressor):
        return _numeric_response(y)
    if isinstance(est, MixedGLMClassifier):
        labels = np.asarray(y)
        known = np.isin(labels, est.classes_)
        if not known.all():
            raise DataError(
                f"the response has labels {pd.unique(labels[~known])[:5].tolist()} that "
                f"were not seen in fit (classes_ = {est.classes_.tolist()})"
            )
        return (labels == est.classes_[1]).astype(float)
    return _validate_glm_response(y, est.family, None)


def _prepare(est, X, y, sample_weight, offset=None):
    """(frame, response, prior weights, offset parameter) of the rows with
    positive weight."""
    df = est._new_frame(X)
    y = np.asarray(y).reshape(-1) if np.ndim(y) else np.asarray([y])
    if y.shape[0] != df.shape[0]:
        raise DataError(f"y has {y.shape[0]} values but X has {df.shape[0]} rows")
    w = validate_sample_weight(sample_weight, df.shape[0])
    off = validate_offset(offset, df.shape[0])
    if off is None and est.__dict__.get("_offset_param", False):
        # offset 0 is predict's default, but a density at the wrong mean is no score
        raise DataError(
            "the model was fitted with the offset parameter: pass the held-out rows' "
            "offsets to the scorer (offset=...; with metadata routing, as fit params)"
        )
    if w is not None and np.any(w == 0):
        # zero weight removes a row, as in fit
        keep = np.flatnonzero(w > 0)
        df, y, w = df.iloc[keep], y[keep], w[keep]
        off = None if off is None else off[keep]
    if df.shape[0] == 0:
        raise DataError("cannot score empty data (0 rows)")
    yv = _response(est, y)
    return df, yv, (np.ones(yv.shape[0]) if w is None else w), off


def _lambdas(est) -> dict:
    """Term name -> its relative covariance factor lambda at ``theta_``."""
    out, start = {}, 0
    for t in order_terms(list(est.design_.reterms)):  # the order of theta_
        out[t.name] = t.lambda_from_theta(np.asarray(est.theta_)[start : start + t.ntheta])
        start += t.ntheta
    return out


def marginal_loglik(est, X, y, sample_weight=None, offset=None) -> tuple[float, int]:
    """(sum of the marginal log predictive density, number of rows scored)."""
    df, yv, w, off = _prepare(est, X, y, sample_weight, offset)
    n = yv.shape[0]
    Xnew, parts = est.design_.transform(df, new_level_codes=True)
    eta = Xnew @ np.where(np.isnan(est.stderror_), 0.0, est.coef_)
    for extra in (est.design_.offset_for(df), off):
        if extra is not None:
            eta = eta + extra
    # the families with a dispersion: family_ holds it at its fitted value
    glmm = hasattr(est, "family_")
    # b = Lambda u with u ~ N(0, s^2 I): s = sigma for an LMM, 1 for a GLMM
    s = 1.0 if glmm else float(est.sigma_)
    lambdas = _lambdas(est)
    condvar = None
    vparts = []
    for term, (codes, z) in zip(est.design_.reterms, parts):
        seen = codes < term.nlevels
        R = np.broadcast_to(s * lambdas[term.name], (n, term.k, term.k))
        if seen.any():
            bt = est._b_by_name[term.name]
            eta = eta + np.where(seen, np.einsum("nk,nk->n", z, bt[np.where(seen, codes, 0)]), 0.0)
            if condvar is None:
                condvar = est.condvar()
            used, inv = np.unique(codes[seen], return_inverse=True)
            R = R.copy()
            R[seen] = psd_factor(condvar[term.name][used])[inv]
        vparts.append((codes, np.einsum("nab,na->nb", R, z)))  # R' z per row
    if not glmm:
        V = effect_matrix(vparts, n)
        return gaussian_logpdf(np.asarray(yv - eta, float), s * s / w, V), n
    nagq = int(est.result_.nagq)
    if nagq > 1:  # the fit allows it only for a single scalar term
        codes, v = vparts[0]
        nodes, weights = gauss_hermite_normal(nagq)
        total = agq_loglik(yv, eta, w, codes, v[:, 0], est.family_, est.link_, nodes, weights)
        return total, n
    V = effect_matrix(vparts, n)
    return laplace_loglik(yv, eta, w, V, est.family_, est.link_), n


def conditional_loglik(est, X, y, sample_weight=None, offset=None) -> tuple[float, int]:
    """(sum of the log density given the conditional modes, number of rows)."""
    df, yv, w, off = _prepare(est, X, y, sample_weight, offset)
    eta = est._linear_predictor(df, off)  # unseen levels as ``new_levels`` says
    if not hasattr(est, "family_"):
        var = float(est.sigma_) ** 2 / w
        r = yv - eta
        return float(-0.5 * np.sum(_LOG_2PI + np.log(var) + r * r / var)), yv.shape[0]
    mu = est.family_.clamp(est.link_.inverse(eta))
    return float(np.sum(est.family_.loglik(yv, mu, w))), yv.shape[0]
