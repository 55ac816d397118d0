"""Firth-penalised logistic regression's likelihood-ratio test (Firth 1993; Heinze &
Schemper 2002), for binary endpoints whose cells always or never fail (separation)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.special import expit


@dataclass(frozen=True)
class FirthTest:
    chi2: float
    df: int
    p_value: float
    separation: bool
    n_infinite: int  # coefficients whose maximum-likelihood estimate is infinite
    converged: bool
    beta: np.ndarray
    note: str


def _firth_parts(X: np.ndarray, y: np.ndarray, beta: np.ndarray
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised log-likelihood l(b) + 1/2 log|I(b)|, its modified score, and I(b)."""
    eta = X @ beta
    p = expit(eta)
    w = p * (1.0 - p)
    info = (X.T * w) @ X
    sign, logdet = np.linalg.slogdet(info)
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)) + 0.5 * logdet)
    if sign <= 0:
        return -math.inf, np.zeros_like(beta), info
    # Firth's modified score: U_j + sum_i h_i (1/2 - p_i) x_ij, h the hat diagonal.
    leverage = w * np.einsum("ij,ji->i", X, np.linalg.solve(info, X.T))
    score = X.T @ (y - p + leverage * (0.5 - p))
    return loglik, score, info


def firth_constrained_fit(X: np.ndarray, y: np.ndarray, free: np.ndarray, beta0: np.ndarray,
                          max_iter: int = 200, tol: float = 1e-8
                          ) -> tuple[np.ndarray, float, bool]:
    """Maximise the full model's penalised likelihood with the non-free coefficients at 0.

    Keeping the full model's penalty in the constrained fit is what makes the penalised
    LRT valid (Heinze & Schemper 2002; logistf's default "nested" comparison). Newton steps
    on the free coordinates, capped at 5 and halved until the penalised likelihood rises.
    """
    beta = np.where(free, beta0, 0.0).astype(float)
    loglik, score, info = _firth_parts(X, y, beta)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(info[np.ix_(free, free)], score[free])
        except np.linalg.LinAlgError:
            return beta, loglik, False
        step *= min(1.0, 5.0 / max(float(np.abs(step).max()), 1e-300))
        for _ in range(40):
            trial = beta.copy()
            trial[free] += step
            new = _firth_parts(X, y, trial)
            if new[0] >= loglik - 1e-10:
                break
            step /= 2.0
        else:
            return beta, loglik, bool(np.abs(score[free]).max() < 1e-5)
        moved = float(np.abs(trial - beta).max())
        beta, (loglik, score, info) = trial, new
        if moved < tol or float(np.abs(score[free]).max()) < tol:
            return beta, loglik, True
    return beta, loglik, bool(np.abs(score[free]).max() < 1e-5)


def firth_lrt(X: np.ndarray, y: np.ndarray, test_columns: list[int]) -> FirthTest:
    """Penalised LRT that the coefficients in `test_columns` are all zero.

    X includes the intercept column. The full model is fitted with firthmodels'
    FirthLogisticRegression; the constrained one with `firth_constrained_fit`.
    """
    from firthmodels import FirthLogisticRegression, detect_separation
    from sklearn.exceptions import ConvergenceWarning

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            separation = detect_separation(X, y, fit_intercept=False)
            model = FirthLogisticRegression(fit_intercept=False, max_iter=200, gtol=1e-7,
                                            xtol=1e-7).fit(X, y)
        except (ValueError, np.linalg.LinAlgError) as exc:
            return FirthTest(chi2=math.nan, df=len(test_columns), p_value=math.nan,
                             separation=False, n_infinite=0, converged=False,
                             beta=np.full(X.shape[1], math.nan), note=f"fit failed: {exc}")
    if any(issubclass(w.category, (ConvergenceWarning, RuntimeWarning)) for w in caught):
        notes.append("Firth full fit warned: " + "; ".join(
            sorted({str(w.message) for w in caught})))
    beta_full = np.asarray(model.coef_, dtype=float)
    loglik_full = _firth_parts(X, y, beta_full)[0]
    free = np.ones(X.shape[1], dtype=bool)
    free[test_columns] = False
    _, loglik_null, converged = firth_constrained_fit(X, y, free, beta_full)
    converged = converged and bool(model.converged_)
    if not converged:
        notes.append("a Firth fit did not converge")
    chi2 = max(0.0, 2.0 * (loglik_full - loglik_null))
    df = len(test_columns)
    n_infinite = int(np.sum(~np.asarray(separation.is_finite)))
    return FirthTest(chi2=chi2, df=df, p_value=float(sps.chi2.sf(chi2, df)),
                     separation=bool(separation.separation), n_infinite=n_infinite,
                     converged=converged, beta=beta_full, note="; ".join(notes))
