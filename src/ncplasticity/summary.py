"""Per-variant summaries over seeds, shared by the experiments' ``variant_summary`` tables:
each quantity is computed per seed first, then its mean and standard deviation over seeds, with
the number of seeds they rest on; and the same table in Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity.tsv import markdown_row


def over_seeds(per_seed: pd.DataFrame, quantities) -> pd.DataFrame:
    """One row per variant of ``per_seed`` (columns ``variant``, ``seed`` and ``quantities``),
    in first-seen order: ``n_seeds`` and, per quantity, ``<q>_mean`` and ``<q>_sd`` (ddof 1, so
    NaN for one seed). A NaN is never skipped: it makes the mean NaN."""
    rows = []
    for variant, seeds in per_seed.groupby("variant", sort=False):
        row = {"variant": variant, "n_seeds": len(seeds)}
        for quantity in quantities:
            row[f"{quantity}_mean"] = seeds[quantity].mean(skipna=False)
            row[f"{quantity}_sd"] = seeds[quantity].std(ddof=1, skipna=False)
        rows.append(row)
    return pd.DataFrame(rows)


def rests_on(summary: pd.DataFrame) -> str:
    """How many seeds each row rests on, in words."""
    seeds = sorted(set(summary["n_seeds"]))
    if len(seeds) == 1:
        return f"each row rests on {seeds[0]} seed{'s' * (seeds[0] != 1)}"
    return "each row rests on the seeds in column *seeds*"


def markdown(summary: pd.DataFrame, labels: dict[str, str], header: str) -> str:
    """``summary`` (of :func:`over_seeds`) as a Markdown table under ``header``; ``labels``:
    quantity -> column title, in column order."""
    names = ["variant", "seeds", *labels.values()]
    lines = [header, "", markdown_row(names), markdown_row(["---"] * len(names))]
    for row in summary.to_dict("records"):
        cells = [str(row["variant"]), str(row["n_seeds"])]
        cells += [_mean_sd(row[f"{q}_mean"], row[f"{q}_sd"]) for q in labels]
        lines.append(markdown_row(cells))
    return "\n".join(lines) + "\n"


def _mean_sd(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.4g}" if np.isnan(sd) else f"{mean:.4g} ± {sd:.2g}"
