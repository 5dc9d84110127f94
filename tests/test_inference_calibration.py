"""Calibration of the open questions' inference (DESIGN §3d) on simulated panels whose truth is
known (:func:`inference.simulate_panel`: a shared non-polynomial trend, same-task correlated
noise, AR(1) noise, with and without a true lead β of x0), plus the API contract of
:func:`inference.lead_lag` and :func:`inference.tournament`. 1000-study rates:
``benchmarks/inference_calibration.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncplasticity.open_questions import duration, inference, panel_models

STUDIES = 200
BETA = 0.05
PERSISTENT = 0.8
NULL_MEASURES = ["x0", "x1", "x2", "x3"]


def _panels(seed: int, n: int, **kwargs) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [inference.simulate_panel(rng, **kwargs) for _ in range(n)]


@pytest.fixture(scope="module")
def null_panels():
    """Per noise kind (white, persistent AR correlated across the series), null studies with
    four uninformative measures."""
    return {
        "white": _panels(1, STUDIES, phi=0.0, measures=4),
        "ar": _panels(2, STUDIES, phi=PERSISTENT, measures=4),
    }


@pytest.mark.parametrize("noise", ["white", "ar"])
def test_lead_interval_excludes_zero_rarely_without_a_lead(null_panels, noise):
    results = [inference.lead_lag(p, "x0") for p in null_panels[noise]]
    rate = np.mean([r["low"] > 0 or r["high"] < 0 for r in results])
    assert rate <= 0.10, f"{noise}: lead interval excludes 0 in {rate:.1%} of null studies"
    placebo = np.mean([r["placebo_low"] > 0 or r["placebo_high"] < 0 for r in results])
    assert placebo <= 0.15, f"{noise}: placebo fires in {placebo:.1%} of null studies"


@pytest.mark.parametrize("phi", [0.0, PERSISTENT])
def test_lead_interval_covers_a_true_lead(phi):
    results = [inference.lead_lag(p, "x0") for p in _panels(3, STUDIES, phi=phi, beta=BETA)]
    coverage = np.mean([r["low"] <= BETA <= r["high"] for r in results])
    assert coverage >= 0.85, f"phi={phi}: the interval covers β in {coverage:.1%} of studies"
    assert abs(np.mean([r["estimate"] for r in results]) - BETA) < 0.2 * BETA


def test_tournament_calls_few_uninformative_measures_better(null_panels):
    panels = null_panels["white"][:100] + null_panels["ar"][:100]
    lows = [inference.tournament(p, NULL_MEASURES) for p in panels]
    rate = np.mean(np.concatenate([t.loc[t["kind"] == "measure", "low"] > 0 for t in lows]))
    assert rate <= 0.10, f"{rate:.1%} of uninformative measures beat the baseline"


def test_an_informative_measure_ranks_first_among_measures():
    for panel in _panels(4, 20, phi=PERSISTENT, beta=BETA, measures=4):
        table = inference.tournament(panel, ["x1", "x2", "x0", "x3"])
        measures = table[table["kind"] == "measure"]
        assert measures["measure"].iloc[0] == "x0"
        assert measures["low"].iloc[0] > 0


# The API contract.


@pytest.fixture(scope="module")
def panel():
    return inference.simulate_panel(np.random.default_rng(5), phi=0.5, beta=BETA, measures=2)


def test_lead_lag_keys_and_runs(panel):
    result = inference.lead_lag(panel, "x0")
    keys = ["estimate", "low", "high", "placebo", "placebo_low", "placebo_high", "n_runs"]
    assert list(result) == keys
    assert result["n_runs"] == panel["run"].nunique() == 15
    assert result["low"] < result["estimate"] < result["high"]
    assert result["placebo_low"] < result["placebo"] < result["placebo_high"]
    # Row order does not matter; a run whose x is constant is left out.
    shuffled = panel.sample(frac=1.0, random_state=0)
    assert inference.lead_lag(shuffled, "x0") == pytest.approx(result)
    flat = panel.assign(x0=np.where(panel["run"] == 0, 1.0, panel["x0"]))
    assert inference.lead_lag(flat, "x0")["n_runs"] == 14


def test_tournament_columns_and_baselines(panel):
    table = inference.tournament(panel, ["x0", "x1"])
    assert list(table.columns) == inference.TOURNAMENT_COLUMNS
    assert list(table.columns) == ["measure", "kind", "improvement", "low", "high"] + [
        "n_groups",
        "rank",
    ]
    kinds = dict(zip(table["measure"], table["kind"], strict=True))
    assert kinds == {
        "x0": "measure",
        "x1": "measure",
        "task": "baseline",
        "steps": "baseline",
        "pl_prev": "baseline",
    }
    assert (table["n_groups"] == panel["seed"].nunique()).all()
    assert list(table["rank"]) == sorted(table["rank"]) and table["rank"].iloc[0] == 1
    assert table.attrs["scales"] == {"x0": "linear", "x1": "linear"}


def test_tournament_logs_a_heavy_tailed_catalogue_measure(panel):
    positive = panel.assign(nc1=10 ** panel["x0"], cdnv=panel["x0"] - panel["x0"].median())
    table = inference.tournament(positive, ["nc1", "cdnv", "x0"])
    assert table.attrs["scales"] == {"nc1": "log", "cdnv": "linear", "x0": "linear"}
    row = table.set_index("measure")
    assert row.loc["nc1", "improvement"] == pytest.approx(row.loc["x0", "improvement"])


@pytest.mark.parametrize("missing", ["steps", "pl", "x0"])
def test_a_missing_column_is_named(panel, missing):
    broken = panel.drop(columns=missing)
    with pytest.raises(ValueError, match=f"'{missing}'"):
        inference.lead_lag(broken, "x0")
    with pytest.raises(ValueError, match=f"'{missing}'"):
        inference.tournament(broken, ["x0"])


def test_a_duplicated_run_and_task_is_an_error(panel):
    with pytest.raises(ValueError, match="more than one row"):
        inference.lead_lag(pd.concat([panel, panel.iloc[:1]]), "x0")


def test_a_panel_key_is_not_a_measure(panel):
    with pytest.raises(ValueError, match="panel keys"):
        inference.tournament(panel, ["x0", "steps"])


# The panel model (statsmodels OLS, run-clustered errors) and the duration experiment on the
# same kind of simulated truth.


@pytest.mark.parametrize("noise", ["white", "ar"])
def test_panel_model_lead_rarely_excludes_zero_without_a_lead(null_panels, noise):
    fits = [panel_models.fit(p, "x0", "previous_task") for p in null_panels[noise][:100]]
    rate = np.mean([f["ci_low"] > 0 or f["ci_high"] < 0 for f in fits])
    assert rate <= 0.10, f"{noise}: panel-model lead excludes 0 in {rate:.1%} of null studies"


def test_panel_model_lead_covers_a_true_lead():
    fits = [panel_models.fit(p, "x0", "previous_task") for p in _panels(6, 100, beta=BETA)]
    coverage = np.mean([f["ci_low"] <= BETA <= f["ci_high"] for f in fits])
    assert coverage >= 0.85, f"the panel model's interval covers β in {coverage:.1%}"


def test_panel_model_association_rarely_excludes_zero_without_one():
    panels = _panels(7, 100, phi=PERSISTENT, kappa=0.0)
    fits = [panel_models.fit(p, "x0", "same_task") for p in panels]
    rate = np.mean([f["ci_low"] > 0 or f["ci_high"] < 0 for f in fits])
    assert rate <= 0.10, f"the association excludes 0 in {rate:.1%} of studies without one"


def _epoch_panel(rng, gamma: float, delta: float, runs: int = 5, tasks: int = 60):
    """Runs whose tasks draw 1, 2 or 4 epochs: log10 NC1_i rises by ``gamma`` per epoch of task
    i, PL_i by ``delta`` per epoch of task i − 1, both on a shared trend with AR(1) noise."""
    frames = []
    for run in range(runs):
        epochs = rng.choice([1, 2, 4], tasks)
        trend = np.log1p(np.arange(tasks))
        noise = np.zeros((2, tasks))
        for i in range(1, tasks):
            noise[:, i] = 0.5 * noise[:, i - 1] + rng.normal(0, [0.05, 0.02])
        previous = np.r_[0, epochs[:-1]]
        frames.append(
            pd.DataFrame(
                {
                    "run": f"d_s{run}",
                    "variant": "d",
                    "seed": run,
                    "task": np.arange(tasks),
                    "epochs": epochs,
                    "nc1": 10 ** (0.1 * trend + gamma * epochs + noise[0]),
                    "pl": 0.05 * trend + delta * previous + noise[1],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_the_epoch_effects_cover_their_truth_and_find_none_where_there_is_none():
    conditions = pd.DataFrame(
        {"variant": ["d"], "families": ["duration"], "epochs_per_task": ["[1, 2, 4]"]}
    )
    none = pd.DataFrame(columns=["variant", "run", "reason"])
    rng = np.random.default_rng(8)
    hits = {"nc1": 0, "pl": 0, "pl_next": 0}
    for _ in range(STUDIES):
        table = duration.epoch_effects(_epoch_panel(rng, 0.03, 0.01), conditions, none)
        table = table.set_index("outcome")
        hits["nc1"] += table.loc["nc1", "ci_low"] <= 0.03 <= table.loc["nc1", "ci_high"]
        hits["pl_next"] += table.loc["pl_next", "ci_low"] <= 0.01 <= table.loc["pl_next", "ci_high"]
        hits["pl"] += table.loc["pl", "ci_low"] > 0 or table.loc["pl", "ci_high"] < 0
    assert hits["nc1"] >= 0.85 * STUDIES and hits["pl_next"] >= 0.85 * STUDIES, hits
    assert hits["pl"] <= 0.10 * STUDIES, hits
