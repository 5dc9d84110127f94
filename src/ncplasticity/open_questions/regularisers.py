"""The paper's third next check: do regularisers aimed at an NC property preserve plasticity?

For every warm-start variant whose warm-up interventions act on an NC metric (the registry's
``nc_metric``: ``nc_reg`` NC1, ``nc2_reg`` NC2 of the classifier, ``nc3_reg`` NC3), against
the variant without interventions, per seed (paired): the difference of the mean over
checkpoints of the fine-tuned test accuracy (the plasticity outcome), and of the metric it acts
on (did it move it?); then the mean over seeds with a t-interval. Which variants are which
comes from their settings, never from their names.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ncplasticity.stats import mean_interval
from ncplasticity.tables import read_table
from ncplasticity.warm_start.interventions import REGISTRY

COLUMNS = [
    "variant",
    "interventions",
    "reference",
    "quantity",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n_seeds",
]
OUTCOME = "finetune_test_accuracy"


def _targets(settings: Mapping) -> list[tuple[str, str]]:
    """(intervention spec as text, NC metric) of the variant's warm-up interventions that act
    on an NC metric."""
    found = []
    for spec in REGISTRY.in_phase(settings.get("interventions", []), "warmup"):
        metric = REGISTRY[spec["name"]].nc_metric
        if metric is not None:
            params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
            found.append((f"{spec['name']}({params})", metric))
    return found


def regulariser_effects(table_paths, variant_settings: Mapping) -> pd.DataFrame:
    """One row per (regularised variant, quantity): ``finetune_test_accuracy`` and the metric
    it acts on, as the variant's minus the reference's (the variant without interventions),
    per seed, then mean and t-interval over the seeds both have. Empty without a reference or
    a regularised variant."""
    references = [v for v, s in variant_settings.items() if not s.get("interventions")]
    regularised = {v: _targets(s) for v, s in variant_settings.items()}
    regularised = {v: targets for v, targets in regularised.items() if targets}
    if not references or not regularised or not table_paths:
        return pd.DataFrame(columns=COLUMNS)
    tables = pd.concat([read_table(path) for path in table_paths], ignore_index=True)
    # Per (variant, seed): the mean over its checkpoints.
    per_seed = tables.groupby(["variant", "seed"]).mean(numeric_only=True)
    reference = references[0]
    rows = []
    for variant, targets in regularised.items():
        for quantity in dict.fromkeys([OUTCOME, *(metric for _, metric in targets)]):
            if quantity not in per_seed or variant not in per_seed.index.get_level_values(0):
                continue
            difference = per_seed.loc[variant, quantity] - per_seed.loc[reference, quantity]
            interval = mean_interval(difference.dropna())
            rows.append(
                {
                    "variant": variant,
                    "interventions": "; ".join(text for text, _ in targets),
                    "reference": reference,
                    "quantity": quantity,
                    "estimate": interval["mean"],
                    "ci_low": interval["ci_low"],
                    "ci_high": interval["ci_high"],
                    "p": interval["p"],
                    "n_seeds": interval["n"],
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
