import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from table_rows import read_rows

from ncplasticity import metrics
from ncplasticity.tsv import write_tsv
from ncplasticity.warm_start import figures as warm_start_figures
from ncplasticity.warm_start import outputs
from ncplasticity.warm_start import tables as warm_start_tables
from ncplasticity.warm_start.figures import FIGURES
from ncplasticity.warm_start.tables import run_table, sliding_correlations

EPOCHS = [2, 4, 6, 8]


def write_run(tmp_path, variant, seed, slope, warmup_variant=None, learned=True):
    """The inputs of one run's table: NC1 and the effective rank fall (by ``slope`` per epoch)
    and fine-tuned accuracy falls with them; the warm-up collapsed from epoch 6 and diverged at
    epoch 8, so there is no snapshot there. Not ``learned``: training accuracy stays at 0.4,
    which the loop never flags as a collapse. Returns the run's table."""
    warmup_variant = warmup_variant or variant
    run = tmp_path / f"{variant}_s{seed}"
    run.mkdir()
    write_tsv(
        run / "metrics.tsv",
        [
            {
                "snapshot": f"epoch{e:04d}",
                "order": i,
                "epoch": e,
                "n": 32,
                "nc1": 10.0 - slope * e,
                "nc4": 0.1 * i,
            }
            for i, e in enumerate(EPOCHS[:3])
        ],
    )
    write_tsv(
        run / "log.tsv",
        [
            {"variant": warmup_variant, "seed": seed, "epoch": e,
             "train_accuracy": 0.9 if learned else 0.4, "test_accuracy": 0.8 + 0.01 * e,
             "diverged": e == 8, "collapsed": learned and e >= 6,
             "effective_rank": 20.0 - slope * e if e in EPOCHS[:3] else math.nan,
             "weight_norm": 5.0 if e in EPOCHS[:3] else math.nan}
            for e in range(1, 9)
        ],
    )  # fmt: skip
    finetune = [run / f"f{e}.tsv" for e in EPOCHS]
    for path, e in zip(finetune, EPOCHS, strict=True):
        write_finetune(path, variant, seed, e, 0.9 - 0.01 * e)
    write_finetune(run / "fresh.tsv", "fresh", seed, 0, 0.95)
    table = tmp_path / f"table_{variant}_s{seed}.tsv"
    run_table(
        run / "metrics.tsv",
        run / "log.tsv",
        finetune,
        run / "fresh.tsv",
        table,
        variant=variant,
        seed=seed,
        warmup_variant=warmup_variant,
        fresh_variant="plain",
    )
    return table


def write_finetune(path, variant, seed, warmup_epoch, test_accuracy, epochs=3):
    """A fine-tune job's per-epoch rows: tested at the last epoch only."""
    write_tsv(
        path,
        [
            {"variant": variant, "seed": seed, "warmup_epoch": warmup_epoch, "epoch": epoch,
             "train_loss": 1.0 / epoch, "train_accuracy": 0.5 + 0.5 * epoch / epochs,
             "test_accuracy": test_accuracy if epoch == epochs else math.nan,
             "wall_seconds": 1.0, "diverged": False}
            for epoch in range(1, epochs + 1)
        ],
    )  # fmt: skip


