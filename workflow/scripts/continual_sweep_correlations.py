from ncplasticity.continual.analysis import sweep_correlations
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
sweep_correlations(
    snakemake.input,
    snakemake.output[0],
    snakemake.params.analysis_tasks,
    snakemake.params.sweep_groups,
)
