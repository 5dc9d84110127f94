"""configs/smoke.yaml exercises every path for real: each variant trains differently from the
others and every table and analysis it feeds has numbers (not NaN by construction). Reads the
session's one local smoke run (the ``smoke_run`` fixture of conftest.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from slurm.workflow_runs import metrics_tables
from table_rows import read_rows

from ncplasticity.features import FeatureReader

pytestmark = pytest.mark.slow

CONTINUAL_VARIANTS = ("e1", "nc0.28", "mixed", "pairs")
WARMUP_VARIANTS = ("plain", "nc_reg", "nc_reg_stable", "l2", "nc2_reg", "nc3_reg")


def _first_snapshot(path):
    with FeatureReader(path) as reader:
        return reader.read(reader.snapshots()[0].name)


def _training_curve(rows):
    return [row["train_loss"] for row in rows]


def test_every_variant_trains_its_own_way_and_every_table_has_numbers(smoke_run):
    results = smoke_run / "results"
    continual, warm = results / "continual", results / "warm_start"

    # The NC1-threshold first task trains more than one epoch (e1: one), so its features differ.
    for seed in (1, 2):
        e1 = read_rows(continual / f"logs/e1_s{seed}.tsv")
        nc = read_rows(continual / f"logs/nc0.28_s{seed}.tsv")
        assert e1[0]["epochs"] == 1 and nc[0]["epochs"] > 1, (seed, nc[0])
        e1_features, _, e1_weight, _ = _first_snapshot(continual / f"features/e1_s{seed}.h5")
        nc_features, _, nc_weight, _ = _first_snapshot(continual / f"features/nc0.28_s{seed}.h5")
        assert not np.array_equal(e1_features, nc_features)
        assert not np.array_equal(e1_weight, nc_weight)
        logs = {v: read_rows(continual / f"logs/{v}_s{seed}.tsv") for v in CONTINUAL_VARIANTS}
        for a, b in itertools.combinations(CONTINUAL_VARIANTS, 2):
            assert [r["online_accuracy"] for r in logs[a]] != [
                r["online_accuracy"] for r in logs[b]
            ], (a, b, seed)

    # The stable NC regulariser's penalty acts, so its warm-up is not plain's; no two warm-ups
    # (nor shrink & perturb's fine-tunes and plain's) are the same.
    stable = read_rows(warm / "logs/nc_reg_stable_s7.tsv")
    assert any(row["regularizer"] > 0 for row in stable), stable
    logs = {v: _training_curve(read_rows(warm / f"logs/{v}_s7.tsv")) for v in WARMUP_VARIANTS}
    for a, b in itertools.combinations(WARMUP_VARIANTS, 2):
        assert logs[a] != logs[b], (a, b)
    tables = {
        v: read_rows(warm / f"tables/{v}_s7.tsv") for v in (*WARMUP_VARIANTS, "shrink_perturb")
    }
    assert [r["finetune_test_accuracy"] for r in tables["shrink_perturb"]] != [
        r["finetune_test_accuracy"] for r in tables["plain"]
    ]

    # NC1 of every snapshot of every run, and in every run's table, is a number.
    for name, path in metrics_tables(smoke_run).items():
        assert all(math.isfinite(row["nc1"]) for row in read_rows(path)), name
    for path in [*continual.glob("tables/*.tsv"), *warm.glob("tables/*.tsv")]:
        rows = read_rows(path)
        assert rows and all(math.isfinite(row["nc1"]) for row in rows), path

    # The fresh reference of task 3 (fresh_every: 3) reaches every run's table and the summary.
    for path in continual.glob("tables/*.tsv"):
        rows = read_rows(path)
        assert math.isfinite(rows[3]["pl_fresh"]), path
        assert all(math.isnan(row["pl_fresh"]) for row in rows[:3]), path
    summary = read_rows(continual / "analysis/variant_summary.tsv")
    assert all(math.isfinite(row["pl_fresh_final_mean"]) for row in summary), summary

    # The sliding-window correlation of NC1 and fine-tuned accuracy: a number for every variant.
    correlations = read_rows(warm / "analysis/correlations.tsv")
    nc1 = {row["variant"]: row["r_mean"] for row in correlations if row["metric"] == "nc1"}
    assert set(nc1) == set(tables) and all(math.isfinite(r) for r in nc1.values()), nc1

    # The first-task sweep correlates NC1 and first-task epochs (both vary) with PL.
    sweep = [
        row
        for row in read_rows(continual / "analysis/sweep_correlations.tsv")
        if row["variants"] == "e1,nc0.28"
    ]
    assert sweep and all(
        math.isfinite(row["r_first_nc1_pl"]) and math.isfinite(row["r_first_epochs_pl"])
        for row in sweep
    )

    # Every claim of the paper's table has our number, but the first epoch of an NC1-regulariser
    # collapse when no warm-up collapsed (a mean over no seeds).
    reproduction = {row["claim"]: row for row in read_rows(results / "paper/reproduction.tsv")}
    collapse = "NC1 regulariser: first epoch of the collapse"
    if reproduction["NC1 regulariser: seeds whose warm-up collapses"]["ours"] == 0:
        assert reproduction.pop(collapse)["n_seeds"] == 0
    missing = [
        claim
        for claim, row in reproduction.items()
        if not (isinstance(row["ours"], float) and math.isfinite(row["ours"]))
    ]
    assert not missing, missing
