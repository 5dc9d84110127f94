from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0], snakemake.params.partial)

from ncplasticity.warm_start.job import run_finetune  # noqa: E402 - import errors go to the log

# Also the fresh-init reference: no checkpoint, variant "fresh".
run_finetune(
    snakemake.input.dataset,
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    variant=snakemake.params.variant,
    checkpoint_path=snakemake.params.checkpoint,
    out_path=snakemake.output[0],
    partial_dir=snakemake.params.partial,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
