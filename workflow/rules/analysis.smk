# Tables and correlations, one section per experiment.


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    continual_correlations,
    continual_sweep_correlations,
    warm_start_table,
    warm_start_correlations,


# --- Continual ---


rule continual_correlations:
    input:
        continual_tables(),
    output:
        "results/continual/analysis/correlations.tsv",
    log:
        "results/logs/continual_correlations/correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
    script:
        "../scripts/continual_correlations.py"


rule continual_sweep_correlations:
    input:
        continual_tables(),
    output:
        "results/continual/analysis/sweep_correlations.tsv",
    log:
        "results/logs/continual_sweep_correlations/sweep_correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        analysis_tasks=CONTINUAL_ANALYSIS_TASKS,
    script:
        "../scripts/continual_sweep_correlations.py"


# --- Warm starting ---


rule warm_start_table:
    input:
        unpack(warm_start_table_inputs),
    output:
        "results/warm_start/tables/{variant}_s{seed}.tsv",
    log:
        "results/logs/warm_start_table/{variant}_s{seed}.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        variant=lambda wildcards: wildcards.variant,
        seed=lambda wildcards: int(wildcards.seed),
        warmup_variant=lambda wildcards: WARM_START_SOURCES[wildcards.variant],
    script:
        "../scripts/warm_start_table.py"


rule warm_start_correlations:
    input:
        expand(
            "results/warm_start/tables/{run}.tsv",
            run=warm_start_runs(WARM_START_VARIANTS),
        ),
    output:
        "results/warm_start/analysis/correlations.tsv",
    log:
        "results/logs/warm_start_correlations/correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        window=WARM_START.get("correlation_window", 1),
    script:
        "../scripts/warm_start_correlations.py"
