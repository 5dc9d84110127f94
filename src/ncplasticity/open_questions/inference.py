"""Inference that holds (DESIGN §3d): a lead–lag estimate with its placebo, and a predictor
tournament scored out of sample against a baseline that already knows duration and the past.

Both take a task-level ``panel``: one row per run and task with the columns ``run``,
``variant``, ``seed``, ``task``, ``steps`` (cumulative training steps at the end of the task)
and the columns they are asked about. Lags are taken within a run between consecutive tasks
(task i − 1 for x_{i−1}, i + 1 for x_{i+1}); a missing neighbour, or a NaN, drops the row from
the fits that need it.

**Trend.** "A flexible trend in steps" is a restricted (natural) cubic spline in log(1 + steps)
(:func:`steps_trend` says why the log) with knots at Harrell's quantiles of the run's (or, in
the tournament, the condition's) steps: 5 knots
(4 columns beside the intercept) with ≥ 100 tasks a run, 4 knots with ≥ 30, else 3. Linear
beyond the outer knots, so a held-out seed's steps do not explode it.

**Lead–lag** (:func:`lead_lag`): per run, OLS of y_i on [1, spline(steps_i), y_{i−1}, x_{i−1}]
(x_i is *not* controlled: with persistent noise correlated across the series it manufactures a
lag coefficient under no lead); the placebo per run is OLS of y_i on [1, spline, y_{i−1},
x_{i−1}, x_i, x_{i+1}]: x_i *is* controlled (without it a persistent x makes the future fire),
and so is x_{i−1}, the lead model's own regressor (without it a true lead, omitted from the
placebo's model, leaks into x_{i+1} through the per-run fit and the placebo fired in 13–16 %
of simulated white-noise studies with a true lead, against ~5 % with it). Each estimate is
the mean of the per-run coefficients with a t-interval over the runs (df = runs − 1), which is
robust to any autocorrelation within a run. A run whose design is rank-deficient (e.g. a
constant x) or has fewer than 5 residual degrees of freedom is left out; ``n_runs`` counts the
runs of the lead estimate. The calibration is in ``tests/test_inference_calibration.py`` and
``benchmarks/inference_calibration.py`` (simulated by :func:`simulate_panel`).

**Tournament** (:func:`tournament`): see its docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics, stats

__all__ = ["TOURNAMENT_COLUMNS", "lead_lag", "simulate_panel", "tournament"]

KEYS = ("run", "variant", "seed", "task", "steps")
TOURNAMENT_COLUMNS = ["measure", "kind", "improvement", "low", "high", "n_groups", "rank"]
# Beside them (``attrs["minus_nc1"]``): each row's per-group improvement minus NC1's on the
# same groups (paired, t-interval) where NC1 competes.
MINUS_NC1 = ["minus_nc1", "minus_nc1_low", "minus_nc1_high"]
PAIRED_WITH = "nc1"
CONFIDENCE = 0.95
MIN_RESIDUAL_DF = 5
# Harrell's knot quantiles for 3, 4 and 5 knots of a restricted cubic spline.
_KNOT_QUANTILES = {
    3: (0.10, 0.50, 0.90),
    4: (0.05, 0.35, 0.65, 0.95),
    5: (0.05, 0.275, 0.50, 0.725, 0.95),
}


def n_knots(rows_per_run: float) -> int:
    return 5 if rows_per_run >= 100 else 4 if rows_per_run >= 30 else 3


def steps_trend(steps, reference, rows_per_run: float) -> np.ndarray:
    """The flexible trend in cumulative steps: :func:`spline_basis` of log(1 + steps), knots
    from ``reference``'s (:func:`n_knots` by the rows a run). On the log scale, because
    duration spans orders of magnitude within a run (task 1 after 10³–10⁴ steps, task 140
    after 10⁵–10⁶) and curves like PL bend most at its start: a spline in raw steps leaves that
    bend in the residual, where any measure sharing the trend picks it up as a spurious lead."""
    return spline_basis(np.log1p(steps), np.log1p(reference), n_knots(rows_per_run))


def spline_basis(values, reference, n_knots: int) -> np.ndarray:
    """Restricted cubic spline columns (linear term first, ``n_knots`` − 1 columns, no
    intercept) of ``values`` with knots at quantiles of ``reference``, scaled to [0, 1] by the
    reference's range (fewer distinct knots when the reference has few distinct values)."""
    reference = np.asarray(reference, dtype=float)
    reference = reference[np.isfinite(reference)]
    low, span = reference.min(), max(np.ptp(reference), 1e-12)
    v = (np.asarray(values, dtype=float) - low) / span
    knots = np.unique(np.quantile((reference - low) / span, _KNOT_QUANTILES[n_knots]))
    columns = [v]
    if len(knots) >= 3:
        t_k, t_k1, scale = knots[-1], knots[-2], (knots[-1] - knots[0]) ** 2
        for t_j in knots[:-2]:
            cube = np.clip(v - t_j, 0, None) ** 3
            cube -= np.clip(v - t_k1, 0, None) ** 3 * (t_k - t_j) / (t_k - t_k1)
            cube += np.clip(v - t_k, 0, None) ** 3 * (t_k1 - t_j) / (t_k - t_k1)
            columns.append(cube / scale)
    return np.column_stack(columns)


