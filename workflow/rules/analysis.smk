# Rules of this stage: tables and correlations, one section per experiment.


# --- Permuted MNIST ---


rule permuted_mnist_correlations:
    input:
        permuted_mnist_tables(),
    output:
        "results/permuted_mnist/analysis/correlations.tsv",
    log:
        "results/logs/permuted_mnist_correlations/correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        analysis_tasks=PMNIST.get("analysis_tasks", PMNIST["num_tasks"]),
    script:
        "../scripts/permuted_mnist_correlations.py"


rule permuted_mnist_sweep_correlations:
    input:
        permuted_mnist_tables(),
    output:
        "results/permuted_mnist/analysis/sweep_correlations.tsv",
    log:
        "results/logs/permuted_mnist_sweep_correlations/sweep_correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        analysis_tasks=PMNIST.get("analysis_tasks", PMNIST["num_tasks"]),
    script:
        "../scripts/permuted_mnist_sweep_correlations.py"


# --- Warm starting ---


def warm_start_runs(variants):
    return [f"{v}_s{s}" for v in variants for s in WARM_START["seeds"]]


def warm_start_table_inputs(wildcards):
    warmup_run = f"{warmup_variant(wildcards.variant)}_s{wildcards.seed}"
    return {
        "metrics": f"results/warm_start/metrics/{warmup_run}.tsv",
        "warmup_log": f"results/warm_start/logs/{warmup_run}.tsv",
        "finetune": [
            f"results/warm_start/finetune/{wildcards.variant}_s{wildcards.seed}/epoch{e:04d}.tsv"
            for e in WARM_START_EPOCHS
        ],
        "fresh": f"results/warm_start/finetune/fresh_s{wildcards.seed}.tsv",
    }


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
    script:
        "../scripts/warm_start_table.py"


rule warm_start_correlations:
    input:
        expand(
            "results/warm_start/tables/{run}.tsv",
            run=warm_start_runs(WARM_START["variants"]),
        ),
    output:
        "results/warm_start/correlations.tsv",
    log:
        "results/logs/warm_start_correlations/correlations.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    params:
        window=WARM_START["correlation_window"],
    script:
        "../scripts/warm_start_correlations.py"