def test_run_table_and_sliding_correlations(tmp_path):
    tables = [write_run(tmp_path, "plain", seed, slope) for seed, slope in ((1, 1.0), (2, 2.0))]
    rows = read_rows(tables[0])
    assert [r["epoch"] for r in rows] == EPOCHS
    assert {(r["variant"], r["seed"], r["warmup_variant"]) for r in rows} == {("plain", 1, "plain")}
    assert rows[0]["pl_fresh"] == pytest.approx(0.95 - 0.88)
    assert rows[1]["warmup_test_accuracy"] == pytest.approx(0.84)
    assert rows[0]["nc1"] == 8.0 and math.isnan(rows[3]["nc1"])  # no snapshot after divergence
    assert [r["nc4_agreement"] for r in rows[:3]] == pytest.approx([1.0, 0.9, 0.8])  # derived
    assert [r["diverged"] for r in rows] == [False, False, False, True]
    assert [r["collapsed"] for r in rows] == [False, False, True, True]  # flagged, fine-tuned
    assert [r["never_learned"] for r in rows] == [False] * 4
    unlearned = read_rows(write_run(tmp_path, "nc_reg", 1, 1.0, learned=False))
    # Best training accuracy 0.4 < 0.5: never learned, on every row, and never collapsed.
    assert [(r["never_learned"], r["collapsed"]) for r in unlearned] == [(True, False)] * 4
    # The outcome is each fine-tune job's last row.
    assert [r["finetune_epochs"] for r in rows] == [3, 3, 3, 3]
    assert [r["finetune_train_accuracy"] for r in rows] == [1.0] * 4
    assert [r["finetune_test_accuracy"] for r in rows] == pytest.approx([0.88, 0.86, 0.84, 0.82])
    # Plasticity measures of the warm-up log, at the checkpoints (none after a divergence).
    assert [r["effective_rank"] for r in rows[:3]] == [18.0, 16.0, 14.0]
    assert math.isnan(rows[3]["effective_rank"]) and rows[0]["weight_norm"] == 5.0
    columns = list(rows[0])
    assert columns.index("nc1") < columns.index("effective_rank") < columns.index("diverged")
    assert "dead_fraction" not in columns  # not in this log
    assert "snapshot" not in rows[0] and "n" not in rows[0]  # snapshot metadata left out

    sliding_correlations(tables, 6, tmp_path / "corr.tsv")
    correlations = pd.read_csv(tmp_path / "corr.tsv", sep="\t")
    assert list(correlations.columns) == [
        "variant", "metric", "window_end", "r_mean", "r_std", "n_seeds"
    ]  # fmt: skip
    # Every correlated NC metric (NC4 as agreement) and plasticity measure; metrics a table
    # lacks have no finite r.
    expected = {m.name for m in metrics.select(correlated=True) if m.group in ("nc", "plasticity")}
    assert set(correlations["metric"]) == expected and "nc4" not in expected
    assert "effective_rank" in expected and "online_accuracy" not in expected
    nc1 = correlations[correlations["metric"] == "nc1"].to_dict("records")
    window_6, window_8 = nc1
    assert (window_6["variant"], window_6["window_end"], window_6["n_seeds"]) == ("plain", 6, 2)
    assert window_6["r_mean"] == pytest.approx(1.0) and window_6["r_std"] == pytest.approx(0.0)
    assert window_8["n_seeds"] == 0  # only two finite NC1 values in (2, 8]
    agreement = correlations[correlations["metric"] == "nc4_agreement"]
    assert agreement["r_mean"].iloc[0] == pytest.approx(1.0)  # both fall: 1 - nc4, not nc4
    assert (correlations[correlations["metric"] == "cdnv"]["n_seeds"] == 0).all()
    assert (correlations[correlations["metric"] == "dead_fraction"]["n_seeds"] == 0).all()
    rank = correlations[correlations["metric"] == "effective_rank"].to_dict("records")
    assert [(r["window_end"], r["n_seeds"]) for r in rank] == [(6, 2), (8, 0)]
    assert rank[0]["r_mean"] == pytest.approx(1.0)  # the rank falls with accuracy
    # A constant measure has no r.
    assert (correlations[correlations["metric"] == "weight_norm"]["n_seeds"] == 0).all()


def test_variant_summary_over_seeds(tmp_path):
    tables = [write_run(tmp_path, "plain", seed, slope) for seed, slope in ((1, 1.0), (2, 2.0))]
    tables.append(write_run(tmp_path, "sp", 1, 1.0, warmup_variant="plain"))
    tables += [write_run(tmp_path, "reg", seed, 1.0, learned=seed == 1) for seed in (1, 2)]
    warm_start_tables.variant_summary(tables, tmp_path / "summary.tsv", tmp_path / "summary.md")
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t").set_index("variant")
    assert list(summary.index) == ["plain", "sp", "reg"]
    plain = summary.loc["plain"]
    assert plain["n_seeds"] == 2 and summary.loc["sp", "n_seeds"] == 1
    # Per seed first (mean over the 4 checkpoints, or the first/last one), then over seeds.
    assert plain["finetune_test_accuracy_mean"] == pytest.approx(0.85)
    assert plain["pl_fresh_mean"] == pytest.approx(0.10)
    assert plain["nc1_first_mean"] == pytest.approx(7.0)  # 8 and 6
    assert plain["nc1_first_sd"] == pytest.approx(2**0.5)
    assert math.isnan(plain["nc1_last_mean"])  # no snapshot after the divergence
    assert plain["collapsed_fraction_mean"] == pytest.approx(0.5)
    assert plain["never_learned_mean"] == 0.0
    # One of reg's two warm-ups never learned; only the other collapsed (2 of its 4 checkpoints).
    reg = summary.loc["reg"]
    assert reg["never_learned_mean"] == 0.5 and reg["collapsed_fraction_mean"] == 0.25
    assert plain["r_nc1_finetune_mean"] == pytest.approx(1.0)  # 3 finite checkpoints a seed
    assert math.isnan(summary.loc["sp", "finetune_test_accuracy_sd"])  # one seed
    markdown = (tmp_path / "summary.md").read_text()
    assert "each row rests on the seeds in column *seeds*" in markdown
    assert "warm-up epochs 2, 4, 6, 8" in markdown
    assert "| plain | 2 | 0.85 ± 0 |" in markdown
    assert "| warm-up never learned (best training accuracy < 0.5) |" in markdown