def _check(panel: pd.DataFrame, columns) -> None:
    keys = [c for c in columns if c in KEYS]
    if keys:
        raise ValueError(f"inference: {keys} are panel keys, not measures or outcomes")
    missing = [c for c in dict.fromkeys([*KEYS, *columns]) if c not in panel.columns]
    if missing:
        raise ValueError(f"inference: the panel lacks column(s) {missing}")


def lagged(panel: pd.DataFrame, columns, lead_columns=()) -> pd.DataFrame:
    """The panel's keys and ``columns`` (as float), sorted by run and task, with ``<c>_prev``
    (the value at task i − 1 of the same run) for every column and ``<c>_next`` (task i + 1)
    for ``lead_columns``; NaN where that task is absent."""
    columns = list(dict.fromkeys(columns))
    data = panel[[*KEYS, *columns]].sort_values(["run", "task"], kind="stable")
    data = data.reset_index(drop=True)
    if data.duplicated(["run", "task"]).any():
        raise ValueError("inference: the panel has more than one row for a run and task")
    data[columns] = data[columns].astype(float)
    data["steps"] = data["steps"].astype(float)
    run, task = data["run"].to_numpy(), data["task"].to_numpy()
    has_prev = np.r_[False, (run[1:] == run[:-1]) & (task[1:] == task[:-1] + 1)]
    has_next = np.r_[has_prev[1:], False]
    for c in columns:
        values = data[c].to_numpy()
        data[f"{c}_prev"] = np.where(has_prev, np.r_[np.nan, values[:-1]], np.nan)
        if c in lead_columns:
            data[f"{c}_next"] = np.where(has_next, np.r_[values[1:], np.nan], np.nan)
    return data


def last_coefficient(design: np.ndarray, target: np.ndarray) -> float:
    """OLS coefficient of the design's last column on ``target`` over the finite rows; NaN when
    the design is rank-deficient or leaves fewer than MIN_RESIDUAL_DF residual degrees."""
    ok = np.isfinite(design).all(axis=1) & np.isfinite(target)
    design, target = design[ok], target[ok]
    if len(target) - design.shape[1] < MIN_RESIDUAL_DF:
        return float("nan")
    coef, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    return float(coef[-1]) if rank == design.shape[1] else float("nan")


def _summary(values) -> tuple[float, float, float, float, int]:
    """(mean, low, high, p, n) of the finite ``values``: :func:`ncplasticity.stats.mean_interval`
    at :data:`CONFIDENCE`."""
    result = stats.mean_interval(values, CONFIDENCE)
    return result["mean"], result["ci_low"], result["ci_high"], result["p"], result["n"]


