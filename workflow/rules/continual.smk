# Continual learning: one training job per run (variant x seed), given its resolved settings,
# then a per-run plasticity table joining the job's log with its NC metrics (metrics.smk).
# No `benchmark:` on the training jobs: Snakemake samples a benchmarked job's memory twice a
# second, ~1 s of the scheduler's CPU per job, beside jobs of ~20 s; each job's log ends with
# its wall time and peak memory instead (ncplasticity.runlog.finished_line).


rule continual_train:
    input:
        lambda wildcards: dataset_file(continual_run_settings(wildcards)["dataset"]),
    output:
        features="results/continual/features/{run}.h5",
        log="results/continual/logs/{run}.tsv",
    log:
        "results/logs/continual_train/{run}.log",
    conda:
        TRAIN_ENV
    threads: CONTINUAL.get("threads", 1)
    resources:
        runtime=continual_runtime,
        mem_mb=4000,
    params:
        settings=continual_run_settings,
        seed=lambda wildcards: CONTINUAL_RUNS[wildcards.run].seed,
        partial="results/continual/partial/{run}",
    script:
        "../scripts/continual_train.py"


localrules:
    continual_table,


rule continual_table:
    input:
        log="results/continual/logs/{run}.tsv",
        metrics="results/continual/metrics/{run}.tsv",
    output:
        "results/continual/tables/{run}.tsv",
    log:
        "results/logs/continual_table/{run}.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        variant=lambda wildcards: CONTINUAL_RUNS[wildcards.run].variant,
        seed=lambda wildcards: CONTINUAL_RUNS[wildcards.run].seed,
    script:
        "../scripts/continual_table.py"


EXPERIMENT_TARGETS["continual"] = lambda: [
    "results/continual/analysis/correlations.tsv",
    "results/continual/analysis/sweep_correlations.tsv",
    "results/continual/analysis/variant_summary.tsv",
    "results/continual/analysis/variant_summary.md",
    *expand(
        "results/continual/figures/{name}.{ext}",
        name=["collapse_over_tasks", "plasticity_over_tasks", "sweep_correlations"],
        ext=["pdf", "png"],
    ),
]
