from ncplasticity.runlog import log_to_file
from ncplasticity.warm_start_analysis import sliding_correlations

log_to_file(snakemake.log[0])
sliding_correlations(snakemake.input, snakemake.params.window, snakemake.output[0])
