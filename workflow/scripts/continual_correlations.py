from ncplasticity.continual.analysis import correlations
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
correlations(snakemake.input, snakemake.output[0], snakemake.params.analysis_tasks)
