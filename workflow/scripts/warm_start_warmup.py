from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0], snakemake.params.partial)

from ncplasticity.warm_start.job import run_warmup  # noqa: E402 - import errors go to the log

run_warmup(
    snakemake.input.dataset,
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    variant=snakemake.params.variant,
    features_path=snakemake.output.features,
    checkpoint_dir=snakemake.params.checkpoint_dir,
    log_path=snakemake.output.log_tsv,
    partial_dir=snakemake.params.partial,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
