from ncplasticity.permuted_mnist import train_run
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
train_run(
    snakemake.params.cfg,
    snakemake.input[0],
    snakemake.wildcards.run,
    snakemake.output.features,
    snakemake.output.log,
    snakemake.params.partial,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
