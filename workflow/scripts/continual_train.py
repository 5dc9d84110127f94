from ncplasticity.continual.job import train_run
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0], snakemake.params.partial)
train_run(
    snakemake.params.settings,
    snakemake.params.seed,
    snakemake.wildcards.run,
    snakemake.input[0],
    snakemake.output.features,
    snakemake.output.log,
    snakemake.params.partial,
    threads=snakemake.threads,
)
