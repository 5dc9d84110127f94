# Warm starting (DESIGN §3): warm-up per (variant, seed) with a checkpoint every k epochs,
# then one fine-tune job per checkpoint (so a cluster runs them in parallel) and a fresh-init
# reference per seed. shrink_perturb fine-tunes plain's checkpoints; the other variants warm up
# themselves. Jobs keep their in-progress state under results/warm_start/partial/ (not an
# output, so it survives a killed job) and resume from it when rerun.


wildcard_constraints:
    variant="|".join(VARIANTS),
    seed=r"\d+",
    epoch=r"\d{4}",


rule warm_start_warmup:
    input:
        dataset=dataset_file(WARM_START["dataset"]),
    output:
        features="results/warm_start/features/{variant}_s{seed}.h5",
        log_tsv="results/warm_start/logs/{variant}_s{seed}.tsv",
        checkpoints=expand(
            "results/warm_start/checkpoints/{{variant}}_s{{seed}}/epoch{epoch:04d}.pt",
            epoch=WARM_START_EPOCHS,
        ),
    log:
        "results/logs/warm_start_warmup/{variant}_s{seed}.log",
    benchmark:
        "results/benchmarks/warm_start_warmup/{variant}_s{seed}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START["threads"]
    resources:
        runtime=WARM_START["runtime_warmup"],
        mem_mb=WARM_START["mem_mb"],
        gpu=WARM_START["gpus"],
    params:
        cfg=warm_start_settings("warmup"),
        device=WARM_START_DEVICE,
        partial_root=WARM_START_PARTIAL,
        checkpoint_dir=lambda wildcards: f"results/warm_start/checkpoints/{wildcards.variant}_s{wildcards.seed}",
    script:
        "../scripts/warm_start_warmup.py"


rule warm_start_finetune:
    input:
        dataset=dataset_file(WARM_START["dataset"]),
        checkpoint=warm_start_checkpoint,
    output:
        "results/warm_start/finetune/{variant}_s{seed}/epoch{epoch}.tsv",
    log:
        "results/logs/warm_start_finetune/{variant}_s{seed}_epoch{epoch}.log",
    benchmark:
        "results/benchmarks/warm_start_finetune/{variant}_s{seed}_epoch{epoch}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START["threads"]
    resources:
        runtime=WARM_START["runtime_finetune"],
        mem_mb=WARM_START["mem_mb"],
        gpu=WARM_START["gpus"],
    params:
        cfg=warm_start_settings("finetune"),
        variant=lambda wildcards: wildcards.variant,
        device=WARM_START_DEVICE,
        partial_root=WARM_START_PARTIAL,
    script:
        "../scripts/warm_start_finetune.py"


rule warm_start_fresh:
    input:
        dataset=dataset_file(WARM_START["dataset"]),
    output:
        "results/warm_start/finetune/fresh_s{seed}.tsv",
    log:
        "results/logs/warm_start_fresh/fresh_s{seed}.log",
    benchmark:
        "results/benchmarks/warm_start_fresh/fresh_s{seed}.tsv"
    conda:
        TRAIN_ENV
    threads: WARM_START["threads"]
    resources:
        runtime=WARM_START["runtime_finetune"],
        mem_mb=WARM_START["mem_mb"],
        gpu=WARM_START["gpus"],
    params:
        cfg=warm_start_settings("finetune"),
        variant="fresh",
        device=WARM_START_DEVICE,
        partial_root=WARM_START_PARTIAL,
    script:
        "../scripts/warm_start_finetune.py"


EXPERIMENT_TARGETS["warm_start"] = lambda: [
    "results/warm_start/analysis/correlations.tsv",
    *expand(
        "results/warm_start/figures/{figure}.{ext}",
        figure=WARM_START_FIGURE_NAMES,
        ext=["pdf", "png"],
    ),
]
