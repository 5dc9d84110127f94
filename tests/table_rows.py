"""Reading a TSV the workflow wrote as the tests inspect it: a list of rows (dicts), through
pandas. Every missing or NaN cell is the one object ``math.nan``, so two tables with NaN in the
same cells compare equal (list and dict equality try identity before ``==``)."""

import math

import pandas as pd


def read_rows(path) -> list[dict]:
    rows = pd.read_csv(path, sep="\t").to_dict("records")
    return [{k: _one_nan(v) for k, v in row.items()} for row in rows]


def _one_nan(value):
    return math.nan if isinstance(value, float) and math.isnan(value) else value
