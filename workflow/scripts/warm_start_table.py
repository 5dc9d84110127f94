from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.warm_start.tables import run_table  # noqa: E402 - import errors go to the log

run_table(
    snakemake.input.metrics,
    snakemake.input.warmup_log,
    snakemake.input.finetune,
    snakemake.input.fresh,
    snakemake.output[0],
    variant=snakemake.params.variant,
    seed=snakemake.params.seed,
    warmup_variant=snakemake.params.warmup_variant,
    fresh_variant=snakemake.params.fresh_variant,
)
