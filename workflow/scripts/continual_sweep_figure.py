from ncplasticity.continual.figures import sweep_figure
from ncplasticity.runlog import log_to_file

log_to_file(snakemake.log[0])
sweep_figure(snakemake.input[0], snakemake.output.pdf, snakemake.output.png)
