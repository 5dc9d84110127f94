"""Mixed-effects regressions of PL_i across runs and tasks (statsmodels MixedLM).

The model of PL_i on a predictor x (NC1 after task i − 1, NC1 after task i, or any measure),
with the duration before task i and the condition as fixed effects and a random intercept per
run (REML)::

    pl ~ x + C(variant) + C(variant):steps_m + C(variant):np.log(steps_m),  groups = run

``steps_m`` = cumulative optimiser steps before task i, in millions. NC1 enters as
``np.log10(nc1)``: it spans orders of magnitude across conditions (10⁻¹ in a healthy run, up to
10⁵ where a strong collapse dial or a memorisation task degenerates the features), and on its
raw scale those few runs set the coefficient; the coefficient is PL's change per tenfold NC1.
Each condition (variant) has its own intercept and its own duration curve a + b·s + c·log s
(PL rises and saturates with training), so x's coefficient is what x says about PL beyond
training duration in every condition, and beyond each run's own level (the random intercept).
With one variant the ``C(variant)`` terms become a single intercept and curve. The interval is
the Wald 95 % interval of the fit; it rests on ``n_runs`` runs (groups) and ``n_obs`` tasks.

REML profiles out the fixed effects, so the optimiser searches one number, the random
intercept's variance relative to the residual variance. From statsmodels' default start (1) it
failed to converge for some of the predictor ranking's measures on the open-questions study
(BFGS, then L-BFGS, then CG, 10–14 s a fit, ending unconverged); every fit of a subset therefore
starts from that ratio in the model without a predictor (:func:`duration_start`, ~0.3 there),
and converges in about a second. The optimum does not depend on the start.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLMParams

MIXED_COLUMNS = [
    "subset",
    "predictor",
    "coef",
    "ci_low",
    "ci_high",
    "p",
    "n_runs",
    "n_obs",
    "n_variants",
    "converged",
    "formula",
    "groups",
]
DURATION_TERMS = "C(variant) + C(variant):steps_m + C(variant):np.log(steps_m)"
DURATION_TERMS_ONE = "steps_m + np.log(steps_m)"


def formula(term: str, n_variants: int, outcome: str = "pl") -> str:
    """The model formula (module docstring) for the predictor term ``term``."""
    duration = DURATION_TERMS if n_variants > 1 else DURATION_TERMS_ONE
    return f"{outcome} ~ {term} + {duration}"


def _model_rows(data: pd.DataFrame, columns: list[str], positive: str | None = None):
    """The rows of ``data`` a fit uses: no missing value in ``columns``, steps_m > 0 (and
    ``positive`` > 0, for a predictor taken as its log)."""
    rows = data[["run", "variant", "steps_m", *columns]].replace([np.inf, -np.inf], np.nan)
    rows = rows.dropna()
    keep = rows["steps_m"] > 0
    if positive is not None:
        keep &= rows[positive] > 0
    return rows[keep]


def _reml_fit(text: str, rows: pd.DataFrame, start: float | None = None):
    """statsmodels' REML fit of the formula ``text`` with a random intercept per run, the
    optimiser starting from the relative random-intercept variance ``start`` (None: statsmodels'
    default); None when the fit fails. Boundary and Hessian warnings are reported through the
    result's ``converged``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = smf.mixedlm(text, rows, groups=rows["run"])
            start_params = (
                None
                if start is None
                else MixedLMParams.from_components(np.zeros(model.k_fe), np.array([[start]]))
            )
            return model.fit(reml=True, start_params=start_params)
        except (np.linalg.LinAlgError, ValueError):
            return None


def duration_start(data: pd.DataFrame, outcome: str = "pl") -> float | None:
    """The random intercept's variance relative to the residual variance in the model of
    ``outcome`` on the duration terms alone (REML): the start of every predictor's fit on the
    same data (module docstring). None when that fit fails or gives no positive ratio."""
    rows = _model_rows(data, [outcome])
    if rows["run"].nunique() < 2:
        return None
    result = _reml_fit(formula("1", rows["variant"].nunique(), outcome), rows)
    if result is None:
        return None
    ratio = float(np.asarray(result.cov_re)[0, 0] / result.scale)
    return ratio if np.isfinite(ratio) and ratio > 0 else None


def fit(
    data: pd.DataFrame,
    predictor: str,
    outcome: str = "pl",
    confidence: float = 0.95,
    log10: bool = False,
    start: float | None = None,
) -> dict:
    """Fit the model of ``outcome`` on ``predictor`` (a column of ``data``, entering as
    ``np.log10(predictor)`` with ``log10``; rows with a missing, or with ``log10`` a
    non-positive, value are dropped) and return the predictor's coefficient with its interval:
    a row of :data:`MIXED_COLUMNS` less ``subset``. NaN coefficient when fewer than 2 runs or a
    constant predictor remain, or the fit fails. ``start``: the relative random-intercept
    variance the optimiser starts from (:func:`duration_start`; None: statsmodels' default)."""
    data = _model_rows(data, [predictor, outcome], predictor if log10 else None)
    term = f"np.log10({predictor})" if log10 else predictor
    n_variants = int(data["variant"].nunique())
    text = formula(term, n_variants, outcome)
    row = {
        "predictor": predictor,
        "coef": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "n_runs": int(data["run"].nunique()),
        "n_obs": len(data),
        "n_variants": n_variants,
        "converged": False,
        "formula": text,
        "groups": "run (random intercept)",
    }
    if row["n_runs"] < 2 or data[predictor].nunique() < 2:
        return row
    result = _reml_fit(text, data, start)
    if result is None:
        return row
    low, high = result.conf_int(alpha=1 - confidence).loc[term]
    row |= {
        "coef": float(result.params[term]),
        "ci_low": float(low),
        "ci_high": float(high),
        "p": float(result.pvalues[term]),
        "converged": bool(result.converged),
    }
    return row


# The NC1 predictors of the direct test: NC1 when task i starts and after it (as log10 NC1).
NC1_PREDICTORS = {"nc1_prev": "NC1 after task i−1", "nc1": "NC1 after task i"}


def nc1_models(panel: pd.DataFrame, subsets: dict[str, list[str]]) -> pd.DataFrame:
    """PL_i on each NC1 predictor, over all runs (``subset`` "all") and over each named subset
    of variants (e.g. a question family), one row per (subset, predictor)."""
    rows = []
    for name, variants in {"all": None, **subsets}.items():
        data = panel if variants is None else panel[panel["variant"].isin(variants)]
        if data.empty:
            continue
        start = duration_start(data)
        for predictor in NC1_PREDICTORS:
            rows.append({"subset": name} | fit(data, predictor, log10=True, start=start))
    return pd.DataFrame(rows, columns=MIXED_COLUMNS)
