"""Does ``nc_target`` hold NC1 where asked while the network keeps learning? (issue 26's targets)

Trains ``plain`` and the four ``nc_target`` doses (0.5x, 0.7x, 1.4x, 2x plain's median
``nc1_trace_ratio`` over tasks 10-150, measured here on the same seeds first) at the quick
open-questions study's scale (configs/open_questions.yaml over config.yaml: mnist5k, 2,000
digits a task, 150 tasks), and prints per dose and seed

    dose 0.5x seed 1: target T, achieved A (A/T = R), online accuracy 1-20 = Q x plain's,
    degenerate D   (one line)

then whether every target holds: achieved within a factor 1.25 of the target, online accuracy
over tasks 1-20 at least 0.9 x plain's at the same seed, no run degenerate, and the achieved
NC1 ordered like the targets in every seed. Two runs at a time (one per core).

With ``--plain-table PATH`` it also writes plain's per-task ``nc1_trace_ratio`` (seed, task)
there: ``docs/open_questions_plain_nc1.tsv`` is that table for seeds 1-5, the measurement the
study's targets come from (``configs/open_questions.yaml``; a test recomputes them from it).

At the reference study's scale (60,000 digits a task), lay its overlay over the quick study's
and take plain's runs from that study's finished results instead of training them again:

    python benchmarks/nc_target_doses.py --overlay configs/open_questions_reference.yaml \
        --data-root ../shared/data --plain-results <reference study>/results --seeds 1

Usage: python benchmarks/nc_target_doses.py [--seeds 1 2] [--plain-seeds 1 2 3 4 5]
       [--tasks 150] [--strength S] [--doses 0.5 2 (none: plain only)] [--plain-table PATH]
       [--overlay PATH ...] [--data-root DIR] [--plain-results DIR]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ncplasticity.continual.job import train_run
from ncplasticity.data import prepare_dataset
from ncplasticity.nc import file_metrics
from ncplasticity.study import deep_merge
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table

REPO = Path(__file__).resolve().parents[1]
DOSES = (0.5, 0.7, 1.4, 2.0)
FIRST, ACCURACY_TASKS = 10, (1, 20)


def base_settings(tasks: int, overlays: list[Path]) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for overlay in [REPO / "configs/open_questions.yaml", *overlays]:
        config = deep_merge(config, yaml.safe_load(Path(overlay).read_text()))
    settings = config["continual"]
    for key in ("seeds", "analysis_tasks", "threads", "variants"):
        settings.pop(key, None)
    settings["num_tasks"] = tasks
    return settings


def run(args) -> dict:
    settings, seed, name, dataset, out = args
    out = Path(out)
    train_run(settings, seed, name, dataset, out / f"{name}.h5", out / f"{name}.tsv", out / name)
    _, nc = file_metrics(out / f"{name}.h5")
    return summary([row["nc1_trace_ratio"] for row in nc], read_table(out / f"{name}.tsv"))


def finished_plain(results: Path, seed: int) -> dict:
    """Plain's run of a finished study (its continual log and NC metrics tables)."""
    metrics = read_table(results / "continual" / "metrics" / f"plain_s{seed}.tsv")
    log = read_table(results / "continual" / "logs" / f"plain_s{seed}.tsv")
    return summary(list(metrics.sort_values("task")["nc1_trace_ratio"]), log)


def summary(trace_ratio: list[float], log: pd.DataFrame) -> dict:
    first, last = ACCURACY_TASKS
    return {
        "trace_ratio": trace_ratio,
        "achieved": float(np.median(trace_ratio[FIRST:])),
        "accuracy": float(log["online_accuracy"].iloc[first : last + 1].mean()),
        "degenerate": bool(log["degenerate"].any()),
        "feature_norm": float(log["feature_norm"].iloc[FIRST:].median()),
        "dormant_fraction": float(log["dormant_fraction"].iloc[FIRST:].median()),
    }


def plain_reference(table: pd.DataFrame) -> float:
    """Plain's median ``nc1_trace_ratio`` over every seed's tasks from :data:`FIRST` on."""
    return float(table.loc[table["task"] >= FIRST, "nc1_trace_ratio"].median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", type=int, default=150)
    parser.add_argument("--plain-seeds", type=int, nargs="+", default=None)
    parser.add_argument("--strength", type=float, default=None)
    parser.add_argument("--plain-table", type=Path, default=None)
    parser.add_argument("--doses", type=float, nargs="*", default=list(DOSES))
    parser.add_argument("--overlay", type=Path, action="append", default=[])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--plain-results", type=Path, default=None)
    args = parser.parse_args()
    plain_seeds = sorted(set(args.plain_seeds or args.seeds) | set(args.seeds))
    base = base_settings(args.tasks, args.overlay)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(2) as pool:
        dataset = Path(tmp) / f"{base['dataset']}.npz"
        if args.doses or not args.plain_results:  # something trains
            prepare_dataset(base["dataset"], args.data_root or Path(tmp) / "root", dataset)
        if args.plain_results:
            plain = {s: finished_plain(args.plain_results, s) for s in plain_seeds}
        else:
            jobs = [(base, s, f"plain_s{s}", dataset, tmp) for s in plain_seeds]
            plain = dict(zip(plain_seeds, pool.map(run, jobs), strict=True))
        table = pd.DataFrame(
            [
                {"seed": s, "task": t, "nc1_trace_ratio": value}
                for s in plain_seeds
                for t, value in enumerate(plain[s]["trace_ratio"])
            ]
        )
        if args.plain_table:
            write_table(table, args.plain_table)
        reference = plain_reference(table)
        print(
            f"plain median nc1_trace_ratio over tasks {FIRST}-{args.tasks - 1}, seeds "
            f"{plain_seeds}: {reference:.4g}"
        )
        if not args.doses:  # plain's table and reference only
            return
        jobs, keys = [], []
        for dose in args.doses:
            settings = copy.deepcopy(base)
            entry = {"name": "nc_target", "target": round(dose * reference, 4)}
            if args.strength is not None:
                entry["strength"] = args.strength
            settings["interventions"] = [entry]
            for seed in args.seeds:
                jobs.append((settings, seed, f"dose{dose}_s{seed}", dataset, tmp))
                keys.append((dose, seed, entry["target"]))
        results = list(pool.map(run, jobs))
    held = True
    achieved = {}
    for (dose, seed, target), result in zip(keys, results, strict=True):
        ratio = result["achieved"] / target
        accuracy = result["accuracy"] / plain[seed]["accuracy"]
        achieved.setdefault(seed, []).append(result["achieved"])
        print(
            f"dose {dose}x seed {seed}: target {target:.4g}, achieved {result['achieved']:.4g} "
            f"(A/T = {ratio:.3f}), online accuracy {ACCURACY_TASKS[0]}-{ACCURACY_TASKS[1]} = "
            f"{accuracy:.3f} x plain's, degenerate {result['degenerate']}; median over tasks "
            f"{FIRST}+: feature norm {result['feature_norm']:.3g} (plain "
            f"{plain[seed]['feature_norm']:.3g}), dormant fraction "
            f"{result['dormant_fraction']:.3g} (plain {plain[seed]['dormant_fraction']:.3g})"
        )
        held &= 1 / 1.25 <= ratio <= 1.25 and accuracy >= 0.9 and not result["degenerate"]
    ordered = all(np.all(np.diff(values) > 0) for values in achieved.values())
    print(f"every dose and seed within 1.25x, >= 0.9x plain's accuracy, none degenerate: {held}")
    print(f"achieved NC1 ordered like the targets in every seed: {ordered}")


if __name__ == "__main__":
    main()
