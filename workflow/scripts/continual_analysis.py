from ncplasticity.continual.tables import write_analysis
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
write_analysis(
    snakemake.params.analysis,
    snakemake.input,
    snakemake.output,
    snakemake.params.analysis_tasks,
    snakemake.params.sweep_groups,
)
