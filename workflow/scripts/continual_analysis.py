from ncplasticity.continual.analysis import correlations, sweep_correlations
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
params = snakemake.params
if params.analysis == "correlations":
    correlations(snakemake.input, snakemake.output[0], params.analysis_tasks)
else:
    sweep_correlations(
        snakemake.input, snakemake.output[0], params.analysis_tasks, params.sweep_groups
    )