def lead_lag(panel: pd.DataFrame, x: str, y: str = "pl") -> dict:
    """The lead of ``x`` on ``y`` and its placebo (module docstring): ``estimate`` = the mean
    over runs of the per-run coefficient of x_{i−1} on y_i given y_{i−1} and the run's spline
    trend in steps, in y units per x unit, with its 95 % t-interval over runs ``low``,
    ``high``; ``placebo`` (``placebo_low``, ``placebo_high``) the same for x_{i+1} given x_i,
    y_{i−1}, the trend and x_{i−1} (the lead model plus x_i); ``n_runs`` the runs the estimate
    rests on. A lead is read only where its interval excludes 0 and the placebo's does not."""
    _check(panel, [x, y])
    if x == y:
        raise ValueError("lead_lag: x and y must be different columns")
    data = lagged(panel, [x, y], lead_columns=[x])
    columns = ["steps", y, f"{y}_prev", x, f"{x}_prev", f"{x}_next"]
    steps, target, y_prev, x_now, x_prev, x_next = data[columns].to_numpy().T
    lead, placebo = [], []
    for idx in data.groupby("run", sort=False).indices.values():
        trend = steps_trend(steps[idx], steps[idx], len(idx))
        base = np.column_stack([np.ones(len(idx)), trend, y_prev[idx]])
        lead.append(last_coefficient(np.column_stack([base, x_prev[idx]]), target[idx]))
        design = np.column_stack([base, x_prev[idx], x_now[idx], x_next[idx]])
        placebo.append(last_coefficient(design, target[idx]))
    estimate, low, high, _, n_runs = _summary(lead)
    p_estimate, p_low, p_high, _, _ = _summary(placebo)
    return {
        "estimate": estimate,
        "low": low,
        "high": high,
        "placebo": p_estimate,
        "placebo_low": p_low,
        "placebo_high": p_high,
        "n_runs": n_runs,
    }


def log_scaled(values: pd.Series, name: str) -> tuple[pd.Series, str]:
    """``values`` on the scale the metric catalogue gives ``name``: log10 when its scale is
    "log" and every finite value is positive, else unchanged (a measure not in the catalogue
    stays linear); with the scale used ("log" or "linear")."""
    metric = metrics.registry().get(name)
    finite = values[np.isfinite(values)]
    if metric is not None and metric.scale == "log" and len(finite) and (finite > 0).all():
        return np.log10(values), "log"
    return values, "linear"


def _held_out_mse(design, target, train, test) -> float:
    """MSE on the ``test`` rows of the OLS fitted on the ``train`` rows (least-norm solution,
    so a column collinear with the rest changes nothing)."""
    coef, *_ = np.linalg.lstsq(design[train], target[train], rcond=None)
    return float(np.mean((target[test] - design[test] @ coef) ** 2))


def condition_trend(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(one intercept column per condition, those intercepts and each condition's spline trend
    in ``steps``) for the rows of ``data``: the trend columns of a condition are zero on the
    other conditions' rows, its knots from its own steps (:func:`n_knots` by its tasks a
    run)."""
    variant = pd.factorize(data["variant"])[0]
    steps = data["steps"].to_numpy(dtype=float)
    blocks, intercepts = [], []
    for v in np.unique(variant):
        own = variant == v
        per_run = own.sum() / max(data.loc[own, "run"].nunique(), 1)
        blocks.append(steps_trend(steps, steps[own], per_run) * own[:, None])
        intercepts.append(own.astype(float))
    intercept = np.column_stack(intercepts)
    return intercept, np.column_stack([intercept, *blocks])


def _paired(gains: dict, reference: dict) -> tuple[float, float, float]:
    """Mean and t-interval over the groups both scored of ``gains`` minus ``reference``'s."""
    common = [g for g in gains if g in reference]
    mean, low, high, _, _ = _summary([gains[g] - reference[g] for g in common])
    return mean, low, high


