# Warm starting (DESIGN §3): warm-up per (variant, seed) with a checkpoint every k epochs,
# then one fine-tune job per checkpoint (so a cluster runs them in parallel) and a fresh-init
# reference per seed; then a table per run joining its NC metrics (metrics.smk), warm-up log and
# fine-tuned outcomes, the tables across runs and the figures, named by
# ncplasticity.warm_start.outputs. Variants whose warm-up settings agree share one warm-up (e.g.
# shrink_perturb, a fine-tune-only intervention, fine-tunes plain's checkpoints). Jobs keep
# their in-progress state under results/warm_start/partial/ and resume from it when rerun.

from ncplasticity.warm_start import outputs as warm_start_outputs


wildcard_constraints:
    variant=one_of(WARM_START_VARIANTS),
    warmup_variant=one_of(WARM_START_WARMUPS),
    fresh_variant=one_of(set(WARM_START_FRESH.values())),
    seed=r"\d+",
    epoch=r"\d{4}",


rule warm_start_warmup:
    input:
        dataset=lambda wildcards: dataset_file(
            WARM_START_VARIANTS[wildcards.warmup_variant]["dataset"]
        ),
    output:
        features="results/warm_start/features/{warmup_variant}_s{seed}.h5",
        log_tsv="results/warm_start/logs/{warmup_variant}_s{seed}.tsv",
        checkpoints=directory("results/warm_start/checkpoints/{warmup_variant}_s{seed}"),
    log:
        "results/logs/warm_start_warmup/{warmup_variant}_s{seed}.log",
    benchmark:
        "results/benchmarks/warm_start_warmup/{warmup_variant}_s{seed}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START.get("threads", 1)
    resources:
        runtime=WARM_START.get("runtime_warmup", 60),
        mem_mb=WARM_START.get("mem_mb", 4000),
        gpu=WARM_START.get("gpus", 0),
    params:
        settings=lambda wildcards: warm_start_study.warmup_settings(
            WARM_START_VARIANTS[wildcards.warmup_variant]
        ),
        seed=lambda wildcards: int(wildcards.seed),
        variant=lambda wildcards: wildcards.warmup_variant,
        device=WARM_START_DEVICE,
        partial=f"{WARM_START_PARTIAL}/{{warmup_variant}}_s{{seed}}",
        checkpoint_dir="results/warm_start/checkpoints/{warmup_variant}_s{seed}",
    script:
        "../scripts/warm_start_warmup.py"


rule warm_start_finetune:
    input:
        dataset=lambda wildcards: dataset_file(
            WARM_START_VARIANTS[wildcards.variant]["dataset"]
        ),
        checkpoints=warm_start_checkpoint,
    output:
        "results/warm_start/finetune/{variant}_s{seed}/epoch{epoch}.tsv",
    log:
        "results/logs/warm_start_finetune/{variant}_s{seed}_epoch{epoch}.log",
    benchmark:
        "results/benchmarks/warm_start_finetune/{variant}_s{seed}_epoch{epoch}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START.get("threads", 1)
    resources:
        runtime=WARM_START.get("runtime_finetune", 60),
        mem_mb=WARM_START.get("mem_mb", 4000),
        gpu=WARM_START.get("gpus", 0),
    params:
        settings=lambda wildcards: warm_start_study.finetune_settings(
            WARM_START_VARIANTS[wildcards.variant]
        ),
        seed=lambda wildcards: int(wildcards.seed),
        variant=lambda wildcards: wildcards.variant,
        checkpoint=lambda wildcards, input: f"{input.checkpoints}/epoch{wildcards.epoch}.pt",
        device=WARM_START_DEVICE,
        partial=f"{WARM_START_PARTIAL}/{{variant}}_s{{seed}}_finetune{{epoch}}",
    script:
        "../scripts/warm_start_finetune.py"


# The fresh-init reference of each variant's fine-tune settings (shared when they agree).
rule warm_start_fresh:
    input:
        dataset=lambda wildcards: dataset_file(
            WARM_START_VARIANTS[wildcards.fresh_variant]["dataset"]
        ),
    output:
        "results/warm_start/finetune/fresh/{fresh_variant}_s{seed}.tsv",
    log:
        "results/logs/warm_start_fresh/{fresh_variant}_s{seed}.log",
    benchmark:
        "results/benchmarks/warm_start_fresh/{fresh_variant}_s{seed}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START.get("threads", 1)
    resources:
        runtime=WARM_START.get("runtime_finetune", 60),
        mem_mb=WARM_START.get("mem_mb", 4000),
        gpu=WARM_START.get("gpus", 0),
    params:
        settings=lambda wildcards: warm_start_study.fresh_settings(
            WARM_START_VARIANTS[wildcards.fresh_variant]
        ),
        seed=lambda wildcards: int(wildcards.seed),
        variant=warm_start_study.FRESH,
        checkpoint=None,
        device=WARM_START_DEVICE,
        partial=f"{WARM_START_PARTIAL}/fresh/{{fresh_variant}}_s{{seed}}",
    script:
        "../scripts/warm_start_finetune.py"


