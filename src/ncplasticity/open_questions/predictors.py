"""What a measure known before a task says about that task's plasticity loss (DESIGN §3d):

- :func:`leads`: NC1's lead on PL with its placebo (:func:`.inference.lead_lag`, NC1 as log10),
  in the pooled runs and in each condition on its own;
- :func:`ranking`: the predictor tournament (:func:`.inference.tournament`) of every correlated
  NC metric and plasticity measure of the registry over the pooled runs, the baselines (task
  index, steps, PL_{i−1}) ranked in the same table, with each row's paired difference from NC1.

Both read the panel with ``steps`` = cumulative steps when each task starts
(:func:`.panel.with_outcome_steps`).
"""

from __future__ import annotations

import pandas as pd

from ncplasticity import stats
from ncplasticity.open_questions import inference, pooling
from ncplasticity.open_questions import panel as panel_mod

LEAD_KEYS = ["estimate", "low", "high", "placebo", "placebo_low", "placebo_high", "n_runs"]
LEAD_COLUMNS = ["subset", "measure", "scale", *LEAD_KEYS, "p", "placebo_p"]
RANKING_COLUMNS = [
    *inference.TOURNAMENT_COLUMNS,
    "label",
    "scale",
    "p",
    *inference.MINUS_NC1,
]


def leads(panel: pd.DataFrame, excluded: pd.DataFrame, measure: str = "nc1") -> pd.DataFrame:
    """``measure``'s lead on PL (:data:`LEAD_COLUMNS`) in each of :func:`.pooling.subsets`
    (``excluded``: :func:`.pooling.exclusions`);
    ``p`` and ``placebo_p`` are the t-tests behind the intervals."""
    values, scale = inference.log_scaled(panel[measure].astype(float), measure)
    panel = panel.assign(**{measure: values})
    rows = []
    for name, data in pooling.subsets(panel, excluded).items():
        result = inference.lead_lag(data, measure)
        n = result["n_runs"]
        row = {"subset": name, "measure": measure, "scale": scale} | result
        row["p"] = stats.t_interval_p_value(result["estimate"], result["low"], result["high"], n)
        row["placebo_p"] = stats.t_interval_p_value(
            result["placebo"], result["placebo_low"], result["placebo_high"], n
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=LEAD_COLUMNS)


def ranking(pooled: pd.DataFrame) -> pd.DataFrame:
    """The tournament over the pooled runs (:data:`RANKING_COLUMNS`, rows by rank)."""
    measures = [m.name for m in panel_mod.measures(pooled)]
    labels = {m.name: m.label for m in panel_mod.measures(pooled)}
    table = inference.tournament(pooled, measures)
    scales = table.attrs["scales"]
    table = table.merge(table.attrs["minus_nc1"], on="measure", how="left")
    table["label"] = table["measure"].map(labels).fillna(table["measure"])
    table["scale"] = table["measure"].map(scales).fillna("linear")
    table["p"] = [
        stats.t_interval_p_value(row.improvement, row.low, row.high, row.n_groups)
        for row in table.itertuples()
    ]
    return table[RANKING_COLUMNS]
