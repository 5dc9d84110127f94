"""Reading the workflow's tables (pandas; no torch, no matplotlib): what every analysis,
:mod:`ncplasticity.paper` and :mod:`ncplasticity.open_questions` among them, reads its inputs
with. Tables are written by :mod:`ncplasticity.tsv`, in the one format read here."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A TSV as a pandas DataFrame (empty cells are NaN)."""
    return pd.read_csv(path, sep="\t")


def read_tables(paths: Iterable[str | os.PathLike], analysis_tasks: int) -> pd.DataFrame:
    """All per-run tables of a continual study, each cut to its first ``analysis_tasks``
    tasks, one after another."""
    tables = []
    for path in paths:
        table = read_table(path)
        table = table[table["task"] < analysis_tasks]
        if table.empty:
            raise ValueError(f"{path}: no tasks below analysis_tasks={analysis_tasks}")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
