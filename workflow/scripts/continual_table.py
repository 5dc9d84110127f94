from ncplasticity.continual.tables import plasticity_table
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
plasticity_table(
    snakemake.input.log,
    snakemake.input.metrics,
    snakemake.output[0],
    run_id=snakemake.wildcards.run,
    variant=snakemake.params.variant,
    seed=snakemake.params.seed,
)