def tournament(panel: pd.DataFrame, measures, y: str = "pl") -> pd.DataFrame:
    """Which measure, known after task i − 1, improves the out-of-sample prediction of y_i
    beyond duration and y's own past (DESIGN §3d).

    Baseline model: y_i ~ each condition's (``variant``'s) intercept and spline trend in steps
    (module docstring; knots from the condition's steps) + y_{i−1}, one shared y_{i−1} slope.
    Groups: one seed (every condition's run of that seed), left out one at a time; every model
    is fitted by OLS on the other seeds and scored by its mean squared error of y_i on the
    left-out seed's rows (rows of a condition absent from the training seeds are not scored).
    Every row is scored on the same groups; its ``improvement`` is the mean over groups of the
    per-group MSE reduction (y units squared; positive = better) with a 95 % t-interval over the
    ``n_groups`` groups (``low``, ``high``):

    - ``kind`` "measure": baseline MSE − MSE of baseline + x_{i−1}, on the rows where x_{i−1}
      is known. A measure whose catalogue scale (:mod:`ncplasticity.metrics`) is "log" enters as
      log10 when all its values are positive (``DataFrame.attrs["scales"]`` says which);
    - baseline ``task``: baseline MSE − MSE of baseline + the task index (what the task index
      adds beyond the steps trend; ~0 when steps per task are constant);
    - baseline ``steps``: MSE of the model without the steps trend (condition intercept +
      y_{i−1}) − baseline MSE: what duration adds given the past;
    - baseline ``<y>_prev`` (``pl_prev``): MSE of the model without y_{i−1} (condition
      intercept and trend) − baseline MSE: what y's own past adds given duration.

    ``rank`` 1 = the largest improvement over every row, baselines included, so a measure's
    place beside duration and the past is printed; rows sorted by rank. ``attrs["minus_nc1"]``
    holds, per row, its per-group improvement minus NC1's on the groups both were scored on
    (:data:`MINUS_NC1`, a paired comparison with NC1; NaN where ``nc1`` is not a measure).
    """
    measures = list(dict.fromkeys(measures))
    _check(panel, [*measures, y])
    if y in measures:
        raise ValueError(f"tournament: the outcome {y!r} cannot be a measure")
    work = panel[[*KEYS, y, *measures]].copy()
    scales = {}
    for m in measures:
        work[m], scales[m] = log_scaled(work[m].astype(float), m)
    data = lagged(work, [y, *measures])
    target, y_prev = data[y].to_numpy(), data[f"{y}_prev"].to_numpy()
    variant, seed = pd.factorize(data["variant"])[0], pd.factorize(data["seed"])[0]
    intercept, trend = condition_trend(data)
    base = np.column_stack([trend, y_prev])
    known = np.isfinite(target) & np.isfinite(y_prev)
    groups = np.unique(seed)
    candidates = {m: ("measure", data[f"{m}_prev"].to_numpy()) for m in measures}
    candidates["task"] = ("baseline", data["task"].to_numpy(dtype=float))
    rows = []
    for name, (kind, column) in candidates.items():
        ok = known & np.isfinite(column)
        rows.append((name, kind, base, np.column_stack([base, column]), ok))
    no_trend = np.column_stack([intercept, y_prev])
    rows.append(("steps", "baseline", no_trend, base, known))
    rows.append((f"{y}_prev", "baseline", trend, base, known))
    table, cache = [], {}

    def held_out(design, train, test) -> float:
        key = (id(design), train.tobytes(), test.tobytes())
        if key not in cache:
            cache[key] = _held_out_mse(design, target, train, test)
        return cache[key]

    gains, paired = {}, []
    for name, kind, smaller, larger, ok in rows:
        gains[name] = {}
        for g in groups:
            train, test = ok & (seed != g), ok & (seed == g)
            test &= np.bincount(variant[train], minlength=variant.max() + 1)[variant] > 0
            if test.sum() == 0 or train.sum() <= larger.shape[1]:
                continue
            gains[name][g] = held_out(smaller, train, test) - held_out(larger, train, test)
        improvement, low, high, _, n_groups = _summary(list(gains[name].values()))
        table.append([name, kind, improvement, low, high, n_groups])
        paired.append([name, *_paired(gains[name], gains.get(PAIRED_WITH, {}))])
    result = pd.DataFrame(table, columns=TOURNAMENT_COLUMNS[:-1])
    rank = result["improvement"].rank(ascending=False, method="min", na_option="keep")
    result["rank"] = rank.astype("Int64")
    result = result.sort_values("rank", kind="stable", na_position="last")
    result = result.reset_index(drop=True)
    result.attrs["scales"] = scales
    result.attrs["minus_nc1"] = pd.DataFrame(paired, columns=["measure", *MINUS_NC1])
    return result


