# Warm starting (DESIGN §3): warm-up per (variant, seed) with a checkpoint every k epochs,
# then one fine-tune job per checkpoint (so a cluster runs them in parallel) and a fresh-init
# reference per seed. Variants whose warm-up settings agree share one warm-up (e.g.
# shrink_perturb, a fine-tune-only intervention, fine-tunes plain's checkpoints). Jobs keep
# their in-progress state under results/warm_start/partial/ and resume from it when rerun.


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


EXPERIMENT_TARGETS["warm_start"] = lambda: [
    "results/warm_start/analysis/correlations.tsv",
    "results/warm_start/analysis/variant_summary.tsv",
    "results/warm_start/analysis/variant_summary.md",
    *expand(
        "results/warm_start/figures/{figure}.{ext}",
        figure=WARM_START_FIGURE_NAMES,
        ext=["pdf", "png"],
    ),
]
