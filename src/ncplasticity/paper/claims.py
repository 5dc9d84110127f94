"""What every claim of the reproduction table is built from: the run's inputs, a claim (its
paper value and how ours is computed), and the row of a claim whose inputs the run lacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ncplasticity.tables import read_table, read_tables

SPREAD = "spread: sample std (ddof 1) over seeds"
# The `comparable` cell of a row that does not compare its setting with the paper's (the
# continual rows so far) or lacks its inputs.
NOT_ASSESSED = "not assessed"


class Missing(Exception):
    """A claim whose inputs this run lacks; the message says which."""


@dataclass
class Inputs:
    """The run's files and the choice of the paper's runs (``choice["continual"]`` /
    ``choice["warm_start"]``: None when that experiment was not run)."""

    choice: dict
    continual_tables: Sequence = ()
    sweep_correlations: str | None = None
    warm_start_tables: Sequence = ()
    warm_start_correlations: str | None = None
    warmup_logs: Sequence = ()

    def experiment(self, name: str) -> dict:
        chosen = self.choice.get(name)
        if not chosen:
            raise Missing(f"the {name} experiment is not among this run's experiments")
        return chosen

    @cached_property
    def continual(self) -> pd.DataFrame:
        chosen = self.experiment("continual")
        if not self.continual_tables:
            raise Missing("no continual per-run tables")
        return read_tables(self.continual_tables, chosen["analysis_tasks"])

    @cached_property
    def warm_start(self) -> pd.DataFrame:
        return _read_all(self.warm_start_tables, "warm-start per-run tables")

    @cached_property
    def warmup_log(self) -> pd.DataFrame:
        return _read_all(self.warmup_logs, "warm-up logs")


def _read_all(paths, what: str) -> pd.DataFrame:
    if not paths:
        raise Missing(f"no {what}")
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


def _summary(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1; NaN below 2) and count of the finite values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan"), 0
    spread = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), spread, len(values)


def claim_result(values, config: str, note: str = "") -> dict:
    ours, spread, n = _summary(values)
    return {"ours": ours, "spread": spread, "n_seeds": n, "config": config, "note": note}


@dataclass(frozen=True)
class Claim:
    claim: str
    statistic: str
    paper: object
    compute: Callable[[Inputs], dict]  # -> ours, spread, n_seeds, config, note[, comparable]

    def row(self, inputs: Inputs) -> dict:
        base = {"claim": self.claim, "paper": self.paper, "comparable": NOT_ASSESSED}
        try:
            found = self.compute(inputs)
        except Missing as missing:
            return base | {
                "statistic": self.statistic,
                "ours": float("nan"),
                "spread": float("nan"),
                "n_seeds": 0,
                "config": f"not available: {missing}",
            }
        return base | {"statistic": self.statistic + found.pop("note")} | found