def simulate_panel(
    rng: np.random.Generator,
    *,
    seeds: int = 5,
    variants: int = 3,
    tasks: int = 60,
    beta: float = 0.0,
    phi: float = 0.0,
    kappa: float = 0.6,
    measures: int = 1,
    sigma_y: float = 0.03,
    sigma_x: float = 0.3,
    burn_in: int = 50,
) -> pd.DataFrame:
    """A simulated panel whose truth is known (DESIGN §3d), for calibration: ``seeds`` ×
    ``variants`` runs of ``tasks`` tasks, each task 100, 200 or 400 steps at random;
    pl = f_v(steps) + u, x_k = g_v(steps) + v_k with non-polynomial trends shared by a
    condition's runs (PL saturating upwards, x decaying), AR(1) noise of persistence ``phi``,
    same-task innovations correlated ``kappa`` between pl and every x_k, and a true lead of
    ``x0`` only: u_i = phi·u_{i−1} + beta·v_{0,i−1} + sigma_y·e_i, v_{k,i} = phi·v_{k,i−1} +
    sigma_x·η_{k,i}, so ``beta`` is the coefficient of x0_{i−1} on pl_i given pl_{i−1} and the
    trend. Columns: the panel keys, ``pl`` and ``x0`` … ``x{measures−1}``."""
    runs, length = seeds * variants, burn_in + tasks
    e = rng.standard_normal((runs, length))
    eta = kappa * e[None] + np.sqrt(1 - kappa**2) * rng.standard_normal((measures, runs, length))
    u, v = np.zeros((runs, length)), np.zeros((measures, runs, length))
    u[:, 0], v[..., 0] = sigma_y * e[:, 0], sigma_x * eta[..., 0]
    for i in range(1, length):
        v[..., i] = phi * v[..., i - 1] + sigma_x * eta[..., i]
        u[:, i] = phi * u[:, i - 1] + beta * v[0, :, i - 1] + sigma_y * e[:, i]
    u, v = u[:, burn_in:], v[..., burn_in:]
    steps = np.cumsum(rng.choice([100.0, 200.0, 400.0], size=(runs, tasks)), axis=1)
    variant = np.repeat(np.arange(variants), seeds)
    scale = 200.0 * tasks * (0.3 + 0.2 * variant)[:, None]
    level = (0.2 + 0.1 * variant)[:, None]
    pl = level * (1 - np.exp(-steps / scale)) + u
    x = (1 + 2 * np.exp(-steps / scale) + 0.5 * np.sqrt(steps / steps[:, -1:]))[None] + v
    frame = {
        "run": np.repeat(np.arange(runs), tasks),
        "variant": np.repeat([f"v{k}" for k in variant], tasks),
        "seed": np.repeat(np.tile(np.arange(seeds), variants), tasks),
        "task": np.tile(np.arange(tasks), runs),
        "steps": steps.ravel(),
        "pl": pl.ravel(),
    }
    frame |= {f"x{k}": x[k].ravel() for k in range(measures)}
    return pd.DataFrame(frame)
