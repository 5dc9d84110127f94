from ncplasticity.continual.tables import correlations, sweep_correlations, variant_summary
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
params = snakemake.params
if params.analysis == "correlations":
    correlations(snakemake.input, snakemake.output[0], params.analysis_tasks)
elif params.analysis == "variant_summary":
    variant_summary(
        snakemake.input, snakemake.output[0], snakemake.output[1], params.analysis_tasks
    )
else:
    sweep_correlations(
        snakemake.input, snakemake.output[0], params.analysis_tasks, params.sweep_groups
    )