# The per-run table, the tables across runs and the figures are light work: on a cluster they
# run on the submitting node (`localrule: True`) instead of waiting in the queue.


rule warm_start_table:
    input:
        unpack(warm_start_table_inputs),
    output:
        "results/warm_start/tables/{variant}_s{seed}.tsv",
    log:
        "results/logs/warm_start_table/{variant}_s{seed}.log",
    localrule: True
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
        warm_start_outputs.CORRELATIONS,
    log:
        "results/logs/warm_start_correlations/correlations.log",
    localrule: True
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
        tsv=warm_start_outputs.VARIANT_SUMMARY_TSV,
        md=warm_start_outputs.VARIANT_SUMMARY_MD,
    log:
        "results/logs/warm_start_variant_summary/variant_summary.log",
    localrule: True
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    script:
        "../scripts/warm_start_variant_summary.py"


# The files each kind of figure input (warm_start_outputs.Figure.inputs) stands for.
WARM_START_FIGURE_SOURCES = {
    "tables": warm_start_tables(),
    "warmup_logs": warm_start_warmup_logs(),
    "correlations": [warm_start_outputs.CORRELATIONS],
}


# One rule per figure (warm_start_figure_<name>); ncplasticity.warm_start.figures.FIGURES draws
# it. One fixed script for all: Snakemake evaluates a `script:` path again when the job runs.
for warm_start_figure, warm_start_figure_spec in warm_start_outputs.FIGURES.items():

    rule:
        name:
            f"warm_start_figure_{warm_start_figure}"
        input:
            WARM_START_FIGURE_SOURCES[warm_start_figure_spec.inputs],
        output:
            pdf=f"{warm_start_outputs.FIGURE_DIR}/{warm_start_figure}.pdf",
            png=report(
                f"{warm_start_outputs.FIGURE_DIR}/{warm_start_figure}.png",
                caption=f"../report/warm_start_{warm_start_figure}.rst",
                category="Warm starting",
                subcategory=warm_start_figure_spec.subcategory,
            ),
        log:
            f"results/logs/warm_start_figure/{warm_start_figure}.log",
        localrule: True
        conda:
            ANALYSIS_ENV
        threads: 1
        resources:
            runtime=10,
            mem_mb=2000,
        params:
            figure=warm_start_figure,
            variants=list(WARM_START_VARIANTS),
        script:
            "../scripts/warm_start_figure.py"


# Each run's warm-up run, whose log the run's curves show.
WARM_START_RUN_WARMUPS = {
    run: run_id(WARM_START_SOURCES[spec.variant], spec.seed)
    for run, spec in WARM_START_RUNS.items()
}


rule warm_start_run_curves:
    input:
        tables=expand("results/warm_start/tables/{run}.tsv", run=list(WARM_START_RUNS)),
        warmup_logs=expand(
            "results/warm_start/logs/{run}.tsv",
            run=list(WARM_START_RUN_WARMUPS.values()),
        ),
    output:
        report(
            directory(RUN_CURVES_DIR.format(experiment="warm_start")),
            patterns=["{run}.png"],
            caption="../report/warm_start_run_curves.rst",
            category="Per-run curves",
            subcategory=EXPERIMENT_TITLES["warm_start"],
            labels=run_labels(WARM_START_RUNS),
        ),
    log:
        "results/logs/warm_start_run_curves/warm_start_run_curves.log",
    priority: RUN_CURVES_PRIORITY
    localrule: True
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        runs=list(WARM_START_RUNS),
    script:
        "../scripts/warm_start_run_curves.py"


WARM_START_TARGETS = (
    []
    if "warm_start" not in config["experiments"]
    else [
        *warm_start_outputs.TABLES,
        *expand(
            f"{warm_start_outputs.FIGURE_DIR}/{{figure}}.{{ext}}",
            figure=list(warm_start_outputs.FIGURE_NAMES),
            ext=["pdf", "png"],
        ),
    ]
)
