# Tables and correlations, one section per experiment.


# Light work: on a cluster these run on the submitting node instead of waiting in the queue.
localrules:
    permuted_mnist_correlations,
    permuted_mnist_sweep_correlations,
    warm_start_table,
    warm_start_correlations,


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
        analysis_tasks=PMNIST_ANALYSIS_TASKS,
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
        analysis_tasks=PMNIST_ANALYSIS_TASKS,
    script:
        "../scripts/permuted_mnist_sweep_correlations.py"


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
    script:
        "../scripts/warm_start_table.py"


rule warm_start_correlations:
    input:
        expand(
            "results/warm_start/tables/{run}.tsv",
            run=warm_start_runs(WARM_START["variants"]),
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
        window=WARM_START["correlation_window"],
    script:
        "../scripts/warm_start_correlations.py"
