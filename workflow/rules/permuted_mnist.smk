# Permuted-MNIST continual learning: one training job per (seed, first-task setting), then a
# per-run plasticity table joining the job's log with its NC metrics (metrics.smk).

PMNIST = config["permuted_mnist"]


def permuted_mnist_runs():
    """Run ids: s{seed}_e{epochs} and s{seed}_nc{tau} (parsed by ncplasticity.permuted_mnist)."""
    first = PMNIST["first_task"]
    settings = [f"e{epochs}" for epochs in first.get("epochs", [])]
    settings += [f"nc{tau:g}" for tau in first.get("nc1_thresholds", [])]
    return [f"s{seed}_{setting}" for seed in PMNIST["seeds"] for setting in settings]


def permuted_mnist_runtime():
    """Minutes for a training job, generously: batch-1 SGD takes 5-30 us a step on one core
    (benchmarks/bench_online_sgd.py), plus about a second per epoch for features, test
    accuracy and the checkpoint."""
    samples = 4000 if PMNIST["dataset"] == "mnist5k" else 60000
    epochs = PMNIST["num_tasks"] + PMNIST["first_task"].get("max_epochs", 100)
    return 10 + int(epochs * (samples * 30e-6 + 1) / 60)


def permuted_mnist_tables():
    return expand("results/permuted_mnist/tables/{run}.tsv", run=permuted_mnist_runs())


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
        cfg=PMNIST,
        partial="results/permuted_mnist/partial/{run}",
        device=config["device"],
    script:
        "../scripts/permuted_mnist_train.py"


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
