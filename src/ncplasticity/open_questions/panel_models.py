"""Panel regressions of PL_i across runs and tasks, with the lagged outcome and run-clustered
errors (DESIGN §3d; statsmodels OLS).

The model of PL_i on a measure x (x after task i: a same-task *association*; x after task
i − 1: a *lead*), per condition its intercept and spline trends in cumulative steps at task i
and at task i − 1 (:func:`.inference.condition_trend`, the trend of the lead–lag estimate and
the tournament), and PL_{i−1}::

    pl_i ~ x + pl_{i−1} + Σ_condition (intercept + spline(steps_i) + spline(steps_{i−1}))

The interval is the 95 % t-interval with errors clustered by run (df = runs − 1): the tasks of
a run are autocorrelated, so the ~20,000 task rows of a study are worth about as much as its
runs, not its rows. x enters on the scale the metric registry gives it (NC1, which spans
10⁻¹–10⁵ across conditions, as log10), so the coefficient is PL per tenfold x. The model is
fitted on the pooled runs (:mod:`.pooling`) and on each condition on its own (its per-condition
slope, beside the pooled one; a confounded condition only on its own).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity.open_questions import inference, pooling

PANEL_COLUMNS = [
    "subset",
    "measure",
    "timing",
    "scale",
    "coef",
    "ci_low",
    "ci_high",
    "p",
    "n_runs",
    "n_obs",
    "n_variants",
]
# The two timings of x: after the outcome's own task, and after the task before it.
TIMINGS = {"same_task": "", "previous_task": "_prev"}


def fit(panel: pd.DataFrame, measure: str, timing: str, y: str = "pl") -> dict:
    """The coefficient of ``measure`` (``timing``: a key of :data:`TIMINGS`) on ``y`` in the
    module's model over the rows of ``panel`` (columns ``run``, ``variant``, ``seed``,
    ``task``, ``steps`` (:func:`.panel.with_outcome_steps`), ``measure`` and ``y``);
    a row of :data:`PANEL_COLUMNS` less ``subset``. NaN where fewer than 2 runs remain, or x is
    constant."""
    import statsmodels.api as sm

    values, scale = inference.log_scaled(panel[measure].astype(float), measure)
    data = inference.lagged(panel.assign(**{measure: values}), [y, measure])
    data["steps_prev"] = data.groupby("run", sort=False)["steps"].shift(1)
    x = data[f"{measure}{TIMINGS[timing]}"].to_numpy()
    keep = np.isfinite(x) & np.isfinite(data[y]) & np.isfinite(data[f"{y}_prev"])
    keep &= np.isfinite(data["steps_prev"])
    data, x = data[keep].reset_index(drop=True), x[keep]
    row = {"measure": measure, "timing": timing, "scale": scale, "coef": np.nan}
    row |= {"ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "n_obs": len(data)}
    row |= {"n_runs": int(data["run"].nunique()), "n_variants": int(data["variant"].nunique())}
    if row["n_runs"] < 2 or np.ptp(x) == 0:
        return row
    _, trend = inference.condition_trend(data)
    # The trend at the previous task's end too: x_{i−1} and PL_{i−1} carry the duration of
    # their own task, which a trend in steps_i alone leaves in them as noise (attenuating x).
    intercepts, trend_prev = inference.condition_trend(data.assign(steps=data["steps_prev"]))
    splines_prev = trend_prev[:, intercepts.shape[1] :]
    design = np.column_stack([trend, splines_prev, data[f"{y}_prev"].to_numpy(), x])
    clusters = pd.factorize(data["run"])[0]
    result = sm.OLS(data[y].to_numpy(), design).fit(
        cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True
    )
    low, high = result.conf_int(alpha=0.05)[-1]
    row |= {"coef": float(result.params[-1]), "ci_low": float(low), "ci_high": float(high)}
    return row | {"p": float(result.pvalues[-1])}


def nc1_models(panel: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """NC1's association and lead in each of :func:`.pooling.subsets` (``excluded``:
    :func:`.pooling.exclusions`), one row per (subset, timing)."""
    rows = []
    for name, data in pooling.subsets(panel, excluded).items():
        for timing in TIMINGS:
            rows.append({"subset": name} | fit(data, "nc1", timing))
    return pd.DataFrame(rows, columns=PANEL_COLUMNS)
