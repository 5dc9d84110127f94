# Continual learning: one training job per run (variant x seed), given its resolved settings,
# then a per-run plasticity table joining the job's log with its NC metrics (metrics.smk), the
# tables across runs and the figures. Their names come from ncplasticity.continual.outputs.
# No `benchmark:` on the training jobs: Snakemake samples a benchmarked job's memory twice a
# second, ~1 s of the scheduler's CPU per job, beside jobs of ~20 s; each job's log ends with
# its wall time and peak memory instead (ncplasticity.runlog.finished_line).

from ncplasticity.continual import outputs as continual_outputs

CONTINUAL_DIR = "results/continual"


rule continual_train:
    input:
        lambda wildcards: dataset_file(continual_run_settings(wildcards)["dataset"]),
    output:
        features=f"{CONTINUAL_DIR}/features/{{run}}.h5",
        log=f"{CONTINUAL_DIR}/logs/{{run}}.tsv",
    log:
        "results/logs/continual_train/{run}.log",
    conda:
        TRAIN_ENV
    threads: CONTINUAL.get("threads", 1)
    resources:
        runtime=continual_runtime,
        mem_mb=continual_mem_mb,
    params:
        settings=continual_run_settings,
        seed=lambda wildcards: CONTINUAL_RUNS[wildcards.run].seed,
        partial=f"{CONTINUAL_DIR}/partial/{{run}}",
    script:
        "../scripts/continual_train.py"


# The per-run table, the tables across runs and the figures are light work: on a cluster they
# run on the submitting node (`localrule: True`) instead of waiting in the queue.


rule continual_table:
    input:
        log=f"{CONTINUAL_DIR}/logs/{{run}}.tsv",
        metrics=f"{CONTINUAL_DIR}/metrics/{{run}}.tsv",
    output:
        f"{CONTINUAL_DIR}/tables/{{run}}.tsv",
    log:
        "results/logs/continual_table/{run}.log",
    localrule: True
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


# continual_correlations (per variant: per-seed correlations and their summary over seeds),
# continual_sweep_correlations (across the runs of each first-task sweep group) and
# continual_variant_summary (per variant: mean and sd over seeds of the first and final
# accuracy, PL, NC1 and plasticity measures; a TSV and its Markdown copy). One fixed script
# for all: Snakemake evaluates a `script:` path again when the job runs, so a path built from
# the loop variable would be the last iteration's for every rule.
for continual_analysis in continual_outputs.TABLE_NAMES:

    rule:
        name:
            f"continual_{continual_analysis}"
        input:
            continual_tables(),
        output:
            list(continual_outputs.TABLES[continual_analysis]),
        log:
            f"results/logs/continual_{continual_analysis}/{continual_analysis}.log",
        localrule: True
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=10,
            mem_mb=1000,
        params:
            analysis=continual_analysis,
            analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
            sweep_groups=CONTINUAL_SWEEPS,
        script:
            "../scripts/continual_analysis.py"


# One rule per panel set (continual_{panels}_figure, drawing figures/{panels}_over_tasks).
for continual_panels in continual_outputs.PANEL_SETS:

    rule:
        name:
            f"continual_{continual_panels}_figure"
        input:
            continual_tables(),
        output:
            pdf=f"{continual_outputs.FIGURE_DIR}/{continual_panels}_over_tasks.pdf",
            png=report(
                f"{continual_outputs.FIGURE_DIR}/{continual_panels}_over_tasks.png",
                caption=f"../report/continual_{continual_panels}_over_tasks.rst",
                category="Continual learning",
                subcategory="Collapse and plasticity over tasks",
            ),
        log:
            f"results/logs/continual_{continual_panels}_figure/{continual_panels}_over_tasks.log",
        localrule: True
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=5,
            mem_mb=2000,
        params:
            analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
            panels=continual_panels,
        script:
            "../scripts/continual_over_tasks_figure.py"


rule continual_sweep_figure:
    input:
        continual_outputs.TABLES[continual_outputs.SWEEP_FIGURE][0],
    output:
        pdf=f"{continual_outputs.FIGURE_DIR}/{continual_outputs.SWEEP_FIGURE}.pdf",
        png=report(
            f"{continual_outputs.FIGURE_DIR}/{continual_outputs.SWEEP_FIGURE}.png",
            caption=f"../report/continual_{continual_outputs.SWEEP_FIGURE}.rst",
            category="Continual learning",
            subcategory="First-task sweep",
        ),
    log:
        f"results/logs/continual_sweep_figure/{continual_outputs.SWEEP_FIGURE}.log",
    localrule: True
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=2000,
    script:
        "../scripts/continual_sweep_figure.py"


# Light work: on a cluster it runs on the submitting node.
rule continual_run_curves:
    input:
        continual_tables(),
    output:
        report(
            directory(RUN_CURVES_DIR.format(experiment="continual")),
            patterns=["{run}.png"],
            caption="../report/continual_run_curves.rst",
            category="Per-run curves",
            subcategory=EXPERIMENT_TITLES["continual"],
            labels=run_labels(CONTINUAL_RUNS),
        ),
    log:
        "results/logs/continual_run_curves/continual_run_curves.log",
    priority: RUN_CURVES_PRIORITY
    localrule: True
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        runs=list(CONTINUAL_RUNS),
    script:
        "../scripts/continual_run_curves.py"


CONTINUAL_TARGETS = (
    []
    if "continual" not in config["experiments"]
    else [
        *(path for paths in continual_outputs.TABLES.values() for path in paths),
        *expand(
            f"{continual_outputs.FIGURE_DIR}/{{name}}.{{ext}}",
            name=list(continual_outputs.FIGURE_NAMES),
            ext=["pdf", "png"],
        ),
    ]
)
