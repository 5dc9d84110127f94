# Tables and correlations, one section per experiment.


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    continual_correlations,
    continual_sweep_correlations,
    continual_variant_summary,
    warm_start_table,
    warm_start_correlations,
    warm_start_variant_summary,


# --- Continual ---


# continual_correlations (per variant: per-seed correlations and their summary over seeds),
# continual_sweep_correlations (across the runs of each first-task sweep group) and
# continual_variant_summary (per variant: mean and sd over seeds of the first and final
# accuracy, PL, NC1 and plasticity measures; a TSV and its Markdown copy). One fixed script
# for all: Snakemake evaluates a `script:` path again when the job runs, so a path built from
# the loop variable would be the last iteration's for every rule.
CONTINUAL_ANALYSES = {
    "correlations": ["results/continual/analysis/correlations.tsv"],
    "sweep_correlations": ["results/continual/analysis/sweep_correlations.tsv"],
    "variant_summary": [
        "results/continual/analysis/variant_summary.tsv",
        "results/continual/analysis/variant_summary.md",
    ],
}
for continual_analysis in CONTINUAL_ANALYSES:

    rule:
        name:
            f"continual_{continual_analysis}"
        input:
            continual_tables(),
        output:
            CONTINUAL_ANALYSES[continual_analysis],
        log:
            f"results/logs/continual_{continual_analysis}/{continual_analysis}.log",
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
        fresh_variant=lambda wildcards: WARM_START_FRESH[wildcards.variant],
    script:
        "../scripts/warm_start_table.py"


rule warm_start_correlations:
    input:
        warm_start_tables(),
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


# Per variant: mean and sd over seeds of the fine-tuned accuracy, its gap to the fresh init,
# warm-up accuracy, NC1 and collapses; a TSV and its Markdown copy.
rule warm_start_variant_summary:
    input:
        warm_start_tables(),
    output:
        tsv="results/warm_start/analysis/variant_summary.tsv",
        md="results/warm_start/analysis/variant_summary.md",
    log:
        "results/logs/warm_start_variant_summary/variant_summary.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    script:
        "../scripts/warm_start_variant_summary.py"
