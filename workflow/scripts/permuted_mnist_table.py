from ncplasticity.permuted_mnist import plasticity_table
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
plasticity_table(
    snakemake.wildcards.run, snakemake.input.log, snakemake.input.metrics, snakemake.output[0]
)