def test_a_run_table_without_snapshots(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.tsv").write_text("snapshot\torder\tn\td\tc\tnc1\tnc4\n")  # all diverged
    write_tsv(run / "log.tsv", [{"epoch": 1, "train_accuracy": 0.1, "test_accuracy": 0.1,
                                 "diverged": True}])  # fmt: skip
    row = {"variant": "nc_reg", "seed": 1, "warmup_epoch": 2, "epoch": 0, "wall_seconds": 0.0,
           "train_loss": math.nan, "train_accuracy": math.nan, "test_accuracy": math.nan,
           "diverged": True}  # fmt: skip
    write_tsv(run / "f2.tsv", [row])
    write_finetune(run / "fresh.tsv", "fresh", 1, 0, 0.9)
    common = dict(variant="nc_reg", seed=1, warmup_variant="nc_reg", fresh_variant="plain")
    run_table(run / "metrics.tsv", run / "log.tsv", [run / "f2.tsv"], run / "fresh.tsv",
              tmp_path / "table.tsv", **common)  # fmt: skip
    ((table,),) = [read_rows(tmp_path / "table.tsv")]
    assert table["diverged"] is True and math.isnan(table["nc4_agreement"])
    assert table["finetune_epochs"] == 0 and table["collapsed"] is False
    assert table["fresh_test_accuracy"] == 0.9  # the fresh job's last row
    with pytest.raises(ValueError, match="expected \\('plain', 1\\)"):
        run_table(run / "metrics.tsv", run / "log.tsv", [run / "f2.tsv"], run / "fresh.tsv",
                  tmp_path / "table.tsv", **{**common, "variant": "plain"})  # fmt: skip
    write_tsv(run / "f2.tsv", [row, {**row, "warmup_epoch": 4}])  # two jobs' rows in one file
    with pytest.raises(ValueError, match="at one warm-up epoch"):
        run_table(run / "metrics.tsv", run / "log.tsv", [run / "f2.tsv"], run / "fresh.tsv",
                  tmp_path / "table.tsv", **common)  # fmt: skip


def test_figures_draw_from_the_tables(tmp_path, monkeypatch):
    drawn = {}
    real_panels_figure = warm_start_figures.panels_figure

    def recorded(panels, xlabel, pdf, png, **options):
        drawn[Path(pdf).stem] = panels
        real_panels_figure(panels, xlabel, pdf, png, **options)

    monkeypatch.setattr(warm_start_figures, "panels_figure", recorded)
    tables = [write_run(tmp_path, "plain", seed, slope) for seed, slope in ((1, 1.0), (2, 2.0))]
    # shrink_perturb fine-tunes plain's warm-up: its NC curves are plain's, shown once.
    tables += [write_run(tmp_path, "shrink_perturb", 1, 1.0, warmup_variant="plain")]
    sliding_correlations(tables, 4, tmp_path / "corr.tsv")
    by_kind = {
        "tables": tables,
        "warmup_logs": [tmp_path / "plain_s1" / "log.tsv", tmp_path / "plain_s2" / "log.tsv"],
        "correlations": [tmp_path / "corr.tsv"],
    }
    # Each figure drawn from the inputs outputs.FIGURES gives its rule.
    inputs = {name: by_kind[figure.inputs] for name, figure in outputs.FIGURES.items()}
    assert list(FIGURES) == list(inputs)
    for name, paths in inputs.items():
        FIGURES[name](paths, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.pdf").stat().st_size > 0
        assert (tmp_path / f"{name}.png").stat().st_size > 0

    plotted = metrics.select(group="nc", plotted=True)
    nc_panels = drawn["nc_metrics"]
    assert [p.ylabel for p in nc_panels] == [m.label for m in plotted]
    assert [p.scale for p in nc_panels] == [m.scale for m in plotted]
    nc1 = nc_panels[0].series
    assert list(nc1) == ["plain"]  # one line per warm-up
    assert nc1["plain"].values.shape == (2, 4)  # seeds x checkpoint epochs
    (accuracy,) = drawn["finetune_accuracy"]
    assert set(accuracy.series) == {"plain", "shrink_perturb"}
    assert accuracy.references["fresh init"] == pytest.approx((0.95, 0.0))
    assert [list(p.series) for p in drawn["warmup_accuracy"]] == [["plain"], ["plain"]]
    correlation_panels = drawn["sliding_correlation"]
    assert len(correlation_panels) == len(plotted)
    assert all(p.ylim == (-1.05, 1.05) and p.zero_line for p in correlation_panels)
    assert set(correlation_panels[0].series) == {"plain", "shrink_perturb"}


def test_outputs_and_tables_need_no_torch_or_matplotlib():
    # The workflow imports outputs while it parses; tables run in the analysis environment.
    code = (
        "import sys\n"
        "import ncplasticity.warm_start.outputs\n"
        "assert not {'torch', 'matplotlib', 'scipy'} & set(sys.modules), 'outputs'\n"
        "import ncplasticity.warm_start.tables\n"
        "assert not {'torch', 'matplotlib'} & set(sys.modules), 'tables'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
