from ncplasticity.continual.figures import over_tasks_figure
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
over_tasks_figure(
    snakemake.input,
    snakemake.output.pdf,
    snakemake.output.png,
    snakemake.params.analysis_tasks,
    snakemake.params.panels,
)
