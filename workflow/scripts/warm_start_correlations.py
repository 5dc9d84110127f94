from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])

from ncplasticity.warm_start.tables import sliding_correlations  # noqa: E402 - errors to the log

sliding_correlations(list(snakemake.input), snakemake.params.window, snakemake.output[0])
