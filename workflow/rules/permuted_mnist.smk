# Permuted-MNIST continual learning: one training job per (seed, first-task setting), then a
# per-run plasticity table joining the job's log with its NC metrics (metrics.smk).


rule permuted_mnist_train:
    input:
        dataset_file(PMNIST["dataset"]),
    output:
        features="results/permuted_mnist/features/{run}.h5",
        log="results/permuted_mnist/logs/{run}.tsv",
    log:
        "results/logs/permuted_mnist_train/{run}.log",
    benchmark:
        "results/benchmarks/permuted_mnist_train/{run}.tsv"
    conda:
        TRAIN_ENV
    threads: PMNIST.get("threads", 1)
    resources:
        runtime=permuted_mnist_runtime(),
        mem_mb=4000,
    params:
        cfg=PMNIST_TRAINING,
        partial="results/permuted_mnist/partial/{run}",
        device=config["device"],
    script:
        "../scripts/permuted_mnist_train.py"


localrules:
    permuted_mnist_table,


rule permuted_mnist_table:
    input:
        log="results/permuted_mnist/logs/{run}.tsv",
        metrics="results/permuted_mnist/metrics/{run}.tsv",
    output:
        "results/permuted_mnist/tables/{run}.tsv",
    log:
        "results/logs/permuted_mnist_table/{run}.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../scripts/permuted_mnist_table.py"


EXPERIMENT_TARGETS["permuted_mnist"] = lambda: [
    "results/permuted_mnist/analysis/correlations.tsv",
    "results/permuted_mnist/analysis/sweep_correlations.tsv",
    *expand(
        "results/permuted_mnist/figures/{name}.{ext}",
        name=["collapse_over_tasks", "plasticity_over_tasks", "sweep_correlations"],
        ext=["pdf", "png"],
    ),
]
